/**
 * The one call the parent's gate, CI and auditors need: "is this attestation
 * document from an enclave running the image this signed manifest names?"
 *
 * Order: the manifest is verified first (without a trusted manifest there is
 * nothing to compare against), then the document end to end with exactly the
 * PCRs listed in `match` as expectations.
 */
import { parseHex, toHex } from '../common/bytes.js';
import { AttestationError } from './errors.js';
import { verifySignedManifestDetailed, type TrustedManifestKey } from './manifest-signature.js';
import type { PcrManifest } from './manifest-format.js';
import type { TrustRoot, VerifiedAttestation } from './types.js';
import { verifyAttestation } from './verify.js';

export interface ManifestAttestationOptions {
  /** Keys trusted to sign manifests (KeyObject, PEM text or keyId hex). Required, non-empty. */
  trustedKeys: readonly TrustedManifestKey[];
  /** Trust anchor for the document. Default: AWS_NitroEnclaves_Root-G1. */
  root?: TrustRoot;
  /** Verification time; 'document' uses the document's own timestamp. Default: now. */
  at?: Date | 'document';
  /** The nonce the document must carry (freshness). */
  nonce?: Uint8Array;
  publicKey?: Uint8Array;
  userData?: Uint8Array;
  /**
   * Extra PCRs to require beyond the manifest's (e.g. PCR3 = IAM role,
   * PCR4 = instance id, which no image manifest can know).
   */
  expectedPcrs?: Record<number, Uint8Array | string>;
  /** Accept debug-mode documents and all-zero manifests. Default false. */
  allowDebug?: boolean;
}

export interface ManifestVerifiedAttestation extends VerifiedAttestation {
  manifest: PcrManifest;
  /** keyId of the trusted key that signed the manifest. */
  manifestKeyId: string;
}

function hexOf(v: Uint8Array | string, idx: number): string {
  if (v instanceof Uint8Array) return toHex(v);
  const b = parseHex(v);
  if (!b) throw new AttestationError('ATTEST_PCR_MISMATCH', 'pcrs', `expected PCR${idx} is not hex`);
  return toHex(b);
}

/**
 * Verifies `docBytes` against a signed manifest. Manifest problems throw
 * ATTEST_MANIFEST (check 'manifest'); a PCR that differs from the manifest
 * throws ATTEST_PCR_MISMATCH (check 'pcrs'); everything else is as in
 * verifyAttestation. On success `checks` starts with 'manifest'.
 */
export function verifyAttestationAgainstManifest(docBytes: Uint8Array, signedManifest: unknown, opts: ManifestAttestationOptions): ManifestVerifiedAttestation {
  if (opts === null || typeof opts !== 'object') {
    throw new AttestationError('ATTEST_MANIFEST', 'manifest', 'options with trustedKeys are required');
  }
  const policy = { allowDebug: opts.allowDebug === true };
  const { manifest, keyId } = verifySignedManifestDetailed(signedManifest, opts.trustedKeys, policy);

  const expected: Record<number, string> = {};
  for (const [k, v] of Object.entries(opts.expectedPcrs ?? {})) expected[Number(k)] = hexOf(v, Number(k));
  for (const idx of manifest.match) {
    const want = manifest.pcrs[String(idx) as keyof PcrManifest['pcrs']];
    // parseManifest guarantees every matched PCR is present.
    if (want === undefined) throw new AttestationError('ATTEST_MANIFEST', 'manifest', `match names PCR${idx}, which the manifest lacks`);
    const extra = expected[idx];
    if (extra !== undefined && extra !== want) {
      throw new AttestationError('ATTEST_PCR_MISMATCH', 'pcrs', `PCR${idx} is required to be both ${extra} (expectedPcrs) and ${want} (manifest)`);
    }
    expected[idx] = want;
  }

  const verified = verifyAttestation(docBytes, {
    at: opts.at ?? new Date(),
    allowDebug: policy.allowDebug,
    expectedPcrs: expected,
    ...(opts.root ? { root: opts.root } : {}),
    ...(opts.nonce ? { expectedNonce: opts.nonce } : {}),
    ...(opts.publicKey ? { expectedPublicKey: opts.publicKey } : {}),
    ...(opts.userData ? { expectedUserData: opts.userData } : {}),
  });
  return { ...verified, checks: ['manifest', ...verified.checks], manifest, manifestKeyId: keyId };
}
