/**
 * The policy hash: SHA-256 of the document's canonical JSON (RFC 8785 for the values a policy
 * holds — the same canonical form PCR manifests are signed in, attestation/manifest-json.ts).
 * Whitespace and key order do not change it; any change of meaning does. This is the value
 * that goes into attestation user data and `signer_status` (`policy.hash`).
 */
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../../attestation/manifest-json.js';
import type { CompiledPolicy } from './document.js';

export function policyHash(policy: CompiledPolicy): string {
  return createHash('sha256').update(canonicalBytes(policy.document)).digest('hex');
}
