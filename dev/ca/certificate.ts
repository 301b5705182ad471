/**
 * A small X.509 v3 certificate builder on common/der.ts and node:crypto, for
 * the dev CA only. It writes what AWS's Nitro chain uses — ECDSA P-384 keys,
 * ecdsa-with-SHA384 signatures — plus the few extensions a TLS server
 * certificate needs. Everything is DER; the output parses with
 * attestation/x509.ts and with OpenSSL.
 */
import { createHash, createPublicKey, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { children, content, der, parseDer, tlv, UNIVERSAL, expect } from '../../common/der.js';
import { SignerError } from '../../common/errors.js';
import { OID } from '../../attestation/x509.js';

export class CertificateBuildError extends SignerError {
  constructor(message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super('DEVCA_BAD_CERT_SPEC', message, opts);
  }
}

/** RDN attribute types we write; C is a PrintableString, the rest UTF8String (as AWS's certificates do). */
export type NameAttribute = 'C' | 'ST' | 'L' | 'O' | 'OU' | 'CN';
/** A distinguished name as ordered [type, value] pairs, one attribute per RDN. */
export type DistinguishedName = readonly (readonly [NameAttribute, string])[];

const NAME_OIDS: Record<NameAttribute, string> = {
  C: '2.5.4.6',
  ST: '2.5.4.8',
  L: '2.5.4.7',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  CN: '2.5.4.3',
};

export const EXT_OID = {
  ...OID,
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** keyUsage bit positions (RFC 5280 §4.2.1.3). */
export const KEY_USAGE = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;
export type KeyUsageName = keyof typeof KEY_USAGE;

export function encodeName(dn: DistinguishedName): Uint8Array {
  if (dn.length === 0) throw new CertificateBuildError('a distinguished name needs at least one attribute');
  return der.seq(
    ...dn.map(([type, value]) => {
      if (value.length === 0 || value.length > 64) throw new CertificateBuildError(`${type} must be 1..64 characters (RFC 5280 upper bounds)`);
      if (type === 'C' && !/^[A-Z]{2}$/.test(value)) throw new CertificateBuildError('C must be a two-letter country code');
      const v = type === 'C' ? der.printable(value) : der.utf8(value);
      return der.set(der.seq(der.oid(NAME_OIDS[type]), v));
    }),
  );
}

/** One Extension: SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }. */
export function extension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  // DER forbids encoding a DEFAULT value, so a non-critical extension omits the BOOLEAN.
  return critical ? der.seq(der.oid(oid), der.bool(true), der.octets(value)) : der.seq(der.oid(oid), der.octets(value));
}

/** The SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2, method 1). */
export function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const [, bits] = children(expect(parseDer(spkiDer), UNIVERSAL.SEQUENCE, 'SubjectPublicKeyInfo'));
  const c = content(expect(bits, UNIVERSAL.BIT_STRING, 'subjectPublicKey'));
  return new Uint8Array(createHash('sha1').update(c.subarray(1)).digest());
}

