/**
 * Pure signing primitives of the enclave: functions over key bytes and request data, no I/O.
 * The enclave server calls them (on worker threads) for:
 *   eth_signTransaction      → signEthTransaction
 *   eth_sign                 → signEthSign
 *   personal_sign            → signPersonalMessage
 *   eth_signTypedData_v4     → signTypedDataV4
 *   signer_signDigest        → signDigest (ECDSA) / signSchnorr (BIP340)
 *   signer_signPsbt          → signPsbt
 *   signer_signAuthorization → signAuthorization
 *   signer_deriveKey         → deriveBip32PublicKey (deriveBip32PrivateKey feeds the others)
 * Every refusal is a SigningError (code SIGN_*, `field` names the offending input).
 * Results are JSON-serialisable (hex strings and safe-integer numbers; no bigint).
 */
export { SigningError, isSigningError, type SigningErrorCode } from './errors.js';
export type { Hex } from './validate.js';
export type { EntropySource } from './entropy.js';
export { signDigest, publicKeyOf, type EcdsaSignature } from './ecdsa.js';
export { signSchnorr, type SchnorrSignature } from './schnorr.js';
export { addressFromPublicKey, addressFromPrivateKey, checksumAddress } from './eth-address.js';
export {
  parseEthTransaction,
  signEthTransaction,
  transactionSigningHash,
  type EthTransaction,
  type EthTransactionType,
  type LegacyTransaction,
  type Eip2930Transaction,
  type Eip1559Transaction,
  type Eip4844Transaction,
  type Eip7702Transaction,
  type AccessListEntry,
  type SignedAuthorizationTuple,
  type SignedEthTransaction,
} from './eth-transaction.js';
export {
  personalMessageDigest,
  readPersonalMessage,
  signPersonalMessage,
  signEthSign,
  type EthMessageSignature,
} from './eth-message.js';
export {
  parseTypedDataV4,
  hashTypedDataV4,
  signTypedDataV4,
  type TypedDataV4,
  type TypedDataField,
  type TypedDataSignature,
} from './eth-typed-data.js';
export {
  parseAuthorizationRequest,
  authorizationHash,
  signAuthorization,
  type AuthorizationRequest,
  type AuthorizationOptions,
  type SignedAuthorization,
} from './eth-authorization.js';
export {
  parseDerivationPath,
  formatDerivationPath,
  deriveBip32PublicKey,
  deriveBip32PrivateKey,
  HARDENED_OFFSET,
  type Bip32Network,
  type Bip32Options,
  type Bip32PublicInfo,
  type Bip32PrivateKey,
} from './bip32.js';
export { signPsbt, readPsbt, type SignPsbtOptions, type SignedPsbt, type PsbtInputReport, type PsbtInputKind } from './psbt.js';
