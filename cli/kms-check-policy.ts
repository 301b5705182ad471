/**
 * `enclave-signer kms check-policy <key-policy.json> --manifest <pcr-manifest.json>`:
 * flags every statement of a keyring CMK's key policy that lets a data key
 * exist outside an attested enclave running the manifest's image
 * (attestation/kms-policy-check.ts; docs/kms-policy.md). For auditors and CI.
 */
import { parseManifest, type PcrManifest } from '../attestation/manifest-format.js';
import { MAX_SIGNED_MANIFEST_BYTES, parseSignedManifest, verifySignedManifestDetailed } from '../attestation/manifest-signature.js';
import { checkKeyPolicy, type PolicyCheckResult } from '../attestation/kms-policy-check.js';
import { SignerError } from '../common/errors.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { CliInputError, EXIT_FAILED, EXIT_OK, UsageError } from './errors.js';
import { readTextFile, type Io } from './io.js';
import { loadPublicKey } from './keys.js';

export const KMS_CHECK_POLICY_USAGE = `Usage: enclave-signer kms check-policy <key-policy.json|-> --manifest <pcr-manifest.json> [options]

Checks a keyring CMK's key policy: every statement that lets the data key
exist outside an attested enclave running the manifest's image is a finding
(kms:Encrypt to anyone; Decrypt/GenerateDataKey* without a
kms:RecipientAttestation condition equal to the manifest's PCR0; IfExists,
Null, negated or wildcard conditions; debug PCRs; ReEncrypt; grants and
PutKeyPolicy to non-admins; wildcard principals; NotAction/NotPrincipal).
<key-policy.json> is the policy document, or the output of
'aws kms get-key-policy' ({"Policy": "…"}).

Options:
  --manifest FILE      PCR manifest (signed or not) naming the image (required)
  --manifest-key PEM   verify the manifest's signature with this public key first
  --admin ARN          a principal that may administer the key (repeatable; default:
                       any principal that is not a wildcard, an account, or one that
                       also gets Decrypt/GenerateDataKey)
  --json               print {"ok", "findings": [...]} on stdout
  -h, --help           show this help

Exit status: 0 no findings, 1 findings, 2 usage error or unreadable input.
`;

const SPEC = {
  manifest: { type: 'string' },
  'manifest-key': { type: 'string' },
  admin: { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

const MAX_POLICY_FILE = 64 * 1024;

/** The policy document, also when wrapped as `aws kms get-key-policy` prints it. */
function policyText(text: string): string {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as { Policy?: unknown }).Policy === 'string' && !('Statement' in v)) return (v as { Policy: string }).Policy;
  } catch {
    /* checkKeyPolicy reports the JSON error */
  }
  return text;
}

async function readManifest(path: string, keyPath: string | undefined, io: Io): Promise<PcrManifest> {
  const text = await readTextFile(path, 'manifest', MAX_SIGNED_MANIFEST_BYTES, io);
  try {
    if (keyPath !== undefined) return verifySignedManifestDetailed(new TextEncoder().encode(text), [await loadPublicKey(keyPath, 'manifest-key')]).manifest;
    const v = JSON.parse(text) as Record<string, unknown>;
    return v && typeof v === 'object' && 'signature' in v ? parseSignedManifest(v).manifest : parseManifest(v);
  } catch (e) {
    if (e instanceof SyntaxError) throw new CliInputError(`manifest ${path} is not JSON: ${e.message}`);
    if (e instanceof SignerError && !(e instanceof CliInputError)) throw new CliInputError(`manifest ${path}: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
    throw e;
  }
}

function toText(file: string, r: PolicyCheckResult, m: PcrManifest): string {
  const head = `key policy ${file} against manifest ${m.image.name} ${m.image.version} (PCR0 ${m.pcrs['0'].slice(0, 16)}…), ${r.statements} statement(s)`;
  if (r.ok) return `OK: ${head}\n  no statement lets the data key exist outside an attested enclave of this image\n`;
  return [`FINDINGS (${r.findings.length}): ${head}`, ...r.findings.map((f) => `  ${f.statement}  ${f.action}  ${f.code}\n      ${f.message}`)].join('\n') + '\n';
}

export async function kmsCheckPolicy(argv: string[], io: Io): Promise<number> {
  return guard(KMS_CHECK_POLICY_USAGE, io, 'kms check-policy', async () => {
    const a = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (a.help) {
      io.stdout(KMS_CHECK_POLICY_USAGE);
      return EXIT_OK;
    }
    const f = a.flags;
    if (!f.manifest) throw new UsageError('missing --manifest <pcr-manifest.json>: the policy is judged against the image it names');
    const file = a.positionals[0]!;
    const manifest = await readManifest(f.manifest, f['manifest-key'], io);
    const text = policyText(await readTextFile(file, 'key policy', MAX_POLICY_FILE, io));
    let r: PolicyCheckResult;
    try {
      r = checkKeyPolicy(text, { manifestPcrs: manifest.pcrs as unknown as Record<string, string>, admins: f.admin });
    } catch (e) {
      if (e instanceof SignerError) throw new CliInputError(e.message, { cause: e });
      throw e;
    }
    io.stdout(f.json ? JSON.stringify({ ok: r.ok, statements: r.statements, manifestPcr0: manifest.pcrs['0'], findings: r.findings }, null, 2) + '\n' : toText(file, r, manifest));
    return r.ok ? EXIT_OK : EXIT_FAILED;
  });
}
