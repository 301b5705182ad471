/**
 * Just enough X.509 to verify a Nitro attestation chain: the signed TBS bytes,
 * signature algorithm, names, validity, SPKI, and the two extensions whose
 * meaning we enforce (basicConstraints, keyUsage). Unknown *critical*
 * extensions make the certificate unusable, as RFC 5280 §4.2 requires.
 */
import { createHash } from 'node:crypto';
import {
  Asn1Error,
  TagClass,
  UNIVERSAL,
  children,
  content,
  expect,
  parseDer,
  readBitStringBytes,
  readOid,
  readTime,
  whole,
  type Asn1Node,
} from '../common/der.js';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  secp384r1: '1.3.132.0.34',
  secp256r1: '1.2.840.10045.3.1.7',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
} as const;

const SIG_HASH: Record<string, 'sha256' | 'sha384' | 'sha512'> = {
  [OID.ecdsaWithSHA256]: 'sha256',
  [OID.ecdsaWithSHA384]: 'sha384',
  [OID.ecdsaWithSHA512]: 'sha512',
};

const ATTR_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
};

/** keyUsage bit positions (RFC 5280 §4.2.1.3). */
export const KeyUsage = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

export interface Certificate {
  der: Uint8Array;
  /** Uppercase hex SHA-256 of `der`. */
  fingerprint: string;
  tbs: Uint8Array;
  signatureHash: 'sha256' | 'sha384' | 'sha512';
  signature: Uint8Array;
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  spkiDer: Uint8Array;
  /** Named curve of the EC public key. */
  curve: string;
  /** basicConstraints, when present. */
  ca: boolean | undefined;
  pathLen: number | undefined;
  /** keyUsage bits as a set of positions, when the extension is present. */
  keyUsage: Set<number> | undefined;
}

export function formatName(name: Asn1Node): string {
  const parts: string[] = [];
  for (const rdn of children(name)) {
    for (const atv of children(rdn)) {
      const [t, v] = children(atv);
      const oid = readOid(t, 'attribute type');
      if (!v) throw new Asn1Error('attribute without value', atv.start);
      const label = ATTR_NAMES[oid] ?? oid;
      parts.push(`${label}=${Buffer.from(content(v)).toString('utf8')}`);
    }
  }
  return parts.join(',');
}

function algorithmOid(n: Asn1Node | undefined, what: string): string {
  const [oid, params] = children(expect(n, UNIVERSAL.SEQUENCE, what));
  const o = readOid(oid, `${what} OID`);
  // ECDSA AlgorithmIdentifiers must omit parameters (RFC 5758 §3.2).
  if (params !== undefined && SIG_HASH[o]) throw new Asn1Error(`${what} has unexpected parameters`, params.start);
  return o;
}

function bitsSet(bits: Uint8Array, unused: number): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < bits.length * 8 - unused; i++) if (bits[i >> 3]! & (0x80 >> (i & 7))) s.add(i);
  return s;
}

