/**
 * Every fuzz target, in the order `npm run fuzz` runs them. Loaded on demand:
 * a coverage take serialises every function of the isolate, so a run of one
 * target should not carry the others' libraries (viem, btc-signer, fast-check).
 */
import type { FuzzTarget } from '../engine.js';

export const TARGET_NAMES = ['cbor', 'bridge', 'attestation', 'cms', 'psbt', 'typed-data', 'json-rpc'] as const;

export async function loadTarget(name: string): Promise<FuzzTarget | undefined> {
  switch (name) {
    case 'cbor':
      return (await import('./cbor.js')).cborTarget;
    case 'bridge':
      return (await import('./bridge.js')).bridgeTarget;
    case 'attestation':
      return (await import('./attestation.js')).attestationTarget;
    case 'cms':
      return (await import('./cms.js')).cmsTarget;
    case 'psbt':
      return (await import('./psbt.js')).psbtTarget;
    case 'typed-data':
      return (await import('./typed-data.js')).typedDataTarget;
    case 'json-rpc':
      return (await import('./json-rpc.js')).jsonRpcTarget;
    default:
      return undefined;
  }
}
