/**
 * Bridge messages: the CBOR maps carried one per frame.
 *
 *   hello  {t:'hello', v, role, features?}        first message in each direction
 *   req    {t:'req', id, method, params, deadline?}
 *   res    {t:'res', id, result}
 *   err    {t:'err', id, error:{code, message, data?}}
 *   cancel {t:'cancel', id}
 *   bye    {t:'bye', error?:{code, message}}       last message, says why
 *
 * Every decoded frame passes `parseMessage`, a hand-written guard: exact key
 * sets (no unknown keys), exact types, bounded strings. Anything else is
 * BRIDGE_PROTOCOL — the peer on the other side of this boundary is untrusted
 * in both directions (the parent is an untrusted host; the enclave may be an
 * impostor until attested).
 */
import type { CborKey, CborValue } from '../cbor.js';
import { BridgeError } from './errors.js';

/** Highest protocol version this code speaks; sent in our hello. */
export const PROTOCOL_VERSION = 1;
/** Versions this code can run. The negotiated version is min(ours, theirs) and must be in here. */
export const SUPPORTED_VERSIONS: readonly number[] = [1];

/** Relative deadlines are capped at what setTimeout can represent (~24.8 days). */
export const MAX_DEADLINE_MS = 0x7fffffff;
export const MAX_ERROR_MESSAGE_LENGTH = 4096;
export const MAX_FEATURES = 64;

/** Method names: short, printable, no spaces or control bytes (they end up in logs). */
const METHOD_RE = /^[A-Za-z][A-Za-z0-9_.:/-]{0,127}$/;
/** Error codes: SignerError-style identifiers. */
const CODE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const FEATURE_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

export type BridgeRole = 'parent' | 'enclave';

export interface HelloMessage {
  t: 'hello';
  /** Highest protocol version the sender speaks. */
  v: number;
  role: BridgeRole;
  /** Optional capabilities; the connection uses the intersection of both lists. */
  features?: string[];
}

export interface RequestMessage {
  t: 'req';
  /** Chosen by the requester, unique among its requests in flight on this connection. */
  id: number;
  method: string;
  params: CborValue;
  /**
   * Milliseconds the requester will wait, counted from when it sent the request.
   * Relative on purpose: parent and enclave clocks are not assumed to agree.
   */
  deadline?: number;
}

export interface ResponseMessage {
  t: 'res';
  id: number;
  result: CborValue;
}

export interface WireError {
  code: string;
  message: string;
  data?: CborValue;
}

export interface ErrorMessage {
  t: 'err';
  id: number;
  error: WireError;
}

export interface CancelMessage {
  t: 'cancel';
  id: number;
}

export interface ByeMessage {
  t: 'bye';
  error?: { code: string; message: string };
}

export type BridgeMessage = HelloMessage | RequestMessage | ResponseMessage | ErrorMessage | CancelMessage | ByeMessage;
export type BridgeMessageType = BridgeMessage['t'];

export function isValidMethod(m: unknown): m is string {
  return typeof m === 'string' && METHOD_RE.test(m);
}

export function isValidErrorCode(c: unknown): c is string {
  return typeof c === 'string' && CODE_RE.test(c);
}

export function isValidFeature(f: unknown): f is string {
  return typeof f === 'string' && FEATURE_RE.test(f);
}

export function isValidDeadline(d: unknown): d is number {
  return typeof d === 'number' && Number.isSafeInteger(d) && d >= 1 && d <= MAX_DEADLINE_MS;
}

// ---------------------------------------------------------------- encoding

/** Builds the CBOR map for a message; keys in a fixed order so frames are byte-stable. */
export function encodeMessage(msg: BridgeMessage): Map<CborKey, CborValue> {
  const m = new Map<CborKey, CborValue>([['t', msg.t]]);
  switch (msg.t) {
    case 'hello':
      m.set('v', msg.v);
      m.set('role', msg.role);
      if (msg.features !== undefined) m.set('features', [...msg.features]);
      break;
    case 'req':
      m.set('id', msg.id);
      m.set('method', msg.method);
      m.set('params', msg.params);
      if (msg.deadline !== undefined) m.set('deadline', msg.deadline);
      break;
    case 'res':
      m.set('id', msg.id);
      m.set('result', msg.result);
      break;
    case 'err': {
      m.set('id', msg.id);
      const e = new Map<CborKey, CborValue>([
        ['code', msg.error.code],
        ['message', msg.error.message],
      ]);
      if (msg.error.data !== undefined) e.set('data', msg.error.data);
      m.set('error', e);
      break;
    }
    case 'cancel':
      m.set('id', msg.id);
      break;
    case 'bye':
      if (msg.error !== undefined) {
        m.set(
          'error',
          new Map<CborKey, CborValue>([
            ['code', msg.error.code],
            ['message', msg.error.message],
          ]),
        );
      }
      break;
  }
  return m;
}

// ---------------------------------------------------------------- guards

function protocol(msg: string): never {
  throw new BridgeError('BRIDGE_PROTOCOL', msg);
}

function describe(v: CborValue): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return 'byte string';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Map) return 'map';
  return typeof v === 'object' ? 'tag' : typeof v;
}

