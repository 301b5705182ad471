/**
 * AWS Signature Version 4 (AWS4-HMAC-SHA256) verification, from the raw
 * request as it arrived: the canonical request is rebuilt from the method,
 * the path and query exactly as sent, the headers the client says it signed,
 * and the SHA-256 of the body we actually received. Nothing the client
 * claims about the body is trusted: an `x-amz-content-sha256` header must
 * equal the hash of the received bytes.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { KmsError } from './errors.js';

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** How far X-Amz-Date may be from our clock, either way (AWS allows 15 minutes). */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export interface SigV4Credential {
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, requests must carry exactly this `x-amz-security-token`, signed. */
  sessionToken?: string;
}

export interface RawRequest {
  method: string;
  /** Request target as sent: path plus optional `?query`, still percent-encoded. */
  url: string;
  /** Node's `rawHeaders`: [name, value, name, value, …] in arrival order. */
  rawHeaders: string[];
  body: Uint8Array;
}

export interface SigV4Expectations {
  region: string;
  service: string;
  now?: Date;
}

export interface SignedBy<C extends SigV4Credential> {
  credential: C;
  signedHeaders: string[];
  amzDate: Date;
}

/** Headers the client must sign: without them a signature could be replayed on another host or operation. */
const REQUIRED_SIGNED = ['host', 'x-amz-target'];

const AUTH_RE =
  /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$/;
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

function invalidSignature(message: string): KmsError {
  return new KmsError('InvalidSignatureException', message);
}

/** RFC 3986 escaping as the AWS SDKs do it (encodeURIComponent plus !'()*). */
export function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Collects headers by lowercase name; repeated headers join with ',' as SigV4 specifies. */
export function headerMap(rawHeaders: string[]): Map<string, string> {
  const m = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const list = m.get(name) ?? [];
    list.push(rawHeaders[i + 1]!);
    m.set(name, list);
  }
  return new Map([...m].map(([k, v]) => [k, v.map(canonicalHeaderValue).join(',')]));
}

function canonicalHeaderValue(v: string): string {
  return v.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').trim();
}

/** Canonical URI for non-S3 services: normalized segments, then encoded once more (AWS "double encoding"). */
export function canonicalPath(rawPath: string): string {
  const segments: string[] = [];
  for (const s of rawPath.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segments.pop();
    else segments.push(s);
  }
  const normalized = `${rawPath.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && rawPath.endsWith('/') ? '/' : ''}`;
  return escapeUri(normalized).replace(/%2F/g, '/');
}

