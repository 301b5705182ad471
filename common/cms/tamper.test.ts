/**
 * Mutation test on the real vector. Every single-byte flip (three masks per
 * byte) and every truncation either fails with a CmsError, or succeeds only
 * where CMS EnvelopedData is malleable by design and then never yields the
 * expected plaintext:
 *
 *  - flips in the structure (tags, lengths, OIDs, versions, params, EOCs)
 *    break BER or the whitelist;
 *  - flips in the rid name another key → CMS_WRONG_RECIPIENT;
 *  - flips in the RSA-OAEP block fail the OAEP check (lHash, 0x00 0x01
 *    separator; passing by chance is ~2^-256) → CMS_DECRYPT_FAILED;
 *  - flips in the IV flip the same bit of plaintext block 1 (CBC has no
 *    integrity; CMS EnvelopedData adds none): success with exactly that bit
 *    changed — a different plaintext, never the expected one;
 *  - flips in ciphertext block i garble plaintext block i and flip a bit of
 *    block i+1; reaching the padding block they fail CMS_BAD_PADDING unless
 *    the garbage happens to be valid padding, and then the plaintext differs.
 *
 * Integrity of the blob is the TLS channel's job (it ends inside the enclave,
 * so the parent cannot flip these bits); this test pins down that nothing
 * else slips through and that no untyped exception ever escapes.
 */
import { createPrivateKey } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../bytes.js';
import { readFixture } from '../../test/fixtures.js';
import { decryptEnvelopedData } from './decrypt.js';
import { CmsError, type CmsErrorCode } from './errors.js';
import { parseEnvelopedData } from './parse.js';

const ber = readFixture('kms', 'edgebit_ciphertext_for_recipient.ber');
const key = createPrivateKey(Buffer.from(readFixture('kms', 'edgebit_test_rsa2048_private_key.pem')));
const spki = readFixture('kms', 'edgebit_test_rsa2048_public_spki.der');
const expected = readFixture('kms', 'edgebit_expected_plaintext_datakey.bin');
const info = parseEnvelopedData(ber);

function range(part: Uint8Array): [number, number] {
  const at = Buffer.from(ber).indexOf(Buffer.from(part));
  expect(at).toBeGreaterThan(0);
  return [at, at + part.length];
}
const RID = range(info.recipient.subjectKeyIdentifier);
const EK = range(info.recipient.encryptedKey);
const IV = range(info.contentEncryptionAlgorithm.iv);
const CT = range(info.encryptedContent);
const within = (i: number, [a, b]: [number, number]) => i >= a && i < b;

type Outcome = { ok: true; pt: Uint8Array } | { ok: false; code: CmsErrorCode };

/** Runs the decryptor; anything but a CmsError propagates and fails the test. */
function attempt(bytes: Uint8Array): Outcome {
  try {
    return { ok: true, pt: decryptEnvelopedData(bytes, key, spki) };
  } catch (e) {
    if (e instanceof CmsError) return { ok: false, code: e.code };
    throw e;
  }
}

describe('single-byte flips of the edgebit vector', () => {
  const MASKS = [0x01, 0x80, 0xff];
  const outcomes: { i: number; mask: number; r: Outcome }[] = [];
  beforeAll(() => {
    for (let i = 0; i < ber.length; i++) {
      for (const mask of MASKS) {
        const m = ber.slice();
        m[i]! ^= mask;
        outcomes.push({ i, mask, r: attempt(m) });
      }
    }
  });

  it('never yields the expected plaintext', () => {
    expect(outcomes.length).toBe(ber.length * MASKS.length);
    for (const { r } of outcomes) if (r.ok) expect(toHex(r.pt)).not.toBe(toHex(expected));
    // Sanity: the vast majority fail outright (all but IV flips and a few ciphertext flips).
    expect(outcomes.filter((o) => o.r.ok).length).toBeLessThan((16 + 48) * MASKS.length);
  });

  it('succeeds only inside the IV or the AES ciphertext (CBC malleability)', () => {
    for (const { i, mask, r } of outcomes) {
      if (r.ok) expect(within(i, IV) || within(i, CT), `flip ${mask.toString(16)} at ${i} passed`).toBe(true);
    }
  });

  it('an IV flip changes exactly the same bit of the plaintext', () => {
    for (const { i, mask, r } of outcomes.filter((o) => within(o.i, IV))) {
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      const want = expected.slice();
      want[i - IV[0]]! ^= mask;
      expect(toHex(r.pt)).toBe(toHex(want));
    }
  });

  it('rid flips are CMS_WRONG_RECIPIENT, OAEP block flips are CMS_DECRYPT_FAILED', () => {
    for (const { i, r } of outcomes) {
      if (within(i, RID)) expect(r).toEqual({ ok: false, code: 'CMS_WRONG_RECIPIENT' });
      if (within(i, EK)) expect(r).toEqual({ ok: false, code: 'CMS_DECRYPT_FAILED' });
    }
  });

  it('flips in the middle ciphertext block hit the padding block: CMS_BAD_PADDING', () => {
    for (const { r } of outcomes.filter((o) => o.i >= CT[0] + 16 && o.i < CT[0] + 32)) {
      expect(r).toEqual({ ok: false, code: 'CMS_BAD_PADDING' });
    }
  });

  it('every flip in the framing (outside rid, key, IV, ciphertext) is refused', () => {
    const framing = outcomes.filter((o) => ![RID, EK, IV, CT].some((rg) => within(o.i, rg)));
    expect(framing.length).toBe((ber.length - 32 - 256 - 16 - 48) * MASKS.length);
    for (const { r } of framing) expect(r.ok).toBe(false);
  });
});

describe('truncations and extensions', () => {
  it('every proper prefix is refused as CMS_MALFORMED', () => {
    for (let n = 0; n < ber.length; n++) expect(attempt(ber.subarray(0, n))).toEqual({ ok: false, code: 'CMS_MALFORMED' });
  });
  it('every appended byte is refused', () => {
    for (let b = 0; b < 256; b++) expect(attempt(Uint8Array.from([...ber, b])).ok).toBe(false);
  });
});

describe('random mutations never escape as untyped exceptions', () => {
  it('random bytes (with a plausible BER head)', () => {
    const head = fc.constantFrom(new Uint8Array(0), ber.subarray(0, 2), ber.subarray(0, 17), ber.subarray(0, 400));
    fc.assert(
      fc.property(head, fc.uint8Array({ maxLength: 600 }), (h, tail) => {
        const r = attempt(Uint8Array.from([...h, ...tail]));
        if (r.ok) expect(toHex(r.pt)).not.toBe(toHex(expected));
      }),
      { numRuns: 2000 },
    );
  });

  it('splices: delete, insert or overwrite runs of bytes in the vector', () => {
    const edit = fc.record({
      at: fc.integer({ min: 0, max: ber.length }),
      del: fc.integer({ min: 0, max: 8 }),
      ins: fc.uint8Array({ maxLength: 8 }),
    });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
        const b = Array.from(ber);
        for (const e of edits) b.splice(Math.min(e.at, b.length), e.del, ...e.ins);
        const bytes = Uint8Array.from(b);
        const r = attempt(bytes);
        if (r.ok && toHex(bytes) !== toHex(ber)) {
          // Only IV / ciphertext may differ and still decrypt; structure and key must be intact.
          const i2 = parseEnvelopedData(bytes);
          expect(toHex(i2.recipient.encryptedKey)).toBe(toHex(info.recipient.encryptedKey));
        }
      }),
      { numRuns: 1500 },
    );
  });
});