/** Checks that `m` has exactly the required keys plus any of the optional ones; all keys text. */
function expectKeys(m: Map<CborKey, CborValue>, what: string, required: readonly string[], optional: readonly string[] = []): void {
  for (const k of m.keys()) {
    if (typeof k !== 'string') protocol(`${what}: map keys must be text strings, found ${typeof k} key`);
    if (!required.includes(k) && !optional.includes(k)) protocol(`${what}: unexpected field ${JSON.stringify(k.slice(0, 64))}`);
  }
  for (const k of required) if (!m.has(k)) protocol(`${what}: missing field "${k}"`);
}

function readId(m: Map<CborKey, CborValue>, what: string): number {
  // The CBOR decoder refuses floats with an integral value (finding 10c), so a
  // safe integer here was a CBOR integer (major type 0) on the wire.
  const id = m.get('id')!;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    protocol(`${what}: "id" must be an unsigned integer below 2^53, got ${describe(id)}${typeof id === 'number' ? ` ${id}` : ''}`);
  }
  return id;
}

function readText(m: Map<CborKey, CborValue>, key: string, what: string, max: number): string {
  const v = m.get(key)!;
  if (typeof v !== 'string') protocol(`${what}: "${key}" must be a text string, got ${describe(v)}`);
  if (v.length > max) protocol(`${what}: "${key}" is longer than ${max} characters`);
  return v;
}

function readErrorBody(v: CborValue, what: string, allowData: boolean): WireError {
  if (!(v instanceof Map)) protocol(`${what}: "error" must be a map, got ${describe(v)}`);
  expectKeys(v, `${what} error`, ['code', 'message'], allowData ? ['data'] : []);
  const code = v.get('code')!;
  if (!isValidErrorCode(code)) protocol(`${what}: error "code" must match ${CODE_RE.source}`);
  const message = readText(v, 'message', `${what} error`, MAX_ERROR_MESSAGE_LENGTH);
  const out: WireError = { code, message };
  if (v.has('data')) out.data = v.get('data');
  return out;
}

/** Validates one decoded frame as a bridge message. Throws BRIDGE_PROTOCOL with a precise reason. */
export function parseMessage(v: CborValue): BridgeMessage {
  if (!(v instanceof Map)) protocol(`a message must be a CBOR map, got ${describe(v)}`);
  const t = v.get('t');
  if (t === undefined && !v.has('t')) protocol('message has no "t" field');
  if (typeof t !== 'string') protocol(`message "t" must be a text string, got ${describe(t)}`);
  switch (t) {
    case 'hello': {
      expectKeys(v, 'hello', ['t', 'v', 'role'], ['features']);
      const ver = v.get('v')!;
      if (typeof ver !== 'number' || !Number.isSafeInteger(ver) || ver < 0) protocol(`hello: "v" must be an unsigned integer, got ${describe(ver)}`);
      const role = v.get('role');
      if (role !== 'parent' && role !== 'enclave') protocol('hello: "role" must be "parent" or "enclave"');
      const out: HelloMessage = { t, v: ver, role };
      if (v.has('features')) {
        const f = v.get('features')!;
        if (!Array.isArray(f)) protocol(`hello: "features" must be an array, got ${describe(f)}`);
        if (f.length > MAX_FEATURES) protocol(`hello: more than ${MAX_FEATURES} features`);
        for (const x of f) if (!isValidFeature(x)) protocol(`hello: each feature must match ${FEATURE_RE.source}`);
        out.features = f as string[];
      }
      return out;
    }
    case 'req': {
      expectKeys(v, 'req', ['t', 'id', 'method', 'params'], ['deadline']);
      const id = readId(v, 'req');
      const method = v.get('method');
      if (!isValidMethod(method)) protocol(`req ${id}: "method" must match ${METHOD_RE.source}`);
      const out: RequestMessage = { t, id, method, params: v.get('params') };
      if (v.has('deadline')) {
        const d = v.get('deadline');
        if (!isValidDeadline(d)) protocol(`req ${id}: "deadline" must be an integer number of milliseconds in 1..${MAX_DEADLINE_MS}`);
        out.deadline = d;
      }
      return out;
    }
    case 'res': {
      expectKeys(v, 'res', ['t', 'id', 'result']);
      return { t, id: readId(v, 'res'), result: v.get('result') };
    }
    case 'err': {
      expectKeys(v, 'err', ['t', 'id', 'error']);
      const id = readId(v, 'err');
      return { t, id, error: readErrorBody(v.get('error')!, `err ${id}`, true) };
    }
    case 'cancel': {
      expectKeys(v, 'cancel', ['t', 'id']);
      return { t, id: readId(v, 'cancel') };
    }
    case 'bye': {
      expectKeys(v, 'bye', ['t'], ['error']);
      if (!v.has('error')) return { t };
      const { code, message } = readErrorBody(v.get('error')!, 'bye', false);
      return { t, error: { code, message } };
    }
    default:
      return protocol(`unknown message type ${JSON.stringify(t.slice(0, 32))}`);
  }
}
