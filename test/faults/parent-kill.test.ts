/**
 * Fault injection, the parent process (docs/faults.md): killed (SIGKILL)
 * between the enclave's answer and persisting its audit record. The parent is
 * the real `enclave-signer parent` CLI process; the enclave a real child
 * process; the keystore real SQLite.
 *
 * How the window is held open without a hook in the product: the test takes
 * the keystore's SQLite write lock (BEGIN IMMEDIATE from its own connection),
 * so the enclave signs and answers, and the parent cannot make the record
 * durable (it waits for the lock, then withholds the result with -32002
 * PARENT_AUDIT_UNAVAILABLE and keeps the record pending). The parent is
 * killed in that state, the lock released, and a new parent started.
 *
 * What must hold: the client never gets a signature whose record is not
 * stored; the next parent learns the unfinished record from the enclave
 * (`audit.open` → the records after the stored head), logs it and stores it;
 * `enclave-signer audit verify` accepts the chain (no gap, no fork); nothing
 * acknowledged is lost.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEV_CREDENTIALS, type DevInfra } from '../../dev/stack.js';
import { startParent, type RunningParent } from '../../parent/main.js';
import { waitFor } from '../../parent/test-helpers.js';
import { BIN, REPO, sleep, startParentCli, waitReady, type ParentProcess } from '../e2e/dev-stack.js';
import { parentConfig, resultDigestHex, rpc, startInfra, storedAudit, storedKeyIds } from './stack.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-fault-parent-'));
const dataDir = join(dir, 'data');
let infra: DevInfra;
let cliParent: ParentProcess | undefined;
let parent: RunningParent | undefined;
const logs: string[] = [];

beforeAll(async () => {
  ({ infra } = await startInfra(dataDir));
});
afterAll(async () => {
  await cliParent?.stop().catch(() => {});
  await parent?.close().catch(() => {});
  await infra?.close();
  rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: REPO, timeout: 60_000 }, (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('parent killed between the enclave answer and the persist', () => {
  it('the client never gets the unrecorded signature; the next parent stores the unfinished record; audit verify accepts the chain', async () => {
    const creds = join(dir, 'creds.json');
    writeFileSync(creds, JSON.stringify(DEV_CREDENTIALS), { mode: 0o600 });
    const keystore = infra.paths.keystore;
    const socket = join(dir, 'cli.sock');
    cliParent = await startParentCli({ dataDir }, { enclave: infra.enclave.uri, socket, keystore, credentialsFile: creds, extra: ['--kms-key-id', infra.cmkArn] });
    await waitReady(socket, 45_000);
    const address = (await rpc(socket, 'signer_createKey', {})).result.address as string;
    const warm = await rpc(socket, 'personal_sign', ['0x7761726d', address]);
    expect(warm.error).toBeUndefined();
    const keys = (await storedKeyIds(keystore));
    const before = (await storedAudit(keystore, infra.ca.trustRoot)).bodies.length;

    // Hold the keystore's write lock: the parent can read, not write.
    const db = new Database(keystore);
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN IMMEDIATE');
    let answer: Awaited<ReturnType<typeof rpc>> | Error;
    try {
      const text = 'killed before persist';
      answer = await rpc(socket, 'personal_sign', [`0x${Buffer.from(text).toString('hex')}`, address]).catch((e: Error) => e);
      // The enclave signed; the parent could not store the record, so the client did not get the result.
      expect(answer).not.toBeInstanceOf(Error);
      const a = answer as Awaited<ReturnType<typeof rpc>>;
      expect(a.result).toBeUndefined();
      expect(a.error).toMatchObject({ code: -32002, data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
      expect(a.error!.message).toMatch(/audit record could not be stored/);
      // The record is still pending in the parent's memory when it dies.
      process.kill(cliParent.pid, 'SIGKILL');
      await cliParent.stop();
      cliParent = undefined;
      await sleep(100);
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
    expect((await storedAudit(keystore, infra.ca.trustRoot)).bodies.length).toBe(before);

    // The next parent (same keystore, same enclave life): audit.open hands it the unfinished record.
    parent = await startParent(parentConfig(infra, join(dir, 'signer.sock'), keystore, logs));
    await waitFor(() => parent!.state().ready, 45_000, `ready (logs: ${logs.slice(-10).join(' | ')})`);
    expect(logs.join('\n')).toMatch(/audit: 1 unfinished record\(s\) seq \d+\.\.\d+ were decided by this enclave but never stored/);
    expect(logs.join('\n')).not.toMatch(/GAP/);
    const after = (await storedAudit(keystore, infra.ca.trustRoot));
    expect(after.bodies.length).toBe(before + 1);
    expect(after.bodies.at(-1)).toMatchObject({ kind: 'sign', decision: 'allowed', op: 'personal_sign' });
    expect(after.report).toMatchObject({ valid: true, gaps: [], forks: [] });

    // The same request again is a new decision and a new record: the client asked twice.
    const text = 'killed before persist';
    const again = await rpc(join(dir, 'signer.sock'), 'personal_sign', [`0x${Buffer.from(text).toString('hex')}`, address]);
    expect(await verifyMessage({ address: address as Hex, message: text, signature: again.result })).toBe(true);
    expect((await storedKeyIds(keystore))).toEqual(keys);
    await parent.close();
    parent = undefined;
    const final = (await storedAudit(keystore, infra.ca.trustRoot));
    // personal_sign is deterministic (RFC 6979): the withheld and the released signature are the same bytes, and
    // both decisions are on the chain — one withheld (recovered after the kill), one released.
    expect(final.signedResults.get(resultDigestHex(again.result))).toBe(2);
    expect(final.signedResults.get(resultDigestHex(warm.result))).toBe(1);

    const v = await cli(['audit', 'verify', '--keystore', keystore, '--root', join(dataDir, 'dev-ca', 'root.pem'), '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ valid: true, gaps: [], forks: [] });
  });
});
