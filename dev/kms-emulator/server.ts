/**
 * The local KMS emulator: an HTTPS server speaking KMS's JSON 1.1 protocol
 * (`POST /`, `X-Amz-Target: TrentService.<Op>`) so the unmodified
 * @aws-sdk/client-kms can talk to it. Order per request: read the body
 * (capped), verify SigV4, check content type and target, parse JSON, run the
 * operation. Every failure is a KMS-shaped error; nothing a client sends can
 * stop the server or corrupt its state.
 *
 * DEVELOPMENT ONLY: it keeps key material in a local file.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { awsNitroRoot } from '../../attestation/roots.js';
import type { TrustRoot } from '../../attestation/types.js';
import { KmsEmulatorError, KmsError, isKmsError, type KmsErrorType } from './errors.js';
import { OPERATIONS, sweepDeletedKeys, type Caller } from './operations.js';
import { verifySigV4 } from './sigv4.js';
import { presetKey, type PresetKey } from './operations.js';
import { openStateStore, type StateStore } from './state.js';

export interface KmsEmulatorCredential {
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, every request must carry this exact session token. */
  sessionToken?: string;
  /** Who requests signed with this key are, for key policies, e.g. arn:aws:iam::111122223333:role/enclave-parent. */
  principalArn: string;
}

export interface KmsEmulatorOptions {
  /** Directory for state.json (created 0700). */
  dataDir: string;
  /** Loopback only: 127.0.0.1 (default), ::1 or localhost. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default us-east-1. */
  region?: string;
  /** Default 111122223333. */
  accountId?: string;
  credentials: KmsEmulatorCredential[];
  /** Root that Recipient attestation documents must chain to. Default: the AWS Nitro root. */
  attestationRoot?: TrustRoot;
  /** Server certificate and key (PEM); `ca` is handed back as `caPem` for clients. */
  tls: { cert: string; key: string; ca?: string };
  /** One line per request (operation, status, error type, principal, time). Never payloads. */
  log?: (line: string) => void;
  /** Request body cap. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Keys made at start with exactly these key ids (emulator-only; KMS has no
   * such thing): for tests and images that pin a fixed key ARN before the
   * emulator exists, e.g. test/vm builds its EIF with --kms-key-arn of such a
   * key. A key id already in the state is left as it is.
   */
  presetKeys?: PresetKey[];
}

/**
 * Fault knobs for fault-injection tests (test/faults, docs/faults.md). The
 * emulator is dev-only, so these never exist in front of a real KMS:
 * - `delayMs`: every request is answered this much later (a slow KMS);
 * - `refuse`: every authenticated request fails with this KMS error (a KMS
 *   that throttles or breaks: ThrottlingException, KMSInternalException …);
 * - `unreachable`: every TCP connection is dropped as soon as it opens, and
 *   open ones are closed (KMS down or the route to it gone).
 */
export interface KmsFaults {
  delayMs?: number;
  refuse?: KmsErrorType;
  unreachable?: boolean;
}

export interface KmsEmulator {
  /** e.g. https://127.0.0.1:43121 — pass as the SDK's `endpoint`. */
  url: string;
  port: number;
  region: string;
  accountId: string;
  /** The CA to trust, when the caller passed one in `tls.ca`. */
  caPem?: string;
  /** Replaces the fault knobs (an empty object heals the emulator). */
  setFaults(faults: KmsFaults): void;
  /** Requests answered so far (all operations, errors included). */
  readonly requests: number;
  close(): Promise<void>;
}

export const DEFAULT_REGION = 'us-east-1';
export const DEFAULT_ACCOUNT_ID = '111122223333';
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Beyond this we stop draining an oversized body and drop the connection. */
const MAX_DRAIN_BYTES = 16 * 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const TARGET_PREFIX = 'TrentService.';
const PRINCIPAL_RE = /^arn:aws[a-z-]*:(?:iam|sts)::\d{12}:[\x21-\x7e]+$/;

