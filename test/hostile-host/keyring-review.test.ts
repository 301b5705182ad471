/**
 * Review of the keyring and key-blob boundary, played as the hostile host (docs/threat-model.md,
 * docs/keyring.md, docs/kms-policy.md). The host relays KMS traffic (TLS ends in the enclave),
 * stores the keyring record and the key blobs, supplies the AWS credentials, and may lie, edit,
 * replay or withhold anything it relays or stores.
 *
 * Real parts: the enclave (bridge, simulated NSM, real signing workers, inline and decided-ahead
 * paths as configured), the real @aws-sdk/client-kms through the parent's byte pipe to the KMS
 * emulator. Where a test needs to know the keyring's data key (to show that nothing the enclave
 * says contains it), it plays an oracle with more power than the host: it attests as the
 * simulated image itself. Each test fails if the weakness it names exists.
 */
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, type KMSClient, ReEncryptCommand } from '@aws-sdk/client-kms';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectBridge, type BridgePeer } from '../../common/bridge/index.js';
import { toHex } from '../../common/bytes.js';
import { cborToJson, jsonToCbor } from '../../common/cbor-json.js';
import { SignerError } from '../../common/errors.js';
import { createDevCa, type DevCa } from '../../dev/ca/index.js';
import type { KmsEmulator } from '../../dev/kms-emulator/index.js';
import { pinnedKeys } from '../../enclave/config.js';
import { attestedKms, type AttestedKms } from '../../enclave/kms/attested.js';
import { createKeyring, unlockKeyring, type Keyring, type KeyringRecord } from '../../enclave/kms/keyring.js';
import { createRecipient } from '../../enclave/kms/recipient.js';
import { unwrapKey, wrapKey } from '../../enclave/kms/wrapped-key.js';
import { startEnclave, type RunningEnclave } from '../../enclave/main.js';
import { createSimulatedNsm } from '../../enclave/nsm/simulated.js';
import { loadDevPolicy } from '../../enclave/policy/load.js';
import { addressFromPrivateKey } from '../../enclave/signers/index.js';
import type { KmsPipe } from '../../parent/kms-pipe.js';
import { imageKeyPolicy, keyringRecord, startKmsBehindPipe } from '../real-kms.js';

vi.setConfig({ testTimeout: 90_000, hookTimeout: 90_000 });

const HOST = { accessKeyId: 'AKIAHOSTILEREVIEW001', secretAccessKey: 'hostile-review-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/enclave-parent' };
const IMAGE = 'enclave-signer-keyring-review';
const EC_KEY = 'enclave-signer:keyring';

let dir: string;
let ca: DevCa;
let kms: KmsEmulator;
let pipe: KmsPipe;
let host: KMSClient;
/** Pinned CMKs: attested Decrypt/GenerateDataKey only. PINNED2 stands for a rotation target pinned beside it. */
let PINNED: string;
let PINNED2: string;
/** A CMK the host controls outright (default key policy). */
let HOST_CMK: string;
const running: { enclave: RunningEnclave; peers: BridgePeer[] }[] = [];
/** Everything the enclaves logged, and every answer and error the host saw (for the leak check). */
const enclaveLog: string[] = [];
const seen: string[] = [];

function remember(v: unknown): void {
  seen.push(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? `hex:${toHex(x)} b64:${Buffer.from(x).toString('base64')}` : x)));
}

async function bootEnclave(name: string, opts: { inline?: boolean; decideAhead?: boolean; pins?: string[]; credentials?: boolean } = {}): Promise<BridgePeer> {
  const enclave = await startEnclave({
    listen: `unix:${join(dir, `${name}.sock`)}`,
    nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
    kms: { region: 'us-east-1', pipe: pipe.uri, endpoint: `https://localhost:${kms.port}`, caPem: kms.caPem!, allowedKeyArns: opts.pins ?? [PINNED, PINNED2] },
    workers: 1,
    inline: opts.inline ?? false,
    decideAhead: opts.decideAhead ?? false,
    policy: loadDevPolicy(),
    log: (l) => enclaveLog.push(l),
  });
  const peer = await connectBridge(enclave.uri, { role: 'parent' });
  running.push({ enclave, peers: [peer] });
  if (opts.credentials !== false) await call(peer, 'credentials.set', { accessKeyId: HOST.accessKeyId, secretAccessKey: HOST.secretAccessKey });
  await call(peer, 'audit.open', {});
  return peer;
}

