/**
 * The signing certificate of a signed EIF: PEM → DER the way nitro-cli reads
 * it (OpenSSL's X509::from_pem, first CERTIFICATE block, re-encoded with
 * i2d — Node's X509Certificate.raw is the same i2d output), and the
 * "SigningCertificate" object `nitro-cli describe-eif` prints.
 */
import { X509Certificate } from 'node:crypto';
import { children, content, expect, parseDer, readBitStringBytes, readOid, UNIVERSAL } from '../../common/der.js';
import { EifError } from './errors.js';

/** nitro-cli's SignCertificateInfo (serde names). */
export interface SigningCertificateInfo {
  /** Issuer attributes by OpenSSL long name (commonName, organizationName, …), sorted. */
  IssuerName: Record<string, string>;
  /** OpenSSL long name of the certificate's signature algorithm, e.g. "ecdsa-with-SHA384". */
  Algorithm: string;
  /** OpenSSL ASN1_TIME_print form, e.g. "Jan  1 00:00:00 2024 GMT". */
  NotBefore: string;
  NotAfter: string;
  /** The certificate's own signature, uppercase hex bytes joined by ':'. */
  Signature: string;
}

export interface SigningCertificate {
  /** The bytes stored in the EIF (a PEM file's content). */
  pem: Uint8Array;
  /** Canonical DER (what PCR8 hashes). */
  der: Uint8Array;
  x509: X509Certificate;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/;

function bad(message: string, cause?: unknown): EifError {
  return new EifError('EIF_BAD_SIGNATURE', message, cause === undefined ? {} : { cause });
}

export function readSigningCertificate(pem: Uint8Array): SigningCertificate {
  const text = Buffer.from(pem).toString('latin1');
  const m = PEM_CERT.exec(text);
  if (!m) throw bad('signing_certificate holds no PEM CERTIFICATE block');
  const body = m[1]!.replace(/\s+/g, '');
  const decoded = new Uint8Array(Buffer.from(body, 'base64'));
  if (decoded.length === 0 || Buffer.from(decoded).toString('base64') !== body) throw bad('signing_certificate PEM block is not valid base64');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(decoded);
  } catch (e) {
    throw bad(`signing_certificate is not an X.509 certificate: ${(e as Error).message}`, e);
  }
  return { pem, der: new Uint8Array(x509.raw), x509 };
}

// OpenSSL's long names (OBJ_nid2ln), which is what nitro-cli prints; others print dotted.
const ATTR_LN: Record<string, string> = {
  '2.5.4.3': 'commonName',
  '2.5.4.4': 'surname',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'countryName',
  '2.5.4.7': 'localityName',
  '2.5.4.8': 'stateOrProvinceName',
  '2.5.4.9': 'streetAddress',
  '2.5.4.10': 'organizationName',
  '2.5.4.11': 'organizationalUnitName',
  '2.5.4.12': 'title',
  '2.5.4.17': 'postalCode',
  '2.5.4.42': 'givenName',
  '2.5.4.46': 'dnQualifier',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.25': 'domainComponent',
  '0.9.2342.19200300.100.1.1': 'userId',
};

const SIG_LN: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'rsassaPss',
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.3.101.112': 'ED25519',
  '1.3.101.113': 'ED448',
};

/** describe-eif's SigningCertificate object for a certificate. */
export function certificateInfo(cert: SigningCertificate): SigningCertificateInfo {
  try {
    const [tbs, sigAlg, sigValue] = children(expect(parseDer(cert.der), UNIVERSAL.SEQUENCE, 'Certificate'));
    const tbsParts = children(expect(tbs, UNIVERSAL.SEQUENCE, 'TBSCertificate'));
    // [0] version is present in v3 certificates; issuer follows serial and signature.
    const base = tbsParts[0]?.cls === 2 && tbsParts[0]?.tag === 0 ? 1 : 0;
    const issuer = expect(tbsParts[base + 2], UNIVERSAL.SEQUENCE, 'issuer');
    const names: Record<string, string> = {};
    for (const rdn of children(issuer)) {
      for (const atv of children(rdn)) {
        const [t, v] = children(atv);
        const oid = readOid(t, 'attribute type');
        if (!v) continue;
        names[ATTR_LN[oid] ?? oid] = Buffer.from(content(v)).toString('utf8');
      }
    }
    const IssuerName: Record<string, string> = {};
    for (const k of Object.keys(names).sort()) IssuerName[k] = names[k]!;
    const algOid = readOid(children(expect(sigAlg, UNIVERSAL.SEQUENCE, 'signatureAlgorithm'))[0], 'signature algorithm');
    const sig = readBitStringBytes(sigValue, 'signatureValue');
    return {
      IssuerName,
      Algorithm: SIG_LN[algOid] ?? algOid,
      NotBefore: cert.x509.validFrom,
      NotAfter: cert.x509.validTo,
      Signature: Array.from(sig, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(':'),
    };
  } catch (e) {
    if (e instanceof EifError) throw e;
    throw bad(`signing certificate: ${(e as Error).message}`, e);
  }
}
