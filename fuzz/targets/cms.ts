/**
 * common/cms/: the BER CMS EnvelopedData parser for KMS CiphertextForRecipient,
 * and decryption with the fixture's RSA key.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { CmsError } from '../../common/cms/errors.js';
import { openEnvelopedData } from '../../common/cms/decrypt.js';
import { parseEnvelopedData, type EnvelopedInfo } from '../../common/cms/parse.js';
import { hex, invariant, typed } from '../check.js';
import type { FuzzTarget } from '../engine.js';
import { DER } from '../mutate.js';
import { fixture } from '../fixtures.js';

let key: { priv: KeyObject; spki: Uint8Array; expected: Uint8Array; authentic: string } | undefined;
/** RSA-OAEP unwraps cost ~1 ms: decrypt every DECRYPT_EVERY-th input that parses. */
const DECRYPT_EVERY = 64;
let parsedCount = 0;
export const cmsStats = { parsed: 0, decrypted: 0 };

/** What decryption depends on: the wrapped key, the IV, the content. */
function essence(i: EnvelopedInfo): string {
  return `${hex(i.recipient.subjectKeyIdentifier)}|${hex(i.recipient.encryptedKey)}|${hex(i.contentEncryptionAlgorithm.iv)}|${hex(i.encryptedContent)}`;
}

export const cmsTarget: FuzzTarget = {
  name: 'cms',
  description:
    'parseEnvelopedData on mutated KMS CiphertextForRecipient (BER, indefinite lengths, constructed and primitive content) and openEnvelopedData with the fixture RSA key ' +
    '(every 64th input that parses — RSA-OAEP costs ~1 ms). Only CmsError escapes; ' +
    'a decryption of the authentic encryptedKey, IV and content yields the expected plaintext.',
  cover: ['/common/cms/', '/common/der.'],
  maxLen: 8192,
  seeds() {
    const pem = fixture('kms/edgebit_test_rsa2048_private_key.pem');
    const spki = fixture('kms/edgebit_test_rsa2048_public_spki.der');
    const expected = fixture('kms/edgebit_expected_plaintext_datakey.bin');
    const ber = fixture('kms/edgebit_ciphertext_for_recipient.ber');
    const seeds = [ber, fixture('kms/sdkc_cms_test__input_ber.bin')].filter((b): b is Uint8Array => b !== undefined);
    if (pem && spki && expected && ber) {
      key = { priv: createPrivateKey(Buffer.from(pem)), spki, expected, authentic: essence(parseEnvelopedData(ber)) };
    }
    return seeds;
  },
  mutators: DER,
  run(x) {
    const info = typed(() => parseEnvelopedData(x), CmsError);
    if (!info || !key) return;
    cmsStats.parsed++;
    if (++parsedCount % DECRYPT_EVERY !== 0) return;
    cmsStats.decrypted++;
    const k = key;
    const pt = typed(() => openEnvelopedData(info, k.priv, k.spki), CmsError);
    if (essence(info) === k.authentic) invariant(pt !== undefined && hex(pt) === hex(k.expected), 'authentic ciphertext did not decrypt to the expected plaintext');
  },
};
