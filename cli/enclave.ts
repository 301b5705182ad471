/**
 * `enclave-signer enclave`: the process that runs inside the Nitro enclave
 * (or, in development, beside the parent with the simulated NSM).
 */
import { readFileSync } from 'node:fs';
import { SIGN_OPS, type SignOp } from '../common/protocol/enclave-api.js';
import { registerVsockTransportFor } from '../common/transport/vsock.js';
import { EnclaveConfigError, enclaveConfigFor, readEnclaveConfig, type EnclaveImageConfig } from '../enclave/config.js';
import { chooseNsm, startEnclave } from '../enclave/main.js';
import { loadDevPolicy, loadPolicyFile, type LoadedPolicy } from '../enclave/policy/load.js';
import { parseArgs } from './args.js';
import { guard } from './command.js';
import { UsageError } from './errors.js';
import type { Io } from './io.js';
import { untilSignal } from './run-until-signal.js';

export const ENCLAVE_USAGE = `Usage: enclave-signer enclave [options]

Runs the enclave side: NSM, KMS client (TLS ends here), keyring, signing workers.

Options:
  --listen URI         bridge to the parent (default vsock://4294967295:5000; unix:/path or tcp://127.0.0.1:PORT in dev)
  --nsm MODE           auto (default: hardware when /dev/nsm exists, else refuse), hardware, simulated
  --dev-ca DIR         dev CA directory for --nsm simulated
  --image-id ID        simulated image identity (seeds PCR0/1/2) for --nsm simulated
  --kms-key-arn ARN    pin this CMK (full key ARN): the only keys a keyring may live under (repeatable;
                       required unless --enclave-config). NOT measured here: the production image
                       reads them from its measured /app/enclave-config.json instead
  --enclave-config F   read the pinned CMKs and region from an enclave configuration file
  --kms-region R       AWS region (default: the pinned ARNs' region, else us-east-1)
  --kms-pipe URI       where the parent's KMS byte pipe listens (default vsock://3:8000)
  --kms-endpoint URL   KMS endpoint (default https://kms.<region>.amazonaws.com)
  --kms-ca FILE        extra trust anchor PEM for the KMS endpoint (dev emulator only)
  --workers N          signing worker threads (default: one per vCPU)
  --inline-signing on|off  sign on the main thread when every worker is idle (default on:
                       saves four thread hand-offs per request at low load; docs/enclave.md)
  --decide-ahead on|off  decide a cheap job on a key a worker has already authenticated before it
                       reaches a worker (default on: two thread hand-offs instead of four; docs/enclave.md)
  --policy FILE        the signing policy (docs/policy.md); invalid → refuse to start. Without it,
                       --nsm simulated runs the permissive dev policy (DEV MODE); otherwise the
                       enclave refuses to start (the production image reads its measured /app/policy.json)
  --deny-op OP         refuse this signing operation (repeatable)
  -h, --help           this help
`;

const SPEC = {
  listen: { type: 'string' },
  nsm: { type: 'string' },
  'dev-ca': { type: 'string' },
  'image-id': { type: 'string' },
  'kms-key-arn': { type: 'string', multiple: true },
  'enclave-config': { type: 'string' },
  'kms-region': { type: 'string' },
  'kms-pipe': { type: 'string' },
  'kms-endpoint': { type: 'string' },
  'kms-ca': { type: 'string' },
  workers: { type: 'string' },
  'inline-signing': { type: 'string' },
  'decide-ahead': { type: 'string' },
  'deny-op': { type: 'string', multiple: true },
  policy: { type: 'string' },
} as const;

