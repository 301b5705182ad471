/**
 * Bridge framing: every message on the wire is
 *
 *   u32 big-endian length L  ‖  L bytes holding exactly one CBOR item
 *
 * Why a length prefix rather than self-delimiting CBOR: the receiver learns
 * the size of the next item from 4 bytes, so it can refuse an oversized frame
 * before buffering any of it, and a CBOR item that claims to be huge can never
 * make us wait for (or allocate) more than the cap.
 *
 * The decoder is the boundary where hostile bytes enter: whatever it is fed,
 * `push` either returns decoded items or throws a BridgeError — never any
 * other exception — and it never holds more than 4 + cap bytes between calls.
 * After its first error it stays failed: the byte stream has lost sync and the
 * connection must be dropped.
 */
import { decodeCbor, encodeCbor, type CborValue, type DecodeOptions } from '../cbor.js';
import { asBridgeError, BridgeError } from './errors.js';

export const FRAME_HEADER_BYTES = 4;
/** Default cap on one frame's CBOR body: 1 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** Largest cap a caller may configure (256 MiB) — far above any signing payload. */
export const MAX_FRAME_BYTES_LIMIT = 256 * 1024 * 1024;

export interface FrameOptions {
  /** Cap on a frame's CBOR body in bytes (the length prefix excluded). Default 1 MiB. */
  maxFrameBytes?: number;
}

export interface FrameDecoderOptions extends FrameOptions {
  /** Options for the strict CBOR decoder (depth, item count…); defaults of common/cbor.ts. */
  cbor?: DecodeOptions;
}

/** Validates a configured cap; a typo here must not silently mean "unbounded". */
export function resolveMaxFrameBytes(v: number | undefined): number {
  if (v === undefined) return DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX_FRAME_BYTES_LIMIT) {
    throw new BridgeError('BRIDGE_BAD_ARGUMENT', `maxFrameBytes must be an integer in 1..${MAX_FRAME_BYTES_LIMIT}, got ${String(v)}`);
  }
  return v;
}

/** Encodes one value as a frame. Throws BRIDGE_ENCODE or BRIDGE_FRAME_TOO_LARGE; nothing is sent then. */
export function encodeFrame(value: CborValue, opts: FrameOptions = {}): Uint8Array {
  const max = resolveMaxFrameBytes(opts.maxFrameBytes);
  let body: Uint8Array;
  try {
    body = encodeCbor(value);
  } catch (e) {
    // Includes RangeError from a cyclic array: callers get a typed error, not a crash.
    throw asBridgeError(e, 'BRIDGE_ENCODE', 'value cannot be encoded as CBOR');
  }
  if (body.length > max) {
    throw new BridgeError('BRIDGE_FRAME_TOO_LARGE', `frame body of ${body.length} bytes exceeds the ${max}-byte cap`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
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

export function createFrameDecoder(opts: FrameDecoderOptions = {}): FrameDecoder {
  const max = resolveMaxFrameBytes(opts.maxFrameBytes);
  const cborOpts = opts.cbor ?? {};
  let chunks: Uint8Array[] = [];
  let buffered = 0;
  /** Body length announced by the last header, or -1 while waiting for a header. */
  let bodyLength = -1;
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

  function decodeAvailable(out: CborValue[]): void {
    for (;;) {
      if (bodyLength < 0) {
        if (buffered < FRAME_HEADER_BYTES) return;
        const h = take(FRAME_HEADER_BYTES);
        const len = new DataView(h.buffer, h.byteOffset, FRAME_HEADER_BYTES).getUint32(0);
        if (len === 0) throw new BridgeError('BRIDGE_BAD_FRAME', 'zero-length frame: a frame carries exactly one CBOR item');
        // Refused on the header alone: none of the oversized body is ever buffered.
        if (len > max) throw new BridgeError('BRIDGE_FRAME_TOO_LARGE', `frame announces ${len} bytes, above the ${max}-byte cap`);
        bodyLength = len;
      }
      if (buffered < bodyLength) return;
      const body = take(bodyLength);
      bodyLength = -1;
      try {
        out.push(decodeCbor(body, cborOpts));
      } catch (e) {
        throw asBridgeError(e, 'BRIDGE_BAD_FRAME', 'frame body is not one well-formed CBOR item');
      }
    }
  }

  return {
    push(chunk: Uint8Array): CborValue[] {
      if (failed) throw failed;
      const out: CborValue[] = [];
      try {
        if (!(chunk instanceof Uint8Array)) {
          throw new BridgeError('BRIDGE_BAD_FRAME', `stream delivered a ${typeof chunk} chunk instead of bytes`);
        }
        if (chunk.length > 0) {
          chunks.push(chunk);
          buffered += chunk.length;
        }
        decodeAvailable(out);
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
