/** `enclave-signer policy check FILE` and `policy hash FILE` (docs/policy.md). */
import { policyHash } from '../enclave/policy/policy-hash.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { EXIT_OK } from './errors.js';
import type { Io } from './io.js';
import { loadPolicy } from './policy-input.js';

export const POLICY_CHECK_USAGE = `Usage: enclave-signer policy check <policy.json|-> [--json]

Validates a signing policy: strict JSON, known fields only, valid addresses,
declared principals, possible rules. An invalid policy names the offending
field by its JSON path (e.g. rules[2].erc20.tokens[0]).

Options:
  --json       print a JSON result on stdout
  -h, --help   show this help

Exit status: 0 valid, 1 invalid, 2 usage error.
`;

export const POLICY_HASH_USAGE = `Usage: enclave-signer policy hash <policy.json|-> [--json]

Prints the policy hash: SHA-256 (hex) of the policy's canonical JSON, the value
the enclave reports in attestation user data and signer_status (policy.hash).
Only a valid policy has a hash.

Options:
  --json       print a JSON result on stdout
  -h, --help   show this help

Exit status: 0 printed, 1 invalid policy, 2 usage error.
`;

const SPEC = { json: { type: 'boolean' } } as const;

export async function policyCheck(argv: string[], io: Io): Promise<number> {
  return guard(POLICY_CHECK_USAGE, io, 'policy is not valid', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(POLICY_CHECK_USAGE);
      return EXIT_OK;
    }
    const p = await loadPolicy(args.positionals[0]!, io, args.flags.json);
    if (typeof p === 'number') return p;
    const allow = p.rules.filter((r) => r.effect === 'allow').length;
    const hash = policyHash(p);
    if (args.flags.json) {
      io.stdout(`${JSON.stringify({ valid: true, name: p.name, policyVersion: p.version, hash, rules: p.rules.length, allow, deny: p.rules.length - allow, principals: [...p.principals.keys()] }, null, 2)}\n`);
    } else {
      io.stdout(
        `OK: policy "${p.name}" is valid\n  version     ${p.version}\n  rules       ${p.rules.length} (${allow} allow, ${p.rules.length - allow} deny)\n  principals  ${[...p.principals.keys()].join(', ') || '(none: only the unauthenticated host)'}\n  sha256      ${hash}\n`,
      );
    }
    return EXIT_OK;
  });
}

export async function policyHashCommand(argv: string[], io: Io): Promise<number> {
  return guard(POLICY_HASH_USAGE, io, 'policy is not valid', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(POLICY_HASH_USAGE);
      return EXIT_OK;
    }
    const p = await loadPolicy(args.positionals[0]!, io, args.flags.json);
    if (typeof p === 'number') return p;
    const hash = policyHash(p);
    io.stdout(args.flags.json ? `${JSON.stringify({ valid: true, hash }, null, 2)}\n` : `${hash}\n`);
    return EXIT_OK;
  });
}
