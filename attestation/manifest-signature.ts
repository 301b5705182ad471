/**
 * Signed PCR manifests: `{ manifest, signature: { alg, keyId, publicKey, value } }`.
 *
 * The signature covers canonicalBytes(manifest) (manifest-json.ts): RFC 8785
 * style sorted-key JSON in UTF-8. `alg` is ES384 (P-384, SHA-384, raw r‖s,
 * 96 bytes — as JWS and COSE encode it) or Ed25519 (64 bytes). `keyId` is the
 * lowercase hex SHA-256 of the signer's SubjectPublicKeyInfo DER, and
 * `publicKey` is that DER in base64.
 *
 * Trust never comes from the file: the embedded key is only a convenience
 * and is used only when its keyId equals one the caller trusts.
 */
import { createHash, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { AttestationError } from './errors.js';
import { canonicalBytes, parseStrictJson, parseStrictJsonBytes } from './manifest-json.js';
import { parseManifest, type ManifestPolicy, type PcrManifest } from './manifest-format.js';

export type ManifestSignatureAlg = 'ES384' | 'Ed25519';

export interface ManifestSignature {
  alg: ManifestSignatureAlg;
  /** SHA-256 of the signer's SPKI DER, 64 lowercase hex. */
  keyId: string;
  /** The signer's SPKI DER, standard base64 with padding. */
  publicKey: string;
  /** The signature, standard base64 with padding. */
  value: string;
}

export interface SignedManifest {
  manifest: PcrManifest;
  signature: ManifestSignature;
}

/**
 * A key the verifier trusts: a public KeyObject (a private one is reduced to
 * its public half), PEM text of a public key / certificate / private key, or a
 * keyId (64 hex characters).
 */
export type TrustedManifestKey = KeyObject | string;

/** Largest signed manifest we read; real ones are ~1–2 KiB. */
export const MAX_SIGNED_MANIFEST_BYTES = 64 * 1024;

const SIG_LEN: Record<ManifestSignatureAlg, number> = { ES384: 96, Ed25519: 64 };
const KEY_ID = /^[0-9a-f]{64}$/;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function fail(message: string, opts: { cause?: unknown; hint?: string } = {}): never {
  throw new AttestationError('ATTEST_MANIFEST', 'manifest', message, opts);
}

function spkiDer(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

/** keyId of a key: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER. */
export function manifestKeyId(key: KeyObject): string {
  if (key.type === 'secret') fail('a manifest key must be an asymmetric key');
  return createHash('sha256').update(spkiDer(key)).digest('hex');
}

/** The manifest algorithm a key signs with, or an error for any other key type. */
export function manifestAlgOf(key: KeyObject): ManifestSignatureAlg {
  if (key.asymmetricKeyType === 'ed25519') return 'Ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1') return 'ES384';
  const what = key.asymmetricKeyType === 'ec' ? `EC key on ${key.asymmetricKeyDetails?.namedCurve ?? 'an unknown curve'}` : `${key.asymmetricKeyType ?? key.type} key`;
  return fail(`unsupported manifest key: ${what}`, { hint: 'manifest keys are P-384 (ES384) or Ed25519; create one with `enclave-signer manifest keygen`' });
}

function rawSign(alg: ManifestSignatureAlg, data: Uint8Array, key: KeyObject): Uint8Array {
  return new Uint8Array(alg === 'ES384' ? nodeSign('sha384', data, { key, dsaEncoding: 'ieee-p1363' }) : nodeSign(null, data, key));
}

function rawVerify(alg: ManifestSignatureAlg, data: Uint8Array, key: KeyObject, sig: Uint8Array): boolean {
  try {
    return alg === 'ES384' ? nodeVerify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig) : nodeVerify(null, data, key, sig);
  } catch {
    return false;
  }
}

