/**
 * A keystore that cannot be written: the client gets a clear error, the
 * parent keeps signing with the keys it has, and nothing that was stored is
 * lost. The file is made immutable with chattr(1) (a real read-only file
 * even for root, which this test machine runs as); `keystoreReadonly` is the
 * configured variant.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { type Hex, verifyMessage } from 'viem';
import { isSignerError } from '../common/errors.js';
import { openKeystore } from './keystore.js';
import { startParent } from './main.js';
import { rpc, startFakeEnclave, startRig, waitFor, type Rig } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-roks-'));
const immutable = new Set<string>();

function chattr(flag: '+i' | '-i', paths: string[]): void {
  const present = paths.filter((p) => existsSync(p));
  if (present.length === 0) return;
  execFileSync('chattr', [flag, ...present]);
  for (const p of present) (flag === '+i' ? immutable.add(p) : immutable.delete(p));
}

/** chattr +i needs CAP_LINUX_IMMUTABLE and a filesystem that supports it. */
const canChattr = (() => {
  const probe = join(dir, 'probe');
  try {
    writeFileSync(probe, 'x');
    execFileSync('chattr', ['+i', probe], { stdio: 'ignore' });
    execFileSync('chattr', ['-i', probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const rigs: Rig[] = [];
afterEach(async () => {
  chattr('-i', [...immutable]);
  for (const r of rigs.splice(0)) await r.close();
});
afterAll(() => {
  chattr('-i', [...immutable]);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The database and its WAL: every byte of keystore data. (Not the -shm index:
 * SQLite has it mapped into memory, and an immutable mapped file would crash
 * the process instead of failing a write.)
 */
const files = (db: string) => [db, `${db}-wal`];

describe.skipIf(!canChattr)('the keystore file becomes read-only while running', () => {
  // Issue 10 changed this test: "existing keys still sign" was the bug — a signature whose
  // audit record cannot be stored is never released (docs/audit.md).
  it('creating a key fails clearly; no signature is released while its audit record cannot be stored; nothing stored is lost', async () => {
    const ks = join(dir, 'live.db');
    const r = await startRig({ dir, parent: { keystore: ks } });
    rigs.push(r);
    const a = (await rpc(r.socket, 'signer_createKey', { label: 'before' })).result;

    chattr('+i', files(ks));
    const createsBefore = r.enclave!.calls.get('key.create');
    const res = await rpc(r.socket, 'signer_createKey', { label: 'during' });
    expect(res.error).toMatchObject({ code: -32002, message: expect.stringMatching(/^keystore write failed: SQLITE_/), data: { code: 'KEYSTORE_UNAVAILABLE' } });
    expect(r.enclave!.calls.get('key.create')).toBe(createsBefore! + 1); // made in the enclave, never handed out, so never used

    // Reads are unaffected; a signature is not released: its record cannot be stored.
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([a.address]);
    const sig = await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address]);
    expect(sig.result).toBeUndefined();
    expect(sig.error).toMatchObject({ code: -32002, message: expect.stringMatching(/audit record could not be stored/), data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
    expect(r.enclave!.calls.get('sign')).toBe(1); // the enclave signed; the parent withheld it

    chattr('-i', files(ks));
    const b = (await rpc(r.socket, 'signer_createKey', { label: 'after' })).result;
    const sig2 = await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address]);
    expect(await verifyMessage({ address: a.address as Hex, message: 'ok', signature: sig2.result })).toBe(true);
    await r.parent.close();

    // Everything acknowledged is on disk: exactly the two keys clients were told about.
    const check = await openKeystore(ks, { readonly: true });
    expect((await check.listKeys()).map((k) => k.label)).toEqual(['before', 'after']);
    expect((await check.listKeys()).map((k) => k.keyId)).toEqual([a.keyId, b.keyId]);
    await check.close();
  });

  it('a keystore that cannot store the audit hand-over leaves the parent not ready (fail closed) before any keyring is made, with a hint', async () => {
    const ks = join(dir, 'fresh.db');
    const r = await startRig({ dir, noEnclave: true, parent: { keystore: ks } });
    rigs.push(r);
    chattr('+i', files(ks)); // after the parent opened it, before the enclave is up
    const enclave = await startFakeEnclave({ uri: r.enclaveUri, ca: r.ca });
    rigs.push({ close: () => enclave.close() } as Rig);
    await waitFor(() => r.parent.state().keyring.state === 'failed', 10_000, 'keyring failed');
    const s = r.parent.state();
    expect(s.ready).toBe(false);
    expect(s.gate.state).toBe('ready');
    expect(s.keyring.reason).toMatch(/audit hand-over could not be stored: keystore write failed: SQLITE_/);
    expect(enclave.calls.get('keyring.create')).toBeUndefined();
    const res = await rpc(r.socket, 'signer_createKey', {});
    expect(res.error?.message).toMatch(/^keyring not unlocked/);
    expect(enclave.calls.get('key.create')).toBeUndefined();
  });

  it('a keystore that is read-only at startup stops startup with a clear error', async () => {
    const ks = join(dir, 'ro-at-start.db');
    await (await openKeystore(ks)).close();
    chattr('+i', files(ks));
    await expect(startParent({ enclave: 'unix:/nonexistent.sock', socket: join(dir, 'w.sock'), keystore: ks, allowAnyPcrs: true, log: () => {} })).rejects.toSatisfy(
      (e) => isSignerError(e) && e.code === 'KEYSTORE_UNAVAILABLE' && /SQLITE_READONLY/.test(e.message) && /read-only/.test(e.hint ?? ''),
    );
  });

  it('a keystore that cannot be opened stops startup with a clear error', async () => {
    const locked = join(dir, 'locked-dir');
    mkdirSync(locked);
    chattr('+i', [locked]);
    await expect(
      startParent({ enclave: 'unix:/nonexistent.sock', socket: join(dir, 'z.sock'), keystore: join(locked, 'ks.db'), allowAnyPcrs: true, log: () => {} }),
    ).rejects.toSatisfy((e) => isSignerError(e) && e.code === 'KEYSTORE_UNAVAILABLE' && /keystore open failed/.test(e.message));
    expect(existsSync(join(dir, 'z.sock'))).toBe(false);
  });
});

describe('--keystore-readonly', () => {
  // Issue 10 changed this test: a read-only keystore cannot hold the audit chain, so it no longer signs.
  it('serves reads, refuses to sign (no audit record can be stored) and refuses to create keys without asking the enclave', async () => {
    const ks = join(dir, 'ro.db');
    const r1 = await startRig({ dir, parent: { keystore: ks } });
    const a = (await rpc(r1.socket, 'signer_createKey', {})).result;
    await r1.parent.close();
    const r = await startRig({ dir, noEnclave: true, enclave: { ca: r1.ca }, parent: { keystore: ks, keystoreReadonly: true, enclave: r1.enclaveUri } });
    rigs.push(r, r1);
    // This enclave already opened its log (for r1): the boot stores nothing and gets ready; a new one would fail at the hand-over.
    await waitFor(() => r.parent.state().ready, 10_000, 'ready');
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([a.address]);
    const creates = r1.enclave!.calls.get('key.create');
    const res = await rpc(r.socket, 'signer_createKey', {});
    expect(res.error).toMatchObject({ code: -32002, message: expect.stringContaining('read-only'), data: { code: 'KEYSTORE_UNAVAILABLE' } });
    expect(r1.enclave!.calls.get('key.create')).toBe(creates);
    const sig = await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address]);
    expect(sig.result).toBeUndefined();
    expect(sig.error).toMatchObject({ code: -32002, message: expect.stringMatching(/audit record could not be stored/), data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
  });
});
