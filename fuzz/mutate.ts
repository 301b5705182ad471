/**
 * Byte-level mutations for the fuzz engine (fuzz/engine.ts): the generic
 * havoc set (bit flips, interesting values, inserts, deletes, duplicated
 * chunks, truncation, splices, dictionary tokens) plus structure-aware ones
 * that know where the length fields are — CBOR heads, DER/BER TLVs and the
 * bridge's u32 frame header — because a parser's interesting branches sit
 * behind lengths that agree (or almost agree) with the bytes that follow.
 *
 * The walkers here are deliberately lenient and independent of the decoders
 * under test: they find structure in malformed input as far as it goes.
 */
import { concatBytes } from '../common/bytes.js';
import type { Rng } from './rng.js';

export type Mutator = (input: Uint8Array, rng: Rng, ctx: MutationContext) => Uint8Array;

export interface MutationContext {
  /** Another corpus entry, for splices. */
  other(): Uint8Array;
  /** Tokens worth inserting (field names, magic values). */
  dict: readonly Uint8Array[];
  maxLen: number;
}

const INTERESTING8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x40, 0x60, 0x9f, 0xbf, 0xf6, 0xf7];
const INTERESTING32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x00100000, 0x00100001];


function copyWith(input: Uint8Array, pos: number, b: number): Uint8Array {
  const out = Uint8Array.from(input);
  out[pos] = b;
  return out;
}

/** Replaces input[from, to) with `repl`. */
export function replaceRange(input: Uint8Array, from: number, to: number, repl: Uint8Array): Uint8Array {
  return concatBytes(input.subarray(0, from), repl, input.subarray(to));
}

// ------------------------------------------------------------ generic havoc

const flipBit: Mutator = (x, rng) => {
  if (x.length === 0) return rng.bytes(1);
  const p = rng.below(x.length);
  return copyWith(x, p, x[p]! ^ (1 << rng.below(8)));
};
const setByte: Mutator = (x, rng) => (x.length === 0 ? rng.bytes(1) : copyWith(x, rng.below(x.length), rng.u32() & 0xff));
const interestingByte: Mutator = (x, rng) => (x.length === 0 ? Uint8Array.of(rng.pick(INTERESTING8)) : copyWith(x, rng.below(x.length), rng.pick(INTERESTING8)));
const addByte: Mutator = (x, rng) => {
  if (x.length === 0) return rng.bytes(1);
  const p = rng.below(x.length);
  return copyWith(x, p, (x[p]! + rng.below(35) - 17) & 0xff);
};
const interesting32: Mutator = (x, rng) => {
  if (x.length < 4) return concatBytes(x, rng.bytes(4));
  const p = rng.below(x.length - 3);
  const out = Uint8Array.from(x);
  new DataView(out.buffer).setUint32(p, rng.pick(INTERESTING32));
  return out;
};
const insertRandom: Mutator = (x, rng) => {
  const p = rng.below(x.length + 1);
  return replaceRange(x, p, p, rng.bytes(1 + rng.below(8)));
};
const deleteRange: Mutator = (x, rng) => {
  if (x.length < 2) return x;
  const p = rng.below(x.length);
  const n = 1 + rng.below(Math.min(64, x.length - p));
  return replaceRange(x, p, p + n, new Uint8Array(0));
};
const duplicateChunk: Mutator = (x, rng) => {
  if (x.length === 0) return x;
  const p = rng.below(x.length);
  const n = 1 + rng.below(Math.min(128, x.length - p));
  const at = rng.below(x.length + 1);
  return replaceRange(x, at, at, x.slice(p, p + n));
};
const truncate: Mutator = (x, rng) => x.subarray(0, rng.below(x.length + 1));
const splice: Mutator = (x, rng, ctx) => {
  const y = ctx.other();
  return concatBytes(x.subarray(0, rng.below(x.length + 1)), y.subarray(rng.below(y.length + 1)));
};
const dictionary: Mutator = (x, rng, ctx) => {
  if (ctx.dict.length === 0) return x;
  const tok = rng.pick(ctx.dict);
  const p = rng.below(x.length + 1);
  return rng.oneIn(2) ? replaceRange(x, p, p, tok) : replaceRange(x, p, Math.min(x.length, p + tok.length), tok);
};

