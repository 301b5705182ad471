/** Every fuzz target, in the order `npm run fuzz` runs them. */
import type { FuzzTarget } from '../engine.js';
import { attestationTarget } from './attestation.js';
import { bridgeTarget } from './bridge.js';
import { cborTarget } from './cbor.js';
import { cmsTarget } from './cms.js';
import { jsonRpcTarget } from './json-rpc.js';
import { psbtTarget } from './psbt.js';
import { typedDataTarget } from './typed-data.js';

export const TARGETS: readonly FuzzTarget[] = [cborTarget, bridgeTarget, attestationTarget, cmsTarget, psbtTarget, typedDataTarget, jsonRpcTarget];

export function targetNamed(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}
