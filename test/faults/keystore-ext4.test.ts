/**
 * Fault injection: the keystore's filesystem turns read-only UNDER a running parent
 * (docs/faults.md). The keystore lives on an ext4 image this test loop-mounts with
 * `errors=remount-ro`; the test makes the kernel record a filesystem error
 * (`/sys/fs/ext4/<dev>/trigger_fs_error`, the same path an I/O error takes), and the
 * kernel remounts it read-only while the parent holds the SQLite file open for writing —
 * what a failing EBS volume does to a host. (A tmpfs cannot be remounted read-only under an
 * open writer: test/faults/keystore-disk.test.ts.)
 *
 * While it lasts: no signature is released without its stored record (-32002
 * PARENT_AUDIT_UNAVAILABLE), no key is acknowledged (-32002), reads keep answering, the
 * connection and the process stay up. Recovery is an operator's: stop the parent, fsck,
 * mount read-write, start it again — every acknowledged key is there, every released
 * signature has exactly one record, the chain verifies.
 *
 * Needs root and loop devices: CI runs as root; elsewhere the test is skipped and says so.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { type Hex, verifyMessage } from 'viem';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { resultDigestHex, rpc, startFaultStack, storedAudit, storedKeyIds, waitReadyAgain, type FaultStack } from './stack.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-fault-ext4-'));
const image = join(dir, 'keystore.ext4');
const mnt = join(dir, 'mnt');
mkdirSync(mnt);

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' }).toString();
const mountRw = () => sh('mount', ['-o', 'loop,errors=remount-ro', image, mnt]);
/** The loop device behind the mount (its name is the directory under /sys/fs/ext4). */
const device = () => basename(sh('findmnt', ['-n', '-o', 'SOURCE', mnt]).trim());
const options = () => sh('findmnt', ['-n', '-o', 'OPTIONS', mnt]).trim();

/** Whether this process may make and loop-mount an ext4 image (root, loop devices, e2fsprogs). */
const canLoop = (() => {
  try {
    sh('truncate', ['-s', '64M', image]);
    sh('mkfs.ext4', ['-q', '-F', image]);
    mountRw();
    sh('umount', [mnt]);
    return true;
  } catch {
    return false;
  }
})();
if (!canLoop && process.env.CI === 'true') throw new Error('CI must be able to loop-mount an ext4 image (root, loop devices, e2fsprogs)');

let stack: FaultStack | undefined;
let mounted = false;
afterAll(async () => {
  await stack?.close().catch(() => {});
  if (mounted) execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
});

const hex = (s: string) => `0x${Buffer.from(s).toString('hex')}`;

describe.skipIf(!canLoop)('keystore filesystem remounted read-only by the kernel under a running parent (ext4 errors=remount-ro)', () => {
  const released: string[] = [];
  let address = '';
  let acknowledged: string[] = [];

  it('while it lasts: signatures withheld and keys refused (-32002), reads answer, the parent stays up', async () => {
    mountRw();
    mounted = true;
    stack = await startFaultStack({ dataDir: join(dir, 'data'), keystore: join(mnt, 'keystore.sqlite') });
    address = (await rpc(stack.socket, 'signer_createKey', {})).result.address;
    await rpc(stack.socket, 'signer_createKey', { kind: 'bip32-seed' });
    for (let i = 0; i < 5; i++) {
      const s = await rpc(stack.socket, 'personal_sign', [hex(`before ${i}`), address]);
      expect(s.error).toBeUndefined();
      released.push(s.result);
    }
    acknowledged = await storedKeyIds(stack.keystore);
    expect(acknowledged).toHaveLength(2);

    // The kernel's error path: the filesystem goes read-only with the keystore open for writing.
    writeFileSync(`/sys/fs/ext4/${device()}/trigger_fs_error`, '1');
    expect(options()).toMatch(/(^|,)ro(,|$)|emergency_ro/);

    const sign = await rpc(stack.socket, 'personal_sign', [hex('after the error'), address]);
    expect(sign.result).toBeUndefined();
    expect(sign.error).toMatchObject({ code: -32002, data: { code: 'PARENT_AUDIT_UNAVAILABLE' }, message: expect.stringMatching(/audit record could not be stored/) });
    const key = await rpc(stack.socket, 'signer_createKey', {});
    expect(key.result).toBeUndefined();
    expect(key.error).toMatchObject({ code: -32002, data: { code: expect.stringMatching(/^(KEYSTORE_UNAVAILABLE|PARENT_AUDIT_UNAVAILABLE)$/) } });
    // Still a clear answer every time, and what only reads keeps answering.
    for (let i = 0; i < 3; i++) expect((await rpc(stack.socket, 'personal_sign', [hex(`still ${i}`), address])).error).toMatchObject({ code: -32002 });
    expect((await rpc(stack.socket, 'signer_listKeys', {})).result).toHaveLength(2);
    expect((await rpc(stack.socket, 'eth_accounts', [])).result).toEqual([address]);
  });

  it('recovered by the operator (stop, fsck, mount read-write, start): every acknowledged key, every released signature recorded once, the chain verifies', async () => {
    await stack!.parent.close();
    sh('umount', [mnt]);
    mounted = false;
    // e2fsck exits 1 when it fixed something (the recorded error): that is the expected outcome.
    try {
      sh('e2fsck', ['-f', '-y', image]);
    } catch (e) {
      if ((e as { status?: number }).status !== 1) throw e;
    }
    mountRw();
    mounted = true;
    await stack!.restartParent();
    await waitReadyAgain(stack!);
    expect(await storedKeyIds(stack!.keystore)).toEqual(acknowledged);
    const text = 'after recovery';
    const ok = await rpc(stack!.socket, 'personal_sign', [hex(text), address]);
    expect(await verifyMessage({ address: address as Hex, message: text, signature: ok.result })).toBe(true);
    released.push(ok.result);
    await stack!.close();
    const audit = await storedAudit(stack!.keystore, stack!.infra.ca.trustRoot);
    stack = undefined;
    for (const s of released) expect(audit.signedResults.get(resultDigestHex(s))).toBe(1);
    expect(audit.report, JSON.stringify(audit.report.problems)).toMatchObject({ valid: true, gaps: [], forks: [] });
  });
});
