import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CmsError } from './errors.js';
import { AES_BLOCK, pkcs7Pad, pkcs7UnpadLength } from './padding.js';

/** Reference definition straight from RFC 5652 §6.3, written the slow obvious way. */
function validPadding(b: Uint8Array): number | undefined {
  if (b.length === 0 || b.length % 16) return undefined;
  const p = b[b.length - 1]!;
  if (p < 1 || p > 16) return undefined;
  for (let i = 1; i <= p; i++) if (b[b.length - i] !== p) return undefined;
  return b.length - p;
}

describe('PKCS#7', () => {
  it('pad then unpad is the identity, pad always adds 1..16 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (d) => {
        const p = pkcs7Pad(d);
        expect(p.length % AES_BLOCK).toBe(0);
        expect(p.length - d.length).toBeGreaterThanOrEqual(1);
        expect(p.length - d.length).toBeLessThanOrEqual(16);
        expect(pkcs7UnpadLength(p)).toBe(d.length);
      }),
    );
  });

  it('unpad agrees with the RFC definition on arbitrary blocks, including near-valid ones', () => {
    const nearValid = fc.tuple(fc.uint8Array({ minLength: 0, maxLength: 32 }), fc.integer({ min: 0, max: 17 }), fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 255 })).map(([d, pad, at, v]) => {
      const p = pkcs7Pad(d);
      const out = p.slice();
      out[out.length - 1] = pad; // possibly wrong pad value
      if (at < out.length && at > 0) out[out.length - at] = at === 1 ? pad : v; // possibly one wrong byte
      return out;
    });
    fc.assert(
      fc.property(fc.oneof(nearValid, fc.uint8Array({ maxLength: 48 })), (b) => {
        const want = validPadding(b);
        if (want === undefined) {
          expect(() => pkcs7UnpadLength(b)).toThrow(CmsError);
          try {
            pkcs7UnpadLength(b);
          } catch (e) {
            expect((e as CmsError).code).toBe('CMS_BAD_PADDING');
          }
        } else expect(pkcs7UnpadLength(b)).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
});