export const GENERIC: readonly Mutator[] = [flipBit, setByte, interestingByte, addByte, interesting32, insertRandom, deleteRange, duplicateChunk, truncate, splice, dictionary];

// ------------------------------------------------------------ CBOR-aware

export interface CborItem {
  start: number;
  /** End of the head (initial byte plus argument). */
  headEnd: number;
  end: number;
  major: number;
}

/** Finds the items of a (possibly malformed) CBOR buffer, as far as they can be followed. */
export function walkCbor(buf: Uint8Array, limit = 4096): CborItem[] {
  const items: CborItem[] = [];
  const item = (pos: number, depth: number): number => {
    if (pos >= buf.length || depth > 64 || items.length >= limit) throw new Error('stop');
    const ib = buf[pos]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    let headEnd = pos + 1;
    let arg = ai;
    if (ai >= 24 && ai <= 27) {
      const w = 1 << (ai - 24);
      if (pos + 1 + w > buf.length) throw new Error('stop');
      arg = 0;
      for (let i = 0; i < w; i++) arg = arg * 256 + buf[pos + 1 + i]!;
      headEnd += w;
    } else if (ai > 27 && ai !== 31) {
      throw new Error('stop');
    }
    const rec: CborItem = { start: pos, headEnd, end: headEnd, major };
    items.push(rec);
    let p = headEnd;
    if (major === 2 || major === 3) {
      if (ai === 31) {
        while (p < buf.length && buf[p] !== 0xff) p = item(p, depth + 1);
        p++;
      } else p += arg;
    } else if (major === 4 || major === 5) {
      const n = major === 5 ? arg * 2 : arg;
      if (ai === 31) {
        while (p < buf.length && buf[p] !== 0xff) p = item(p, depth + 1);
        p++;
      } else for (let i = 0; i < n && p < buf.length; i++) p = item(p, depth + 1);
    } else if (major === 6) {
      p = item(p, depth + 1);
    }
    rec.end = Math.min(p, buf.length);
    return rec.end;
  };
  try {
    item(0, 0);
  } catch {
    // malformed from here on: keep what was found
  }
  return items;
}

