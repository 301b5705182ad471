/**
 * The downstream Ethereum node of proxy mode (`--downstream URL`, issue 12
 * §2): one JSON-RPC client to one HTTP(S) URL, and nothing else. The proxy
 * talks to this node only — with a deadline per call, a cap on the answer's
 * size, and no redirects (a 3xx is an error: a node that sends us elsewhere
 * is not the node the operator named).
 *
 * The node is not trusted to decide anything: it only supplies what a
 * transaction needs filled (nonce, gas, fees) and carries signed bytes to the
 * network. Everything it answers is checked for shape, and its failures reach
 * the client as JSON-RPC errors of their own kind:
 *   DOWNSTREAM_ERROR         the node answered a JSON-RPC error: its code, message and data pass through
 *   DOWNSTREAM_UNAVAILABLE   unreachable, slow (past the deadline), or an HTTP error status → -32002
 *   DOWNSTREAM_BAD_RESPONSE  an answer that is not JSON-RPC, too large, or a redirect → -32603
 *
 * The URL may carry an API key (in its path or user info): it is never
 * logged or put in an error; `describe` names only the origin.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SignerError } from '../common/errors.js';
import { ParentError } from './errors.js';

export type DownstreamErrorCode = 'DOWNSTREAM_ERROR' | 'DOWNSTREAM_UNAVAILABLE' | 'DOWNSTREAM_BAD_RESPONSE';

/** A node's JSON-RPC error object, as the node sent it (message shortened and cleaned). */
export interface NodeRpcError {
  code: number;
  message: string;
  data?: unknown;
}

export class DownstreamError extends SignerError {
  override readonly code: DownstreamErrorCode;
  /** For DOWNSTREAM_ERROR: the node's own error, forwarded to the client. */
  readonly nodeError: NodeRpcError | undefined;

  constructor(code: DownstreamErrorCode, message: string, opts: { cause?: unknown; hint?: string; nodeError?: NodeRpcError } = {}) {
    super(code, message, opts);
    this.code = code;
    this.nodeError = opts.nodeError;
  }
}

export interface DownstreamConfig {
  /** http:// or https:// URL of the node's JSON-RPC endpoint. */
  url: string;
  /** Deadline of one call to the node. Default 10 s (below the clients' usual 30 s, so they hear the reason). */
  timeoutMs?: number;
  /** Largest answer read from the node. Default 8 MiB (eth_getLogs answers can be large). */
  maxBodyBytes?: number;
}

export interface ResolvedDownstreamConfig {
  url: URL;
  timeoutMs: number;
  maxBodyBytes: number;
}

export interface Downstream {
  /** The node's origin (scheme, host, port), safe to log: no path, no credentials. */
  readonly describe: string;
  /** One JSON-RPC call; resolves with `result` or throws a DownstreamError. */
  call(method: string, params: readonly unknown[], signal?: AbortSignal): Promise<unknown>;
}

const MiB = 1024 * 1024;
/** How much of a node's error message is passed on: enough to read, never a flood. */
const MAX_NODE_MESSAGE = 512;

function configError(message: string): ParentError {
  return new ParentError('PARENT_CONFIG', `downstream: ${message}`, { hint: 'use --downstream http(s)://HOST:PORT/path of the Ethereum node' });
}

