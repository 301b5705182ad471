/** Parsing flag values: every malformed value is a UsageError naming the flag. */
import { parseHex, toHex } from '../common/bytes.js';
import { UsageError } from './errors.js';

/** Hex bytes, optional 0x, any case; `bytes` fixes the length. */
export function hexFlag(flag: string, value: string, bytes?: number): Uint8Array {
  const b = parseHex(value.trim());
  if (!b) throw new UsageError(`--${flag} must be hex (optionally 0x-prefixed), got ${JSON.stringify(value.slice(0, 40))}`);
  if (b.length === 0) throw new UsageError(`--${flag} must not be empty`);
  if (bytes !== undefined && b.length !== bytes) throw new UsageError(`--${flag} must be ${bytes} bytes (${bytes * 2} hex characters), got ${b.length}`);
  return b;
}

/** Normalized lowercase hex (no 0x) of a fixed-length value, as manifests store it. */
export function hexString(flag: string, value: string, bytes: number): string {
  return toHex(hexFlag(flag, value, bytes));
}

const ISO = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/;

/** `--at`: "doc"/"document" (the document's own timestamp) or ISO 8601 (a time needs a zone: no local-time guessing). */
export function atFlag(value: string | undefined): Date | 'document' | undefined {
  if (value === undefined) return undefined;
  if (value === 'doc' || value === 'document') return 'document';
  if (!ISO.test(value)) throw new UsageError(`--at must be "doc" or an ISO 8601 time with a zone like 2024-09-07T14:37:39Z, got ${JSON.stringify(value.slice(0, 40))}`);
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--at ${value} is not a real time`);
  return d;
}

/** Repeated `--pcr N=hex` → index → 48 bytes. */
export function pcrFlags(values: string[]): Record<number, Uint8Array> | undefined {
  if (values.length === 0) return undefined;
  const out: Record<number, Uint8Array> = {};
  for (const v of values) {
    const m = /^(\d{1,2})=(.*)$/.exec(v);
    if (!m) throw new UsageError(`--pcr must be N=hex, got ${JSON.stringify(v.slice(0, 40))}`);
    const idx = Number(m[1]);
    if (idx > 31) throw new UsageError(`--pcr index ${idx} is out of range (0..31)`);
    if (out[idx] !== undefined) throw new UsageError(`--pcr ${idx} given twice`);
    out[idx] = hexFlag(`pcr ${idx}`, m[2]!, 48);
  }
  return out;
}

/** `--match 0,1,2` → sorted unique indices. */
export function matchFlag(value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d{1,2}$/.test(p))) throw new UsageError(`--match must be a comma-separated list of PCR indices like 0,1,2, got ${JSON.stringify(value)}`);
  const nums = parts.map(Number);
  if (new Set(nums).size !== nums.length) throw new UsageError('--match lists an index twice');
  return nums.sort((a, b) => a - b);
}

/** `--chain-id N`: decimal or 0x hex, 1 .. 2^53 − 1 (undefined when not given). */
export function chainIdFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ok = /^(?:[1-9]\d{0,15}|0x[1-9a-fA-F][0-9a-fA-F]{0,13})$/.test(value);
  const n = ok ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--chain-id ${JSON.stringify(value)} is not a chain id`, { hint: 'a positive integer, e.g. --chain-id 1 (mainnet) or 0x7a69' });
  return n;
}
