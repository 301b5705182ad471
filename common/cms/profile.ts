/**
 * The KMS CMS profile: the only object identifiers and sizes a
 * `CiphertextForRecipient` may contain. Everything else is refused; `oidName`
 * exists so diagnostics can say what was found instead (e.g. that a tampered
 * blob asks for aes128-CBC).
 */
export const OID = {
  /** RFC 5652 §6.1 ContentInfo content type. */
  envelopedData: '1.2.840.113549.1.7.3',
  /** RFC 5652 §4 encrypted content type. */
  data: '1.2.840.113549.1.7.1',
  /** RFC 8017 / RFC 4055 key transport. */
  rsaesOaep: '1.2.840.113549.1.1.7',
  mgf1: '1.2.840.113549.1.1.8',
  pSpecified: '1.2.840.113549.1.1.9',
  sha256: '2.16.840.1.101.3.4.2.1',
  /** RFC 3565 content encryption; parameters = the 16-byte IV. */
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

const NAMES: Record<string, string> = {
  [OID.envelopedData]: 'envelopedData',
  [OID.data]: 'id-data',
  [OID.rsaesOaep]: 'id-RSAES-OAEP',
  [OID.mgf1]: 'id-mgf1',
  [OID.pSpecified]: 'id-pSpecified',
  [OID.sha256]: 'sha256',
  [OID.aes256Cbc]: 'aes256-CBC',
  // Recognised only so refusals name them.
  '1.2.840.113549.1.1.1': 'rsaEncryption (RSAES-PKCS1-v1_5)',
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.1.2': 'aes128-CBC',
  '2.16.840.1.101.3.4.1.22': 'aes192-CBC',
  '2.16.840.1.101.3.4.1.46': 'aes256-GCM',
  '1.2.840.113549.1.7.2': 'signedData',
  '1.2.840.113549.1.9.16.1.23': 'authEnvelopedData',
};

/** Human name for an OID, or the dotted form itself when unknown. */
export function oidName(oid: string): string {
  return NAMES[oid] ?? oid;
}

/** rid: SHA-256 of the recipient SPKI. */
export const SUBJECT_KEY_ID_BYTES = 32;
/** The content-encryption key KMS wraps: an AES-256 key. */
export const CEK_BYTES = 32;
export const AES256_IV_BYTES = 16;
