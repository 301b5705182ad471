/**
 * The hash functions secp.ts gives @noble/secp256k1 (OpenSSL's, through
 * node:crypto) against the RFC 4231 / FIPS 180 vectors and against
 * @noble/hashes (what noble's README sets) on random keys and messages, and
 * that they are the ones the curve actually calls.
 */
import { createHash } from 'node:crypto';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { hmacSha256, secp, sha256 } from './secp.js';
import { hex } from './test-helpers.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Reproducible bytes of any length: sha256(label ‖ i ‖ block) blocks. */
function bytesAt(label: string, i: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let at = 0, b = 0; at < length; at += 32, b++) out.set(createHash('sha256').update(`${label}:${i}:${b}`).digest().subarray(0, length - at), at);
  return out;
}

describe('secp.ts hash functions (node:crypto)', () => {
  it('HMAC-SHA256 gives the RFC 4231 test vectors (cases 1, 2 and 6: a key longer than a block)', () => {
    expect(hex(hmacSha256(new Uint8Array(20).fill(0x0b), utf8('Hi There')))).toBe('0xb0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
    expect(hex(hmacSha256(utf8('Jefe'), utf8('what do ya want for nothing?')))).toBe('0x5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    expect(hex(hmacSha256(new Uint8Array(131).fill(0xaa), utf8('Test Using Larger Than Block-Size Key - Hash Key First')))).toBe(
      '0x60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    );
  });

  it('SHA-256 gives the FIPS 180 vectors ("abc" and the empty message)', () => {
    expect(hex(sha256(utf8('abc')))).toBe('0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(sha256(new Uint8Array(0)))).toBe('0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('2,000 random keys (0–130 bytes) and messages (0–200 bytes): identical to @noble/hashes', () => {
    for (let i = 0; i < 2_000; i++) {
      const key = bytesAt('key', i, i % 131);
      const msg = bytesAt('msg', i, (i * 7) % 201);
      const ours = hmacSha256(key, msg);
      const theirs = hmac(nobleSha256, key, msg);
      if (hex(ours) !== hex(theirs)) expect({ i, mac: hex(ours) }).toEqual({ i, mac: hex(theirs) });
      if (hex(sha256(msg)) !== hex(nobleSha256(msg))) expect({ i, hash: hex(sha256(msg)) }).toEqual({ i, hash: hex(nobleSha256(msg)) });
    }
  });

  it('returns a fresh 32-byte array per call and leaves its inputs alone', () => {
    const key = bytesAt('k', 0, 32);
    const msg = bytesAt('m', 0, 64);
    const [k0, m0] = [hex(key), hex(msg)];
    const a = hmacSha256(key, msg);
    const b = hmacSha256(key, msg);
    expect(a).toBeInstanceOf(Uint8Array);
    expect(a.length).toBe(32);
    expect(a.buffer).not.toBe(b.buffer);
    a.fill(0); // noble zeroes the DRBG's arrays in place: that must not reach the next call
    expect(hex(b)).not.toBe(hex(a));
    expect([hex(key), hex(msg)]).toEqual([k0, m0]);
    expect(sha256(msg).buffer).not.toBe(sha256(msg).buffer);
  });

  it('are the functions the curve calls: RFC 6979 signing and BIP340 go through them', () => {
    expect(secp.hashes.hmacSha256).toBe(hmacSha256);
    expect(secp.hashes.sha256).toBe(sha256);
    const calls = { hmac: 0, sha: 0 };
    const saved = { ...secp.hashes };
    secp.hashes.hmacSha256 = (k, m) => (calls.hmac++, hmacSha256(k, m));
    secp.hashes.sha256 = (m) => (calls.sha++, sha256(m));
    try {
      const key = bytesAt('sk', 1, 32);
      secp.sign(bytesAt('d', 1, 32), key, { prehash: false });
      secp.schnorr.sign(bytesAt('d', 2, 32), key, new Uint8Array(32));
    } finally {
      Object.assign(secp.hashes, saved);
    }
    expect(calls.hmac).toBeGreaterThanOrEqual(4);
    expect(calls.sha).toBeGreaterThanOrEqual(3);
  });
});
