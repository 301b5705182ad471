/**
 * A small, strict CBOR (RFC 8949) codec used on both sides of the trust
 * boundary: attestation documents, NSM messages, bridge frames, EIF signature
 * sections.
 *
 * Why not a general-purpose library: attestation input is hostile, and we want
 * every byte accounted for — truncation, trailing bytes, reserved additional
 * info, non-minimal lengths, duplicate map keys and runaway nesting are each a
 * distinct, typed error instead of a best-effort value.
 *
 * Data model:
 *   unsigned/negative int → number (safe range) or bigint
 *   byte string → Uint8Array        text string → string
 *   array → CborValue[]             map → Map<CborKey, CborValue>
 *   tag → CborTag                   false/true/null/undefined → JS value
 *   float → number (never an integral value: see allowIntegralFloats)
 *
 * Integers are integers: a float whose value is integral (1.0, -0.0, 1e12) is
 * refused, because every accessor that wants an integer (a map key, a PCR
 * index, a timestamp, a bridge message id) then sees a JS number it cannot
 * tell from a real CBOR integer. Our encoder writes integral numbers as
 * major type 0/1, so a conforming peer never sends one. Map keys must be
 * integers (major 0/1) or text (major 3) — never floats.
 *
 * The encoder never changes a value to make it fit: an integer-valued number
 * outside ±(2^53−1) (pass a bigint instead) and a bigint outside
 * −2^64..2^64−1 are CBOR_ENCODE_RANGE. (Numbers past 2^64 used to be written
 * modulo 2^64: 2^64 + 2^32 went out as 2^32.)
 */
import { asciiOrUtf8, writeAscii } from './bytes.js';
import { SignerError } from './errors.js';
import { DEFAULT_CBOR_DEPTH, MAX_CBOR_ITEMS } from './limits.js';

export type CborKey = string | number | bigint;
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | CborValue[]
  | Map<CborKey, CborValue>
  | CborTag;

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

export class CborError extends SignerError {
  /** Byte offset where decoding stopped. */
  readonly offset: number;
  constructor(code: string, message: string, offset: number) {
    super(code, `${message} (at byte ${offset})`);
    this.offset = offset;
  }
}

export interface DecodeOptions {
  /** Maximum nesting of arrays/maps/tags (common/limits.ts DEFAULT_CBOR_DEPTH, 16). */
  maxDepth?: number;
  /** Reject integers and lengths not encoded in their shortest form. Default true. */
  requireMinimalIntegers?: boolean;
  /** Accept indefinite-length strings, arrays and maps. Default true (newer NSM documents use them). */
  allowIndefinite?: boolean;
  /** Upper bound on items in one array/map, guarding memory on hostile input (MAX_CBOR_ITEMS, 65536). */
  maxItems?: number;
  /**
   * Accept floats with an integral value (1.0). Default false: such a float is
   * CBOR_FLOAT_INTEGER, so an integer-valued JS number always came from a
   * CBOR integer. Only for general-purpose decoding of foreign CBOR.
   */
  allowIntegralFloats?: boolean;
}

const DEFAULTS: Required<DecodeOptions> = {
  maxDepth: DEFAULT_CBOR_DEPTH,
  requireMinimalIntegers: true,
  allowIndefinite: true,
  maxItems: MAX_CBOR_ITEMS,
  allowIntegralFloats: false,
};

const BREAK = Symbol('break');
// ignoreBOM: keep a leading U+FEFF. The default strips it, so "\uFEFFx" would decode as "x" —
// two encodings, one value, and not the text that was sent (found by fuzzing: docs/fuzzing.md).
const td = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Short all-ASCII text (keys, ids, method names) skips TextDecoder: every byte is valid UTF-8 as it is. */
const ASCII_FAST_MAX = 64;

class Reader {
  pos = 0;
  #dv: DataView | undefined;
  constructor(
    readonly buf: Uint8Array,
    readonly opts: Required<DecodeOptions>,
  ) {}

  fail(code: string, msg: string, at = this.pos): never {
    throw new CborError(code, msg, at);
  }

