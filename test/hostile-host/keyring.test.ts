/**
 * Issue 8, finding 1, played as the hostile host: the parent host (root on
 * the EC2 instance, its IAM role's KMS permissions, the keystore, the bridge)
 * tries to make the enclave adopt a keyring whose data key the host knows.
 *
 * Real parts throughout: the enclave (bridge, simulated NSM, signing
 * workers) reaches the KMS emulator only through the parent's byte pipe and
 * does TLS itself; the host drives KMS with the unmodified AWS SDK. The
 * enclave pins one CMK (PINNED), as its measured configuration would.
 */
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBridge, type BridgePeer } from '../../common/bridge/index.js';
import { cborToJson, jsonToCbor } from '../../common/cbor-json.js';
import { createDevCa, type DevCa } from '../../dev/ca/index.js';
import type { KmsEmulator } from '../../dev/kms-emulator/index.js';
import { pinnedKeys } from '../../enclave/config.js';
import type { AttestedKms } from '../../enclave/kms/attested.js';
import { unlockKeyring } from '../../enclave/kms/keyring.js';
import { unwrapKey } from '../../enclave/kms/wrapped-key.js';
import { startEnclave, type RunningEnclave } from '../../enclave/main.js';
import { createSimulatedNsm } from '../../enclave/nsm/simulated.js';
import { addressFromPrivateKey } from '../../enclave/signers/index.js';
import type { KmsPipe } from '../../parent/kms-pipe.js';
import { imageKeyPolicy, keyringRecord, startKmsBehindPipe } from '../real-kms.js';
import { loadDevPolicy } from '../../enclave/policy/load.js';

const HOST = { accessKeyId: 'AKIAHOSTILEHOST00001', secretAccessKey: 'hostile-host-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/enclave-parent' };
const IMAGE = 'enclave-signer-hostile-host';
const EC_KEY = 'enclave-signer:keyring';

let dir: string;
let ca: DevCa;
let kms: KmsEmulator;
let pipe: KmsPipe;
let host: KMSClient;
/** The CMK the image pins: Decrypt/GenerateDataKey only for an attested enclave of IMAGE. */
let PINNED: string;
/** A CMK the host controls outright (the account's default key policy: kms:* to the account). */
let HOST_CMK: string;
const running: { enclave: RunningEnclave; peer: BridgePeer }[] = [];

async function bootEnclave(name: string): Promise<BridgePeer> {
  const enclave = await startEnclave({
    listen: `unix:${join(dir, `${name}.sock`)}`,
    nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
    kms: { region: 'us-east-1', pipe: pipe.uri, endpoint: `https://localhost:${kms.port}`, caPem: kms.caPem!, allowedKeyArns: [PINNED] },
    workers: 1,
    policy: loadDevPolicy(),
    log: () => {},
  });
  const peer = await connectBridge(enclave.uri, { role: 'parent' });
  running.push({ enclave, peer });
  await call(peer, 'credentials.set', { accessKeyId: HOST.accessKeyId, secretAccessKey: HOST.secretAccessKey });
  // As the parent's boot does: the audit log opens before any keyring decision (docs/audit.md).
  await call(peer, 'audit.open', {});
  return peer;
}

async function call(peer: BridgePeer, method: string, params: unknown): Promise<Record<string, unknown>> {
  return cborToJson(await peer.request(method, jsonToCbor(params))) as Record<string, unknown>;
}

async function outcome(p: Promise<unknown>): Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    return { ok: false, code: (e as { code: string }).code, message: (e as Error).message };
  }
}

/** What the host does on its own: GenerateDataKey WITHOUT Recipient, so it gets the plaintext data key. */
async function hostMadeDataKey(keyId: string, keyringId: string): Promise<{ plaintext: Uint8Array; ciphertext: Uint8Array }> {
  const out = await host.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { [EC_KEY]: keyringId } }));
  return { plaintext: out.Plaintext!, ciphertext: out.CiphertextBlob! };
}