/** Signs a manifest (validated first). The private key never leaves node:crypto's KeyObject. */
export function signManifest(manifest: PcrManifest, privateKey: KeyObject, policy: ManifestPolicy = {}): SignedManifest {
  if (privateKey.type !== 'private') fail('signManifest needs a private key');
  const m = parseManifest(manifest, policy);
  const alg = manifestAlgOf(privateKey);
  const data = canonicalBytes(m);
  const sig = rawSign(alg, data, privateKey);
  const pub = createPublicKey(privateKey);
  // Check our own signature before publishing it: a faulty signer must not emit a bad artifact.
  if (!rawVerify(alg, data, pub, sig)) fail('internal error: the new signature does not verify');
  const der = spkiDer(pub);
  return {
    manifest: m,
    signature: {
      alg,
      keyId: createHash('sha256').update(der).digest('hex'),
      publicKey: Buffer.from(der).toString('base64'),
      value: Buffer.from(sig).toString('base64'),
    },
  };
}

function base64(v: unknown, path: string, max: number): Uint8Array {
  if (typeof v !== 'string' || v.length === 0) fail(`${path}: expected base64 text`);
  if (v.length > max) fail(`${path}: longer than ${max} characters`);
  if (!B64.test(v)) fail(`${path}: not canonical standard base64 (A–Z a–z 0–9 + /, with = padding)`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v) as object | null);
}

function exactKeys(v: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(v)) fail(`${path}: expected an object`);
  for (const k of Object.keys(v)) if (!keys.includes(k)) fail(`${path}: unknown field ${JSON.stringify(k.slice(0, 64))} (allowed: ${keys.join(', ')})`);
  for (const k of keys) if (!Object.hasOwn(v, k)) fail(`${path}: missing field "${k}"`);
  return v;
}

/** Reads a signed manifest from JSON text/bytes (strict: duplicate keys rejected) or an already-parsed value. */
function toValue(input: unknown): unknown {
  if (typeof input === 'string') {
    if (input.length > MAX_SIGNED_MANIFEST_BYTES) fail(`signed manifest is larger than ${MAX_SIGNED_MANIFEST_BYTES} bytes`);
    return parseStrictJson(input);
  }
  if (input instanceof Uint8Array) {
    if (input.length > MAX_SIGNED_MANIFEST_BYTES) fail(`signed manifest is larger than ${MAX_SIGNED_MANIFEST_BYTES} bytes`);
    return parseStrictJsonBytes(input);
  }
  return input;
}

/**
 * Parses the envelope and the manifest's structure. Checks nothing about
 * trust: use verifySignedManifest for that. (Exported for tools that display.)
 */
export function parseSignedManifest(input: unknown, policy: ManifestPolicy = {}): SignedManifest {
  const top = exactKeys(toValue(input), 'signed manifest', ['manifest', 'signature']);
  const s = exactKeys(top.signature, 'signature', ['alg', 'keyId', 'publicKey', 'value']);
  if (s.alg !== 'ES384' && s.alg !== 'Ed25519') fail(`signature.alg: expected "ES384" or "Ed25519", got ${JSON.stringify(s.alg)}`);
  if (typeof s.keyId !== 'string' || !KEY_ID.test(s.keyId)) fail('signature.keyId: expected 64 lowercase hex characters (SHA-256 of the SPKI DER)');
  base64(s.publicKey, 'signature.publicKey', 2048);
  const sig = base64(s.value, 'signature.value', 256);
  if (sig.length !== SIG_LEN[s.alg]) fail(`signature.value: ${s.alg} signatures are ${SIG_LEN[s.alg]} bytes, got ${sig.length}`);
  return {
    manifest: parseManifest(top.manifest, policy),
    signature: { alg: s.alg, keyId: s.keyId, publicKey: s.publicKey as string, value: s.value as string },
  };
}

interface Trusted {
  keyId: string;
  key: KeyObject | undefined;
}

