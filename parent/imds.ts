/**
 * The instance role's credentials, fetched from the EC2 instance metadata
 * service with IMDSv2, and a refresher that hands them to the enclave
 * (`credentials.set`) before they expire.
 *
 * IMDSv2, the only version spoken here (no IMDSv1 fallback: a v1 GET is what
 * an SSRF turns into credentials):
 *
 *   PUT /latest/api/token                    X-aws-ec2-metadata-token-ttl-seconds: 21600 → token
 *   GET /latest/meta-data/iam/security-credentials/        X-aws-ec2-metadata-token → role name
 *   GET /latest/meta-data/iam/security-credentials/<role>  X-aws-ec2-metadata-token →
 *       {"Code":"Success","AccessKeyId":…,"SecretAccessKey":…,"Token":…,"Expiration":…}
 *
 * The credentials are temporary and, for KMS, useless without an attestation
 * document that matches the key policy; still, neither they nor the IMDS
 * token ever reach a log line or an error message here: errors name the
 * step and the HTTP status, never a response body.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { SignerError } from '../common/errors.js';
import type { AwsCredentialsWire } from './credentials.js';

/** What `credentials.set` takes (common/protocol/enclave-api.ts); `expiration` is ISO 8601. */
export type Credentials = AwsCredentialsWire;

export type ImdsErrorCode =
  /** An option is wrong (endpoint not http://, timeout out of range, …). */
  | 'IMDS_CONFIG'
  /** No TCP connection to IMDS (refused, unreachable, reset). */
  | 'IMDS_UNREACHABLE'
  /** IMDS did not answer in time (on EC2 inside a container: the PUT hop limit). */
  | 'IMDS_TIMEOUT'
  /** IMDS refused the token request or kept refusing the token. */
  | 'IMDS_TOKEN'
  /** The instance has no IAM role (no instance profile). */
  | 'IMDS_NO_ROLE'
  /** An unexpected HTTP status. */
  | 'IMDS_HTTP'
  /** A response without the expected shape: not JSON, a field missing, Code ≠ Success, too large. */
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
const TOKEN_PATH = '/latest/api/token';
const ROLES_PATH = '/latest/meta-data/iam/security-credentials/';
const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
/** IMDS's own maximum token lifetime. */
const MAX_TOKEN_TTL_S = 21_600;
/** A token is replaced this long before IMDS would stop honouring it. */
const TOKEN_RENEW_MARGIN_MS = 60_000;
/** Answers are a token, a role name or a small JSON document. */
const MAX_BODY_BYTES = 64 * 1024;
/** IAM role names: 1..64 of [A-Za-z0-9+=,.@_-]. Checked because the name becomes a URL path segment. */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;

export interface ImdsCredentialSourceOptions {
  /** Default http://169.254.169.254 (tests: a fake IMDS on 127.0.0.1). Must be http://host[:port]. */
  endpoint?: string;
  /** Per HTTP request, connect to last byte. Default 2000 ms. */
  timeoutMs?: number;
  /** Lifetime asked for the IMDS session token, 1..21600 s. Default 21600. */
  tokenTtlSeconds?: number;
  /** The clock that decides whether a token or the credentials have expired. Default: the system's. */
  now?: () => Date;
}

