/**
 * Test fixture: real enclaves (startEnclave: bridge, simulated NSM, signing workers) against real
 * KMS (./real-kms.ts), each with a bridge peer in the parent's role, booted as the parent's boot
 * does — AWS credentials handed over, the audit log opened. It registers its own beforeAll and
 * afterAll: every enclave it booted is closed, then the KMS, then the directory is removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { connectBridge, type BridgePeer } from '../common/bridge/index.js';
import { cborToJson, jsonToCbor, type JsonLike } from '../common/cbor-json.js';
import { createDevCa, type DevCa } from '../dev/ca/index.js';
import { startEnclave, type EnclaveConfig, type RunningEnclave } from '../enclave/main.js';
import { createSimulatedNsm } from '../enclave/nsm/simulated.js';
import type { CompiledPolicy } from '../enclave/policy/document.js';
import { startRealKms, type RealKms, type TestCredentials } from './real-kms.js';

export interface BootedEnclave {
  enclave: RunningEnclave;
  peer: BridgePeer;
  /** One bridge request, its answer as JSON. */
  call(method: string, params: unknown): Promise<Record<string, unknown>>;
}

export interface RealEnclaves {
  readonly ca: DevCa;
  readonly real: RealKms;
  /** A new enclave life (socket `<name>.sock` in the fixture's directory): one worker unless `cfg` says otherwise. */
  boot(name: string, cfg?: Partial<Pick<EnclaveConfig, 'workers' | 'inline' | 'decideAhead'>>): Promise<BootedEnclave>;
}

export function realEnclaves(o: { image: string; credentials: TestCredentials; policy: CompiledPolicy; description: string }): RealEnclaves {
  let dir = '';
  let ca: DevCa | undefined;
  let real: RealKms | undefined;
  const running: { enclave: RunningEnclave; peer: BridgePeer }[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'es-real-enclaves-'));
    ca = createDevCa();
    real = await startRealKms({ dir, ca, image: o.image, credentials: o.credentials, description: o.description });
  });
  afterAll(async () => {
    for (const r of running) {
      r.peer.close();
      await r.enclave.close();
    }
    await real?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get ca() {
      return ca!;
    },
    get real() {
      return real!;
    },
    async boot(name, cfg = {}) {
      const enclave = await startEnclave({ listen: `unix:${join(dir, `${name}.sock`)}`, nsm: createSimulatedNsm({ ca: ca!, imageId: o.image }), kms: real!.enclaveKms, workers: 1, ...cfg, policy: { policy: o.policy, source: 'image' }, log: () => {} });
      const peer = await connectBridge(enclave.uri, { role: 'parent' });
      running.push({ enclave, peer });
      const call = async (method: string, params: unknown) => cborToJson(await peer.request(method, jsonToCbor(params as JsonLike))) as Record<string, unknown>;
      await call('credentials.set', { accessKeyId: o.credentials.accessKeyId, secretAccessKey: o.credentials.secretAccessKey });
      await call('audit.open', {});
      return { enclave, peer, call };
    },
  };
}
