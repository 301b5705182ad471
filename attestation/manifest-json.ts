/**
 * The JSON layer under PCR manifests: a strict parser and the canonical
 * serialization that signatures cover.
 *
 * Why not JSON.parse: it silently keeps the *last* of two duplicate keys, so a
 * file could show one PCR value to a human or another tool and a different one
 * to us. A signed document must mean one thing to every reader, so duplicates,
 * trailing garbage and lone surrogates are errors here.
 *
 * Canonical form (what gets signed), for the values a manifest can hold
 * (objects, arrays, strings, safe integers, booleans, null):
 *   - objects: keys sorted by UTF-16 code units (JavaScript's default sort),
 *     `{"k":v,...}` with no whitespace;
 *   - arrays: `[v,...]` in order, no whitespace;
 *   - strings: exactly as ECMAScript JSON.stringify escapes them (", \, and
 *     U+0000..U+001F escaped; \b \f \n \r \t short forms; others \u00xx with
 *     lowercase hex; everything else literal);
 *   - numbers: safe integers in shortest decimal form (no floats at all);
 *   - the resulting text is encoded as UTF-8.
 * For these inputs this is byte-for-byte RFC 8785 (JCS), so auditors can
 * reproduce it with any JCS implementation.
 */
import { AttestationError } from './errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** Nesting limit: a manifest is three levels deep; anything far deeper is hostile. */
const MAX_DEPTH = 16;

function fail(message: string): never {
  throw new AttestationError('ATTEST_MANIFEST', 'manifest', message);
}

// A lone surrogate (not part of a pair) cannot be encoded as UTF-8.
const LONE_SURROGATE = /\p{Cs}/u;

/** Parses RFC 8259 JSON, rejecting duplicate keys, non-integer numbers beyond 2^53 and lone surrogates. */
export function parseStrictJson(text: string): JsonValue {
  let i = 0;
  const n = text.length;

  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const where = (): string => `at offset ${i}`;

  const str = (): string => {
    // Caller checked text[i] === '"'.
    const start = i;
    i++;
    for (;;) {
      if (i >= n) fail(`unterminated string starting at offset ${start}`);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail(`control character in string ${where()}`);
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail(`bad \\u escape ${where()}`);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else fail(`bad escape ${where()}`);
      } else i++;
    }
    i++;
    // The slice is valid JSON string syntax by now; JSON.parse does the unescaping.
    const s = JSON.parse(text.slice(start, i)) as string;
    if (LONE_SURROGATE.test(s)) fail(`string with a lone surrogate at offset ${start}`);
    return s;
  };

  const num = (): number => {
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail(`bad number ${where()}`);
    const v = Number(m[0]);
    if (!Number.isSafeInteger(v) || !/^-?(?:0|[1-9][0-9]*)$/.test(m[0])) fail(`only integers up to 2^53 are allowed, got ${m[0].slice(0, 40)} ${where()}`);
    i += m[0].length;
    return v;
  };

  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
      ws();
      if (text[i] === '}') {
        i++;
        return {};
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a string key ${where()}`);
        const k = str();
        if (Object.hasOwn(obj, k)) fail(`duplicate key ${JSON.stringify(k.slice(0, 64))}`);
        ws();
        if (text[i] !== ':') fail(`expected ':' ${where()}`);
        i++;
        obj[k] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          break;
        }
        fail(`expected ',' or '}' ${where()}`);
      }
      // A plain object again (Object.create(null) was only to make "__proto__" an ordinary key).
      const out: Record<string, JsonValue> = {};
      for (const k of Object.keys(obj)) Object.defineProperty(out, k, { value: obj[k], enumerable: true, writable: true, configurable: true });
      return out;
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          break;
        }
        fail(`expected ',' or ']' ${where()}`);
      }
      return arr;
    }
    if (c === '"') return str();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return num();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    fail(i >= n ? 'unexpected end of JSON' : `unexpected character ${JSON.stringify(c)} ${where()}`);
  };

  const v = value(0);
  ws();
  if (i !== n) fail(`trailing data ${where()}`);
  return v;
}

/** Decodes UTF-8 bytes (fatal on invalid sequences; a leading BOM is refused) and parses strictly. */
export function parseStrictJsonBytes(bytes: Uint8Array): JsonValue {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    throw new AttestationError('ATTEST_MANIFEST', 'manifest', 'manifest is not valid UTF-8', { cause: e });
  }
  if (text.charCodeAt(0) === 0xfeff) fail('manifest starts with a byte-order mark; save it as plain UTF-8');
  return parseStrictJson(text);
}

/** The canonical text of a value (see the module comment). Throws on values outside the JSON subset. */
export function canonicalJson(v: unknown, depth = 0): string {
  if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) fail(`cannot canonicalize number ${v}: only safe integers are allowed`);
    return Object.is(v, -0) ? '0' : String(v);
  }
  if (typeof v === 'string') {
    if (LONE_SURROGATE.test(v)) fail('cannot canonicalize a string with a lone surrogate');
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x, depth + 1)).join(',')}]`;
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) fail('cannot canonicalize a non-plain object');
    const rec = v as Record<string, unknown>;
    const keys = Object.keys(rec).sort();
    const parts: string[] = [];
    for (const k of keys) {
      if (rec[k] === undefined) fail(`cannot canonicalize undefined at key ${JSON.stringify(k)}`);
      parts.push(`${canonicalJson(k)}:${canonicalJson(rec[k], depth + 1)}`);
    }
    return `{${parts.join(',')}}`;
  }
  fail(`cannot canonicalize a value of type ${typeof v}`);
}

/** UTF-8 bytes of the canonical text: exactly what a manifest signature covers. */
export function canonicalBytes(v: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(v));
}
