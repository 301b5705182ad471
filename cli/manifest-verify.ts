/** `enclave-signer manifest verify`: checks a signed manifest against keys the auditor trusts. */
import { SignerError } from '../common/errors.js';
import { MAX_SIGNED_MANIFEST_BYTES, verifySignedManifestDetailed, type VerifiedManifest } from '../attestation/manifest-signature.js';
import type { KeyObject } from 'node:crypto';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { EXIT_FAILED, EXIT_OK, UsageError, errorReport, formatFailure } from './errors.js';
import { readInputFile, type Io } from './io.js';
import { loadPublicKey } from './keys.js';

export const MANIFEST_VERIFY_USAGE = `Usage: enclave-signer manifest verify <signed.json|-> (--key <pub.pem> | --key-id <hex>)... [--allow-debug] [--json]

Verifies a signed PCR manifest offline. Trust comes only from the keys you
pass: the key embedded in the file is used only if its keyId matches one.

Options:
  --key <pub.pem>     trusted public key (repeatable)
  --key-id <hex>      trusted keyId: SHA-256 of the SPKI DER (repeatable)
  --allow-debug       accept a manifest whose matched PCR0/1/2 are all zero
  --json              print a JSON result on stdout
  -h, --help          show this help

Exit status: 0 valid, 1 invalid or untrusted, 2 usage error.
`;

const SPEC = {
  key: { type: 'string', multiple: true },
  'key-id': { type: 'string', multiple: true },
  'allow-debug': { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

function toText(v: VerifiedManifest): string {
  const m = v.manifest;
  const lines = [
    'OK: manifest signature verified',
    `  key          ${v.keyId} (${v.alg})`,
    `  image        ${m.image.name} ${m.image.version}`,
    `  commit       ${m.image.sourceCommit}`,
    `  eif sha256   ${m.image.eifSha256}`,
    `  created at   ${m.createdAt}`,
    `  match        ${m.match.map((i) => `PCR${i}`).join(', ')}`,
    '  PCRs',
    ...Object.entries(m.pcrs).map(([i, h]) => `    ${i.padStart(2)}  ${h}`),
  ];
  const bi = Object.entries(m.buildInputs);
  if (bi.length > 0) lines.push('  build inputs', ...bi.map(([k, val]) => `    ${k}: ${typeof val === 'object' ? JSON.stringify(val) : String(val)}`));
  return `${lines.join('\n')}\n`;
}

export async function manifestVerify(argv: string[], io: Io): Promise<number> {
  return guard(MANIFEST_VERIFY_USAGE, io, 'manifest did not verify', async () => {
    const args = parseArgs(argv, SPEC, { positionals: { min: 1, max: 1 } });
    if (args.help) {
      io.stdout(MANIFEST_VERIFY_USAGE);
      return EXIT_OK;
    }
    const f = args.flags;
    if (f.key.length + f['key-id'].length === 0) throw new UsageError('missing --key <pub.pem> (or --key-id <hex>): say which signer you trust');
    for (const id of f['key-id']) if (!/^[0-9a-fA-F]{64}$/.test(id)) throw new UsageError(`--key-id must be 64 hex characters, got ${JSON.stringify(id.slice(0, 70))}`);
    const trusted: (KeyObject | string)[] = [...f['key-id']];
    for (const p of f.key) trusted.push(await loadPublicKey(p, 'key'));
    const bytes = await readInputFile(args.positionals[0]!, 'signed manifest', MAX_SIGNED_MANIFEST_BYTES, io);

    let v: VerifiedManifest;
    try {
      v = verifySignedManifestDetailed(bytes, trusted, { allowDebug: f['allow-debug'] });
    } catch (e) {
      if (!(e instanceof SignerError)) throw e;
      if (f.json) io.stdout(`${JSON.stringify({ valid: false, error: errorReport(e) }, null, 2)}\n`);
      else io.stderr(formatFailure('manifest did not verify', e));
      return EXIT_FAILED;
    }
    io.stdout(f.json ? `${JSON.stringify({ valid: true, keyId: v.keyId, alg: v.alg, manifest: v.manifest }, null, 2)}\n` : toText(v));
    return EXIT_OK;
  });
}
