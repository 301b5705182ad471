/**
 * JSON-aware mutations for text targets (typed data, JSON-RPC): parse the
 * input, replace one node with a value of another type (or an extreme of its
 * own), delete or duplicate a member, nest deeply, then serialise again.
 * Inputs that are not JSON any more are left to the byte mutators.
 */
import { utf8 } from './check.js';
import type { Mutator } from './mutate.js';
import type { Rng } from './rng.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Values of every JSON type, and the extremes parsers trip on. */
export function wrongValue(rng: Rng): Json {
  switch (rng.below(24)) {
    case 0:
      return null;
    case 1:
      return true;
    case 2:
      return 0;
    case 3:
      return -1;
    case 4:
      return 1e308;
    case 5:
      return 2 ** 53 + 2;
    case 6:
      return 0.5;
    case 7:
      return '';
    case 8:
      return '0x';
    case 9:
      return '0x' + 'f'.repeat(64);
    case 10:
      return '0x' + 'f'.repeat(65);
    case 11:
      return '-0x1';
    case 12:
      return 'x'.repeat(1 + rng.below(5000));
    case 13:
      return [];
    case 14:
      return {};
    case 15:
      return { __proto__: 1, constructor: 'x' } as unknown as Json;
    case 16:
      return '\u0000\ud800';
    case 17:
      return '0x' + '00'.repeat(20);
    case 18:
      return '115792089237316195423570985008687907853269984665640564039457584007913129639936';
    case 19:
      return ['uint256', 'address', 'bytes32', 'string', 'bool', 'int8', 'bytes', 'Mail[]', 'uint256[2][]'][rng.below(9)]!;
    case 20: {
      let v: Json = 1;
      const d = 10 + rng.below(200);
      for (let i = 0; i < d; i++) v = rng.oneIn(2) ? [v] : { a: v };
      return v;
    }
    case 21:
      return Array.from({ length: 1 + rng.below(300) }, (_, i) => i);
    case 22:
      return '1e3';
    default:
      return '0x1';
  }
}

interface Node {
  get: () => Json;
  set: (v: Json) => void;
  del?: () => void;
  parent?: Json[] | { [k: string]: Json };
  key?: string;
}

/** Every node of `root` with the means to replace or delete it; `holder.v` is the (possibly replaced) root. */
function nodes(root: Json): { list: Node[]; holder: { v: Json } } {
  const out: Node[] = [];
  const holder = { v: root };
  out.push({ get: () => holder.v, set: (v) => (holder.v = v) });
  const walk = (v: Json, depth: number): void => {
    if (depth > 64 || out.length > 2000) return;
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ get: () => v[i]!, set: (n) => (v[i] = n), del: () => v.splice(i, 1), parent: v });
        walk(x, depth + 1);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        out.push({ get: () => v[k]!, set: (n) => (v[k] = n), del: () => delete v[k], parent: v, key: k });
        walk(v[k]!, depth + 1);
      }
    }
  };
  walk(root, 0);
  return { list: out, holder };
}

export const jsonMutator: Mutator = (x, rng) => {
  let root: Json;
  try {
    root = JSON.parse(Buffer.from(x).toString('utf8')) as Json;
  } catch {
    return x;
  }
  const { list: ns, holder } = nodes(root);
  const n = ns[rng.below(ns.length)]!;
  const op = rng.below(8);
  if (op === 0 && n.del) n.del();
  else if (op === 1 && n.parent && !Array.isArray(n.parent) && n.key !== undefined) {
    // a sibling member under a new name, or an old one renamed
    const names = ['name', 'type', 'types', 'domain', 'message', 'primaryType', 'EIP712Domain', 'id', 'jsonrpc', 'method', 'params', 'receipt', '__proto__', 'value', 'amount', 'spender'];
    n.parent[rng.pick(names)] = n.get();
  } else if (op === 2 && Array.isArray(n.parent)) n.parent.push(n.get());
  else if (op === 3) {
    // the same value at another node
    const o = ns[rng.below(ns.length)]!;
    o.set(structuredClone(n.get()));
  } else n.set(wrongValue(rng));
  const text = JSON.stringify(holder.v);
  if (text === undefined) return x;
  if (rng.oneIn(6)) {
    // duplicate key, as text (JSON.stringify cannot write one)
    const m = /"([A-Za-z_]+)":/.exec(text);
    if (m) return utf8(text.replace(m[0], `${m[0]}null,${m[0]}`));
  }
  return utf8(text);
};
