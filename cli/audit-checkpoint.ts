/**
 * `enclave-signer audit checkpoint --socket S [--out F] [--nonce HEX]`: asks the
 * running enclave (through the parent's signing socket, signer_auditCheckpoint)
 * for a signed statement of its audit head, to publish or anchor elsewhere. The
 * output is the checkpoint as hex — what `audit verify --checkpoint FILE` reads.
 * A chain later cut before that head is then caught (AUDIT_TRUNCATED).
 *
 * The parent relays the answer and is not trusted, so nothing is written until
 * the checkpoint has been checked here: its signature under the audit key it
 * names, and — with --nonce — that it carries exactly that nonce. Without that
 * comparison a host could answer with an old checkpoint (seq K, no nonce), then
 * cut or fork the chain after K, and `audit verify --checkpoint` would accept
 * it. With --verify-attestation, --root or --manifest the attestation document
 * that comes with the checkpoint is verified too (root, manifest, the nonce, and
 * that its user_data binds the checkpoint's audit key); these are optional, so
 * the plain invocation keeps working against the dev stack's own root.
 */
import { bytesEqual, parseHex, toHex } from '../common/bytes.js';
import { parseCheckpoint, type CheckpointBody } from '../common/audit/checkpoint.js';
import { AuditError } from '../common/audit/errors.js';
import { SignerError } from '../common/errors.js';
import { verifyAuditKeyBinding, type AttestedEnclave, type AuditTrustOptions } from '../attestation/audit/binding-check.js';
import { pcrLines } from './audit-images.js';
import { parse, trustOptions, TRUST_OPTIONS } from './audit-options.js';
import { guard } from './command.js';
import { CliInputError, EXIT_FAILED, EXIT_OK, UsageError, errorReport, formatFailure } from './errors.js';
import { writeOutputFile, type Io } from './io.js';
import { socketRpc } from './socket-rpc.js';

export const AUDIT_CHECKPOINT_USAGE = `Usage: enclave-signer audit checkpoint --socket PATH [--out FILE] [--nonce HEX] [options]

Gets an enclave-signed statement of the current audit head (seq, hash, audit
key, enclave time; the nonce when given) and writes it as hex to FILE or
standard output. Keep it off the host: 'audit verify --checkpoint FILE' then
catches a chain cut before that head.

Nothing is written (exit 1) unless the checkpoint is signed by the audit key it
names and, with --nonce, carries exactly that nonce: without a nonce the host
can answer with an old checkpoint. The seq, head, audit key and enclave time
are reported on standard error (or in --json).

Options:
  --socket <PATH>             the signing socket (the parent relays the call)
  --out <FILE>                write the checkpoint here instead of standard output
  --nonce <HEX>               16..64 bytes of fresh random hex; the checkpoint must carry it
  --verify-attestation        also verify the attestation document that comes with the
                              checkpoint (AWS root by default) and that it binds the audit key
  --root <cert.pem>           ... against this root instead (dev/test only; implies the check)
  --manifest <signed.json>    ... and against a signed PCR manifest (implies the check)
  --manifest-key <pub.pem>    public key trusted to sign manifests (repeatable)
  --manifest-key-id <hex>     or its keyId (repeatable)
  --allow-debug               accept a debug-mode enclave
  --json                      print { valid, checkpoint, seq, head, time, auditKey, nonce,
                              fresh, attestation, warnings, out? }
  -h, --help                  show this help

Exit status: 0 written, 1 the answer is not a fresh checkpoint of the audit key
(wrong nonce, bad signature, attestation that does not verify), 2 usage or the
signer could not be asked.
`;

type AttestationReport = { verified: false; present: boolean } | ({ verified: true; policyHash: string | null } & AttestedEnclave);

export interface CheckpointReport {
  valid: true;
  checkpoint: string;
  seq: number;
  head: string;
  /** Enclave time, ISO 8601, and in ms since the epoch. */
  time: string;
  timeMs: number;
  auditKey: string;
  nonce: string | null;
  /** True when --nonce was given and the checkpoint carries it: it was made for this request. */
  fresh: boolean;
  attestation: AttestationReport;
  warnings: string[];
  out?: string;
}

function nonceMismatch(body: CheckpointBody, sent: Uint8Array): SignerError {
  const got = body.nonce === null ? 'no nonce' : `nonce ${toHex(body.nonce)}`;
  return new SignerError(
    'AUDIT_CHECKPOINT_NONCE',
    `the checkpoint (seq ${body.seq}, head ${toHex(body.head)}) carries ${got}, not the nonce sent (${toHex(sent)}): it was not made for this request — the host may be answering with an old checkpoint to hide a later truncation or fork. Nothing was written`,
    { hint: 'ask again with a new nonce; if it happens again, treat the host as tampering with the audit chain' },
  );
}

function verifyAttached(doc: Uint8Array | undefined, body: CheckpointBody, nonce: Uint8Array | undefined, trust: AuditTrustOptions): AttestationReport {
  if (!doc || doc.length === 0) {
    throw new AuditError('AUDIT_ATTESTATION', `checkpoint at seq ${body.seq}: the answer carries no attestation document to verify`, { seq: body.seq });
  }
  // Fresh document: verified at the current time (its leaf certificate lives ~3 hours), with the nonce.
  const { binding, enclave } = verifyAuditKeyBinding(doc, body.auditKey, trust, {
    seq: body.seq,
    ...(nonce ? { nonce } : {}),
    say: {
      unverified: (detail) => `checkpoint at seq ${body.seq}: the attestation document does not verify: ${detail}`.replace('  ', ' '),
      notBinding: (message) => `checkpoint at seq ${body.seq}: ${message}`,
      otherKey: (bound) => `checkpoint at seq ${body.seq}: the attestation document binds audit key ${bound}, but the checkpoint is signed by ${toHex(body.auditKey)}`,
    },
  });
  // --json prints the keys in this order: the manifest last.
  const { manifest, ...attested } = enclave;
  return { verified: true, ...attested, policyHash: binding.policyHash ? toHex(binding.policyHash) : null, ...(manifest ? { manifest } : {}) };
}

