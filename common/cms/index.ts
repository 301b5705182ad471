/** KMS `CiphertextForRecipient` (CMS EnvelopedData): parse and open (the builder, for the emulator and tests, is dev/cms/build.ts). See docs/cms.md. */
export { CmsError, isCmsError, type CmsErrorCode } from './errors.js';
export { AES256_IV_BYTES, CEK_BYTES, OID, SUBJECT_KEY_ID_BYTES, oidName } from './profile.js';
export { MAX_CMS_BYTES, parseEnvelopedData, type EncryptedContentEncoding, type EnvelopedInfo } from './parse.js';
export { decryptEnvelopedData, openEnvelopedData } from './decrypt.js';
export { recipientKeyId } from './recipient-id.js';
export { AES_BLOCK, pkcs7Pad, pkcs7UnpadLength } from './padding.js';
