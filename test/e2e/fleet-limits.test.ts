/**
 * Limits hold across instances (issue 13 §3, docs/scale-out.md "Limits across instances"):
 * `enclave-signer dev --instances 3` on one PostgreSQL keystore with a policy whose
 * `stateScope` is "fleet". A window of 12 transfers is 12 for the fleet: many concurrent
 * requests spread over the three instances never sign more, and approvals given on one
 * instance count on another — and are spent for all of them once used.
 *
 * With `stateScope: "instance"` the same race signs up to 36 (12 per enclave): the assertions
 * on the total are what fails without the shared, compare-and-swapped record.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, parseTransaction, recoverTransactionAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_AVAILABLE, startPgCluster, type PgCluster } from '../pg-cluster.js';
import { ALLOWED, TREASURY, approveAs, writeFaultPolicy, type Approvers } from '../faults/stack.js';
import { call, rpc, startDevStack, waitReady, type DevStack } from './dev-stack.js';

const WINDOW = 12;
/** Key creations the policy allows per hour (a window on the signer_createKey rule). */
const KEYS = 4;
const dir = mkdtempSync(join(tmpdir(), 'es-fleet-limits-'));
let cluster: PgCluster | undefined;
let stack: (DevStack & { sockets?: string[] }) | undefined;
let approvers: Approvers;
let dbName = '';

const tx = (from: string, to: string, nonce: number) => [{ from, to, value: '0x1', nonce: `0x${nonce.toString(16)}`, gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];

beforeAll(async () => {
  if (!PG_AVAILABLE) return;
  approvers = writeFaultPolicy(dir, { windowSeconds: 3600, maxCount: WINDOW, approvalTtlSeconds: 600, stateScope: 'fleet', createMaxCount: KEYS });
  cluster = await startPgCluster();
  const url = await cluster.createDatabase('fleetlimits');
  dbName = url.split('/').pop()!.split('?')[0]!;
  stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--instances', '3', '--keystore', url, '--policy', approvers.policyFile], timeoutMs: 150_000 });
  for (const sock of stack.sockets!) await waitReady(sock, 30_000);
}, 240_000);

afterAll(async () => {
  await stack?.stop(10_000);
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(!PG_AVAILABLE)('fleet scope: one window and one approval book for three instances', () => {
  let address = '';
  const released: Hex[] = [];

  it('every instance reports the fleet scope; the shared record is in fleet_state', async () => {
    for (const sock of stack!.sockets!) expect((await call(sock, 'signer_status')).policy.stateScope).toBe('fleet');
    address = (await call(stack!.sockets![0]!, 'signer_createKey', {})).address;
    const rows = (await cluster!.sql(dbName, 'SELECT keyring_id, sequence FROM fleet_state')).rows;
    expect(rows).toHaveLength(1);
    expect(Number(rows[0].sequence)).toBeGreaterThanOrEqual(1);
  });

  it(`60 concurrent transfers over three instances against a window of ${WINDOW}: never more than ${WINDOW} signed; then exactly ${WINDOW}`, async () => {
    const socks = stack!.sockets!;
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => rpc(socks[i % 3]!, 'eth_signTransaction', tx(address, ALLOWED, i))));
    const outcomes = new Map<string, number>();
    for (const a of answers) {
      const k = a.error ? `${a.error.code} ${a.error.data?.rule ?? a.error.data?.code ?? ''}`.trim() : 'signed';
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
      if (a.result) released.push(a.result as Hex);
    }
    // Only the window's refusal or a lost race (withheld, retryable) besides signatures.
    for (const k of outcomes.keys()) expect(['signed', '4001 eth-small', '-32002 PARENT_STATE_CONFLICT', '-32002 SEALED_STATE_STALE']).toContain(k);
    expect(released.length).toBeGreaterThan(0);
    expect(released.length).toBeLessThanOrEqual(WINDOW);
    // Fill what lost races left, one at a time round the fleet, until every instance refuses.
    let nonce = 100;
    let refusals = 0;
    for (let i = 0; refusals < 3 && i < 60; i++) {
      const a = await rpc(socks[i % 3]!, 'eth_signTransaction', tx(address, ALLOWED, nonce++));
      if (a.result) {
        released.push(a.result as Hex);
        refusals = 0;
      } else {
        expect(a.error).toMatchObject({ code: 4001, data: { rule: 'eth-small' } });
        refusals++;
      }
    }
    expect(released.length).toBe(WINDOW);
    expect(new Set(released).size).toBe(WINDOW);
    for (const raw of released) {
      expect(parseTransaction(raw).to).toBe(ALLOWED);
      expect((await recoverTransactionAddress({ serializedTransaction: raw as Parameters<typeof recoverTransactionAddress>[0]['serializedTransaction'] })).toLowerCase()).toBe(address.toLowerCase());
    }
    // The race in numbers (for the closing note / docs).
    console.log(`fleet race: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  }, 120_000);

  it(`a window on key creation is the fleet's too: 12 concurrent creations over three instances make ${KEYS - 1} more keys (one exists)`, async () => {
    const socks = stack!.sockets!;
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => rpc(socks[i % 3]!, 'signer_createKey', {})));
    let made = answers.filter((a) => a.result).length;
    for (const a of answers) if (a.error) expect(['4001 create', '-32002 PARENT_STATE_CONFLICT', '-32002 SEALED_STATE_STALE']).toContain(`${a.error.code} ${a.error.data?.rule ?? a.error.data?.code}`);
    expect(made).toBeLessThanOrEqual(KEYS - 1);
    // Creations that lost a race are not retried by the parent (the key is made before its state
    // is stored): fill the rest one by one until every instance refuses.
    for (let i = 0, refusals = 0; refusals < 3 && i < 12; i++) {
      const a = await rpc(socks[i % 3]!, 'signer_createKey', {});
      if (a.result) {
        made++;
        refusals = 0;
      } else {
        expect(a.error).toMatchObject({ code: 4001, data: { rule: 'create' } });
        refusals++;
      }
    }
    expect(made).toBe(KEYS - 1);
    expect((await call(socks[1]!, 'signer_listKeys')).length).toBe(KEYS);
  }, 60_000);

  it('an approval requested on instance 1 and given on instances 2 and 3 signs on instance 2, once for the fleet', async () => {
    const [one, two, three] = stack!.sockets!;
    const params = tx(address, TREASURY, 500);
    const first = await rpc(one!, 'eth_signTransaction', params);
    expect(first.error).toMatchObject({ code: -32010 });
    const id = String(first.error!.data!.approvalId);
    // The shared record that came with the refusal was stored, not relayed.
    expect(first.error!.data!.sealedState).toBeUndefined();
    expect((await approveAs(two!, approvers, 'alice', id)).error).toBeUndefined();
    expect((await approveAs(three!, approvers, 'bob', id)).error).toBeUndefined();
    const signed = await rpc(two!, 'eth_signTransaction', params);
    expect(signed.error).toBeUndefined();
    expect(parseTransaction(signed.result as Hex).to).toBe(TREASURY);
    // Spent for every instance: the identical request asks for approvals again, on any of them.
    for (const sock of [three!, one!]) {
      const again = await rpc(sock, 'eth_signTransaction', params);
      expect(again.error).toMatchObject({ code: -32010 });
      expect(again.error!.data!.approvalId).not.toBe(id);
    }
  }, 60_000);
});
