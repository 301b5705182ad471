import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { BLOB_HEADER_BYTES, canonicalContext, openBlob, readBlobHeader, sealBlob } from './blob.js';

const material = new Uint8Array(randomBytes(32));
const header = { keyId: randomUUID(), materialVersion: 1 };
const pt = new TextEncoder().encode('a 32-byte data key, more or less');

describe('ciphertext blobs', () => {
  test('round trip; header names key and version', () => {
    const blob = sealBlob(header, material, pt, { purpose: 'keyring' });
    expect(blob.length).toBe(BLOB_HEADER_BYTES + pt.length + 16);
    expect(readBlobHeader(blob)).toEqual(header);
    expect(openBlob(blob, material, { purpose: 'keyring' })).toEqual(pt);
  });

  test('every single-byte change is detected', () => {
    const blob = sealBlob(header, material, pt, undefined);
    for (let i = 0; i < blob.length; i++) {
      const bad = blob.slice();
      bad[i] = bad[i]! ^ 0x01;
      expect(() => openBlob(bad, material, undefined), `byte ${i}`).toThrow(expect.objectContaining({ type: 'InvalidCiphertextException' }));
    }
    expect(() => openBlob(blob.subarray(0, blob.length - 1), material, undefined)).toThrow(expect.objectContaining({ type: 'InvalidCiphertextException' }));
  });

  test('encryption context is bound: missing, extra, changed all fail; order does not matter', () => {
    const blob = sealBlob(header, material, pt, { a: '1', b: '2' });
    expect(openBlob(blob, material, { b: '2', a: '1' })).toEqual(pt);
    for (const ctx of <(Record<string, string> | undefined)[]>[undefined, { a: '1' }, { a: '1', b: '2', c: '3' }, { a: '1', b: '3' }, { a: '1b', '': '2' }]) {
      expect(() => openBlob(blob, material, ctx)).toThrow(expect.objectContaining({ type: 'InvalidCiphertextException' }));
    }
  });

  test('wrong material fails', () => {
    const blob = sealBlob(header, material, pt, undefined);
    expect(() => openBlob(blob, new Uint8Array(randomBytes(32)), undefined)).toThrow(expect.objectContaining({ type: 'InvalidCiphertextException' }));
  });

  test('canonical context is unambiguous', () => {
    expect(canonicalContext({ ab: 'c' })).not.toEqual(canonicalContext({ a: 'bc' }));
    expect(canonicalContext({})).toEqual(canonicalContext(undefined));
  });
});
