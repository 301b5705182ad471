/**
 * PKCS#7 padding (RFC 5652 §6.3) for the 16-byte AES block. Unpadding looks
 * at all 16 trailing bytes whatever the pad value, so the time taken does not
 * say which byte was wrong — CBC padding oracles start with that leak.
 */
import { CmsError } from './errors.js';

export const AES_BLOCK = 16;

export function pkcs7Pad(data: Uint8Array): Uint8Array {
  const n = AES_BLOCK - (data.length % AES_BLOCK);
  const out = new Uint8Array(data.length + n);
  out.set(data, 0);
  out.fill(n, data.length);
  return out;
}

/** Length of the unpadded data inside `padded`; throws CMS_BAD_PADDING. */
export function pkcs7UnpadLength(padded: Uint8Array): number {
  const len = padded.length;
  if (len === 0 || len % AES_BLOCK !== 0) {
    throw new CmsError('CMS_BAD_PADDING', `decrypted content is ${len} bytes, not a positive multiple of ${AES_BLOCK}`);
  }
  const pad = padded[len - 1]!;
  // bad != 0 when pad is 0 or > 16, or any of the last `pad` bytes differs from pad.
  let bad = (pad === 0 ? 1 : 0) | (pad > AES_BLOCK ? 1 : 0);
  for (let i = 1; i <= AES_BLOCK; i++) {
    const inPad = i <= pad ? 1 : 0;
    bad |= inPad & (padded[len - i]! !== pad ? 1 : 0);
  }
  if (bad !== 0) throw new CmsError('CMS_BAD_PADDING', 'decrypted content has invalid PKCS#7 padding');
  return len - pad;
}
