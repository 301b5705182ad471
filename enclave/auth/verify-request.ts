/**
 * Who is asking: the enclave-side check of a signed JSON-RPC request
 * (issue 9 §4). Order matters and is fail-closed:
 *
 *   1. no `signer_auth` → the caller is `host` (the unauthenticated socket),
 *      with only what the policy grants `host`;
 *   2. malformed envelope → AUTH_MALFORMED (never a downgrade to `host`);
 *   3. unknown principal → AUTH_UNKNOWN_PRINCIPAL;
 *   4. expiry against the ENCLAVE's clock (`now` is injected by the enclave,
 *      never a value the parent supplies): not after now → AUTH_EXPIRED; more
 *      than maxExpirySeconds ahead → AUTH_EXPIRY_TOO_FAR; at or before the
 *      restart barrier → AUTH_BEFORE_RESTART;
 *   5. signature over the exact bytes of ../../common/auth/request.ts, with the
 *      request digest recomputed here from the method and params the enclave
 *      received → AUTH_BAD_SIGNATURE (this is what makes a host that edits
 *      params after signing fail);
 *   6. replay cache → AUTH_REPLAYED. Only a request that passed 1–5 enters
 *      the cache, so a forged request cannot burn a legitimate request id.
 *
 * A request authenticated by a session (`signer_auth` with `session`, ./sessions.ts) takes the
 * same steps 1–4, then the session's MAC over the same digest (5) and its sequence window (6)
 * instead of the replay cache. The restart barrier does not apply to it: a session exists only
 * in the enclave life that opened it, so nothing MAC'd can come from before a restart.
 */
import { AuthError } from '../../common/auth/errors.js';
import { parseSignerAuth, requestDigest, requestSignatureMessage, checkAudience } from '../../common/auth/request.js';
import { isSessionAuth, OPEN_SESSION_METHOD, parseOpenSessionParams, parseSessionAuth } from '../../common/auth/session.js';
import { HOST_PRINCIPAL, type PrincipalRegistry } from './principals.js';
import { ReplayCache } from './replay-cache.js';
import { SessionTable, type OpenedSession } from './sessions.js';

/** Five minutes: the longest a signed request may be valid, which bounds the replay cache. */
export const DEFAULT_MAX_EXPIRY_SECONDS = 300;

export interface AuthenticatedRequest {
  /** The principal the policy sees: a declared principal, or `host`. */
  principal: string;
  authenticated: boolean;
  /** The request digest (hex) the enclave computed itself; approvals refer to it. */
  requestDigest: string;
  requestId?: string;
  expiresAt?: number;
  /** The session whose MAC authenticated the request (absent: a signature did). */
  session?: string;
}

export interface RequestVerifierOptions {
  principals: PrincipalRegistry;
  /** The policy hash every request must be addressed to. */
  audience: string;
  /** The enclave's clock in Unix seconds. */
  now: () => number;
  maxExpirySeconds?: number;
  replayCache?: ReplayCache;
  sessions?: SessionTable;
  /**
   * Unix seconds. Requests whose expiry is at or before it are refused
   * (AUTH_BEFORE_RESTART). Set it to boot time + maxExpirySeconds when the
   * restored replay cache cannot be trusted to be the latest (unclean restart):
   * then no request signed before the restart can be accepted, whatever
   * sealed state the host hands back. See docs/principals.md.
   */
  restartBarrier?: number;
}

export class RequestVerifier {
  readonly #o: Required<Omit<RequestVerifierOptions, 'restartBarrier'>> & { restartBarrier: number | undefined };

