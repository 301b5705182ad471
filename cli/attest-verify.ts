/**
 * `enclave-signer attest verify <file|->`: verifies an attestation document
 * end to end (optionally against a signed PCR manifest) and prints what was
 * proven. This is the auditor's command, so the output says exactly which
 * checks ran and which root they trusted.
 */
import { toHex } from '../common/bytes.js';
import { SignerError } from '../common/errors.js';
import { verifyAttestation } from '../attestation/verify.js';
import { verifyAttestationAgainstManifest, type ManifestVerifiedAttestation } from '../attestation/manifest-attest.js';
import type { TrustRoot, VerifiedAttestation } from '../attestation/types.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { decodeDocumentInput, MAX_DOCUMENT_INPUT_BYTES } from './document-input.js';
import { EXIT_FAILED, EXIT_OK, UsageError, errorReport, formatFailure } from './errors.js';
import { readInputFile, type Io } from './io.js';
import { isAwsRoot, loadPublicKey, loadRoot } from './keys.js';
import { MAX_SIGNED_MANIFEST_BYTES } from '../attestation/manifest-signature.js';
import { atFlag, hexFlag, pcrFlags } from './values.js';
import type { KeyObject } from 'node:crypto';

export const ATTEST_VERIFY_USAGE = `Usage: enclave-signer attest verify <file|-> [options]

Verifies a Nitro attestation document: COSE signature, certificate chain to
the pinned AWS_NitroEnclaves_Root-G1, validity at the verification time,
debug mode, and whatever you ask for below. The input is raw CBOR, base64 or
hex text (auto-detected); '-' reads standard input.

Options:
  --manifest <signed.json>   require the PCRs a signed PCR manifest lists in "match"
  --manifest-key <pub.pem>   public key trusted to sign manifests (repeatable)
  --manifest-key-id <hex>    or its keyId: SHA-256 of the SPKI DER (repeatable)
  --nonce <hex>              require this nonce (freshness)
  --public-key <hex>         require this public_key field
  --user-data <hex>          require this user_data field
  --pcr <N=hex>              require PCR N to equal hex (repeatable; 48 bytes)
  --at <ISO8601|doc>         verification time (default: now); 'doc' = the
                             document's own timestamp, for auditing old documents
  --root <cert.pem>          trust this root instead of AWS's (dev/test only)
  --allow-debug              accept debug-mode enclaves (PCR0/1/2 all zero)
  --json                     print a JSON result on stdout
  -h, --help                 show this help

Exit status: 0 verified, 1 verification failed, 2 usage error.
`;

const SPEC = {
  manifest: { type: 'string' },
  'manifest-key': { type: 'string', multiple: true },
  'manifest-key-id': { type: 'string', multiple: true },
  nonce: { type: 'string' },
  'public-key': { type: 'string' },
  'user-data': { type: 'string' },
  pcr: { type: 'string', multiple: true },
  at: { type: 'string' },
  root: { type: 'string' },
  'allow-debug': { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

/** The JSON printed on success (documented in docs/cli.md). */
export interface AttestVerifyJson {
  valid: true;
  moduleId: string;
  timestamp: string;
  pcrs: Record<string, string>;
  checks: string[];
  root: { name: string; fingerprint: string; aws: boolean };
  debug: boolean;
  verifiedAt: string;
  manifest?: { name: string; version: string; sourceCommit: string; eifSha256: string; match: number[]; keyId: string };
}

function pcrRecord(pcrs: Map<number, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...pcrs].sort(([a], [b]) => a - b).map(([i, v]) => [String(i), toHex(v)]));
}

function toJson(r: VerifiedAttestation | ManifestVerifiedAttestation): AttestVerifyJson {
  const out: AttestVerifyJson = {
    valid: true,
    moduleId: r.document.moduleId,
    timestamp: new Date(r.document.timestamp).toISOString(),
    pcrs: pcrRecord(r.document.pcrs),
    checks: r.checks,
    root: { ...r.root, aws: isAwsRoot(r.root) },
    debug: r.debug,
    verifiedAt: r.verifiedAt.toISOString(),
  };
  if ('manifest' in r) {
    const { image, match } = r.manifest;
    out.manifest = { ...image, match, keyId: r.manifestKeyId };
  }
  return out;
}