export async function enclave(argv: string[], io: Io): Promise<number> {
  return guard(ENCLAVE_USAGE, io, 'enclave', async () => {
    const a = parseArgs(argv, SPEC);
    if (a.help) {
      io.stdout(ENCLAVE_USAGE);
      return 0;
    }
    const f = a.flags;
    const mode = f.nsm ?? 'auto';
    if (mode !== 'auto' && mode !== 'hardware' && mode !== 'simulated') throw new UsageError(`--nsm must be auto, hardware or simulated`);
    if (mode === 'simulated' && !f['dev-ca']) throw new UsageError('--nsm simulated needs --dev-ca DIR');
    const workers = f.workers === undefined ? undefined : Number(f.workers);
    if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 256)) throw new UsageError('--workers must be 1..256');
    const inline = f['inline-signing'];
    if (inline !== undefined && inline !== 'on' && inline !== 'off') throw new UsageError('--inline-signing must be on or off');
    const ahead = f['decide-ahead'];
    if (ahead !== undefined && ahead !== 'on' && ahead !== 'off') throw new UsageError('--decide-ahead must be on or off');
    for (const op of f['deny-op']) if (!SIGN_OPS.includes(op as SignOp)) throw new UsageError(`--deny-op: unknown operation ${op}`);
    if (f['kms-key-arn'].length > 0 && f['enclave-config']) throw new UsageError('pass either --kms-key-arn or --enclave-config, not both');
    if (f['kms-key-arn'].length === 0 && !f['enclave-config']) {
      throw new UsageError('no pinned CMK: pass --kms-key-arn ARN (repeatable) or --enclave-config FILE; an enclave that accepts any CMK could adopt a keyring whose data key the host knows');
    }
    let pinned: EnclaveImageConfig;
    try {
      pinned = f['enclave-config']
        ? readEnclaveConfig(f['enclave-config'])
        : enclaveConfigFor(f['kms-key-arn'], f['kms-region'] ? { region: f['kms-region'] } : {});
    } catch (e) {
      if (e instanceof EnclaveConfigError) throw new UsageError(e.message.replace(/kms\.allowedKeyArns\[(\d+)\]/, (_m, i: string) => (f['enclave-config'] ? `kms.allowedKeyArns[${i}]` : `--kms-key-arn #${Number(i) + 1}`)));
      throw e;
    }
    const log = (l: string) => io.stderr(`[enclave] ${l}\n`);
    const policy = choosePolicy(f.policy, mode, log);
    if (!f['enclave-config']) log('pinned CMK(s) from the command line: not measured (dev); the image pins them in its measured /app/enclave-config.json');
    const listenUri = f.listen ?? 'vsock://4294967295:5000';
    const pipeUri = f['kms-pipe'] ?? 'vsock://3:8000';
    await registerVsockTransportFor([listenUri, pipeUri]);

    const nsm = await chooseNsm(mode, async () => {
      const { loadOrCreateDevCa } = await import('../dev/ca/index.js');
      const { createSimulatedNsm } = await import('../enclave/nsm/simulated.js');
      log('DEV MODE: simulated NSM — attestation documents are signed by the dev CA, which production never trusts');
      return createSimulatedNsm({ ca: loadOrCreateDevCa(f['dev-ca']!), ...(f['image-id'] ? { imageId: f['image-id'] } : {}) });
    });
    log(`NSM: ${nsm.kind}`);
    if (f['kms-region'] && f['kms-region'] !== pinned.kms.region) throw new UsageError(`--kms-region ${f['kms-region']} differs from the configuration's region ${pinned.kms.region}`);
    const region = pinned.kms.region;
    const endpoint = f['kms-endpoint'] ?? pinned.kms.endpoint;
    const running = await startEnclave({
      listen: listenUri,
      nsm,
      kms: {
        region,
        pipe: pipeUri,
        ...(endpoint ? { endpoint } : {}),
        ...(f['kms-ca'] ? { caPem: readFileSync(f['kms-ca'], 'utf8') } : {}),
        allowedKeyArns: pinned.kms.allowedKeyArns,
      },
      ...(workers ? { workers } : {}),
      ...(inline ? { inline: inline === 'on' } : {}),
      ...(ahead ? { decideAhead: ahead === 'on' } : {}),
      policy,
      denyOps: f['deny-op'] as SignOp[],
      log,
    });
    return untilSignal(() => running.close(), log);
  });
}

/** --policy FILE, else the permissive dev policy — only with the simulated NSM (dev). */
function choosePolicy(file: string | undefined, mode: string, log: (l: string) => void): LoadedPolicy {
  if (file !== undefined) {
    try {
      return loadPolicyFile(file);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  if (mode !== 'simulated') {
    throw new UsageError('no signing policy: pass --policy FILE (the production image reads its measured /app/policy.json); the permissive dev policy runs only with --nsm simulated');
  }
  log('DEV MODE: no --policy: running the permissive dev policy (dev-permissive: allows every request from any caller; docs/policy.md)');
  return loadDevPolicy();
}
