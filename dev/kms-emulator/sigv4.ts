/**
 * AWS Signature Version 4 (AWS4-HMAC-SHA256) verification, from the raw
 * request as it arrived. The emulator knows each client's secret, so it
 * verifies by signing again: the received method, path and query exactly as
 * sent, the headers the client says it signed and the body we actually
 * received go through `@smithy/signature-v4` (the signer the AWS SDK itself
 * uses) with the same date, scope and credential, and the two signatures are
 * compared in constant time. No canonicalisation is written here.
 *
 * What stays here is what a signer does not decide: who the access key is,
 * the scope (region, service, date) and clock skew, which headers must be
 * signed, session tokens, and that an `x-amz-content-sha256` header equals
 * the hash of the received bytes (nothing the client claims about the body
 * is trusted).
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, HttpRequest, SourceData } from '@smithy/types';
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

/** SHA-256 (or HMAC-SHA-256 with a secret) from node:crypto, in the shape @smithy/signature-v4 asks for. */
class NodeSha256 implements Checksum {
  private h: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.h = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const s = this.secret;
    return createHmac('sha256', typeof s === 'string' ? s : ArrayBuffer.isView(s) ? new Uint8Array(s.buffer, s.byteOffset, s.byteLength) : new Uint8Array(s));
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    this.h = this.fresh();
  }
}

function signer(credential: SigV4Credential, region: string, service: string): SignatureV4 {
  const credentials = { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey, ...(credential.sessionToken === undefined ? {} : { sessionToken: credential.sessionToken }) };
  // applyChecksum off: KMS requests carry no x-amz-content-sha256 unless the client put one there (and signed it).
  return new SignatureV4({ credentials, region, service, sha256: NodeSha256, uriEscapePath: true, applyChecksum: false });
}

function invalidSignature(message: string): KmsError {
  return new KmsError('InvalidSignatureException', message);
}

/** Collects headers by lowercase name; repeated headers join with ',' as SigV4 specifies. */
export function headerMap(rawHeaders: string[]): Map<string, string> {
  const m = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const list = m.get(name) ?? [];
    list.push(rawHeaders[i + 1]!.trim());
    m.set(name, list);
  }
  return new Map([...m].map(([k, v]) => [k, v.join(',')]));
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
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

/** The request target split into the raw path and the decoded query, as a smithy HttpRequest holds them. */
function splitTarget(url: string): { path: string; query: Record<string, string | string[]> } {
  const q = url.indexOf('?');
  const query: Record<string, string | string[]> = {};
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(url.slice(q + 1))) {
      const had = query[k];
      query[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
    }
  }
  return { path: q < 0 ? url : url.slice(0, q), query };
}

