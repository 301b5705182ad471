/**
 * Principal request signing for `enclave-signer/client` (docs/principals.md):
 * the caller's own key signs every request it sends, so the enclave — not the
 * untrusted host that carries the request — decides who is asking. The bytes
 * are those of common/auth/request.ts, produced by common/auth/client-signer.ts
 * (the same code the `enclave-signer call` CLI uses).
 *
 * The audience of a signature is the enclave's policy hash. A pinned
 * `policyHash` is the recommended setup; without it the client asks the
 * signer once (`signer_status` policy.hash). Trusting that answer is safe: a
 * host that lies about it only makes the enclave refuse our signatures (the
 * digest it recomputes under its real policy differs), it cannot make the
 * enclave accept anything we did not sign.
 */
import { KeyObject } from 'node:crypto';
import { loadPrincipalKey, principalAlgOf, signRequest, type PrincipalKey } from '../common/auth/client-signer.js';
import { PRINCIPAL_NAME_RE, type SignerAuth } from '../common/auth/request.js';

/** A principal's credentials: its name in the enclave's policy and its private key. */
export interface PrincipalCredentials {
  /** The principal's name, as the enclave's policy declares it (never "host"). */
  name: string;
  /** Its private key: PEM (PKCS#8, or SEC1 for P-256) or a node KeyObject; Ed25519 or ECDSA P-256. */
  key: string | KeyObject;
}

/** The longest validity the enclave accepts for a signed request (its verifier's limit). */
export const MAX_REQUEST_TTL_SECONDS = 300;

/** A principal ready to sign: the name checked, the key parsed once. */
export interface LoadedPrincipal {
  name: string;
  key: PrincipalKey;
}

/**
 * Checks the name and parses the key. Errors are TypeErrors that never
 * contain key material (a misconfiguration, found when the client is built).
 */
export function loadPrincipal(p: PrincipalCredentials, what = 'principal'): LoadedPrincipal {
  if (p === null || typeof p !== 'object') throw new TypeError(`enclave-signer client: ${what} must be { name, key }`);
  if (typeof p.name !== 'string' || !PRINCIPAL_NAME_RE.test(p.name) || p.name === 'host') {
    throw new TypeError(`enclave-signer client: ${what}.name must be a principal name from the enclave's policy (not "host")`);
  }
  let key: PrincipalKey;
  if (p.key instanceof KeyObject) {
    const alg = p.key.type === 'private' ? principalAlgOf(p.key) : undefined;
    if (!alg) throw new TypeError(`enclave-signer client: ${what}.key must be an Ed25519 or ECDSA P-256 private key`);
    key = { alg, privateKey: p.key };
  } else if (typeof p.key === 'string') {
    try {
      key = loadPrincipalKey(p.key);
    } catch (e) {
      // The message of loadPrincipalKey names the problem, never the key's bytes.
      throw new TypeError(`enclave-signer client: ${what}.key: ${(e as Error).message}`);
    }
  } else {
    throw new TypeError(`enclave-signer client: ${what}.key must be a PEM string or a KeyObject`);
  }
  return { name: p.name, key };
}

/** 64 lowercase hex characters (a `0x` prefix and upper case are accepted). */
export function normalizePolicyHash(h: unknown): string {
  const v = typeof h === 'string' ? h.toLowerCase().replace(/^0x/, '') : '';
  if (!/^[0-9a-f]{64}$/.test(v)) throw new TypeError('enclave-signer client: policyHash must be the SHA-256 of the enclave policy (64 hex characters; `enclave-signer policy hash FILE`)');
  return v;
}

/**
 * The audience, resolved at most once: the pinned hash, else the first
 * successful `signer_status` answer (a failed lookup is retried by the next
 * request, never cached).
 */
export function audienceResolver(pinned: string | undefined, status: () => Promise<unknown>): () => Promise<string> {
  if (pinned !== undefined) {
    const h = normalizePolicyHash(pinned);
    return () => Promise.resolve(h);
  }
  let cached: Promise<string> | undefined;
  return () => {
    cached ??= status().then((s) => {
      const hash = (s as { policy?: { hash?: unknown } } | null)?.policy?.hash;
      if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) {
        throw new TypeError('enclave-signer client: the signer does not report a policy hash (signer_status policy.hash); pass policyHash (`enclave-signer policy hash FILE`)');
      }
      return hash;
    });
    cached.catch(() => (cached = undefined));
    return cached;
  };
}

/** A fresh `signer_auth` for one attempt of one request (a new request id every time). */
export function signerAuth(p: LoadedPrincipal, audience: string, method: string, params: unknown, expiresAt?: number): SignerAuth {
  return signRequest({ key: p.key, principal: p.name, audience, method, params, ...(expiresAt !== undefined ? { expiresAt } : {}) }).auth;
}
