/**
 * Entry point of the enclave image (bundled to /app/enclave.mjs by
 * build-eif.sh; its worker to /app/worker.mjs). Arguments come from the
 * image's `cmd`; defaults are the production ones (hardware NSM, vsock).
 *
 * The image's composition root: it imports only enclave/, common/ and native/
 * code, never cli/ or dev/, so the dev CA and the simulated NSM are not in
 * the measured image (build/bundle-contents.test.ts checks the bundle).
 * `--nsm simulated` is refused here; development runs `enclave-signer
 * enclave --nsm simulated` (cli/enclave.ts) instead.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SignerError } from '../common/errors.js';
import { SIGN_OPS, type SignOp } from '../common/protocol/enclave-api.js';
import { registerVsockTransportFor } from '../common/transport/vsock.js';
import { chooseNsm, startEnclave } from './main.js';

const log = (l: string) => process.stderr.write(`[enclave] ${l}\n`);

function usage(message: string): never {
  throw new SignerError('ENCLAVE_USAGE', message);
}

async function main(argv: string[]): Promise<number> {
  const { values: f } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string' },
      nsm: { type: 'string' },
      'kms-region': { type: 'string' },
      'kms-pipe': { type: 'string' },
      'kms-endpoint': { type: 'string' },
      'kms-ca': { type: 'string' },
      workers: { type: 'string' },
      'deny-op': { type: 'string', multiple: true },
    },
  });
  const mode = f.nsm ?? 'auto';
  if (mode !== 'auto' && mode !== 'hardware') usage(`--nsm must be auto or hardware in the enclave image (got ${JSON.stringify(mode)})`);
  const workers = f.workers === undefined ? undefined : Number(f.workers);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 256)) usage('--workers must be 1..256');
  const denyOps = f['deny-op'] ?? [];
  for (const op of denyOps) if (!SIGN_OPS.includes(op as SignOp)) usage(`--deny-op: unknown operation ${op}`);
  const listenUri = f.listen ?? 'vsock://4294967295:5000';
  const pipeUri = f['kms-pipe'] ?? 'vsock://3:8000';
  await registerVsockTransportFor([listenUri, pipeUri]);

  const nsm = await chooseNsm(mode, () => Promise.reject(new SignerError('NSM_UNAVAILABLE', 'the enclave image has no simulated NSM')));
  log(`NSM: ${nsm.kind}`);
  const region = f['kms-region'] ?? 'us-east-1';
  const running = await startEnclave({
    listen: listenUri,
    nsm,
    kms: {
      region,
      pipe: pipeUri,
      ...(f['kms-endpoint'] ? { endpoint: f['kms-endpoint'] } : {}),
      ...(f['kms-ca'] ? { caPem: readFileSync(f['kms-ca'], 'utf8') } : {}),
    },
    ...(workers ? { workers } : {}),
    denyOps: denyOps as SignOp[],
    log,
  });
  return new Promise((resolve) => {
    const stop = (why: string) => {
      log(`${why}: shutting down`);
      running.close().then(
        () => resolve(0),
        (e: unknown) => {
          log(`shutdown error: ${(e as Error)?.message ?? String(e)}`);
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  log(`error: ${(e as Error)?.message ?? String(e)}`);
  const code = (e as { code?: unknown })?.code;
  const isUsage = code === 'ENCLAVE_USAGE' || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
  process.exitCode = isUsage ? 2 : 1;
}
