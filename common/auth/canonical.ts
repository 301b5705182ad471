/**
 * RFC 8785 (JCS) canonical JSON for request params: what a request digest
 * is computed over. Like attestation/manifest-json.ts (same output for the
 * values manifests hold), but numbers are any finite double, serialised as
 * ECMAScript's Number.prototype.toString (which is what JCS specifies) —
 * requests reach the enclave after a JSON.parse, so a double is what both
 * sides hold, and a request with a fractional number must not become
 * unsignable just because it is authenticated.
 */
import { AuthError } from './errors.js';

const MAX_DEPTH = 64;

function fail(message: string): never {
  throw new AuthError('AUTH_MALFORMED', `cannot canonicalize the request: ${message}`, {
    hint: 'signed params may hold strings, finite numbers, booleans, null, arrays and plain objects',
  });
}

export function canonicalRequestJson(v: unknown, depth = 0): string {
  if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail('numbers must be finite');
    return Object.is(v, -0) ? '0' : JSON.stringify(v);
  }
  if (typeof v === 'string') {
    if (!v.isWellFormed()) fail('a string holds a lone surrogate');
    return JSON.stringify(v);
  }
  // Built by concatenation, not arrays and join: every authenticated request goes through here
  // on both sides of the boundary.
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + canonicalRequestJson(v[i], depth + 1);
    return `${out}]`;
  }
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) fail('only plain objects are JSON');
    const rec = v as Record<string, unknown>;
    const keys = Object.keys(rec).sort();
    let out = '{';
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (rec[k] === undefined) fail(`undefined at key ${JSON.stringify(k.slice(0, 32))}`);
      out += `${i === 0 ? '' : ','}${canonicalRequestJson(k)}:${canonicalRequestJson(rec[k], depth + 1)}`;
    }
    return `${out}}`;
  }
  fail(`a value of type ${typeof v} is not JSON`);
}

const utf8 = new TextEncoder();

export function canonicalRequestBytes(v: unknown): Uint8Array {
  return utf8.encode(canonicalRequestJson(v));
}
