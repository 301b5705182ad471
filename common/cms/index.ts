/** KMS `CiphertextForRecipient` (CMS EnvelopedData): parse, open, build. See docs/cms.md. */
export { CmsError, isCmsError, type CmsErrorCode } from './errors.js';
export { AES256_IV_BYTES, CEK_BYTES, OID, SUBJECT_KEY_ID_BYTES, oidName } from './profile.js';
export { MAX_CMS_BYTES, parseEnvelopedData, type EncryptedContentEncoding, type EnvelopedInfo } from './parse.js';
export { decryptEnvelopedData, openEnvelopedData } from './decrypt.js';
export { DEFAULT_CHUNK_SIZE, buildEnvelopedData, type BuildEnvelopedDataOptions } from './build.js';
export { recipientKeyId } from './recipient-id.js';
export { AES_BLOCK, pkcs7Pad, pkcs7UnpadLength } from './padding.js';
