/**
 * "This attestation document binds that audit key": the one check behind a
 * hand-over in the chain (verify.ts), a receipt (receipt.ts) and the document
 * `audit checkpoint` gets with its checkpoint (cli/audit-checkpoint.ts). It
 * verifies the document against the root (and the signed manifest when given),
 * reads the audit binding from its user_data, compares the bound key with the
 * expected one and describes the enclave (PCR0/1/2/8, root, manifest).
 *
 * One function, because the three must mean the same thing by an attested
 * audit key — same trust inputs, same binding format, same comparison, same
 * PCRs reported — and a change to one (a PCR more, a stricter binding) must not
 * miss the others. What stays with each caller is only what differs: the
 * verification time (a stored record at its document's own time, a fresh
 * document now and with the nonce), the wording of its errors, and what it
 * does with the policy hash.
 */
import { bytesEqual, toHex } from '../../common/bytes.js';
import { parseAuditBinding, type AuditBinding } from '../../common/audit/binding.js';
import { AuditError } from '../../common/audit/errors.js';
import { verifyAttestationAgainstManifest, type ManifestVerifiedAttestation } from '../manifest-attest.js';
import type { TrustedManifestKey } from '../manifest-signature.js';
import type { TrustRoot, VerifiedAttestation } from '../types.js';
import { verifyAttestation } from '../verify.js';

/** What an audit key's attestation document is checked against. */
export interface AuditTrustOptions {
  /** Trust anchor for the attestation documents. Default AWS_NitroEnclaves_Root-G1. */
  root?: TrustRoot;
  /** Also require every audit key's document to match this signed PCR manifest. */
  manifest?: { signed: unknown; trustedKeys: readonly TrustedManifestKey[] };
  allowDebug?: boolean;
}

/** The PCRs an enclave is reported by: its image (0, 1, 2) and the signing certificate (8). */
export const REPORTED_PCRS = [0, 1, 2, 8] as const;

/** The enclave a verified document describes, as the reports show it (hex PCRs, ISO time). */
export interface AttestedEnclave {
  moduleId: string;
  attestedAt: string;
  pcrs: Record<string, string>;
  debug: boolean;
  root: string;
  manifest?: { name: string; version: string; keyId: string };
}

export interface AuditKeyBindingCheck {
  /** The record or checkpoint the key is checked for: every error names it. */
  seq: number;
  /** 'document': at the document's own time (a stored document). Default: now (a fresh one). */
  at?: 'document';
  /** The nonce a fresh document must carry. */
  nonce?: Uint8Array;
  /** The messages of the AUDIT_ATTESTATION errors, worded by the caller. */
  say: {
    /** The document does not verify; `detail` is the verifier's code and message. */
    unverified(detail: string): string;
    /** It binds another audit key (`bound`, hex). */
    otherKey(bound: string): string;
    /** Its user_data is not an audit binding. Without it parseAuditBinding's own AuditError is thrown. */
    notBinding?(message: string): string;
  };
}

/**
 * Verifies `doc` and that it binds `auditKey`; returns the binding (with its policy hash, which
 * each caller checks its own way) and the enclave. Throws AuditError AUDIT_ATTESTATION naming
 * `check.seq`.
 */
export function verifyAuditKeyBinding(doc: Uint8Array, auditKey: Uint8Array, trust: AuditTrustOptions, check: AuditKeyBindingCheck): { binding: AuditBinding; enclave: AttestedEnclave } {
  const { seq, say } = check;
  let v: VerifiedAttestation & Partial<Pick<ManifestVerifiedAttestation, 'manifest' | 'manifestKeyId'>>;
  try {
    const common = { ...(check.at ? { at: check.at } : {}), allowDebug: trust.allowDebug === true, ...(trust.root ? { root: trust.root } : {}) };
    v = trust.manifest
      ? verifyAttestationAgainstManifest(doc, trust.manifest.signed, { ...common, trustedKeys: trust.manifest.trustedKeys, ...(check.nonce ? { nonce: check.nonce } : {}) })
      : verifyAttestation(doc, { ...common, ...(check.nonce ? { expectedNonce: check.nonce } : {}) });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    throw new AuditError('AUDIT_ATTESTATION', say.unverified(`${err.code ?? ''} ${err.message ?? String(e)}`), { seq, cause: e });
  }
  let binding: AuditBinding;
  try {
    binding = parseAuditBinding(v.document.userData, { seq });
  } catch (e) {
    if (!say.notBinding) throw e;
    throw new AuditError('AUDIT_ATTESTATION', say.notBinding((e as Error).message), { seq, cause: e });
  }
  if (!bytesEqual(binding.auditKey, auditKey)) throw new AuditError('AUDIT_ATTESTATION', say.otherKey(toHex(binding.auditKey)), { seq });
  const d = v.document;
  return {
    binding,
    enclave: {
      moduleId: d.moduleId,
      attestedAt: new Date(d.timestamp).toISOString(),
      pcrs: Object.fromEntries(REPORTED_PCRS.filter((i) => d.pcrs.has(i)).map((i) => [String(i), toHex(d.pcrs.get(i)!)])),
      debug: v.debug,
      root: `${v.root.name} (SHA-256 ${v.root.fingerprint})`,
      ...(v.manifest ? { manifest: { name: v.manifest.image.name, version: v.manifest.image.version, keyId: v.manifestKeyId ?? '' } } : {}),
    },
  };
}