/** Parses a textual IPv4/IPv6 address into its 4 or 16 network-order bytes. */
export function ipAddressBytes(ip: string): Uint8Array {
  const v = isIP(ip);
  if (v === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (v !== 6) throw new CertificateBuildError(`${JSON.stringify(ip)} is not an IP address`);
  let text = ip;
  const out = new Uint8Array(16);
  // An embedded dotted quad (::ffff:1.2.3.4) becomes two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const b = ipAddressBytes(quad[1]!);
    text = text.slice(0, quad.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

function dnsNameBytes(name: string): Uint8Array {
  const labels = name.split('.');
  const wildcard = labels[0] === '*';
  const rest = wildcard ? labels.slice(1) : labels;
  if (name.length > 253 || rest.length === 0 || !rest.every((l) => DNS_LABEL.test(l)) || (wildcard && rest.length < 2)) {
    throw new CertificateBuildError(`${JSON.stringify(name)} is not a valid DNS name for subjectAltName`);
  }
  return new Uint8Array(Buffer.from(name.toLowerCase(), 'ascii'));
}

/** Extension builders. Each returns an encoded Extension. */
export const ext = {
  basicConstraints(opts: { ca: boolean; pathLen?: number }, critical = true): Uint8Array {
    const parts: Uint8Array[] = [];
    if (opts.ca) parts.push(der.bool(true)); // cA DEFAULT FALSE: omitted when false
    if (opts.pathLen !== undefined) {
      if (!opts.ca) throw new CertificateBuildError('pathLenConstraint only makes sense on a CA');
      if (!Number.isInteger(opts.pathLen) || opts.pathLen < 0 || opts.pathLen > 16) throw new CertificateBuildError('pathLen must be 0..16');
      parts.push(der.int(opts.pathLen));
    }
    return extension(EXT_OID.basicConstraints, critical, der.seq(...parts));
  },

  keyUsage(usages: readonly KeyUsageName[], critical = true): Uint8Array {
    if (usages.length === 0) throw new CertificateBuildError('keyUsage needs at least one bit');
    const positions = usages.map((u) => KEY_USAGE[u]);
    const highest = Math.max(...positions);
    const bytes = new Uint8Array((highest >> 3) + 1);
    for (const p of positions) bytes[p >> 3]! |= 0x80 >> (p & 7);
    // DER named bit lists drop trailing zero bits (X.680 §22.7): unused = bits after the highest set one.
    const unused = 7 - (highest & 7);
    return extension(EXT_OID.keyUsage, critical, tlv(0x03, Uint8Array.from([unused, ...bytes])));
  },

  subjectKeyIdentifier(spkiDer: Uint8Array): Uint8Array {
    return extension(EXT_OID.subjectKeyIdentifier, false, der.octets(keyIdentifier(spkiDer)));
  },

  authorityKeyIdentifier(issuerSpkiDer: Uint8Array): Uint8Array {
    return extension(EXT_OID.authorityKeyIdentifier, false, der.seq(der.implicitPrim(0, keyIdentifier(issuerSpkiDer))));
  },

  extKeyUsage(oids: readonly string[], critical = false): Uint8Array {
    if (oids.length === 0) throw new CertificateBuildError('extKeyUsage needs at least one purpose');
    return extension(EXT_OID.extKeyUsage, critical, der.seq(...oids.map((o) => der.oid(o))));
  },

  /** dNSName [2] and iPAddress [7] entries; a name that parses as an IP address becomes an iPAddress. */
  subjectAltName(names: readonly string[], critical = false): Uint8Array {
    if (names.length === 0) throw new CertificateBuildError('subjectAltName needs at least one name');
    const general = names.map((n) => (isIP(n) ? der.implicitPrim(7, ipAddressBytes(n)) : der.implicitPrim(2, dnsNameBytes(n))));
    return extension(EXT_OID.subjectAltName, critical, der.seq(...general));
  },
};

/** A positive 128-bit serial (RFC 5280 allows up to 20 octets; CAs should use ≥ 64 random bits). */
export function randomSerial(): Uint8Array {
  const b = new Uint8Array(randomBytes(16));
  b[0] = (b[0]! & 0x7f) | 0x40; // positive, and exactly 16 bytes (no leading zero to strip)
  return b;
}

export interface CertificateSpec {
  /** Unsigned big-endian serial; default 128 random bits. */
  serial?: Uint8Array;
  /** Issuer name: an RDN list, or the DER of the issuer certificate's subject (byte-exact chaining). */
  issuer: DistinguishedName | Uint8Array;
  subject: DistinguishedName;
  notBefore: Date;
  notAfter: Date;
  /** The subject's key (public, or private from which the public half is taken). */
  subjectKey: KeyObject;
  /** The issuer's P-384 private key. */
  signingKey: KeyObject;
  /** Encoded Extensions (see `ext`), in the order they should appear. */
  extensions: readonly Uint8Array[];
}

export function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

function requireP384(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new CertificateBuildError(`${what} must be an ECDSA P-384 key`);
  }
}

/** Builds and signs a certificate with ecdsa-with-SHA384 (DER signature). Returns its DER. */
export function buildCertificate(spec: CertificateSpec): Uint8Array {
  requireP384(spec.signingKey, 'signing key');
  if (spec.signingKey.type !== 'private') throw new CertificateBuildError('signing key must be a private key');
  if (!(spec.notBefore.getTime() < spec.notAfter.getTime())) throw new CertificateBuildError('notBefore must precede notAfter');
  const serial = spec.serial ?? randomSerial();
  if (serial.length === 0 || serial.length > 20 || serial.every((b) => b === 0)) throw new CertificateBuildError('serial must be 1..20 bytes and non-zero');
  const sigAlg = der.seq(der.oid(EXT_OID.ecdsaWithSHA384));
  const issuer = spec.issuer instanceof Uint8Array ? spec.issuer : encodeName(spec.issuer);
  const tbsParts = [
    der.explicit(0, der.int(2)), // v3
    der.int(serial),
    sigAlg,
    issuer,
    der.seq(der.time(spec.notBefore), der.time(spec.notAfter)),
    encodeName(spec.subject),
    spkiOf(spec.subjectKey),
  ];
  if (spec.extensions.length > 0) tbsParts.push(der.explicit(3, der.seq(...spec.extensions)));
  const tbs = der.seq(...tbsParts);
  const signature = nodeSign('sha384', tbs, { key: spec.signingKey, dsaEncoding: 'der' });
  return der.seq(tbs, sigAlg, der.bits(new Uint8Array(signature)));
}
