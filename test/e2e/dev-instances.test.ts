/**
 * `enclave-signer dev --instances 3 --keystore postgres://…` (docs/scale-out.md):
 * three instances — each its own parent process and its own enclave process —
 * on one KMS emulator, one dev CA and one PostgreSQL keystore (a throwaway
 * cluster). A key created on instance 1 signs on 2 and 3; signer_status names
 * the instance that answered; each enclave unlocked the one keyring through
 * its own attested KMS call; each has its own audit chain in the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_AVAILABLE, startPgCluster, type PgCluster } from '../pg-cluster.js';
import { MIGRATIONS } from '../../parent/keystore-migrations.js';
import { call, isAlive, startDevStack, waitReady, type DevStack } from './dev-stack.js';

const dir = mkdtempSync(join(tmpdir(), 'es-dev-instances-'));
let cluster: PgCluster | undefined;
let stack: (DevStack & { sockets?: string[]; enclavePids?: number[]; parentPids?: number[] }) | undefined;
let dbName = '';

beforeAll(async () => {
  if (!PG_AVAILABLE) return;
  cluster = await startPgCluster();
  const url = await cluster.createDatabase('fleet');
  dbName = url.split('/').pop()!.split('?')[0]!;
  stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--instances', '3', '--keystore', url], timeoutMs: 150_000 });
}, 240_000);

afterAll(async () => {
  await stack?.stop(10_000);
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(!PG_AVAILABLE)('enclave-signer dev --instances 3 on PostgreSQL', () => {
  it('three instances, each its own parent and enclave process; instance i answers on <socket>.<i> and names itself in signer_status', async () => {
    const s = stack!;
    expect(s.sockets).toEqual([1, 2, 3].map((i) => join(dir, 'data', `signer.sock.${i}`)));
    for (const sock of s.sockets!) await waitReady(sock, 30_000);
    expect(new Set(s.enclavePids).size).toBe(3);
    expect(new Set(s.parentPids).size).toBe(3);
    expect(s.parentPids).not.toContain(s.pid);
    for (const [i, sock] of s.sockets!.entries()) {
      const st = await call(sock, 'signer_status');
      expect(st.instance).toBe(String(i + 1));
      expect(st.ready).toBe(true);
    }
    // One keyring for the fleet, unlocked by each enclave itself.
    const rings = await Promise.all(s.sockets!.map(async (sock) => (await call(sock, 'signer_status')).keyring.keyringId));
    expect(new Set(rings).size).toBe(1);
    const err = s.output().stderr;
    for (const i of [2, 3]) expect(err).toMatch(new RegExp(`\\[${i}\\] keyring: unlocked ${rings[0]}`));
  });

  it('a key created on instance 1 signs on instances 2 and 3; a requestId retried on another instance returns the same key', async () => {
    const [one, two, three] = stack!.sockets!;
    const k = await call(one!, 'signer_createKey', { label: 'fleet-key', requestId: 'fleet-req-1' });
    for (const sock of [two!, three!]) {
      const sig = (await call(sock, 'personal_sign', ['0x68656c6c6f', k.address])) as Hex;
      expect(await verifyMessage({ address: k.address, message: 'hello', signature: sig })).toBe(true);
    }
    expect(await call(three!, 'signer_createKey', { label: 'fleet-key', requestId: 'fleet-req-1' })).toEqual(k);
    expect((await call(two!, 'signer_listKeys')).map((x: { keyId: string }) => x.keyId)).toEqual([k.keyId]);
    // Each enclave keeps its own audit chain in the shared store: a hand-over at seq 0 for each instance.
    const rows = (await cluster!.sql(dbName, "SELECT instance_id, MIN(seq)::int AS first, COUNT(*)::int AS n FROM audit_records GROUP BY instance_id ORDER BY instance_id")).rows;
    expect(rows.map((r) => r.instance_id)).toEqual(['1', '2', '3']);
    for (const r of rows) expect(r.first).toBe(0);
    const migrations = (await cluster!.sql(dbName, 'SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
    expect(migrations).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('stopping dev stops every parent and enclave process', async () => {
    const s = stack!;
    const pids = [...s.parentPids!, ...s.enclavePids!];
    const r = await s.stop(15_000);
    expect(r.code).toBe(0);
    stack = undefined;
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });
});
