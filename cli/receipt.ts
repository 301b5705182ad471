/**
 * `enclave-signer receipt verify FILE --result HEX`: proves offline that a
 * result came from an attested enclave (its image matching the manifest when
 * given) under the policy hash in its audit record. docs/audit.md, "Receipts".
 */
import { parseHex } from '../common/bytes.js';
import { parseReceipt, MAX_RECEIPT_BYTES } from '../common/audit/receipt.js';
import { SignerError } from '../common/errors.js';
import { verifyReceipt, type ReceiptResult, type ReceiptVerified } from '../attestation/audit/receipt.js';
import { pcrLines } from './audit-images.js';
import { parse, trustOptions, TRUST_OPTIONS } from './audit-options.js';
import { guard } from './command.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, errorReport, formatFailure } from './errors.js';
import { readInputFile, type Io } from './io.js';

export const RECEIPT_VERIFY_USAGE = `Usage: enclave-signer receipt verify <FILE|-> --result <hex|json> [options]

Verifies a receipt offline: the audit record's signature, that it records a
released result whose digest is that of --result (or a key the enclave made,
whose public data is --result), that an attestation document (verified
against the root at its own time, and against the signed manifest when
given) binds the record's audit key, and that the record's policy hash is
the attested one when the enclave attests a policy.

Options:
  --result <hex|json>       the result the client received: a signature or raw
                            transaction as hex, or a result object as JSON (a
                            key from signer_createKey/getKey/listKeys: proves
                            its address, publicKey or xpub)
  --root <cert.pem>         trust this root instead of AWS's (dev/test only)
  --manifest <signed.json>  require the enclave's PCRs to match a signed manifest
  --manifest-key <pub.pem>  public key trusted to sign manifests (repeatable)
  --manifest-key-id <hex>   or its keyId (repeatable)
  --allow-debug             accept debug-mode enclaves
  --json                    print a JSON result
  -h, --help                show this help

Exit status: 0 the receipt proves the result, 1 it does not, 2 usage.
`;

function text(r: ReceiptVerified): string {
  const lines = [
    'OK: receipt verified',
    `  record       seq ${r.seq}  ${r.hash}`,
    r.kind === 'key.create'
      ? `  key made     ${r.keyId ?? '-'} by ${r.principal ?? '-'} at ${r.time} (its public data matches the record)`
      : `  decision     ${r.op ?? '-'} by ${r.principal ?? '-'} with key ${r.keyId ?? '-'} (rule ${r.rule ?? '-'}) at ${r.time}`,
    `  policy hash  ${r.policyHash ?? 'none recorded'}`,
    `  audit key    ${r.auditKey}`,
    `  enclave      ${r.enclave.moduleId}, attested ${r.enclave.attestedAt}${r.enclave.debug ? ', DEBUG' : ''}`,
    `  root         ${r.enclave.root}`,
  ];
  lines.push(...pcrLines(r.enclave.pcrs, '  ', 13));
  lines.push(r.enclave.manifest ? `  manifest     ${r.enclave.manifest.name} ${r.enclave.manifest.version} (key ${r.enclave.manifest.keyId})` : '  manifest     none: PCRs not checked against a signed manifest');
  if (r.checkpoint) lines.push(`  checkpoint   seq ${r.checkpoint.seq}  ${r.checkpoint.head}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The first member name that appears twice in one object of `text` (already valid JSON), compared
 * after unescaping ("a" and "\u0061" are one name). Review finding (session 26): JSON.parse keeps
 * the last of duplicate members, other parsers keep the first; with `{"address":"<host's>", …,
 * "address":"<the key's>"}` the receipt verified the key's address while a backend that read the
 * same text with a first-wins parser published the host's. Such text is refused.
 */
function duplicateMember(text: string): string | undefined {
  // One entry per open object (its member names so far) or array (null).
  const open: Array<Set<string> | null> = [];
  let nameNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const names = open.at(-1);
      if (nameNext && names) {
        const name = JSON.parse(text.slice(i, j + 1)) as string;
        if (names.has(name)) return name;
        names.add(name);
      }
      nameNext = false;
      i = j;
    } else if (c === '{') {
      open.push(new Set());
      nameNext = true;
    } else if (c === '[') {
      open.push(null);
      nameNext = false;
    } else if (c === '}' || c === ']') {
      open.pop();
      nameNext = false;
    } else if (c === ',') {
      nameNext = open.at(-1) instanceof Set;
    }
  }
  return undefined;
}

/** `--result`: the released bytes as hex, or a result object as JSON (a key's public data, a signed PSBT's answer). */
function readResult(v: string): ReceiptResult {
  if (v.trimStart().startsWith('{')) {
    let o: unknown;
    try {
      o = JSON.parse(v);
    } catch (e) {
      throw new UsageError(`--result is not valid JSON: ${(e as Error).message}`);
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new UsageError('--result JSON must be an object');
    const dup = duplicateMember(v);
    if (dup !== undefined) throw new UsageError(`--result JSON has a duplicate member ${JSON.stringify(dup.slice(0, 64))} (twice in one object): parsers disagree on which one counts, so it proves nothing`);
    return o as Record<string, unknown>;
  }
  const b = parseHex(v);
  if (!b || b.length === 0) throw new UsageError('--result must be non-empty hex, or a JSON object');
  return b;
}

async function verifyCmd(argv: string[], io: Io): Promise<number> {
  return guard(RECEIPT_VERIFY_USAGE, io, 'receipt did not verify', async () => {
    const { values: f, positionals } = parse(argv, { ...TRUST_OPTIONS, result: { type: 'string' } });
    if (f.help) {
      io.stdout(RECEIPT_VERIFY_USAGE);
      return EXIT_OK;
    }
    if (positionals.length !== 1) throw new UsageError('give exactly one receipt file');
    if (f.result === undefined) throw new UsageError('--result <hex|json> is required');
    const result = readResult(f.result);
    const trust = await trustOptions(f, io);
    const raw = await readInputFile(positionals[0]!, 'receipt', MAX_RECEIPT_BYTES, io);
    let out: ReceiptVerified;
    try {
      out = verifyReceipt(parseReceipt(Buffer.from(raw).toString('utf8')), result, trust);
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      const seq = (e as { seq?: number }).seq;
      if (f.json) io.stdout(`${JSON.stringify({ valid: false, ...(seq !== undefined ? { seq } : {}), error: errorReport(e) }, null, 2)}\n`);
      else io.stderr(formatFailure('receipt did not verify', e));
      return EXIT_FAILED;
    }
    io.stdout(f.json ? `${JSON.stringify(out, null, 2)}\n` : text(out));
    return EXIT_OK;
  });
}

/** `receipt verify …` */
export async function receipt(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verifyCmd(rest, io);
  const usage = 'Usage: enclave-signer receipt verify <FILE> --result <hex> [options]\n';
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout(usage);
    return EXIT_OK;
  }
  io.stderr(`error: ${sub === undefined ? 'missing command' : `unknown command 'receipt ${sub}'`}\n\n${usage}`);
  return EXIT_USAGE;
}
