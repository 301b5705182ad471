/**
 * parent/json-stream.ts and parent/jsonrpc.ts: the raw IPC splitter (geth
 * style: values back to back or whitespace-separated) and the JSON-RPC
 * envelope parser every HTTP body and IPC value passes.
 */
import { createJsonStreamSplitter, type SplitError } from '../../parent/json-stream.js';
import { parsePayload, RPC, type RpcResponse } from '../../parent/jsonrpc.js';
import { hex, invariant, utf8 } from '../check.js';
import type { FuzzTarget } from '../engine.js';
import { jsonMutator } from '../json.js';

const CAPS = [64, 1024 * 1024];
const ALLOWED = new Set<number>([RPC.PARSE_ERROR, RPC.INVALID_REQUEST, RPC.INVALID_PARAMS]);

function split(x: Uint8Array, cap: number, size: (i: number) => number): { values: string[]; error?: SplitError } {
  const s = createJsonStreamSplitter(cap);
  const values: string[] = [];
  let o = 0;
  let i = 0;
  while (o < x.length) {
    const n = Math.max(1, size(i++));
    const r = s.push(x.subarray(o, o + n));
    for (const v of r.values) {
      invariant(v.length <= cap, `a ${v.length}-byte value passed the ${cap}-byte cap`);
      values.push(hex(v));
    }
    invariant(s.pending <= cap, `splitter holds ${s.pending} bytes, above the ${cap}-byte cap`);
    if (r.error) return { values, error: r.error };
    o += n;
  }
  return { values };
}

function checkResponse(r: RpcResponse): void {
  invariant('error' in r, 'parsePayload produced a result');
  invariant(ALLOWED.has(r.error.code), `parsePayload answered code ${r.error.code}`);
  invariant(r.id === null || typeof r.id === 'string' || (typeof r.id === 'number' && Number.isFinite(r.id)), 'response id is not a JSON-RPC id');
  invariant(typeof JSON.stringify(r) === 'string', 'response is not serialisable');
}

function payload(bytes: Uint8Array): void {
  const p = parsePayload(bytes, 16);
  const items = p.kind === 'invalid' ? [] : p.kind === 'single' ? [p.item] : p.items;
  if (p.kind === 'invalid') checkResponse(p.response);
  for (const it of items) {
    if (it.ok) {
      invariant(typeof it.request.method === 'string' && it.request.method.length > 0 && it.request.method.length <= 128, 'accepted request has a bad method');
      // What the parent forwards must survive JSON (the bridge encodes params from it).
      JSON.stringify(it.request.params);
    } else checkResponse(it.response);
  }
}

const SEEDS = [
  '{"jsonrpc":"2.0","id":1,"method":"eth_accounts"}',
  '{"jsonrpc":"2.0","id":"a","method":"signer_signDigest","params":{"keyId":"k1","digest":"0x' + '11'.repeat(32) + '"},"receipt":true}',
  '[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","method":"x"}]',
  '{"jsonrpc":"2.0","id":2,"method":"eth_signTypedData_v4","params":["0x1111111111111111111111111111111111111111","{\\"types\\":{}}"]}\n{"jsonrpc":"2.0","id":3,"method":"signer_status"}',
  '{"jsonrpc":"2.0","id":4,"method":"personal_sign","params":["0x68656c6c6f","0x1111111111111111111111111111111111111111"]}{"jsonrpc":"2.0","id":5,"method":"eth_sign","params":[]}',
  '  [ ]  {"a":"}\\"{["}',
];

export const jsonRpcTarget: FuzzTarget = {
  name: 'json-rpc',
  description:
    'createJsonStreamSplitter (64-byte and 1 MiB caps) fed the IPC stream whole, byte by byte (streams up to 64 bytes) and in 1..7-byte chunks; parsePayload on every value and on the whole input as an HTTP body. ' +
    'Nothing throws; the chunkings yield the same values and error; no value or held buffer exceeds the cap; every error answer is -32700/-32600/-32602 with a valid id, and accepted params survive JSON.stringify.',
  cover: ['/parent/json-stream.', '/parent/jsonrpc.'],
  maxLen: 8192,
  seeds() {
    return SEEDS.map(utf8);
  },
  dict: ['{', '}', '[', ']', '"', '\\', '\\"', ',', ':', ' ', '\n', '"jsonrpc":"2.0"', '"method":', '"params":', '"id":', '"receipt":true', 'null', '1e999', '-0', '\ufeff'].map(utf8),
  mutators: [jsonMutator, jsonMutator],
  run(x) {
    for (const cap of CAPS) {
      const whole = split(x, cap, () => x.length);
      const others = [split(x, cap, (i) => 1 + ((i * 3 + (x[i % Math.max(1, x.length)] ?? 0)) % 7))];
      if (x.length <= 64) others.push(split(x, cap, () => 1));
      for (const o of others) {
        invariant(JSON.stringify(o.error) === JSON.stringify(whole.error), `chunking changed the splitter's error (cap ${cap})`);
        invariant(o.values.join(',') === whole.values.join(','), `chunking changed the split values (cap ${cap})`);
      }
      if (cap > 64) for (const v of whole.values) payload(Buffer.from(v, 'hex'));
    }
    payload(x);
  },
};
