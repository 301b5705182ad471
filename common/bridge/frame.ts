/**
 * Bridge framing: every message on the wire is
 *
 *   u32 big-endian length L  ‖  L bytes holding exactly one CBOR item
 *
 * Why a length prefix rather than self-delimiting CBOR: the receiver learns
 * the size of the next item from 4 bytes, so it can refuse an oversized frame
 * before buffering any of it, a CBOR item that claims to be huge can never
 * make us wait for (or allocate) more than the cap — and a frame whose body
 * cannot be read does not lose the stream: the next frame starts L bytes on.
 *
 * Two readers of the same format:
 *
 * - `createFrameReader` (what the bridge peer uses) yields one event per
 *   frame: the decoded item, or a *bad frame* — body not one well-formed CBOR
 *   item within the limits, zero length, or a body over the cap (skipped
 *   without buffering it) — carrying the message type and id found at the
 *   front of the body when they can be read, so the peer fails that request
 *   only. Only a length the reader cannot skip (above MAX_FRAME_SKIP_BYTES)
 *   stops it: then the connection must be dropped.
 * - `createFrameDecoder` is the strict form: the first bad frame throws and
 *   the decoder stays failed (tools, tests).
 *
 * Whatever they are fed, they return or throw a BridgeError — never any other
 * exception — and never hold more than 4 + cap bytes between calls. The
 * limits are common/limits.ts, shared with the other side of the bridge.
 */
import { decodeCbor, decodeCborPrefix, encodeCborInto, type CborValue, type DecodeOptions } from '../cbor.js';
import { MAX_BRIDGE_CBOR_DEPTH, MAX_CBOR_ITEMS, MAX_FRAME_BYTES, MAX_FRAME_SKIP_BYTES } from '../limits.js';
import { asBridgeError, BridgeError } from './errors.js';

export const FRAME_HEADER_BYTES = 4;
/** Default cap on one frame's CBOR body: 1 MiB (common/limits.ts MAX_FRAME_BYTES). */
export const DEFAULT_MAX_FRAME_BYTES = MAX_FRAME_BYTES;
/** Largest cap a caller may configure (256 MiB) — far above any signing payload. */
export const MAX_FRAME_BYTES_LIMIT = 256 * 1024 * 1024;
/** CBOR limits of a frame body, enforced by the sender (encodeFrame) and the receiver alike. */
export const FRAME_CBOR_LIMITS = { maxDepth: MAX_BRIDGE_CBOR_DEPTH, maxItems: MAX_CBOR_ITEMS } as const;
/** Bytes kept from the front of an oversized frame to find its message type and id. */
const SALVAGE_PREFIX_BYTES = 256;

export interface FrameOptions {
  /** Cap on a frame's CBOR body in bytes (the length prefix excluded). Default 1 MiB. */
  maxFrameBytes?: number;
}

export interface FrameDecoderOptions extends FrameOptions {
  /** Options for the strict CBOR decoder; default the bridge limits (FRAME_CBOR_LIMITS). */
  cbor?: DecodeOptions;
}

export interface FrameReaderOptions extends FrameDecoderOptions {
  /**
   * Skip (read and discard) a body over the cap and report it as a bad frame,
   * up to MAX_FRAME_SKIP_BYTES. Default true; false refuses it on the header
   * alone, stopping the reader.
   */
  skipOversized?: boolean;
}

/** Validates a configured cap; a typo here must not silently mean "unbounded". */
export function resolveMaxFrameBytes(v: number | undefined): number {
  if (v === undefined) return DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX_FRAME_BYTES_LIMIT) {
    throw new BridgeError('BRIDGE_BAD_ARGUMENT', `maxFrameBytes must be an integer in 1..${MAX_FRAME_BYTES_LIMIT}, got ${String(v)}`);
  }
  return v;
}

/**
 * Where frames are written: carved one after another from a 64 KiB slab, not one allocation each.
 * A frame is often over 1 KiB (an answer carries its audit record), and glibc serves every
 * allocation of that size by first consolidating all small freed chunks (`malloc_consolidate`),
 * after which the small allocations of the enclave's inline signature (V8's BigInt scratch) take
 * glibc's slow path. The body used to be one such allocation and the frame a second, plus a copy;
 * now there is neither (docs/performance.md, "Session 15", has what it measured to).
 *
 * A slab is never reused: a frame's bytes stay as written however long the socket holds them, and
 * a slab is collected with its last frame. Only frames are ever written into a slab, and a frame
 * is what gets sent, so `frame.buffer` shows nothing but other frames of this process (which went
 * to the same peer). A frame over a quarter of the slab gets its own allocation.
 */
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

