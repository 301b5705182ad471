/**
 * The enclave's session table (docs/principals.md "Sessions"; wire format in
 * ../../common/auth/session.ts). A session is opened by a principal's signature and lets the
 * principal authenticate later requests with an HMAC instead.
 *
 * What the table guarantees:
 *   - a session belongs to the one principal whose signature opened it: a MAC under it
 *     authenticates that principal and no other (another name with its id is AUTH_SESSION_UNKNOWN);
 *   - each sequence number is accepted once; numbers more than SESSION_REPLAY_WINDOW below the
 *     highest accepted are refused (RFC 6479 sliding window: out-of-order arrival is fine, a
 *     replay or a request held back past the window is not);
 *   - a session ends at its expiry, on eviction, or when the table closes, and its key is wiped
 *     then (the shared secret is wiped as soon as the key is derived; the ephemeral X25519 private
 *     key is an OpenSSL object used once and dropped);
 *   - sessions live in enclave memory only: a restart ends them all, so nothing about a session
 *     can be replayed from a previous enclave life (the client opens a new one).
 *
 * A principal holds at most `maxPerPrincipal` sessions; opening one more closes its oldest. Only
 * that principal's signature can open one, so the cap bounds memory without letting one
 * principal (or the host) end another's sessions.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError } from '../../common/auth/errors.js';
import { toBase64Url } from '../../common/auth/request.js';
import { deriveSessionKey, newX25519KeyPair, requestMac, SESSION_ID_BYTES, SESSION_REPLAY_WINDOW, type SessionAuth } from '../../common/auth/session.js';

export const DEFAULT_SESSIONS_PER_PRINCIPAL = 32;

interface Session {
  principal: string;
  key: Uint8Array;
  expiresAt: number;
  /** Highest sequence number accepted so far (0: none). */
  top: number;
  /** Bit (seq mod WINDOW) set ⇔ that seq was accepted; valid for seq in (top − WINDOW, top]. */
  seen: Uint32Array;
}

export interface OpenedSession {
  session: string;
  enclavePublicKey: string;
  expiresAt: number;
  principal: string;
}

const WORDS = SESSION_REPLAY_WINDOW / 32;

export class SessionTable {
  readonly #byId = new Map<string, Session>();
  /** Each principal's session ids, oldest first. */
  readonly #byPrincipal = new Map<string, string[]>();
  readonly #max: number;

  constructor(opts: { maxPerPrincipal?: number } = {}) {
    this.#max = opts.maxPerPrincipal ?? DEFAULT_SESSIONS_PER_PRINCIPAL;
  }

