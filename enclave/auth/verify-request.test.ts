import { createPublicKey } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signRequest } from '../../common/auth/client-signer.js';
import { requestDigest, SIGNER_AUTH_MEMBER } from '../../common/auth/request.js';
import { PrincipalRegistry } from './principals.js';
import { ReplayCache } from './replay-cache.js';
import { AUDIENCE, testPrincipals, errorCode } from './test-helpers.js';
import { RequestVerifier } from './verify-request.js';

const { keys, registry } = testPrincipals();
const T0 = 1_800_000_000;
const TX = [{ from: '0x' + '11'.repeat(20), to: '0x' + '22'.repeat(20), value: '0x1', nonce: '0x0', gas: '0x5208', chainId: '0x1' }];

function verifier(now = T0, extra: Partial<ConstructorParameters<typeof RequestVerifier>[0]> = {}): RequestVerifier {
  return new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, ...extra });
}
function signed(principal: 'backend' | 'alice' | 'bob' | 'carol', opts: Partial<Parameters<typeof signRequest>[0]> = {}) {
  return signRequest({ key: keys[principal], principal, audience: AUDIENCE, method: 'eth_signTransaction', params: TX, now: T0, ...opts }).auth;
}
const code = errorCode;

describe('signed requests: the enclave verifier', () => {
  it('no signer_auth: the caller is the unauthenticated principal host', () => {
    const r = verifier().verify('eth_signTransaction', TX, undefined);
    expect(r).toMatchObject({ principal: 'host', authenticated: false, requestDigest: requestDigest(AUDIENCE, 'eth_signTransaction', TX) });
  });

  for (const p of ['backend', 'alice'] as const) {
    it(`a request signed by ${p} (${keys[p].alg}) authenticates as ${p}`, () => {
      const r = verifier().verify('eth_signTransaction', TX, signed(p));
      expect(r.principal).toBe(p);
      expect(r.authenticated).toBe(true);
    });
  }

  it('a WebAuthn-shaped P-256 assertion (challenge = SHA-256 of the message) authenticates', () => {
    const auth = signed('carol', { webauthn: { rpId: 'custody.example' } });
    expect(auth.webauthn).toBeDefined();
    expect(verifier().verify('eth_signTransaction', TX, auth).principal).toBe('carol');
  });

  it('hostile host: params altered after signing (another recipient) → AUTH_BAD_SIGNATURE', () => {
    const auth = signed('backend');
    const altered = [{ ...TX[0], to: '0x' + '66'.repeat(20) }];
    expect(code(() => verifier().verify('eth_signTransaction', altered, auth))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('hostile host: the method swapped after signing → AUTH_BAD_SIGNATURE', () => {
    expect(code(() => verifier().verify('eth_sign', TX, signed('backend')))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('hostile host: the signature relabelled as another principal → AUTH_BAD_SIGNATURE', () => {
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...signed('backend'), principal: 'bob' }))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('hostile host: the expiry extended after signing → AUTH_BAD_SIGNATURE', () => {
    const auth = signed('backend');
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...auth, expiresAt: auth.expiresAt + 10 }))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('a request signed for another policy (audience) is refused', () => {
    const auth = signRequest({ key: keys.backend, principal: 'backend', audience: 'b'.repeat(64), method: 'eth_signTransaction', params: TX, now: T0 }).auth;
    expect(code(() => verifier().verify('eth_signTransaction', TX, auth))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('a key that is not the principal’s → AUTH_BAD_SIGNATURE', () => {
    const auth = signRequest({ key: keys.outsider, principal: 'backend', audience: AUDIENCE, method: 'eth_signTransaction', params: TX, now: T0 }).auth;
    expect(code(() => verifier().verify('eth_signTransaction', TX, auth))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('hostile host: replay within expiry → AUTH_REPLAYED; the first request still counted once', () => {
    const v = verifier();
    const auth = signed('backend');
    v.verify('eth_signTransaction', TX, auth);
    expect(code(() => v.verify('eth_signTransaction', TX, auth))).toBe('AUTH_REPLAYED');
    expect(v.replayCache.size).toBe(1);
  });

  it('a forged request does not burn the request id of a real one', () => {
    const v = verifier();
    const auth = signed('backend');
    expect(code(() => v.verify('eth_signTransaction', TX, { ...auth, signature: signed('bob').signature }))).toBe('AUTH_BAD_SIGNATURE');
    expect(v.verify('eth_signTransaction', TX, auth).principal).toBe('backend');
  });

  it('expired by the enclave clock → AUTH_EXPIRED (the expiry is exclusive)', () => {
    const auth = signed('backend', { ttlSeconds: 30 });
    expect(code(() => verifier(T0 + 30).verify('eth_signTransaction', TX, auth))).toBe('AUTH_EXPIRED');
    expect(verifier(T0 + 29).verify('eth_signTransaction', TX, auth).authenticated).toBe(true);
  });

  it('expiry further than the maximum → AUTH_EXPIRY_TOO_FAR (keeps the replay cache bounded)', () => {
    expect(code(() => verifier().verify('eth_signTransaction', TX, signed('backend', { ttlSeconds: 301 })))).toBe('AUTH_EXPIRY_TOO_FAR');
    expect(verifier().verify('eth_signTransaction', TX, signed('backend', { ttlSeconds: 300 })).authenticated).toBe(true);
  });

  it('restart barrier: a request that may predate the restart → AUTH_BEFORE_RESTART', () => {
    let now = T0;
    const v = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => now, restartBarrier: T0 + 300 });
    expect(code(() => v.verify('eth_signTransaction', TX, signed('backend', { ttlSeconds: 60 })))).toBe('AUTH_BEFORE_RESTART');
    now = T0 + 1;
    expect(v.verify('eth_signTransaction', TX, signed('backend', { ttlSeconds: 300, now: T0 + 1 })).authenticated).toBe(true);
  });

  it('unknown principal → AUTH_UNKNOWN_PRINCIPAL; claiming "host" with a signature too', () => {
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...signed('backend'), principal: 'mallory' }))).toBe('AUTH_UNKNOWN_PRINCIPAL');
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...signed('backend'), principal: 'host' }))).toBe('AUTH_UNKNOWN_PRINCIPAL');
  });

  it('a malformed envelope never falls back to host: AUTH_MALFORMED', () => {
    const good = signed('backend');
    const bad: unknown[] = [
      null,
      'x',
      [],
      {},
      { ...good, v: 2 },
      { ...good, extra: 1 },
      { ...good, requestId: 'short' },
      { ...good, requestId: 'has space in it' },
      { ...good, expiresAt: 1.5 },
      { ...good, expiresAt: '1800000060' },
      { ...good, signature: good.signature + '=' },
      { ...good, signature: 'a+b/' },
      { ...good, signature: 'x'.repeat(400) },
      { ...good, webauthn: { authenticatorData: 'AA' } },
    ];
    for (const b of bad) expect(code(() => verifier().verify('eth_signTransaction', TX, b)), JSON.stringify(b)).toBe('AUTH_MALFORMED');
  });

  it('params that are not JSON (a lone surrogate, undefined, bytes) are refused, not guessed at; fractional numbers are JCS-canonical', () => {
    expect(code(() => verifier().verify('eth_signTransaction', ['\ud800'], undefined))).toBe('AUTH_MALFORMED');
    expect(code(() => verifier().verify('eth_signTransaction', [{ a: undefined }], undefined))).toBe('AUTH_MALFORMED');
    expect(code(() => verifier().verify('eth_signTransaction', [new Uint8Array(1)], undefined))).toBe('AUTH_MALFORMED');
    expect(code(() => verifier().verify('eth_signTransaction', [Number.NaN], undefined))).toBe('AUTH_MALFORMED');
    // RFC 8785 number form: what both sides hold after JSON.parse is the same double.
    expect(requestDigest(AUDIENCE, 'm', [1.5, 1e21, -0, 0.1])).toBe(requestDigest(AUDIENCE, 'm', JSON.parse('[1.50, 1E21, 0, 1e-1]')));
    const auth = signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: 'm', params: [1.5], now: T0 }).auth;
    expect(verifier().verify('m', JSON.parse('[15e-1]'), auth).principal).toBe('backend');
  });

  it('the compiled policy form (a Map of KeyObjects, as enclave/policy compiles it) is accepted', () => {
    const compiled = new Map(Object.entries(testPrincipals().document).map(([n, p]) => [n, { name: n, alg: p.alg, publicKey: createPublicKey(p.publicKey) }]));
    expect(new PrincipalRegistry(compiled).names()).toEqual(['backend', 'alice', 'bob', 'carol']);
  });

  it('WebAuthn: a challenge for another message, or no user presence, is a bad signature', () => {
    const a = signed('carol', { webauthn: {} });
    const other = signed('carol', { webauthn: {}, requestId: 'another-request-id' });
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...a, webauthn: other.webauthn }))).toBe('AUTH_BAD_SIGNATURE');
    const authData = Buffer.from(a.webauthn!.authenticatorData, 'base64url');
    authData[32] = 0x04; // UV without UP
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...a, webauthn: { ...a.webauthn!, authenticatorData: authData.toString('base64url') } }))).toBe('AUTH_BAD_SIGNATURE');
    // An Ed25519 principal cannot present a WebAuthn assertion.
    expect(code(() => verifier().verify('eth_signTransaction', TX, { ...signed('backend'), webauthn: a.webauthn }))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('the replay cache refuses rather than evicts when full of live entries, and frees expired ones', () => {
    const v = verifier(T0, { replayCache: new ReplayCache({ maxEntries: 2 }) });
    v.verify('eth_signTransaction', TX, signed('backend', { ttlSeconds: 10 }));
    v.verify('eth_signTransaction', TX, signed('backend', { ttlSeconds: 10 }));
    expect(code(() => v.verify('eth_signTransaction', TX, signed('backend')))).toBe('AUTH_REPLAY_CACHE_FULL');
    const later = new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => T0 + 10, replayCache: v.replayCache });
    expect(later.verify('eth_signTransaction', TX, signed('backend', { now: T0 + 10 })).authenticated).toBe(true);
  });

  it('the replay cache survives export/restore (sealed state)', () => {
    const v = verifier();
    const auth = signed('backend');
    v.verify('eth_signTransaction', TX, auth);
    const restored = ReplayCache.restore(v.replayCache.export(T0), T0);
    expect(code(() => verifier(T0 + 1, { replayCache: restored }).verify('eth_signTransaction', TX, auth))).toBe('AUTH_REPLAYED');
  });

  it(`property: any change to method or params after signing is refused (${SIGNER_AUTH_MEMBER})`, () => {
    const json = fc.jsonValue({ maxDepth: 3 }).filter((v) => {
      try {
        requestDigest(AUDIENCE, 'm', v);
        return true;
      } catch {
        return false;
      }
    });
    fc.assert(
      fc.property(json, json, fc.constantFrom('eth_signTransaction', 'personal_sign'), (p1, p2, m) => {
        fc.pre(requestDigest(AUDIENCE, m, p1) !== requestDigest(AUDIENCE, m, p2));
        const auth = signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: m, params: p1, now: T0 }).auth;
        expect(code(() => verifier().verify(m, p2, auth))).toBe('AUTH_BAD_SIGNATURE');
        expect(verifier().verify(m, p1, auth).principal).toBe('backend');
      }),
      { numRuns: 60 },
    );
  });
});
