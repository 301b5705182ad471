/**
 * Splits a byte stream into top-level JSON values the way geth's IPC reads
 * it: values may follow each other directly (`{…}{…}`, as viem writes them)
 * or be separated by whitespace/newlines (as ethers writes them). Only
 * objects and arrays are accepted at the top level — that is all JSON-RPC
 * sends — so a value's end is found by counting brackets outside strings,
 * without parsing; JSON.parse then judges each value on its own.
 *
 * Bounded: a value (complete or not) longer than `maxBytes` is an error
 * before more than `maxBytes` of it is held. Anything but whitespace, `{` or
 * `[` between values means the stream has lost sync: an error too.
 */

export type SplitError = { kind: 'too_large'; limit: number } | { kind: 'garbage'; byte: number };

export interface JsonStreamSplitter {
  /** Feeds a chunk; returns the values it completed. After an error, returns it forever. */
  push(chunk: Uint8Array): { values: Buffer[]; error?: SplitError };
  /** Bytes of an unfinished value held between chunks. */
  readonly pending: number;
}

const OPEN_OBJ = 0x7b; // {
const CLOSE_OBJ = 0x7d; // }
const OPEN_ARR = 0x5b; // [
const CLOSE_ARR = 0x5d; // ]
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

export function createJsonStreamSplitter(maxBytes: number): JsonStreamSplitter {
  let parts: Uint8Array[] = [];
  let held = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let failed: SplitError | undefined;

  return {
    get pending() {
      return held;
    },
    push(chunk) {
      if (failed) return { values: [], error: failed };
      const values: Buffer[] = [];
      let start = depth > 0 ? 0 : -1; // where the current value starts in this chunk
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (depth === 0) {
          if (isSpace(b)) continue;
          if (b !== OPEN_OBJ && b !== OPEN_ARR) {
            failed = { kind: 'garbage', byte: b };
            parts = [];
            held = 0;
            return { values, error: failed };
          }
          start = i;
          depth = 1;
          continue;
        }
        // Checked as we go (strings included), so an endless value never grows past the cap.
        if (held + (i + 1 - start) > maxBytes) {
          failed = { kind: 'too_large', limit: maxBytes };
          parts = [];
          held = 0;
          return { values, error: failed };
        }
        if (inString) {
          if (escaped) escaped = false;
          else if (b === BACKSLASH) escaped = true;
          else if (b === QUOTE) inString = false;
          continue;
        }
        if (b === QUOTE) inString = true;
        else if (b === OPEN_OBJ || b === OPEN_ARR) depth++;
        else if (b === CLOSE_OBJ || b === CLOSE_ARR) {
          depth--;
          if (depth === 0) {
            values.push(Buffer.concat([...parts, chunk.subarray(start, i + 1)]));
            parts = [];
            held = 0;
            start = -1;
          }
        }
      }
      if (depth > 0 && start !== -1) {
        // Copy: the caller may reuse the chunk's memory.
        const rest = Buffer.from(chunk.subarray(start));
        parts.push(rest);
        held += rest.length;
      }
      return { values };
    },
  };
}
