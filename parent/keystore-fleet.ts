/**
 * The mixed-fleet check (docs/scale-out.md): every instance serving from one
 * keystore must run the same policy and the same PCR manifest. Before its
 * enclave's audit chain is opened, an instance registers what it serves —
 * the policy hash its attested enclave reports and the digest of the manifest
 * this parent enforces — and refuses to serve (not ready, with both hashes in
 * the reason) when another live instance serves something else.
 *
 * This is an operator's guard against a half-finished rollout, not a security
 * boundary: the host is untrusted and could skip it. What a policy allows is
 * decided in each enclave, whose policy hash is in its attestation document.
 */
import { createHash } from 'node:crypto';
import { asRecord } from '../common/protocol/enclave-api.js';
import type { ResolvedParentConfig } from './config.js';
import type { EnclaveCall } from './boot.js';
import { ParentError } from './errors.js';
import type { Keystore } from './keystore.js';

/** An instance whose entry is older than this is gone (it refreshes every FLEET_HEARTBEAT_MS). */
export const FLEET_LIVE_MS = 30_000;
export const FLEET_HEARTBEAT_MS = 10_000;

/** SHA-256 of the manifest body (its signature varies between signings of the same manifest). */
export function manifestDigest(cfg: Pick<ResolvedParentConfig, 'manifest'>): string {
  if (!cfg.manifest) return 'none (--allow-any-pcrs)';
  return createHash('sha256').update(JSON.stringify(cfg.manifest.parsed)).digest('hex');
}

export async function joinFleet(d: { call: EnclaveCall; keystore: Keystore; cfg: Pick<ResolvedParentConfig, 'manifest'>; log: (l: string) => void }): Promise<void> {
  const status = asRecord(await d.call('status', {}), 'status result');
  const policy = status.policy as { hash?: unknown } | null | undefined;
  const policyHash = typeof policy?.hash === 'string' && /^[0-9a-f]{64}$/.test(policy.hash) ? policy.hash : undefined;
  if (policyHash === undefined) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'the enclave\'s status names no policy hash: the fleet check cannot run');
  await d.keystore.joinFleet({ policyHash, manifestDigest: manifestDigest(d.cfg) }, FLEET_LIVE_MS);
}
