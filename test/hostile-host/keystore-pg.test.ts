/**
 * The shared keystore seen from the socket (docs/keystore.md, docs/scale-out.md):
 * idempotent key creation under a client request id, the instance that
 * answered, and a mixed fleet refused. Each runs against a PostgreSQL keystore
 * (a throwaway cluster, a database per test) with the fake enclave; the
 * requestId contract also against SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDevCa } from '../../dev/ca/index.js';
import { devManifest, rpc, startRig, waitFor, type Rig } from '../../parent/test-helpers.js';
import { PG_AVAILABLE, startPgCluster, type PgCluster } from '../pg-cluster.js';

vi.setConfig({ testTimeout: 60_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-hh-pg-'));
let cluster: PgCluster | undefined;
const rigs: Rig[] = [];
beforeAll(async () => {
  if (PG_AVAILABLE) cluster = await startPgCluster();
}, 120_000);
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});
afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const backends = [
  { name: 'sqlite', keystore: async () => join(dir, `ks-${Math.random().toString(16).slice(2)}.db`) },
  { name: 'postgres', keystore: () => cluster!.createDatabase() },
] as const;

describe.each(backends)('signer_createKey requestId ($name)', (b) => {
  it.skipIf(b.name === 'postgres' && !PG_AVAILABLE)('finding: a retried createKey (the answer was lost) made a second key; with requestId the retry returns the same key and the enclave is asked once', async () => {
    const r = await startRig({ dir, parent: { keystore: await b.keystore() } });
    rigs.push(r);
    const first = await rpc(r.socket, 'signer_createKey', { kind: 'secp256k1', label: 'hot-1', requestId: 'req-0001' });
    expect(first.error).toBeUndefined();
    // The client retries (it never saw the answer), also concurrently.
    const again = await Promise.all([1, 2, 3].map(() => rpc(r.socket, 'signer_createKey', { kind: 'secp256k1', label: 'hot-1', requestId: 'req-0001' })));
    for (const a of again) expect(a.result).toEqual(first.result);
    expect(r.enclave!.calls.get('key.create')).toBe(1);
    expect((await rpc(r.socket, 'signer_listKeys')).result).toHaveLength(1);
    // Concurrent first requests under one new requestId: one key.
    const race = await Promise.all([1, 2, 3, 4].map(() => rpc(r.socket, 'signer_createKey', { requestId: 'req-0002' })));
    expect(new Set(race.map((x) => x.result?.keyId)).size).toBe(1);
    expect((await rpc(r.socket, 'signer_listKeys')).result).toHaveLength(2);
    // The same requestId with another kind is a client bug: said so, no key made.
    const other = await rpc(r.socket, 'signer_createKey', { kind: 'bip32-seed', requestId: 'req-0001' });
    expect(other.error).toMatchObject({ code: -32602, message: expect.stringMatching(/requestId.*already used for a secp256k1 key/) });
    // A malformed requestId fails that request only.
    const bad = await rpc(r.socket, 'signer_createKey', { requestId: 'x'.repeat(129) });
    expect(bad.error).toMatchObject({ code: -32602, message: expect.stringMatching(/requestId/) });
    expect((await rpc(r.socket, 'signer_listKeys')).result).toHaveLength(2);
    // Without requestId nothing changed: every call makes a new key.
    await rpc(r.socket, 'signer_createKey', {});
    await rpc(r.socket, 'signer_createKey', {});
    expect((await rpc(r.socket, 'signer_listKeys')).result).toHaveLength(4);
  });
});

describe.skipIf(!PG_AVAILABLE)('several instances on one PostgreSQL keystore (fake enclaves)', () => {
  it('finding: instances starting together on an empty store each made a keyring (keys of one could not sign on the other); now the first makes it under the store\'s lock and the others unlock it', async () => {
    const keystore = await cluster!.createDatabase();
    const ca = createDevCa();
    const m = devManifest();
    const manifest = { signed: m.signed, trustedKeys: [m.publicKeyPem] };
    const started = await Promise.all(['host-a', 'host-b', 'host-c'].map((instanceId) => startRig({ dir, enclave: { ca }, parent: { keystore, instanceId, manifest } })));
    rigs.push(...started);
    const rings = await Promise.all(started.map(async (r) => (await rpc(r.socket, 'signer_status')).result.keyring.keyringId as string));
    expect(new Set(rings).size).toBe(1);
    expect((await cluster!.sql(keystore.split('/').pop()!.split('?')[0]!, 'SELECT COUNT(*)::int AS n FROM keyrings')).rows[0].n).toBe(1);
    expect(started.map((r) => r.enclave!.calls.get('keyring.create') ?? 0).reduce((a, b) => a + b, 0)).toBe(1);
    // A key made on one is under the keyring every instance holds (the fake enclaves cannot sign
    // each other's blobs; test/e2e/dev-instances.test.ts signs across real enclaves).
    const k = await rpc(started[0]!.socket, 'signer_createKey', {});
    expect(k.result.keyringId).toBe(rings[0]);
  });

  it('signer_status names the instance that answered; a requestId used on one instance returns the same key on another', async () => {
    const keystore = await cluster!.createDatabase();
    const ca = createDevCa();
    // One fleet: one image manifest, one policy.
    const m = devManifest();
    const manifest = { signed: m.signed, trustedKeys: [m.publicKeyPem] };
    const one = await startRig({ dir, enclave: { ca }, parent: { keystore, instanceId: 'host-a', manifest } });
    rigs.push(one);
    const k = await rpc(one.socket, 'signer_createKey', { requestId: 'shared-1' });
    const two = await startRig({ dir, enclave: { ca }, parent: { keystore, instanceId: 'host-b', manifest } });
    rigs.push(two);
    expect((await rpc(one.socket, 'signer_status')).result.instance).toBe('host-a');
    expect((await rpc(two.socket, 'signer_status')).result.instance).toBe('host-b');
    // Failover: the client retries on the other instance: the same key, no second one.
    expect((await rpc(two.socket, 'signer_createKey', { requestId: 'shared-1' })).result).toEqual(k.result);
    expect(two.enclave!.calls.get('key.create')).toBeUndefined();
    expect((await rpc(two.socket, 'signer_listKeys')).result).toHaveLength(1);
  });

  it('bad input: finding: instances with different policies on one store both served; now the second refuses to serve and says why, naming both hashes', async () => {
    const keystore = await cluster!.createDatabase();
    const ca = createDevCa();
    const m = devManifest();
    const manifest = { signed: m.signed, trustedKeys: [m.publicKeyPem] };
    const one = await startRig({ dir, enclave: { ca, policyHash: 'a'.repeat(64) }, parent: { keystore, instanceId: 'host-a', manifest } });
    rigs.push(one);
    const two = await startRig({ dir, enclave: { ca, policyHash: 'b'.repeat(64) }, parent: { keystore, instanceId: 'host-b', manifest }, waitReady: false });
    rigs.push(two);
    await waitFor(() => two.parent.state().keyring.state === 'failed', 20_000, 'second instance refused');
    const s = two.parent.state();
    expect(s.ready).toBe(false);
    expect(s.keyring.reason).toMatch(new RegExp(`mixed fleet: instance "host-a" serves policy ${'a'.repeat(64)}.*"host-b" would serve policy ${'b'.repeat(64)}`));
    const refused = await rpc(two.socket, 'signer_createKey', {});
    expect(refused.error).toMatchObject({ code: -32002, message: expect.stringMatching(/mixed fleet/) });
    // The first instance is unaffected.
    expect((await rpc(one.socket, 'signer_createKey', {})).result.keyId).toMatch(/^[0-9a-f-]{36}$/);
    // Another manifest (another image) is refused the same way.
    const other = devManifest();
    const three = await startRig({ dir, enclave: { ca, policyHash: 'a'.repeat(64) }, parent: { keystore, instanceId: 'host-c', manifest: { signed: other.signed, trustedKeys: [other.publicKeyPem] } }, waitReady: false });
    rigs.push(three);
    await waitFor(() => three.parent.state().keyring.state === 'failed', 20_000, 'third instance refused');
    expect(three.parent.state().keyring.reason).toMatch(/mixed fleet: instance "host-a" serves policy a+ with manifest [0-9a-f]{64}, this instance "host-c" would serve policy a+ with manifest [0-9a-f]{64}/);
    // Nothing of the refused instances reached the store: no audit chain, no sealed state.
    const db = keystore.split('/').pop()!.split('?')[0]!;
    expect((await cluster!.sql(db, "SELECT COUNT(*)::int AS n FROM audit_records WHERE instance_id IN ('host-b', 'host-c')")).rows[0].n).toBe(0);
    expect((await cluster!.sql(db, "SELECT COUNT(*)::int AS n FROM sealed_state WHERE instance_id IN ('host-b', 'host-c')")).rows[0].n).toBe(0);
  });
});
