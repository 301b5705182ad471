/**
 * PCR manifests: a signed statement "image X at commit Y has these PCRs".
 * CI creates and signs one per release; the parent and auditors verify
 * attestation documents against it. Format and canonicalization are described
 * in docs/manifest.md; the pieces live in small siblings:
 *
 *   manifest-format.ts     the document, strict validation, createManifest
 *   manifest-json.ts       strict JSON parsing and the canonical (signed) bytes
 *   manifest-signature.ts  signManifest / verifySignedManifest (ES384, Ed25519)
 *   manifest-attest.ts     verifyAttestationAgainstManifest
 */
export {
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  MANIFEST_PCR_INDICES,
  createManifest,
  parseManifest,
  isDebugManifest,
  type BuildInputs,
  type ManifestFields,
  type ManifestImage,
  type ManifestPcrIndex,
  type ManifestPcrs,
  type ManifestPolicy,
  type PcrManifest,
} from './manifest-format.js';
export { canonicalJson, canonicalBytes, parseStrictJson, parseStrictJsonBytes, type JsonValue } from './manifest-json.js';
export {
  MAX_SIGNED_MANIFEST_BYTES,
  manifestKeyId,
  manifestAlgOf,
  signManifest,
  parseSignedManifest,
  verifySignedManifest,
  verifySignedManifestDetailed,
  type ManifestSignature,
  type ManifestSignatureAlg,
  type SignedManifest,
  type TrustedManifestKey,
  type VerifiedManifest,
} from './manifest-signature.js';
export { verifyAttestationAgainstManifest, type ManifestAttestationOptions, type ManifestVerifiedAttestation } from './manifest-attest.js';