function summary(r: CheckpointReport): string {
  const lines = [
    `checkpoint of seq ${r.seq} (head ${r.head.slice(0, 16)}…) written to ${r.out ?? 'standard output'}`,
    `  seq          ${r.seq}`,
    `  head         ${r.head}`,
    `  enclave time ${r.time}`,
    `  audit key    ${r.auditKey}`,
    `  nonce        ${r.nonce === null ? 'none' : `${r.nonce} (matches the one sent: fresh)`}`,
  ];
  const a = r.attestation;
  if (a.verified) {
    lines.push(`  attestation  verified: ${a.moduleId}, attested ${a.attestedAt}${a.debug ? ', DEBUG' : ''}, binds this audit key`, `  root         ${a.root}`);
    lines.push(...pcrLines(a.pcrs, '  ', 13));
    if (a.manifest) lines.push(`  manifest     ${a.manifest.name} ${a.manifest.version} (key ${a.manifest.keyId})`);
  } else lines.push(`  attestation  ${a.present ? 'not verified (--verify-attestation, --root or --manifest checks it)' : 'none in the answer'}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return `${lines.join('\n')}\n`;
}

export async function auditCheckpoint(argv: string[], io: Io): Promise<number> {
  return guard(AUDIT_CHECKPOINT_USAGE, io, 'audit checkpoint failed', async () => {
    const { values: f, positionals } = parse(argv, { ...TRUST_OPTIONS, socket: { type: 'string' }, out: { type: 'string' }, nonce: { type: 'string' }, 'verify-attestation': { type: 'boolean' } });
    if (f.help) {
      io.stdout(AUDIT_CHECKPOINT_USAGE);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (f.socket === undefined) throw new UsageError('--socket is required');
    let nonce: Uint8Array | undefined;
    if (f.nonce !== undefined) {
      nonce = parseHex(f.nonce);
      if (!nonce || nonce.length < 16 || nonce.length > 64) throw new UsageError('--nonce must be 16..64 bytes of hex');
    }
    const checkAttestation = f['verify-attestation'] === true || f.root !== undefined || f.manifest !== undefined;
    const trust = await trustOptions(f, io, { warnWithoutManifest: checkAttestation });
    const answer = await socketRpc(f.socket, { jsonrpc: '2.0', id: 1, method: 'signer_auditCheckpoint', params: nonce === undefined ? {} : { nonce: `0x${toHex(nonce)}` } });
    if (!answer.ok) throw new CliInputError(`signer_auditCheckpoint: ${answer.error.code} ${answer.error.message}`);
    const result = answer.result as { checkpoint?: unknown; attestation?: unknown } | null;
    const cpHex = result?.checkpoint;
    const cp = typeof cpHex === 'string' ? parseHex(cpHex) : undefined;
    if (!cp) throw new CliInputError('signer_auditCheckpoint answered no checkpoint');
    const docB64 = result?.attestation;
    const doc = typeof docB64 === 'string' && docB64.length > 0 ? new Uint8Array(Buffer.from(docB64, 'base64')) : undefined;

    let report: CheckpointReport;
    try {
      // Read it back: what is written must be a checkpoint signed by the audit key it names
      // (parseCheckpoint checks the signature); the parent's own `seq` member is not used.
      const body = parseCheckpoint(cp).body;
      // Freshness: the nonce sent must come back byte for byte, before anything is written.
      if (nonce !== undefined && (body.nonce === null || !bytesEqual(body.nonce, nonce))) throw nonceMismatch(body, nonce);
      const attestation: AttestationReport = checkAttestation ? verifyAttached(doc, body, nonce, trust) : { verified: false, present: doc !== undefined };
      const warnings: string[] = [];
      if (nonce === undefined) warnings.push('no --nonce: nothing proves this checkpoint is fresh (the host could answer with an old one); pass --nonce with 16+ random bytes');
      if (checkAttestation && !trust.manifest) {
        warnings.push('no --manifest: the attestation document was checked against the root only, not against a signed PCR manifest, so an enclave of ANY Nitro image would pass (its PCRs are listed)');
      }
      if (!checkAttestation) {
        warnings.push(
          'the audit key was not checked against an attestation document here (--verify-attestation, --root or --manifest do): only `audit verify --checkpoint` ties this checkpoint to an attested chain',
        );
      }
      report = {
        valid: true,
        checkpoint: toHex(cp),
        seq: body.seq,
        head: toHex(body.head),
        time: new Date(body.time).toISOString(),
        timeMs: body.time,
        auditKey: toHex(body.auditKey),
        nonce: body.nonce === null ? null : toHex(body.nonce),
        fresh: nonce !== undefined,
        attestation,
        warnings,
        ...(f.out === undefined ? {} : { out: f.out }),
      };
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      if (f.json) io.stdout(`${JSON.stringify({ valid: false, error: errorReport(e) }, null, 2)}\n`);
      else io.stderr(formatFailure('audit checkpoint failed', e));
      return EXIT_FAILED;
    }

    const text = `${report.checkpoint}\n`;
    if (f.out !== undefined) await writeOutputFile(f.out, text, { what: 'checkpoint' });
    if (f.json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else {
      if (f.out === undefined) io.stdout(text);
      io.stderr(summary(report));
    }
    return EXIT_OK;
  });
}