/** Parses a DER certificate. Throws Asn1Error (code ASN1_MALFORMED) on anything unexpected. */
export function parseCertificate(der: Uint8Array): Certificate {
  const root = parseDer(der);
  const [tbsN, sigAlgN, sigN, extra] = children(expect(root, UNIVERSAL.SEQUENCE, 'Certificate'));
  if (extra) throw new Asn1Error('extra element in Certificate', extra.start);
  const outerAlg = algorithmOid(sigAlgN, 'signatureAlgorithm');
  const signatureHash = SIG_HASH[outerAlg];
  if (!signatureHash) throw new Asn1Error(`unsupported signature algorithm ${outerAlg}`, sigAlgN!.start);
  const signature = readBitStringBytes(sigN, 'signatureValue');

  const tbsParts = children(expect(tbsN, UNIVERSAL.SEQUENCE, 'TBSCertificate'));
  let i = 0;
  const first = tbsParts[0];
  if (first && first.cls === TagClass.Context && first.tag === 0) {
    const [v] = children(first);
    const vb = content(expect(v, UNIVERSAL.INTEGER, 'version'));
    if (vb.length !== 1 || vb[0] !== 2) throw new Asn1Error('only X.509 v3 certificates are accepted', first.start);
    i++;
  } else throw new Asn1Error('only X.509 v3 certificates are accepted', tbsN!.start);
  expect(tbsParts[i++], UNIVERSAL.INTEGER, 'serialNumber');
  const innerAlg = algorithmOid(tbsParts[i++], 'TBS signature');
  if (innerAlg !== outerAlg) throw new Asn1Error('TBS signature algorithm differs from the outer one', tbsN!.start);
  const issuer = expect(tbsParts[i++], UNIVERSAL.SEQUENCE, 'issuer');
  const validity = children(expect(tbsParts[i++], UNIVERSAL.SEQUENCE, 'validity'));
  if (validity.length !== 2) throw new Asn1Error('validity must hold two times', tbsN!.start);
  const notBefore = readTime(validity[0], 'notBefore');
  const notAfter = readTime(validity[1], 'notAfter');
  const subject = expect(tbsParts[i++], UNIVERSAL.SEQUENCE, 'subject');
  const spki = expect(tbsParts[i++], UNIVERSAL.SEQUENCE, 'subjectPublicKeyInfo');
  const [spkiAlg] = children(spki);
  const [keyAlg, curveN] = children(expect(spkiAlg, UNIVERSAL.SEQUENCE, 'SPKI algorithm'));
  if (readOid(keyAlg, 'key algorithm') !== OID.ecPublicKey) throw new Asn1Error('public key is not an EC key', spki.start);
  const curve = readOid(curveN, 'named curve');

  let ca: boolean | undefined;
  let pathLen: number | undefined;
  let keyUsage: Set<number> | undefined;
  for (; i < tbsParts.length; i++) {
    const n = tbsParts[i]!;
    if (n.cls !== TagClass.Context) throw new Asn1Error('unexpected element in TBSCertificate', n.start);
    if (n.tag === 1 || n.tag === 2) continue; // issuer/subject unique IDs: ignored
    if (n.tag !== 3) throw new Asn1Error(`unexpected [${n.tag}] in TBSCertificate`, n.start);
    const [extsN] = children(n);
    const seen = new Set<string>();
    for (const ext of children(expect(extsN, UNIVERSAL.SEQUENCE, 'extensions'))) {
      const parts = children(expect(ext, UNIVERSAL.SEQUENCE, 'extension'));
      const oid = readOid(parts[0], 'extension OID');
      if (seen.has(oid)) throw new Asn1Error(`duplicate extension ${oid}`, ext.start);
      seen.add(oid);
      let critical = false;
      let valueN = parts[1];
      if (valueN && valueN.tag === UNIVERSAL.BOOLEAN && valueN.cls === TagClass.Universal) {
        critical = content(valueN)[0] === 0xff;
        valueN = parts[2];
      }
      const value = content(expect(valueN, UNIVERSAL.OCTET_STRING, 'extnValue'));
      if (oid === OID.basicConstraints) {
        const bc = children(expect(parseDer(value), UNIVERSAL.SEQUENCE, 'BasicConstraints'));
        ca = false;
        for (const f of bc) {
          if (f.tag === UNIVERSAL.BOOLEAN) ca = content(f)[0] === 0xff;
          else if (f.tag === UNIVERSAL.INTEGER) {
            const c = content(f);
            if (c.length > 2 || (c[0]! & 0x80) !== 0) throw new Asn1Error('bad pathLenConstraint', f.start);
            pathLen = c.reduce((a, b) => a * 256 + b, 0);
          }
        }
      } else if (oid === OID.keyUsage) {
        const bs = expect(parseDer(value), UNIVERSAL.BIT_STRING, 'KeyUsage');
        const c = content(bs);
        if (c.length < 1 || c[0]! > 7) throw new Asn1Error('bad KeyUsage', bs.start);
        keyUsage = bitsSet(c.subarray(1), c[0]!);
      } else if (critical) {
        throw new Asn1Error(`unsupported critical extension ${oid}`, ext.start);
      }
    }
  }

  return {
    der,
    fingerprint: createHash('sha256').update(der).digest('hex').toUpperCase(),
    tbs: whole(tbsN!),
    signatureHash,
    signature,
    issuerDer: whole(issuer),
    subjectDer: whole(subject),
    subject: formatName(subject),
    notBefore,
    notAfter,
    spkiDer: whole(spki),
    curve,
    ca,
    pathLen,
    keyUsage,
  };
}