  need(n: number): void {
    if (n > this.buf.length - this.pos) this.fail('CBOR_TRUNCATED', `input ends early: need ${n} more byte(s), have ${this.buf.length - this.pos}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  take(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Reads the argument of an initial byte; returns number, bigint, or -1 for indefinite. */
  arg(ai: number, start: number): number | bigint {
    if (ai < 24) return ai;
    const dv = (this.#dv ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
    let v: number | bigint;
    switch (ai) {
      case 24:
        v = this.u8();
        if (this.opts.requireMinimalIntegers && v < 24) this.fail('CBOR_NON_CANONICAL', `value ${v} encoded in 1 extra byte`, start);
        return v;
      case 25:
        this.need(2);
        v = dv.getUint16(this.pos);
        this.pos += 2;
        if (this.opts.requireMinimalIntegers && v <= 0xff) this.fail('CBOR_NON_CANONICAL', `value ${v} encoded in 2 bytes`, start);
        return v;
      case 26:
        this.need(4);
        v = dv.getUint32(this.pos);
        this.pos += 4;
        if (this.opts.requireMinimalIntegers && v <= 0xffff) this.fail('CBOR_NON_CANONICAL', `value ${v} encoded in 4 bytes`, start);
        return v;
      case 27: {
        this.need(8);
        const big = dv.getBigUint64(this.pos);
        this.pos += 8;
        if (this.opts.requireMinimalIntegers && big <= 0xffffffffn) this.fail('CBOR_NON_CANONICAL', `value ${big} encoded in 8 bytes`, start);
        return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
      case 31:
        return -1;
      default:
        return this.fail('CBOR_RESERVED', `reserved additional information ${ai}`, start);
    }
  }

  length(ai: number, start: number, what: string): number {
    const n = this.arg(ai, start);
    if (n === -1) return -1;
    if (typeof n === 'bigint' || n > this.buf.length) this.fail('CBOR_TRUNCATED', `${what} claims ${n} items/bytes, more than the input holds`, start);
    return n as number;
  }

  item(depth: number): CborValue | typeof BREAK {
    const start = this.pos;
    const ib = this.u8();
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (ib === 0xff) return BREAK;
    if (depth > this.opts.maxDepth) this.fail('CBOR_TOO_DEEP', `nesting deeper than ${this.opts.maxDepth} levels`, start);
    switch (major) {
      case 0: {
        const v = this.arg(ai, start);
        if (v === -1) this.fail('CBOR_BAD_INDEFINITE', 'integers cannot be indefinite', start);
        return v;
      }
      case 1: {
        const v = this.arg(ai, start);
        if (v === -1) this.fail('CBOR_BAD_INDEFINITE', 'integers cannot be indefinite', start);
        if (typeof v === 'bigint') return -1n - v;
        const n = -1 - v;
        return Number.isSafeInteger(n) ? n : -1n - BigInt(v);
      }
      case 2:
      case 3: {
        const n = this.length(ai, start, major === 2 ? 'byte string' : 'text string');
        let bytes: Uint8Array;
        if (n === -1) {
          if (!this.opts.allowIndefinite) this.fail('CBOR_BAD_INDEFINITE', 'indefinite-length string not allowed', start);
          const chunks: Uint8Array[] = [];
          for (;;) {
            const cstart = this.pos;
            const cb = this.u8();
            if (cb === 0xff) break;
            if (cb >> 5 !== major || (cb & 0x1f) === 31) this.fail('CBOR_BAD_INDEFINITE', 'indefinite string chunk of the wrong type', cstart);
            chunks.push(this.take(this.length(cb & 0x1f, cstart, 'string chunk')));
          }
          const total = chunks.reduce((a, c) => a + c.length, 0);
          bytes = new Uint8Array(total);
          let o = 0;
          for (const c of chunks) {
            bytes.set(c, o);
            o += c.length;
          }
        } else {
          if (major === 3 && n <= ASCII_FAST_MAX) {
            // Short text read in place (no view of the input made): keys, ids, hex values.
            this.need(n);
            const b = this.buf;
            const end = this.pos + n;
            let t = '';
            let i = this.pos;
            for (; i < end; i++) {
              const c = b[i]!;
              if (c > 0x7f) break;
              t += String.fromCharCode(c);
            }
            if (i === end) {
              this.pos = end;
              return t;
            }
          }
          bytes = this.take(n);
        }
        if (major === 2) return new Uint8Array(bytes); // copy: results never alias the input
        try {
          return td.decode(bytes);
        } catch {
          return this.fail('CBOR_BAD_UTF8', 'text string is not valid UTF-8', start);
        }
      }
      case 4: {
        const n = this.length(ai, start, 'array');
        const out: CborValue[] = [];
        if (n === -1) {
          if (!this.opts.allowIndefinite) this.fail('CBOR_BAD_INDEFINITE', 'indefinite-length array not allowed', start);
          for (;;) {
            const v = this.item(depth + 1);
            if (v === BREAK) break;
            if (out.length >= this.opts.maxItems) this.fail('CBOR_TOO_LARGE', `array longer than ${this.opts.maxItems}`, start);
            out.push(v);
          }
        } else {
          if (n > this.opts.maxItems) this.fail('CBOR_TOO_LARGE', `array of ${n} items exceeds ${this.opts.maxItems}`, start);
          for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
        }
        return out;
      }
      case 5: {
        const n = this.length(ai, start, 'map');
        const out = new Map<CborKey, CborValue>();
        if (n === -1) {
          if (!this.opts.allowIndefinite) this.fail('CBOR_BAD_INDEFINITE', 'indefinite-length map not allowed', start);
          for (;;) {
            const kstart = this.pos;
            const k = this.item(depth + 1);
            if (k === BREAK) break;
            this.put(out, kstart, k, depth, start);
          }
        } else {
          for (let i = 0; i < n; i++) {
            const kstart = this.pos;
            this.put(out, kstart, this.value(depth + 1), depth, start);
          }
        }
        return out;
      }
      case 6: {
        const t = this.arg(ai, start);
        if (t === -1 || typeof t === 'bigint') this.fail('CBOR_BAD_TAG', 'unsupported tag number', start);
        return new CborTag(t as number, this.value(depth + 1));
      }
      default: {
        // major 7
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        if (ai === 23) return undefined;
        const dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
        let f: number | undefined;
        if (ai === 25) {
          this.need(2);
          f = halfToNumber(dv.getUint16(this.pos));
          this.pos += 2;
        } else if (ai === 26) {
          this.need(4);
          f = dv.getFloat32(this.pos);
          this.pos += 4;
        } else if (ai === 27) {
          this.need(8);
          f = dv.getFloat64(this.pos);
          this.pos += 8;
        }
        if (f !== undefined) {
          if (!this.opts.allowIntegralFloats && Number.isInteger(f)) {
            this.fail('CBOR_FLOAT_INTEGER', `float ${Object.is(f, -0) ? '-0' : f} has an integral value: integers must be encoded as integers (major type 0/1)`, start);
          }
          return f;
        }
        return this.fail('CBOR_UNSUPPORTED_SIMPLE', `unsupported simple value (additional info ${ai})`, start);
      }
    }
  }

  /** One map entry: its key (read from `kstart`) checked, then its value read. */
  put(out: Map<CborKey, CborValue>, kstart: number, k: CborValue, depth: number, start: number): void {
    // By major type, not by JS type: a float key (1.0 or 1.5) is refused too.
    const kmajor = this.buf[kstart]! >> 5;
    if ((kmajor !== 0 && kmajor !== 1 && kmajor !== 3) || (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'bigint')) {
      this.fail('CBOR_BAD_KEY', 'map key must be an integer or text string', kstart);
    }
    if (out.has(k)) this.fail('CBOR_DUPLICATE_KEY', `duplicate map key ${JSON.stringify(String(k))}`, kstart);
    if (out.size >= this.opts.maxItems) this.fail('CBOR_TOO_LARGE', `map larger than ${this.opts.maxItems}`, start);
    out.set(k, this.value(depth + 1));
  }

  value(depth: number): CborValue {
    const start = this.pos;
    const v = this.item(depth);
    if (v === BREAK) this.fail('CBOR_UNEXPECTED_BREAK', 'break (0xff) outside an indefinite-length item', start);
    return v;
  }
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Decodes exactly one CBOR item occupying all of `buf`. */
export function decodeCbor(buf: Uint8Array, opts: DecodeOptions = {}): CborValue {
  const r = new Reader(buf, { ...DEFAULTS, ...opts });
  if (buf.length === 0) r.fail('CBOR_TRUNCATED', 'empty input');
  const v = r.value(0);
  if (r.pos !== buf.length) r.fail('CBOR_TRAILING_BYTES', `${buf.length - r.pos} byte(s) after the end of the item`);
  return v;
}

/**
 * Decodes one item from the front of `buf` and reports how many bytes it took.
 * For streams where items follow each other.
 */
export function decodeCborPrefix(buf: Uint8Array, opts: DecodeOptions = {}): { value: CborValue; length: number } {
  const r = new Reader(buf, { ...DEFAULTS, ...opts });
  const value = r.value(0);
  return { value, length: r.pos };
}

// ---------------------------------------------------------------- encoding

export interface EncodeOptions {
  /** Emit maps as indefinite-length (0xbf … 0xff), as newer NSM firmware does. */
  indefiniteMaps?: boolean;
  /**
   * Refuse (CBOR_TOO_DEEP) a value the decoder with the same maxDepth would
   * refuse — same depth convention — so a sender learns before sending.
   * Default: unbounded (the value is only bounded by the JS stack).
   */
  maxDepth?: number;
  /** Refuse (CBOR_TOO_LARGE) an array or map with more items, as the decoder would. Default: unbounded. */
  maxItems?: number;
}

/** Marks a map to be written indefinite-length regardless of EncodeOptions. */
export class IndefiniteMap extends Map<CborKey, CborValue> {}

/**
 * Writes into one buffer that doubles when full: a bridge frame is one allocation (plus the
 * copy out), not one small array per head and per string. Text that is all ASCII (every
 * key and most values on the bridge) is written char by char; anything else goes through
 * TextEncoder, so a lone surrogate still becomes U+FFFD exactly as before.
 *
 * The buffer is a scratch area kept between calls (encodeCbor is synchronous, and a nested
 * call gets a fresh one): allocating and growing it on every frame was a quarter of the
 * encoder's time. What a call wrote is zeroed before it returns, so no frame's bytes stay
 * behind in it.
 */
const firstScratch = new Uint8Array(4096);
let scratch: { buf: Uint8Array; view: DataView } | undefined = { buf: firstScratch, view: new DataView(firstScratch.buffer) };
/** The scratch area is given back only up to this size; a larger one (a big frame) is dropped. */
const SCRATCH_KEEP = 64 * 1024;

class Writer {
  buf: Uint8Array;
  view: DataView;
  size = 0;
  constructor(readonly opts: EncodeOptions) {
    const s = scratch;
    scratch = undefined;
    if (s) {
      this.buf = s.buf;
      this.view = s.view;
    } else {
      this.buf = new Uint8Array(256);
      this.view = new DataView(this.buf.buffer);
    }
  }

  /** Zeroes what was written and gives the buffer back for the next call. */
  recycle(): void {
    this.buf.fill(0, 0, this.size);
    if (this.buf.length <= SCRATCH_KEEP) scratch = { buf: this.buf, view: this.view };
  }

  /** Makes room for `n` more bytes and returns where they go. */
  room(n: number): number {
    const at = this.size;
    if (at + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < at + n) cap *= 2;
      const grown = new Uint8Array(cap);
      grown.set(this.buf.subarray(0, at));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    this.size = at + n;
    return at;
  }

  // room() may replace this.buf: take the offset before touching the buffer.
  byte(b: number): void {
    const at = this.room(1);
    this.buf[at] = b;
  }

  push(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }

  /**
   * Writes a head with argument `n`, which must be an integer in 0..2^64−1 — a number only up to
   * 2^53−1 (Number.MAX_SAFE_INTEGER). Anything else is CBOR_ENCODE_RANGE, never written: DataView
   * and Uint8Array would otherwise store it silently changed (setBigUint64 keeps it modulo 2^64,
   * so 2^64 + 2^32 became 2^32; `m | n` makes a negative or fractional n some other byte). Values come
   * checked from value(); this also covers lengths and tag numbers.
   */
  head(major: number, n: number | bigint): void {
    const m = major << 5;
    if (typeof n === 'bigint') {
      if (n < 0n || n > 0xffffffffffffffffn) throw new CborError('CBOR_ENCODE_RANGE', 'integer out of CBOR range', this.size);
      if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return this.head(major, Number(n));
      const at = this.room(9);
      this.buf[at] = m | 27;
      this.view.setBigUint64(at + 1, n);
      return;
    }
    if (!Number.isSafeInteger(n) || n < 0) throw new CborError('CBOR_ENCODE_RANGE', `head argument ${n} is not an integer in 0..2^53−1`, this.size);
    if (n < 24) return this.byte(m | n);
    if (n <= 0xff) {
      const at = this.room(2);
      this.buf[at] = m | 24;
      this.buf[at + 1] = n;
      return;
    }
    if (n <= 0xffff) {
      const at = this.room(3);
      this.buf[at] = m | 25;
      this.view.setUint16(at + 1, n);
      return;
    }
    if (n <= 0xffffffff) {
      const at = this.room(5);
      this.buf[at] = m | 26;
      this.view.setUint32(at + 1, n);
      return;
    }
    // 2^32..2^53−1: exact as a BigInt, and well inside setBigUint64's range.
    const at = this.room(9);
    this.buf[at] = m | 27;
    this.view.setBigUint64(at + 1, BigInt(n));
  }

  text(v: string): void {
    const t = asciiOrUtf8(v);
    this.head(3, t.length);
    if (typeof t !== 'string') return this.push(t);
    const at = this.room(t.length);
    writeAscii(this.buf, at, t);
  }

  value(v: CborValue, depth = 0): void {
    if (this.opts.maxDepth !== undefined && depth > this.opts.maxDepth) {
      throw new CborError('CBOR_TOO_DEEP', `nesting deeper than ${this.opts.maxDepth} levels`, this.size);
    }
    if (v === false) return this.byte(0xf4);
    if (v === true) return this.byte(0xf5);
    if (v === null) return this.byte(0xf6);
    if (v === undefined) return this.byte(0xf7);
    if (typeof v === 'number') {
      if (Number.isInteger(v)) {
        // An integer-valued number past ±(2^53−1) is refused, not written: it may already be a
        // rounded stand-in for the integer the caller meant (JSON.parse makes 2^64 + 2^32 + 1
        // into 2^64 + 2^32), the decoder would hand it back as a bigint, and past 2^64 it would
        // not even fit a head. A bigint says exactly which integer; pass one.
        if (!Number.isSafeInteger(v)) throw new CborError('CBOR_ENCODE_RANGE', `integer ${v} is outside ±(2^53−1); encode large integers as bigint`, this.size);
        return v >= 0 ? this.head(0, v) : this.head(1, -1 - v);
      }
      const at = this.room(9);
      this.buf[at] = 0xfb;
      this.view.setFloat64(at + 1, v);
      return;
    }
    if (typeof v === 'bigint') return v >= 0n ? this.head(0, v) : this.head(1, -1n - v);
    if (typeof v === 'string') return this.text(v);
    if (v instanceof Uint8Array) {
      this.head(2, v.length);
      return this.push(v);
    }
    if (Array.isArray(v)) {
      this.items(v.length, 'array');
      this.head(4, v.length);
      for (const x of v) this.value(x, depth + 1);
      return;
    }
    if (v instanceof Map) {
      this.items(v.size, 'map');
      const indefinite = v instanceof IndefiniteMap || this.opts.indefiniteMaps === true;
      if (indefinite) this.byte(0xbf);
      else this.head(5, v.size);
      for (const [k, x] of v) {
        this.value(k, depth + 1);
        this.value(x, depth + 1);
      }
      if (indefinite) this.byte(0xff);
      return;
    }
    if (v instanceof CborTag) {
      this.head(6, v.tag);
      return this.value(v.value, depth + 1);
    }
    throw new CborError('CBOR_ENCODE_TYPE', `cannot encode ${typeof v}`, this.size);
  }

  items(n: number, what: string): void {
    if (this.opts.maxItems !== undefined && n > this.opts.maxItems) {
      throw new CborError('CBOR_TOO_LARGE', `${what} of ${n} items exceeds ${this.opts.maxItems}`, this.size);
    }
  }
}

const fresh = (n: number): Uint8Array => new Uint8Array(n);

/** Encodes in preferred (shortest) form; map entries keep insertion order. */
export function encodeCbor(v: CborValue, opts: EncodeOptions = {}): Uint8Array {
  return encodeCborInto(v, opts, fresh);
}

/**
 * encodeCbor, written into bytes the caller provides: `take(n)` is called once with the
 * encoding's length and must return exactly n bytes, which are filled and returned. Lets the
 * bridge put a frame's header and body in one allocation of its choosing (common/bridge/frame.ts).
 */
export function encodeCborInto(v: CborValue, opts: EncodeOptions, take: (n: number) => Uint8Array): Uint8Array {
  const w = new Writer(opts);
  try {
    w.value(v);
    const out = take(w.size);
    if (out.length !== w.size) throw new RangeError(`encodeCborInto: take(${w.size}) returned ${out.length} bytes`);
    out.set(w.buf.subarray(0, w.size));
    return out;
  } finally {
    w.recycle();
  }
}