function toText(j: AttestVerifyJson, atDocument: boolean): string {
  const lines = [
    'OK: attestation document verified',
    `  module id    ${j.moduleId}`,
    `  timestamp    ${j.timestamp}`,
    `  verified at  ${j.verifiedAt}${atDocument ? ' (the document\'s own timestamp)' : ''}`,
    `  root         ${j.root.name} (SHA-256 ${j.root.fingerprint})${j.root.aws ? '' : ' — NOT the AWS Nitro Enclaves root'}`,
    `  debug        ${j.debug ? 'YES: debug-mode enclave, its memory is visible to the host' : 'no'}`,
  ];
  if (j.manifest) {
    const m = j.manifest;
    lines.push(`  manifest     ${m.name} ${m.version} (commit ${m.sourceCommit}), signed by key ${m.keyId}`);
    lines.push(`               matched ${m.match.map((i) => `PCR${i}`).join(', ')}`);
  }
  lines.push(`  checks       ${j.checks.join(', ')}`, '  PCRs');
  for (const [i, v] of Object.entries(j.pcrs)) lines.push(`    ${i.padStart(2)}  ${v}`);
  return `${lines.join('\n')}\n`;
}

export async function attestVerify(argv: string[], io: Io): Promise<number> {
  return guard(ATTEST_VERIFY_USAGE, io, 'attestation document did not verify', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(ATTEST_VERIFY_USAGE);
      return EXIT_OK;
    }
    const f = args.flags;
    const manifestKeys = [...f['manifest-key'], ...f['manifest-key-id']];
    if (f.manifest !== undefined && manifestKeys.length === 0) {
      throw new UsageError('--manifest needs --manifest-key <pub.pem> or --manifest-key-id <hex>', { hint: 'a manifest is only as good as the key you trust to have signed it' });
    }
    if (f.manifest === undefined && manifestKeys.length > 0) throw new UsageError('--manifest-key/--manifest-key-id without --manifest');
    for (const id of f['manifest-key-id']) if (!/^[0-9a-fA-F]{64}$/.test(id)) throw new UsageError(`--manifest-key-id must be 64 hex characters, got ${JSON.stringify(id.slice(0, 70))}`);

    const nonce = f.nonce === undefined ? undefined : hexFlag('nonce', f.nonce);
    const publicKey = f['public-key'] === undefined ? undefined : hexFlag('public-key', f['public-key']);
    const userData = f['user-data'] === undefined ? undefined : hexFlag('user-data', f['user-data']);
    const pcrs = pcrFlags(f.pcr);
    const at = atFlag(f.at);
    const allowDebug = f['allow-debug'];

    // Operator files first (exit 2 when unusable), then the document (exit 1 when bad).
    let root: TrustRoot | undefined;
    if (f.root !== undefined) {
      root = await loadRoot(f.root);
      if (!isAwsRoot(root)) {
        io.stderr(`warning: trusting ${root.name} (SHA-256 ${root.fingerprint}), NOT the AWS Nitro Enclaves root: success does not prove the document came from AWS hardware\n`);
      }
    }
    const trustedKeys: (KeyObject | string)[] = [...f['manifest-key-id']];
    for (const p of f['manifest-key']) trustedKeys.push(await loadPublicKey(p, 'manifest-key'));
    const manifestBytes = f.manifest === undefined ? undefined : await readInputFile(f.manifest, 'manifest', MAX_SIGNED_MANIFEST_BYTES);
    const input = await readInputFile(args.positionals[0]!, 'attestation document', MAX_DOCUMENT_INPUT_BYTES, io);

    let result: VerifiedAttestation | ManifestVerifiedAttestation;
    try {
      const { bytes } = decodeDocumentInput(input);
      const common = {
        ...(at !== undefined ? { at } : {}),
        ...(root ? { root } : {}),
        allowDebug,
      };
      result =
        manifestBytes !== undefined
          ? verifyAttestationAgainstManifest(bytes, manifestBytes, {
              ...common,
              trustedKeys,
              ...(nonce ? { nonce } : {}),
              ...(publicKey ? { publicKey } : {}),
              ...(userData ? { userData } : {}),
              ...(pcrs ? { expectedPcrs: pcrs } : {}),
            })
          : verifyAttestation(bytes, {
              ...common,
              ...(nonce ? { expectedNonce: nonce } : {}),
              ...(publicKey ? { expectedPublicKey: publicKey } : {}),
              ...(userData ? { expectedUserData: userData } : {}),
              ...(pcrs ? { expectedPcrs: pcrs } : {}),
            });
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      if (f.json) io.stdout(`${JSON.stringify({ valid: false, error: errorReport(e) }, null, 2)}\n`);
      else io.stderr(formatFailure('attestation document did not verify', e));
      return EXIT_FAILED;
    }

    const j = toJson(result);
    io.stdout(f.json ? `${JSON.stringify(j, null, 2)}\n` : toText(j, at === 'document'));
    return EXIT_OK;
  });
}
