/**
 * Fault injection, KMS (docs/faults.md): the KMS emulator slow, refusing, or
 * unreachable — at boot (no keyring yet: first boot creates it) and mid-life
 * (a new enclave life must unlock the stored keyring while KMS is broken).
 * Real parent, real enclave process, real KMS emulator, real SQLite.
 *
 * What must hold: while KMS is broken the parent is not ready and every
 * signing request is -32002 with a reason that names KMS; an enclave that
 * already unlocked the keyring keeps signing (one KMS call per enclave life);
 * once KMS heals the parent becomes ready without a restart; no key that was
 * acknowledged is lost, and every released signature has exactly one record.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { waitFor } from '../../parent/test-helpers.js';
import { resultDigestHex, rpc, startFaultStack, storedAudit, storedKeyIds, waitReadyAgain, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-fault-kms-'));
let stack: FaultStack | undefined;
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

const released: string[] = [];
const msg = (s: string) => `0x${Buffer.from(s).toString('hex')}`;

async function signOk(address: string, text: string): Promise<void> {
  const r = await rpc(stack!.socket, 'personal_sign', [msg(text), address]);
  expect(r.error, JSON.stringify(r.error)).toBeUndefined();
  expect(await verifyMessage({ address: address as Hex, message: text, signature: r.result })).toBe(true);
  released.push(r.result);
}

/** A new enclave life: SIGKILL, the supervisor restarts it, the parent reconnects and must unlock the keyring again. */
async function newEnclaveLife(): Promise<void> {
  const pid = stack!.infra.enclave.pid;
  stack!.infra.enclave.kill('SIGKILL');
  await waitFor(() => stack!.infra.enclave.pid !== pid, 15_000, 'the supervisor restarted the enclave');
  await waitFor(() => !stack!.parent.state().ready, 15_000, 'the parent noticed the enclave went away');
}

describe('KMS faults', () => {
  let address: string;

  it('unreachable at first boot: not ready, requests are -32002 naming KMS; reachable again: the keyring is created and keys sign, without a restart', async () => {
    stack = await startFaultStack({ dataDir: join(dir, 'data'), beforeParent: (infra) => infra.kms.setFaults({ unreachable: true }), waitReady: false });
    await waitFor(() => stack!.logs.some((l) => /keyring/i.test(l) && /fail|error|unavailable|retry/i.test(l)), 60_000, 'a failed keyring attempt');
    expect(stack.parent.state().ready).toBe(false);
    const created = await rpc(stack.socket, 'signer_createKey', {});
    // The enclave's attested GenerateDataKey could not reach KMS: the reason travels to the client.
    expect(created.error).toMatchObject({ code: -32002, data: { code: 'PARENT_KEYRING_LOCKED' } });
    expect(created.error!.message).toMatch(/^keyring not unlocked: failed: KMS_\w+: KMS GenerateDataKey failed/);
    const ready = await (await fetchReadyz()).json;
    expect(ready.ready).toBe(false);
    expect(String(ready.reason)).toMatch(/KMS|kms|connect|socket|ECONNRESET|network/i);

    stack.infra.kms.setFaults({});
    await waitReadyAgain(stack);
    address = (await rpc(stack.socket, 'signer_createKey', {})).result.address;
    await signOk(address, 'after KMS came back');
  });

  it('unreachable mid-life: the unlocked enclave keeps signing; a new enclave life cannot unlock (-32002) until KMS is back; the same key signs again', async () => {
    const keys = (await storedKeyIds(stack!.keystore));
    stack!.infra.kms.setFaults({ unreachable: true });
    await signOk(address, 'KMS down, keyring already unlocked');
    const seen = stack!.logs.length;
    await newEnclaveLife();
    await waitFor(() => stack!.logs.slice(seen).some((l) => /keyring/i.test(l) && /fail|error|unavailable/i.test(l)), 60_000, 'a failed unlock');
    const down = await rpc(stack!.socket, 'personal_sign', [msg('while down'), address]);
    expect(down.error).toMatchObject({ code: -32002, data: { code: 'PARENT_KEYRING_LOCKED' } });
    expect(down.error!.message).toMatch(/^keyring not unlocked: failed: KMS_\w+: KMS Decrypt failed/);
    expect(down.result).toBeUndefined();
    stack!.infra.kms.setFaults({});
    await waitReadyAgain(stack!);
    await signOk(address, 'after the unlock');
    expect((await storedKeyIds(stack!.keystore))).toEqual(keys);
  });

  it('refusing (ThrottlingException) mid-life: -32002 with the KMS error in the reason; heals without a restart', async () => {
    stack!.infra.kms.setFaults({ refuse: 'ThrottlingException' });
    const before = stack!.infra.kms.requests;
    await newEnclaveLife();
    await waitFor(() => stack!.infra.kms.requests > before, 60_000, 'the enclave asked KMS');
    await waitFor(() => /Throttling/.test(readyReason()), 60_000, `readiness names the KMS error (now: ${readyReason()})`);
    const r = await rpc(stack!.socket, 'personal_sign', [msg('throttled'), address]);
    expect(r.error).toMatchObject({ code: -32002, data: { code: 'PARENT_KEYRING_LOCKED' } });
    expect(r.error!.message).toMatch(/KMS_THROTTLING: KMS Decrypt failed: ThrottlingException/);
    stack!.infra.kms.setFaults({});
    await waitReadyAgain(stack!);
    await signOk(address, 'after throttling');
  });

  it('slow (2 s per KMS request): the new enclave life unlocks late but unlocks; requests meanwhile are -32002, never hang past their deadline', async () => {
    stack!.infra.kms.setFaults({ delayMs: 2_000 });
    await newEnclaveLife();
    const r = await rpc(stack!.socket, 'personal_sign', [msg('slow'), address]);
    if (r.error) expect(r.error).toMatchObject({ code: -32002, data: { code: expect.stringMatching(/^PARENT_(NOT_ATTESTED|KEYRING_LOCKED)$/) } });
    else released.push(r.result);
    await waitReadyAgain(stack!);
    await signOk(address, 'after a slow unlock');
    stack!.infra.kms.setFaults({});
  });

  it('afterwards: no acknowledged key is lost, every released signature has exactly one record, the chain verifies', async () => {
    const keys = (await rpc(stack!.socket, 'signer_listKeys', {})).result as { address: string }[];
    expect(keys.map((k) => k.address)).toContain(address);
    await stack!.close();
    const audit = (await storedAudit(stack!.keystore, stack!.infra.ca.trustRoot));
    stack = undefined;
    expect(audit.report.valid, JSON.stringify(audit.report.problems ?? audit.report)).toBe(true);
    for (const s of released) expect(audit.signedResults.get(resultDigestHex(s))).toBe(1);
  });
});

function readyReason(): string {
  const s = stack!.parent.state();
  return `${s.gate.state} ${s.gate.reason ?? ''} ${s.keyring.state} ${s.keyring.reason ?? ''} ${s.lastFailure?.reason ?? ''}`;
}

async function fetchReadyz(): Promise<{ json: { ready: boolean; reason?: string } }> {
  const { httpUnix } = await import('../e2e/dev-stack.js');
  const r = await httpUnix(stack!.socket, { path: '/readyz' });
  return { json: JSON.parse(r.body) };
}
