import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signRequest, type PrincipalKey } from '../../common/auth/client-signer.js';
import { requestDigest, toBase64Url } from '../../common/auth/request.js';
import {
  deriveSessionKey,
  newX25519KeyPair,
  OPEN_SESSION_METHOD,
  parseOpenSessionAnswer,
  SESSION_REPLAY_WINDOW,
  sessionAuth,
} from '../../common/auth/session.js';
import { PrincipalRegistry } from './principals.js';
import { SessionTable } from './sessions.js';
import { AUDIENCE, errorCode, testPrincipals } from './test-helpers.js';
import { RequestVerifier } from './verify-request.js';

const { keys, document } = testPrincipals();
// backend and alice may open sessions (an hour at most); bob may not.
const registry = new PrincipalRegistry({
  ...document,
  backend: { ...document.backend!, sessions: { maxSeconds: 3600 } },
  alice: { ...document.alice!, sessions: { maxSeconds: 3600 } },
});
const T0 = 1_800_000_000;
const TX = [{ from: '0x' + '11'.repeat(20), to: '0x' + '22'.repeat(20), value: '0x1', nonce: '0x0', gas: '0x5208', chainId: '0x1' }];
const code = errorCode;

function verifier(clock = { now: T0 }, extra: Partial<ConstructorParameters<typeof RequestVerifier>[0]> = {}): RequestVerifier {
  return new RequestVerifier({ principals: registry, audience: AUDIENCE, now: () => clock.now, ...extra });
}

/** The client's half, written from the wire format (common/auth/session.ts), not from the table. */
function openAs(v: RequestVerifier, principal: 'backend' | 'alice' | 'bob', o: { ttlSeconds?: number; key?: PrincipalKey; now?: number; swapEnclaveKey?: Uint8Array } = {}) {
  const eph = newX25519KeyPair();
  const params = { clientPublicKey: toBase64Url(eph.publicKey), ...(o.ttlSeconds !== undefined ? { ttlSeconds: o.ttlSeconds } : {}) };
  const signed = signRequest({ key: o.key ?? keys[principal], principal, audience: AUDIENCE, method: OPEN_SESSION_METHOD, params, now: o.now ?? T0 });
  const { opened } = v.openSession(params, signed.auth);
  // A hostile host may hand the client another public key than the enclave's.
  const answer = parseOpenSessionAnswer(o.swapEnclaveKey ? { ...opened, enclavePublicKey: toBase64Url(o.swapEnclaveKey) } : opened, principal);
  const key = deriveSessionKey({
    privateKey: eph.privateKey,
    peerPublicKey: answer.enclavePublicKey,
    openRequestDigest: signed.requestDigest,
    principal,
    session: answer.session,
    clientPublicKey: eph.publicKey,
    enclavePublicKey: answer.enclavePublicKey,
  });
  let seq = 0;
  return {
    opened,
    key,
    params,
    signedOpen: signed.auth,
    clientPublicKey: eph.publicKey,
    auth: (method = 'eth_signTransaction', p: unknown = TX, m: { seq?: number; expiresAt?: number } = {}) =>
      sessionAuth(key, { requestDigest: requestDigest(AUDIENCE, method, p), principal, session: opened.session, seq: m.seq ?? ++seq, expiresAt: m.expiresAt ?? T0 + 60 }),
  };
}

