/**
 * Fault injection, the network (issue 13 §4; docs/faults.md "Network
 * partition"): two instances on two "hosts" and PostgreSQL on a third, each
 * host its own network namespace made by this test (test/faults/netns.ts).
 * The link between host 2 and the database is black-holed (packets dropped
 * silently in both directions: no RST, no ICMP) while host 1 keeps its link,
 * then healed.
 *
 * Real parts: PostgreSQL (test/pg-cluster.ts) listening on the db host's
 * address only, password auth for `app`; each instance is a real
 * `enclave-signer parent` process started inside its host's namespace plus its
 * own enclave process (dev/stack.ts, one per instance); one KMS emulator and
 * one dev CA, reached by the enclaves through the KMS pipe over Unix sockets —
 * so KMS stays reachable from both instances and the partition under test is
 * instance ↔ database only (KMS faults: kms.test.ts).
 *
 * What must hold:
 * - while it lasts, clients of instance 2 get -32002 (KEYSTORE_UNAVAILABLE or
 *   PARENT_AUDIT_UNAVAILABLE) and every one is answered — none hangs past the
 *   client's deadline, although the database neither answers nor refuses;
 * - clients of instance 1 keep signing and creating keys, without an error;
 * - instance 2 releases no signature during the partition (its records cannot
 *   be stored, so nothing it signs may leave);
 * - healed, instance 2 serves again: the same parent and enclave processes;
 * - the guarantees (docs/faults.md): no acknowledged key lost, one key per
 *   requestId, every released signature has exactly one `sign` record on its
 *   instance's stored chain, and both chains verify.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import pg from 'pg';
import { startDevInfra, type DevInfra } from '../../dev/stack.js';
import { assertBuilt, rpc, waitFor } from '../e2e/dev-stack.js';
import { APP_PASSWORD, PG_AVAILABLE, startPgCluster, type PgCluster } from '../pg-cluster.js';
import { startHostParent, type HostParent } from './host-parent.js';
import { createPartitionNet, NETNS_AVAILABLE, type PartitionNet } from './netns.js';
import { within } from '../../parent/test-helpers.js';
import { resultDigestHex, storedAudit, storedKeyIds } from './stack.js';

vi.setConfig({ testTimeout: 150_000, hookTimeout: 150_000 });

/** CI runs as root with PostgreSQL: there a missing piece is a failure, not a skip. */
const RUN = (NETNS_AVAILABLE && PG_AVAILABLE) || process.env.CI === 'true';

/** The parents' --request-timeout (the enclave deadline) and the keystore's own deadlines. */
const REQUEST_TIMEOUT_S = 5;
const KEYSTORE_PARAMS = 'connect_timeout_ms=1000&query_timeout_ms=4000&pool_max=4';
/**
 * A client gives up after this: an answer later than that counts as hung. The parent's request
 * deadline plus a grace for a loaded 2-core CI box (this is a liveness bound, not a latency one).
 */
const CLIENT_DEADLINE_MS = REQUEST_TIMEOUT_S * 1000 + 2_000;
const CLIENTS_PER_INSTANCE = 4;
const PARTITION_MS = 8_000;
/** How long the failing-over client keeps retrying on host 1 while host 2 stays cut off. */
const FAILOVER_MS = 15_000;

const dir = mkdtempSync(join(tmpdir(), 'es-fault-partition-'));
const logs: string[] = [];
let net: PartitionNet | undefined;
let cluster: PgCluster | undefined;
let infra: DevInfra | undefined;
const parents: HostParent[] = [];
let dbName = '';
let keystore = '';

beforeAll(async () => {
  if (!RUN) return;
  assertBuilt();
  net = await createPartitionNet(2);
  cluster = await startPgCluster({ netns: net.db.netns, tcp: { address: net.db.address, allow: net.hostsCidr } });
  dbName = new URL(await cluster.createDatabase('partition')).pathname.slice(1);
  keystore = `${cluster.tcpUrl(dbName)}?${KEYSTORE_PARAMS}`;
  infra = await startDevInfra(join(dir, 'data'), (l) => logs.push(`[dev] ${l}`), { instances: 2 });
  // Instance 1 first: it makes the keyring, instance 2 unlocks the same record (as dev --instances does).
  for (const [i, host] of net.hosts.entries()) {
    parents.push(
      await startHostParent({
        host,
        infra,
        enclaveIndex: i,
        instanceId: host.name,
        socket: join(dir, `signer.sock.${i + 1}`),
        keystore,
        pgPassword: APP_PASSWORD,
        requestTimeoutSec: REQUEST_TIMEOUT_S,
        log: (l) => logs.push(l),
      }),
    );
  }
});

