/**
 * The policy engine's public surface (docs/policy.md). How it plugs into the enclave:
 *
 *   const policy = parsePolicy(bytes);             // at boot, from the measured image
 *   const intent = buildIntent(op, request, facts);  // facts: key id from the blob's AAD; for
 *                                                    // PSBTs the master fingerprint and a
 *                                                    // derivation function from the unwrapped seed
 *   const decision = evaluate(policy, intent, { principal, approvals, rejections, now, windows });
 *   // signed → sign that same parsed request; then windows = recordSigned(policy, windows, decision, intent, now)
 *   // pending → APPROVAL_REQUIRED (decision.approvals); refused → 4001 with data.rule = decision.rule
 *
 * The intent must be built from the same bytes the worker signs; PSBT change verification needs
 * the seed, so for PSBTs the intent is built where the key is unwrapped.
 */
export { buildIntent, type KeyFacts } from './build-intent.js';
export { compilePolicy, parsePolicy, HOST_PRINCIPAL, POLICY_VERSION, type CompiledPolicy, type CompiledRule, type Principal } from './document.js';
export { devPolicy, DEV_POLICY_DOCUMENT } from './dev-policy.js';
export { PolicyDocumentError, type PolicyErrorCode } from './errors.js';
export { evaluate, recordSigned, type Decision, type EvaluationContext, type Outcome, type RuleTrace } from './evaluate.js';
export { POLICY_OPS, RAW_OPS, type Intent, type PolicyOp } from './intent.js';
export { policyHash } from './policy-hash.js';
export { checkWindowState, emptyWindowState, type WindowState } from './windows.js';
