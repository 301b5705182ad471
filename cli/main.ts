/**
 * `enclave-signer` entry point. bin/enclave-signer.js calls main(argv) and
 * exits with the number it resolves to; tests call it in-process with their
 * own `io`. Exit statuses: see cli/errors.ts (0 ok, 1 check failed, 2 usage).
 */
import { attestCommand } from './attest.js';
import { group, lazyCommand, type Command } from './command.js';
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE } from './errors.js';
import { processIo, type Io } from './io.js';
import { manifestCommand } from './manifest.js';
import { policyCommand } from './policy.js';
import { packageVersion } from './version.js';

/*
 * ── Dispatch slots for commands other modules provide ────────────────────────
 * Each is `cli/<module>.ts` exporting `<exportName>(argv: string[], io: Io):
 * Promise<number>`, loaded on first use. Until its module exists in the build,
 * the command prints "not available yet" and exits 2, and help marks it
 * "(planned)". To add one: write the module; nothing here needs to change
 * unless the command is new.
 */
const kmsCommand = group('kms', 'Inspect KMS artifacts.', [
  lazyCommand('inspect', 'decode a KMS CiphertextForRecipient (CMS EnvelopedData)', './kms-inspect.js', 'kmsInspect', 'kms inspect'),
  lazyCommand('check-policy', 'flag key-policy statements that let a data key exist outside the attested enclave', './kms-check-policy.js', 'kmsCheckPolicy', 'kms check-policy'),
]);
const principalCommand = group('principal', 'Principals that sign requests and approvals (docs/principals.md).', [
  lazyCommand('keygen', 'generate a principal key pair and its policy entry', './principal-keygen.js', 'principalKeygen', 'principal keygen'),
]);
const eifCommand = group('eif', 'Enclave image files.', [
  lazyCommand('describe', 'print an EIF\'s sections and computed PCRs', './eif-describe.js', 'eifDescribe', 'eif describe'),
]);

export const COMMANDS: readonly Command[] = [
  attestCommand,
  manifestCommand,
  policyCommand,
  kmsCommand,
  eifCommand,
  principalCommand,
  lazyCommand('call', 'send one JSON-RPC request, signed as a principal', './call.js', 'call'),
  lazyCommand('approve', 'approve (or reject) a pending approval as a principal', './approve.js', 'approve'),
  lazyCommand('kms-local', 'run the local KMS emulator (development)', './kms-local.js', 'kmsLocal'),
  lazyCommand('dev', 'run enclave + parent + KMS emulator locally (development)', './dev.js', 'dev'),
  lazyCommand('enclave', 'run the enclave side', './enclave.js', 'enclave'),
  lazyCommand('parent', 'run the parent proxy (signing socket, attestation gate)', './parent.js', 'parent'),
  lazyCommand('audit', 'verify or export the enclave\'s audit chain', './audit.js', 'audit'),
  lazyCommand('receipt', 'verify a signed receipt for a result', './receipt.js', 'receipt'),
];

export function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}${c.available && !c.available() ? '  (planned: not in this build)' : ''}`);
  return `Usage: enclave-signer <command> [options]

A signing appliance for AWS Nitro Enclaves. Commands:
${lines.join('\n')}

Options:
  --version    print the version
  -h, --help   show this help

Run 'enclave-signer <command> --help' for a command's options.
Exit status: 0 ok, 1 the check failed, 2 usage error.
`;
}

/** Runs the CLI; never throws (an unexpected error prints and resolves to 70). */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined) {
      io.stderr(mainUsage());
      return EXIT_USAGE;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      io.stdout(mainUsage());
      return EXIT_OK;
    }
    if (first === '--version') {
      io.stdout(`enclave-signer ${packageVersion()}\n`);
      return EXIT_OK;
    }
    const cmd = COMMANDS.find((c) => c.name === first);
    if (!cmd) {
      io.stderr(`error: unknown ${first.startsWith('-') ? 'option' : 'command'} '${first}'\n\n${mainUsage()}`);
      return EXIT_USAGE;
    }
    return await cmd.run(rest, io);
  } catch (e) {
    io.stderr(`internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT_INTERNAL;
  }
}
