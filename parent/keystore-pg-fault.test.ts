/**
 * Fault: PostgreSQL stopped, then restarted, under load (issue 13 §4; docs/keystore.md
 * "When PostgreSQL goes away"). While it is down every client gets -32002 within its
 * deadline (bounded connect and query timeouts, never a hang); once it is back the same
 * parent serves again (no restart); no acknowledged key is lost; retried key creations
 * under a requestId never make a second key; the enclave signs no more than was asked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_AVAILABLE, startPgCluster, type PgCluster } from '../test/pg-cluster.js';
import { rpc, startRig, within, type Rig } from './test-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'es-pg-fault-'));
let cluster: PgCluster | undefined;
let rig: Rig | undefined;
beforeAll(async () => {
  if (PG_AVAILABLE) cluster = await startPgCluster();
}, 120_000);
afterAll(async () => {
  await rig?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** A client's own deadline: a request not answered by then counts as hung. */
const CLIENT_DEADLINE_MS = 20_000;
const CLIENTS = 8;

const ask = (socket: string, method: string, params: unknown) => within(rpc(socket, method, params), CLIENT_DEADLINE_MS);

describe.skipIf(!PG_AVAILABLE)('fault: PostgreSQL stopped and restarted under load', () => {
  it('clients get -32002 within their deadline while it is down, the same parent recovers, no acknowledged key is lost, nothing is made or signed twice', async () => {
    const url = `${await cluster!.createDatabase('fault')}&connect_timeout_ms=1000&query_timeout_ms=3000&pool_max=8`;
    rig = await startRig({ dir, parent: { keystore: url, requestTimeoutMs: 10_000 } });
    const socket = rig.socket;
    const signer = (await rpc(socket, 'signer_createKey', { label: 'signer', requestId: 'signer' })).result;
    expect(signer.address).toMatch(/^0x/);

    let phase: 'before' | 'down' | 'after' = 'before';
    let stopLoad = false;
    const acknowledged = new Map<string, string>(); // requestId → keyId, as clients were told
    const requestIds = new Set<string>();
    const outstanding = new Set<string>(); // requestIds whose last attempt failed (to retry)
    const errorsDown = new Map<string, number>();
    const unexpected: string[] = [];
    let hung = 0;
    let signsAsked = 0;
    let signsOk = 0;
    let maxDownMs = 0;
    const recoveredAfter: number[] = [];
    let upAt = 0;

    const client = async (c: number) => {
      let n = 0;
      let recovered = false;
      while (!stopLoad) {
        const create = n % 2 === 0;
        let requestId = `c${c}-${n}`;
        // A failed creation is retried under the same requestId (the client never saw a key).
        const retry = [...outstanding].find((r) => r.startsWith(`c${c}-`));
        if (create && retry) requestId = retry;
        n++;
        const seenPhase = phase;
        if (create) requestIds.add(requestId);
        else signsAsked++;
        const { a, ms } = create
          ? await ask(socket, 'signer_createKey', { requestId, label: `k-${requestId}` })
          : await ask(socket, 'personal_sign', [`0x${Buffer.from(`m${c}-${n}`).toString('hex')}`, signer.address]);
        if (a === 'hung') {
          hung++;
          continue;
        }
        if (seenPhase === 'down' || phase === 'down') maxDownMs = Math.max(maxDownMs, ms);
        if (a.error) {
          if (create) outstanding.add(requestId);
          if (a.error.code === -32002) {
            const k = String(a.error.data?.code);
            errorsDown.set(k, (errorsDown.get(k) ?? 0) + 1);
          } else unexpected.push(`${a.error.code} ${a.error.message}`);
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        if (create) {
          outstanding.delete(requestId);
          const prev = acknowledged.get(requestId);
          if (prev !== undefined && prev !== a.result.keyId) unexpected.push(`requestId ${requestId} answered two keys`);
          acknowledged.set(requestId, a.result.keyId);
        } else {
          signsOk++;
          if (!(await verifyMessage({ address: signer.address, message: { raw: `0x${Buffer.from(`m${c}-${n}`).toString('hex')}` as Hex }, signature: a.result }))) unexpected.push('bad signature');
        }
        if (phase === 'after' && !recovered) {
          recovered = true;
          recoveredAfter.push(performance.now() - upAt);
        }
      }
    };

    const load = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    await new Promise((r) => setTimeout(r, 1500));
    const ackBeforeDown = acknowledged.size;
    phase = 'down';
    await cluster!.stopServer('fast');
    await new Promise((r) => setTimeout(r, 4000));
    await cluster!.startServer();
    upAt = performance.now();
    phase = 'after';
    // Until every client has succeeded again (or a generous bound), then until every failed creation was retried.
    for (let i = 0; i < 600 && recoveredAfter.length < CLIENTS; i++) await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 300 && outstanding.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
    stopLoad = true;
    await load;

    // While it was down: -32002 only, each within the client's deadline.
    expect(unexpected).toEqual([]);
    expect(hung).toBe(0);
    expect([...errorsDown.values()].reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
    for (const code of errorsDown.keys()) expect(['KEYSTORE_UNAVAILABLE', 'PARENT_AUDIT_UNAVAILABLE']).toContain(code);
    // Recovered without a restart: every client succeeded again on the same parent.
    expect(recoveredAfter).toHaveLength(CLIENTS);
    expect(ackBeforeDown).toBeGreaterThan(0);
    expect(outstanding.size).toBe(0);

    // No acknowledged key lost; one key per requestId, never a second.
    const listed = new Map<string, { keyId: string; label: string }>((await rpc(socket, 'signer_listKeys')).result.map((k: { keyId: string; label: string }) => [k.keyId, k]));
    for (const keyId of acknowledged.values()) expect(listed.has(keyId)).toBe(true);
    expect(listed.size).toBe(requestIds.size + 1); // + the signer key
    const db = url.split('/').pop()!.split('?')[0]!;
    const mapped = (await cluster!.sql(db, 'SELECT COUNT(*)::int AS n, COUNT(DISTINCT key_id)::int AS k FROM key_requests')).rows[0];
    expect(mapped).toEqual({ n: requestIds.size + 1, k: requestIds.size + 1 });
    // The enclave signed no more than was asked (a signature withheld for its audit record counts once).
    expect(rig.enclave!.calls.get('sign') ?? 0).toBeLessThanOrEqual(signsAsked);
    expect(signsOk).toBeGreaterThan(0);
    // The audit chain in the store has no hole: every seq from 0 to the head.
    const chain = (await cluster!.sql(db, "SELECT COUNT(*)::int AS n, MAX(seq)::int AS head FROM audit_records WHERE instance_id = 'default'")).rows[0];
    expect(chain.n).toBe(chain.head + 1);

    console.log(
      `[pg-fault] clients ${CLIENTS}; keys acknowledged ${acknowledged.size} (${ackBeforeDown} before the stop); signatures ${signsOk}/${signsAsked}; ` +
        `-32002 while down: ${JSON.stringify(Object.fromEntries(errorsDown))}; slowest answer while down ${Math.round(maxDownMs)} ms; ` +
        `recovery after restart: first ${Math.round(Math.min(...recoveredAfter))} ms, all clients ${Math.round(Math.max(...recoveredAfter))} ms`,
    );
  });
});
