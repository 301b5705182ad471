/**
 * `enclave-signer eif describe <file> [--json]`: parses an enclave image,
 * checks its CRC and (when signed) its signature, and prints its PCRs.
 * `--json` prints what `nitro-cli describe-eif` prints, field for field.
 */
import { stat, readFile } from 'node:fs/promises';
import { SignerError } from '../common/errors.js';
import { describeParsedEif, type EifDescription } from '../attestation/eif/describe.js';
import { parseEif, type ParsedEif } from '../attestation/eif/parse.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { CliInputError, EXIT_FAILED, EXIT_OK, errorReport, formatFailure } from './errors.js';
import type { Io } from './io.js';

export const EIF_DESCRIBE_USAGE = `Usage: enclave-signer eif describe <file.eif|-> [--json] [--allow-crc-mismatch]

Parses an enclave image file strictly, checks its CRC32 and, for a signed
image, the COSE signature over PCR0 with the embedded certificate; prints the
PCRs the Nitro hypervisor will report for it (PCR0, PCR1, PCR2, and PCR8 when
signed).

Options:
  --json                 print nitro-cli describe-eif compatible JSON
  --allow-crc-mismatch   report a bad CRC as "CheckCRC": false (as nitro-cli does)
                         instead of failing
  -h, --help             show this help

Exit status: 0 valid, 1 malformed, bad CRC or bad signature, 2 usage error.
`;

const SPEC = { json: { type: 'boolean' }, 'allow-crc-mismatch': { type: 'boolean' } } as const;

/** Largest image we read: Node reads at most 2 GiB into one buffer; real EIFs are 50–500 MB. */
const MAX_EIF_BYTES = 2 ** 31 - 1;

async function readEif(path: string, io: Io): Promise<Uint8Array> {
  if (path === '-') {
    if (!io.stdin) throw new CliInputError('cannot read the image from standard input here');
    return io.stdin();
  }
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new CliInputError(`cannot read ${path}: is a directory`);
    size = st.size;
  } catch (e) {
    if (e instanceof CliInputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliInputError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`, { cause: e });
  }
  if (size > MAX_EIF_BYTES) throw new CliInputError(`${path} is ${size} bytes, larger than the ${MAX_EIF_BYTES}-byte limit`);
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new CliInputError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function mib(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

function toText(file: string, p: ParsedEif, d: EifDescription): string {
  const h = p.header;
  const hex8 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
  const lines = [
    `EIF ${file}`,
    `  version      ${h.version}, ${h.arch}, default ${mib(h.defaultMem)} and ${h.defaultCpus} vCPUs`,
    `  size         ${p.size} bytes`,
    `  crc32        ${hex8(p.crc.stored)} ${p.crc.ok ? 'ok' : `MISMATCH (computed ${hex8(p.crc.computed)})`}`,
    '  sections',
    ...h.sections.map((s) => `    ${String(s.index).padStart(2)}  ${s.typeName.padEnd(9)} ${String(s.size).padStart(11)} bytes at ${s.offset}`),
    '  measurements (SHA-384)',
    ...(['PCR0', 'PCR1', 'PCR2', 'PCR8'] as const).filter((k) => d.Measurements[k] !== undefined).map((k) => `    ${k}  ${d.Measurements[k]}`),
  ];
  if (d.IsSigned && d.SigningCertificate) {
    const c = d.SigningCertificate;
    lines.push(
      '  signed       yes: COSE signature over PCR0 verified',
      `    issuer     ${Object.entries(c.IssuerName).map(([k, v]) => `${k}=${v}`).join(', ')}`,
      `    algorithm  ${c.Algorithm}`,
      `    valid      ${c.NotBefore} to ${c.NotAfter}`,
    );
  } else lines.push('  signed       no (no PCR8)');
  const cmdline = Buffer.from(p.cmdline).toString('utf8');
  lines.push(`  cmdline      ${JSON.stringify(cmdline)}`);
  if (d.Metadata) {
    const m = d.Metadata;
    lines.push(
      `  image        ${d.ImageName ?? '?'} ${d.ImageVersion ?? '?'}`,
      `  built        ${String(m.BuildTime)} by ${String(m.BuildTool)} ${String(m.BuildToolVersion)}, kernel ${String(m.OperatingSystem)} ${String(m.KernelVersion)}`,
      '  (metadata is not measured: anyone can edit it without changing a PCR)',
    );
  } else lines.push('  metadata     none');
  return `${lines.join('\n')}\n`;
}

export async function eifDescribe(argv: string[], io: Io): Promise<number> {
  return guard(EIF_DESCRIBE_USAGE, io, 'the image is not valid', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(EIF_DESCRIBE_USAGE);
      return EXIT_OK;
    }
    const file = args.positionals[0]!;
    const bytes = await readEif(file, io);
    let parsed: ParsedEif;
    let d: EifDescription;
    try {
      parsed = parseEif(bytes, { allowCrcMismatch: args.flags['allow-crc-mismatch'] });
      d = describeParsedEif(parsed);
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      if (args.flags.json) io.stdout(`${JSON.stringify({ error: errorReport(e) }, null, 2)}\n`);
      io.stderr(formatFailure(`${file} is not a valid enclave image`, e));
      return EXIT_FAILED;
    }
    io.stdout(args.flags.json ? `${JSON.stringify(d, null, 2)}\n` : toText(file, parsed, d));
    return EXIT_OK;
  });
}
