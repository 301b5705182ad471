import { createHash, createPublicKey } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { buildEnvelopedData } from '../../dev/cms/build.js';
import { CmsError } from '../../common/cms/errors.js';
import { readFixture } from '../../test/fixtures.js';
import { SignerError } from '../../common/errors.js';
import { createRecipient, RECIPIENT_RSA_BITS } from './recipient.js';

describe('createRecipient', () => {
  const r = createRecipient();

  it('publishes an RSA-2048, e=65537 SPKI and its SHA-256 as keyId', () => {
    const pub = createPublicKey({ key: Buffer.from(r.spkiDer), format: 'der', type: 'spki' });
    expect(pub.asymmetricKeyType).toBe('rsa');
    expect(pub.asymmetricKeyDetails?.modulusLength).toBe(RECIPIENT_RSA_BITS);
    expect(pub.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    expect(toHex(r.keyId)).toBe(createHash('sha256').update(r.spkiDer).digest('hex'));
  });

  it('opens a CiphertextForRecipient addressed to it (both encodings)', () => {
    const dataKey = new Uint8Array(32).map((_, i) => 255 - i);
    for (const encryptedContent of ['constructed', 'primitive'] as const) {
      expect(toHex(r.decrypt(buildEnvelopedData(dataKey, r.spkiDer, { encryptedContent })))).toBe(toHex(dataKey));
    }
  });

  it('refuses one addressed to another key (the real vector)', () => {
    const ber = readFixture('kms', 'edgebit_ciphertext_for_recipient.ber');
    expect(() => r.decrypt(ber)).toThrow(CmsError);
    try {
      r.decrypt(ber);
    } catch (e) {
      expect((e as CmsError).code).toBe('CMS_WRONG_RECIPIENT');
    }
  });

  it('is fresh per life: two recipients never share a key', () => {
    const other = createRecipient();
    expect(toHex(other.spkiDer)).not.toBe(toHex(r.spkiDer));
    expect(() => other.decrypt(buildEnvelopedData(new Uint8Array(32), r.spkiDer))).toThrow(CmsError);
    other.destroy();
  });

  it('hands out copies of its public key: mutating one does not change the recipient', () => {
    const s = r.spkiDer;
    s.fill(0);
    expect(toHex(r.spkiDer)).not.toBe(toHex(s));
    expect(toHex(r.decrypt(buildEnvelopedData(Uint8Array.of(1, 2, 3), r.spkiDer)))).toBe('010203');
  });

  it('shows no private material when logged or serialised', () => {
    const shown = [inspect(r, { showHidden: true, depth: 10 }), JSON.stringify(r), String(r)].join('\n');
    expect(shown).toContain(toHex(r.keyId).slice(0, 16));
    expect(shown).not.toMatch(/PRIVATE|privateKey|KeyObject/);
    expect(Object.keys(r)).not.toContain('privateKey');
    expect(Object.isFrozen(r)).toBe(true);
  });

  it('after destroy() refuses to decrypt with KMS_RECIPIENT_DESTROYED', () => {
    const d = createRecipient();
    const ct = buildEnvelopedData(new Uint8Array(32), d.spkiDer);
    expect(d.destroyed).toBe(false);
    d.destroy();
    d.destroy(); // idempotent
    expect(d.destroyed).toBe(true);
    try {
      d.decrypt(ct);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SignerError);
      expect((e as SignerError).code).toBe('KMS_RECIPIENT_DESTROYED');
    }
  });
});
