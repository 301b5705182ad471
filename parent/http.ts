/**
 * JSON-RPC over HTTP, plus the operational endpoints:
 *
 *   POST /          JSON-RPC 2.0 (single or batch); Content-Type must be application/json
 *   GET  /healthz   200 while the process runs
 *   GET  /readyz    200 when the enclave is attested and the keyring unlocked, else 503 + reason
 *   GET  /metrics   Prometheus text format
 *
 * Bodies are capped (413 beyond it, without buffering the rest). Requiring
 * application/json makes any cross-origin browser request a preflighted one,
 * which this server never approves; on TCP the Host header must name the
 * loopback listener itself (DNS rebinding).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from './dispatch.js';
import { MAX_HEADER_FIELDS } from './connections.js';
import { RPC, errorResponse } from './jsonrpc.js';
import { CancellationSource } from '../common/cancellation.js';

export interface HttpHandlerOptions {
  dispatcher: Dispatcher;
  maxBodyBytes: number;
  /** Readiness and its reason, for /readyz. */
  readiness: () => { ready: boolean; body: Record<string, unknown> };
  metrics: () => string;
  /** When set (TCP listener), the Host header must be one of these (lowercase). */
  allowedHosts?: ReadonlySet<string>;
  /** How long a refused request's upload may stall before we answer and close. Default 5 s. */
  drainIdleMs?: number;
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json', extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, v: unknown, extra: Record<string, string> = {}): void {
  send(res, status, `${JSON.stringify(v)}\n`, 'application/json', extra);
}

/** Most of a refused body we read (and discard) so the client can read our answer. */
const DRAIN_LIMIT = 16 * 1024 * 1024;
const DRAIN_IDLE_MS = 5_000;

/**
 * Answers a refused request with an error. The rest of the body is read and
 * discarded first (never buffered; at most DRAIN_LIMIT bytes), because a
 * client still writing its body into a closed socket gets EPIPE instead of
 * our answer.
 *
 * Once the body has been read to its end the request's framing is intact,
 * so the connection stays open (keep-alive) like after any other answer.
 * Closing it there raced the client: node's HTTP client finishes a request
 * with one more (empty) write after the body, and when that write met a
 * socket we had just closed the client reported EPIPE and never read the
 * 413 (the black-box fuzz test lost one answer in a few runs that way). The
 * connection is closed only when the drain is abandoned: the body went on
 * past DRAIN_LIMIT, the upload stalled, or the request stream failed.
 *
 * The drain ends early only when the upload stalls: no byte for `idleMs`.
 * That is checked when the timer fires, one event-loop turn late on purpose:
 * after a stall of our own (GC, a synchronous fsync, a starved CPU) the
 * timers phase runs before the poll phase, so bytes the client sent
 * meanwhile are still unread when the timer fires; setImmediate runs after
 * that poll phase and sees them. A slow upload that keeps moving is bounded
 * by DRAIN_LIMIT and the connection's request deadline instead.
 */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, code: number, message: string, idleMs: number): void {
  let answered = false;
  let timer: NodeJS.Timeout | undefined;
  /** `close`: the body was not read to its end, so the connection cannot carry another request. */
  const answer = (close: boolean) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    req.removeListener('data', discard);
    sendJson(res, status, errorResponse(null, code, message), close ? { connection: 'close' } : {});
  };
  let drained = 0;
  const discard = (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_LIMIT) {
      answer(true);
      req.socket.destroy();
    }
  };
  const arm = () => {
    const seen = drained;
    timer = setTimeout(() => setImmediate(() => (answered ? undefined : drained > seen ? arm() : answer(true))), idleMs);
    timer.unref();
  };
  if (req.complete) return answer(false);
  arm();
  req.on('data', discard);
  req.once('end', () => answer(false));
  req.once('error', () => answer(true));
  req.resume();
}


function isJsonContentType(v: string | undefined): boolean {
  if (v === undefined) return false;
  const [type] = v.split(';');
  return type!.trim().toLowerCase() === 'application/json';
}

export function createHttpHandler(opts: HttpHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const drainIdleMs = opts.drainIdleMs ?? DRAIN_IDLE_MS;
  return (req, res) => {
    // rawHeaders holds name and value of each field node kept: at the cap, some may have been dropped.
    if (req.rawHeaders.length >= 2 * MAX_HEADER_FIELDS) {
      return refuse(req, res, 431, RPC.INVALID_REQUEST, `invalid request: more than ${MAX_HEADER_FIELDS - 1} header fields`, drainIdleMs);
    }
    if (opts.allowedHosts && !opts.allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      return sendJson(res, 403, { error: 'forbidden: the Host header must name this loopback listener' });
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET' });
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const r = opts.readiness();
        return sendJson(res, r.ready ? 200 : 503, r.body);
      }
      return send(res, 200, opts.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
    }
    if (path !== '/') return sendJson(res, 404, { error: 'not found: POST / for JSON-RPC; GET /healthz, /readyz, /metrics' });
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed: JSON-RPC is POST /' }, { allow: 'POST' });
    if (!isJsonContentType(req.headers['content-type'])) {
      return refuse(req, res, 415, RPC.INVALID_REQUEST, 'invalid request: Content-Type must be application/json', drainIdleMs);
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > opts.maxBodyBytes) {
      return refuse(req, res, 413, RPC.INVALID_REQUEST, `invalid request: body larger than ${opts.maxBodyBytes} bytes`, drainIdleMs);
    }

    const gone = new CancellationSource();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort(new Error('client disconnected'));
    });

    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > opts.maxBodyBytes) {
        over = true;
        chunks.length = 0;
        refuse(req, res, 413, RPC.INVALID_REQUEST, `invalid request: body larger than ${opts.maxBodyBytes} bytes`, drainIdleMs);
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => gone.abort(new Error('request stream failed')));
    req.on('end', () => {
      if (over) return;
      const body = Buffer.concat(chunks);
      chunks.length = 0;
      const meta = { receipts: [] as string[] };
      opts.dispatcher.handle(body, gone, meta).then(
        (answer) => {
          if (answer === undefined) {
            if (!res.headersSent && !res.destroyed) {
              res.writeHead(204, { 'cache-control': 'no-store' });
              res.end();
            }
          } else send(res, 200, `${answer}\n`, 'application/json', meta.receipts.length > 0 ? { 'x-enclave-signer-receipt': meta.receipts.join(', ') } : {});
        },
        () => sendJson(res, 500, errorResponse(null, RPC.INTERNAL_ERROR, 'internal error')),
      );
    });
  };
}
