/**
 * The `enclave-signer dev` program: the whole appliance locally (dev stack
 * from dev/stack.ts plus the parent from parent/main.ts), started from one
 * typed config. cli/dev.ts owns the command line; this module never reads argv.
 */
import { join } from 'node:path';
import { startParent, type RunningParent } from '../parent/main.js';
import { DEV_CREDENTIALS, devBanner, repoRoot, startDevInfra, type DevInfra } from './stack.js';

export interface DevApplianceConfig {
  /** State directory; default <repo>/.dev-data. A rerun over the same directory serves the same keys. */
  dataDir?: string;
  /** Signing socket; default <dataDir>/signer.sock. */
  socket?: string;
  /** Also serve JSON-RPC over loopback HTTP ("127.0.0.1:PORT"). */
  http?: string;
  /** The chain the signer serves (eth_chainId, net_version, the eth_signTransaction check); none by default. */
  chainId?: number;
  /** Proxy mode: the Ethereum node's JSON-RPC URL (parent/downstream-methods.ts). */
  downstream?: string;
  /** Signing operations the enclave refuses (shows a policy denial). */
  denyOps?: readonly string[];
  /** The enclave's policy file (absolute); absent: the permissive dev policy. */
  policy?: string;
  /** The dev stack's own lines. */
  log: (line: string) => void;
  /** The parent's lines. */
  parentLog: (line: string) => void;
}

export interface RunningDevAppliance {
  socketPath: string;
  httpUrl: string | undefined;
  dataDir: string;
  enclavePid: number | undefined;
  /** The loud DEV MODE banner with the endpoints and PCRs. */
  banner: string;
  close(): Promise<void>;
}

function parentFor(infra: DevInfra, config: DevApplianceConfig): Promise<RunningParent> {
  return startParent({
    enclave: infra.enclave.uri,
    socket: config.socket ?? join(infra.paths.dataDir, 'signer.sock'),
    ...(config.http ? { http: config.http } : {}),
    keystore: infra.paths.keystore,
    root: infra.ca.trustRoot, // the dev CA, trusted here only because dev mode says so
    manifest: { signed: infra.manifest, trustedKeys: [infra.releasePublicPem] },
    kmsKeyId: infra.cmkArn,
    credentials: { kind: 'static', ...DEV_CREDENTIALS },
    log: config.parentLog,
    ...(config.chainId === undefined ? {} : { chainId: config.chainId }),
    ...(config.downstream === undefined ? {} : { downstream: config.downstream }),
  });
}

export async function startDevAppliance(config: DevApplianceConfig): Promise<RunningDevAppliance> {
  const dataDir = config.dataDir ?? join(repoRoot(), '.dev-data');
  const infra = await startDevInfra(dataDir, config.log, { denyOps: config.denyOps ?? [], ...(config.policy ? { policy: config.policy } : {}) });
  let parent: RunningParent;
  try {
    parent = await parentFor(infra, config);
  } catch (e) {
    await infra.close();
    throw e;
  }
  const banner = devBanner({
    socketPath: parent.socketPath,
    ...(parent.httpUrl ? { httpUrl: parent.httpUrl } : {}),
    pcrs: infra.pcrs,
    dataDir: infra.paths.dataDir,
    kmsUrl: infra.kms.url,
    manifest: infra.paths.manifest,
    policy: config.policy ?? null,
  });
  return {
    socketPath: parent.socketPath,
    httpUrl: parent.httpUrl,
    dataDir: infra.paths.dataDir,
    enclavePid: infra.enclave.pid,
    banner,
    async close() {
      await parent.close();
      await infra.close();
    },
  };
}