async function call(peer: BridgePeer, method: string, params: unknown): Promise<Record<string, unknown>> {
  const out = cborToJson(await peer.request(method, jsonToCbor(params))) as Record<string, unknown>;
  remember(out);
  return out;
}

type Outcome = { ok: true; value: Record<string, unknown> } | { ok: false; code: string; message: string };
async function outcome(p: Promise<Record<string, unknown>>): Promise<Outcome> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    const x = e as { code: string; message: string; hint?: string; data?: unknown };
    remember({ code: x.code, message: x.message, hint: x.hint, data: x.data });
    return { ok: false, code: x.code, message: x.message };
  }
}

const record = keyringRecord;

/** The oracle: opens a genuine keyring as the simulated image would (more than the host can do). */
async function oracleOpen(rec: Record<string, unknown>): Promise<Keyring> {
  const oracle = attestedKms(host, createSimulatedNsm({ ca, imageId: IMAGE }), createRecipient());
  return unlockKeyring(oracle, rec as unknown as KeyringRecord, pinnedKeys([PINNED, PINNED2]));
}

/** A genuine keyring with keys, made by an earlier enclave life. */
async function genuineKeyring(name: string): Promise<{ record: Record<string, unknown>; keys: Record<string, unknown>[] }> {
  const peer = await bootEnclave(name);
  const rec = (await call(peer, 'keyring.create', { kmsKeyId: PINNED })).record as Record<string, unknown>;
  await call(peer, 'state.restore', { record: null });
  const keys = [await call(peer, 'key.create', { kind: 'secp256k1' }), await call(peer, 'key.create', { kind: 'secp256k1' }), await call(peer, 'key.create', { kind: 'bip32-seed' })];
  return { record: rec, keys };
}

const wire = (k: Record<string, unknown>, over: Record<string, unknown> = {}) => {
  const { audit: _a, ...rest } = k;
  return { ...rest, ...over };
};

async function signHi(peer: BridgePeer, key: Record<string, unknown>): Promise<Outcome> {
  const request = key.kind === 'bip32-seed' ? { message: 'hi', path: "m/0'" } : { message: 'hi' };
  return outcome(call(peer, 'sign', { op: 'personal_sign', key, request }));
}

async function expectSignsAs(peer: BridgePeer, key: Record<string, unknown>): Promise<void> {
  const r = await signHi(peer, key);
  expect(r.ok, JSON.stringify(r)).toBe(true);
  const out = (r as { value: Record<string, unknown> }).value;
  expect(out.signer).toMatchObject({ keyId: key.keyId, keyringId: key.keyringId });
  expect(await verifyMessage({ address: key.address as Hex, message: 'hi', signature: (out.result as { signature: Hex }).signature })).toBe(true);
}

let A: { record: Record<string, unknown>; keys: Record<string, unknown>[] };
let B: { record: Record<string, unknown>; keys: Record<string, unknown>[] };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-keyring-review-'));
  ca = createDevCa();
  ({ kms, pipe, client: host } = await startKmsBehindPipe({ dir, ca, credentials: HOST, maxAttempts: 1 }));
  const policy = imageKeyPolicy(HOST, IMAGE, ['kms:DescribeKey', 'kms:PutKeyPolicy', 'kms:GetKeyPolicy']);
  PINNED = (await host.send(new CreateKeyCommand({ Policy: policy, Description: 'pinned keyring CMK' }))).KeyMetadata!.Arn!;
  PINNED2 = (await host.send(new CreateKeyCommand({ Policy: policy, Description: 'pinned rotation target' }))).KeyMetadata!.Arn!;
  HOST_CMK = (await host.send(new CreateKeyCommand({ Description: "the host's own CMK" }))).KeyMetadata!.Arn!;
  A = await genuineKeyring('make-a');
  B = await genuineKeyring('make-b');
});