describe('sessions: a principal signs once, then MACs its requests', () => {
  it('a MAC’d request authenticates as the principal that opened the session', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    expect(s.opened).toMatchObject({ principal: 'backend', expiresAt: T0 + 3600 });
    expect(Object.keys(s.opened).sort()).toEqual(['enclavePublicKey', 'expiresAt', 'principal', 'session']);
    const r = v.verify('eth_signTransaction', TX, s.auth());
    expect(r).toMatchObject({ principal: 'backend', authenticated: true, session: s.opened.session, requestDigest: requestDigest(AUDIENCE, 'eth_signTransaction', TX) });
    // P-256 principals open sessions the same way.
    const a = openAs(v, 'alice', { ttlSeconds: 600 });
    expect(a.opened.expiresAt).toBe(T0 + 600);
    expect(v.verify('personal_sign', ['0x01', '0x' + '11'.repeat(20)], a.auth('personal_sign', ['0x01', '0x' + '11'.repeat(20)])).principal).toBe('alice');
  });

  it('hostile host: params, method, expiry or sequence number altered after the MAC → AUTH_BAD_SIGNATURE', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    const altered = [{ ...TX[0], to: '0x' + '66'.repeat(20) }];
    expect(code(() => v.verify('eth_signTransaction', altered, s.auth()))).toBe('AUTH_BAD_SIGNATURE');
    expect(code(() => v.verify('eth_sign', TX, s.auth()))).toBe('AUTH_BAD_SIGNATURE');
    const a = s.auth();
    expect(code(() => v.verify('eth_signTransaction', TX, { ...a, expiresAt: a.expiresAt + 10 }))).toBe('AUTH_BAD_SIGNATURE');
    expect(code(() => v.verify('eth_signTransaction', TX, { ...a, seq: a.seq + 1 }))).toBe('AUTH_BAD_SIGNATURE');
    // None of the refused requests used up a sequence number: the untouched one still passes.
    expect(v.verify('eth_signTransaction', TX, a).principal).toBe('backend');
  });

  it('hostile host: a session id relabelled as another principal → AUTH_SESSION_UNKNOWN, never that principal', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    openAs(v, 'alice');
    expect(code(() => v.verify('eth_signTransaction', TX, { ...s.auth(), principal: 'alice' }))).toBe('AUTH_SESSION_UNKNOWN');
    expect(code(() => v.verify('eth_signTransaction', TX, { ...s.auth(), principal: 'bob' }))).toBe('AUTH_SESSION_UNKNOWN');
  });

  it('hostile host: a replayed request → AUTH_REPLAYED; out-of-order arrival within the window is accepted', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    const first = s.auth();
    const later = [s.auth(), s.auth(), s.auth()];
    v.verify('eth_signTransaction', TX, later[2]!);
    v.verify('eth_signTransaction', TX, first);
    v.verify('eth_signTransaction', TX, later[0]!);
    expect(code(() => v.verify('eth_signTransaction', TX, first))).toBe('AUTH_REPLAYED');
    expect(code(() => v.verify('eth_signTransaction', TX, later[2]!))).toBe('AUTH_REPLAYED');
    v.verify('eth_signTransaction', TX, later[1]!);
  });

  it('hostile host: a request held back past the replay window → AUTH_REPLAYED', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    const held = s.auth();
    v.verify('eth_signTransaction', TX, s.auth('eth_signTransaction', TX, { seq: held.seq + SESSION_REPLAY_WINDOW }));
    expect(code(() => v.verify('eth_signTransaction', TX, held))).toBe('AUTH_REPLAYED');
  });

  it('the sequence window accepts each number once, against a reference model (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 300 }), (seqs) => {
        const table = new SessionTable();
        const key = new Uint8Array(32);
        const open = table.open({ principal: 'backend', clientPublicKey: newX25519KeyPair().publicKey, openRequestDigest: 'c'.repeat(64), expiresAt: T0 + 100, now: T0 });
        // The table derived its own key: reach it through the test hook to MAC as the client would.
        key.set(table.keyForTest(open.session)!);
        const seen = new Set<number>();
        let top = 0;
        for (const seq of seqs) {
          const want = seen.has(seq) || seq <= top - SESSION_REPLAY_WINDOW ? 'AUTH_REPLAYED' : undefined;
          const a = sessionAuth(key, { requestDigest: 'd'.repeat(64), principal: 'backend', session: open.session, seq, expiresAt: T0 + 60 });
          expect(code(() => table.verify(a, 'd'.repeat(64), T0))).toBe(want);
          if (want === undefined) {
            seen.add(seq);
            top = Math.max(top, seq);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('hostile host: swapping the enclave’s public key in the answer gains the host nothing the enclave accepts', () => {
    const v = verifier();
    const host = newX25519KeyPair();
    const s = openAs(v, 'backend', { swapEnclaveKey: host.publicKey });
    // The client now shares a key with the host; the enclave refuses every MAC made under it …
    expect(code(() => v.verify('eth_signTransaction', TX, s.auth()))).toBe('AUTH_BAD_SIGNATURE');
    // … and the host, which knows that key, cannot make one the enclave accepts either.
    const hostKey = deriveSessionKey({
      privateKey: host.privateKey,
      peerPublicKey: s.clientPublicKey,
      openRequestDigest: requestDigest(AUDIENCE, OPEN_SESSION_METHOD, s.params),
      principal: 'backend',
      session: s.opened.session,
      clientPublicKey: s.clientPublicKey,
      enclavePublicKey: host.publicKey,
    });
    expect(hostKey).toEqual(s.key);
    const forged = sessionAuth(hostKey, { requestDigest: requestDigest(AUDIENCE, 'eth_signTransaction', TX), principal: 'backend', session: s.opened.session, seq: 99, expiresAt: T0 + 60 });
    expect(code(() => v.verify('eth_signTransaction', TX, forged))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('hostile host: replaying a principal’s signed open request → AUTH_REPLAYED (and would give the host no key)', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    expect(code(() => v.openSession(s.params, s.signedOpen))).toBe('AUTH_REPLAYED');
  });

  it('opening: only by a signature, of a principal the policy allows, for at most its maxSeconds', () => {
    const v = verifier();
    expect(code(() => openAs(v, 'bob'))).toBe('AUTH_SESSIONS_NOT_ALLOWED');
    expect(code(() => openAs(v, 'backend', { ttlSeconds: 3601 }))).toBe('AUTH_MALFORMED');
    expect(code(() => openAs(v, 'backend', { key: keys.outsider }))).toBe('AUTH_BAD_SIGNATURE');
    expect(code(() => v.openSession({ clientPublicKey: toBase64Url(newX25519KeyPair().publicKey) }, undefined))).toBe('AUTH_MALFORMED');
    const s = openAs(v, 'backend');
    // A session cannot open another: that would let a leaked session key outlive its session.
    const params = { clientPublicKey: toBase64Url(newX25519KeyPair().publicKey) };
    expect(code(() => v.openSession(params, s.auth(OPEN_SESSION_METHOD, params)))).toBe('AUTH_MALFORMED');
  });

  it('a low-order or malformed client public key is refused', () => {
    const v = verifier();
    // 0, 1 and a point of order 8 (RFC 7748 §6.1 / Curve25519's small-subgroup points), a short key, not base64url.
    const order8 = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex');
    const one = new Uint8Array(32);
    one[0] = 1;
    for (const clientPublicKey of [toBase64Url(new Uint8Array(32)), toBase64Url(one), toBase64Url(order8), toBase64Url(new Uint8Array(31)), 'not base64!']) {
      const params = { clientPublicKey };
      const signed = signRequest({ key: keys.backend, principal: 'backend', audience: AUDIENCE, method: OPEN_SESSION_METHOD, params, now: T0 });
      expect(code(() => v.openSession(params, signed.auth))).toBe('AUTH_MALFORMED');
    }
    expect(v.sessions.size).toBe(0);
  });

  it('request expiry still applies inside a session (enclave clock)', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    expect(code(() => v.verify('eth_signTransaction', TX, s.auth(undefined, undefined, { expiresAt: T0 })))).toBe('AUTH_EXPIRED');
    expect(code(() => v.verify('eth_signTransaction', TX, s.auth(undefined, undefined, { expiresAt: T0 + 301 })))).toBe('AUTH_EXPIRY_TOO_FAR');
  });

  it('a session ends at its expiry, and its key is wiped', () => {
    const clock = { now: T0 };
    const v = verifier(clock);
    const s = openAs(v, 'backend', { ttlSeconds: 120 });
    const key = v.sessions.keyForTest(s.opened.session)!;
    expect(key.some((b) => b !== 0)).toBe(true);
    clock.now = T0 + 120;
    expect(code(() => v.verify('eth_signTransaction', TX, s.auth(undefined, undefined, { expiresAt: T0 + 150 })))).toBe('AUTH_SESSION_EXPIRED');
    expect(key.every((b) => b === 0)).toBe(true);
    expect(code(() => v.verify('eth_signTransaction', TX, s.auth(undefined, undefined, { expiresAt: T0 + 150 })))).toBe('AUTH_SESSION_UNKNOWN');
  });

  it('a principal holds at most 32 sessions: the 33rd closes its oldest (wiped), not another principal’s', () => {
    const v = verifier();
    const alice = openAs(v, 'alice');
    const first = openAs(v, 'backend');
    const firstKey = v.sessions.keyForTest(first.opened.session)!;
    for (let i = 0; i < 32; i++) openAs(v, 'backend');
    expect(firstKey.every((b) => b === 0)).toBe(true);
    expect(code(() => v.verify('eth_signTransaction', TX, first.auth()))).toBe('AUTH_SESSION_UNKNOWN');
    expect(v.verify('eth_signTransaction', TX, alice.auth()).principal).toBe('alice');
    expect(v.sessions.size).toBe(33);
  });

  it('a restarted enclave knows no session of the previous one; close() wipes every key', () => {
    const v = verifier();
    const s = openAs(v, 'backend');
    const key = v.sessions.keyForTest(s.opened.session)!;
    expect(code(() => verifier().verify('eth_signTransaction', TX, s.auth()))).toBe('AUTH_SESSION_UNKNOWN');
    v.sessions.close();
    expect(key.every((b) => b === 0)).toBe(true);
    expect(v.sessions.size).toBe(0);
  });

  it('malformed session envelopes → AUTH_MALFORMED, naming the member', () => {
    const v = verifier();
    const a = openAs(v, 'backend').auth();
    for (const bad of [
      { ...a, seq: 0 },
      { ...a, seq: 1.5 },
      { ...a, mac: a.mac.slice(0, -2) },
      { ...a, session: 'short' },
      { ...a, extra: 1 },
      { ...a, signature: 'AA' },
    ]) {
      expect(code(() => v.verify('eth_signTransaction', TX, bad))).toBe('AUTH_MALFORMED');
    }
  });
});
