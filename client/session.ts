/**
 * Principal sessions for `enclave-signer/client` (docs/principals.md "Sessions"; bytes in
 * ../common/auth/session.ts): the principal's key signs one `signer_openSession`, and every later
 * request carries an HMAC under the session key instead of a signature.
 *
 * The session is opened on first use and again when it is about to end, or when the enclave
 * answers that it no longer knows it (AUTH_SESSION_UNKNOWN after a restart, AUTH_SESSION_EXPIRED);
 * those refusals come before the enclave does anything, so the client may send the request again
 * under a new session. The key lives in this object only, and is wiped when a session is replaced
 * and on close().
 */
import { beginSession } from '../common/auth/client-signer.js';
import { requestDigest, type SignerAuth } from '../common/auth/request.js';
import { sessionAuth, type SessionAuth } from '../common/auth/session.js';
import type { LoadedPrincipal } from './principal.js';

/** A session that has at most this many seconds left is replaced before the next request. */
const RENEW_BEFORE_SECONDS = 60;

interface Open {
  session: string;
  key: Uint8Array;
  expiresAt: number;
  seq: number;
}

export interface SessionOptions {
  /** Seconds; at most the principal's sessions.maxSeconds in the enclave policy (default: that maximum). */
  ttlSeconds?: number;
}

/** The refusals after which a request may be sent again under a new session. */
export function isSessionGone(code: unknown): boolean {
  return code === 'AUTH_SESSION_UNKNOWN' || code === 'AUTH_SESSION_EXPIRED';
}

export class ClientSession {
  readonly #principal: LoadedPrincipal;
  readonly #audience: () => Promise<string>;
  readonly #open: (params: unknown, auth: SignerAuth) => Promise<unknown>;
  readonly #ttl: number | undefined;
  #current: Promise<Open> | undefined;
  #closed = false;

  /** `open` sends signer_openSession with the given params and signer_auth, and resolves with the result. */
  constructor(principal: LoadedPrincipal, audience: () => Promise<string>, open: (params: unknown, auth: SignerAuth) => Promise<unknown>, o: SessionOptions = {}) {
    this.#principal = principal;
    this.#audience = audience;
    this.#open = open;
    this.#ttl = o.ttlSeconds;
  }

  /** The `signer_auth` of one request in the current session (opening one first if needed). */
  async auth(method: string, params: unknown, expiresAt: number): Promise<SessionAuth> {
    const s = await this.#session();
    const audience = await this.#audience();
    s.seq += 1;
    return sessionAuth(s.key, { requestDigest: requestDigest(audience, method, params), principal: this.#principal.name, session: s.session, seq: s.seq, expiresAt });
  }

  /** Drops the session `id` (the enclave no longer knows it); the next request opens a new one. */
  forget(id: string): void {
    const cur = this.#current;
    if (!cur) return;
    void cur.then(
      (s) => {
        if (s.session === id && this.#current === cur) {
          this.#current = undefined;
          s.key.fill(0);
        }
      },
      () => {},
    );
  }

  close(): void {
    this.#closed = true;
    const cur = this.#current;
    this.#current = undefined;
    void cur?.then((s) => s.key.fill(0), () => {});
  }

  async #session(): Promise<Open> {
    if (this.#closed) throw new TypeError('enclave-signer client: the client is closed');
    const now = Math.floor(Date.now() / 1000);
    const cur = this.#current;
    if (cur) {
      const s = await cur.catch(() => undefined);
      if (s && s.key.some((b) => b !== 0) && s.expiresAt - now > RENEW_BEFORE_SECONDS) return s;
      if (this.#current === cur) {
        this.#current = undefined;
        s?.key.fill(0);
      }
    }
    if (!this.#current) {
      const opening = this.#openNew();
      // A failed opening is not kept: the next request tries again.
      opening.catch(() => {
        if (this.#current === opening) this.#current = undefined;
      });
      this.#current = opening;
    }
    return this.#current;
  }

  async #openNew(): Promise<Open> {
    const opening = beginSession({ key: this.#principal.key, principal: this.#principal.name, audience: await this.#audience(), ...(this.#ttl !== undefined ? { ttlSeconds: this.#ttl } : {}) });
    return { ...opening.finish(await this.#open(opening.params, opening.auth)), seq: 0 };
  }
}