afterAll(async () => {
  for (const r of running) {
    for (const p of r.peers) p.close();
    await r.enclave.close();
  }
  host?.destroy();
  await pipe?.close();
  await kms?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('review (a): the host cannot choose the keyring the enclave uses', () => {
  it('a record re-sent under the adopted id but with another ciphertext, CMK or fields does not replace the adopted keyring', async () => {
    const peer = await bootEnclave('swap');
    expect((await call(peer, 'keyring.unlock', { record: A.record })).keyringId).toBe(A.record.keyringId);
    await call(peer, 'state.restore', { record: null });
    const known = await host.send(new GenerateDataKeyCommand({ KeyId: HOST_CMK, KeySpec: 'AES_256', EncryptionContext: { [EC_KEY]: A.record.keyringId as string } }));
    for (const swapped of [
      record(A.record.keyringId as string, HOST_CMK, known.CiphertextBlob!),
      record(A.record.keyringId as string, PINNED, B.record.dataKeyCiphertext as Uint8Array),
      record(A.record.keyringId as string, PINNED2, known.CiphertextBlob!, { createdAt: 'x' }),
    ]) {
      await outcome(call(peer, 'keyring.unlock', { record: swapped }));
      // The enclave's own copy is still A's, byte for byte.
      const cur = (await call(peer, 'keyring.current', {})).record as Record<string, unknown>;
      expect(cur).toEqual(A.record);
      // A's keys sign as A's; a key made now is under A's data key (the oracle opens it with A's genuine record), not the host's.
      await expectSignsAs(peer, wire(A.keys[0]!));
      const k = await call(peer, 'key.create', { kind: 'secp256k1' });
      expect(k.keyringId).toBe(A.record.keyringId);
      let hostOpened: string | undefined;
      try {
        hostOpened = addressFromPrivateKey(unwrapKey(known.Plaintext!, { keyringId: k.keyringId as string, keyId: k.keyId as string, kind: 'secp256k1' }, k.blob as Uint8Array));
      } catch {
        hostOpened = undefined;
      }
      expect(hostOpened, 'a key made after the swap is under the host-known data key').toBeUndefined();
      const ring = await oracleOpen(A.record);
      expect(addressFromPrivateKey(ring.unwrap(k.keyId as string, 'secp256k1', k.blob as Uint8Array))).toBe(k.address);
      ring.destroy();
    }
  });

  it("a genuine ciphertext relabelled with another keyring id (B's ciphertext under A's id, or under a fresh id) is refused by KMS and adopts nothing", async () => {
    const peer = await bootEnclave('relabel');
    for (const rec of [
      { ...B.record, keyringId: A.record.keyringId },
      { ...A.record, keyringId: randomUUID() },
      { ...A.record, kmsKeyId: PINNED2 }, // the other pinned CMK, for a ciphertext made under PINNED
    ]) {
      const r = await outcome(call(peer, 'keyring.unlock', { record: rec }));
      expect(r.ok, JSON.stringify(r)).toBe(false);
      expect((r as { code: string }).code).toMatch(/^KMS_/);
      expect((await call(peer, 'status', {})).keyringId).toBeNull();
    }
    // The genuine record still unlocks afterwards.
    expect((await call(peer, 'keyring.unlock', { record: A.record })).keyringId).toBe(A.record.keyringId);
  });

  it('no rotation to a host-chosen key: there is no keyring.rotate method, and a ReEncrypt to the host CMK is denied by KMS or, if done, refused by the enclave', async () => {
    const peer = await bootEnclave('rotate');
    const m = await outcome(call(peer, 'keyring.rotate', { kmsKeyId: HOST_CMK }));
    expect(m).toMatchObject({ ok: false, code: 'METHOD_NOT_FOUND' });
    let moved: Uint8Array | undefined;
    try {
      moved = (
        await host.send(
          new ReEncryptCommand({
            CiphertextBlob: A.record.dataKeyCiphertext as Uint8Array,
            SourceKeyId: PINNED,
            SourceEncryptionContext: { [EC_KEY]: A.record.keyringId as string },
            DestinationKeyId: HOST_CMK,
            DestinationEncryptionContext: { [EC_KEY]: A.record.keyringId as string },
          }),
        )
      ).CiphertextBlob;
    } catch (e) {
      expect((e as Error).name).toBe('AccessDeniedException');
    }
    if (moved) {
      // Had the pinned CMK's policy allowed it (docs/kms-policy.md says it must not), the host could decrypt...
      const r = await outcome(call(peer, 'keyring.unlock', { record: { ...A.record, kmsKeyId: HOST_CMK, dataKeyCiphertext: moved } }));
      expect(r).toMatchObject({ ok: false, code: 'KEYRING_CMK_NOT_PINNED' });
    }
    expect((await call(peer, 'status', {})).keyringId).toBeNull();
    // keyring.create under the host's CMK, or a near-miss spelling of a pinned ARN, is refused before any KMS call.
    for (const kmsKeyId of [HOST_CMK, PINNED.toUpperCase(), ` ${PINNED}`, `${PINNED}\n`, PINNED.replace('key/', 'alias/'), PINNED.replace(/:key\/.*/, ':alias/x')]) {
      expect(await outcome(call(peer, 'keyring.create', { kmsKeyId }))).toMatchObject({ ok: false, code: 'KEYRING_CMK_NOT_PINNED' });
    }
    expect((await call(peer, 'status', {})).keyringId).toBeNull();
  });

  it('keyring.create and keyring.unlock raced against each other adopt exactly one keyring, and the record the enclave reports is the adopted one', async () => {
    const peer = await bootEnclave('race');
    const rs = await Promise.all([
      outcome(call(peer, 'keyring.create', { kmsKeyId: PINNED })),
      outcome(call(peer, 'keyring.unlock', { record: A.record })),
      outcome(call(peer, 'keyring.unlock', { record: B.record })),
      outcome(call(peer, 'keyring.create', { kmsKeyId: PINNED2 })),
    ]);
    expect(rs.filter((r) => r.ok)).toHaveLength(1);
    for (const r of rs) if (!r.ok) expect(r.code).toBe('KEYRING_ALREADY_UNLOCKED');
    const id = (await call(peer, 'status', {})).keyringId;
    const cur = (await call(peer, 'keyring.current', {})).record as Record<string, unknown>;
    expect(cur.keyringId).toBe(id);
  });
});

describe('review (b): a blob signs only under its own keyring, key id and kind', () => {
  let peer: BridgePeer;
  beforeAll(async () => {
    peer = await bootEnclave('blobs', { inline: true, decideAhead: true });
    await call(peer, 'keyring.unlock', { record: A.record });
    await call(peer, 'state.restore', { record: null });
  });

  it("B's keys (another genuine keyring under the same CMK) never sign in an enclave that adopted A, whatever keyring id the host names", async () => {
    for (const k of B.keys) {
      expect(await signHi(peer, wire(k))).toMatchObject({ ok: false, code: 'KEYRING_MISMATCH' });
      expect(await signHi(peer, wire(k, { keyringId: A.record.keyringId }))).toMatchObject({ ok: false, code: 'WRAPPED_KEY_INVALID' });
    }
  });

  it('a blob moved to another key id or kind, or edited after a cached success, fails; the genuine one still signs', async () => {
    const [k1, k2, seed] = A.keys as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    // Cache k1 (and have the pool learn its facts for deciding ahead).
    await expectSignsAs(peer, wire(k1));
    await expectSignsAs(peer, wire(k1));
    const blob = k1.blob as Uint8Array;
    const attacks: Record<string, unknown>[] = [
      wire(k2, { blob }), // k1's blob under k2's id and public data
      wire(k1, { keyId: k2.keyId }), // k1's record relabelled
      wire(k1, { keyId: seed.keyId, kind: 'bip32-seed', address: undefined, xpub: seed.xpub, fingerprint: seed.fingerprint, publicKey: seed.publicKey }),
      wire(seed, { kind: 'secp256k1', address: k1.address, xpub: undefined, fingerprint: undefined }), // a 32-byte seed sent as a secp256k1 key
    ];
    for (const at of [4, 5, 16, 17, 30, blob.length - 16, blob.length - 1]) {
      const t = blob.slice();
      t[at]! ^= 0x80;
      attacks.push(wire(k1, { blob: t }));
    }
    attacks.push(wire(k1, { blob: blob.subarray(0, blob.length - 1) }), wire(k1, { blob: Uint8Array.of(...blob, 0) }), wire(k1, { blob: Uint8Array.of(...blob.subarray(0, 17), ...blob.subarray(33)) }));
    for (const a of attacks) {
      for (const key of Object.keys(a)) if (a[key] === undefined) delete a[key];
      const r = await signHi(peer, a);
      expect(r.ok, `signed: ${JSON.stringify(Object.keys(a))}`).toBe(false);
      expect((r as { code: string }).code).toMatch(/^(WRAPPED_KEY_INVALID|WRAPPED_KEY_MALFORMED|WRAPPED_KEY_BAD_SECRET|INVALID_PARAMS)$/);
    }
    await expectSignsAs(peer, wire(k1));
    await expectSignsAs(peer, wire(k2));
  });

  it('malformed blobs fail that request only, with a WRAPPED_KEY_* or INVALID_PARAMS code (never INTERNAL), and the enclave keeps signing', async () => {
    const k1 = A.keys[0]!;
    const blobs = [
      new Uint8Array(1),
      new Uint8Array(48),
      new Uint8Array(49),
      new Uint8Array(1024),
      new Uint8Array(1025),
      Uint8Array.of(0x45, 0x53, 0x57, 0x4b, 0x02, ...randomBytes(60)),
      Uint8Array.of(0x45, 0x53, 0x57, 0x4b, 0x01, ...new Uint8Array(44)), // magic + version, ciphertext of 16 zero bytes
      Uint8Array.of(0x45, 0x53, 0x57, 0x4b, 0x01, ...randomBytes(1019)),
      new Uint8Array(0),
    ];
    for (const blob of blobs) {
      const r = await signHi(peer, wire(k1, { blob }));
      expect(r.ok).toBe(false);
      expect((r as { code: string }).code).toMatch(/^(WRAPPED_KEY_(INVALID|MALFORMED|BAD_SECRET)|INVALID_PARAMS)$/);
    }
    for (const blob of ['ESWK', 123, null, [1, 2, 3], { 0: 1 }]) {
      const r = await signHi(peer, wire(k1, { blob }));
      expect(r).toMatchObject({ ok: false, code: 'INVALID_PARAMS' });
    }
    await expectSignsAs(peer, wire(k1));
  });
});

describe('review (d): malformed keyring records fail that request only', () => {
  it('every malformed record is refused with a clear code, adopts nothing, and the genuine record unlocks afterwards', async () => {
    const peer = await bootEnclave('malformed');
    const good = A.record;
    const id = good.keyringId as string;
    const bad: unknown[] = [
      null,
      'record',
      [good],
      {},
      { ...good, format: 'enclave-signer/keyring ' },
      { ...good, version: 2 },
      { ...good, version: '1' },
      { ...good, keyringId: id.toUpperCase() },
      { ...good, keyringId: `${id} ` },
      { ...good, keyringId: id.replace(/-/g, '') },
      { ...good, keyringId: 'x'.repeat(65) },
      { ...good, keyringId: 7 },
      { ...good, kmsKeyId: (good.kmsKeyId as string).toUpperCase() },
      { ...good, kmsKeyId: `${good.kmsKeyId as string}\u0000` },
      { ...good, kmsKeyId: 'x'.repeat(2049) },
      { ...good, kmsKeyId: 'x'.repeat(2048) },
      { ...good, dataKeyCiphertext: new Uint8Array(0) },
      { ...good, dataKeyCiphertext: new Uint8Array(6145) },
      { ...good, dataKeyCiphertext: new Uint8Array(randomBytes(6144)) },
      { ...good, dataKeyCiphertext: (good.dataKeyCiphertext as Uint8Array).subarray(1) },
      { ...good, dataKeyCiphertext: Uint8Array.of(...(good.dataKeyCiphertext as Uint8Array), 0) },
      { ...good, dataKeyCiphertext: Buffer.from(good.dataKeyCiphertext as Uint8Array).toString('base64') },
      { ...good, createdAt: 0 },
      { ...good, createdAt: 'x'.repeat(65) },
      { ...good, extra: 1 },
      JSON.parse(`{"__proto__": {"keyringId": "${id}"}}`),
      (({ createdAt: _c, ...r }) => r)(good),
    ];
    for (const rec of bad) {
      const r = await outcome(call(peer, 'keyring.unlock', { record: rec }));
      expect(r.ok, JSON.stringify(rec, (_k, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))).toBe(false);
      expect((r as { code: string }).code).toMatch(/^(INVALID_PARAMS|KEYRING_MALFORMED|KEYRING_CMK_NOT_PINNED|KMS_[A-Z]+)$/);
      expect((await call(peer, 'status', {})).keyringId).toBeNull();
    }
    expect(await outcome(call(peer, 'keyring.unlock', {}))).toMatchObject({ ok: false, code: 'INVALID_PARAMS' });
    expect(await outcome(call(peer, 'keyring.unlock', { record: good, extra: 1 }))).toMatchObject({ ok: false, code: 'INVALID_PARAMS' });
    expect(await outcome(call(peer, 'keyring.create', { kmsKeyId: 5 }))).toMatchObject({ ok: false, code: 'INVALID_PARAMS' });
    expect((await call(peer, 'keyring.unlock', { record: good })).keyringId).toBe(id);
    await call(peer, 'state.restore', { record: null });
    await expectSignsAs(peer, wire(A.keys[0]!));
  });

  it('an unlock without credentials, or with credentials KMS rejects, fails that request and a later good one succeeds', async () => {
    const peer = await bootEnclave('nocreds', { pins: [PINNED], credentials: false });
    expect(await outcome(call(peer, 'keyring.unlock', { record: A.record }))).toMatchObject({ ok: false, code: 'KMS_NO_CREDENTIALS' });
    await call(peer, 'credentials.set', { accessKeyId: 'AKIAWRONGWRONGWRONG1', secretAccessKey: 'nope' });
    const r = await outcome(call(peer, 'keyring.unlock', { record: A.record }));
    expect(r.ok).toBe(false);
    expect((r as { code: string }).code).toMatch(/^KMS_/);
    // Found in this review: the SDK memoized the first credentials (without an expiration, for the
    // client's life), so the good ones handed over now were never used and this unlock failed too.
    await call(peer, 'credentials.set', { accessKeyId: HOST.accessKeyId, secretAccessKey: HOST.secretAccessKey });
    expect((await outcome(call(peer, 'keyring.unlock', { record: A.record }))).ok, 'credentials handed over after a refused unlock are not used').toBe(true);
    expect((await call(peer, 'status', {})).keyringId).toBe(A.record.keyringId);
  });

  it('credentials with an expiration hours ahead, refused by KMS (revoked), are replaced by the next hand-over', async () => {
    const peer = await bootEnclave('revoked', { pins: [PINNED], credentials: false });
    const later = new Date(Date.now() + 6 * 3600_000).toISOString();
    await call(peer, 'credentials.set', { accessKeyId: 'AKIAREVOKEDREVOKED01', secretAccessKey: 'revoked', sessionToken: 'revoked', expiration: later });
    expect((await outcome(call(peer, 'keyring.unlock', { record: A.record }))).ok).toBe(false);
    await call(peer, 'credentials.set', { accessKeyId: HOST.accessKeyId, secretAccessKey: HOST.secretAccessKey, expiration: later });
    expect((await outcome(call(peer, 'keyring.unlock', { record: A.record }))).ok, 'credentials handed over after a refused unlock are not used').toBe(true);
  });
});

describe('review (d): a host that mangles the KMS byte pipe fails the unlock only', () => {
  it('garbage, a closed connection, or a TLS server of its own (another CA) fail that unlock with a typed error; the enclave unlocks once the pipe is honest', async () => {
    let mode: 'garbage' | 'close' | 'foreign' | 'forward' = 'garbage';
    const other = createDevCa();
    const otherCert = other.issueTlsServerCert(['localhost', '127.0.0.1']);
    // A TLS server the host runs, with a certificate for the right name from a CA the enclave does not trust.
    const foreign = createTlsServer({ cert: otherCert.chainPem, key: otherCert.keyPem }, (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}'));
    const foreignPath = join(dir, 'foreign-kms.sock');
    await new Promise<void>((r) => foreign.listen(foreignPath, r));
    const sockets = new Set<Socket>();
    const hostile: Server = createServer((c) => {
      sockets.add(c);
      c.on('error', () => {});
      c.on('close', () => sockets.delete(c));
      if (mode === 'close') c.destroy();
      else if (mode === 'garbage') {
        c.write(randomBytes(4096));
        c.end();
      } else {
        const up = netConnect(mode === 'foreign' ? foreignPath : pipe.uri.replace(/^unix:/, ''));
        up.on('error', () => c.destroy());
        c.on('error', () => up.destroy());
        c.pipe(up).pipe(c);
      }
    });
    const hostilePath = join(dir, 'hostile-pipe.sock');
    await new Promise<void>((r) => hostile.listen(hostilePath, r));
    try {
      const enclave = await startEnclave({
        listen: `unix:${join(dir, 'mangled.sock')}`,
        nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
        kms: { region: 'us-east-1', pipe: `unix:${hostilePath}`, endpoint: `https://localhost:${kms.port}`, caPem: kms.caPem!, allowedKeyArns: [PINNED] },
        workers: 1,
        policy: loadDevPolicy(),
        log: (l) => enclaveLog.push(l),
      });
      const peer = await connectBridge(enclave.uri, { role: 'parent' });
      running.push({ enclave, peers: [peer] });
      await call(peer, 'credentials.set', { accessKeyId: HOST.accessKeyId, secretAccessKey: HOST.secretAccessKey });
      await call(peer, 'audit.open', {});
      for (const m of ['garbage', 'close', 'foreign'] as const) {
        mode = m;
        const r = await outcome(call(peer, 'keyring.unlock', { record: A.record }));
        expect(r.ok, m).toBe(false);
        expect((r as { code: string }).code, `${m}: ${(r as { message: string }).message}`).toMatch(/^KMS_[A-Z]+$/);
        expect((await call(peer, 'status', {})).keyringId).toBeNull();
        for (const s of sockets) s.destroy();
      }
      mode = 'forward';
      expect((await call(peer, 'keyring.unlock', { record: A.record })).keyringId).toBe(A.record.keyringId);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hostile.close(r));
      await new Promise((r) => foreign.close(r));
    }
  });
});

describe('review (a, d): the keyring code against a KMS answer it must not accept', () => {
  const pins = () => pinnedKeys([PINNED]);
  const fakeKms = (over: Partial<AttestedKms>): AttestedKms => ({
    generateDataKey: () => Promise.reject(new Error('unused')),
    decrypt: () => Promise.reject(new Error('unused')),
    ...over,
  });

  it('GenerateDataKey answered for another CMK is refused, and the data key it brought is wiped', async () => {
    const plaintext = new Uint8Array(32).fill(9);
    const r = await createKeyring(fakeKms({ generateDataKey: async () => ({ ciphertextBlob: new Uint8Array(8), plaintext, keyArn: HOST_CMK }) }), PINNED, pins()).then(
      () => 'adopted',
      (e: SignerError) => e.code,
    );
    expect(r).toBe('KEYRING_CMK_MISMATCH');
    expect(plaintext.every((b) => b === 0)).toBe(true);
  });

  it('a Decrypt answer of the wrong length is refused, wiped, and the error carries no byte of it', async () => {
    for (const n of [0, 16, 31, 33, 64]) {
      const plaintext = new Uint8Array(n).fill(0xab);
      const e = await unlockKeyring(fakeKms({ decrypt: async () => ({ plaintext, keyArn: PINNED }) }), record(randomUUID(), PINNED, new Uint8Array(4)) as never, pins()).then(
        () => undefined,
        (x: SignerError) => x,
      );
      expect(e?.code).toBe('KEYRING_BAD_KEY');
      expect(plaintext.every((b) => b === 0)).toBe(true);
      expect(JSON.stringify(e) + String(e?.message)).not.toMatch(/abab|q6ur/i);
    }
  });

  it('attestedKms refuses an answer with a Plaintext, without KeyId, or with garbage for the recipient, with typed errors', async () => {
    const nsm = createSimulatedNsm({ ca, imageId: IMAGE });
    const answers: Record<string, unknown>[] = [
      { Plaintext: new Uint8Array(32).fill(1), CiphertextForRecipient: new Uint8Array(10), CiphertextBlob: new Uint8Array(10), KeyId: PINNED },
      { CiphertextForRecipient: new Uint8Array(10), CiphertextBlob: new Uint8Array(10) },
      { CiphertextForRecipient: new Uint8Array(randomBytes(300)), CiphertextBlob: new Uint8Array(10), KeyId: PINNED },
      { CiphertextForRecipient: new Uint8Array(0), CiphertextBlob: new Uint8Array(10), KeyId: PINNED },
      {},
    ];
    for (const answer of answers) {
      const client = { send: async () => answer } as unknown as KMSClient;
      const k = attestedKms(client, nsm, createRecipient());
      for (const p of [k.generateDataKey(PINNED, { [EC_KEY]: randomUUID() }), k.decrypt(new Uint8Array(4), PINNED, { [EC_KEY]: randomUUID() })]) {
        const e = await p.then(
          () => undefined,
          (x: unknown) => x,
        );
        expect(e, JSON.stringify(Object.keys(answer))).toBeInstanceOf(SignerError);
      }
    }
  });
});

describe('review (c): nothing the host sees or the enclave logs contains the data key or a private key', () => {
  it('answers, errors and log lines of this whole file carry neither keyring data key nor any private key or seed', async () => {
    // A few more things a host might try to make the enclave echo: a blob that authenticates under
    // nothing, a tampered one, and a record naming the genuine ciphertext under a bad id.
    const peer = await bootEnclave('leak');
    await call(peer, 'keyring.unlock', { record: A.record });
    await call(peer, 'state.restore', { record: null });
    const k = A.keys[0]!;
    await signHi(peer, wire(k, { blob: (k.blob as Uint8Array).map((b, i) => (i === 20 ? b ^ 1 : b)) }));
    await outcome(call(peer, 'keyring.unlock', { record: { ...A.record, keyringId: 'not-a-uuid' } }));

    const secrets: Uint8Array[] = [];
    for (const ring of [A, B]) {
      const r = await oracleOpen(ring.record);
      secrets.push(r.shareKey());
      for (const key of ring.keys) secrets.push(r.unwrap(key.keyId as string, key.kind as 'secp256k1' | 'bip32-seed', key.blob as Uint8Array));
      r.destroy();
    }
    const hay = [...seen, ...enclaveLog].join('\n').toLowerCase();
    expect(seen.length).toBeGreaterThan(50);
    for (const s of secrets) {
      const hex = toHex(s).toLowerCase();
      // any 8-byte window of the secret, in hex or base64
      for (let i = 0; i + 8 <= s.length; i += 4) {
        expect(hay.includes(hex.slice(i * 2, i * 2 + 16)), 'a secret appeared in an answer, error or log line').toBe(false);
      }
      expect(hay.includes(Buffer.from(s).toString('base64').slice(0, 12).toLowerCase())).toBe(false);
    }
    // And the host's own Decrypt of the genuine ciphertext, without Recipient, is refused by the pinned CMK's policy.
    const d = await host.send(new DecryptCommand({ CiphertextBlob: A.record.dataKeyCiphertext as Uint8Array, EncryptionContext: { [EC_KEY]: A.record.keyringId as string } })).then(
      (o) => o.Plaintext,
      (e: Error) => e.name,
    );
    expect(d).toBe('AccessDeniedException');
  });
});

describe('review: the blob format itself', () => {
  it('wrapKey/unwrapKey: the AAD separates keyring, key id and kind even for adversarially close strings', () => {
    const key = new Uint8Array(randomBytes(32));
    const meta = { keyringId: randomUUID(), keyId: randomUUID(), kind: 'secp256k1' as const };
    const blob = wrapKey(key, meta, new Uint8Array(32).fill(3));
    for (const m of [
      { ...meta, keyringId: meta.keyId, keyId: meta.keyringId },
      { ...meta, keyringId: `${meta.keyringId}\0` },
      { ...meta, keyId: meta.keyId.toUpperCase() },
      { ...meta, kind: 'bip32-seed' as const },
    ]) {
      expect(() => unwrapKey(key, m, blob)).toThrow(expect.objectContaining({ code: 'WRAPPED_KEY_INVALID' }));
    }
    expect(toHex(unwrapKey(key, meta, blob))).toBe('03'.repeat(32));
  });
});