/** The shortest CBOR head for major type `major` and argument `n`. */
export function cborHead(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n <= 0xff) return Uint8Array.of(m | 24, n);
  if (n <= 0xffff) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  return Uint8Array.of(m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

function headArg(buf: Uint8Array, it: CborItem): number {
  const ai = buf[it.start]! & 0x1f;
  if (ai < 24 || ai === 31) return ai;
  let v = 0;
  for (let i = it.start + 1; i < it.headEnd; i++) v = v * 256 + buf[i]!;
  return v;
}

function cborMutate(x: Uint8Array, rng: Rng, fn: (it: CborItem, items: CborItem[]) => Uint8Array): Uint8Array {
  const items = walkCbor(x);
  if (items.length === 0) return x;
  return fn(rng.pick(items), items);
}

const cborLength: Mutator = (x, rng) =>
  cborMutate(x, rng, (it) => {
    const n = headArg(x, it);
    const choices = [0, 1, n + 1, Math.max(0, n - 1), n * 2, 23, 24, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff];
    return replaceRange(x, it.start, it.headEnd, cborHead(it.major, rng.pick(choices) >>> 0));
  });
const cborWidth: Mutator = (x, rng) =>
  cborMutate(x, rng, (it) => {
    // Same value, another (non-minimal) width, or indefinite / reserved additional info.
    const n = headArg(x, it);
    const m = it.major << 5;
    const ai = rng.pick([24, 25, 26, 27, 28, 29, 30, 31]);
    const w = ai <= 27 ? 1 << (ai - 24) : 0;
    const head = new Uint8Array(1 + w);
    head[0] = m | ai;
    for (let i = 0; i < w; i++) head[w - i] = Math.floor(n / 256 ** i) & 0xff;
    const out = replaceRange(x, it.start, it.headEnd, head);
    return ai === 31 ? replaceRange(out, it.end + (out.length - x.length), it.end + (out.length - x.length), Uint8Array.of(0xff)) : out;
  });
const cborMajor: Mutator = (x, rng) => cborMutate(x, rng, (it) => copyWith(x, it.start, (rng.below(8) << 5) | (x[it.start]! & 0x1f)));
const cborDelete: Mutator = (x, rng) => cborMutate(x, rng, (it) => replaceRange(x, it.start, it.end, new Uint8Array(0)));
const cborDuplicate: Mutator = (x, rng) => cborMutate(x, rng, (it) => replaceRange(x, it.end, it.end, x.slice(it.start, it.end)));
const cborSwapIn: Mutator = (x, rng) =>
  cborMutate(x, rng, (it, items) => {
    const other = rng.pick(items);
    return replaceRange(x, it.start, it.end, x.slice(other.start, other.end));
  });
const cborBreak: Mutator = (x, rng) => cborMutate(x, rng, (it) => replaceRange(x, it.end, it.end, Uint8Array.of(0xff)));
const cborWrap: Mutator = (x, rng) =>
  cborMutate(x, rng, (it) => {
    const depth = rng.oneIn(4) ? 8 + rng.below(60) : 1;
    const wrapper = rng.pick([0x81, 0x9f, 0xc0 | rng.below(24), 0xd8, 0xa1]);
    let pre: Uint8Array;
    if (wrapper === 0xd8) pre = Uint8Array.of(0xd8, 18);
    else if (wrapper === 0xa1) pre = Uint8Array.of(0xa1, 0x61, 0x74);
    else pre = Uint8Array.of(wrapper);
    const pres = new Uint8Array(pre.length * depth);
    for (let i = 0; i < depth; i++) pres.set(pre, i * pre.length);
    const post = wrapper === 0x9f ? new Uint8Array(depth).fill(0xff) : new Uint8Array(0);
    return concatBytes(x.subarray(0, it.start), pres, x.subarray(it.start, it.end), post, x.subarray(it.end));
  });
const cborValue: Mutator = (x, rng) =>
  cborMutate(x, rng, (it) => {
    const repl = rng.pick([
      Uint8Array.of(0xf6),
      Uint8Array.of(0xf7),
      Uint8Array.of(0xf4),
      Uint8Array.of(0x00),
      Uint8Array.of(0x20),
      Uint8Array.of(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
      Uint8Array.of(0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
      Uint8Array.of(0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0),
      Uint8Array.of(0xf9, 0x7e, 0x00),
      Uint8Array.of(0x40),
      Uint8Array.of(0x60),
      Uint8Array.of(0x80),
      Uint8Array.of(0xa0),
      Uint8Array.of(0x63, 0xef, 0xbb, 0xbf),
      Uint8Array.of(0x62, 0xc3, 0x28),
      Uint8Array.of(0x5f, 0x41, 0x00, 0xff),
      Uint8Array.of(0x7f, 0x61, 0x61, 0xff),
    ]);
    return replaceRange(x, it.start, it.end, repl);
  });

export const CBOR: readonly Mutator[] = [cborLength, cborWidth, cborMajor, cborDelete, cborDuplicate, cborSwapIn, cborBreak, cborWrap, cborValue];

// ------------------------------------------------------------ DER/BER-aware

export interface Tlv {
  start: number;
  lenStart: number;
  contentStart: number;
  end: number;
  constructed: boolean;
}

/** Finds the TLVs of a (possibly malformed) DER/BER buffer, descending into constructed ones. */
export function walkDer(buf: Uint8Array, limit = 4096): Tlv[] {
  const out: Tlv[] = [];
  const walk = (from: number, to: number, depth: number): void => {
    let p = from;
    while (p < to && out.length < limit && depth < 32) {
      const start = p;
      const id = buf[p++]!;
      if ((id & 0x1f) === 0x1f) {
        while (p < to && buf[p]! & 0x80) p++;
        p++;
      }
      if (p >= to) return;
      const lenStart = p;
      const lb = buf[p++]!;
      let len: number;
      if (lb === 0x80) len = -1;
      else if (lb < 0x80) len = lb;
      else {
        const n = lb & 0x7f;
        if (n > 4 || p + n > to) return;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
      }
      const contentStart = p;
      const constructed = (id & 0x20) !== 0;
      if (len < 0) {
        // indefinite: children until 00 00
        const rec: Tlv = { start, lenStart, contentStart, end: to, constructed };
        out.push(rec);
        let q = contentStart;
        walk(q, to, depth + 1);
        for (q = contentStart; q + 1 < to; q++) if (buf[q] === 0 && buf[q + 1] === 0) break;
        rec.end = Math.min(to, q + 2);
        p = rec.end;
        continue;
      }
      const end = Math.min(to, contentStart + len);
      out.push({ start, lenStart, contentStart, end, constructed });
      if (constructed) walk(contentStart, end, depth + 1);
      p = end;
    }
  };
  walk(0, buf.length, 0);
  return out;
}

function derLen(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n <= 0xff) return Uint8Array.of(0x81, n);
  if (n <= 0xffff) return Uint8Array.of(0x82, n >> 8, n & 0xff);
  return Uint8Array.of(0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

function derMutate(x: Uint8Array, rng: Rng, fn: (t: Tlv, all: Tlv[]) => Uint8Array): Uint8Array {
  const all = walkDer(x);
  if (all.length === 0) return x;
  return fn(rng.pick(all), all);
}

const derLength: Mutator = (x, rng) =>
  derMutate(x, rng, (t) => {
    const n = t.end - t.contentStart;
    const choice = rng.below(6);
    let repl: Uint8Array;
    if (choice === 0) repl = derLen(n + 1);
    else if (choice === 1) repl = derLen(Math.max(0, n - 1));
    else if (choice === 2) repl = Uint8Array.of(0x81, n & 0xff); // non-minimal (when n < 128)
    else if (choice === 3) repl = Uint8Array.of(0x84, 0xff, 0xff, 0xff, 0xff);
    else if (choice === 4) repl = Uint8Array.of(0x85, 0, 0, 0, 0, n & 0xff);
    else repl = Uint8Array.of(0x80);
    const out = replaceRange(x, t.lenStart, t.contentStart, repl);
    return choice === 5 ? replaceRange(out, t.end + (out.length - x.length), t.end + (out.length - x.length), Uint8Array.of(0, 0)) : out;
  });
const derTag: Mutator = (x, rng) => derMutate(x, rng, (t) => copyWith(x, t.start, rng.oneIn(2) ? x[t.start]! ^ 0x20 : rng.pick([0x02, 0x03, 0x04, 0x05, 0x06, 0x30, 0x31, 0xa0, 0x80, 0x17, 0x18, 0x0c, 0x13, 0x24, 0x1f])));
const derDelete: Mutator = (x, rng) => derMutate(x, rng, (t) => replaceRange(x, t.start, t.end, new Uint8Array(0)));
const derDuplicate: Mutator = (x, rng) => derMutate(x, rng, (t) => replaceRange(x, t.end, t.end, x.slice(t.start, t.end)));
const derSwap: Mutator = (x, rng) =>
  derMutate(x, rng, (t, all) => {
    const o = rng.pick(all);
    return replaceRange(x, t.start, t.end, x.slice(o.start, o.end));
  });
const derContent: Mutator = (x, rng) =>
  derMutate(x, rng, (t) => {
    if (t.constructed || t.end <= t.contentStart) return x;
    const p = t.contentStart + rng.below(t.end - t.contentStart);
    return copyWith(x, p, rng.oneIn(2) ? x[p]! ^ (1 << rng.below(8)) : rng.pick(INTERESTING8));
  });

export const DER: readonly Mutator[] = [derLength, derTag, derDelete, derDuplicate, derSwap, derContent];

// ------------------------------------------------------------ bridge frames

/** Rewrites the u32 big-endian length of a frame: off by one, zero, the cap, past it, far past it. */
export const frameHeader: Mutator = (x, rng) => {
  if (x.length < 4) return concatBytes(Uint8Array.of(0, 0, 0, rng.below(256)), x);
  const body = x.length - 4;
  const out = Uint8Array.from(x);
  const v = rng.pick([0, 1, body - 1, body + 1, body + 4, 0x100000, 0x100001, 0x1000000, 0x1000001, 0xffffffff]);
  new DataView(out.buffer).setUint32(0, v >>> 0);
  return out;
};

/** Applies 1..8 stacked mutations from `set`, then enforces ctx.maxLen. */
export function havoc(x: Uint8Array, rng: Rng, ctx: MutationContext, set: readonly Mutator[]): Uint8Array {
  let y = x;
  const n = 1 << rng.below(4);
  for (let i = 0; i < n; i++) y = rng.pick(set)(y, rng, ctx);
  return y.length > ctx.maxLen ? y.subarray(0, ctx.maxLen) : y;
}