  /** Sessions open now (expired ones still count until the next opening or use sweeps them). */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Opens a session for `principal`, whose signature over the open request (digest
   * `openRequestDigest`) the caller has verified. Returns what the client needs; the key stays here.
   */
  open(i: { principal: string; clientPublicKey: Uint8Array; openRequestDigest: string; expiresAt: number; now: number }): OpenedSession {
    this.#prune(i.now);
    const session = toBase64Url(randomBytes(SESSION_ID_BYTES));
    // The ephemeral private key is used once, here, and dropped (OpenSSL clears it when collected).
    const eph = newX25519KeyPair();
    const key = deriveSessionKey({
      privateKey: eph.privateKey,
      peerPublicKey: i.clientPublicKey,
      openRequestDigest: i.openRequestDigest,
      principal: i.principal,
      session,
      clientPublicKey: i.clientPublicKey,
      enclavePublicKey: eph.publicKey,
    });
    const ids = this.#byPrincipal.get(i.principal) ?? [];
    while (ids.length >= this.#max) this.#end(ids.shift()!);
    ids.push(session);
    this.#byPrincipal.set(i.principal, ids);
    this.#byId.set(session, { principal: i.principal, key, expiresAt: i.expiresAt, top: 0, seen: new Uint32Array(WORDS) });
    return { session, enclavePublicKey: toBase64Url(eph.publicKey), expiresAt: i.expiresAt, principal: i.principal };
  }

  /**
   * Verifies one request's MAC (over `requestDigest`, which the caller computed from the method
   * and params it received) and admits its sequence number. Throws AuthError; changes nothing
   * unless the request is accepted.
   */
  verify(a: SessionAuth, requestDigest: string, now: number): void {
    const s = this.#byId.get(a.session);
    // Another principal's session id is as unknown as a made-up one: the answer says nothing about it.
    if (!s || s.principal !== a.principal) {
      throw new AuthError('AUTH_SESSION_UNKNOWN', `no open session ${a.session} of ${a.principal}`, { hint: 'open a new session (signer_openSession): sessions end at their expiry and when the enclave restarts' });
    }
    if (s.expiresAt <= now) {
      this.#end(a.session);
      throw new AuthError('AUTH_SESSION_EXPIRED', `session ${a.session} of ${a.principal} expired at ${s.expiresAt} (enclave time ${now})`, { hint: 'open a new session (signer_openSession)' });
    }
    const expected = requestMac(s.key, { requestDigest, principal: a.principal, session: a.session, seq: a.seq, expiresAt: a.expiresAt });
    const got = Buffer.from(a.mac, 'base64url');
    const ok = got.length === expected.length && timingSafeEqual(got, expected);
    expected.fill(0);
    if (!ok) {
      throw new AuthError('AUTH_BAD_SIGNATURE', `the MAC of session ${a.session} does not cover this request`, { hint: 'the request was altered after it was authenticated, or the session key is not this session\'s' });
    }
    if (a.seq <= s.top - SESSION_REPLAY_WINDOW) {
      throw new AuthError('AUTH_REPLAYED', `sequence number ${a.seq} of session ${a.session} is older than the replay window (highest accepted ${s.top})`, { hint: 'the host may be replaying or holding back requests; send it again with a fresh sequence number' });
    }
    if (a.seq > s.top) {
      // Slide: the numbers skipped over (top, seq) were never accepted.
      for (let n = s.top + 1, steps = 0; n < a.seq && steps < SESSION_REPLAY_WINDOW; n++, steps++) clearBit(s.seen, n);
      s.top = a.seq;
    } else if (getBit(s.seen, a.seq)) {
      throw new AuthError('AUTH_REPLAYED', `sequence number ${a.seq} of session ${a.session} was already accepted`, { hint: 'each request in a session needs a fresh sequence number; the host may be replaying it' });
    }
    setBit(s.seen, a.seq);
  }

  /** Ends one session and wipes its key (e.g. its opening could not be recorded). */
  end(session: string): void {
    this.#end(session);
  }

  /** Ends every session and wipes every key (the enclave is shutting down). */
  close(): void {
    for (const id of [...this.#byId.keys()]) this.#end(id);
  }

  /** Test hook: the live key of a session (to check that it is wiped), or undefined. */
  keyForTest(session: string): Uint8Array | undefined {
    return this.#byId.get(session)?.key;
  }

  #prune(now: number): void {
    for (const [id, s] of this.#byId) if (s.expiresAt <= now) this.#end(id);
  }

  #end(id: string): void {
    const s = this.#byId.get(id);
    if (!s) return;
    s.key.fill(0);
    this.#byId.delete(id);
    const ids = this.#byPrincipal.get(s.principal);
    if (ids) {
      const i = ids.indexOf(id);
      if (i >= 0) ids.splice(i, 1);
      if (ids.length === 0) this.#byPrincipal.delete(s.principal);
    }
  }
}

function getBit(w: Uint32Array, n: number): boolean {
  const i = n % SESSION_REPLAY_WINDOW;
  return (((w[i >>> 5] ?? 0) >>> (i & 31)) & 1) === 1;
}

function setBit(w: Uint32Array, n: number): void {
  const i = n % SESSION_REPLAY_WINDOW;
  w[i >>> 5] = (w[i >>> 5] ?? 0) | (1 << (i & 31));
}

function clearBit(w: Uint32Array, n: number): void {
  const i = n % SESSION_REPLAY_WINDOW;
  w[i >>> 5] = (w[i >>> 5] ?? 0) & ~(1 << (i & 31));
}
