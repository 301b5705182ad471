/**
 * The production enclave program (what /app/enclave.mjs runs): reads the
 * measured configuration baked into the image beside the bundle, opens the
 * hardware NSM and serves the enclave API. It imports nothing from cli/ or
 * dev/: the simulated NSM and the dev CA are not in the image at all, so only
 * the dev command (`enclave-signer enclave --nsm simulated`) can reach them.
 *
 * Arguments are the image's `cmd` (itself measured): the bridge and KMS-pipe
 * addresses and the NSM mode, nothing that decides what the enclave trusts.
 * The pinned CMKs come only from the configuration file.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignerError } from '../common/errors.js';
import { registerVsockTransportFor } from '../common/transport/vsock.js';
import { readEnclaveConfig } from './config.js';
import { loadPolicyFile } from './policy/load.js';
import { chooseNsm, startEnclave, type RunningEnclave } from './main.js';

export const IMAGE_USAGE = `usage: /bin/node /app/enclave.mjs [--listen URI] [--kms-pipe URI] [--nsm auto|hardware]

The enclave program of the production image. The pinned CMK(s) and the KMS
region come from enclave-config.json beside this file, the signing policy from
policy.json beside it (both measured into PCR2).
  --listen URI    bridge to the parent (default vsock://4294967295:5000)
  --kms-pipe URI  the parent's KMS byte pipe (default vsock://3:8000)
  --nsm MODE      auto or hardware (default auto; this image has no simulated NSM)
`;

export interface ImageArgs {
  listen: string;
  kmsPipe: string;
  nsm: 'auto' | 'hardware';
}

export class ImageUsageError extends SignerError {}

/** Strict: each flag once, with a value; anything else is refused. */
export function parseImageArgs(argv: readonly string[]): ImageArgs {
  const out: ImageArgs = { listen: 'vsock://4294967295:5000', kmsPipe: 'vsock://3:8000', nsm: 'auto' };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (flag !== '--listen' && flag !== '--kms-pipe' && flag !== '--nsm') throw new ImageUsageError('IMAGE_USAGE', `unknown argument ${JSON.stringify(flag)}`);
    if (seen.has(flag)) throw new ImageUsageError('IMAGE_USAGE', `${flag} given twice`);
    seen.add(flag);
    if (value === undefined || value.startsWith('--')) throw new ImageUsageError('IMAGE_USAGE', `${flag} needs a value`);
    if (flag === '--listen') out.listen = value;
    else if (flag === '--kms-pipe') out.kmsPipe = value;
    else if (value === 'auto' || value === 'hardware') out.nsm = value;
    else throw new ImageUsageError('IMAGE_USAGE', `--nsm ${JSON.stringify(value)}: this image runs only the hardware NSM (auto or hardware); the simulated one exists only in the dev command`);
  }
  return out;
}

/** enclave-config.json beside the running bundle (/app/enclave-config.json in the image). */
export function defaultConfigPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'enclave-config.json');
}

/** policy.json beside the running bundle (/app/policy.json in the image, written by build-eif.sh --policy). */
export function defaultPolicyPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'policy.json');
}

export interface ImageOptions {
  configPath?: string;
  policyPath?: string;
  log?: (line: string) => void;
}

/** Starts the enclave from the image's configuration; throws (typed) when it cannot. */
export async function startImage(argv: readonly string[], opts: ImageOptions = {}): Promise<RunningEnclave> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[enclave] ${l}\n`));
  const args = parseImageArgs(argv);
  // First the configuration: an image without a pinned CMK never gets as far as the NSM.
  const config = readEnclaveConfig(opts.configPath ?? defaultConfigPath());
  // Then the policy, measured like the configuration: no policy (or an invalid one), no enclave.
  const policy = loadPolicyFile(opts.policyPath ?? defaultPolicyPath(), 'image');
  let nsm;
  try {
    nsm = await chooseNsm(args.nsm, () => {
      throw new ImageUsageError('IMAGE_USAGE', 'this image has no simulated NSM');
    });
  } catch (e) {
    // chooseNsm's hint is for the dev command; this image has no other NSM to offer.
    if (e instanceof SignerError && e.code === 'NSM_UNAVAILABLE') {
      throw new SignerError('NSM_UNAVAILABLE', e.message, { cause: e, hint: 'the production image runs only inside a Nitro enclave; for development use the enclave-signer dev command' });
    }
    throw e;
  }
  log(`NSM: ${nsm.kind}`);
  try {
    await registerVsockTransportFor([args.listen, args.kmsPipe]);
    return await startEnclave({
      listen: args.listen,
      nsm,
      kms: { region: config.kms.region, pipe: args.kmsPipe, allowedKeyArns: config.kms.allowedKeyArns, ...(config.kms.endpoint ? { endpoint: config.kms.endpoint } : {}) },
      policy,
      log,
    });
  } catch (e) {
    nsm.close();
    throw e;
  }
}

/** The whole program: start, run until SIGTERM/SIGINT, exit status (0 ok, 1 failed, 2 usage). */
export async function runImage(argv: readonly string[], opts: ImageOptions = {}): Promise<number> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[enclave] ${l}\n`));
  let running: RunningEnclave;
  try {
    running = await startImage(argv, { ...opts, log });
  } catch (e) {
    if (e instanceof SignerError) {
      log(`refusing to start: ${e.code}: ${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}`);
      if (e instanceof ImageUsageError) log(IMAGE_USAGE);
      return e instanceof ImageUsageError ? 2 : 1;
    }
    throw e;
  }
  return new Promise((resolve) => {
    const stop = (why: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      log(`${why}: shutting down`);
      running.close().then(
        () => resolve(0),
        (e: unknown) => {
          log(`shutdown error: ${(e as Error)?.message ?? String(e)}`);
          resolve(1);
        },
      );
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
}
