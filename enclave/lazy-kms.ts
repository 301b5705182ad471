/**
 * What the enclave service loads on first use rather than at boot (cold start,
 * docs/performance.md): the KMS client with the AWS SDK, the attested KMS calls
 * and the keyring operations, and the key derivations `key.create` needs. One
 * module of named re-exports, so the image bundler still tree-shakes the rest
 * of what these modules (and the SDK) export.
 */
export { attestedKms } from './kms/attested.js';
export { createKmsClient } from './kms/client.js';
export { createKeyring, unlockKeyring } from './kms/keyring.js';
export { addressFromPrivateKey } from './signers/eth-address.js';
export { deriveBip32PublicKey } from './signers/bip32.js';
export { publicKeyOf } from './signers/ecdsa.js';
