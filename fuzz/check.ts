/**
 * Helpers the targets share to state their invariants: "only this module's
 * typed error may escape", structural equality of decoded values, and a
 * stable text form of values for messages.
 */
import { CborTag } from '../common/cbor.js';
import { Invariant } from './engine.js';

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Runs `fn`; returns its value, or undefined when it threw one of `allowed`.
 * Anything else thrown is re-thrown as is: the engine records it as a crash.
 */
export function typed<T>(fn: () => T, ...allowed: ErrorClass[]): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return undefined;
    throw e;
  }
}

export function invariant(ok: unknown, message: string): asserts ok {
  if (!ok) throw new Invariant(message);
}

/** Structural equality of decoded values (CBOR values, JSON values, bigints, bytes, NaN). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (a instanceof Uint8Array) return b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return false;
    const ea = [...a];
    const eb = [...b];
    return ea.every(([k, v], i) => Object.is(k, eb[i]![0]) && deepEqual(v, eb[i]![1]));
  }
  if (a instanceof CborTag) return b instanceof CborTag && a.tag === b.tag && deepEqual(a.value, b.value);
  if (Array.isArray(b) || b instanceof Uint8Array || b instanceof Map) return false;
  // A member holding undefined is an absent member (as JSON and our encoders treat it).
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
