/**
 * The principal registry: who may sign requests and approvals, from the
 * policy's `principals` map (alg + SPKI PEM public key). It lives in the
 * enclave image with the policy, so the host cannot add a principal or swap
 * a key. `host` is reserved for the unauthenticated socket caller and can
 * never be claimed with a signature.
 *
 * The algorithm comes from the registry, never from the request: a caller
 * cannot make us verify an Ed25519 key's signature as ECDSA or vice versa.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AuthError } from '../../common/auth/errors.js';
import { fromBase64Url, type WebAuthnAssertion } from '../../common/auth/request.js';
import { principalAlgOf, type PrincipalAlg } from '../../common/auth/client-signer.js';
import { bytesEqual } from '../../common/bytes.js';

/** The unauthenticated socket caller (the same name as the policy engine's HOST_PRINCIPAL). */
export const HOST_PRINCIPAL = 'host';

export interface PrincipalEntry {
  alg: PrincipalAlg;
  /** A node KeyObject (the policy engine's compiled form) or SPKI PEM text (the document's form). */
  publicKey: KeyObject | string;
  /** Present when the policy lets the principal open sessions (./sessions.ts). */
  sessions?: { maxSeconds: number };
}

interface Registered {
  alg: PrincipalAlg;
  key: KeyObject;
  sessionMaxSeconds: number | undefined;
}

export class PrincipalRegistry {
  readonly #byName = new Map<string, Registered>();

  /** Accepts the policy's principals as a Map (compiled policy) or a plain record (the JSON document). */
  constructor(principals: ReadonlyMap<string, PrincipalEntry> | Readonly<Record<string, PrincipalEntry>>) {
    const entries = principals instanceof Map ? [...principals.entries()] : Object.entries(principals as Record<string, PrincipalEntry>);
    for (const [name, p] of entries) {
      if (name === HOST_PRINCIPAL) throw new AuthError('AUTH_MALFORMED', '"host" is the unauthenticated caller and cannot have a key');
      const key = typeof p.publicKey === 'string' ? createPublicKey({ key: p.publicKey, format: 'pem' }) : p.publicKey;
      if (key.type !== 'public' || principalAlgOf(key) !== p.alg) throw new AuthError('AUTH_MALFORMED', `principal ${name}: the key is not an ${p.alg} public key`);
      // node:crypto (OpenSSL) verifies Ed25519 against any point it can decode, small-order ones
      // (and their non-canonical encodings) included: under the identity, the all-zero key or
      // another low-order point, R = that point and S = 0 verifies for most or all messages, so
      // anyone could sign as (and approve as) that principal. No key generator makes one; refuse it
      // (review: enclave/auth/crypto-review.test.ts).
      if (p.alg === 'ed25519' && !isUsableEd25519Key(key)) throw new AuthError('AUTH_MALFORMED', `principal ${name}: the Ed25519 public key is a small-order point or a non-canonical encoding; anyone could sign for it`);
      // Approvals are counted by name, so a key names one principal (the policy validator checks
      // this too, the same way; a P-256 key has two SPKI forms, compressed and uncompressed:
      // review, enclave/auth/crypto-review.test.ts). Compared by the JWK coordinates, which are one
      // form per key. Not KeyObject.equals: across key types it leaves an OpenSSL error queued
      // that makes node's next PEM parse on this thread fail ("different key types").
      const id = keyIdentity(key);
      for (const [other, r] of this.#byName) {
        if (keyIdentity(r.key) === id) throw new AuthError('AUTH_MALFORMED', `principal ${name}: the same key as principal ${other} (a key names one principal)`);
      }
      this.#byName.set(name, { alg: p.alg, key, sessionMaxSeconds: p.sessions?.maxSeconds });
    }
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  /** Throws AUTH_UNKNOWN_PRINCIPAL unless `name` is a declared principal. */
  require(name: string): PrincipalAlg {
    const p = this.#byName.get(name);
    if (!p) throw new AuthError('AUTH_UNKNOWN_PRINCIPAL', `unknown principal ${JSON.stringify(name.slice(0, 64))}`, { hint: 'principals are declared in the enclave policy (docs/policy.md)' });
    return p.alg;
  }

  /** The longest session the policy lets `name` open; throws AUTH_SESSIONS_NOT_ALLOWED when it may open none. */
  sessionMaxSeconds(name: string): number {
    this.require(name);
    const max = this.#byName.get(name)!.sessionMaxSeconds;
    if (max === undefined) {
      throw new AuthError('AUTH_SESSIONS_NOT_ALLOWED', `the policy does not let ${name} open sessions`, { hint: 'sign every request, or give the principal "sessions": { "maxSeconds": N } in the policy (docs/policy.md)' });
    }
    return max;
  }

  /**
   * True iff `signature` (base64url) by `name`'s key covers `message`
   * (directly, or through a WebAuthn assertion for P-256 keys). Malformed
   * encodings throw AUTH_MALFORMED; a well-formed but wrong signature is false.
   */
  verify(name: string, message: Uint8Array, signature: string, webauthn?: WebAuthnAssertion): boolean {
    this.require(name);
    const p = this.#byName.get(name)!;
    const sig = fromBase64Url(signature, 'signature', 160);
    if (webauthn) {
      if (p.alg !== 'ecdsa-p256') return false;
      return verifyWebAuthn(p.key, message, sig, webauthn);
    }
    try {
      if (p.alg === 'ed25519') return sig.length === 64 && verify(null, message, p.key, sig);
      return verify('sha256', message, { key: p.key, dsaEncoding: 'der' }, sig);
    } catch {
      // Node throws on some malformed DER; that is a bad signature, not our bug.
      return false;
    }
  }
}

/** One string per public key, whatever encoding it was declared in (JWK: crv, x, y). */
export function keyIdentity(key: KeyObject): string {
  const j = key.export({ format: 'jwk' });
  return `${j.crv}:${j.x}:${j.y ?? ''}`;
}

const ED25519_P = (1n << 255n) - 19n;
/** y of the two order-8 points with x of either sign; with 0 (order 4), 1 (identity) and p − 1 (order 2), every small-order y. */
const ED25519_ORDER8_Y = 0x7a03ac9277fdc74ec6cc392cfa53202a0f67100d760b3cba4fd84d3d706a17c7n;
const ED25519_SMALL_ORDER_Y = new Set([0n, 1n, ED25519_P - 1n, ED25519_ORDER8_Y, ED25519_P - ED25519_ORDER8_Y]);

/**
 * False for an Ed25519 public key whose encoding is non-canonical (y ≥ p) or names one of the
 * eight small-order points (whatever its x sign bit): keys no honest key generation produces, and
 * under which signatures can be forged without any private key. (No import of a curve library:
 * the small-order points are five y-coordinates; enclave/auth/crypto-review.test.ts checks the
 * list against @noble/curves.)
 */
export function isUsableEd25519Key(key: KeyObject): boolean {
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') return false;
  const raw = Buffer.from(x, 'base64url');
  if (raw.length !== 32) return false;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? raw[i]! & 0x7f : raw[i]!);
  return y < ED25519_P && !ED25519_SMALL_ORDER_Y.has(y);
}

