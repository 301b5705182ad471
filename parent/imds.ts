/**
 * The instance role's credentials, fetched from the EC2 instance metadata
 * service with IMDSv2 by `@smithy/credential-provider-imds` (the AWS SDK's own
 * client), and a refresher that hands them to the enclave (`credentials.set`)
 * before they expire.
 *
 * IMDSv2 only: the provider runs with `ec2MetadataV1Disabled`, so a failed
 * token request never turns into an unauthenticated v1 GET (what an SSRF
 * turns into credentials). What the library does on each fetch:
 *
 *   PUT /latest/api/token                    X-aws-ec2-metadata-token-ttl-seconds: 21600 → token
 *   GET /latest/meta-data/iam/security-credentials/        X-aws-ec2-metadata-token → role name
 *   GET /latest/meta-data/iam/security-credentials/<role>  X-aws-ec2-metadata-token →
 *       {"Code":"Success","AccessKeyId":…,"SecretAccessKey":…,"Token":…,"Expiration":…}
 *
 * What stays here: the endpoint check, a fresh provider per fetch (the
 * library's "static stability" would otherwise hand back expired credentials
 * with a made-up expiration after a failed refresh, and its IMDSv1-fallback
 * flag is sticky), bounds on what is handed to the enclave, refusing expired
 * credentials, and errors that name the step and status, never a secret: the
 * library's own messages are not passed on (a JSON parse error can quote the
 * document), and its logger is silenced for the same reason.
 */
import { fromInstanceMetadata } from '@smithy/credential-provider-imds';
import { SignerError } from '../common/errors.js';
import type { AwsCredentialsWire } from './credentials.js';

/** What `credentials.set` takes (common/protocol/enclave-api.ts); `expiration` is ISO 8601. */
export type Credentials = AwsCredentialsWire;

export type ImdsErrorCode =
  /** An option is wrong (endpoint not http://, timeout out of range, …). */
  | 'IMDS_CONFIG'
  /** No TCP connection to IMDS after the token was issued (refused, unreachable, reset). */
  | 'IMDS_UNREACHABLE'
  /** IMDS did not answer in time after the token was issued. */
  | 'IMDS_TIMEOUT'
  /** IMDS issued no session token (refused, unreachable or silent), or refused the token it issued. */
  | 'IMDS_TOKEN'
  /** The instance has no IAM role (no instance profile). */
  | 'IMDS_NO_ROLE'
  /** An unexpected HTTP status. */
  | 'IMDS_HTTP'
  /** A response without the expected shape: not JSON, a field missing or out of bounds, an Expiration that is not a date. */
  | 'IMDS_BAD_RESPONSE'
  /** The credentials IMDS returned have already expired. */
  | 'IMDS_EXPIRED';

export class ImdsError extends SignerError {
  override readonly code: ImdsErrorCode;
  constructor(code: ImdsErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
  }
}

export const IMDS_DEFAULT_ENDPOINT = 'http://169.254.169.254';
/** The SDK's variable for the IMDS endpoint; set only for the instant the provider reads it (see `withEndpoint`). */
const ENDPOINT_ENV = 'AWS_EC2_METADATA_SERVICE_ENDPOINT';

export interface ImdsCredentialSourceOptions {
  /** Default http://169.254.169.254 (tests: a fake IMDS on 127.0.0.1). Must be http://host[:port]. */
  endpoint?: string;
  /** Per HTTP request, idle socket timeout. Default 2000 ms. */
  timeoutMs?: number;
  /** The clock that decides whether the credentials have expired. Default: the system's. */
  now?: () => Date;
}

export interface ImdsCredentialSource {
  /** The normalised endpoint (origin only), for log lines. */
  readonly endpoint: string;
  /** Fresh credentials of the instance role (a new IMDSv2 session token each time). */
  get(): Promise<Credentials>;
}

