/**
 * The mission's core promise, end to end with real parts: the enclave (real
 * bridge, simulated NSM, signing workers) reaches the KMS emulator only
 * through the parent's byte pipe, does TLS itself, and the unmodified
 * @aws-sdk/client-kms unwraps the keyring only when the enclave's PCRs match
 * the key policy.
 */
import {
  CreateKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  KMSClient,
} from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recoverTransactionAddress, parseTransaction } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBridge, type BridgePeer } from '../../common/bridge/index.js';
import { cborToJson, jsonToCbor } from '../../common/cbor-json.js';
import { toHex } from '../../common/bytes.js';
import { createDevCa, type DevCa } from '../../dev/ca/index.js';
import { startKmsEmulator, type KmsEmulator } from '../../dev/kms-emulator/index.js';
import { startKmsPipe, type KmsPipe } from '../../parent/kms-pipe.js';
import { startEnclave, type RunningEnclave } from '../main.js';
import { createSimulatedNsm, simulatedImagePcrs } from '../nsm/simulated.js';
import { rewrapKeyring } from './keyring.js';
import { loadDevPolicy } from '../policy/load.js';

const CREDS = { accessKeyId: 'AKIAINTEGRATION00001', secretAccessKey: 'integration-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/parent' };
const IMAGE = 'enclave-signer-test-image';

let dir: string;
let ca: DevCa;
let kms: KmsEmulator;
let pipe: KmsPipe;
let operator: KMSClient;
/** The CMKs an enclave started here pins (as its image would): every CMK this test made. */
const pinned: string[] = [];

function policyFor(pcr0Hex: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'operator', Effect: 'Allow', Principal: { AWS: CREDS.principalArn }, Action: ['kms:CreateKey', 'kms:DescribeKey', 'kms:PutKeyPolicy', 'kms:GetKeyPolicy', 'kms:EnableKey', 'kms:DisableKey', 'kms:ReEncrypt*'], Resource: '*' },
      {
        Sid: 'enclave-only',
        Effect: 'Allow',
        Principal: { AWS: CREDS.principalArn },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: '*',
        Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0Hex } },
      },
    ],
  });
}

async function newCmk(pcr0Hex: string): Promise<string> {
  const out = await operator.send(new CreateKeyCommand({ Policy: policyFor(pcr0Hex), Description: 'integration' }));
  pinned.push(out.KeyMetadata!.Arn!);
  return out.KeyMetadata!.Arn!;
}

async function bootEnclave(imageId: string, name: string): Promise<{ enclave: RunningEnclave; peer: BridgePeer }> {
  const nsm = createSimulatedNsm({ ca, imageId });
  const enclave = await startEnclave({
    listen: `unix:${join(dir, `${name}.sock`)}`,
    nsm,
    kms: { region: 'us-east-1', pipe: pipe.uri, endpoint: `https://localhost:${kms.port}`, caPem: kms.caPem!, allowedKeyArns: [...pinned] },
    workers: 2,
    policy: loadDevPolicy(),
    log: () => {},
  });
  const peer = await connectBridge(enclave.uri, { role: 'parent' });
  await call(peer, 'credentials.set', { accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey });
  await call(peer, 'audit.open', {}); // as the parent's boot does (docs/audit.md)
  return { enclave, peer };
}

async function call(peer: BridgePeer, method: string, params: unknown): Promise<Record<string, unknown>> {
  return cborToJson(await peer.request(method, jsonToCbor(params))) as Record<string, unknown>;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-keyring-'));
  ca = createDevCa();
  const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);
  kms = await startKmsEmulator({
    dataDir: join(dir, 'kms'),
    credentials: [CREDS],
    attestationRoot: ca.trustRoot,
    tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem },
  });
  pipe = await startKmsPipe({
    listen: `unix:${join(dir, 'kms-pipe.sock')}`,
    target: { address: '127.0.0.1', port: kms.port },
    allowlist: [{ address: '127.0.0.1', port: kms.port }],
  });
  operator = new KMSClient({
    region: 'us-east-1',
    endpoint: kms.url,
    credentials: { accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: kms.caPem! }) }),
  });
});

