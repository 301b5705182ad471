/**
 * One JSON-RPC payload in, one serialized answer out — shared by the HTTP
 * and IPC front ends so both behave identically. Batches run concurrently
 * and are answered in order. Notifications (no id) are validated but not
 * executed: a signature nobody receives is not worth producing, and an
 * unknown method is never forwarded anywhere.
 */
import { performance } from 'node:perf_hooks';
import { ParentError } from './errors.js';
import { RPC, errorResponse, parsePayload, resultResponse, type RpcItem, type RpcResponse } from './jsonrpc.js';
import type { Metrics } from './metrics.js';
import type { Method, MethodContext } from './methods.js';
import { toRpcError } from './rpc-errors.js';
import { toHex } from '../common/bytes.js';
import { receiptFor } from './audit-methods.js';
import { parsedRecord } from './audit-persist.js';
import type { Cancellation } from '../common/cancellation.js';

export interface DispatcherOptions {
  methods: ReadonlyMap<string, Method>;
  context: Omit<MethodContext, 'cancellation'>;
  metrics: Metrics;
  maxBatch: number;
  /** Requests executing at once across all connections; beyond it: -32005. */
  maxInFlight: number;
  log: (line: string) => void;
}

export interface Dispatcher {
  /**
   * Resolves with the JSON text to send, or undefined when nothing is to be sent
   * (notifications only). `meta.receipts` collects `<seq>.<hash hex>` of every
   * audit record whose result the answer releases (the X-Enclave-Signer-Receipt header).
   */
  handle(payload: Uint8Array | string, cancellation: Cancellation, meta?: { receipts: string[] }): Promise<string | undefined>;
  readonly inFlight: number;
}

export function createDispatcher(opts: DispatcherOptions): Dispatcher {
  const { methods, metrics } = opts;
  let inFlight = 0;

  async function run(item: RpcItem, cancellation: Cancellation, meta?: { receipts: string[] }): Promise<RpcResponse | undefined> {
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    if (!item.ok) {
      metrics.observe('invalid', 'invalid_request', seconds());
      return item.response;
    }
    const { method: name, params, id } = item.request;
    const method = methods.get(name);
    if (!method) {
      metrics.observe(name, 'not_found', seconds());
      if (id === undefined) return undefined;
      return errorResponse(id, RPC.METHOD_NOT_FOUND, `method not found: ${JSON.stringify(name.slice(0, 64))} is not served by this signer`);
    }
    if (id === undefined) {
      metrics.observe(name, 'notification', seconds());
      return undefined;
    }
    if (inFlight >= opts.maxInFlight) {
      metrics.observe(name, 'busy', seconds());
      const { error } = toRpcError(new ParentError('PARENT_BUSY', `more than ${opts.maxInFlight} requests in flight`));
      return errorResponse(id, error.code, error.message, error.data);
    }
    inFlight++;
    try {
      const released: Uint8Array[] = [];
      const auth = item.request.auth === undefined ? {} : { auth: item.request.auth };
      const result = await method(params, { ...opts.context, cancellation, released: (r) => released.push(r), ...auth });
      metrics.observe(name, 'ok', seconds());
      return withReceipt(resultResponse(id, result), released, item.request.receipt === true, meta);
    } catch (e) {
      const { error, outcome } = toRpcError(e);
      metrics.observe(name, outcome, seconds());
      if (error.code === RPC.INTERNAL_ERROR && !(e as { remote?: boolean })?.remote) {
        // A parent bug: log its type only, never the request (it may carry what is being signed).
        opts.log(`rpc: ${name} failed with an internal error: ${(e as Error)?.name ?? typeof e}`);
      }
      return errorResponse(id, error.code, error.message, error.data);
    } finally {
      inFlight--;
    }
  }

  /** The inline receipt: `<seq>.<hash>` for the header; the whole receipt when the client asked (`receipt: true`). */
  function withReceipt(resp: RpcResponse, released: Uint8Array[], asked: boolean, meta?: { receipts: string[] }): RpcResponse {
    if (released.length === 0) return resp;
    try {
      for (const r of released) {
        const p = parsedRecord(r);
        meta?.receipts.push(`${p.body.seq}.${toHex(p.hash)}`);
      }
      if (asked) return { ...resp, receipt: receiptFor(opts.context.keystore, released.at(-1)!) } as unknown as RpcResponse;
    } catch {
      // the result is released (its record is durable); a receipt that cannot be built is fetched later (signer_getReceipt)
    }
    return resp;
  }

  return {
    get inFlight() {
      return inFlight;
    },
    async handle(payload, cancellation, meta) {
      const parsed = parsePayload(payload, opts.maxBatch);
      switch (parsed.kind) {
        case 'invalid':
          metrics.observe('invalid', 'invalid_request', 0);
          return JSON.stringify(parsed.response);
        case 'single': {
          const r = await run(parsed.item, cancellation, meta);
          return r === undefined ? undefined : JSON.stringify(r);
        }
        case 'batch': {
          const all = await Promise.all(parsed.items.map((i) => run(i, cancellation, meta)));
          const answers = all.filter((r): r is RpcResponse => r !== undefined);
          return answers.length === 0 ? undefined : JSON.stringify(answers);
        }
      }
    },
  };
}
