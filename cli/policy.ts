/**
 * `enclave-signer policy …`: check, hash and explain signing policies (docs/policy.md).
 * Loaded lazily: the policy engine pulls in viem and @scure, which `attest verify` does not need.
 */
import { group, lazyCommand, type Command } from './command.js';

export const policyCommand: Command = group('policy', 'Check, hash and explain signing policies (docs/policy.md).', [
  lazyCommand('check', 'validate a policy file (names the offending field)', './policy-check.js', 'policyCheck', 'policy check'),
  lazyCommand('hash', 'print the policy hash (SHA-256 of its canonical JSON)', './policy-check.js', 'policyHashCommand', 'policy hash'),
  lazyCommand('explain', 'say which rule decides a request, and why', './policy-explain.js', 'policyExplain', 'policy explain'),
]);
