/**
 * The emulator's CiphertextBlob: AES-256-GCM under one version of a key's
 * material. The header names the key and the material version so Decrypt
 * needs no KeyId; the AAD is the whole header plus the canonical encryption
 * context, so moving a blob to another key, another version or another
 * context fails authentication (InvalidCiphertextException), as in KMS.
 *
 *   0  "KMSE"            magic
 *   4  0x01              format version
 *   5  key id            16 bytes (the key's UUID)
 *  21  material version  u32 big-endian
 *  25  IV                12 bytes
 *  37  ciphertext ‖ GCM tag (16 bytes)
 *
 * Only this emulator reads these blobs; real KMS blobs look different and
 * are not interchangeable.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { concatBytes } from '../../common/bytes.js';
import { KmsError } from './errors.js';

const MAGIC = Uint8Array.of(0x4b, 0x4d, 0x53, 0x45);
const FORMAT = 1;
export const BLOB_HEADER_BYTES = 37;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const MATERIAL_BYTES = 32;

export type EncryptionContext = Record<string, string>;

export interface BlobHeader {
  /** Lowercase UUID of the key. */
  keyId: string;
  materialVersion: number;
}

function uuidBytes(keyId: string): Uint8Array {
  const hex = keyId.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new KmsError('KMSInternalException', 'internal: key id is not a UUID');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function uuidString(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Canonical bytes of an encryption context: pairs sorted by the UTF-8 bytes
 * of the key, each as u32 length ‖ bytes. Order-independent and unambiguous
 * (no separator can be forged by a key containing one).
 */
export function canonicalContext(ctx: EncryptionContext | undefined): Uint8Array {
  const entries = Object.entries(ctx ?? {}).map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const);
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Uint8Array[] = [u32(entries.length)];
  for (const [k, v] of entries) parts.push(u32(k.length), k, u32(v.length), v);
  return concatBytes(...parts);
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
}

export function sealBlob(header: BlobHeader, material: Uint8Array, plaintext: Uint8Array, ctx: EncryptionContext | undefined): Uint8Array {
  if (material.length !== MATERIAL_BYTES) throw new KmsError('KMSInternalException', 'internal: key material has the wrong length');
  const iv = new Uint8Array(randomBytes(IV_BYTES));
  const head = concatBytes(MAGIC, Uint8Array.of(FORMAT), uuidBytes(header.keyId), u32(header.materialVersion), iv);
  const c = createCipheriv('aes-256-gcm', material, iv);
  c.setAAD(concatBytes(head, canonicalContext(ctx)));
  const body = concatBytes(c.update(plaintext), c.final(), c.getAuthTag());
  return concatBytes(head, body);
}

/** Reads the (unauthenticated) header; the caller must still open the blob before trusting anything. */
export function readBlobHeader(blob: Uint8Array): BlobHeader {
  if (blob.length < BLOB_HEADER_BYTES + TAG_BYTES + 1) throw invalid();
  for (let i = 0; i < MAGIC.length; i++) if (blob[i] !== MAGIC[i]) throw invalid();
  if (blob[4] !== FORMAT) throw invalid();
  const materialVersion = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(21, false);
  return { keyId: uuidString(blob.subarray(5, 21)), materialVersion };
}

export function openBlob(blob: Uint8Array, material: Uint8Array, ctx: EncryptionContext | undefined): Uint8Array {
  readBlobHeader(blob);
  const head = blob.subarray(0, BLOB_HEADER_BYTES);
  const iv = blob.subarray(25, BLOB_HEADER_BYTES);
  const ct = blob.subarray(BLOB_HEADER_BYTES, blob.length - TAG_BYTES);
  const tag = blob.subarray(blob.length - TAG_BYTES);
  try {
    const d = createDecipheriv('aes-256-gcm', material, iv);
    d.setAAD(concatBytes(head, canonicalContext(ctx)));
    d.setAuthTag(tag);
    return concatBytes(d.update(ct), d.final());
  } catch (e) {
    throw invalid(e);
  }
}

function invalid(cause?: unknown): KmsError {
  // KMS's message does not say which part failed (wrong context, tampering, truncation): neither do we.
  return new KmsError('InvalidCiphertextException', 'The ciphertext is invalid, was modified, or was encrypted under a different encryption context.', {
    cause,
  });
}
