/** Byte helpers shared by every side of the trust boundary. */

export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** Parses hex with or without 0x; returns undefined when it is not whole-byte hex. */
export function parseHex(s: string): Uint8Array | undefined {
  const body = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (!HEX_RE.test(body)) return undefined;
  return new Uint8Array(Buffer.from(body, 'hex'));
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Constant-time for equal lengths; lengths themselves are not secret here. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Overwrites a buffer that held secret material. */
export function wipe(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const b of bufs) if (b) b.fill(0);
}

const te = new TextEncoder();

/**
 * Text on its way into an encoding: the string itself when it is all ASCII (its length is then
 * its UTF-8 length, and writeAscii writes it in place), else its UTF-8 bytes from TextEncoder
 * (a lone surrogate becomes U+FFFD). Ids, kinds and method names skip an allocation.
 */
export function asciiOrUtf8(s: string): string | Uint8Array {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return te.encode(s);
  return s;
}

/** Writes an all-ASCII string (asciiOrUtf8 returned it as a string) into `out` at `at`, a byte per char. */
export function writeAscii(out: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
}