export function resolveDownstreamConfig(c: DownstreamConfig | string): ResolvedDownstreamConfig {
  const spec = typeof c === 'string' ? { url: c } : c;
  if (spec === null || typeof spec !== 'object' || typeof spec.url !== 'string') throw configError('a URL is required');
  let url: URL;
  try {
    url = new URL(spec.url);
  } catch {
    throw configError('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError(`${url.protocol} is not http: or https:`);
  if (url.hash !== '') throw configError('a URL with a #fragment is not a JSON-RPC endpoint');
  const int = (name: string, v: number | undefined, dflt: number, min: number, max: number) => {
    if (v === undefined) return dflt;
    if (!Number.isSafeInteger(v) || v < min || v > max) throw configError(`${name} must be an integer in ${min}..${max}`);
    return v;
  };
  return {
    url,
    timeoutMs: int('timeoutMs', spec.timeoutMs, 10_000, 10, 600_000),
    maxBodyBytes: int('maxBodyBytes', spec.maxBodyBytes, 8 * MiB, 1024, 256 * MiB),
  };
}

/** Printable, bounded text from the node: control characters out, at most MAX_NODE_MESSAGE characters. */
export function cleanNodeText(s: string): string {
  const t = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return t.length > MAX_NODE_MESSAGE ? `${t.slice(0, MAX_NODE_MESSAGE)}…` : t;
}

function unavailable(origin: string, why: string, cause?: unknown): DownstreamError {
  return new DownstreamError('DOWNSTREAM_UNAVAILABLE', `downstream node ${origin}: ${why}`, {
    hint: 'check that the node is up and reachable from this host (--downstream)',
    ...(cause === undefined ? {} : { cause }),
  });
}

function garbage(origin: string, why: string): DownstreamError {
  return new DownstreamError('DOWNSTREAM_BAD_RESPONSE', `downstream node ${origin} sent an invalid answer: ${why}`, { hint: 'is --downstream the JSON-RPC endpoint of an Ethereum node?' });
}

/** The node's error object, kept only when it has the JSON-RPC shape. */
function nodeErrorOf(origin: string, e: unknown): DownstreamError {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return garbage(origin, 'error is not an object');
  const { code, message, data } = e as Record<string, unknown>;
  if (!Number.isSafeInteger(code) || typeof message !== 'string') return garbage(origin, 'error has no integer code and string message');
  const nodeError: NodeRpcError = { code: code as number, message: cleanNodeText(message) };
  if (data !== undefined) nodeError.data = data;
  return new DownstreamError('DOWNSTREAM_ERROR', nodeError.message, { nodeError });
}

export function createDownstream(cfg: ResolvedDownstreamConfig): Downstream {
  const origin = cfg.url.origin;
  const send = cfg.url.protocol === 'https:' ? httpsRequest : httpRequest;
  let nextId = 1;

  function post(body: string, signal: AbortSignal | undefined): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      const req = send(cfg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(body) },
        // No agent reuse across calls is needed for correctness; keep-alive is the default agent's business.
      });
      const fail = (e: DownstreamError) => finish(() => {
        req.destroy();
        reject(e);
      });
      const timer = setTimeout(() => fail(unavailable(origin, `no answer within ${cfg.timeoutMs} ms`)), cfg.timeoutMs);
      const onAbort = () => fail(unavailable(origin, 'the client went away'));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e: NodeJS.ErrnoException) => fail(unavailable(origin, `unreachable (${e.code ?? e.message})`, e)));
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) return fail(garbage(origin, `HTTP ${status} redirect refused (the proxy talks to the configured node only)`));
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > cfg.maxBodyBytes) return fail(garbage(origin, `answer of ${declared} bytes is over the ${cfg.maxBodyBytes}-byte cap`));
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > cfg.maxBodyBytes) return fail(garbage(origin, `answer is over the ${cfg.maxBodyBytes}-byte cap`));
          chunks.push(c);
        });
        res.on('error', (e) => fail(unavailable(origin, `connection broke while answering (${e.message})`, e)));
        res.on('end', () => finish(() => resolve({ status, text: Buffer.concat(chunks).toString('utf8') })));
      });
      req.end(body);
    });
  }

  return {
    describe: origin,
    async call(method, params, signal) {
      const id = nextId++;
      const { status, text } = await post(JSON.stringify({ jsonrpc: '2.0', id, method, params }), signal);
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        // An HTTP error page (502 from a load balancer, …) is the node being unavailable, not garbage.
        if (status < 200 || status >= 300) throw unavailable(origin, `HTTP ${status}${text ? `: ${cleanNodeText(text).slice(0, 120)}` : ''}`);
        throw garbage(origin, 'not JSON');
      }
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw garbage(origin, 'not a JSON-RPC response object');
      const r = msg as Record<string, unknown>;
      // Some nodes answer JSON-RPC errors with HTTP 4xx/5xx: the JSON-RPC error is what counts.
      if (r.error !== undefined && r.error !== null) throw nodeErrorOf(origin, r.error);
      if (status < 200 || status >= 300) throw unavailable(origin, `HTTP ${status}`);
      if (r.id !== id) throw garbage(origin, 'response id does not match the request');
      if (!('result' in r)) throw garbage(origin, 'no result and no error');
      return r.result;
    },
  };
}