function frameBytes(n: number): Uint8Array {
  if (n > SLAB_BYTES / 4) return new Uint8Array(n);
  if (slabUsed + n > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += (n + 7) & ~7; // the next frame starts 8-byte aligned
  return out;
}

/**
 * Encodes one value as a frame. Throws BRIDGE_ENCODE (not encodable, or
 * nested deeper / more items than the receiver accepts) or
 * BRIDGE_FRAME_TOO_LARGE; nothing is sent then. A frame this returns is one
 * the other side's reader decodes.
 */
export function encodeFrame(value: CborValue, opts: FrameOptions = {}): Uint8Array {
  const max = resolveMaxFrameBytes(opts.maxFrameBytes);
  let frame: Uint8Array | undefined;
  try {
    encodeCborInto(value, FRAME_CBOR_LIMITS, (n) => {
      if (n > max) throw new BridgeError('BRIDGE_FRAME_TOO_LARGE', `frame body of ${n} bytes exceeds the ${max}-byte cap`);
      frame = frameBytes(FRAME_HEADER_BYTES + n);
      return frame.subarray(FRAME_HEADER_BYTES);
    });
  } catch (e) {
    // Includes RangeError from a cyclic array: callers get a typed error, not a crash.
    throw asBridgeError(e, 'BRIDGE_ENCODE', 'value cannot be sent in a bridge frame');
  }
  const out = frame!;
  new DataView(out.buffer, out.byteOffset, FRAME_HEADER_BYTES).setUint32(0, out.length - FRAME_HEADER_BYTES);
  return out;
}

/** A frame whose body could not be used; the stream is still in sync after it. */
export interface BadFrame {
  /** BRIDGE_BAD_FRAME (body not one well-formed item within the limits, zero length) or BRIDGE_FRAME_TOO_LARGE. */
  error: BridgeError;
  /** The message type (`t`) read from the front of the body, when readable. */
  t?: string;
  /** The message id read from the front of the body, when readable (an unsigned CBOR integer). */
  id?: number;
}

export type FrameEvent = { ok: true; value: CborValue } | { ok: false; bad: BadFrame };

/**
 * Reads `t` and `id` from the front of a frame body without decoding the
 * rest: the body must start with a map whose first entries are "t" (text)
 * and then "id" (unsigned integer) — the order encodeMessage writes. Works on
 * a truncated prefix; anything unexpected yields nothing.
 */
export function salvageHeader(body: Uint8Array): { t?: string; id?: number } {
  const out: { t?: string; id?: number } = {};
  if (body.length === 0 || body[0]! >> 5 !== 5) return out;
  const ai = body[0]! & 0x1f;
  let pos = ai < 24 || ai === 31 ? 1 : ai === 24 ? 2 : ai === 25 ? 3 : ai === 26 ? 5 : ai === 27 ? 9 : -1;
  if (pos < 0) return out;
  // Scalars only: one small text or integer item at a time, never a container.
  const scalar = (): CborValue => {
    const b = body[pos];
    if (b === undefined || (b >> 5 !== 0 && b >> 5 !== 3) || (b & 0x1f) === 31) throw new Error('not a scalar');
    const r = decodeCborPrefix(body.subarray(pos), { maxDepth: 0 });
    pos += r.length;
    return r.value;
  };
  try {
    if (scalar() !== 't') return out;
    const t = scalar();
    if (typeof t !== 'string' || t.length > 16) return out;
    out.t = t;
    if (scalar() !== 'id') return out;
    const id = scalar();
    if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) out.id = id;
  } catch {
    // truncated or not what a message starts with: nothing more to recover
  }
  return out;
}

export interface FrameReader {
  /**
   * Feeds the next chunk of the byte stream; returns one event per frame it
   * completes, in order. Throws BridgeError only when the stream cannot be
   * resynchronised (a frame announcing more than MAX_FRAME_SKIP_BYTES, a chunk
   * that is not bytes), and again on every later call.
   */
  push(chunk: Uint8Array): FrameEvent[];
  /** Bytes held for a frame not yet complete; never more than 4 + cap. */
  readonly bufferedBytes: number;
  /** The error that stopped the reader, if any. */
  readonly error: BridgeError | undefined;
}

