/**
 * `enclave-signer audit verify|export`: the auditor's view of the audit chain
 * (docs/audit.md). verify checks a keystore's audit_records (or a JSON Lines
 * export) offline; export writes JSON Lines that verify the same way.
 */
import { createWriteStream, type ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseHex, toHex } from '../common/bytes.js';
import { parseCheckpoint, type CheckpointBody } from '../common/audit/checkpoint.js';
import { parseReceipt, MAX_RECEIPT_BYTES, type Receipt } from '../common/audit/receipt.js';
import type { SignerError } from '../common/errors.js';
import { AuditChainVerifier, type AuditAnchor, type AuditVerifyReport, type RawAuditRecord } from '../attestation/audit/verify.js';
import { openKeystore, type Keystore } from '../parent/keystore.js';
import { parse, trustOptions, TRUST_OPTIONS } from './audit-options.js';
import { auditCheckpoint } from './audit-checkpoint.js';
import { imageChanges, imageWarnings, pcrLines, type ImageChange } from './audit-images.js';
import { guard } from './command.js';
import { CliInputError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from './errors.js';
import { readInputFile, type Io } from './io.js';

export const AUDIT_USAGE = `Usage: enclave-signer audit <command> [options]

Commands:
  verify   check an audit chain offline: signatures, links, seq continuity,
           hand-overs, each audit key's attestation binding, policy hashes
  export   write the chain as JSON Lines ({"seq":n,"record":"<hex>"} per line)
  checkpoint  get an enclave-signed head statement from a running signer (--socket)

Run 'enclave-signer audit <command> --help' for details.
`;

export const AUDIT_VERIFY_USAGE = `Usage: enclave-signer audit verify (--keystore PATH|URL | --jsonl FILE) [options]

Verifies the enclave's audit chain: every record's Ed25519 signature, every
hash link, seq continuity, each hand-over to a new audit key (the key must be
bound by an attestation document that verifies against the root at its own
time, and against the signed manifest when given), that every record is
signed by the key in force, and policy hashes. Reports every gap and fork.

Options:
  --keystore <PATH|file:URL|postgres://…>  the parent's keystore (opened read-only)
  --instance-id <NAME>        whose chain, on a keystore shared by several instances (default "default")
  --jsonl <FILE|->            a JSON Lines export instead
  --checkpoint <FILE>         a signed head (hex or raw) the chain must contain
                              (catches tail truncation; repeatable)
  --receipt <FILE>            a receipt whose record the chain must contain (repeatable)
  --root <cert.pem>           trust this root instead of AWS's (dev/test only)
  --manifest <signed.json>    require each enclave's PCRs to match a signed manifest
  --manifest-key <pub.pem>    public key trusted to sign manifests (repeatable)
  --manifest-key-id <hex>     or its keyId (repeatable)
  --allow-debug               accept debug-mode enclaves
  --json                      print { valid, records, head, gaps, enclaves, …, imageChanges, warnings }
  -h, --help                  show this help

Each enclave's PCR0/1/2 (its image) is listed. Without --manifest an audit key
from ANY Nitro enclave image is accepted (only the root is checked): a warning
on standard error says so, and names every image change in the chain.

Exit status: 0 valid, 1 tampered or unverifiable (first bad seq and why), 2 usage.
`;

export const AUDIT_EXPORT_USAGE = `Usage: enclave-signer audit export --keystore PATH|URL [--out FILE]

Writes the keystore's audit records as JSON Lines, one {"seq":n,"record":"<hex>"}
per line, in seq order ('audit verify --jsonl FILE' checks it the same way).

Options:
  --keystore <PATH|file:URL|postgres://…>  the parent's keystore (opened read-only)
  --instance-id <NAME>        whose chain, on a keystore shared by several instances (default "default")
  --out <FILE>                write here instead of standard output
  -h, --help                  show this help
`;

function keystorePath(v: string): string {
  if (v.startsWith('file:')) return fileURLToPath(v);
  if (/^postgres(ql)?:\/\//i.test(v)) return v;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
    throw new CliInputError(`--keystore ${v.replace(/\/\/[^@/]*@/, '//…@')}: only SQLite (a path or file: URL) and PostgreSQL (postgres://…) keystores are supported`);
  }
  return v;
}

async function openReadonly(v: string, instanceId?: string): Promise<Keystore> {
  const path = keystorePath(v);
  try {
    return await openKeystore(path, { readonly: true, ...(instanceId === undefined ? {} : { instanceId }) });
  } catch (e) {
    const where = /^postgres/i.test(path) ? path.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@') : path;
    throw new CliInputError(`cannot read keystore ${where}: ${(e as Error).message}`, { cause: e, ...((e as SignerError).hint ? { hint: (e as SignerError).hint! } : {}) });
  }
}

async function* keystoreRecords(ks: Keystore): AsyncGenerator<RawAuditRecord> {
  for await (const r of ks.iterateAuditRecords()) yield { bytes: r.record, storedSeq: r.seq };
}

/** JSON Lines, streamed: a bad line becomes an unreadable record at its position (the verifier names it). */
async function* jsonlRecords(path: string, io: Io): AsyncGenerator<RawAuditRecord> {
  let lines: AsyncIterable<string>;
  if (path === '-') {
    if (!io.stdin) throw new CliInputError('cannot read the JSON Lines export from standard input here');
    const all = Buffer.from(await io.stdin()).toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    lines = (async function* () {
      yield* all;
    })();
  } else {
    let stream: ReadStream;
    try {
      const fh = await open(path, 'r');
      stream = fh.createReadStream({ encoding: 'utf8' });
    } catch (e) {
      throw new CliInputError(`cannot read JSON Lines export ${path}: ${(e as Error).message}`, { cause: e });
    }
    lines = createInterface({ input: stream, crlfDelay: Infinity });
  }
  for await (const line of lines) {
    let seq: number | undefined;
    let bytes: Uint8Array = new Uint8Array(0);
    try {
      const o = JSON.parse(line) as { seq?: unknown; record?: unknown };
      if (typeof o.seq === 'number' && Number.isSafeInteger(o.seq) && o.seq >= 0) seq = o.seq;
      if (typeof o.record === 'string') bytes = parseHex(o.record) ?? new Uint8Array(0);
    } catch {
      // Left empty: reported as AUDIT_MALFORMED at this line.
    }
    yield { bytes, ...(seq !== undefined ? { storedSeq: seq } : {}) };
  }
}

async function anchorsFrom(checkpoints: string[], receipts: string[]): Promise<AuditAnchor[]> {
  const out: AuditAnchor[] = [];
  for (const f of checkpoints) {
    const raw = await readInputFile(f, 'checkpoint', 64 * 1024);
    const text = Buffer.from(raw).toString('utf8').trim();
    const bytes = parseHex(text) ?? raw;
    let c: CheckpointBody;
    try {
      c = parseCheckpoint(bytes).body;
    } catch (e) {
      throw new CliInputError(`--checkpoint ${f}: ${(e as Error).message}`, { cause: e });
    }
    out.push({ seq: c.seq, hash: c.head, auditKey: c.auditKey, source: `checkpoint ${f}` });
  }
  for (const f of receipts) {
    const raw = await readInputFile(f, 'receipt', MAX_RECEIPT_BYTES);
    let r: Receipt;
    try {
      r = parseReceipt(Buffer.from(raw).toString('utf8'));
    } catch (e) {
      throw new CliInputError(`--receipt ${f}: ${(e as Error).message}`, { cause: e });
    }
    out.push({ seq: r.record.body.seq, hash: r.record.hash, auditKey: r.record.body.auditKey, source: `receipt ${f}` });
  }
  return out;
}

/** The --json report: the verifier's, plus what the CLI adds about images (docs/audit.md). */
type VerifyOutput = AuditVerifyReport & { imageChanges: ImageChange[]; warnings: string[] };

function text(r: VerifyOutput): string {
  const lines = [r.valid ? 'OK: audit chain verified' : 'FAILED: audit chain did not verify', `  records   ${r.records}`];
  if (r.head) lines.push(`  head      seq ${r.head.seq}  ${r.head.hash}`);
  for (const e of r.enclaves) {
    lines.push(`  enclave   audit key ${e.auditKey}`, `            seq ${e.firstSeq}…${e.lastSeq} (${e.records} records), module ${e.moduleId}, attested ${e.attestedAt}${e.debug ? ', DEBUG' : ''}`);
    lines.push(...pcrLines(e.pcrs, ' '.repeat(12), 5));
    lines.push(e.manifest ? `            manifest ${e.manifest.name} ${e.manifest.version} (key ${e.manifest.keyId})` : '            manifest none: PCRs not checked against a signed manifest');
  }
  for (const c of r.imageChanges) lines.push(`  image     changes at seq ${c.seq} (${c.differ.join(', ')} differ from the enclave before)`);
  for (const a of r.anchors) lines.push(`  anchor    ${a.source}: seq ${a.seq} ${a.ok ? 'present' : 'NOT in the chain'}`);
  for (const g of r.gaps) lines.push(`  gap       seq ${g.from === g.to ? g.from : `${g.from}…${g.to}`} missing`);
  for (const f of r.forks) lines.push(`  fork      ${f.reason}`);
  if (r.firstBad) {
    lines.push(`  first bad seq ${r.firstBad.seq ?? '?'}${r.firstBad.index !== null ? ` (record #${r.firstBad.index + 1} in the input)` : ''}`, `  error     ${r.firstBad.code}`, `  reason    ${r.firstBad.message}`);
    if (r.problemCount > 1) lines.push(`  (${r.problemCount} problems in all; --json lists ${r.problems.length})`);
  }
  return `${lines.join('\n')}\n`;
}

async function verifyCmd(argv: string[], io: Io): Promise<number> {
  return guard(AUDIT_VERIFY_USAGE, io, 'audit chain did not verify', async () => {
    const { values: f, positionals } = parse(argv, {
      ...TRUST_OPTIONS,
      keystore: { type: 'string' },
      'instance-id': { type: 'string' },
      jsonl: { type: 'string' },
      checkpoint: { type: 'string', multiple: true },
      receipt: { type: 'string', multiple: true },
    });
    if (f.help) {
      io.stdout(AUDIT_VERIFY_USAGE);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if ((f.keystore === undefined) === (f.jsonl === undefined)) throw new UsageError('give exactly one of --keystore or --jsonl');
    // Its own no-manifest warning comes after verifying, naming the images it saw.
    const trust = await trustOptions(f, io, { warnWithoutManifest: false });
    const anchors = await anchorsFrom(f.checkpoint ?? [], f.receipt ?? []);
    let report: AuditVerifyReport;
    if (f.keystore !== undefined) {
      const ks = await openReadonly(f.keystore, f['instance-id']);
      try {
        const v = new AuditChainVerifier({ ...trust, anchors });
        try {
          for await (const r of keystoreRecords(ks)) v.add(r);
        } catch (e) {
          // A damaged store (a smashed page) is a finding at the position it was reached, never a crash.
          v.sourceFailed(`the record source failed: ${(e as Error)?.message ?? String(e)}`);
        }
        report = v.report();
      } finally {
        await ks.close();
      }
    } else {
      const v = new AuditChainVerifier({ ...trust, anchors });
      const it = jsonlRecords(f.jsonl!, io);
      let first = true;
      try {
        for await (const r of it) {
          first = false;
          v.add(r);
        }
      } catch (e) {
        if (first && e instanceof CliInputError) throw e;
        v.sourceFailed(`reading ${f.jsonl} failed: ${(e as Error).message}`);
      }
      report = v.report();
    }
    const changes = imageChanges(report.enclaves);
    const out: VerifyOutput = { ...report, imageChanges: changes, warnings: imageWarnings(report, changes, trust.manifest !== undefined) };
    io.stdout(f.json ? `${JSON.stringify(out, null, 2)}\n` : text(out));
    // Loud, and last, where it is seen: the exit status of this invocation is a contract and stays 0.
    for (const w of out.warnings) io.stderr(`WARNING: ${w}\n`);
    return report.valid ? EXIT_OK : EXIT_FAILED;
  });
}

async function exportCmd(argv: string[], io: Io): Promise<number> {
  return guard(AUDIT_EXPORT_USAGE, io, 'audit export failed', async () => {
    const { values: f, positionals } = parse(argv, { keystore: { type: 'string' }, 'instance-id': { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
    if (f.help) {
      io.stdout(AUDIT_EXPORT_USAGE);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (f.keystore === undefined) throw new UsageError('--keystore is required');
    const ks = await openReadonly(f.keystore, f['instance-id']);
    try {
      if (f.out === undefined) {
        for await (const r of ks.iterateAuditRecords()) io.stdout(`${JSON.stringify({ seq: r.seq, record: toHex(r.record) })}\n`);
      } else {
        const out = createWriteStream(f.out, { flags: 'wx', mode: 0o644 });
        const opened = new Promise<void>((res, rej) => out.once('open', () => res()).once('error', rej));
        await opened.catch((e: unknown) => {
          throw new CliInputError(`cannot write ${f.out}: ${(e as Error).message}`, { cause: e });
        });
        for await (const r of ks.iterateAuditRecords()) {
          if (!out.write(`${JSON.stringify({ seq: r.seq, record: toHex(r.record) })}\n`)) await new Promise<void>((res) => out.once('drain', () => res()));
        }
        await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
      }
    } finally {
      await ks.close();
    }
    return EXIT_OK;
  });
}

/** `audit <verify|export> …` */
export async function audit(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verifyCmd(rest, io);
  if (sub === 'export') return exportCmd(rest, io);
  if (sub === 'checkpoint') return auditCheckpoint(rest, io);
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout(AUDIT_USAGE);
    return EXIT_OK;
  }
  io.stderr(`error: ${sub === undefined ? 'missing command' : `unknown command 'audit ${sub}'`}\n\n${AUDIT_USAGE}`);
  return EXIT_USAGE;
}

