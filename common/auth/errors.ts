/**
 * Errors of request authentication (issue 9 §4). Each refusal has its own
 * code so a client (and the audit log) can tell "my clock is off" from "the
 * host replayed my request" from "the host altered my params". None of them
 * ever falls back to the unauthenticated `host` principal: a request that
 * carries `signer_auth` is either verified or refused.
 */
import { SignerError } from '../errors.js';

export type AuthErrorCode =
  /** `signer_auth` is not the documented shape (missing member, wrong type, bad encoding). */
  | 'AUTH_MALFORMED'
  /** The named principal is not in the enclave's policy (or is the reserved `host`). */
  | 'AUTH_UNKNOWN_PRINCIPAL'
  /** The signature does not verify under the principal's key for these exact bytes. */
  | 'AUTH_BAD_SIGNATURE'
  /** `expiresAt` is not after the enclave's clock. */
  | 'AUTH_EXPIRED'
  /** `expiresAt` lies further in the future than the enclave accepts (keeps the replay cache bounded). */
  | 'AUTH_EXPIRY_TOO_FAR'
  /** This principal already used this request id within its expiry window. */
  | 'AUTH_REPLAYED'
  /** The request may have been issued before the enclave restarted (restart barrier). */
  | 'AUTH_BEFORE_RESTART'
  /** The replay cache is full of live entries; refusing is the only safe answer. */
  | 'AUTH_REPLAY_CACHE_FULL'
  /** No open session of this principal has this id (never opened, ended, or the enclave restarted). */
  | 'AUTH_SESSION_UNKNOWN'
  /** The session's lifetime is over. */
  | 'AUTH_SESSION_EXPIRED'
  /** The policy does not let this principal open sessions (its `sessions` member is absent). */
  | 'AUTH_SESSIONS_NOT_ALLOWED';

export class AuthError extends SignerError {
  override readonly code: AuthErrorCode;
  /** Crosses the bridge as the error's data: AUTH_BEFORE_RESTART names the expiry a new request needs. */
  readonly wireData: { expiresAfter: number } | undefined;

  constructor(code: AuthErrorCode, message: string, opts: { cause?: unknown; hint?: string; expiresAfter?: number } = {}) {
    super(code, message, opts);
    this.code = code;
    this.wireData = opts.expiresAfter === undefined ? undefined : { expiresAfter: opts.expiresAfter };
  }
}
