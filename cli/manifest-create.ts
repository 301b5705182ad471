/** `enclave-signer manifest create`: writes an unsigned PCR manifest (CI runs it after building the EIF). */
import { AttestationError } from '../attestation/errors.js';
import { createManifest, type BuildInputs, type ManifestFields } from '../attestation/manifest-format.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { EXIT_OK, UsageError } from './errors.js';
import { writeOutputFile, type Io } from './io.js';
import { hexString, matchFlag } from './values.js';

export const MANIFEST_CREATE_USAGE = `Usage: enclave-signer manifest create --name <name> --version <version>
         --commit <sha> --eif-sha256 <hex> --pcr0 <hex> --pcr1 <hex> --pcr2 <hex>
         [--pcr8 <hex>] [--match 0,1,2] [--input key=value ...]
         [--created-at <ISO8601>] [--allow-debug] [--out <file>]

Creates an unsigned PCR manifest (JSON) for an enclave image. Sign it with
'enclave-signer manifest sign'. PCR values are 48 bytes of hex (any case,
optional 0x); they are stored lowercase.

Options:
  --name, --version        image name and release version
  --commit <sha>           git commit the image was built from (40 or 64 hex)
  --eif-sha256 <hex>       SHA-256 of the EIF file
  --pcr0/1/2/8 <hex>       PCR values (PCR8 only for signed EIFs)
  --match <list>           PCRs an enclave must match (default 0,1,2)
  --input <key=value>      a build input (repeatable):
                             lockfileSha256=<hex>   nodeRuntime=<pkg@version>
                             builder=<text>         sourceDateEpoch=<seconds>
                             baseImages.<name>=sha256:<hex>
                             blobs.<name>=<sha256 hex>   other.<name>=<text>
  --created-at <ISO8601>   creation time (default now; fix it for reproducible output)
  --allow-debug            allow all-zero PCR0/1/2 (debug enclaves; never in production)
  --out <file>             write here instead of stdout
  -h, --help               show this help

Exit status: 0 written, 2 usage error or invalid value.
`;

const SPEC = {
  name: { type: 'string' },
  version: { type: 'string' },
  commit: { type: 'string' },
  'eif-sha256': { type: 'string' },
  pcr0: { type: 'string' },
  pcr1: { type: 'string' },
  pcr2: { type: 'string' },
  pcr8: { type: 'string' },
  match: { type: 'string' },
  input: { type: 'string', multiple: true },
  'created-at': { type: 'string' },
  'allow-debug': { type: 'boolean' },
  out: { type: 'string' },
} as const;

/** `--input k=v` entries → typed build inputs (the manifest validates the values themselves). */
export function buildInputsFlag(values: string[]): BuildInputs {
  const out: BuildInputs = {};
  const seen = new Set<string>();
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--input must be key=value, got ${JSON.stringify(v.slice(0, 60))}`);
    const key = v.slice(0, eq);
    const value = v.slice(eq + 1);
    if (seen.has(key)) throw new UsageError(`--input ${key} given twice`);
    seen.add(key);
    const dot = key.indexOf('.');
    if (dot > 0) {
      const map = key.slice(0, dot) as 'baseImages' | 'blobs' | 'other';
      if (map !== 'baseImages' && map !== 'blobs' && map !== 'other') throw new UsageError(`unknown --input map ${JSON.stringify(key.slice(0, dot))} (baseImages, blobs, other)`);
      const rec = (out[map] ??= {});
      rec[key.slice(dot + 1)] = map === 'blobs' ? value.toLowerCase() : value;
      continue;
    }
    switch (key) {
      case 'lockfileSha256':
        out.lockfileSha256 = value.toLowerCase();
        break;
      case 'nodeRuntime':
      case 'builder':
        out[key] = value;
        break;
      case 'sourceDateEpoch':
        if (!/^\d{1,15}$/.test(value)) throw new UsageError(`--input sourceDateEpoch must be whole seconds, got ${JSON.stringify(value)}`);
        out.sourceDateEpoch = Number(value);
        break;
      default:
        throw new UsageError(`unknown --input key ${JSON.stringify(key)}`, {
          hint: 'known keys: lockfileSha256, nodeRuntime, builder, sourceDateEpoch, baseImages.<name>, blobs.<name>; free-form notes go in other.<name>',
        });
    }
  }
  return out;
}

export async function manifestCreate(argv: string[], io: Io): Promise<number> {
  return guard(MANIFEST_CREATE_USAGE, io, 'manifest could not be created', async () => {
    const args = parseArgs(argv, SPEC);
    if (args.help) {
      io.stdout(MANIFEST_CREATE_USAGE);
      return EXIT_OK;
    }
    const f = args.flags;
    const required = ['name', 'version', 'commit', 'eif-sha256', 'pcr0', 'pcr1', 'pcr2'] as const;
    const missing = required.filter((k) => f[k] === undefined);
    if (missing.length > 0) throw new UsageError(`missing ${missing.map((k) => `--${k}`).join(', ')}`);

    const commit = f.commit!.toLowerCase();
    if (!/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(commit)) throw new UsageError(`--commit must be a full git commit id (40 or 64 hex characters), got ${JSON.stringify(f.commit)}`);
    let createdAt: Date | undefined;
    if (f['created-at'] !== undefined) {
      createdAt = new Date(f['created-at']);
      if (!/^\d{4}-\d{2}-\d{2}T.*(?:Z|[+-]\d{2}:?\d{2})$/.test(f['created-at']) || Number.isNaN(createdAt.getTime())) {
        throw new UsageError(`--created-at must be an ISO 8601 time with a zone, got ${JSON.stringify(f['created-at'])}`);
      }
    }
    const fields: ManifestFields = {
      image: { name: f.name!, version: f.version!, sourceCommit: commit, eifSha256: hexString('eif-sha256', f['eif-sha256']!, 32) },
      pcrs: {
        0: hexString('pcr0', f.pcr0!, 48),
        1: hexString('pcr1', f.pcr1!, 48),
        2: hexString('pcr2', f.pcr2!, 48),
        ...(f.pcr8 !== undefined ? { 8: hexString('pcr8', f.pcr8, 48) } : {}),
      },
      buildInputs: buildInputsFlag(f.input),
      ...(createdAt ? { createdAt } : {}),
    };
    const match = matchFlag(f.match);
    if (match) fields.match = match;

    let text: string;
    try {
      text = `${JSON.stringify(createManifest(fields, { allowDebug: f['allow-debug'] }), null, 2)}\n`;
    } catch (e) {
      // The values came from flags: an invalid one is a usage error, with the manifest's precise reason.
      if (e instanceof AttestationError) throw new UsageError(e.message, e.hint === undefined ? {} : { hint: e.hint });
      throw e;
    }
    if (f.out === undefined) io.stdout(text);
    else {
      await writeOutputFile(f.out, text, { what: 'manifest' });
      io.stderr(`wrote unsigned manifest to ${f.out}\n`);
    }
    return EXIT_OK;
  });
}