function normaliseEndpoint(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ImdsError('IMDS_CONFIG', `IMDS endpoint ${JSON.stringify(raw.slice(0, 200))} is not a URL`);
  }
  // IMDS is plain HTTP on a link-local address; anything else is a misconfiguration, not a feature.
  if (u.protocol !== 'http:') throw new ImdsError('IMDS_CONFIG', `IMDS endpoint must be http://host[:port], got scheme ${u.protocol}`);
  if (u.username !== '' || u.password !== '') throw new ImdsError('IMDS_CONFIG', 'IMDS endpoint must not carry user information');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw new ImdsError('IMDS_CONFIG', 'IMDS endpoint must be http://host[:port] with no path, query or fragment');
  }
  return new URL(u.origin);
}

function intOption(v: number | undefined, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new ImdsError('IMDS_CONFIG', `${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  return v;
}

/**
 * Runs `call` with the SDK's endpoint variable set to `endpoint`. The provider
 * reads the variable synchronously when called (before its first I/O), so the
 * variable is restored before any other code runs and sources with different
 * endpoints in one process do not see each other's (imds.test.ts checks this).
 */
function withEndpoint<T>(endpoint: string, call: () => Promise<T>): Promise<T> {
  const saved = process.env[ENDPOINT_ENV];
  process.env[ENDPOINT_ENV] = endpoint;
  try {
    return call();
  } finally {
    if (saved === undefined) delete process.env[ENDPOINT_ENV];
    else process.env[ENDPOINT_ENV] = saved;
  }
}

/** The library's logger would print what it caught, which may quote a response; nothing leaves through it. */
const SILENT = { debug() {}, info() {}, warn() {}, error() {} };

const TOKEN_HINT =
  'on EC2: is the metadata endpoint enabled (HttpEndpoint=enabled) with IMDSv2? In a container, the token PUT needs HttpPutResponseHopLimit ≥ 2; ' +
  'IMDS refuses token requests that carry X-Forwarded-For (a proxy in between?)';

/** Maps what the library threw to an ImdsError that names the step and status; its message is never passed on. */
function mapError(e: unknown, origin: string, timeoutMs: number): ImdsError {
  if (e instanceof ImdsError) return e;
  const err = e as { name?: unknown; message?: unknown; statusCode?: unknown; code?: unknown } | null;
  const name = typeof err?.name === 'string' ? err.name : '';
  const message = typeof err?.message === 'string' ? err.message : '';
  if (name === 'InstanceMetadataV1FallbackError') {
    return new ImdsError('IMDS_TOKEN', `IMDS at ${origin} issued no IMDSv2 session token (refused, unreachable, or no answer within ${timeoutMs} ms); IMDSv1 is never tried`, { hint: TOKEN_HINT });
  }
  if (e instanceof SyntaxError) return new ImdsError('IMDS_BAD_RESPONSE', 'the credentials document IMDS returned is not valid JSON');
  if (typeof err?.statusCode === 'number') {
    const status = err.statusCode;
    if (message.startsWith('EC2 Metadata token request')) return new ImdsError('IMDS_TOKEN', `IMDS refused the session token request with HTTP ${status}`, { hint: TOKEN_HINT });
    if (status === 401) return new ImdsError('IMDS_TOKEN', 'IMDS rejected the session token it had just issued (HTTP 401)');
    if (status === 404) {
      return new ImdsError('IMDS_NO_ROLE', 'this instance has no IAM role (IMDS has no security credentials: HTTP 404)', {
        hint: 'attach an instance profile whose role may call kms:Decrypt / kms:GenerateDataKey',
      });
    }
    return new ImdsError('IMDS_HTTP', `IMDS answered a credentials request with HTTP ${status}`);
  }
  if (message.startsWith('TimeoutError')) return new ImdsError('IMDS_TIMEOUT', `IMDS at ${origin} did not answer within ${timeoutMs} ms`);
  if (message.startsWith('Unable to connect')) {
    const code = typeof err?.code === 'string' ? err.code : 'error';
    return new ImdsError('IMDS_UNREACHABLE', `cannot reach IMDS at ${origin}: ${code}`, { hint: 'is this an EC2 instance with the metadata service enabled?' });
  }
  if (message.startsWith('Invalid response')) {
    return new ImdsError('IMDS_BAD_RESPONSE', 'IMDS returned a document that is not a credentials document (AccessKeyId, SecretAccessKey, Token, Expiration)', {
      hint: 'check the instance profile and the role trust policy',
    });
  }
  return new ImdsError('IMDS_BAD_RESPONSE', `fetching credentials from IMDS at ${origin} failed (${name || 'error'})`);
}

/** What the library returned, bounded and checked before it goes anywhere near the enclave. */
interface LibraryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
  /** Set by the library's "static stability" when it extended credentials that had expired. */
  originalExpiration?: Date;
}

function checkCredentials(c: LibraryCredentials, now: Date): Credentials {
  const bad = (what: string) => new ImdsError('IMDS_BAD_RESPONSE', `the credentials document IMDS returned has ${what}`);
  if (!/^\w{16,128}$/.test(c.accessKeyId)) throw bad('a malformed AccessKeyId');
  if (c.secretAccessKey.length === 0 || c.secretAccessKey.length > 256) throw bad('no valid SecretAccessKey');
  if (c.sessionToken === undefined || c.sessionToken.length === 0 || c.sessionToken.length > 8192) throw bad('no valid Token');
  const expires = c.originalExpiration ?? c.expiration;
  if (expires === undefined || Number.isNaN(expires.getTime())) throw bad('an Expiration that is not a date');
  if (expires.getTime() <= now.getTime()) {
    throw new ImdsError('IMDS_EXPIRED', `IMDS returned credentials that expired at ${expires.toISOString()} (now ${now.toISOString()})`, {
      hint: 'IMDS could not renew the role session; check the role and the instance clock',
    });
  }
  return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, expiration: expires.toISOString() };
}

export function createImdsCredentialSource(opts: ImdsCredentialSourceOptions = {}): ImdsCredentialSource {
  const base = normaliseEndpoint(opts.endpoint ?? IMDS_DEFAULT_ENDPOINT);
  const timeoutMs = intOption(opts.timeoutMs, 'timeoutMs', 2_000, 1, 60_000);
  const now = opts.now ?? (() => new Date());
  return {
    endpoint: base.origin,
    async get(): Promise<Credentials> {
      // A fresh provider each time: no state of the library's survives a fetch (see the file comment).
      const provider = fromInstanceMetadata({ timeout: timeoutMs, maxRetries: 0, ec2MetadataV1Disabled: true, logger: SILENT });
      let c: LibraryCredentials;
      try {
        c = await withEndpoint(base.origin, () => provider());
      } catch (e) {
        throw mapError(e, base.origin, timeoutMs);
      }
      return checkCredentials(c, now());
    },
  };
}

// ------------------------------------------------------------------ refresher

export interface CredentialRefresherOptions {
  source: { get(): Promise<Credentials> };
  /** Hands credentials to the enclave (`credentials.set`). A rejection counts as a failed refresh. */
  push: (c: Credentials) => Promise<void>;
  log?: (line: string) => void;
  /** Refresh at least this long before expiry (or at 80% of the remaining life, if sooner). Default 5 min. */
  minRefreshBeforeExpiryMs?: number;
  /** Backoff after a failure: doubles from min to max. Defaults 1 s and 60 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Default: the system clock. Scheduling uses setTimeout. */
  now?: () => Date;
}

export interface CredentialRefresher {
  /** Cancels the timer; an attempt in flight finishes without pushing. */
  stop(): void;
  /** When the next attempt is scheduled; undefined while one is running, after stop(), or when the credentials do not expire. */
  readonly next: Date | undefined;
  /** Expiration of the credentials last handed over. */
  readonly expiration: Date | undefined;
  /** Failed attempts since the last success. */
  readonly failures: number;
}

/**
 * Delay until the next refresh: 80% of the remaining life or `minBefore`
 * before expiry, whichever is sooner; never less than min(30 s, half the
 * remaining life), so credentials that IMDS has not rotated yet are asked
 * for again at a calm pace rather than in a loop.
 */
export function refreshDelay(expiration: Date, now: Date, minBeforeMs: number): number {
  const left = expiration.getTime() - now.getTime();
  const wanted = Math.min(Math.floor(left * 0.8), left - minBeforeMs);
  const floor = Math.max(1_000, Math.min(30_000, Math.floor(left / 2)));
  return Math.max(wanted, floor);
}

function describeError(e: unknown): string {
  // Our own errors carry vetted messages; anything else may quote what it failed on, so only its type and code.
  if (e instanceof SignerError) return `${e.code}: ${e.message}`;
  const code = (e as { code?: unknown } | null)?.code;
  const name = e instanceof Error ? e.name : typeof e;
  return typeof code === 'string' ? `${name} ${code}` : name;
}

export function startCredentialRefresher(opts: CredentialRefresherOptions): CredentialRefresher {
  const log = opts.log ?? (() => {});
  const now = opts.now ?? (() => new Date());
  const minBefore = opts.minRefreshBeforeExpiryMs ?? 5 * 60_000;
  const retryMin = opts.retryMinMs ?? 1_000;
  const retryMax = opts.retryMaxMs ?? 60_000;
  for (const [n, v] of [['minRefreshBeforeExpiryMs', minBefore], ['retryMinMs', retryMin], ['retryMaxMs', retryMax]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new ImdsError('IMDS_CONFIG', `${n} must be a non-negative integer, got ${String(v)}`);
  }
  if (retryMin < 1 || retryMax < retryMin) throw new ImdsError('IMDS_CONFIG', 'retryMinMs must be ≥ 1 and retryMaxMs ≥ retryMinMs');

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let next: Date | undefined;
  let expiration: Date | undefined;
  let failures = 0;
  // Every secret value seen so far: scrubbed from log lines even if some error message quoted one.
  const secrets = new Set<string>();
  const say = (line: string) => {
    let out = line;
    for (const s of secrets) if (s.length >= 8) out = out.split(s).join('[redacted]');
    try {
      log(out);
    } catch {
      // A failing logger must not stop the refresher.
    }
  };

  const schedule = (ms: number): Date => {
    const at = new Date(now().getTime() + ms);
    if (stopped) return at;
    next = at;
    timer = setTimeout(attempt, ms);
    timer.unref?.();
    return at;
  };

  async function attempt(): Promise<void> {
    timer = undefined;
    next = undefined;
    if (stopped) return;
    let creds: Credentials;
    try {
      creds = await opts.source.get();
      if (stopped) return;
      secrets.add(creds.secretAccessKey);
      if (creds.sessionToken !== undefined) secrets.add(creds.sessionToken);
      secrets.add(creds.accessKeyId);
      await opts.push(creds);
    } catch (e) {
      if (stopped) return;
      failures++;
      const wait = Math.min(retryMax, retryMin * 2 ** Math.min(failures - 1, 30));
      const left = expiration === undefined ? '' : `; the credentials the enclave holds expire ${expiration.toISOString()}`;
      say(`credentials: refresh failed (${describeError(e)}); attempt ${failures + 1} in ${Math.ceil(wait / 1000)} s${left}`);
      schedule(wait);
      return;
    }
    if (stopped) return;
    failures = 0;
    if (creds.expiration === undefined) {
      expiration = undefined;
      say('credentials: handed over to the enclave (they do not expire; no refresh scheduled)');
      return;
    }
    expiration = new Date(creds.expiration);
    const at = schedule(refreshDelay(expiration, now(), minBefore));
    say(`credentials: handed over to the enclave, expire ${expiration.toISOString()}, next refresh ${at.toISOString()}`);
  }

  void attempt();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      next = undefined;
    },
    get next() {
      return next;
    },
    get expiration() {
      return expiration;
    },
    get failures() {
      return failures;
    },
  };
}
