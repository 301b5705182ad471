/**
 * Fault injection, clock skew (docs/faults.md). The enclave process runs
 * under libfaketime (LD_PRELOAD, its offset read from a file the test
 * rewrites), so its clock jumps while the parent's does not. Real parent,
 * real enclave process, real KMS emulator, real SQLite.
 *
 * What must hold: limits and approvals are decided by the enclave's clock —
 * a policy window rolls over when enclave time says so, not parent time; an
 * approval's expiresAt is enclave time, and an approved request whose
 * approval expired (by enclave time) does not sign; the answers stay clear
 * (4001 with the window's rule, -32010 with a fresh approval).
 *
 * Skipped (and says so) where libfaketime is not installed; .ci/run installs it.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTransaction, type Hex } from 'viem';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { DEV_CREDENTIALS, type DevInfra } from '../../dev/stack.js';
import { httpUnix, startParentCli, waitFor, waitReady, type ParentProcess } from '../e2e/dev-stack.js';
import { ALLOWED, TREASURY, approveAs, resultDigestHex, rpc, startFaultStack, startInfra, storedAudit, writeFaultPolicy, type Approvers, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => existsSync(p));
const dir = mkdtempSync(join(tmpdir(), 'es-fault-clock-'));
const offsetFile = join(dir, 'enclave-clock');
let stack: FaultStack | undefined;
let approvers: Approvers;
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Moves the enclave's clock to real time + `seconds`; libfaketime re-reads the file at most every second. */
async function skewEnclave(seconds: number): Promise<void> {
  writeFileSync(offsetFile, `${seconds >= 0 ? '+' : ''}${seconds}s\n`);
  await new Promise((r) => setTimeout(r, 2_200));
}