function trustedOf(k: TrustedManifestKey, i: number): Trusted {
  if (typeof k === 'string') {
    const t = k.trim();
    if (/^[0-9a-fA-F]{64}$/.test(t)) return { keyId: t.toLowerCase(), key: undefined };
    if (t.startsWith('-----BEGIN')) {
      let key: KeyObject;
      try {
        key = createPublicKey(t);
      } catch (e) {
        return fail(`trusted key #${i + 1} is not a readable PEM public key`, { cause: e });
      }
      return { keyId: manifestKeyId(key), key };
    }
    return fail(`trusted key #${i + 1} is neither PEM text nor a 64-hex keyId`);
  }
  if (k === null || typeof k !== 'object' || typeof (k as KeyObject).export !== 'function') fail(`trusted key #${i + 1} is not a KeyObject`);
  const pub = k.type === 'private' ? createPublicKey(k) : k;
  return { keyId: manifestKeyId(pub), key: pub };
}

export interface VerifiedManifest {
  manifest: PcrManifest;
  keyId: string;
  alg: ManifestSignatureAlg;
}

/** verifySignedManifest, also reporting which trusted key signed and with what algorithm. */
export function verifySignedManifestDetailed(signed: unknown, trustedKeys: readonly TrustedManifestKey[], policy: ManifestPolicy = {}): VerifiedManifest {
  try {
    if (!Array.isArray(trustedKeys) || trustedKeys.length === 0) {
      fail('no trusted manifest keys were given: a signature proves nothing without a key you trust', { hint: 'pass the release public key (--manifest-key pub.pem)' });
    }
    const trusted = trustedKeys.map(trustedOf);
    const s = parseSignedManifest(signed, policy);
    const { alg, keyId } = s.signature;

    // The embedded key must be exactly the key its keyId names (canonical DER).
    const der = new Uint8Array(Buffer.from(s.signature.publicKey, 'base64'));
    let embedded: KeyObject;
    try {
      embedded = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
    } catch (e) {
      return fail('signature.publicKey is not a SubjectPublicKeyInfo DER key', { cause: e });
    }
    if (!Buffer.from(spkiDer(embedded)).equals(Buffer.from(der))) fail('signature.publicKey is not in canonical DER form');
    if (createHash('sha256').update(der).digest('hex') !== keyId) fail('signature.keyId does not match signature.publicKey');
    if (manifestAlgOf(embedded) !== alg) fail(`signature.alg is ${alg} but the embedded key is ${manifestAlgOf(embedded)}`);

    const match = trusted.find((t) => t.keyId === keyId);
    if (!match) {
      fail(`manifest is signed by key ${keyId}, which is not a trusted key (trusted: ${trusted.map((t) => t.keyId).join(', ')})`, {
        hint: 'verify against the release key you obtained out of band, never the key inside the file',
      });
    }
    // A trusted KeyObject is what we verify with; a trusted keyId lets us use the embedded key, whose hash it pins.
    const key = match.key ?? embedded;
    const sig = new Uint8Array(Buffer.from(s.signature.value, 'base64'));
    if (!rawVerify(alg, canonicalBytes(s.manifest), key, sig)) {
      fail('manifest signature does not verify: the manifest was changed after signing, or signed by another key', {
        hint: 'obtain the manifest again from its publisher',
      });
    }
    return { manifest: s.manifest, keyId, alg };
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    throw new AttestationError('ATTEST_MANIFEST', 'manifest', `signed manifest could not be processed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

/**
 * Verifies a signed manifest offline against keys the caller trusts and
 * returns the validated manifest. Accepts JSON text, UTF-8 bytes, or a parsed
 * value. Throws AttestationError ATTEST_MANIFEST (check 'manifest').
 */
export function verifySignedManifest(signed: unknown, trustedKeys: readonly TrustedManifestKey[], policy: ManifestPolicy = {}): PcrManifest {
  return verifySignedManifestDetailed(signed, trustedKeys, policy).manifest;
}
