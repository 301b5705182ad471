/**
 * Found by the soak (docs/faults.md, "The defect the soak found"): the
 * enclave seals its whole approval book — every approval with its whole
 * request, pending or closed, until its ttl — into the state it returns with
 * every stateful decision. Once that state is larger than the bridge's 1 MiB
 * frame, every window-limited or approval-gated request fails with -32000
 * BRIDGE_RESULT_TOO_LARGE. Here the host needs no approver: a few pending
 * approvals for large messages are enough.
 *
 * Fixed: the sealed state holds the approvals' digests and votes, not their
 * requests or decoded intents (enclave/policy/approvals-gate.ts `export`); the
 * requester's identical resubmission brings them back after a restart. Run
 * against the base code this test fails with -32000 BRIDGE_RESULT_TOO_LARGE.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ALLOWED, rpc, startFaultStack, writeFaultPolicy, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-fault-book-'));
let stack: FaultStack | undefined;
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

const tx = (from: string, to: string, nonce: number) => [{ from, to, value: '0x1', nonce: `0x${nonce.toString(16)}`, gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];

describe('finding (soak): the sealed approval book outgrows the bridge frame', () => {
  it('finding 1: pending approvals with large requests do not stop window-limited signing (was -32000 BRIDGE_RESULT_TOO_LARGE)', async () => {
    // The fault policy, plus: messages need 2 of 3 approvals (like a treasury's signed statements).
    const { policyFile } = writeFaultPolicy(dir, { windowSeconds: 3600, maxCount: 1000, approvalTtlSeconds: 3600 });
    const policy = JSON.parse(readFileSync(policyFile, 'utf8')) as { rules: Record<string, unknown>[] };
    policy.rules = policy.rules.filter((r) => r.id !== 'messages');
    policy.rules.push({ id: 'statements', effect: 'allow', ops: ['personal_sign'], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'], ttlSeconds: 3600 } });
    writeFileSync(policyFile, JSON.stringify(policy));
    stack = await startFaultStack({ dataDir: join(dir, 'data'), policy: policyFile });
    const address = (await rpc(stack.socket, 'signer_createKey', {})).result.address as string;
    expect((await rpc(stack.socket, 'eth_signTransaction', tx(address, ALLOWED, 0))).error).toBeUndefined();
    // The host opens approvals for 120 KB statements (no approver needed): 12 pending approvals.
    for (let i = 0; i < 12; i++) {
      const r = await rpc(stack.socket, 'personal_sign', [`0x${i.toString(16).padStart(2, '0')}${'ab'.repeat(120_000)}`, address]);
      expect(r.error, JSON.stringify(r.error).slice(0, 300)).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED' } });
    }
    const after = await rpc(stack.socket, 'eth_signTransaction', tx(address, ALLOWED, 1));
    expect(after.error, JSON.stringify(after.error)).toBeUndefined();
  });
});
