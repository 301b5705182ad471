/**
 * examples/custody-client.mjs, run as a custody backend would run it
 * (`node examples/custody-client.mjs <socket>`), against:
 *
 *   - the dev stack: readiness, key by label (created once, then reused),
 *     EIP-1559 transaction over viem IPC, typed data, -32602 handling —
 *     every signature it printed is re-verified here;
 *   - a second enclave started with `--deny-op eth_signTypedData_v4` behind
 *     its own parent (`enclave-signer parent`): the denial arrives as 4001, the example records it,
 *     does not retry, carries on, and exits 4;
 *   - a parent (`enclave-signer parent`) that cannot reach any enclave:
 *     /readyz says why, exit 3.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTransaction, recoverTransactionAddress, recoverTypedDataAddress, type Hex, type TransactionSerialized } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_CREDENTIALS } from '../../dev/stack.js';
import { BIN, REPO, call, isAlive, startDevStack, startParentCli, waitFor, waitReady, type DevStack, type ParentProcess } from './dev-stack.js';
import { storedRecords } from '../audit-chain.js';

const EXAMPLE = join(REPO, 'examples', 'custody-client.mjs');
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-example-'));
let stack: DevStack;

beforeAll(async () => {
  stack = await startDevStack({ dataDir: join(dir, 'data') });
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Step = Record<string, any> & { step: string };

/** Runs the example asynchronously (the parents of some tests live in this process). */
function runExample(args: string[]): Promise<{ code: number; steps: Step[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [EXAMPLE, ...args], { cwd: REPO, timeout: 45_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      const steps = stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Step);
      resolve({ code: err ? (err.code as number) : 0, steps, stderr });
    });
  });
}

const byStep = (steps: Step[], name: string) => steps.find((s) => s.step === name);

/** The dev KMS credentials, in the file form `enclave-signer parent --aws-credentials file:` reads. */
function credentialsFile(): string {
  const p = join(dir, 'creds.json');
  writeFileSync(p, JSON.stringify(DEV_CREDENTIALS), { mode: 0o600 });
  return p;
}