function configError(message: string, hint?: string): KmsEmulatorError {
  return new KmsEmulatorError('KMS_EMU_CONFIG', message, hint === undefined ? {} : { hint });
}

function checkOptions(o: KmsEmulatorOptions): void {
  if (typeof o.dataDir !== 'string' || o.dataDir === '') throw configError('dataDir is required');
  if (o.host !== undefined && !LOOPBACK.has(o.host)) {
    throw configError(`host ${o.host} is not a loopback address`, 'the emulator holds key material in plain files; it listens on 127.0.0.1, ::1 or localhost only');
  }
  if (o.port !== undefined && (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)) throw configError(`port ${String(o.port)} is not 0..65535`);
  if (o.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(o.region)) throw configError(`region ${o.region} does not look like an AWS region (e.g. us-east-1)`);
  if (o.accountId !== undefined && !/^\d{12}$/.test(o.accountId)) throw configError('accountId must be 12 digits');
  if (!Array.isArray(o.credentials) || o.credentials.length === 0) throw configError('at least one credential is required');
  const ids = new Set<string>();
  for (const c of o.credentials) {
    if (typeof c.accessKeyId !== 'string' || !/^[A-Za-z0-9]{4,128}$/.test(c.accessKeyId)) throw configError('accessKeyId must be 4..128 alphanumerics');
    if (ids.has(c.accessKeyId)) throw configError(`access key ${c.accessKeyId} is configured twice`);
    ids.add(c.accessKeyId);
    if (typeof c.secretAccessKey !== 'string' || c.secretAccessKey.length < 8) throw configError(`the secret for ${c.accessKeyId} must be at least 8 characters`);
    if (c.sessionToken !== undefined && (typeof c.sessionToken !== 'string' || c.sessionToken === '')) throw configError('sessionToken must be a non-empty string');
    if (typeof c.principalArn !== 'string' || !PRINCIPAL_RE.test(c.principalArn)) {
      throw configError(`principalArn for ${c.accessKeyId} must be an IAM or STS ARN, e.g. arn:aws:iam::111122223333:role/enclave-parent`);
    }
  }
  if (!o.tls || typeof o.tls.cert !== 'string' || typeof o.tls.key !== 'string') throw configError('tls.cert and tls.key (PEM) are required');
  if (o.maxBodyBytes !== undefined && (!Number.isSafeInteger(o.maxBodyBytes) || o.maxBodyBytes < 1024)) throw configError('maxBodyBytes must be an integer ≥ 1024');
}

type Body = { ok: true; bytes: Uint8Array } | { ok: false; size: number; drained: boolean };

/** Reads the whole body, keeping at most `max` bytes; an oversized body is drained (so keep-alive survives) up to a bound. */
function readBody(req: IncomingMessage, max: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > MAX_DRAIN_BYTES) {
      done = true;
      req.resume();
      resolve({ ok: false, size: declared, drained: false });
      return;
    }
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) chunks.push(c);
      else if (chunks.length > 0) chunks.length = 0;
      if (size > MAX_DRAIN_BYTES && !done) {
        done = true;
        resolve({ ok: false, size, drained: false });
      }
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(size <= max ? { ok: true, bytes: new Uint8Array(Buffer.concat(chunks)) } : { ok: false, size, drained: true });
    });
    req.on('error', (e) => {
      if (!done) {
        done = true;
        reject(e);
      }
    });
  });
}

