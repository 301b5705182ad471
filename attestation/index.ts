/** Public surface of the attestation library (used by parent/, dev/, cli/ and auditors). */
export { AttestationError, type AttestationCheck, type AttestationErrorCode } from './errors.js';
export type { AttestationDocument, ParsedAttestation, TrustRoot, VerifiedAttestation, VerifyOptions } from './types.js';
export { verifyAttestation, parseAttestation, isDebugDocument, MAX_DOCUMENT_BYTES } from './verify.js';
export { awsNitroRoot, trustRoot, pemToDer, derToPem, sha256Fingerprint, AWS_NITRO_ROOT_G1_FINGERPRINT } from './roots.js';
export { clearChainCache } from './chain.js';
export { signCoseSign1, parseCoseSign1, verifyCoseSign1 } from './cose.js';
export * from './manifest.js';
export * from './eif/index.js';