/** The host's attempt to recover a private key from its blob with a data key it knows. */
function hostRecovers(dataKey: Uint8Array, keyringId: string, key: Record<string, unknown>): string | undefined {
  try {
    const secret = unwrapKey(dataKey, { keyringId, keyId: key.keyId as string, kind: 'secp256k1' }, key.blob as Uint8Array);
    return addressFromPrivateKey(secret);
  } catch {
    return undefined;
  }
}

const record = keyringRecord;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-hostile-keyring-'));
  ca = createDevCa();
  ({ kms, pipe, client: host } = await startKmsBehindPipe({ dir, ca, credentials: HOST, maxAttempts: 1 }));
  const policy = imageKeyPolicy(HOST, IMAGE, ['kms:DescribeKey', 'kms:PutKeyPolicy', 'kms:GetKeyPolicy']);
  PINNED = (await host.send(new CreateKeyCommand({ Policy: policy, Description: 'pinned keyring CMK' }))).KeyMetadata!.Arn!;
  HOST_CMK = (await host.send(new CreateKeyCommand({ Description: "the host's own CMK (default key policy)" }))).KeyMetadata!.Arn!;
});

afterAll(async () => {
  for (const r of running) {
    r.peer.close();
    await r.enclave.close();
  }
  host?.destroy();
  await pipe?.close();
  await kms?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('finding 1: the host cannot make the enclave adopt a keyring whose data key it knows', () => {
  it('finding 1a: a record under a CMK the host controls (data key made without Recipient) is refused, and keys created afterwards are not under the host-known key', async () => {
    const keyringId = '6f1c3a52-9d0e-4b7a-8c11-2f3e4d5a6b7c';
    const known = await hostMadeDataKey(HOST_CMK, keyringId);
    const peer = await bootEnclave('a');
    const adopt = await outcome(call(peer, 'keyring.unlock', { record: record(keyringId, HOST_CMK, known.ciphertext) }));
    // The honest path still works: the parent creates the keyring under the pinned CMK.
    if (!adopt.ok || (await call(peer, 'status', {})).keyringId !== keyringId) await call(peer, 'keyring.create', { kmsKeyId: PINNED });
    // As the parent's boot does: the keyring's sealed state comes back before anything is decided.
    await call(peer, 'state.restore', { record: null });
    const key = await call(peer, 'key.create', { kind: 'secp256k1' });
    expect(hostRecovers(known.plaintext, keyringId, key), 'the host recovered the private key of a key created after its keyring was adopted').toBeUndefined();
    expect(adopt).toMatchObject({ ok: false, code: 'KEYRING_CMK_NOT_PINNED' });
  });

  it('finding 1b: keyring.create under the host\'s own CMK is refused (the host could Decrypt that data key without Recipient)', async () => {
    const peer = await bootEnclave('b');
    const r = await outcome(call(peer, 'keyring.create', { kmsKeyId: HOST_CMK }));
    if (r.ok) {
      // Base behaviour: the enclave made a keyring the host can open on its own.
      const rec = (r.value as { record: { dataKeyCiphertext: Uint8Array; keyringId: string } }).record;
      const out = await host.send(new DecryptCommand({ CiphertextBlob: rec.dataKeyCiphertext, EncryptionContext: { [EC_KEY]: rec.keyringId } }));
      expect(out.Plaintext?.length, 'the host decrypted the new keyring data key without any attestation').toBeUndefined();
    }
    expect(r).toMatchObject({ ok: false, code: 'KEYRING_CMK_NOT_PINNED' });
    expect((await call(peer, 'status', {})).keyringId).toBeNull();
    // Aliases and bare key ids are not pinned ARNs either, even when they name the pinned key.
    expect(await outcome(call(peer, 'keyring.create', { kmsKeyId: PINNED.slice(PINNED.indexOf('key/') + 4) }))).toMatchObject({ ok: false, code: 'KEYRING_CMK_NOT_PINNED' });
  });

  it('finding 1c: once a keyring is unlocked, unlock of a different keyring and create are refused (no switch within one enclave life)', async () => {
    // Two genuine keyrings under the pinned CMK (e.g. made by two earlier enclave lives).
    const first = await bootEnclave('c1');
    const a = (await call(first, 'keyring.create', { kmsKeyId: PINNED })).record as Record<string, unknown>;
    const second = await bootEnclave('c2');
    const b = (await call(second, 'keyring.create', { kmsKeyId: PINNED })).record as Record<string, unknown>;

    const peer = await bootEnclave('c3');
    expect((await call(peer, 'keyring.unlock', { record: a })).keyringId).toBe(a.keyringId);
    const sw = await outcome(call(peer, 'keyring.unlock', { record: b }));
    expect((await call(peer, 'status', {})).keyringId, 'the enclave switched keyrings').toBe(a.keyringId);
    expect(sw).toMatchObject({ ok: false, code: 'KEYRING_ALREADY_UNLOCKED' });
    expect(await outcome(call(peer, 'keyring.create', { kmsKeyId: PINNED }))).toMatchObject({ ok: false, code: 'KEYRING_ALREADY_UNLOCKED' });
    // Re-sending the adopted keyring is harmless and answered (the parent does it after a reconnect).
    expect((await call(peer, 'keyring.unlock', { record: a })).keyringId).toBe(a.keyringId);
  });

  it('finding 1c: two concurrent unlocks of different keyrings cannot both be adopted', async () => {
    const maker = await bootEnclave('c4');
    const a = (await call(maker, 'keyring.create', { kmsKeyId: PINNED })).record as Record<string, unknown>;
    const maker2 = await bootEnclave('c5');
    const b = (await call(maker2, 'keyring.create', { kmsKeyId: PINNED })).record as Record<string, unknown>;
    const peer = await bootEnclave('c6');
    const [ra, rb] = await Promise.all([outcome(call(peer, 'keyring.unlock', { record: a })), outcome(call(peer, 'keyring.unlock', { record: b }))]);
    expect([ra.ok, rb.ok].filter(Boolean)).toHaveLength(1);
    expect([ra, rb].find((r) => !r.ok)).toMatchObject({ code: 'KEYRING_ALREADY_UNLOCKED' });
  });

  it('finding 1d: a record naming the pinned ARN whose ciphertext is under the host CMK is refused by KMS (Decrypt carries the pinned KeyId)', async () => {
    const keyringId = '0d9e8f7a-6b5c-4d3e-8f21-a0b1c2d3e4f5';
    const known = await hostMadeDataKey(HOST_CMK, keyringId);
    const peer = await bootEnclave('d');
    const r = await outcome(call(peer, 'keyring.unlock', { record: record(keyringId, PINNED, known.ciphertext) }));
    expect(r).toMatchObject({ ok: false, code: 'KMS_INCORRECTKEY' });
    expect((await call(peer, 'status', {})).keyringId).toBeNull();
  });

  it('finding 1d: a Decrypt answered for a key other than the pinned one is refused (the enclave checks the KeyId KMS returns)', async () => {
    // KMS's TLS ends in the enclave, so this answer cannot come from the host; the check is defence in depth
    // against a KMS endpoint or SDK that ignores the KeyId it was sent.
    const keyringId = '11111111-2222-4333-8444-555555555555';
    let sentKeyId: string | undefined;
    const lying: AttestedKms = {
      generateDataKey: () => Promise.reject(new Error('unused')),
      decrypt: async (_blob, keyId) => {
        sentKeyId = keyId;
        return { plaintext: new Uint8Array(32).fill(7), keyArn: HOST_CMK };
      },
    };
    const r = await outcome(unlockKeyring(lying, record(keyringId, PINNED, new Uint8Array(64).fill(1)) as never, pinnedKeys([PINNED])));
    expect(sentKeyId).toBe(PINNED);
    expect(r).toMatchObject({ ok: false, code: 'KEYRING_CMK_MISMATCH' });
  });
});
