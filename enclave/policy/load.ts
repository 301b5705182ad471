/**
 * Loading the policy at boot. Production reads it from the measured image (/app/policy.json,
 * written by `build-eif.sh --policy FILE`, so a changed policy changes PCR2); the dev command
 * reads `--policy FILE` or, without it, runs the documented permissive dev policy and says so.
 * The host never sends a policy: no enclave API method takes one. An absent, unreadable or
 * invalid file means the enclave refuses to start, with the reason.
 */
import { readFileSync } from 'node:fs';
import { SignerError } from '../../common/errors.js';
import { devPolicy } from './dev-policy.js';
import { parsePolicy, type CompiledPolicy } from './document.js';
import type { PolicySource } from './gate.js';

/** Where the production image keeps its policy, next to enclave-config.json. */
export const IMAGE_POLICY_PATH = '/app/policy.json';

export interface LoadedPolicy {
  policy: CompiledPolicy;
  source: PolicySource;
}

/** Reads and validates a policy file; any problem is a typed error naming the file (and the field). */
export function loadPolicyFile(path: string, source: PolicySource = 'file'): LoadedPolicy {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new SignerError('POLICY_MISSING', `policy ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): the enclave refuses to start without its policy`, {
      hint: source === 'image' ? 'build the image with build-eif.sh --policy FILE' : 'pass a policy file (enclave-signer policy check FILE validates it)',
    });
  }
  try {
    return { policy: parsePolicy(bytes), source };
  } catch (e) {
    const m = e instanceof Error ? e.message : String(e);
    throw new SignerError((e as SignerError).code ?? 'POLICY_INVALID', `policy ${path} is invalid: ${m}`, { cause: e, hint: 'enclave-signer policy check FILE names the offending field' });
  }
}

/** The permissive dev policy (enclave/policy/dev-policy.ts): dev only, announced in the banner. */
export function loadDevPolicy(): LoadedPolicy {
  return { policy: devPolicy(), source: 'dev-default' };
}
