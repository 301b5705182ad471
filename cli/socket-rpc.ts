/**
 * JSON-RPC over HTTP on the signing socket, for the CLI's client commands
 * (`call`, `approve`). The request object is sent as given, so a signed
 * request can carry its `signer_auth` member. The answer is bounded and
 * parsed strictly enough to tell a result from an error; anything else is
 * a transport failure (exit 1), never a success.
 */
import { request } from 'node:http';
import { SignerError } from '../common/errors.js';

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const TIMEOUT_MS = 60_000;

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}
export type RpcAnswer = { ok: true; result: unknown } | { ok: false; error: RpcErrorObject };

function transport(message: string, cause?: unknown): SignerError {
  return new SignerError('CLI_SOCKET', message, { cause, hint: 'is the signer running? the socket path is printed by `enclave-signer dev` / `parent`' });
}

/** POSTs one JSON-RPC request object to the socket and returns its result or error. */
export function socketRpc(socketPath: string, body: Record<string, unknown>): Promise<RpcAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > MAX_RESPONSE_BYTES) {
          req.destroy(transport(`the answer is larger than ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => {
        let v: unknown;
        try {
          v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch (e) {
          reject(transport(`the socket answered HTTP ${res.statusCode} with a body that is not JSON`, e));
          return;
        }
        const a = v as { result?: unknown; error?: unknown };
        if (typeof v === 'object' && v !== null && Object.hasOwn(a, 'error')) {
          const e = a.error as Partial<RpcErrorObject>;
          if (typeof e === 'object' && e !== null && typeof e.code === 'number' && typeof e.message === 'string') {
            resolve({ ok: false, error: { code: e.code, message: e.message, ...(e.data !== undefined ? { data: e.data } : {}) } });
            return;
          }
        } else if (typeof v === 'object' && v !== null && Object.hasOwn(a, 'result')) {
          resolve({ ok: true, result: a.result });
          return;
        }
        reject(transport(`the socket answered HTTP ${res.statusCode} without a JSON-RPC result or error`));
      });
      res.on('error', (e) => reject(transport(`reading the answer failed: ${e.message}`, e)));
    });
    req.on('timeout', () => req.destroy(transport(`no answer within ${TIMEOUT_MS / 1000}s`)));
    req.on('error', (e) => reject(e instanceof SignerError ? e : transport(`cannot reach the signing socket ${socketPath}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, e)));
    req.end(JSON.stringify(body));
  });
}