export function canonicalQuery(rawQuery: string): string {
  if (rawQuery === '') return '';
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeComponent(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : decodeComponent(part.slice(eq + 1));
    if (k.toLowerCase() === 'x-amz-signature') continue;
    pairs.push([escapeUri(k), escapeUri(v)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, '%20'));
  } catch {
    throw invalidSignature('the request query string is not valid percent-encoding');
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Uint8Array | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request"). */
export function signingKey(secretAccessKey: string, date: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secretAccessKey}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

function parseAmzDate(s: string): Date | undefined {
  const m = AMZ_DATE_RE.exec(s);
  if (!m) return undefined;
  const d = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function constantTimeEqualStrings(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // Lengths are not secret (a token's length is public); the bytes are.
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}

/**
 * Verifies the Authorization header of `req` against `credentials`. Returns
 * the matching credential; throws KmsError (MissingAuthenticationToken,
 * UnrecognizedClient, InvalidSignature) otherwise.
 */
export function verifySigV4<C extends SigV4Credential>(req: RawRequest, credentials: readonly C[], expect: SigV4Expectations): SignedBy<C> {
  const headers = headerMap(req.rawHeaders);
  const auth = headers.get('authorization');
  if (auth === undefined || auth === '') {
    throw new KmsError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  }
  const m = AUTH_RE.exec(auth);
  if (!m) {
    throw new KmsError('InvalidSignatureException', `Authorization header is not ${SIGV4_ALGORITHM} with Credential, SignedHeaders and Signature`, {
      hint: 'only SigV4 header authentication is supported (no presigned URLs, no SigV4a)',
    });
  }
  const scopeParts = m[1]!.split('/');
  if (scopeParts.length !== 5) throw invalidSignature('Credential must be <access key>/<date>/<region>/<service>/aws4_request');
  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator] = scopeParts as [string, string, string, string, string];
  const signedHeaders = m[2]!.split(';');
  const signature = m[3]!.toLowerCase();

  const credential = credentials.find((c) => constantTimeEqualStrings(c.accessKeyId, accessKeyId));
  if (!credential) throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');

  if (terminator !== 'aws4_request') throw invalidSignature("Credential should be scoped with a valid terminator: 'aws4_request'");
  if (scopeService !== expect.service) throw invalidSignature(`Credential should be scoped to correct service: '${expect.service}'.`);
  if (scopeRegion !== expect.region) {
    throw invalidSignature(`Credential should be scoped to a valid region. This emulator serves '${expect.region}', not '${scopeRegion}'.`);
  }

  // Signed header list must be lowercase, sorted, unique, and cover what binds the request.
  for (let i = 0; i < signedHeaders.length; i++) {
    const h = signedHeaders[i]!;
    if (h === '' || h !== h.toLowerCase()) throw invalidSignature('SignedHeaders must be lowercase header names');
    if (i > 0 && signedHeaders[i - 1]! >= h) throw invalidSignature('SignedHeaders must be sorted and unique');
  }
  for (const h of REQUIRED_SIGNED) {
    if (!signedHeaders.includes(h)) throw invalidSignature(`'${h}' must be a signed header`);
  }

  const dateHeader = headers.get('x-amz-date');
  if (dateHeader === undefined) throw invalidSignature('the request has no X-Amz-Date header');
  if (!signedHeaders.includes('x-amz-date')) throw invalidSignature("'x-amz-date' must be a signed header");
  const amzDate = parseAmzDate(dateHeader);
  if (!amzDate) throw invalidSignature(`X-Amz-Date '${dateHeader}' is not in the form YYYYMMDD'T'HHMMSS'Z'`);
  if (scopeDate !== dateHeader.slice(0, 8)) throw invalidSignature(`Credential date ${scopeDate} does not match X-Amz-Date ${dateHeader}`);
  const now = expect.now ?? new Date();
  if (Math.abs(now.getTime() - amzDate.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw invalidSignature(`Signature expired: ${dateHeader} is more than 15 minutes from the server time ${now.toISOString()}`);
  }

  const token = headers.get('x-amz-security-token');
  if (credential.sessionToken !== undefined) {
    if (token === undefined || !constantTimeEqualStrings(token, credential.sessionToken)) {
      throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    if (!signedHeaders.includes('x-amz-security-token')) throw invalidSignature("'x-amz-security-token' must be a signed header");
  } else if (token !== undefined) {
    throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }

  const bodyHash = sha256Hex(req.body);
  const claimed = headers.get('x-amz-content-sha256');
  if (claimed !== undefined && claimed.toLowerCase() !== bodyHash) {
    throw invalidSignature('x-amz-content-sha256 does not match the SHA-256 of the request body');
  }
  const payloadHash = claimed ?? bodyHash;

  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
  const canonicalHeaders = signedHeaders.map((h) => {
    const v = headers.get(h);
    if (v === undefined) throw invalidSignature(`signed header '${h}' is not present in the request`);
    return `${h}:${v}\n`;
  });
  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalPath(rawPath),
    canonicalQuery(rawQuery),
    canonicalHeaders.join(''),
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${scopeDate}/${scopeRegion}/${scopeService}/aws4_request`;
  const stringToSign = `${SIGV4_ALGORITHM}\n${dateHeader}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const key = signingKey(credential.secretAccessKey, scopeDate, scopeRegion, scopeService);
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest();
  key.fill(0);
  const given = Buffer.from(signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw invalidSignature(
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  return { credential, signedHeaders, amzDate };
}

/**
 * Signs a request the way the SDK does (for tests that send hand-made
 * requests: malformed JSON, unknown targets). Returns the headers to add.
 */
export function signRequestHeaders(
  input: { method: string; url: string; host: string; headers: Record<string, string>; body: Uint8Array | string },
  credential: SigV4Credential,
  region: string,
  service: string,
  now: Date = new Date(),
): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const body = typeof input.body === 'string' ? new TextEncoder().encode(input.body) : input.body;
  const all: Record<string, string> = { ...lowerKeys(input.headers), host: input.host, 'x-amz-date': amzDate };
  if (credential.sessionToken !== undefined) all['x-amz-security-token'] = credential.sessionToken;
  const names = Object.keys(all).sort();
  const q = input.url.indexOf('?');
  const canonicalRequest = [
    input.method,
    canonicalPath(q < 0 ? input.url : input.url.slice(0, q)),
    canonicalQuery(q < 0 ? '' : input.url.slice(q + 1)),
    names.map((n) => `${n}:${canonicalHeaderValue(all[n]!)}\n`).join(''),
    names.join(';'),
    sha256Hex(body),
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const sts = `${SIGV4_ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const sig = createHmac('sha256', signingKey(credential.secretAccessKey, date, region, service)).update(sts).digest('hex');
  const out: Record<string, string> = { ...all };
  delete out.host;
  out.authorization = `${SIGV4_ALGORITHM} Credential=${credential.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}`;
  return out;
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}
