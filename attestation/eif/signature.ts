/**
 * The signature section of a signed EIF (nitro-cli `--signing-certificate`
 * / `--private-key`, aws-nitro-enclaves-image-format src/utils/mod.rs).
 *
 * Bytes, as serde_cbor writes `Vec<PcrSignature>`:
 *   [ { "signing_certificate": [u8, …],   ← the PEM file's bytes
 *       "signature":           [u8, …] } ] ← an untagged COSE_Sign1
 * Both byte strings are CBOR *arrays of small unsigned integers* (serde's
 * Vec<u8>), not CBOR byte strings.
 *
 * The COSE payload is serde_cbor of PcrInfo:
 *   { "register_index": 0, "register_value": [48 × u8] }  (PCR0, again an array)
 * with protected header {1: -35} (ES384 for a P-384 key) and an empty
 * unprotected map. nitro-cli checks it by re-encoding that payload from the
 * PCR0 it measured and comparing bytes, so we do too.
 */
import { createPrivateKey, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { p384 } from '@noble/curves/nist.js';
import { bytesEqual, toHex, wipe } from '../../common/bytes.js';
import { decodeCbor, encodeCbor, type CborValue } from '../../common/cbor.js';
import { parseCoseSign1, sigStructure, ES384_PROTECTED_HEADER, type CoseSign1 } from '../cose.js';
import { readSigningCertificate, type SigningCertificate } from './certificate.js';
import { EifError } from './errors.js';

export interface EifPcrSignature {
  certificate: SigningCertificate;
  /** The COSE_Sign1 bytes. */
  cose: Uint8Array;
}

function bad(message: string, cause?: unknown, hint?: string): EifError {
  return new EifError('EIF_BAD_SIGNATURE', message, { ...(cause === undefined ? {} : { cause }), ...(hint === undefined ? {} : { hint }) });
}

/** serde's Vec<u8>: a CBOR array whose items are integers 0..255. */
function u8Array(v: CborValue, what: string): Uint8Array {
  if (!Array.isArray(v)) throw bad(`${what} must be a CBOR array of bytes (serde Vec<u8>), got ${v instanceof Uint8Array ? 'a byte string' : typeof v}`);
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 255) throw bad(`${what}[${i}] is not a byte`);
    out[i] = x;
  }
  return out;
}

/** Decodes the section (structure and certificate; the signature is checked by verifyPcr0Signature). */
export function decodeSignatureSection(data: Uint8Array): EifPcrSignature {
  let top: CborValue;
  try {
    // Arrays here hold one item per byte: a certificate PEM can be a few KiB.
    top = decodeCbor(data, { maxItems: 1 << 20, allowIndefinite: false });
  } catch (e) {
    throw bad(`signature section is not CBOR: ${(e as Error).message}`, e);
  }
  if (!Array.isArray(top)) throw bad('signature section must be a CBOR array of PCR signatures');
  if (top.length !== 1) throw bad(`signature section holds ${top.length} PCR signatures; EIF v4 defines exactly one (PCR0)`);
  const entry = top[0];
  if (!(entry instanceof Map)) throw bad('PCR signature must be a CBOR map');
  const keys = [...entry.keys()];
  if (keys.length !== 2 || !entry.has('signing_certificate') || !entry.has('signature')) {
    throw bad(`PCR signature must have exactly the fields signing_certificate and signature, has ${keys.map((k) => JSON.stringify(String(k))).join(', ')}`);
  }
  const pem = u8Array(entry.get('signing_certificate'), 'signing_certificate');
  const cose = u8Array(entry.get('signature'), 'signature');
  return { certificate: readSigningCertificate(pem), cose };
}

/** serde_cbor of PcrInfo { register_index, register_value } — the signed payload. */
export function pcrSignaturePayload(index: number, value: Uint8Array): Uint8Array {
  return encodeCbor(new Map<string, CborValue>([['register_index', index], ['register_value', Array.from(value)]]));
}

/** serde_cbor of Vec<PcrSignature> with one entry. */
export function encodeSignatureSection(certificatePem: Uint8Array, cose: Uint8Array): Uint8Array {
  return encodeCbor([new Map<string, CborValue>([['signing_certificate', Array.from(certificatePem)], ['signature', Array.from(cose)]])]);
}

const COSE_ALGS: Record<number, { name: string; hash: string; curve: string; sigLen: number }> = {
  [-7]: { name: 'ES256', hash: 'sha256', curve: 'prime256v1', sigLen: 64 },
  [-35]: { name: 'ES384', hash: 'sha384', curve: 'secp384r1', sigLen: 96 },
  [-36]: { name: 'ES512', hash: 'sha512', curve: 'secp521r1', sigLen: 132 },
};

function describePayload(payload: Uint8Array): string {
  try {
    const v = decodeCbor(payload);
    if (v instanceof Map) {
      const idx = v.get('register_index');
      const val = v.get('register_value');
      const hex = Array.isArray(val) && val.every((x) => typeof x === 'number' && x >= 0 && x < 256) ? toHex(Uint8Array.from(val as number[])) : '?';
      return `register_index ${String(idx)}, register_value ${hex}`;
    }
  } catch {
    /* fall through */
  }
  return `${payload.length} undecodable bytes`;
}