  constructor(o: RequestVerifierOptions) {
    checkAudience(o.audience);
    this.#o = {
      principals: o.principals,
      audience: o.audience,
      now: o.now,
      maxExpirySeconds: o.maxExpirySeconds ?? DEFAULT_MAX_EXPIRY_SECONDS,
      replayCache: o.replayCache ?? new ReplayCache(),
      sessions: o.sessions ?? new SessionTable(),
      restartBarrier: o.restartBarrier,
    };
  }

  get replayCache(): ReplayCache {
    return this.#o.replayCache;
  }

  get sessions(): SessionTable {
    return this.#o.sessions;
  }

  get maxExpirySeconds(): number {
    return this.#o.maxExpirySeconds;
  }

  /**
   * The restart barrier as the boot concluded it (enclave/auth/enclave-state.ts onBoot):
   * undefined for a new keyring; otherwise requests expiring at or before it are refused. The
   * replay cache is never restored from sealed state (no restart is trusted to have kept it).
   */
  setRestartBarrier(barrier: number | undefined): void {
    this.#o.restartBarrier = barrier;
  }

  /** Authenticates one request; `auth` is the raw `signer_auth` member (undefined when absent). */
  verify(method: string, params: unknown, auth: unknown): AuthenticatedRequest {
    const digest = requestDigest(this.#o.audience, method, params);
    if (auth === undefined) return { principal: HOST_PRINCIPAL, authenticated: false, requestDigest: digest };
    if (isSessionAuth(auth)) {
      const s = parseSessionAuth(auth);
      const now = this.#fresh(s.principal, s.expiresAt, false);
      this.#o.sessions.verify(s, digest, now);
      return { principal: s.principal, authenticated: true, requestDigest: digest, requestId: `${s.session}.${s.seq}`, expiresAt: s.expiresAt, session: s.session };
    }
    const a = parseSignerAuth(auth);
    const now = this.#fresh(a.principal, a.expiresAt, true);
    const message = requestSignatureMessage({ requestDigest: digest, principal: a.principal, requestId: a.requestId, expiresAt: a.expiresAt });
    if (!this.#o.principals.verify(a.principal, message, a.signature, a.webauthn)) {
      throw new AuthError('AUTH_BAD_SIGNATURE', `the signature of ${a.principal} does not cover this request`, { hint: 'the request was altered after signing, or signed for another policy or with another key' });
    }
    this.#o.replayCache.admit(a.principal, a.requestId, a.expiresAt, now);
    return { principal: a.principal, authenticated: true, requestDigest: digest, requestId: a.requestId, expiresAt: a.expiresAt };
  }

  /**
   * signer_openSession (./sessions.ts): `auth` must be a signature (a session cannot open another),
   * by a principal the policy lets open sessions. Returns the session's public half and who opened it.
   */
  openSession(params: unknown, auth: unknown): { opened: OpenedSession; request: AuthenticatedRequest } {
    if (auth === undefined) throw new AuthError('AUTH_MALFORMED', 'signer_openSession must be signed by a principal (signer_auth)', { hint: 'the unauthenticated host has no sessions' });
    if (isSessionAuth(auth)) throw new AuthError('AUTH_MALFORMED', 'signer_openSession must carry a signature, not a session MAC', { hint: 'a session is opened only by the principal\'s key' });
    const request = this.verify(OPEN_SESSION_METHOD, params, auth);
    const maxSeconds = this.#o.principals.sessionMaxSeconds(request.principal);
    const p = parseOpenSessionParams(params);
    const ttl = p.ttlSeconds ?? maxSeconds;
    if (ttl > maxSeconds) throw new AuthError('AUTH_MALFORMED', `signer_openSession: ttlSeconds ${ttl} is more than the ${maxSeconds} s the policy allows ${request.principal}`, { hint: 'ask for a shorter session' });
    const now = this.#o.now();
    const opened = this.#o.sessions.open({ principal: request.principal, clientPublicKey: p.clientPublicKey, openRequestDigest: request.requestDigest, expiresAt: now + ttl, now });
    return { opened, request };
  }

  /** Steps 3 and 4: a declared principal, and an expiry the enclave's clock accepts. Returns now. */
  #fresh(principal: string, expiresAt: number, barrier: boolean): number {
    if (principal === HOST_PRINCIPAL) throw new AuthError('AUTH_UNKNOWN_PRINCIPAL', '"host" is the unauthenticated caller; it cannot sign requests');
    this.#o.principals.require(principal);
    const now = this.#o.now();
    if (!Number.isSafeInteger(now)) throw new AuthError('AUTH_EXPIRED', 'the enclave clock is unavailable; refusing signed requests');
    if (expiresAt <= now) throw new AuthError('AUTH_EXPIRED', `request expired at ${expiresAt} (enclave time ${now})`, { hint: 'sign a new request; check the client clock' });
    // Right after a restart the limit is at least barrier + 1, so a request signed to expire just
    // past the barrier (data.expiresAfter + 1) is acceptable at once, even in the boot's own second.
    const latest = Math.max(now + this.#o.maxExpirySeconds, this.#o.restartBarrier === undefined ? 0 : this.#o.restartBarrier + 1);
    if (expiresAt > latest) {
      throw new AuthError('AUTH_EXPIRY_TOO_FAR', `request expires ${expiresAt - now}s from now; the limit is ${latest - now}s`, { hint: 'use a shorter expiry; check the client clock' });
    }
    if (barrier && this.#o.restartBarrier !== undefined && expiresAt <= this.#o.restartBarrier) {
      throw new AuthError('AUTH_BEFORE_RESTART', 'the enclave restarted and refuses requests that may have been signed before it', {
        hint: `sign a new request expiring after ${this.#o.restartBarrier} (data.expiresAfter)`,
        expiresAfter: this.#o.restartBarrier,
      });
    }
    return now;
  }
}
