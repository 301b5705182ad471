import { SignerError } from '../../common/errors.js';

/**
 * Stable codes for everything the signing primitives refuse. The JSON-RPC layer maps
 * SIGN_INVALID_PARAMS to -32602 (invalid params); the rest are domain errors.
 */
export type SigningErrorCode =
  /** A request field is missing, malformed, out of range or not allowed. `field` names it. */
  | 'SIGN_INVALID_PARAMS'
  /** The private key / seed bytes handed in by the vault are unusable (never echoed). */
  | 'SIGN_INVALID_KEY'
  /** A transaction's `from` names another account than the key being used. */
  | 'SIGN_FROM_MISMATCH'
  /** The entropy source returned something other than the requested number of bytes. */
  | 'SIGN_ENTROPY'
  /** The PSBT cannot be decoded. */
  | 'SIGN_PSBT_INVALID'
  /** No input of the PSBT names our master fingerprint. */
  | 'SIGN_PSBT_NOT_OURS'
  /** An input names our fingerprint but its path does not derive to the key it claims. */
  | 'SIGN_PSBT_DERIVATION_MISMATCH'
  /** An input is ours but is not a P2WPKH or P2TR key-path spend. */
  | 'SIGN_PSBT_UNSUPPORTED_INPUT'
  /** @scure/btc-signer refused to sign an input we selected (sighash policy, missing data). */
  | 'SIGN_PSBT_SIGN_FAILED'
  /** A library failed where our validation says it cannot; a bug, not a bad request. */
  | 'SIGN_INTERNAL';

export class SigningError extends SignerError {
  override readonly code: SigningErrorCode;
  /** Dotted path of the offending request field (e.g. `accessList[0].address`), when there is one. */
  readonly field: string | undefined;

  constructor(
    code: SigningErrorCode,
    message: string,
    opts: { field?: string; cause?: unknown; hint?: string } = {},
  ) {
    super(code, message, opts);
    this.code = code;
    this.field = opts.field;
  }

  override toJSON(): { code: string; message: string; hint?: string; field?: string } {
    const base = super.toJSON();
    return this.field === undefined ? base : { ...base, field: this.field };
  }
}

/** A bad request field. Messages describe the rule, never echo the value. */
export function invalidParams(field: string, message: string, opts: { cause?: unknown; hint?: string } = {}): SigningError {
  return new SigningError('SIGN_INVALID_PARAMS', `${field}: ${message}`, { ...opts, field });
}

export function isSigningError(e: unknown): e is SigningError {
  return e instanceof SigningError;
}

/**
 * Runs a library call whose inputs we already validated. Anything it still throws becomes a
 * SigningError (`code`, default SIGN_INTERNAL) keeping the library error as `cause`. The
 * library's message is copied into ours only with `expose` — for libraries whose messages
 * describe the request (PSBT structure), never for ones that handle key material.
 */
export function guarded<T>(
  what: string,
  fn: () => T,
  opts: { code?: SigningErrorCode; field?: string; expose?: boolean } = {},
): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SigningError) throw e;
    const detail = opts.expose === true && e instanceof Error ? `: ${e.message.slice(0, 200)}` : '';
    throw new SigningError(opts.code ?? 'SIGN_INTERNAL', `${what} failed${detail}`, {
      cause: e,
      ...(opts.field === undefined ? {} : { field: opts.field }),
    });
  }
}
