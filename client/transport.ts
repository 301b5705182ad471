/**
 * How requests reach the signing socket: geth-style IPC (JSON values over a
 * Unix socket, one connection kept open and reopened when it drops) or HTTP
 * (an http:// URL, or HTTP over the Unix socket). A transport sends one
 * JSON-RPC request and resolves with its raw response object; retries and
 * error mapping are the client's (client.ts).
 */
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { EnclaveSignerConnectionError } from './errors.js';

export interface RpcRequest {
  jsonrpc: '2.0';
  id: string | number;
  method: string;
  params?: unknown;
  /** Extra members (e.g. a principal's signature, when the signer asks for one). */
  [k: string]: unknown;
}

export interface RpcResponse {
  id: unknown;
  result?: unknown;
  error?: unknown;
}

export interface Transport {
  send(req: RpcRequest, timeoutMs: number): Promise<RpcResponse>;
  close(): void;
}

/** Largest answer accepted (a PSBT or an attestation document fits easily). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

function checkResponse(v: unknown): RpcResponse {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !('id' in v) || !('result' in v || 'error' in v)) {
    throw new EnclaveSignerConnectionError('the signer answered with something that is not a JSON-RPC response');
  }
  return v as RpcResponse;
}

function timeoutError(method: string, ms: number): EnclaveSignerConnectionError {
  return new EnclaveSignerConnectionError(`${method}: no answer within ${ms} ms`);
}

/**
 * IPC: one connection, opened on first use and reopened by the next request
 * after it drops. Answers are matched by id (they may arrive in any order).
 * Requests in flight when the connection drops fail with a connection error;
 * whether to resend is the client's decision.
 */
export function ipcTransport(path: string): Transport {
  let sock: Socket | undefined;
  let connecting: Promise<Socket> | undefined;
  const pending = new Map<string, { resolve: (r: RpcResponse) => void; reject: (e: Error) => void }>();
  let buf = '';
  let closed = false;

  const failAll = (e: Error) => {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };

  const onData = (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_RESPONSE_BYTES) {
      sock?.destroy();
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        sock?.destroy(new EnclaveSignerConnectionError('the signer sent a line that is not JSON'));
        return;
      }
      for (const item of Array.isArray(v) ? v : [v]) {
        const id = (item as { id?: unknown } | null)?.id;
        const p = pending.get(JSON.stringify(id ?? null));
        if (!p) continue;
        pending.delete(JSON.stringify(id));
        if (pending.size === 0) sock?.unref();
        try {
          p.resolve(checkResponse(item));
        } catch (e) {
          p.reject(e as Error);
        }
      }
    }
  };

  function open(): Promise<Socket> {
    if (sock && !sock.destroyed) return Promise.resolve(sock);
    connecting ??= new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.setEncoding('utf8');
      s.once('connect', () => {
        // An idle connection does not keep the process alive; one with requests in flight does.
        if (pending.size === 0) s.unref();
        sock = s;
        buf = '';
        connecting = undefined;
        resolve(s);
      });
      s.on('data', onData);
      s.on('error', (e) => {
        if (sock !== s) {
          connecting = undefined;
          reject(new EnclaveSignerConnectionError(`cannot connect to ${path}: ${e.message}`, { cause: e }));
        }
      });
      s.on('close', () => {
        if (sock === s) sock = undefined;
        failAll(new EnclaveSignerConnectionError(`the connection to ${path} closed`));
      });
    });
    return connecting;
  }

  return {
    async send(req, timeoutMs) {
      if (closed) throw new EnclaveSignerConnectionError('the client is closed');
      const s = await open();
      const key = JSON.stringify(req.id);
      return new Promise<RpcResponse>((resolve, reject) => {
        s.ref();
        const t = setTimeout(() => {
          pending.delete(key);
          if (pending.size === 0) s.unref();
          reject(timeoutError(req.method, timeoutMs));
        }, timeoutMs);
        pending.set(key, {
          resolve: (r) => {
            clearTimeout(t);
            resolve(r);
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        });
        s.write(`${JSON.stringify(req)}\n`);
      });
    },
    close() {
      closed = true;
      sock?.destroy();
      failAll(new EnclaveSignerConnectionError('the client is closed'));
    },
  };
}

/** HTTP: an http(s):// URL (fetch), or `socketPath` for HTTP over the Unix socket. */
export function httpTransport(target: { url: string } | { socketPath: string }): Transport {
  return {
    async send(req, timeoutMs) {
      const body = JSON.stringify(req);
      let text: string;
      if ('url' in target) {
        let res: Response;
        try {
          res = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
        } catch (e) {
          throw new EnclaveSignerConnectionError(`${req.method}: ${target.url}: ${(e as Error).message}`, { cause: e });
        }
        text = await boundedText(res, req.method);
        if (!text) throw new EnclaveSignerConnectionError(`${req.method}: HTTP ${res.status} without a body`);
      } else {
        text = await unixHttp(target.socketPath, body, req.method, timeoutMs);
      }
      let res: RpcResponse;
      try {
        res = checkResponse(JSON.parse(text));
      } catch (e) {
        if (e instanceof EnclaveSignerConnectionError) throw e;
        throw new EnclaveSignerConnectionError(`${req.method}: the signer's answer is not JSON`);
      }
      // One request per HTTP exchange: an answer naming another id is not the answer to this request.
      if (res.id !== req.id) throw new EnclaveSignerConnectionError(`${req.method}: the signer answered another request (id ${JSON.stringify(res.id)?.slice(0, 40)})`);
      return res;
    },
    close() {},
  };
}

/** The body as text, at most MAX_RESPONSE_BYTES (a host could otherwise send an endless one). */
async function boundedText(res: Response, method: string): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_RESPONSE_BYTES) {
        await reader.cancel().catch(() => {});
        throw new EnclaveSignerConnectionError(`${method}: answer too large`);
      }
      text += decoder.decode(value, { stream: true });
    }
  } catch (e) {
    if (e instanceof EnclaveSignerConnectionError) throw e;
    throw new EnclaveSignerConnectionError(`${method}: ${(e as Error).message}`, { cause: e });
  }
  return text + decoder.decode();
}

function unixHttp(socketPath: string, body: string, method: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = httpRequest({ socketPath, path: '/', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (text.length > MAX_RESPONSE_BYTES) res.destroy(new EnclaveSignerConnectionError(`${method}: answer too large`));
      });
      res.on('end', () => (text ? resolve(text) : reject(new EnclaveSignerConnectionError(`${method}: HTTP ${res.statusCode} without a body`))));
      res.on('error', (e) => reject(e instanceof EnclaveSignerConnectionError ? e : new EnclaveSignerConnectionError(`${method}: ${e.message}`, { cause: e })));
    });
    r.on('timeout', () => r.destroy(timeoutError(method, timeoutMs)));
    // `timeout` above is the socket's idle time: a host dripping a byte now and then would never
    // trip it. The deadline is for the whole exchange, as over IPC.
    const deadline = setTimeout(() => r.destroy(timeoutError(method, timeoutMs)), timeoutMs);
    r.on('close', () => clearTimeout(deadline));
    r.on('error', (e) => reject(e instanceof EnclaveSignerConnectionError ? e : new EnclaveSignerConnectionError(`${method}: cannot reach ${socketPath}: ${e.message}`, { cause: e })));
    r.end(body);
  });
}
