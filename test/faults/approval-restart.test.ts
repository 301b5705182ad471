/**
 * Found by the CI soak (instance scope, an enclave killed every 20 s): an approval id the
 * requester had been given (-32010, its `pending` record stored on the audit chain) was
 * `-32011 APPROVAL_UNKNOWN` for the approvers after the enclave's restart. Per instance the
 * enclave sealed its approval book only with the next state change (a window count, a vote), so an
 * enclave killed before one came back without the entry.
 *
 * Here the hostile part is only the crash (a host can kill its enclave at any moment): a -32010,
 * then SIGKILL before anything else changes the state. What must hold afterwards: the approval is
 * known (pending, no votes), shown without its request until the requester resubmits the identical
 * request (docs/principals.md, "Sealed state": requests are not sealed per instance), and the
 * 2-of-3 flow then signs a transaction a real client (viem) recovers to the key's address. Without
 * the fix (enclave/service.ts `withPendingState` sealing only in fleet scope), getApproval after the
 * restart is APPROVAL_UNKNOWN. The same in fleet scope (which sealed the entry already, and shows
 * the request after the restart: its record carries requests up to 8 KiB), so the two stay alike.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TransactionSerializedEIP1559, parseTransaction, recoverTransactionAddress } from 'viem';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { waitFor } from '../../parent/test-helpers.js';
import { approveAs, rpc, startFaultStack, storedAudit, TREASURY, waitReadyAgain, writeFaultPolicy, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-fault-approval-restart-'));
let stack: FaultStack | undefined;
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.each(['instance', 'fleet'] as const)('finding (soak): a pending approval survives an enclave crash (%s scope)', (scope) => {
  it('-32010, SIGKILL before any other state change: after the restart the approval is pending, its request is shown (fleet) or comes back with the resubmission (instance), and 2 of 3 sign', async () => {
    mkdirSync(join(dir, scope));
    const approvers = writeFaultPolicy(join(dir, scope), { windowSeconds: 3600, maxCount: 100, approvalTtlSeconds: 3600, ...(scope === 'fleet' ? { stateScope: 'fleet' } : {}) });
    stack = await startFaultStack({ dataDir: join(dir, scope, 'data'), policy: approvers.policyFile });
    expect((await rpc(stack.socket, 'signer_status')).result.policy.stateScope ?? 'instance').toBe(scope);
    const address = (await rpc(stack.socket, 'signer_createKey', {})).result.address as string;
    const tx = [{ from: address, to: TREASURY, value: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];

    const { keystore } = stack;
    const trustRoot = stack.infra.ca.trustRoot;
    const first = await rpc(stack.socket, 'eth_signTransaction', tx);
    expect(first.error).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED' } });
    const approvalId = first.error!.data!.approvalId as string;
    expect(approvalId).toMatch(/^apr_/);

    // The crash: nothing else has changed the state since the -32010.
    const pid = stack.infra.enclave.pid;
    stack.infra.enclave.kill('SIGKILL');
    await waitFor(() => stack!.infra.enclave.pid !== pid, 20_000, 'the supervisor restarted the enclave');
    await waitReadyAgain(stack);

    const shown = await rpc(stack.socket, 'signer_getApproval', { approvalId });
    expect(shown.error, JSON.stringify(shown.error)).toBeUndefined();
    expect(shown.result).toMatchObject({ approvalId, status: 'pending', approvedBy: [] });
    // Per instance requests are not sealed (docs/principals.md, "Sealed state"); the fleet's record carries those up to 8 KiB.
    if (scope === 'instance') expect(shown.result.request).toBeNull();
    else expect(shown.result.request).toMatchObject({ method: 'eth_signTransaction' });

    // The requester's identical resubmission re-attaches to the same approval and brings its request back.
    const again = await rpc(stack.socket, 'eth_signTransaction', tx);
    expect(again.error).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', approvalId } });
    expect((await rpc(stack.socket, 'signer_getApproval', { approvalId })).result.request).toMatchObject({ method: 'eth_signTransaction' });

    for (const who of ['alice', 'bob'] as const) {
      const a = await approveAs(stack.socket, approvers, who, approvalId);
      expect(a.error, JSON.stringify(a.error)).toBeUndefined();
    }
    const signed = await rpc(stack.socket, 'eth_signTransaction', tx);
    expect(signed.error, JSON.stringify(signed.error)).toBeUndefined();
    const raw = signed.result as TransactionSerializedEIP1559;
    expect(parseTransaction(raw)).toMatchObject({ to: TREASURY, chainId: 1 });
    expect((await recoverTransactionAddress({ serializedTransaction: raw })).toLowerCase()).toBe(address.toLowerCase());

    await stack.close();
    stack = undefined;
    // The chain tells the same story: pending, the crash (a new audit key), the votes, the signature.
    const audit = await storedAudit(keystore, trustRoot);
    expect(audit.report, JSON.stringify(audit.report.problems)).toMatchObject({ valid: true, gaps: [], forks: [] });
    const kinds = audit.bodies.map((b) => `${b.kind}/${b.decision}${b.rule ? `/${b.rule}` : ''}`);
    expect(kinds.filter((k) => k === 'sign/pending/treasury')).toHaveLength(2);
    expect(kinds.filter((k) => k.startsWith('approval/approved'))).toHaveLength(2);
    expect(kinds).toContain('sign/allowed/treasury');
    expect(kinds.filter((k) => k.startsWith('handover'))).toHaveLength(2);
  });
});