afterAll(async () => {
  operator?.destroy();
  await pipe?.close();
  await kms?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('keyring through the attested KMS path', () => {
  const pcr0 = toHex(simulatedImagePcrs(IMAGE).get(0)!);
  let record: Record<string, unknown>;
  let key: Record<string, unknown>;
  let cmk: string;
  let moved: Parameters<typeof rewrapKeyring>[1];

  it('creates a keyring and a key; the key signs a transaction a real client verifies', async () => {
    cmk = await newCmk(pcr0);
    const { enclave, peer } = await bootEnclave(IMAGE, 'a');
    try {
      record = (await call(peer, 'keyring.create', { kmsKeyId: cmk })).record as Record<string, unknown>;
      // As the parent's boot does: the sealed state comes back before anything is decided.
      await call(peer, 'state.restore', { record: null });
      expect(record.kmsKeyId).toBe(cmk);
      expect(record.dataKeyCiphertext).toBeInstanceOf(Uint8Array);
      const { audit: _audit, ...made } = await call(peer, 'key.create', { kind: 'secp256k1' });
      expect(_audit).toHaveLength(1); // the decision's signed record (docs/audit.md)
      key = made;
      expect(key.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
      const tx = { type: 'eip1559', chainId: 1, nonce: 0, to: '0x000000000000000000000000000000000000dEaD', value: '0x1', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1' };
      const signed = await call(peer, 'sign', { op: 'eth_signTransaction', key, request: { tx } });
      const raw = (signed.result as Record<string, unknown>).raw as `0x${string}`;
      expect(signed.signer).toMatchObject({ keyId: key.keyId, address: key.address });
      expect(await recoverTransactionAddress({ serializedTransaction: raw as never })).toBe(key.address);
      expect(parseTransaction(raw).chainId).toBe(1);
    } finally {
      peer.close();
      await enclave.close();
    }
  });

  it('a new enclave life with the same image unlocks the keyring and signs with the same key', async () => {
    const { enclave, peer } = await bootEnclave(IMAGE, 'b');
    try {
      await call(peer, 'keyring.unlock', { record });
      await call(peer, 'state.restore', { record: null });
      const sig = await call(peer, 'sign', { op: 'personal_sign', key, request: { message: 'hello' } });
      expect(typeof (sig.result as Record<string, unknown>).signature).toBe('string');
    } finally {
      peer.close();
      await enclave.close();
    }
  });

  it('an enclave with another PCR0 is denied by KMS and cannot sign', async () => {
    const { enclave, peer } = await bootEnclave('some-other-image', 'c');
    try {
      const e = await failure(call(peer, 'keyring.unlock', { record }));
      expect(e.code).toBe('KMS_ACCESSDENIED');
      const s = await failure(call(peer, 'sign', { op: 'personal_sign', key, request: { message: 'x' } }));
      expect(s.code).toBe('KEYRING_LOCKED');
    } finally {
      peer.close();
      await enclave.close();
    }
  });

  it('disabling the CMK freezes the keyring; re-enabling thaws it', async () => {
    await operator.send(new DisableKeyCommand({ KeyId: cmk }));
    const { enclave, peer } = await bootEnclave(IMAGE, 'd');
    try {
      expect((await failure(call(peer, 'keyring.unlock', { record }))).code).toBe('KMS_DISABLED');
      await operator.send(new EnableKeyCommand({ KeyId: cmk }));
      await call(peer, 'keyring.unlock', { record });
    } finally {
      peer.close();
      await enclave.close();
    }
  });

  it('after ReEncrypt to a new CMK the keyring unlocks with the old CMK disabled', async () => {
    const cmk2 = await newCmk(pcr0);
    const asRecord = { ...record, dataKeyCiphertext: record.dataKeyCiphertext as Uint8Array } as Parameters<typeof rewrapKeyring>[1];
    moved = await rewrapKeyring(operator, asRecord, cmk2);
    expect(moved.kmsKeyId).toBe(cmk2);
    await operator.send(new DisableKeyCommand({ KeyId: cmk }));
    const { enclave, peer } = await bootEnclave(IMAGE, 'e');
    try {
      await call(peer, 'keyring.unlock', { record: moved });
      await call(peer, 'state.restore', { record: null });
      const sig = await call(peer, 'sign', { op: 'signer_signDigest', key, request: { digest: '0x' + '11'.repeat(32) } });
      expect((sig.result as Record<string, unknown>).r).toBeTruthy();
    } finally {
      peer.close();
      await enclave.close();
    }
  });

  it('a tampered keyring ciphertext is rejected by KMS', async () => {
    const bad = new Uint8Array(moved.dataKeyCiphertext);
    bad[bad.length - 1]! ^= 1;
    const { enclave, peer } = await bootEnclave(IMAGE, 'f');
    try {
      const e = await failure(call(peer, 'keyring.unlock', { record: { ...moved, dataKeyCiphertext: bad } }));
      expect(e.code).toBe('KMS_INVALIDCIPHERTEXT');
    } finally {
      peer.close();
      await enclave.close();
    }
  });
});