const tx = (to: string, nonce: number) => [{ from: '', to, value: '0x1', nonce: `0x${nonce.toString(16)}`, gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];

describe.skipIf(!LIBFAKETIME)('clock skew on the enclave (libfaketime)', () => {
  let address: string;
  const released: string[] = [];
  const sign = async (to: string, nonce: number) => {
    const p = tx(to, nonce);
    p[0]!.from = address;
    const r = await rpc(stack!.socket, 'eth_signTransaction', p);
    if (r.result) released.push(r.result);
    return r;
  };

  it('a window counts by enclave time: full now, open again only when the enclave clock has moved past it (the parent clock never moved)', async () => {
    writeFileSync(offsetFile, '+0s\n');
    approvers = writeFaultPolicy(dir, { windowSeconds: 3600, maxCount: 2, approvalTtlSeconds: 600 });
    stack = await startFaultStack({
      dataDir: join(dir, 'data'),
      policy: approvers.policyFile,
      enclaveEnv: { LD_PRELOAD: LIBFAKETIME!, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    });
    address = (await rpc(stack.socket, 'signer_createKey', {})).result.address;
    expect((await sign(ALLOWED, 0)).error).toBeUndefined();
    expect((await sign(ALLOWED, 1)).error).toBeUndefined();
    const full = await sign(ALLOWED, 2);
    expect(full.error).toMatchObject({ code: 4001, data: { code: 'POLICY_DENIED', rule: 'eth-small' } });

    // 30 minutes later by the enclave's clock: still inside the window.
    await skewEnclave(1800);
    expect((await sign(ALLOWED, 3)).error).toMatchObject({ code: 4001, data: { rule: 'eth-small' } });
    // Two hours later by the enclave's clock: the window has rolled over.
    await skewEnclave(7200);
    const open = await sign(ALLOWED, 4);
    expect(open.error).toBeUndefined();
    expect(parseTransaction(open.result as Hex).to).toBe(ALLOWED);
  });

  it("an approval's expiresAt is enclave time; an approved request whose approval expired by enclave time does not sign", async () => {
    const first = await sign(TREASURY, 10);
    expect(first.error).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', rule: 'treasury' } });
    const expiresAt = first.error!.data!.expiresAt as number;
    // ttl 600 s from the enclave's now (real time + 7200 s), not from the parent's.
    const realNow = Math.floor(Date.now() / 1000);
    expect(expiresAt - realNow).toBeGreaterThan(7200 + 600 - 120);
    expect(expiresAt - realNow).toBeLessThan(7200 + 600 + 120);
    const id = first.error!.data!.approvalId as string;
    expect((await approveAs(stack!.socket, approvers, 'alice', id)).error).toBeUndefined();
    const b = await approveAs(stack!.socket, approvers, 'bob', id);
    expect(b.error).toBeUndefined();
    expect(b.result).toMatchObject({ status: 'approved' });

    // The enclave's clock passes expiresAt before the request comes back.
    await skewEnclave(7200 + 1200);
    const late = await sign(TREASURY, 10);
    expect(late.result).toBeUndefined();
    expect(late.error!.code).toBe(-32010);
    expect(late.error!.data!.approvalId).not.toBe(id);
    const shown = await rpc(stack!.socket, 'signer_getApproval', { approvalId: id });
    expect(late.error).toMatchObject({ data: { code: 'APPROVAL_REQUIRED', rule: 'treasury' } });
    expect(late.error!.message).toMatch(/\(0 so far\)/);
    // The expired approval is gone (swept by enclave time): -32011 APPROVAL_UNKNOWN.
    expect(shown.error).toMatchObject({ code: -32011, data: { code: 'APPROVAL_UNKNOWN' } });
  });

  it('afterwards: every released signature has exactly one record and the chain verifies', async () => {
    await stack!.close();
    const audit = (await storedAudit(stack!.keystore, stack!.infra.ca.trustRoot));
    stack = undefined;
    expect(released).toHaveLength(3);
    for (const s of released) expect(audit.signedResults.get(resultDigestHex(s))).toBe(1);
    expect(audit.report, JSON.stringify(audit.report.problems)).toMatchObject({ valid: true, gaps: [], forks: [] });
  });
});

/**
 * The host skews the parent's clock (the parent is the real CLI process under
 * libfaketime; the enclave keeps real time). No decision uses the parent's
 * clock, so a window stays full; the one thing the parent's clock does check —
 * the attestation certificate's validity (~3 h leaves) — fails closed when the
 * skew is larger than that.
 */
describe.skipIf(!LIBFAKETIME)("clock skew on the parent (the host's own clock)", () => {
  const pdir = mkdtempSync(join(tmpdir(), 'es-fault-pclock-'));
  const dataDir = join(pdir, 'data');
  let infra: DevInfra | undefined;
  let parent: ParentProcess | undefined;
  afterAll(async () => {
    await parent?.stop().catch(() => {});
    await infra?.close();
    rmSync(pdir, { recursive: true, force: true });
  });

  /** `enclave-signer parent` with FAKETIME for that process only (spawned synchronously inside startParentCli). */
  function parentAt(faketime: string | undefined, socket: string): Promise<ParentProcess> {
    const creds = join(pdir, 'creds.json');
    writeFileSync(creds, JSON.stringify(DEV_CREDENTIALS), { mode: 0o600 });
    const env = faketime ? { LD_PRELOAD: LIBFAKETIME!, FAKETIME: faketime, FAKETIME_DONT_FAKE_MONOTONIC: '1' } : {};
    const saved = Object.keys(env).map((k) => [k, process.env[k]] as const);
    Object.assign(process.env, env);
    try {
      return startParentCli({ dataDir }, { enclave: infra!.enclave.uri, socket: join(pdir, socket), keystore: infra!.paths.keystore, credentialsFile: creds, extra: ['--kms-key-id', infra!.cmkArn] });
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }

  it('a parent clock 2 h ahead does not reopen a full 1-hour window (the enclave decides by its own clock)', async () => {
    const policy = writeFaultPolicy(pdir, { windowSeconds: 3600, maxCount: 2, approvalTtlSeconds: 600 });
    ({ infra } = await startInfra(dataDir, { policy: policy.policyFile }));
    parent = await parentAt(undefined, 'p0.sock');
    await waitReady(parent.socket, 45_000);
    const address = (await rpc(parent.socket, 'signer_createKey', {})).result.address as string;
    const send = (socket: string, nonce: number) => rpc(socket, 'eth_signTransaction', [{ ...tx(ALLOWED, nonce)[0], from: address }]);
    expect((await send(parent.socket, 0)).error).toBeUndefined();
    expect((await send(parent.socket, 1)).error).toBeUndefined();
    expect((await send(parent.socket, 2)).error).toMatchObject({ code: 4001, data: { rule: 'eth-small' } });
    await parent.stop();

    parent = await parentAt('+2h', 'p1.sock');
    await waitReady(parent.socket, 45_000);
    const skewed = await send(parent.socket, 3);
    expect(skewed.result).toBeUndefined();
    expect(skewed.error).toMatchObject({ code: 4001, data: { code: 'POLICY_DENIED', rule: 'eth-small' } });
    await parent.stop();
    parent = undefined;
  });

  it('a parent clock a day ahead refuses the enclave (its attestation certificate is expired at that time): not ready, -32002 PARENT_NOT_ATTESTED', async () => {
    const socket = join(pdir, 'p2.sock');
    parent = await parentAt('+1d', 'p2.sock');
    const reason = await waitFor(
      'a failed attestation',
      async () => {
        const r = JSON.parse((await httpUnix(socket, { path: '/readyz' })).body) as { ready: boolean; reason?: string };
        return !r.ready && /expired|not valid|validity|certificate/i.test(`${r.reason}`) ? String(r.reason) : undefined;
      },
      45_000,
    );
    expect(reason).toMatch(/^enclave not attested/);
    const s = await rpc(socket, 'signer_createKey', {});
    expect(s.error).toMatchObject({ code: -32002, data: { code: 'PARENT_NOT_ATTESTED' } });
  });
});