export interface VerifyPcr0Options {
  /** Also require the certificate to be valid at this time (nitro-cli does so when it runs an image). */
  at?: Date;
}

/**
 * Verifies the COSE_Sign1 with the certificate's key and that it signs
 * exactly (register_index 0, register_value = pcr0). Throws EIF_BAD_SIGNATURE.
 */
export function verifyPcr0Signature(sig: EifPcrSignature, pcr0: Uint8Array, opts: VerifyPcr0Options = {}): void {
  let cose: CoseSign1;
  try {
    cose = parseCoseSign1(sig.cose);
  } catch (e) {
    throw bad(`signature is not a COSE_Sign1: ${(e as Error).message}`, e);
  }
  let prot: CborValue;
  try {
    prot = decodeCbor(cose.protectedHeader);
  } catch (e) {
    throw bad(`COSE protected header is not CBOR: ${(e as Error).message}`, e);
  }
  const algId = prot instanceof Map ? prot.get(1) : undefined;
  const alg = typeof algId === 'number' ? COSE_ALGS[algId] : undefined;
  if (!alg) throw bad(`COSE algorithm ${String(algId)} is not ES256, ES384 or ES512`);
  const key = sig.certificate.x509.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== alg.curve) {
    throw bad(`COSE algorithm ${alg.name} does not fit the certificate's ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''} key`.trimEnd());
  }
  if (cose.signature.length !== alg.sigLen) throw bad(`${alg.name} signature must be ${alg.sigLen} bytes, is ${cose.signature.length}`);
  let ok: boolean;
  try {
    ok = nodeVerify(alg.hash, sigStructure(cose.protectedHeader, cose.payload), { key, dsaEncoding: 'ieee-p1363' }, cose.signature);
  } catch (e) {
    throw bad(`COSE signature could not be checked: ${(e as Error).message}`, e);
  }
  if (!ok) throw bad("the COSE signature does not verify with the signing certificate's key");
  const expected = pcrSignaturePayload(0, pcr0);
  if (!bytesEqual(cose.payload, expected)) {
    throw bad(`the signature covers ${describePayload(cose.payload)}, but the image measures PCR0 = ${toHex(pcr0)}`, undefined, 'the image was changed after it was signed');
  }
  if (opts.at) {
    const t = opts.at.getTime();
    const from = new Date(sig.certificate.x509.validFrom).getTime();
    const to = new Date(sig.certificate.x509.validTo).getTime();
    if (t < from || t > to) throw bad(`the signing certificate is not valid at ${opts.at.toISOString()} (valid ${sig.certificate.x509.validFrom} to ${sig.certificate.x509.validTo})`);
  }
}

/**
 * The builder's side: signs PCR0 with a P-384 key the way nitro-cli does and
 * returns the section bytes. The certificate must carry the key's public half.
 */
export function signPcr0(pcr0: Uint8Array, certificatePem: Uint8Array | string, privateKeyPem: string | KeyObject): Uint8Array {
  const pem = typeof certificatePem === 'string' ? new Uint8Array(Buffer.from(certificatePem, 'utf8')) : certificatePem;
  let cert: SigningCertificate;
  try {
    cert = readSigningCertificate(pem);
  } catch (e) {
    throw new EifError('EIF_INPUT', `signing certificate: ${(e as Error).message}`, { cause: e });
  }
  let key: KeyObject;
  try {
    key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  } catch (e) {
    throw new EifError('EIF_INPUT', 'signing key is not a readable private key (PEM)', { cause: e });
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new EifError('EIF_INPUT', 'the EIF signing key must be an EC P-384 private key (ES384)', { hint: 'openssl ecparam -name secp384r1 -genkey -noout -out key.pem' });
  }
  const certSpki = cert.x509.publicKey.export({ type: 'spki', format: 'der' });
  const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(keySpki)) throw new EifError('EIF_INPUT', 'the signing certificate does not hold the public half of the signing key');
  const payload = pcrSignaturePayload(0, pcr0);
  // Deterministic ECDSA (RFC 6979) so that signing the same image twice gives
  // the same bytes: a signed build stays byte-for-byte reproducible.
  const d = new Uint8Array(Buffer.from(key.export({ format: 'jwk' }).d ?? '', 'base64url'));
  let signature: Uint8Array;
  try {
    signature = p384.sign(sigStructure(ES384_PROTECTED_HEADER, payload), d, { prehash: true, lowS: false, extraEntropy: false });
  } finally {
    wipe(d);
  }
  const cose = encodeCbor([ES384_PROTECTED_HEADER, new Map(), payload, signature]);
  const section = encodeSignatureSection(pem, cose);
  // Check our own output before it goes into an image.
  verifyPcr0Signature(decodeSignatureSection(section), pcr0);
  return section;
}
