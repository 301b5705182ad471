/**
 * The shape check of a session signer_auth (session.ts parseSessionAuth): its session id and mac
 * are accepted by their canonical shape without decoding them; this shows that the shape accepts
 * exactly what the strict decoder (fromBase64Url: decode, re-encode, compare) accepts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toBase64Url } from './request.js';
import { parseSessionAuth } from './session.js';

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64 = (n: number) => fc.array(fc.constantFrom(...B64URL), { minLength: n, maxLength: n }).map((a) => a.join(''));
/** What the strict decoder says: the string decodes to `bytes` bytes and re-encodes to itself. */
const canonical = (s: string, bytes: number) => {
  const b = Buffer.from(s, 'base64url');
  return b.length === bytes && b.toString('base64url') === s;
};

const auth = (session: string, mac: string) => ({ v: 1, principal: 'backend', session, seq: 1, expiresAt: 2_000_000_000, mac });

/** Whether parseSessionAuth accepts the pair; a refusal must be AUTH_MALFORMED with `words`. */
function accepted(session: string, mac: string, words: RegExp): boolean {
  try {
    parseSessionAuth(auth(session, mac));
    return true;
  } catch (e) {
    expect((e as { code: string }).code).toBe('AUTH_MALFORMED');
    expect((e as Error).message).toMatch(words);
    return false;
  }
}
const GOOD_SESSION = toBase64Url(new Uint8Array(16).fill(7));
const GOOD_MAC = toBase64Url(new Uint8Array(32).fill(9));

describe('parseSessionAuth: session id and mac', () => {
  it('accepts a 22-character session id exactly when it is the canonical base64url of 16 bytes', () => {
    fc.assert(
      fc.property(b64(22), (s) => {
        expect(accepted(s, GOOD_MAC, /"session" is not canonical base64url/)).toBe(canonical(s, 16));
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts a 43-character mac exactly when it is the canonical base64url of 32 bytes', () => {
    fc.assert(
      fc.property(b64(43), (m) => {
        expect(accepted(GOOD_SESSION, m, /"mac" is not canonical base64url/)).toBe(canonical(m, 32));
      }),
      { numRuns: 3000 },
    );
  });

  it('every real id and mac passes; other lengths and alphabets are refused with the decoder\'s words', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (id, mac) => {
        expect(parseSessionAuth(auth(toBase64Url(id), toBase64Url(mac)))).toMatchObject({ session: toBase64Url(id), mac: toBase64Url(mac) });
      }),
    );
    expect(() => parseSessionAuth(auth(GOOD_SESSION, `${GOOD_MAC}A`))).toThrow(/"mac"/);
    expect(() => parseSessionAuth(auth(GOOD_SESSION, GOOD_MAC.slice(0, 42)))).toThrow(/"mac" must be 32 bytes/);
    expect(() => parseSessionAuth(auth(GOOD_SESSION, `${GOOD_MAC.slice(0, 42)}=`))).toThrow(/"mac" must be base64url/);
    expect(() => parseSessionAuth(auth(`${GOOD_SESSION.slice(0, 21)}+`, GOOD_MAC))).toThrow(/"session" must be a session id/);
  });
});
