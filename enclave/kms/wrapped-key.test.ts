import { createDecipheriv, randomBytes, type Decipher } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { unwrapKey, wrapKey, WrappedKeyError, type WrappedKeyMeta } from './wrapped-key.js';

const kr = () => new Uint8Array(randomBytes(32));
const meta: WrappedKeyMeta = { keyringId: 'kr-1', keyId: 'key-1', kind: 'secp256k1' };

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WrappedKeyError);
    return (e as WrappedKeyError).code;
  }
  return 'OK';
}

describe('wrapped keys (format v1)', () => {
  it('round-trips secp256k1 secrets and BIP32 seeds', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 16, maxLength: 64 }), (s, seed) => {
        const k = kr();
        expect(unwrapKey(k, meta, wrapKey(k, meta, s))).toEqual(s);
        const m2: WrappedKeyMeta = { ...meta, kind: 'bip32-seed' };
        expect(unwrapKey(k, m2, wrapKey(k, m2, seed))).toEqual(seed);
      }),
      { numRuns: 100 },
    );
  });

  it('has the documented layout: "ESWK", version 1, 12-byte nonce, ciphertext, 16-byte tag', () => {
    const blob = wrapKey(kr(), meta, new Uint8Array(32).fill(9));
    expect(Buffer.from(blob.subarray(0, 4)).toString('latin1')).toBe('ESWK');
    expect(blob[4]).toBe(1);
    expect(blob.length).toBe(4 + 1 + 12 + 32 + 16);
  });

  it('binds the blob to key id, kind and keyring: any swap fails authentication', () => {
    const k = kr();
    const secret = new Uint8Array(randomBytes(32));
    const blob = wrapKey(k, meta, secret);
    expect(code(() => unwrapKey(k, { ...meta, keyId: 'key-2' }, blob))).toBe('WRAPPED_KEY_INVALID');
    expect(code(() => unwrapKey(k, { ...meta, keyringId: 'kr-2' }, blob))).toBe('WRAPPED_KEY_INVALID');
    expect(code(() => unwrapKey(k, { ...meta, kind: 'bip32-seed' }, blob))).toBe('WRAPPED_KEY_INVALID');
    expect(code(() => unwrapKey(kr(), meta, blob))).toBe('WRAPPED_KEY_INVALID');
  });

  it('every single-byte change is rejected with a typed error that never echoes the secret', () => {
    const k = kr();
    const secret = new Uint8Array(randomBytes(32));
    const blob = wrapKey(k, meta, secret);
    for (let i = 0; i < blob.length; i++) {
      const t = Uint8Array.from(blob);
      t[i]! ^= 0x01;
      try {
        unwrapKey(k, meta, t);
        throw new Error(`flip at ${i} unwrapped`);
      } catch (e) {
        expect(e).toBeInstanceOf(WrappedKeyError);
        expect((e as Error).message).not.toContain(toHex(secret));
        expect((e as Error).message).not.toContain(toHex(k));
      }
    }
    expect(code(() => unwrapKey(k, meta, blob.subarray(0, 20)))).toBe('WRAPPED_KEY_MALFORMED');
  });

  it('refuses wrong secret lengths, kinds and keyring keys', () => {
    expect(code(() => wrapKey(kr(), meta, new Uint8Array(31)))).toBe('WRAPPED_KEY_BAD_SECRET');
    expect(code(() => wrapKey(kr(), { ...meta, kind: 'bip32-seed' }, new Uint8Array(15)))).toBe('WRAPPED_KEY_BAD_SECRET');
    expect(code(() => wrapKey(kr(), { ...meta, kind: 'rsa' as never }, new Uint8Array(32)))).toBe('WRAPPED_KEY_BAD_KIND');
    expect(code(() => wrapKey(new Uint8Array(16), meta, new Uint8Array(32)))).toBe('WRAPPED_KEY_BAD_KEYRING');
  });

  it('uses a fresh nonce every time', () => {
    const k = kr();
    const s = new Uint8Array(32).fill(3);
    expect(toHex(wrapKey(k, meta, s))).not.toBe(toHex(wrapKey(k, meta, s)));
  });

  it('finding 10b: unwrapKey leaves no plaintext in the temporary buffers of update()/final()', () => {
    const k = kr();
    const secret = new Uint8Array(32).fill(0xa5);
    const blob = wrapKey(k, meta, secret);
    const seen: Buffer[] = [];
    const proto = Object.getPrototypeOf(createDecipheriv('aes-256-gcm', k, new Uint8Array(12))) as Decipher;
    const orig = proto.update;
    proto.update = function (this: Decipher, ...args: unknown[]) {
      const out = Reflect.apply(orig, this, args) as Buffer;
      seen.push(out);
      return out;
    } as typeof orig;
    try {
      const got = unwrapKey(k, meta, blob);
      expect(got).toEqual(secret);
      got.fill(0);
    } finally {
      proto.update = orig;
    }
    expect(seen.length).toBeGreaterThan(0);
    for (const b of seen) expect(b.every((x) => x === 0)).toBe(true);
  });
});
