/**
 * The parent against the real enclave (enclave/main.ts: real bridge server,
 * simulated NSM, signing workers, real @aws-sdk/client-kms through the
 * parent's byte pipe to the KMS emulator). Proves the boot sequence with a
 * real attested KMS path: first boot creates the keyring, a new enclave life
 * unlocks it from the keystore, a disabled CMK keeps the parent not ready
 * until it is enabled again.
 */
import { DisableKeyCommand, EnableKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpcSocketProvider, Transaction } from 'ethers';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDevCa, type DevCa } from '../dev/ca/index.js';
import type { KmsEmulator } from '../dev/kms-emulator/index.js';
import { startEnclave, type RunningEnclave } from '../enclave/main.js';
import { createSimulatedNsm, simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import type { KmsPipe } from './kms-pipe.js';
import { startParent, type RunningParent } from './main.js';
import { devManifest, httpRequest, rpc, waitFor } from './test-helpers.js';
import { startRealKms, type RealKms } from '../test/real-kms.js';
import { loadDevPolicy } from '../enclave/policy/load.js';

vi.setConfig({ testTimeout: 60_000 });

const CREDS = { accessKeyId: 'AKIAPARENTE2E0000001', secretAccessKey: 'parent-e2e-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/parent' };
const IMAGE = 'enclave-signer-parent-e2e';

let dir: string;
let ca: DevCa;
let kms: KmsEmulator;
let pipe: KmsPipe;
let operator: KMSClient;
let cmk: string;
let real: RealKms;
let parent: RunningParent;
let enclave: RunningEnclave | undefined;
const logs: string[] = [];
const enclaveUri = () => `unix:${join(dir, 'enclave.sock')}`;

async function bootEnclave(): Promise<RunningEnclave> {
  return startEnclave({
    listen: enclaveUri(),
    nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
    kms: real.enclaveKms,
    workers: 1,
    policy: loadDevPolicy(),
    log: () => {},
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-parent-e2e-'));
  ca = createDevCa();
  real = await startRealKms({ dir, ca, image: IMAGE, credentials: CREDS, description: 'parent e2e' });
  ({ kms, pipe, operator, cmk } = real);

  enclave = await bootEnclave();
  const manifest = devManifest(simulatedImagePcrs(IMAGE));
  parent = await startParent({
    enclave: enclaveUri(),
    socket: join(dir, 'signer.sock'),
    keystore: join(dir, 'keystore.db'),
    root: ca.trustRoot,
    manifest: { signed: manifest.signed, trustedKeys: [manifest.publicKeyPem] },
    kmsKeyId: cmk,
    credentials: { kind: 'static', accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
    reconnect: { minMs: 50, maxMs: 300 },
    log: (l) => logs.push(l),
  });
});

afterAll(async () => {
  await parent?.close();
  await enclave?.close();
  await real?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('parent + real enclave + KMS emulator', () => {
  let address: Hex;

  it('first boot: attests, creates the keyring under the CMK, stores it, and signs', async () => {
    await waitFor(() => parent.state().ready, 30_000, `ready (logs: ${logs.join(' | ')})`);
    expect(parent.state().attestation?.manifest?.image.name).toBe('enclave-signer');
    expect(logs.some((l) => /keyring .* created under .* and stored/.test(l))).toBe(true);
    address = (await rpc(parent.socketPath, 'signer_createKey', { label: 'e2e' })).result.address;
    const provider = new IpcSocketProvider(parent.socketPath, 1);
    try {
      const signer = await provider.getSigner(address);
      const raw = await signer.signTransaction({ to: '0x000000000000000000000000000000000000dEaD', value: 1n, nonce: 0, gasLimit: 21000, chainId: 1, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n, type: 2 });
      expect(Transaction.from(raw).from).toBe(address);
    } finally {
      provider.destroy();
    }
    const status = (await rpc(parent.socketPath, 'signer_status')).result;
    expect(status.enclave).toMatchObject({ nsm: 'simulated', keyringId: parent.state().keyring.keyringId });
  });

  it('a new enclave life: the parent reconnects, re-attests, unlocks the stored keyring, and the same key signs', async () => {
    const attestations = parent.state().counters.attestationsOk;
    await enclave!.close();
    enclave = undefined;
    await waitFor(() => !parent.state().ready, 10_000, 'not ready while the enclave is down');
    const down = await rpc(parent.socketPath, 'personal_sign', ['0x6869', address]);
    expect(down.error?.message).toMatch(/^enclave not attested/);
    enclave = await bootEnclave();
    await waitFor(() => parent.state().ready, 30_000, 'ready again');
    expect(parent.state().counters.attestationsOk).toBeGreaterThan(attestations);
    const sig = await rpc(parent.socketPath, 'personal_sign', ['0x6869', address]);
    expect(await verifyMessage({ address, message: 'hi', signature: sig.result })).toBe(true);
  });

  it('a disabled CMK keeps the parent not ready with the KMS reason; enabling it heals without a restart', async () => {
    await operator.send(new DisableKeyCommand({ KeyId: cmk }));
    await enclave!.close();
    enclave = await bootEnclave();
    await waitFor(() => parent.state().keyring.state === 'failed', 30_000, 'keyring failed');
    const ready = await httpRequest(parent.socketPath, { method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).reason).toMatch(/^keyring not unlocked: failed: KMS_DISABLED/);
    expect((await rpc(parent.socketPath, 'personal_sign', ['0x6869', address])).error?.message).toMatch(/^keyring not unlocked/);
    await operator.send(new EnableKeyCommand({ KeyId: cmk }));
    await waitFor(() => parent.state().ready, 30_000, 'ready after enabling the CMK');
    expect((await rpc(parent.socketPath, 'personal_sign', ['0x6869', address])).result).toMatch(/^0x[0-9a-f]{130}$/);
  });
});

describe('finding 9 with the real enclave', () => {
  it('finding 9: the bridge drops right after keyring.create answered, before the parent stored it → the parent stores the enclave\'s keyring and gets ready', async () => {
    const realPath = join(dir, 'enclave-f9.sock');
    const proxyPath = join(dir, 'enclave-f9-proxy.sock');
    const e9 = await startEnclave({
      listen: `unix:${realPath}`,
      nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
      kms: { region: 'us-east-1', pipe: pipe.uri, endpoint: `https://localhost:${kms.port}`, caPem: kms.caPem!, allowedKeyArns: [cmk] },
      workers: 1,
      policy: loadDevPolicy(),
      log: () => {},
    });
    // The hostile host between parent and enclave: loses the frame that carries the new keyring record, once.
    let dropped = 0;
    const proxy = createNetServer((fromParent) => {
      const toEnclave = netConnect({ path: realPath });
      fromParent.on('error', () => toEnclave.destroy());
      toEnclave.on('error', () => fromParent.destroy());
      fromParent.on('close', () => toEnclave.destroy());
      toEnclave.on('close', () => fromParent.destroy());
      fromParent.pipe(toEnclave);
      toEnclave.on('data', (chunk: Buffer) => {
        if (dropped === 0 && chunk.includes('enclave-signer/keyring')) {
          dropped++;
          fromParent.destroy();
          toEnclave.destroy();
          return;
        }
        fromParent.write(chunk);
      });
    });
    await new Promise<void>((r) => proxy.listen(proxyPath, r));
    const logs9: string[] = [];
    const manifest = devManifest(simulatedImagePcrs(IMAGE));
    const p9 = await startParent({
      enclave: `unix:${proxyPath}`,
      socket: join(dir, 'signer-f9.sock'),
      keystore: join(dir, 'keystore-f9.db'),
      root: ca.trustRoot,
      manifest: { signed: manifest.signed, trustedKeys: [manifest.publicKeyPem] },
      kmsKeyId: cmk,
      credentials: { kind: 'static', accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
      reconnect: { minMs: 50, maxMs: 300 },
      log: (l) => logs9.push(l),
    });
    try {
      await waitFor(() => p9.state().ready, 30_000, 'ready after the lost answer').catch((e: Error) => {
        throw new Error(`${e.message}; keyring: ${JSON.stringify(p9.state().keyring)}`);
      });
      expect(dropped).toBe(1);
      expect(logs9.join('\n')).toMatch(/already unlocked in the enclave and is now stored/);
      const status = (await rpc(p9.socketPath, 'signer_status')).result;
      expect(status.enclave.keyringId).toBe(p9.state().keyring.keyringId);
      const address = (await rpc(p9.socketPath, 'signer_createKey', { label: 'f9' })).result.address as Hex;
      const sig = await rpc(p9.socketPath, 'personal_sign', ['0x6869', address]);
      expect(await verifyMessage({ address, message: 'hi', signature: sig.result })).toBe(true);
    } finally {
      await p9.close();
      await new Promise<void>((r) => proxy.close(() => r()));
      await e9.close();
    }
  });
});
