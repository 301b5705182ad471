/** Principal keys for the auth tests: generated once per test process (no secrets in the repo). */
import { generateKeyPairSync } from 'node:crypto';
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
