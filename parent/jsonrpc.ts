/**
 * JSON-RPC 2.0 envelopes: parsing a payload (single request or batch) into
 * valid requests and ready-made error responses, and building responses.
 * Strict about the envelope (exact members, types) because a signer should
 * not guess what a malformed request meant; params are checked per method.
 *
 * One shape check on params happens here, for every method: nesting deeper
 * than MAX_JSON_PARAMS_DEPTH (common/limits.ts) is -32602 for that request,
 * naming the field — the enclave could not read it once wrapped into a
 * bridge frame, and must never be sent it (issue 8, finding 2).
 */
import { MAX_JSON_PARAMS_DEPTH, MAX_SIGNER_AUTH_DEPTH } from '../common/limits.js';

export const RPC = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** Server errors (-32000..-32099). */
  SERVER_ERROR: -32000,
  /** EIP-1474 "resource unavailable": enclave not attested / unreachable, keyring locked, keystore failing. */
  UNAVAILABLE: -32002,
  /** EIP-1474 "limit exceeded": too many requests in flight. */
  LIMIT_EXCEEDED: -32005,
  /** EIP-1193 "user rejected": the enclave's policy denied the request. */
  DENIED: 4001,
  /** EIP-1193 "unauthorized": a signed request was not accepted (docs/principals.md). */
  UNAUTHORIZED: 4100,
} as const;

export type RpcId = string | number | null;

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export type RpcResponse = { jsonrpc: '2.0'; id: RpcId; result: unknown } | { jsonrpc: '2.0'; id: RpcId; error: RpcErrorObject };

export interface RpcRequest {
  method: string;
  params: unknown;
  /** Absent for notifications. */
  id?: RpcId;
  /** The client asked for the audit receipt inline (extension member `receipt: true`). */
  receipt?: boolean;
  /**
   * The `signer_auth` member of a signed request (docs/principals.md), untouched: the enclave
   * verifies it against the method and params exactly as received here.
   */
  auth?: unknown;
}

/** One element of a payload: a valid request, or the error response an invalid one gets. */
export type RpcItem = { ok: true; request: RpcRequest } | { ok: false; response: RpcResponse };

export type ParsedPayload =
  | { kind: 'single'; item: RpcItem }
  | { kind: 'batch'; items: RpcItem[] }
  /** The whole payload is unusable: answer with this one response. */
  | { kind: 'invalid'; response: RpcResponse };

// Extensions (docs/json-rpc.md): `receipt: true` asks for the audit receipt inline;
// `signer_auth` signs the request as a principal (docs/principals.md).
const MEMBERS = new Set(['jsonrpc', 'method', 'params', 'id', 'receipt', 'signer_auth']);
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * The path of the first value nested deeper than `limit` (the root at depth
 * 0), or undefined. Recursion stops at limit + 1, so any input is safe. The
 * path is built only on the way back from a value that is too deep: every
 * request's params pass through here, and almost none are.
 */
export function findTooDeep(v: unknown, limit: number, path: string, depth = 0): string | undefined {
  const trail = tooDeep(v, limit, depth);
  return trail === undefined ? undefined : path + trail.reverse().join('');
}

/** The path segments (innermost first) to the first value deeper than `limit`. */
function tooDeep(v: unknown, limit: number, depth: number): string[] | undefined {
  if (depth > limit) return [];
  if (typeof v !== 'object' || v === null) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const t = tooDeep(v[i], limit, depth + 1);
      if (t !== undefined) {
        t.push(`[${i}]`);
        return t;
      }
    }
    return undefined;
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const t = tooDeep(o[k], limit, depth + 1);
    if (t !== undefined) {
      t.push(IDENT.test(k) ? `.${k.slice(0, 64)}` : `[${JSON.stringify(k.slice(0, 64))}]`);
      return t;
    }
  }
  return undefined;
}
const MAX_METHOD_LENGTH = 128;

