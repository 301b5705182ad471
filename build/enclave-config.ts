/**
 * build-eif.sh's writer of /app/enclave-config.json: validates the pinned
 * CMK(s) with the enclave's own parser (enclave/config.ts) and writes the
 * canonical JSON the image will measure. Same input, same bytes, same PCR2.
 *
 *   node enclave-config.mjs --out FILE (--kms-key-arn ARN… [--kms-region R] | --from FILE)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { enclaveConfigFor, parseEnclaveConfigText, type EnclaveImageConfig } from '../enclave/config.js';

export function buildEnclaveConfig(opts: { arns: readonly string[]; region?: string; fromText?: string }): string {
  let cfg: EnclaveImageConfig;
  if (opts.fromText !== undefined) {
    if (opts.arns.length > 0 || opts.region !== undefined) throw new Error('--enclave-config cannot be combined with --kms-key-arn/--kms-region');
    cfg = parseEnclaveConfigText(opts.fromText);
  } else {
    if (opts.arns.length === 0) throw new Error('no pinned CMK: pass --kms-key-arn ARN (repeatable) or --enclave-config FILE');
    cfg = enclaveConfigFor(opts.arns, opts.region === undefined ? {} : { region: opts.region });
  }
  // Canonical form, fixed key order: the file's bytes are measured.
  const canonical: EnclaveImageConfig = {
    format: cfg.format,
    version: cfg.version,
    kms: { region: cfg.kms.region, allowedKeyArns: [...cfg.kms.allowedKeyArns], ...(cfg.kms.endpoint ? { endpoint: cfg.kms.endpoint } : {}) },
  };
  return JSON.stringify(canonical, null, 2) + '\n';
}

function main(argv: string[]): number {
  let a;
  try {
    a = parseArgs({
      args: argv,
      options: { out: { type: 'string' }, 'kms-key-arn': { type: 'string', multiple: true }, 'kms-region': { type: 'string' }, from: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }).values;
    if (!a.out) throw new Error('--out is required');
    const text = buildEnclaveConfig({
      arns: a['kms-key-arn'] ?? [],
      ...(a['kms-region'] ? { region: a['kms-region'] } : {}),
      ...(a.from ? { fromText: readFileSync(a.from, 'utf8') } : {}),
    });
    writeFileSync(a.out, text, { mode: 0o644 });
    process.stdout.write(text);
    return 0;
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) process.exitCode = main(process.argv.slice(2));