export interface ImdsCredentialSource {
  /** The normalised endpoint (origin only), for log lines. */
  readonly endpoint: string;
  /** Fresh credentials of the instance role (the token is reused while valid). */
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

interface HttpAnswer {
  status: number;
  body: string;
}

/** One HTTP exchange with IMDS. Errors describe the step, never the payload. */
function exchange(base: URL, method: 'GET' | 'PUT', path: string, headers: Record<string, string>, timeoutMs: number, step: string): Promise<HttpAnswer> {
  const url = new URL(path, base);
  return new Promise<HttpAnswer>((resolve, reject) => {
    let settled = false;
    const signal = AbortSignal.timeout(timeoutMs);
    const timedOut = () =>
      new ImdsError('IMDS_TIMEOUT', `IMDS at ${base.origin} did not answer ${step} within ${timeoutMs} ms`, {
        hint: 'on EC2: is the metadata endpoint enabled (HttpEndpoint=enabled)? In a container, the token PUT needs HttpPutResponseHopLimit ≥ 2',
      });
    const dropped = () => new ImdsError('IMDS_UNREACHABLE', `IMDS at ${base.origin} dropped the connection while answering ${step}`);
    const fail = (e: ImdsError) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(e);
    };
    const req = httpRequest(url, {
      method,
      headers: { ...headers, 'content-length': '0' },
      // A fresh connection each time: nothing pooled outlives a refresh, and a restarted IMDS is no surprise.
      agent: false,
      signal,
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (signal.aborted) {
        fail(timedOut());
        return;
      }
      const code = typeof e.code === 'string' ? e.code : e.name;
      fail(new ImdsError('IMDS_UNREACHABLE', `cannot reach IMDS at ${base.origin} (${step}): ${code}`, { hint: 'is this an EC2 instance with the metadata service enabled?' }));
    });
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          fail(new ImdsError('IMDS_BAD_RESPONSE', `IMDS answer to ${step} exceeds ${MAX_BODY_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', () => fail(signal.aborted ? timedOut() : dropped()));
      res.on('close', () => {
        if (!res.complete) fail(signal.aborted ? timedOut() : dropped());
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, body: buf.toString('utf8') });
        buf.fill(0);
        for (const c of chunks) c.fill(0);
      });
    });
    req.end();
  });
}

function parseCredentials(body: string, role: string, now: Date): Credentials {
  // JSON.parse's own message quotes the input; the input holds the secret. Say only what went wrong.
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new ImdsError('IMDS_BAD_RESPONSE', `the credentials document for role ${role} is not valid JSON (${body.length} characters)`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ImdsError('IMDS_BAD_RESPONSE', `the credentials document for role ${role} is not a JSON object`);
  }
  const o = doc as Record<string, unknown>;
  if (o.Code !== undefined && o.Code !== 'Success') {
    const code = typeof o.Code === 'string' && /^[\w.-]{1,64}$/.test(o.Code) ? o.Code : '(unprintable)';
    throw new ImdsError('IMDS_BAD_RESPONSE', `IMDS reports Code ${code} for role ${role}`, { hint: 'check the instance profile and the role trust policy' });
  }
  const field = (name: string, max: number): string => {
    const v = o[name];
    if (typeof v !== 'string' || v.length === 0 || v.length > max) {
      throw new ImdsError('IMDS_BAD_RESPONSE', `the credentials document for role ${role} has no valid ${name}`);
    }
    return v;
  };
  const accessKeyId = field('AccessKeyId', 128);
  if (!/^\w{16,128}$/.test(accessKeyId)) throw new ImdsError('IMDS_BAD_RESPONSE', `the credentials document for role ${role} has a malformed AccessKeyId`);
  const secretAccessKey = field('SecretAccessKey', 256);
  const sessionToken = field('Token', 8192);
  const expirationRaw = field('Expiration', 64);
  const expires = new Date(expirationRaw);
  if (Number.isNaN(expires.getTime())) {
    throw new ImdsError('IMDS_BAD_RESPONSE', `the credentials document for role ${role} has an Expiration that is not a date`);
  }
  if (expires.getTime() <= now.getTime()) {
    throw new ImdsError('IMDS_EXPIRED', `IMDS returned credentials for role ${role} that expired at ${expires.toISOString()} (now ${now.toISOString()})`, {
      hint: 'IMDS could not renew the role session; check the role and the instance clock',
    });
  }
  return { accessKeyId, secretAccessKey, sessionToken, expiration: expires.toISOString() };
}

export function createImdsCredentialSource(opts: ImdsCredentialSourceOptions = {}): ImdsCredentialSource {
  const base = normaliseEndpoint(opts.endpoint ?? IMDS_DEFAULT_ENDPOINT);
  const timeoutMs = intOption(opts.timeoutMs, 'timeoutMs', 2_000, 1, 60_000);
  const ttlS = intOption(opts.tokenTtlSeconds, 'tokenTtlSeconds', MAX_TOKEN_TTL_S, 1, MAX_TOKEN_TTL_S);
  const now = opts.now ?? (() => new Date());

  let token: { value: string; renewAt: number } | undefined;

  async function fetchToken(): Promise<string> {
    const t0 = now().getTime();
    const r = await exchange(base, 'PUT', TOKEN_PATH, { [TTL_HEADER]: String(ttlS) }, timeoutMs, 'the token request');
    if (r.status !== 200) {
      throw new ImdsError('IMDS_TOKEN', `IMDS refused the session token request with HTTP ${r.status}`, {
        hint: r.status === 403 ? 'IMDS refuses token requests that carry X-Forwarded-For (a proxy in between?)' : 'is IMDSv2 enabled on this instance?',
      });
    }
    const value = r.body.trim();
    // Tokens are opaque base64-ish text; anything else would end up in a header.
    if (!/^[\w+/=.-]{1,4096}$/.test(value)) throw new ImdsError('IMDS_BAD_RESPONSE', 'IMDS answered the token request with something that is not a token');
    token = { value, renewAt: t0 + ttlS * 1000 - Math.min(TOKEN_RENEW_MARGIN_MS, (ttlS * 1000) / 2) };
    return value;
  }

  /** A GET with the session token; a 401 (token expired, IMDS restarted) gets one new token and one retry. */
  async function get(path: string, step: string): Promise<HttpAnswer> {
    let value = token !== undefined && now().getTime() < token.renewAt ? token.value : await fetchToken();
    let r = await exchange(base, 'GET', path, { [TOKEN_HEADER]: value }, timeoutMs, step);
    if (r.status === 401) {
      token = undefined;
      value = await fetchToken();
      r = await exchange(base, 'GET', path, { [TOKEN_HEADER]: value }, timeoutMs, step);
      if (r.status === 401) throw new ImdsError('IMDS_TOKEN', `IMDS rejected a fresh session token for ${step} (HTTP 401)`);
    }
    return r;
  }

  return {
    endpoint: base.origin,
    async get(): Promise<Credentials> {
      const roles = await get(ROLES_PATH, 'the role list');
      if (roles.status === 404) {
        throw new ImdsError('IMDS_NO_ROLE', 'this instance has no IAM role (IMDS lists no security credentials)', {
          hint: 'attach an instance profile whose role may call kms:Decrypt / kms:GenerateDataKey',
        });
      }
      if (roles.status !== 200) throw new ImdsError('IMDS_HTTP', `IMDS answered the role list with HTTP ${roles.status}`);
      const role = roles.body.split('\n').map((l) => l.trim()).find((l) => l !== '');
      if (role === undefined) throw new ImdsError('IMDS_NO_ROLE', 'this instance has no IAM role (the role list is empty)');
      if (!ROLE_NAME.test(role)) throw new ImdsError('IMDS_BAD_RESPONSE', 'IMDS listed a role name that is not a valid IAM role name');

      const doc = await get(ROLES_PATH + encodeURIComponent(role), `the credentials of role ${role}`);
      if (doc.status === 404) throw new ImdsError('IMDS_NO_ROLE', `IMDS has no credentials for role ${role} (HTTP 404)`);
      if (doc.status !== 200) throw new ImdsError('IMDS_HTTP', `IMDS answered the credentials request for role ${role} with HTTP ${doc.status}`);
      return parseCredentials(doc.body, role, now());
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
