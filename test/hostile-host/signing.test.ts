
import * as btc from '@scure/btc-signer';
import { HDKey } from '@scure/bip32';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectBridge, type BridgePeer } from '../../common/bridge/index.js';
import { cborToJson, jsonToCbor } from '../../common/cbor-json.js';
import { createDevCa, type DevCa } from '../../dev/ca/index.js';
import type { KmsEmulator } from '../../dev/kms-emulator/index.js';
import { startEnclave, type RunningEnclave } from '../../enclave/main.js';
import { watchWorkers, type WorkerWatch } from '../../enclave/worker-test-helpers.js';
import { createSimulatedNsm, simulatedImagePcrs } from '../../enclave/nsm/simulated.js';
import type { KmsPipe } from '../../parent/kms-pipe.js';
import { startRealKms, type RealKms } from '../real-kms.js';
import { startParent, type RunningParent } from '../../parent/main.js';
import { devManifest, rpc, waitFor } from '../../parent/test-helpers.js';
import { loadDevPolicy } from '../../enclave/policy/load.js';
import { parseRecord, type AuditRecordBody } from '../../common/audit/record.js';

vi.setConfig({ testTimeout: 90_000, hookTimeout: 90_000 });

const CREDS = { accessKeyId: 'AKIAHOSTILEHOST00001', secretAccessKey: 'hostile-host-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/parent' };
const IMAGE = 'enclave-signer-hostile-host';

let dir: string;
let ca: DevCa;
let _kms: KmsEmulator;
let _pipe: KmsPipe;
let real: RealKms;
let parent: RunningParent;
let enclave: RunningEnclave;
/** The enclave's log lines. */
const enclaveLog: string[] = [];
/** Every Worker the enclave's pool posts to (found without a hook in production code). */
let watch: WorkerWatch;
const keystorePath = () => join(dir, 'keystore.db');

async function host(): Promise<BridgePeer> {
  return connectBridge(enclave.uri, { role: 'parent' });
}

