/**
 * The permissive development policy: what `enclave-signer dev` runs without `--policy` (once
 * wired; docs/policy.md). It allows every op, but still through the language's explicit
 * switches, so it reads as a list of what it lets through: contract creation, any permit
 * spender, any 7702 delegate and the opaque-bytes ops are each named. Never for production.
 */
import { compilePolicy, type CompiledPolicy } from './document.js';

export const DEV_POLICY_DOCUMENT = {
  policyVersion: 1,
  name: 'dev-permissive',
  description: 'Development only: allows every request from any caller. Never use in production.',
  rules: [
    { id: 'dev-all', effect: 'allow', description: 'every op except opaque bytes; plain and contract calls, no grants or delegations' },
    { id: 'dev-create', effect: 'allow', ops: ['eth_signTransaction'], contractCreation: true },
    { id: 'dev-permits', effect: 'allow', ops: ['eth_signTypedData_v4'], typedData: { permitSpenders: 'any' } },
    { id: 'dev-delegates', effect: 'allow', ops: ['eth_signTransaction', 'signer_signAuthorization'], delegates: 'any' },
    { id: 'dev-raw', effect: 'allow', ops: ['signer_signDigest', 'signer_signSchnorr', 'eth_sign'] },
  ],
} as const;

export function devPolicy(): CompiledPolicy {
  return compilePolicy(JSON.parse(JSON.stringify(DEV_POLICY_DOCUMENT)) as unknown);
}