function send(res: ServerResponse, status: number, requestId: string, body: string, close = false): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': requestId,
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export async function startKmsEmulator(opts: KmsEmulatorOptions): Promise<KmsEmulator> {
  checkOptions(opts);
  const region = opts.region ?? DEFAULT_REGION;
  const accountId = opts.accountId ?? DEFAULT_ACCOUNT_ID;
  const root = opts.attestationRoot ?? awsNitroRoot();
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const credentials = opts.credentials.map((c) => ({ ...c }));
  const log = opts.log ?? (() => {});
  const store: StateStore = openStateStore(opts.dataDir, { region, accountId });
  let faults: KmsFaults = {};
  let requests = 0;
  try {
    for (const k of opts.presetKeys ?? []) presetKey(store, k, new Date());
  } catch (e) {
    store.close();
    throw e;
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    const requestId = randomUUID();
    let op = '-';
    let caller: Caller | undefined;
    const finish = (status: number, payload: unknown, errorType?: string, close = false): void => {
      requests++;
      send(res, status, requestId, payload === undefined ? '' : JSON.stringify(payload), close);
      log(`kms-local ${op} ${status}${errorType ? ` ${errorType}` : ''} ${caller?.principalArn ?? '-'} ${(performance.now() - t0).toFixed(1)}ms`);
    };
    try {
      const body = await readBody(req, maxBody);
      if (!body.ok) {
        const e = new KmsError('ValidationException', `The request body is ${body.size} bytes; this endpoint accepts at most ${maxBody}.`, { status: 413 });
        finish(413, e.body(), e.type, !body.drained);
        return;
      }
      const signed = await verifySigV4({ method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, body: body.bytes }, credentials, {
        region,
        service: 'kms',
      });
      caller = { accessKeyId: signed.credential.accessKeyId, principalArn: signed.credential.principalArn };
      if (faults.delayMs) await new Promise((r) => setTimeout(r, faults.delayMs));
      if (faults.refuse) throw new KmsError(faults.refuse, `injected fault: the emulator refuses every request with ${faults.refuse}`, faults.refuse === 'ThrottlingException' ? {} : { status: 500 });

      const target = header(req, 'x-amz-target') ?? '';
      op = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : target || '-';
      const handler = target.startsWith(TARGET_PREFIX) && Object.hasOwn(OPERATIONS, op) ? OPERATIONS[op] : undefined;
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'POST' || path !== '/' || !handler) {
        throw new KmsError('UnknownOperationException', `${req.method} ${path} with X-Amz-Target ${JSON.stringify(target)} is not an operation of this endpoint`);
      }
      const contentType = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (contentType !== 'application/x-amz-json-1.1' && contentType !== 'application/x-amz-json-1.0') {
        throw new KmsError('SerializationException', `Content-Type must be application/x-amz-json-1.1, not ${JSON.stringify(contentType)}`);
      }
      let input: unknown;
      const text = Buffer.from(body.bytes).toString('utf8');
      try {
        input = text.trim() === '' ? {} : JSON.parse(text);
      } catch {
        throw new KmsError('SerializationException', 'The request body is not valid JSON');
      }
      if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KmsError('SerializationException', 'The request body must be a JSON object');

      const now = new Date();
      sweepDeletedKeys(store, now);
      const out = handler(input as Record<string, unknown>, { store, caller, attestationRoot: root, now });
      finish(200, out ?? {});
    } catch (e) {
      if (isKmsError(e)) {
        finish(e.status, e.body(), e.type);
        return;
      }
      // Our bug or the disk: report it as KMS does, keep serving. Messages here never hold key material.
      const err = e as Error;
      log(`kms-local internal error in ${op}: ${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`);
      const ie = new KmsError('KMSInternalException', 'The request was rejected because an internal exception occurred in the KMS emulator.');
      finish(ie.status, ie.body(), ie.type);
    }
  };

  const server: Server = createServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    if (faults.unreachable) socket.destroy();
  });
  server.on('tlsClientError', () => {
    /* a client that fails the handshake is its own problem; keep serving */
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    store.close();
    throw new KmsEmulatorError('KMS_EMU_LISTEN', `could not listen on ${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}: ${(e as Error).message}`, { cause: e });
  }
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    region,
    accountId,
    ...(opts.tls.ca === undefined ? {} : { caPem: opts.tls.ca }),
    setFaults(f: KmsFaults) {
      faults = { ...f };
      if (faults.unreachable) server.closeAllConnections();
    },
    get requests() {
      return requests;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).finally(() => store.close());
      return closing;
    },
  };
}
