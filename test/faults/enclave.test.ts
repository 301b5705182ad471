/**
 * Fault injection, the enclave process (docs/faults.md): SIGKILL (a crash)
 * and SIGSTOP (a hang) while requests are in flight. Real parent, real
 * enclave child process (restarted by the dev supervisor, as Nitro restarts a
 * crashed enclave), real KMS emulator, real SQLite keystore.
 *
 * What must hold: a request in flight ends with a signature or with -32002
 * (PARENT_ENCLAVE_UNAVAILABLE / PARENT_NOT_ATTESTED / PARENT_AUDIT_UNAVAILABLE)
 * within the parent's request deadline — never a hang, never another code;
 * the parent reconnects, re-attests and unlocks the keyring once the enclave
 * is back; every released signature has exactly one stored record (nothing
 * signed twice behind the client's back); no acknowledged key is lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { waitFor } from '../../parent/test-helpers.js';
import { waitFor as waitUntil } from '../e2e/dev-stack.js';
import { resultDigestHex, rpc, startFaultStack, storedAudit, storedKeyIds, waitReadyAgain, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const DEADLINE_MS = 3_000;
const UNAVAILABLE = /^PARENT_(ENCLAVE_UNAVAILABLE|NOT_ATTESTED|AUDIT_UNAVAILABLE)$/;
const dir = mkdtempSync(join(tmpdir(), 'es-fault-enclave-'));
let stack: FaultStack;
let address: string;
let keys: string[];
const released: string[] = [];
let n = 0;

beforeAll(async () => {
  stack = await startFaultStack({ dataDir: join(dir, 'data'), parent: { requestTimeoutMs: DEADLINE_MS } });
  address = (await rpc(stack.socket, 'signer_createKey', {})).result.address;
  await rpc(stack.socket, 'signer_createKey', { kind: 'bip32-seed' });
  keys = (await storedKeyIds(stack.keystore));
});
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  text: string;
  result?: string;
  error?: { code: number; message: string; data?: { code?: string } };
}

/** `count` personal_signs at once, each with its own message; calls `during` once the first has answered. */
async function burst(count: number, during: () => void): Promise<Outcome[]> {
  let fired = false;
  const jobs = Array.from({ length: count }, async (): Promise<Outcome> => {
    const text = `burst ${++n}`;
    const r = await rpc(stack.socket, 'personal_sign', [`0x${Buffer.from(text).toString('hex')}`, address]);
    if (!fired) {
      fired = true;
      during();
    }
    return { text, ...(r.error ? { error: r.error } : { result: r.result }) };
  });
  return Promise.all(jobs);
}

async function check(outcomes: Outcome[]): Promise<{ ok: number; refused: number }> {
  let ok = 0;
  let refused = 0;
  for (const o of outcomes) {
    if (o.result !== undefined) {
      expect(await verifyMessage({ address: address as Hex, message: o.text, signature: o.result as Hex })).toBe(true);
      released.push(o.result);
      ok++;
    } else {
      // A clear, retryable answer: the enclave is unavailable — never another code, never a hang.
      expect(o.error).toMatchObject({ code: -32002, data: { code: expect.stringMatching(UNAVAILABLE) } });
      refused++;
    }
  }
  return { ok, refused };
}

describe('enclave faults', () => {
  it('SIGKILL with requests in flight: each ends signed or -32002; the supervisor restarts it; the parent reconnects and signs again', async () => {
    const pid = stack.infra.enclave.pid;
    const outcomes = await burst(120, () => stack.infra.enclave.kill('SIGKILL'));
    const { refused } = await check(outcomes);
    // In flight when the process died: they were answered at once (connection lost), not at the deadline.
    for (const o of outcomes.filter((x) => x.error?.data?.code === 'PARENT_ENCLAVE_UNAVAILABLE')) expect(o.error!.message).toMatch(/^enclave unavailable/);
    expect(refused + outcomes.filter((o) => o.result).length).toBe(120);
    await waitFor(() => stack.infra.enclave.pid !== pid, 15_000, 'restarted');
    await waitReadyAgain(stack);
    await check(await burst(5, () => {}));
    expect((await storedKeyIds(stack.keystore))).toEqual(keys);
  });

  it('SIGSTOP (hang) with requests in flight: each ends within the deadline with -32002 (or was signed before the stop); SIGCONT: it serves again without a restart', async () => {
    const outcomes = await burst(60, () => stack.infra.enclave.kill('SIGSTOP'));
    const { refused } = await check(outcomes);
    // No timing assertion (the machine is shared): the parent's own deadline answered them, and says so.
    for (const o of outcomes.filter((x) => x.error)) expect(o.error!.message).toMatch(new RegExp(`^enclave unavailable: (no response to "sign" within ${DEADLINE_MS} ms|the connection was lost)`));
    // While it is stopped, a new request gets its answer at the deadline, not never.
    const hung = await rpc(stack.socket, 'personal_sign', ['0x68756e67', address]);
    expect(hung.error).toMatchObject({ code: -32002, data: { code: expect.stringMatching(UNAVAILABLE) } });
    expect(hung.error!.message).toMatch(new RegExp(`^enclave unavailable: no response to "sign" within ${DEADLINE_MS} ms`));
    expect(refused).toBeGreaterThan(0);
    stack.infra.enclave.kill('SIGCONT');
    await waitReadyAgain(stack);
    await waitUntil('signing again after SIGCONT', async () => !(await rpc(stack.socket, 'personal_sign', ['0x6f6b', address])).error, 30_000);
    await check(await burst(5, () => {}));
  });

  it('SIGSTOP, then SIGKILL (an operator kills the hung enclave): the parent reconnects to the new life and signs', async () => {
    const pid = stack.infra.enclave.pid;
    stack.infra.enclave.kill('SIGSTOP');
    const hung = await rpc(stack.socket, 'personal_sign', ['0x68756e6732', address]);
    expect(hung.error).toMatchObject({ code: -32002 });
    stack.infra.enclave.kill('SIGKILL');
    await waitFor(() => stack.infra.enclave.pid !== pid, 15_000, 'restarted');
    await waitReadyAgain(stack);
    await check(await burst(5, () => {}));
  });

  it('afterwards: no acknowledged key lost; every released signature has exactly one record; the stored chain verifies', async () => {
    expect((await storedKeyIds(stack.keystore))).toEqual(keys);
    await stack.close();
    const audit = (await storedAudit(stack.keystore, stack.infra.ca.trustRoot));
    for (const s of released) expect(audit.signedResults.get(resultDigestHex(s))).toBe(1);
    // A killed enclave's records that no parent stored die with it (none was released); the next
    // life's hand-over continues from the stored head, so the stored chain has no gap and no fork.
    // Records of requests answered -32002 at the deadline were fetched (audit.records) and stored.
    expect(audit.report, JSON.stringify(audit.report.problems)).toMatchObject({ valid: true, gaps: [], forks: [] });
  });
});