describe('examples/custody-client.mjs', () => {
  it('against the dev stack: ready check, key by label, EIP-1559 tx over viem IPC, typed data, -32602 handled; exit 0', async () => {
    const chainId = 11155111;
    const { code, steps, stderr } = await runExample([stack.socket, '--chain-id', String(chainId), '--label', 'desk-1']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(steps.map((s) => s.step)).toEqual(['status', 'key', 'accounts', 'signTransaction', 'signTypedData', 'invalidParamsHandled', 'unknownKeyHandled', 'done']);

    const status = byStep(steps, 'status')!;
    expect(status).toMatchObject({ ok: true, image: { name: 'enclave-signer-dev' }, pcr0: expect.stringMatching(/^[0-9a-f]{96}$/) });
    const key = byStep(steps, 'key')!;
    expect(key.created).toBe(true);
    const listed = (await call(stack.socket, 'signer_listKeys', {})) as { keyId: string; label: string; address: string }[];
    expect(listed).toContainEqual(expect.objectContaining({ keyId: key.keyId, label: 'desk-1', address: key.address }));

    // Re-verify what the example printed, independently of the example's own checks.
    const rawTx = byStep(steps, 'signTransaction')!.rawTx as TransactionSerialized;
    expect(await recoverTransactionAddress({ serializedTransaction: rawTx })).toBe(key.address);
    expect(parseTransaction(rawTx)).toMatchObject({ type: 'eip1559', chainId, nonce: 0, value: 10n ** 15n });
    const typedData = {
      domain: { name: 'Custody Desk', version: '1', chainId, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
      types: { Order: [{ name: 'account', type: 'address' }, { name: 'amount', type: 'uint256' }, { name: 'nonce', type: 'uint64' }] },
      primaryType: 'Order',
      message: { account: key.address, amount: 12345n, nonce: 1n },
    } as const;
    expect(await recoverTypedDataAddress({ ...typedData, signature: byStep(steps, 'signTypedData')!.signature as Hex })).toBe(key.address);

    expect(byStep(steps, 'invalidParamsHandled')).toMatchObject({ action: 'invalid', code: -32602, field: 'chainId' });
    expect(byStep(steps, 'unknownKeyHandled')).toMatchObject({ action: 'invalid', code: -32602, field: 'keyId' });

    // A second run finds its key by label instead of creating another.
    const again = await runExample([stack.socket, '--chain-id', String(chainId), '--label', 'desk-1']);
    expect(again.code).toBe(0);
    expect(byStep(again.steps, 'key')).toMatchObject({ keyId: key.keyId, created: false });
    expect((await call(stack.socket, 'signer_listKeys', {})).filter((k: { label: string }) => k.label === 'desk-1')).toHaveLength(1);
  });

  it("a policy denial (4001) from an enclave started with --deny-op is recorded, not retried, and the run carries on; exit 4", async () => {
    const d = stack.dataDir;
    const kmsPort = /kms emulator\s*: https:\/\/127\.0\.0\.1:(\d+)/.exec(stack.output().stderr)?.[1];
    expect(kmsPort).toBeDefined();
    const enclaveSock = join(dir, 'deny-enclave.sock');
    // A second enclave of the same (simulated) image: same PCRs, so the manifest and the KMS key policy accept it.
    const enclave = spawn(
      process.execPath,
      [
        BIN, 'enclave',
        '--listen', `unix:${enclaveSock}`,
        '--nsm', 'simulated',
        '--dev-ca', join(d, 'dev-ca'),
        '--image-id', 'enclave-signer-dev',
        '--kms-region', 'us-east-1',
        '--kms-pipe', `unix:${join(d, 'run', 'kms-pipe.sock')}`,
        '--kms-endpoint', `https://localhost:${kmsPort}`,
        '--kms-ca', join(d, 'dev-ca', 'root.pem'),
        // The enclave adopts a keyring only under a pinned CMK: the dev stack's (docs/kms-policy.md).
        '--kms-key-arn', (JSON.parse(readFileSync(join(d, 'cmk.json'), 'utf8')) as { arn: string }).arn,
        '--workers', '1',
        '--deny-op', 'eth_signTypedData_v4',
      ],
      { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let enclaveLog = '';
    enclave.stderr!.setEncoding('utf8').on('data', (s: string) => (enclaveLog += s));
    let parent: ParentProcess | undefined;
    try {
      await waitFor('the deny-op enclave to listen', async () => /serving the enclave API/.test(enclaveLog), 20_000);
      parent = await startParentCli(stack, { enclave: `unix:${enclaveSock}`, socket: join(dir, 'deny-parent.sock'), keystore: join(d, 'keystore.sqlite'), credentialsFile: credentialsFile() });
      await waitReady(parent.socket, 20_000);

      const { code, steps } = await runExample([parent.socket, '--label', 'desk-1']);
      expect(code).toBe(4);
      expect(byStep(steps, 'signTransaction')).toMatchObject({ ok: true });
      expect(byStep(steps, 'signTypedData')).toEqual(expect.objectContaining({ ok: false, action: 'denied', code: 4001, reason: 'POLICY_DENIED', message: expect.stringMatching(/^denied: /) }));
      expect(steps.filter((s) => s.step === 'retry')).toEqual([]); // a denial is never retried
      expect(byStep(steps, 'done')).toMatchObject({ ok: false, denied: 1 });
      // The enclave decided, and its audit chain (stored by the parent) records both decisions,
      // signed by the same audit key: the denial names the --deny-op rule.
      const signs = storedRecords(join(d, 'keystore.sqlite')).filter((r) => r.kind === 'sign');
      const denied = signs.findLast((r) => r.op === 'eth_signTypedData_v4' && r.decision === 'denied');
      const allowed = signs.findLast((r) => r.op === 'eth_signTransaction' && r.decision === 'allowed');
      expect(denied).toMatchObject({ rule: '--deny-op', keyId: expect.stringMatching(/^[0-9a-f-]{36}$/), resultDigest: null });
      expect(allowed).toMatchObject({ keyId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(Buffer.from(denied!.auditKey).equals(Buffer.from(allowed!.auditKey))).toBe(true);
    } finally {
      await parent?.stop();
      enclave.kill('SIGTERM');
      await waitFor('the deny-op enclave to exit', async () => enclave.exitCode !== null || enclave.signalCode !== null, 10_000).catch(() => enclave.kill('SIGKILL'));
    }
    expect(isAlive(stack.pid)).toBe(true);
  });

  it('a signer that cannot reach its enclave: the example waits for /readyz, reports why, exit 3', async () => {
    const parent = await startParentCli(stack, { enclave: `unix:${join(dir, 'nobody-here.sock')}`, socket: join(dir, 'lonely.sock'), keystore: join(dir, 'lonely.sqlite'), credentialsFile: credentialsFile() });
    try {
      const { code, steps } = await runExample([parent.socket, '--ready-timeout', '1']);
      expect(code).toBe(3);
      expect(steps).toEqual([{ step: 'readyz', ok: false, reason: expect.stringMatching(/^signer not ready: enclave not attested: connecting/) }]);
    } finally {
      await parent.stop();
    }
  });

  it('usage errors exit 2', async () => {
    expect((await runExample([])).code).toBe(2);
    expect((await runExample([stack.socket, '--chain-id', 'zero'])).code).toBe(2);
    expect((await runExample([stack.socket, '--bogus'])).code).toBe(2);
  });
});