export function createFrameReader(opts: FrameReaderOptions = {}): FrameReader {
  const max = resolveMaxFrameBytes(opts.maxFrameBytes);
  const cborOpts: DecodeOptions = { ...FRAME_CBOR_LIMITS, ...opts.cbor };
  let chunks: Uint8Array[] = [];
  let buffered = 0;
  /** Body length announced by the last header, or -1 while waiting for a header. */
  let bodyLength = -1;
  /** While skipping an oversized body: bytes still to discard, and the kept prefix. */
  let skipping: { left: number; announced: number; prefix: Uint8Array[]; kept: number } | undefined;
  let failed: BridgeError | undefined;

  /** Removes the first n buffered bytes (n ≤ buffered); zero-copy when one chunk holds them. */
  function take(n: number): Uint8Array {
    buffered -= n;
    const first = chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) chunks.shift();
      else chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = chunks[0]!;
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    return out;
  }

  function bad(error: BridgeError, body: Uint8Array): FrameEvent {
    return { ok: false, bad: { error, ...salvageHeader(body) } };
  }

  function readAvailable(out: FrameEvent[]): void {
    for (;;) {
      if (skipping) {
        // Discard the oversized body as it arrives, keeping only its first bytes.
        const s = skipping;
        const n = Math.min(s.left, buffered);
        if (n > 0) {
          const part = take(n);
          if (s.kept < SALVAGE_PREFIX_BYTES) {
            const keep = part.subarray(0, SALVAGE_PREFIX_BYTES - s.kept);
            s.prefix.push(Uint8Array.from(keep));
            s.kept += keep.length;
          }
          s.left -= n;
        }
        if (s.left > 0) return;
        skipping = undefined;
        const prefix = new Uint8Array(s.kept);
        let o = 0;
        for (const p of s.prefix) {
          prefix.set(p, o);
          o += p.length;
        }
        out.push(bad(new BridgeError('BRIDGE_FRAME_TOO_LARGE', `frame of ${s.announced} bytes is above the ${max}-byte cap`), prefix));
        continue;
      }
      if (bodyLength < 0) {
        if (buffered < FRAME_HEADER_BYTES) return;
        const h = take(FRAME_HEADER_BYTES);
        const len = new DataView(h.buffer, h.byteOffset, FRAME_HEADER_BYTES).getUint32(0);
        if (len === 0) {
          out.push(bad(new BridgeError('BRIDGE_BAD_FRAME', 'zero-length frame: a frame carries exactly one CBOR item'), new Uint8Array(0)));
          continue;
        }
        if (len > max) {
          // Beyond the skip bound no peer of ours could have written it: give up on the stream.
          if (opts.skipOversized === false || len > Math.max(MAX_FRAME_SKIP_BYTES, max)) throw new BridgeError('BRIDGE_FRAME_TOO_LARGE', `frame announces ${len} bytes, above the ${max}-byte cap`);
          // Refused on the header alone: none of the oversized body is ever buffered.
          skipping = { left: len, announced: len, prefix: [], kept: 0 };
          continue;
        }
        bodyLength = len;
      }
      if (buffered < bodyLength) return;
      const body = take(bodyLength);
      bodyLength = -1;
      try {
        out.push({ ok: true, value: decodeCbor(body, cborOpts) });
      } catch (e) {
        out.push(bad(asBridgeError(e, 'BRIDGE_BAD_FRAME', 'frame body is not one well-formed CBOR item'), body));
      }
    }
  }

  return {
    push(chunk: Uint8Array): FrameEvent[] {
      if (failed) throw failed;
      const out: FrameEvent[] = [];
      try {
        if (!(chunk instanceof Uint8Array)) {
          throw new BridgeError('BRIDGE_BAD_FRAME', `stream delivered a ${typeof chunk} chunk instead of bytes`);
        }
        if (chunk.length > 0) {
          chunks.push(chunk);
          buffered += chunk.length;
        }
        readAvailable(out);
      } catch (e) {
        failed = asBridgeError(e, 'BRIDGE_BAD_FRAME', 'frame decoding failed');
        chunks = [];
        buffered = 0;
        throw failed;
      }
      return out;
    },
    get bufferedBytes() {
      return buffered;
    },
    get error() {
      return failed;
    },
  };
}

export interface FrameDecoder {
  /**
   * Feeds the next chunk of the byte stream; returns every frame it completes,
   * in order. Throws BridgeError (BRIDGE_FRAME_TOO_LARGE / BRIDGE_BAD_FRAME)
   * on the first bad frame, and again on every later call.
   *
   * The decoder may keep references to (sub-arrays of) pushed chunks until
   * their frame completes: do not modify a chunk after pushing it.
   */
  push(chunk: Uint8Array): CborValue[];
  /** Bytes held for a frame not yet complete; never more than 4 + cap. */
  readonly bufferedBytes: number;
  /** The error that stopped the decoder, if any. */
  readonly error: BridgeError | undefined;
}

/** The strict reader: the first bad frame is an error, and the decoder stays failed. */
export function createFrameDecoder(opts: FrameDecoderOptions = {}): FrameDecoder {
  const reader = createFrameReader({ ...opts, skipOversized: false });
  let failed: BridgeError | undefined;
  return {
    push(chunk: Uint8Array): CborValue[] {
      if (failed) throw failed;
      const out: CborValue[] = [];
      let events: FrameEvent[];
      try {
        events = reader.push(chunk);
      } catch (e) {
        failed = asBridgeError(e, 'BRIDGE_BAD_FRAME', 'frame decoding failed');
        throw failed;
      }
      for (const ev of events) {
        if (!ev.ok) {
          failed = ev.bad.error;
          throw failed;
        }
        out.push(ev.value);
      }
      return out;
    },
    get bufferedBytes() {
      return failed ? 0 : reader.bufferedBytes;
    },
    get error() {
      return failed;
    },
  };
}