async function hostCall(peer: BridgePeer, method: string, params: unknown, opts: { deadlineMs?: number } = {}): Promise<Record<string, unknown>> {
  return cborToJson(await peer.request(method, jsonToCbor(params), opts)) as Record<string, unknown>;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

/** The key's row as the parent stores it (what the host can read and rewrite). */
function row(keyId: string): Record<string, unknown> {
  const db = new Database(keystorePath(), { readonly: true });
  try {
    return db.prepare('SELECT * FROM keys WHERE key_id = ?').get(keyId) as Record<string, unknown>;
  } finally {
    db.close();
  }
}

function hostWrite(fn: (db: Database.Database) => void): void {
  const db = new Database(keystorePath());
  try {
    db.transaction(() => fn(db))();
  } finally {
    db.close();
  }
}

/** The key record the parent would send, read from the keystore by the host. */
function wireKey(keyId: string): Record<string, unknown> {
  const r = row(keyId);
  const k: Record<string, unknown> = { keyId: r.key_id, kind: r.kind, keyringId: r.keyring_id, publicKey: r.public_key, blob: new Uint8Array(r.blob as Buffer) };
  if (r.address !== null) k.address = r.address;
  if (r.xpub !== null) k.xpub = r.xpub;
  if (r.fingerprint !== null) k.fingerprint = r.fingerprint;
  return k;
}

/**
 * The enclave's audit records from `fromSeq` on and its head: fetched over the bridge as a parent
 * fetches records it lost (`audit.records`), so records of requests this test sent straight to
 * the enclave (as the host) are included.
 */
async function enclaveRecords(fromSeq: number, limit: number): Promise<{ records: AuditRecordBody[]; headSeq: number }> {
  const peer = await host();
  try {
    const out = (await peer.request('audit.records', jsonToCbor({ fromSeq, limit }))) as Map<string, unknown>;
    return { records: (out.get('records') as Uint8Array[]).map((b) => parseRecord(b).body), headSeq: out.get('headSeq') as number };
  } finally {
    peer.close();
  }
}
/** The enclave's sign decisions after `afterSeq`. */
const decisions = async (afterSeq: number) => (await enclaveRecords(afterSeq + 1, 4096)).records.filter((b) => b.kind === 'sign');
/** The enclave's audit head (seq of its newest record). */
const headSeq = async () => (await enclaveRecords(0, 1)).headSeq;

beforeAll(async () => {
  watch = watchWorkers();
  dir = mkdtempSync(join(tmpdir(), 'es-hostile-signing-'));
  ca = createDevCa();
  real = await startRealKms({ dir, ca, image: IMAGE, credentials: CREDS, description: 'hostile host' });
  enclave = await startEnclave({
    listen: `unix:${join(dir, 'enclave.sock')}`,
    nsm: createSimulatedNsm({ ca, imageId: IMAGE }),
    kms: real.enclaveKms,
    workers: 1,
    // Findings 3 and 5 are about signing workers (a dead or stuck one is replaced and the
    // replacement signs): every job goes to one here. The inline path meets the same host in
    // test/hostile-host/key-cache.test.ts and enclave/worker-pool.test.ts.
    inline: false,
    policy: loadDevPolicy(),
    log: (l) => enclaveLog.push(l),
  });
  const manifest = devManifest(simulatedImagePcrs(IMAGE));
  const logs: string[] = [];
  parent = await startParent({
    enclave: enclave.uri,
    socket: join(dir, 'signer.sock'),
    keystore: keystorePath(),
    root: ca.trustRoot,
    manifest: { signed: manifest.signed, trustedKeys: [manifest.publicKeyPem] },
    kmsKeyId: real.cmk,
    credentials: { kind: 'static', accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
    reconnect: { minMs: 50, maxMs: 300 },
    log: (l) => logs.push(l),
  });
  restorePost = watch.stop;
  await waitFor(() => parent.state().ready, 60_000, `ready (logs: ${logs.join(' | ')})`);
});

let restorePost = () => {};

afterAll(async () => {
  restorePost();
  await parent?.close();
  await enclave?.close();
  await real?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function createKey(kind: 'secp256k1' | 'bip32-seed' = 'secp256k1'): Promise<{ keyId: string; address: Hex; fingerprint?: string }> {
  const r = await rpc(parent.socketPath, 'signer_createKey', { kind });
  expect(r.error).toBeUndefined();
  return r.result;
}

describe('hostile host: the signing path', () => {
  it('finding 4: with the address cells of keys A and B swapped in the keystore, personal_sign for A never returns a signature by B', async () => {
    const a = await createKey();
    const b = await createKey();
    hostWrite((db) => {
      const set = db.prepare('UPDATE keys SET address = ? WHERE key_id = ?');
      set.run(null, a.keyId);
      set.run(a.address, b.keyId);
      set.run(b.address, a.keyId);
    });
    const before = await headSeq();
    for (const [method, params] of [
      ['personal_sign', ['0x6869', a.address]],
      ['eth_sign', [a.address, '0x6869']],
    ] as const) {
      const r = await rpc(parent.socketPath, method, params);
      // The lookup by address finds B's row, so the enclave signs with B: the parent must not return it.
      expect(r.result).toBeUndefined();
      expect(r.error).toMatchObject({ code: -32000, data: { code: 'PARENT_SIGNER_MISMATCH' } });
      expect(r.error!.message).toMatch(/^refused: the enclave signed with a key whose address is not the requested key's/);
    }
    // The enclave itself recorded (and its policy saw) the key it derived: B, never the row's claim.
    const seen = await decisions(before);
    expect(seen).toHaveLength(2);
    expect(seen.every((e) => e.keyId === b.keyId)).toBe(true);
    // Restored rows sign again.
    hostWrite((db) => {
      const set = db.prepare('UPDATE keys SET address = ? WHERE key_id = ?');
      set.run(null, a.keyId);
      set.run(b.address, b.keyId);
      set.run(a.address, a.keyId);
    });
    const ok = await rpc(parent.socketPath, 'personal_sign', ['0x6869', a.address]);
    expect(await verifyMessage({ address: a.address, message: 'hi', signature: ok.result })).toBe(true);
  });

  it('finding 4: a host that sends A\'s blob under B\'s public data gets an answer naming A as the signer; the policy never sees B\'s data', async () => {
    const a = await createKey();
    const b = await createKey();
    const peer = await host();
    try {
      const lying = { ...wireKey(a.keyId), publicKey: row(b.keyId).public_key, address: b.address };
      const out = await hostCall(peer, 'sign', { op: 'personal_sign', key: lying, request: { message: 'hi' } });
      expect(out.signer).toMatchObject({ keyId: a.keyId, address: a.address, publicKey: row(a.keyId).public_key });
      expect(await verifyMessage({ address: a.address, message: 'hi', signature: (out.result as { signature: Hex }).signature })).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('finding 7: an injected key id is refused by the enclave (naming the field) and by the parent (-32602 keyId); no record or log line carries it', async () => {
    const a = await createKey();
    const before = await headSeq();
    const peer = await host();
    try {
      const injected = `${a.keyId} decision=allow\naudit op=signer_signDigest key=x decision=allow`;
      const e = await failure(hostCall(peer, 'sign', { op: 'personal_sign', key: { ...wireKey(a.keyId), keyId: injected }, request: { message: 'hi' } }));
      expect(e.code).toBe('INVALID_PARAMS');
      expect(e.message).toMatch(/^key\.keyId: must be a key id/);
    } finally {
      peer.close();
    }
    expect(enclaveLog.some((l) => l.includes('decision=allow') || l.includes('key=x'))).toBe(false);
    for (const keyId of ['x\ny', `${a.keyId} `, a.keyId.toUpperCase(), 'key-1']) {
      const r = await rpc(parent.socketPath, 'signer_signDigest', { keyId, digest: `0x${'11'.repeat(32)}` });
      expect(r.error).toMatchObject({ code: -32602, data: { code: 'PARENT_INVALID_PARAMS', field: 'keyId' } });
    }
    // The records of these refusals name no key (or a well-formed id): the injected text is nowhere.
    for (const r of await decisions(before)) {
      expect(r.decision).not.toBe('allowed');
      expect(r.keyId === null || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(r.keyId)).toBe(true);
    }
  });

  it('finding 7: "allowed" is recorded only after the key blob authenticated: a forged blob is refused and recorded denied', async () => {
    const a = await createKey();
    const peer = await host();
    const before = await headSeq();
    try {
      const k = wireKey(a.keyId);
      const forged = new Uint8Array(k.blob as Uint8Array);
      forged[forged.length - 1]! ^= 1;
      const e = await failure(hostCall(peer, 'sign', { op: 'signer_signDigest', key: { ...k, blob: forged }, request: { digest: `0x${'11'.repeat(32)}` } }));
      expect(e.code).toBe('WRAPPED_KEY_INVALID');
    } finally {
      peer.close();
    }
    // Recorded as refused, naming why; never "allowed".
    expect((await decisions(before)).map((r) => [r.decision, r.rule])).toEqual([['denied', 'error:WRAPPED_KEY_INVALID']]);
  });

  it('finding 5: a deep path and an oversized PSBT are refused, naming the limit, by the parent and by the enclave', async () => {
    const seed = await createKey('bip32-seed');
    const deep = `m${"/2147483647'".repeat(17)}`;
    const r = await rpc(parent.socketPath, 'signer_signDigest', { keyId: seed.keyId, digest: `0x${'11'.repeat(32)}`, path: deep });
    expect(r.error).toMatchObject({ code: -32602, data: { field: 'path' } });
    expect(r.error!.message).toMatch(/over the limit of 16 \(maxPathDepth\)/);
    // 255 hardened levels, straight to the enclave.
    const peer = await host();
    try {
      const e = await failure(hostCall(peer, 'sign', { op: 'signer_signDigest', key: wireKey(seed.keyId), request: { digest: `0x${'11'.repeat(32)}`, path: `m${"/7'".repeat(255)}` } }));
      expect(e.code).toBe('SIGN_INVALID_PARAMS');
      expect(e.message).toMatch(/^path: a path of 255 levels is over the limit of 16 \(maxPathDepth\)/);
    } finally {
      peer.close();
    }
    const tx = new btc.Transaction();
    const script = btc.p2wpkh(HDKey.fromMasterSeed(new Uint8Array(32).fill(3)).derive('m/0').publicKey!).script;
    for (let i = 0; i < 257; i++) tx.addInput({ txid: new Uint8Array(32).fill(1).map((x, j) => (j === 0 ? i & 0xff : j === 1 ? i >> 8 : x)), index: 0, witnessUtxo: { script, amount: 1000n } });
    tx.addOutput({ script, amount: 1000n });
    const big = await rpc(parent.socketPath, 'signer_signPsbt', { keyId: seed.keyId, psbt: Buffer.from(tx.toPSBT()).toString('base64') });
    expect(big.error).toMatchObject({ code: -32602, data: { field: 'psbt' } });
    expect(big.error!.message).toMatch(/257 inputs is over the limit of 256 \(maxPsbtInputs\)/);
  });

  it('finding 5: a job past its deadline never signs and is never recorded "allowed"; the next request signs with the right key', async () => {
    const seed = await createKey('bip32-seed');
    const a = await createKey();
    // A PSBT at the input limit, every input ours: real, long work for one worker.
    const xpub = HDKey.fromExtendedKey((await rpc(parent.socketPath, 'signer_getKey', { keyId: seed.keyId })).result.xpub);
    const child = xpub.derive('m/0/0');
    const script = btc.p2wpkh(child.publicKey!).script;
    const fp = Number.parseInt(seed.fingerprint!, 16);
    const tx = new btc.Transaction();
    for (let i = 0; i < 256; i++) {
      tx.addInput({
        txid: new Uint8Array(32).fill(2).map((x, j) => (j === 0 ? i & 0xff : j === 1 ? i >> 8 : x)),
        index: 0,
        witnessUtxo: { script, amount: 10_000n },
        bip32Derivation: [[child.publicKey!, { fingerprint: fp, path: [0, 0] }]],
      });
    }
    tx.addOutput({ script, amount: 1000n });
    const psbt = Buffer.from(tx.toPSBT()).toString('base64');
    const before = await headSeq();
    const peer = await host();
    try {
      const e = await failure(hostCall(peer, 'sign', { op: 'signer_signPsbt', key: wireKey(seed.keyId), request: { psbt } }, { deadlineMs: 1 }));
      expect(['BRIDGE_TIMEOUT', 'JOB_DEADLINE_EXCEEDED']).toContain(e.code);
    } finally {
      peer.close();
    }
    expect((await decisions(before)).filter((x) => x.decision === 'allowed')).toEqual([]);
    // If the worker was busy with it, it was terminated and replaced: the next request signs with the right key.
    const r = await rpc(parent.socketPath, 'personal_sign', ['0x6869', a.address]);
    expect(await verifyMessage({ address: a.address, message: 'hi', signature: r.result })).toBe(true);
  });

  it('finding 3: a signing worker that dies is replaced, and the replacement signs with the right keyring key', async () => {
    const a = await createKey();
    const first = await rpc(parent.socketPath, 'personal_sign', ['0x6869', a.address]);
    expect(await verifyMessage({ address: a.address, message: 'hi', signature: first.result })).toBe(true);
    const known = new Set(watch.workers);
    for (const w of known) await w.terminate(); // every worker the enclave has dies
    for (let i = 0; i < 3; i++) {
      const r = await rpc(parent.socketPath, 'personal_sign', [`0x686${i}`, a.address]);
      expect(r.error).toBeUndefined();
      expect(await verifyMessage({ address: a.address, message: { raw: `0x686${i}` }, signature: r.result })).toBe(true);
    }
  });
});
