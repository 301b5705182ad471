/**
 * The enclave's single decision point: every `sign` passes through
 * `decide()` after the worker unwrapped (authenticated) the key and derived
 * its public facts, and before anything is signed. The policy engine (limits,
 * allow-lists, approvals) plugs in here; until then the built-in policy
 * allows every well-formed request except ops explicitly denied by config.
 *
 * Fail closed: a policy that throws, or returns anything but a decision, is a
 * refusal (POLICY_UNAVAILABLE), never an allow.
 */
import { SignerError } from '../common/errors.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { SignerFacts, SignOp } from '../common/protocol/enclave-api.js';

export interface PolicyContext {
  op: SignOp;
  /**
   * Authenticated facts only: id, kind and keyring bound by the blob's AAD,
   * public key / address / xpub / fingerprint (and the signing child) derived
   * from the unwrapped secret. Nothing from the host's key record.
   */
  key: SignerFacts;
  request: Record<string, JsonLike>;
}

export type Decision = { allow: true } | { allow: false; reason: string };
export type Policy = (ctx: PolicyContext) => Decision | Promise<Decision>;

export class PolicyError extends SignerError {}

export function builtinPolicy(config: { denyOps?: readonly SignOp[] } = {}): Policy {
  const deny = new Set(config.denyOps ?? []);
  return ({ op }) => (deny.has(op) ? { allow: false, reason: `${op} is disabled by the enclave's policy` } : { allow: true });
}

export async function decide(policy: Policy, ctx: PolicyContext): Promise<void> {
  let d: Decision;
  try {
    d = await policy(ctx);
  } catch (e) {
    throw new PolicyError('POLICY_UNAVAILABLE', 'denied: the signing policy could not be evaluated', { cause: e });
  }
  if (!d || typeof d !== 'object' || typeof d.allow !== 'boolean') {
    throw new PolicyError('POLICY_UNAVAILABLE', 'denied: the signing policy returned no decision');
  }
  if (!d.allow) throw new PolicyError('POLICY_DENIED', `denied: ${d.reason}`);
}