/**
 * A WebAuthn assertion over `message`: clientDataJSON must be
 * {type:"webauthn.get", challenge: base64url(SHA-256(message)), …}, the
 * authenticator must report user presence, and the P-256 signature must cover
 * authenticatorData || SHA-256(clientDataJSON). The origin and rpId are not
 * pinned here (the enclave has no web origin); the challenge binds the request.
 */
function verifyWebAuthn(key: KeyObject, message: Uint8Array, sig: Uint8Array, w: WebAuthnAssertion): boolean {
  const authData = fromBase64Url(w.authenticatorData, 'webauthn.authenticatorData', 1024);
  const clientData = fromBase64Url(w.clientDataJSON, 'webauthn.clientDataJSON', 4096);
  if (authData.length < 37) return false;
  if ((authData[32]! & 0x01) === 0) return false; // user present
  let cd: unknown;
  try {
    cd = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(clientData));
  } catch {
    return false;
  }
  if (typeof cd !== 'object' || cd === null) return false;
  const { type, challenge } = cd as { type?: unknown; challenge?: unknown };
  if (type !== 'webauthn.get' || typeof challenge !== 'string') return false;
  const expected = Buffer.from(createHash('sha256').update(message).digest()).toString('base64url');
  if (!bytesEqual(Buffer.from(challenge), Buffer.from(expected))) return false;
  const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
  try {
    return verify('sha256', signed, { key, dsaEncoding: 'der' }, sig);
  } catch {
    return false;
  }
}