export function errorResponse(id: RpcId, code: number, message: string, data?: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

export function resultResponse(id: RpcId, result: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, result };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validId(v: unknown): v is RpcId {
  return v === null || (typeof v === 'string' && v.length <= 256) || (typeof v === 'number' && Number.isFinite(v));
}

/** Checks one request object. An invalid one is answered with the id we could read, else null. */
export function parseRequestObject(v: unknown): RpcItem {
  if (!isObject(v)) return { ok: false, response: errorResponse(null, RPC.INVALID_REQUEST, 'invalid request: expected a JSON-RPC request object') };
  const id: RpcId = Object.hasOwn(v, 'id') && validId(v.id) ? v.id : null;
  const refuse = (code: number, message: string, data?: unknown): RpcItem => ({ ok: false, response: errorResponse(id, code, message, data) });
  const invalid = (why: string): RpcItem => refuse(RPC.INVALID_REQUEST, `invalid request: ${why}`);
  for (const k of Object.keys(v)) if (!MEMBERS.has(k)) return invalid(`unknown member ${JSON.stringify(k.slice(0, 32))}`);
  if (v.jsonrpc !== '2.0') return invalid('"jsonrpc" must be "2.0"');
  if (typeof v.method !== 'string' || v.method.length === 0) return invalid('"method" must be a non-empty string');
  if (v.method.length > MAX_METHOD_LENGTH) return invalid(`"method" is longer than ${MAX_METHOD_LENGTH} characters`);
  if (Object.hasOwn(v, 'params') && v.params !== undefined && !Array.isArray(v.params) && !isObject(v.params)) {
    return invalid('"params" must be an array or an object');
  }
  if (Object.hasOwn(v, 'id') && !validId(v.id)) return invalid('"id" must be a string, a number or null');
  if (Object.hasOwn(v, 'receipt') && typeof v.receipt !== 'boolean') return invalid('"receipt" must be true or false');
  const deep = findTooDeep(v.params, MAX_JSON_PARAMS_DEPTH, 'params');
  if (deep !== undefined) {
    return refuse(RPC.INVALID_PARAMS, `invalid params: ${deep}: nested deeper than ${MAX_JSON_PARAMS_DEPTH} levels`, {
      code: 'PARENT_INVALID_PARAMS',
      field: deep,
      hint: `params may nest at most ${MAX_JSON_PARAMS_DEPTH} levels (docs/json-rpc.md, Limits)`,
    });
  }
  const deepAuth = Object.hasOwn(v, 'signer_auth') ? findTooDeep(v.signer_auth, MAX_SIGNER_AUTH_DEPTH, 'signer_auth') : undefined;
  if (deepAuth !== undefined) {
    // The code and words the enclave uses for a malformed envelope (docs/principals.md).
    return refuse(RPC.UNAUTHORIZED, `unauthorized: malformed signer_auth: ${deepAuth}: nested deeper than ${MAX_SIGNER_AUTH_DEPTH} levels`, {
      code: 'AUTH_MALFORMED',
      field: deepAuth,
      hint: 'see docs/principals.md for the envelope',
    });
  }
  const request: RpcRequest = { method: v.method, params: v.params };
  if (Object.hasOwn(v, 'id')) request.id = v.id as RpcId;
  if (v.receipt === true) request.receipt = true;
  if (Object.hasOwn(v, 'signer_auth')) request.auth = v.signer_auth;
  return { ok: true, request };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses one payload (an HTTP body, one IPC message). Invalid UTF-8 and
 * invalid JSON are parse errors (-32700); an empty batch or a batch larger
 * than `maxBatch` is one invalid-request error (-32600).
 */
export function parsePayload(bytes: Uint8Array | string, maxBatch: number): ParsedPayload {
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : utf8.decode(bytes);
  } catch {
    return { kind: 'invalid', response: errorResponse(null, RPC.PARSE_ERROR, 'parse error: the payload is not valid UTF-8') };
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: 'invalid', response: errorResponse(null, RPC.PARSE_ERROR, 'parse error: the payload is not valid JSON') };
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return { kind: 'invalid', response: errorResponse(null, RPC.INVALID_REQUEST, 'invalid request: empty batch') };
    if (v.length > maxBatch) {
      return { kind: 'invalid', response: errorResponse(null, RPC.INVALID_REQUEST, `invalid request: batch of ${v.length} requests exceeds the limit of ${maxBatch}`) };
    }
    return { kind: 'batch', items: v.map(parseRequestObject) };
  }
  return { kind: 'single', item: parseRequestObject(v) };
}
