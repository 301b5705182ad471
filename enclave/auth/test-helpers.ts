/** Principal keys for the auth tests: generated once per test process (no secrets in the repo). */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { loadPrincipalKey, type PrincipalAlg, type PrincipalKey } from '../../common/auth/client-signer.js';
import { PrincipalRegistry } from './principals.js';

export const AUDIENCE = 'a'.repeat(64);

export function newPrincipalKey(alg: PrincipalAlg): { key: PrincipalKey; publicPem: string } {
  const { privateKey, publicKey } = alg === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: loadPrincipalKey(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

/** backend (ed25519), alice (p256), bob (ed25519), carol (p256), and an outsider key no principal has. */
export function testPrincipals(): { keys: Record<'backend' | 'alice' | 'bob' | 'carol' | 'outsider', PrincipalKey>; registry: PrincipalRegistry; document: Record<string, { alg: PrincipalAlg; publicKey: string }> } {
  const algs = { backend: 'ed25519', alice: 'ecdsa-p256', bob: 'ed25519', carol: 'ecdsa-p256', outsider: 'ed25519' } as const;
  const keys = {} as Record<keyof typeof algs, PrincipalKey>;
  const document: Record<string, { alg: PrincipalAlg; publicKey: string }> = {};
  for (const [name, alg] of Object.entries(algs) as Array<[keyof typeof algs, PrincipalAlg]>) {
    const k = newPrincipalKey(alg);
    keys[name] = k.key;
    if (name !== 'outsider') document[name] = { alg, publicKey: k.publicPem };
  }
  return { keys, registry: new PrincipalRegistry(document), document };
}

/** The typed error code `f` throws, or undefined when it does not throw. */
export function errorCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/**
 * A fresh P-256 public key and the same key in its other SPKI form (the point compressed): two
 * byte-different declarations of one key, for the "a key names one principal" checks.
 */
export function p256KeyInTwoForms(): { uncompressed: KeyObject; compressed: KeyObject } {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  // SPKI header of a 33-byte P-256 point (id-ecPublicKey, prime256v1), then 02/03 ‖ x.
  const der = Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), Buffer.from([y[31]! & 1 ? 3 : 2]), x]);
  return { uncompressed: publicKey, compressed: createPublicKey({ key: der, format: 'der', type: 'spki' }) };
}