interface ParsedAuthorization {
  accessKeyId: string;
  scopeDate: string;
  scopeRegion: string;
  scopeService: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(headers: Map<string, string>): ParsedAuthorization {
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
  return { accessKeyId, scopeDate, scopeRegion, scopeService, terminator, signedHeaders: m[2]!.split(';'), signature: m[3]!.toLowerCase() };
}

function checkScope(a: ParsedAuthorization, expect: SigV4Expectations): void {
  if (a.terminator !== 'aws4_request') throw invalidSignature("Credential should be scoped with a valid terminator: 'aws4_request'");
  if (a.scopeService !== expect.service) throw invalidSignature(`Credential should be scoped to correct service: '${expect.service}'.`);
  if (a.scopeRegion !== expect.region) {
    throw invalidSignature(`Credential should be scoped to a valid region. This emulator serves '${expect.region}', not '${a.scopeRegion}'.`);
  }
}

/** Signed header list must be lowercase, sorted, unique, and cover what binds the request. */
function checkSignedHeaders(signedHeaders: readonly string[]): void {
  for (let i = 0; i < signedHeaders.length; i++) {
    const h = signedHeaders[i]!;
    if (h === '' || h !== h.toLowerCase()) throw invalidSignature('SignedHeaders must be lowercase header names');
    if (i > 0 && signedHeaders[i - 1]! >= h) throw invalidSignature('SignedHeaders must be sorted and unique');
  }
  for (const h of [...REQUIRED_SIGNED, 'x-amz-date']) {
    if (!signedHeaders.includes(h)) throw invalidSignature(`'${h}' must be a signed header`);
  }
}

function checkDate(headers: Map<string, string>, a: ParsedAuthorization, now: Date): Date {
  const dateHeader = headers.get('x-amz-date');
  if (dateHeader === undefined) throw invalidSignature('the request has no X-Amz-Date header');
  const amzDate = parseAmzDate(dateHeader);
  if (!amzDate) throw invalidSignature(`X-Amz-Date '${dateHeader}' is not in the form YYYYMMDD'T'HHMMSS'Z'`);
  if (a.scopeDate !== dateHeader.slice(0, 8)) throw invalidSignature(`Credential date ${a.scopeDate} does not match X-Amz-Date ${dateHeader}`);
  if (Math.abs(now.getTime() - amzDate.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw invalidSignature(`Signature expired: ${dateHeader} is more than 15 minutes from the server time ${now.toISOString()}`);
  }
  return amzDate;
}

function checkSessionToken(headers: Map<string, string>, credential: SigV4Credential, signedHeaders: readonly string[]): void {
  const token = headers.get('x-amz-security-token');
  if (credential.sessionToken !== undefined) {
    if (token === undefined || !constantTimeEqualStrings(token, credential.sessionToken)) {
      throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    if (!signedHeaders.includes('x-amz-security-token')) throw invalidSignature("'x-amz-security-token' must be a signed header");
  } else if (token !== undefined) {
    throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
}

/** Pulls the Signature=… hex out of an Authorization header the signer produced. */
function signatureOf(authorization: unknown): { signature: string; signedHeaders: string } {
  const m = typeof authorization === 'string' ? /SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)$/.exec(authorization) : null;
  if (!m) throw new Error('the SigV4 signer produced no signature');
  return { signedHeaders: m[1]!, signature: m[2]! };
}

/**
 * Verifies the Authorization header of `req` against `credentials`. Returns
 * the matching credential; throws KmsError (MissingAuthenticationToken,
 * UnrecognizedClient, InvalidSignature) otherwise.
 */
export async function verifySigV4<C extends SigV4Credential>(req: RawRequest, credentials: readonly C[], expect: SigV4Expectations): Promise<SignedBy<C>> {
  const headers = headerMap(req.rawHeaders);
  const a = parseAuthorization(headers);
  const credential = credentials.find((c) => constantTimeEqualStrings(c.accessKeyId, a.accessKeyId));
  if (!credential) throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  checkScope(a, expect);
  checkSignedHeaders(a.signedHeaders);
  const amzDate = checkDate(headers, a, expect.now ?? new Date());
  checkSessionToken(headers, credential, a.signedHeaders);

  const claimed = headers.get('x-amz-content-sha256');
  if (claimed !== undefined && claimed.toLowerCase() !== sha256Hex(req.body)) {
    throw invalidSignature('x-amz-content-sha256 does not match the SHA-256 of the request body');
  }

  // Only the headers the client listed go to the signer, and all of them are signable for it.
  const signed: Record<string, string> = {};
  for (const h of a.signedHeaders) {
    const v = headers.get(h);
    if (v === undefined) throw invalidSignature(`signed header '${h}' is not present in the request`);
    signed[h] = v;
  }
  const { path, query } = splitTarget(req.url);
  const host = signed.host!;
  const request: HttpRequest = { method: req.method.toUpperCase(), protocol: 'https:', hostname: host, path, query, headers: signed, body: req.body };
  const ours = await signer(credential, a.scopeRegion, a.scopeService).sign(request, { signingDate: amzDate, signableHeaders: new Set(a.signedHeaders) });
  const expected = signatureOf(ours.headers.authorization);
  const given = Buffer.from(a.signature, 'hex');
  const want = Buffer.from(expected.signature, 'hex');
  if (expected.signedHeaders !== a.signedHeaders.join(';') || given.length !== want.length || !timingSafeEqual(given, want)) {
    throw invalidSignature(
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  return { credential, signedHeaders: a.signedHeaders, amzDate };
}

/**
 * Signs a request the way the SDK does (for tests that send hand-made
 * requests: malformed JSON, unknown targets). Returns the headers to add,
 * lowercase, without `host`.
 */
export async function signRequestHeaders(
  input: { method: string; url: string; host: string; headers: Record<string, string>; body: Uint8Array | string },
  credential: SigV4Credential,
  region: string,
  service: string,
  now: Date = new Date(),
): Promise<Record<string, string>> {
  const body = typeof input.body === 'string' ? new TextEncoder().encode(input.body) : input.body;
  const headers = { ...Object.fromEntries(Object.entries(input.headers).map(([k, v]) => [k.toLowerCase(), v])), host: input.host };
  const { path, query } = splitTarget(input.url);
  const request: HttpRequest = { method: input.method, protocol: 'https:', hostname: input.host, path, query, headers, body };
  const out = { ...(await signer(credential, region, service).sign(request, { signingDate: now })).headers };
  delete out.host;
  return out;
}
