/**
 * Reading request members at the boundary, with KMS's error split:
 * a member of the wrong JSON type or undecodable base64 is a
 * SerializationException (the request could not be deserialized), a value
 * outside its constraints is a ValidationException worded as AWS words it.
 */
import { KmsError } from './errors.js';
import type { EncryptionContext } from './blob.js';

export type Input = Record<string, unknown>;

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function lowerFirst(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

export function validation(member: string, constraint: string): KmsError {
  return new KmsError('ValidationException', `1 validation error detected: Value at '${lowerFirst(member)}' failed to satisfy constraint: ${constraint}`);
}

function serialization(message: string): KmsError {
  return new KmsError('SerializationException', message);
}

function present(input: Input, name: string): unknown {
  const v = Object.hasOwn(input, name) ? input[name] : undefined;
  return v === null ? undefined : v;
}

export function optString(input: Input, name: string, limits: { min?: number; max?: number } = {}): string | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw serialization(`${name} must be a string`);
  if (v.length < (limits.min ?? 1)) throw validation(name, `Member must have length greater than or equal to ${limits.min ?? 1}`);
  if (limits.max !== undefined && v.length > limits.max) throw validation(name, `Member must have length less than or equal to ${limits.max}`);
  return v;
}

export function reqString(input: Input, name: string, limits: { min?: number; max?: number } = {}): string {
  const v = optString(input, name, limits);
  if (v === undefined) throw validation(name, 'Member must not be null');
  return v;
}

export function optEnum<T extends string>(input: Input, name: string, allowed: readonly T[]): T | undefined {
  const v = optString(input, name);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw validation(name, `Member must satisfy enum value set: [${allowed.join(', ')}]`);
  return v as T;
}

export function optInt(input: Input, name: string, min: number, max: number): number | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw serialization(`${name} must be an integer`);
  if (v < min) throw validation(name, `Member must have value greater than or equal to ${min}`);
  if (v > max) throw validation(name, `Member must have value less than or equal to ${max}`);
  return v;
}

export function optBool(input: Input, name: string): boolean | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw serialization(`${name} must be a boolean`);
  return v;
}

/** Strict base64 (standard alphabet, padded): Node's own decoder would silently skip garbage. */
export function decodeBase64(text: string, name: string): Uint8Array {
  const s = text.replace(/\s+/g, '');
  if (!B64_RE.test(s)) throw serialization(`${name} is not valid base64`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

export function optBlob(input: Input, name: string, min: number, max: number): Uint8Array | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw serialization(`${name} must be a base64 string`);
  const b = decodeBase64(v, name);
  if (b.length < min) throw validation(name, `Member must have length greater than or equal to ${min}`);
  if (b.length > max) throw validation(name, `Member must have length less than or equal to ${max}`);
  return b;
}

export function reqBlob(input: Input, name: string, min: number, max: number): Uint8Array {
  const v = optBlob(input, name, min, max);
  if (v === undefined) throw validation(name, 'Member must not be null');
  return v;
}

/** KMS caps an encryption context at 8 KiB of keys and values together. */
const MAX_CONTEXT_BYTES = 8192;

export function optContext(input: Input, name: string): EncryptionContext | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw serialization(`${name} must be a map of strings to strings`);
  let size = 0;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'string') throw serialization(`${name} must be a map of strings to strings`);
    if (k.length === 0) throw validation(name, 'Map keys must have length greater than or equal to 1');
    size += Buffer.byteLength(k) + Buffer.byteLength(x);
  }
  if (size > MAX_CONTEXT_BYTES) throw validation(name, `Member must have total size less than or equal to ${MAX_CONTEXT_BYTES} bytes`);
  return v as EncryptionContext;
}

export function optStringList(input: Input, name: string): string[] | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw serialization(`${name} must be a list of strings`);
  return v as string[];
}

export function optObject(input: Input, name: string): Input | undefined {
  const v = present(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw serialization(`${name} must be an object`);
  return v as Input;
}