afterAll(async () => {
  // Every step runs even if an earlier one fails: nothing may outlive the test (processes, namespaces).
  for (const p of parents) await p.stop().catch(() => {});
  await infra?.close().catch(() => {});
  await cluster?.stop().catch(() => {});
  await net?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

type Answer = Awaited<ReturnType<typeof rpc>>;
type Phase = 'before' | 'partition' | 'healed';

const ask = (socket: string, method: string, params: unknown) => within(rpc(socket, method, params), CLIENT_DEADLINE_MS);

describe.skipIf(!RUN)('fault: network partition between an instance and the PostgreSQL host', () => {
  it('black-holed host 2: its clients get -32002 within their deadline, host 1 keeps signing, nothing is released unrecorded; healed, host 2 serves again without a restart', async () => {
    const [one, two] = parents as [HostParent, HostParent];
    const h2 = net!.hosts[1]!;
    const signer = (await rpc(one.socket, 'signer_createKey', { label: 'signer', requestId: 'signer' })).result as { keyId: string; address: Hex };
    expect(signer.address).toMatch(/^0x/);
    for (const p of parents) expect((await rpc(p.socket, 'signer_status')).result.instance).toBe(p.instanceId);
    const enclavePids = infra!.enclaves.map((e) => e.pid);
    const acknowledged = new Map<string, string>([['signer', signer.keyId]]); // requestId → keyId

    let phase: Phase = 'before';
    let stopLoad = false;
    let healedAt = 0;
    /** Per instance: every signature a client received (its result digest). */
    const released = parents.map(() => [] as string[]);
    const outstanding = new Set<string>(); // creations whose last attempt failed: retried under the same requestId
    const errors = parents.map(() => new Map<string, number>()); // "phase code data.code" → count
    const unexpected: string[] = [];
    let hung = 0;
    /** Instance 2 successes of requests sent after the black hole was in place and answered before it was healed. */
    let releasedDuringPartition = 0;
    const slowest = { partition: 0, healed: 0 };
    const okDuringPartition = parents.map(() => 0);
    const recoveredAfterMs: number[] = [];

    const client = async (inst: number, c: number) => {
      const p = parents[inst]!;
      let n = 0;
      let recovered = false;
      while (!stopLoad) {
        n++;
        const create = n % 3 === 0;
        const mine = [...outstanding].find((r) => r.startsWith(`${p.instanceId}-c${c}-`));
        const requestId = create ? (mine ?? `${p.instanceId}-c${c}-${n}`) : '';
        const message = `0x${Buffer.from(`${p.instanceId} c${c} #${n}`).toString('hex')}` as Hex;
        const sentPhase = phase;
        const { a, ms } = create ? await ask(p.socket, 'signer_createKey', { requestId, label: requestId }) : await ask(p.socket, 'personal_sign', [message, signer.address]);
        if (a === 'hung') {
          hung++;
          unexpected.push(`instance ${p.instanceId}: ${create ? 'signer_createKey' : 'personal_sign'} sent in phase ${sentPhase} not answered within ${CLIENT_DEADLINE_MS} ms`);
          continue;
        }
        // An answer that came after the cut counts for the partition, whenever it was sent.
        const when: Phase = phase === 'before' ? 'before' : sentPhase === 'healed' ? 'healed' : 'partition';
        if (inst === 1 && when !== 'before') slowest[when] = Math.max(slowest[when], ms);
        if (a.error) {
          if (create) outstanding.add(requestId);
          const key = `${when} ${a.error.code} ${String(a.error.data?.code)}`;
          errors[inst]!.set(key, (errors[inst]!.get(key) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (create) {
          outstanding.delete(requestId);
          const prev = acknowledged.get(requestId);
          if (prev !== undefined && prev !== a.result.keyId) unexpected.push(`requestId ${requestId} answered two keys`);
          acknowledged.set(requestId, a.result.keyId as string);
        } else {
          released[inst]!.push(resultDigestHex(a.result as string));
          if (!(await verifyMessage({ address: signer.address, message: { raw: message }, signature: a.result as Hex }))) unexpected.push(`instance ${p.instanceId}: a bad signature`);
        }
        if (phase === 'partition' && sentPhase === 'partition') {
          okDuringPartition[inst]!++;
          if (inst === 1) releasedDuringPartition++;
        }
        if (inst === 1 && sentPhase === 'healed' && !recovered) {
          recovered = true;
          recoveredAfterMs.push(performance.now() - healedAt);
        }
      }
    };

    const load = Promise.all(parents.flatMap((_, inst) => Array.from({ length: CLIENTS_PER_INSTANCE }, (_, c) => client(inst, c))));
    // If a step below throws, the clients stop after their current request (afterAll then stops everything).
    onTestFinished(() => {
      stopLoad = true;
    });
    await new Promise((r) => setTimeout(r, 2_000));
    const releasedBefore = released.map((r) => r.length);

    // Requests already past their key lookup when the link goes: the enclave of instance 2 is held
    // (SIGSTOP) for a moment, so the requests in flight — these clients' and a probe's — are waiting
    // for their signatures when the cut comes, and must then store audit records over a dead link.
    const enclave2 = infra!.enclaves[1]!.pid!;
    process.kill(enclave2, 'SIGSTOP');
    let probe: Promise<{ a: Answer | 'hung'; ms: number }>;
    try {
      probe = ask(two.socket, 'personal_sign', [`0x${Buffer.from('in flight at the cut').toString('hex')}`, signer.address]);
      await new Promise((r) => setTimeout(r, 300));
      await net!.blackhole(h2);
      phase = 'partition';
    } finally {
      process.kill(enclave2, 'SIGCONT');
    }
    const probed = await probe;
    await new Promise((r) => setTimeout(r, PARTITION_MS));
    await net!.heal(h2);
    healedAt = performance.now();
    phase = 'healed';
    // Until every client of instance 2 has succeeded again (a generous bound), then until every failed creation was retried.
    for (let i = 0; i < 600 && recoveredAfterMs.length < CLIENTS_PER_INSTANCE; i++) await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 300 && outstanding.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
    stopLoad = true;
    await load;

    const summary = {
      probe: probed.a === 'hung' ? 'hung' : { ms: Math.round(probed.ms), error: probed.a.error?.data?.code },
      releasedBefore,
      released: released.map((r) => r.length),
      okDuringPartition,
      errors: errors.map((m) => Object.fromEntries(m)),
      slowestInstance2Ms: { partition: Math.round(slowest.partition), healed: Math.round(slowest.healed) },
      recoveredAfterMs: recoveredAfterMs.map(Math.round),
      keys: acknowledged.size,
    };
    console.log(`[partition] ${JSON.stringify(summary)}`);

    expect(unexpected).toEqual([]);
    expect(hung).toBe(0);
    // The probe was signed by the enclave and then withheld: its record could not be stored.
    expect(probed.a === 'hung' ? 'hung' : probed.a.error?.data?.code).toBe('PARENT_AUDIT_UNAVAILABLE');
    // Instance 1 never noticed: no error at all, and it kept signing while instance 2 was cut off.
    expect(errors[0]!.size).toBe(0);
    expect(okDuringPartition[0]).toBeGreaterThan(0);
    // Instance 2: -32002 naming the keystore or the audit record, nothing else, and no release while cut off.
    const codes2 = [...errors[1]!.keys()];
    expect(codes2.filter((k) => k.startsWith('partition')).length).toBeGreaterThan(0);
    for (const k of codes2) expect(k).toMatch(/^(partition|healed) -32002 (KEYSTORE_UNAVAILABLE|PARENT_AUDIT_UNAVAILABLE)$/);
    expect(releasedDuringPartition).toBe(0);
    // Healed without a restart: every client of instance 2 succeeded again, on the same processes.
    expect(recoveredAfterMs).toHaveLength(CLIENTS_PER_INSTANCE);
    expect(outstanding.size).toBe(0);
    for (const p of parents) expect(p.exited).toBe(false);
    expect(infra!.enclaves.map((e) => e.pid)).toEqual(enclavePids);
    expect((await rpc(two.socket, 'signer_status')).result.ready).toBe(true);

    // The guarantees. No acknowledged key lost; one key per requestId.
    const admin = cluster!.url(dbName);
    const stored = new Set(await storedKeyIds(admin));
    for (const keyId of acknowledged.values()) expect(stored.has(keyId)).toBe(true);
    const mapped = (await cluster!.sql(dbName, 'SELECT COUNT(*)::int AS n, COUNT(DISTINCT key_id)::int AS k FROM key_requests')).rows[0];
    expect(mapped).toEqual({ n: acknowledged.size, k: acknowledged.size });
    expect(stored.size).toBe(acknowledged.size);
    // Each instance's chain verifies, and every signature it released has exactly one sign record on it.
    for (const [i, p] of parents.entries()) {
      const audit = await storedAudit(admin, infra!.ca.trustRoot, p.instanceId);
      expect(audit.report.valid, `instance ${p.instanceId}: ${JSON.stringify(audit.report)}`).toBe(true);
      expect(released[i]!.length).toBeGreaterThan(0);
      const missing = released[i]!.filter((d) => audit.signedResults.get(d) !== 1);
      expect(missing, `instance ${p.instanceId}: released signatures without exactly one stored sign record`).toEqual([]);
    }
  });

  it('cut mid-transaction: the server ends host 2\'s abandoned transaction while the partition lasts, so a client failing over to host 1 with the same requestId gets its key; healed, host 2 answers that same key', async () => {
    const [one, two] = parents as [HostParent, HostParent];
    const h2 = net!.hosts[1]!;
    const requestId = 'failover-during-partition';
    const fromH2 = `client_addr = '${h2.address}'`;
    const activity = async (where: string) => Number((await cluster!.sql(dbName, `SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE ${fromH2} AND ${where}`)).rows[0].n);

    // Stall host 2's key-creation transaction inside the server (the test holds a lock its INSERT
    // into key_requests waits for), cut the link, then let the INSERT finish: the server has done
    // it, its answer is lost, and the session sits idle in its transaction — holding the
    // requestId's unique slot — waiting for a COMMIT that will never come.
    const admin = new pg.Client({ connectionString: cluster!.url(dbName) });
    await admin.connect();
    let onTwo: Promise<{ a: Answer | 'hung'; ms: number }>;
    try {
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE key_requests IN SHARE MODE');
      onTwo = ask(two.socket, 'signer_createKey', { requestId, label: requestId });
      await waitFor('host 2 waiting for the lock', async () => (await activity("wait_event_type = 'Lock'")) > 0, 3_000);
      await net!.blackhole(h2);
      await admin.query('COMMIT');
    } finally {
      await admin.end();
    }
    await waitFor('host 2 idle in its transaction', async () => (await activity("state = 'idle in transaction'")) > 0, 3_000);

    const a2 = await onTwo;
    expect(a2.a === 'hung' ? 'hung' : a2.a.error?.code).toBe(-32002);
    expect(a2.a !== 'hung' && ['KEYSTORE_UNAVAILABLE', 'PARENT_AUDIT_UNAVAILABLE'].includes(String(a2.a.error?.data?.code))).toBe(true);

    // The client fails over to host 1 with the same requestId (docs/scale-out.md) while host 2 is still cut off.
    let key: { keyId: string; address: string } | undefined;
    const failoverErrors: string[] = [];
    // Bounded by time, not attempts: each attempt may wait out a lock for up to query_timeout_ms.
    const giveUpAt = Date.now() + FAILOVER_MS;
    while (!key && Date.now() < giveUpAt) {
      const { a } = await ask(one.socket, 'signer_createKey', { requestId, label: requestId });
      if (a === 'hung') failoverErrors.push('hung');
      else if (a.error) failoverErrors.push(`${a.error.code} ${String(a.error.data?.code)} ${a.error.message}`);
      else key = a.result;
      if (!key) await new Promise((r) => setTimeout(r, 250));
    }
    const zombiesLeft = await activity("state = 'idle in transaction'");
    console.log(`[partition] failover: ${key ? 'key' : 'no key'} after ${failoverErrors.length} error(s) ${JSON.stringify([...new Set(failoverErrors)])}; sessions of host 2 idle in a transaction: ${zombiesLeft}`);
    expect(key, `host 1 could not create the key while host 2's transaction held its requestId: ${failoverErrors.join(' | ')}`).toBeDefined();
    expect(failoverErrors.filter((e) => !e.startsWith('-32002 KEYSTORE_UNAVAILABLE'))).toEqual([]);
    expect(zombiesLeft).toBe(0);

    await net!.heal(h2);
    // Healed: host 2 answers the retried request with the key host 1 made (one key per requestId).
    const again = await waitFor(
      'host 2 serving again',
      async () => {
        const { a } = await ask(two.socket, 'signer_createKey', { requestId, label: requestId });
        return a !== 'hung' && !a.error ? a.result : undefined;
      },
      30_000,
      250,
    );
    expect(again).toEqual(key);
    for (const p of parents) expect(p.exited).toBe(false);

    // Nothing of the abandoned transaction was stored: one key for the requestId, every stored key has its requestId.
    const adminUrl = cluster!.url(dbName);
    const rows = (await cluster!.sql(dbName, 'SELECT (SELECT COUNT(*)::int FROM keys) AS keys, (SELECT COUNT(*)::int FROM key_requests) AS requests, (SELECT COUNT(*)::int FROM key_requests WHERE request_id = $1) AS mine', [requestId])).rows[0];
    expect(rows).toEqual({ keys: rows.requests, requests: rows.requests, mine: 1 });
    expect(new Set(await storedKeyIds(adminUrl)).has(key!.keyId)).toBe(true);
    for (const p of parents) {
      const audit = await storedAudit(adminUrl, infra!.ca.trustRoot, p.instanceId);
      expect(audit.report.valid, `instance ${p.instanceId}: ${JSON.stringify(audit.report)}`).toBe(true);
    }
  });
});
