/**
 * Fault injection, the keystore's disk (docs/faults.md): full, and read-only.
 * The keystore (SQLite, WAL) lives on a small tmpfs this test mounts (it
 * needs root: CI runs as root; elsewhere the tests are skipped and say so).
 * Real parent, real enclave process, real KMS emulator.
 *
 * - Full: the filesystem fills while the appliance runs. Signatures whose
 *   audit record cannot be stored are never released: -32002
 *   PARENT_AUDIT_UNAVAILABLE (SQLITE_FULL in the message); a new key cannot be
 *   acknowledged: -32002 KEYSTORE_UNAVAILABLE. Once there is room again it
 *   signs without a restart, the withheld records are stored, and nothing
 *   acknowledged is missing.
 * - Read-only: Linux refuses to remount a filesystem read-only while a
 *   process has a file on it open for writing ("mount point is busy"), so a
 *   keystore turns read-only between parent lives (an operator's remount, or
 *   the kernel's errors=remount-ro followed by a restart). The parent then
 *   refuses to start with a clear error (KEYSTORE_UNAVAILABLE) — even with
 *   --keystore-readonly, because SQLite cannot open a WAL database on
 *   read-only media without its -shm file (a known limitation, reported);
 *   remounted read-write, a restarted parent serves every key it ever
 *   acknowledged. A keystore opened --keystore-readonly on a writable disk
 *   is test/hostile-host/audit.test.ts and test/e2e/badinput.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { startParent } from '../../parent/main.js';
import { parentConfig, resultDigestHex, rpc, startFaultStack, storedAudit, storedKeyIds, waitReadyAgain, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-fault-disk-'));
const mnt = join(dir, 'mnt');
mkdirSync(mnt);

/** Whether this process may mount a tmpfs (root, and not forbidden by the container). */
const canMount = (() => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { stdio: 'ignore' });
    execFileSync('umount', [mnt], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let stack: FaultStack | undefined;
let mounted = false;
afterAll(async () => {
  await stack?.close().catch(() => {});
  if (mounted) execFileSync('umount', ['-l', mnt]);
  rmSync(dir, { recursive: true, force: true });
});

const released: string[] = [];
const hex = (s: string) => `0x${Buffer.from(s).toString('hex')}`;

function fill(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(16 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch {
    // ENOSPC: the filesystem is full
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(!canMount)('keystore disk faults (tmpfs)', () => {
  let address: string;
  let acknowledged: string[];

  it('full while running: signatures withheld (-32002 PARENT_AUDIT_UNAVAILABLE, SQLITE_FULL), new keys refused (-32002); room again: signs without a restart', async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    mounted = true;
    stack = await startFaultStack({ dataDir: join(dir, 'data'), keystore: join(mnt, 'keystore.sqlite') });
    address = (await rpc(stack.socket, 'signer_createKey', {})).result.address;
    await rpc(stack.socket, 'signer_createKey', { kind: 'bip32-seed' });
    acknowledged = (await storedKeyIds(stack.keystore));

    const filler = join(mnt, 'filler');
    fill(filler);
    let refused: { code: number; message: string; data?: Record<string, unknown> } | undefined;
    for (let i = 0; i < 400 && !refused; i++) {
      const text = `full ${i} ${'x'.repeat(200)}`;
      const s = await rpc(stack.socket, 'personal_sign', [hex(text), address]);
      if (s.error) refused = s.error;
      else released.push(s.result);
    }
    expect(refused).toMatchObject({ code: -32002, message: expect.stringMatching(/audit record could not be stored.*SQLITE_FULL/), data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
    const key = await rpc(stack.socket, 'signer_createKey', {});
    expect(key.result).toBeUndefined();
    expect(key.error).toMatchObject({ code: -32002, data: { code: expect.stringMatching(/^(KEYSTORE_UNAVAILABLE|PARENT_AUDIT_UNAVAILABLE)$/) } });
    // The fault lasts: still refused, still a clear answer (the connection and other clients are fine).
    const again = await rpc(stack.socket, 'personal_sign', [hex('still full'), address]);
    expect(again.error).toMatchObject({ code: -32002, data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
    expect((await rpc(stack.socket, 'signer_listKeys', {})).result).toHaveLength(2);

    rmSync(filler);
    const text = 'room again';
    const ok = await rpc(stack.socket, 'personal_sign', [hex(text), address]);
    expect(ok.error).toBeUndefined();
    expect(await verifyMessage({ address: address as Hex, message: text, signature: ok.result })).toBe(true);
    released.push(ok.result);
    const k3 = await rpc(stack.socket, 'signer_createKey', {});
    expect(k3.error).toBeUndefined();
    acknowledged = (await storedKeyIds(stack.keystore));
    expect(acknowledged).toHaveLength(3);
  });

  it('read-only: the remount waits for the parent to close the keystore; then a parent refuses to start on it (KEYSTORE_UNAVAILABLE), read-write or --keystore-readonly', async () => {
    // While the parent holds the keystore open for writing, Linux refuses the remount.
    expect(() => execFileSync('mount', ['-o', 'remount,ro', mnt], { stdio: 'pipe' })).toThrow(/busy/);
    await stack!.parent.close();
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const socket = join(dir, 'ro.sock');
    const logs: string[] = [];
    const rw = await startParent(parentConfig(stack!.infra, socket, stack!.keystore, logs)).catch((e: unknown) => e);
    expect(rw).toMatchObject({ code: 'KEYSTORE_UNAVAILABLE', message: expect.stringMatching(/^keystore open failed/) });
    // Known limitation (reported, parent/keystore.ts is not this suite's): the keystore is in WAL
    // mode, and SQLite cannot open a WAL database on read-only media once its -shm file is gone (a
    // clean close removes it), so --keystore-readonly fails the same way there. Fail closed, clear error.
    const ro = await startParent(parentConfig(stack!.infra, socket, stack!.keystore, logs, { keystoreReadonly: true })).catch((e: unknown) => e);
    expect(ro).toMatchObject({ code: 'KEYSTORE_UNAVAILABLE', message: expect.stringMatching(/^keystore (open|read) failed: .*(SQLITE_CANTOPEN|unable to open)/) });
    expect(logs.join('\n')).not.toMatch(/ready/);
  });

  it('read-write again: a restarted parent serves every acknowledged key and signs; every released signature has exactly one record; the chain verifies', async () => {
    execFileSync('mount', ['-o', 'remount,rw', mnt]);
    await stack!.restartParent();
    await waitReadyAgain(stack!);
    expect((await storedKeyIds(stack!.keystore))).toEqual(acknowledged);
    const text = 'rw again';
    const ok = await rpc(stack!.socket, 'personal_sign', [hex(text), address]);
    expect(await verifyMessage({ address: address as Hex, message: text, signature: ok.result })).toBe(true);
    released.push(ok.result);
    await stack!.close();
    const audit = (await storedAudit(stack!.keystore, stack!.infra.ca.trustRoot));
    stack = undefined;
    for (const s of released) expect(audit.signedResults.get(resultDigestHex(s))).toBe(1);
    expect(audit.report, JSON.stringify(audit.report.problems)).toMatchObject({ valid: true, gaps: [], forks: [] });
  });
});
