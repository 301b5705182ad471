/**
 * What the gate checks about an attestation document: the chain ends at the
 * configured root (AWS unless told otherwise), the nonce is the one we just
 * sent, and the PCRs are the ones the signed manifest names (plus any extra
 * PCRs the operator pinned). A pure function of the document and the config.
 */
import { verifyAttestationAgainstManifest } from '../attestation/manifest-attest.js';
import { verifyAttestation } from '../attestation/verify.js';
import type { VerifiedAttestation } from '../attestation/types.js';
import { toHex } from '../common/bytes.js';
import type { ResolvedParentConfig } from './config.js';

/** The public facts of a verified enclave, as /readyz and signer_status report them. */
export interface EnclaveAttestation {
  moduleId: string;
  /** The document's own timestamp. */
  documentTime: string;
  /** When the parent verified it. */
  verifiedAt: string;
  /** PCR index → lowercase hex, every PCR the document carries that is not all zero. */
  pcrs: Record<string, string>;
  root: { name: string; fingerprint: string };
  debug: boolean;
  manifest?: { keyId: string; image: { name: string; version: string; sourceCommit: string } };
}

export type EnclaveVerifier = (document: Uint8Array, nonce: Uint8Array) => EnclaveAttestation;

function summarize(v: VerifiedAttestation, manifest?: EnclaveAttestation['manifest']): EnclaveAttestation {
  const pcrs: Record<string, string> = {};
  for (const [i, value] of [...v.document.pcrs].sort((a, b) => a[0] - b[0])) {
    if (value.some((b) => b !== 0)) pcrs[String(i)] = toHex(value);
  }
  const out: EnclaveAttestation = {
    moduleId: v.document.moduleId,
    documentTime: new Date(v.document.timestamp).toISOString(),
    verifiedAt: v.verifiedAt.toISOString(),
    pcrs,
    root: v.root,
    debug: v.debug,
  };
  if (manifest) out.manifest = manifest;
  return out;
}

export function createEnclaveVerifier(cfg: Pick<ResolvedParentConfig, 'root' | 'manifest' | 'expectedPcrs' | 'allowDebug'>): EnclaveVerifier {
  return (document, nonce) => {
    if (cfg.manifest) {
      const v = verifyAttestationAgainstManifest(document, cfg.manifest.signed, {
        trustedKeys: cfg.manifest.trustedKeys,
        root: cfg.root,
        nonce,
        expectedPcrs: cfg.expectedPcrs,
        allowDebug: cfg.allowDebug,
      });
      const { name, version, sourceCommit } = v.manifest.image;
      return summarize(v, { keyId: v.manifestKeyId, image: { name, version, sourceCommit } });
    }
    // allowAnyPcrs (development): chain, signature and nonce are still checked.
    return summarize(
      verifyAttestation(document, {
        root: cfg.root,
        expectedNonce: nonce,
        ...(Object.keys(cfg.expectedPcrs).length > 0 ? { expectedPcrs: cfg.expectedPcrs } : {}),
        allowDebug: cfg.allowDebug,
      }),
    );
  };
}
