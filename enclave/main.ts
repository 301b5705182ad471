/**
 * The enclave process: picks its NSM, starts the signing workers, serves the
 * enclave API over the bridge. Everything that decides whether to sign lives
 * below this file and is therefore measured into PCR0/PCR2.
 */
import { existsSync, readFileSync } from 'node:fs';
import { serveBridge, type BridgeServer } from '../common/bridge/index.js';
import { SignerError } from '../common/errors.js';
import { MAX_FRAME_BYTES } from '../common/limits.js';
import type { SignOp } from '../common/protocol/enclave-api.js';
import { connect } from '../common/transport/index.js';
import { pinnedKeys } from './config.js';
import type { Nsm } from './nsm/nsm.js';
import { createPolicyGate } from './policy/gate.js';
import type { LoadedPolicy } from './policy/load.js';
import type { PolicyOp } from './policy/intent.js';
import { createEnclaveService, type EnclaveService } from './service.js';
import { createWorkerPool } from './worker-pool.js';

export const NSM_DEVICE = '/dev/nsm';

export interface EnclaveConfig {
  /** Bridge listen URI: vsock://4294967295:5000 on Nitro, unix:/… in dev. */
  listen: string;
  nsm: Nsm;
  /** allowedKeyArns: the CMKs pinned in measured configuration (enclave/config.ts); required, non-empty. */
  kms: { region: string; pipe: string; endpoint?: string; caPem?: string; allowedKeyArns: readonly string[] };
  workers?: number;
  /** Sign on the main thread when the signing pool is idle (enclave/worker-pool.ts "Inline"). Default true. */
  inline?: boolean;
  /** Decide a cheap job on a key a worker already authenticated before it reaches a worker (enclave/worker-pool.ts "Decided ahead"). Default true. */
  decideAhead?: boolean;
  /** The policy loaded at boot (enclave/policy/load.ts): from the measured image, --policy FILE, or the dev default. */
  policy: LoadedPolicy;
  denyOps?: SignOp[];
  log?: (line: string) => void;
}

export interface RunningEnclave {
  uri: string;
  service: EnclaveService;
  close(): Promise<void>;
}

/** Hardware NSM when /dev/nsm exists; the simulated one only when the caller asked for it by name. */
export async function chooseNsm(mode: 'auto' | 'hardware' | 'simulated', simulated: () => Promise<Nsm>): Promise<Nsm> {
  if (mode === 'simulated') return simulated();
  if (mode === 'hardware' || existsSync(NSM_DEVICE)) {
    // Loaded only when used: it needs the native addon. A literal path so the image bundle includes it.
    const { openHardwareNsm } = await import('./nsm/hardware.js');
    return openHardwareNsm();
  }
  throw new SignerError('NSM_UNAVAILABLE', `${NSM_DEVICE} does not exist: this is not a Nitro enclave`, {
    hint: 'for development pass --nsm simulated (documents are then signed by the dev CA, which production never trusts)',
  });
}

export async function startEnclave(cfg: EnclaveConfig): Promise<RunningEnclave> {
  const log = cfg.log ?? ((l: string) => process.stderr.write(`[enclave] ${l}\n`));
  // Checked before any worker starts: no pinned CMK, no enclave (enclave/config.ts).
  const pinned = pinnedKeys(cfg.kms.allowedKeyArns);
  log(`pinned CMK(s): ${pinned.arns.join(', ')}`);
  const gate = createPolicyGate(cfg.policy.policy, { source: cfg.policy.source, denyOps: (cfg.denyOps ?? []) as PolicyOp[] });
  log(`policy ${JSON.stringify(gate.policy.name)} sha256 ${gate.hash} (source: ${gate.source})`);
  const decideAhead = cfg.decideAhead !== false;
  const pool = createWorkerPool({ ...(cfg.workers !== undefined ? { size: cfg.workers } : {}), inline: cfg.inline !== false, decideAhead });
  const service = createEnclaveService({
    nsm: cfg.nsm,
    pool,
    policy: gate,
    kms: {
      region: cfg.kms.region,
      dial: () => connect(cfg.kms.pipe),
      ...(cfg.kms.endpoint ? { endpoint: cfg.kms.endpoint } : {}),
      ...(cfg.kms.caPem ? { ca: cfg.kms.caPem } : {}),
      allowedKeyArns: cfg.kms.allowedKeyArns,
    },
    log,
  });
  let server: BridgeServer;
  try {
    // The frame cap is common/limits.ts's, the one the parent enforces before sending (finding 2).
    server = await serveBridge(cfg.listen, service.handler, { role: 'enclave', maxFrameBytes: MAX_FRAME_BYTES });
  } catch (e) {
    await service.close();
    throw e;
  }
  log(`serving the enclave API on ${server.uri} (nsm: ${cfg.nsm.kind}, ${pool.size} signing workers${cfg.inline === false ? '' : ', inline when idle'}${decideAhead ? ', known keys decided ahead' : ''})`);
  return {
    uri: server.uri,
    service,
    async close() {
      await server.close();
      await service.close();
      cfg.nsm.close();
    },
  };
}

export function readPem(path: string | undefined): string | undefined {
  return path === undefined ? undefined : readFileSync(path, 'utf8');
}
