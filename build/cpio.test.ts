import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EifError } from '../attestation/eif/errors.js';
import { requireTool } from '../attestation/eif/test-helpers.js';
import { readCpio, writeCpio, type CpioEntry } from './cpio.js';

const te = new TextEncoder();
const MTIME = 1_700_000_000;

// Deliberately unsorted, with implied parent directories and a name that
// sorts differently bytewise ('Z' < '_' < 'a') than case-insensitively.
const entries: CpioEntry[] = [
  { path: 'rootfs/bin/node', type: 'file', data: te.encode('\x7fELF pretend'), executable: true },
  { path: 'env', type: 'file', data: te.encode('PATH=/bin\n') },
  { path: 'rootfs/app/enclave.mjs', type: 'file', data: te.encode('console.log(1)\n') },
  { path: 'cmd', type: 'file', data: te.encode('/bin/node\n/app/enclave.mjs\n') },
  { path: 'rootfs/lib64/ld-linux-x86-64.so.2', type: 'symlink', target: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
  { path: 'rootfs/dev', type: 'dir' },
  { path: 'rootfs/app/Zeta', type: 'file', data: new Uint8Array(5) },
  { path: 'rootfs/app/_under', type: 'file', data: new Uint8Array(0) },
];
const expectedOrder = [
  'cmd',
  'env',
  'rootfs',
  'rootfs/app',
  'rootfs/app/Zeta',
  'rootfs/app/_under',
  'rootfs/app/enclave.mjs',
  'rootfs/bin',
  'rootfs/bin/node',
  'rootfs/dev',
  'rootfs/lib64',
  'rootfs/lib64/ld-linux-x86-64.so.2',
];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function cpio(args: string[], input: Uint8Array, cwd?: string): string {
  return execFileSync('cpio', args, { input, cwd, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

describe('writeCpio', () => {
  const archive = writeCpio(entries, { mtime: MTIME });

  it('GNU cpio lists the entries in sorted order', () => {
    requireTool('cpio');
    expect(cpio(['-t', '--quiet'], archive).trim().split('\n')).toEqual(expectedOrder);
  });

  it('GNU cpio sees uid/gid 0, fixed modes and the fixed mtime', () => {
    requireTool('cpio');
    const dir = mkdtempSync(join(tmpdir(), 'cpio-x-'));
    dirs.push(dir);
    cpio(['-idm', '--quiet', '--no-absolute-filenames'], archive, dir);
    const mode = (p: string): string => (lstatSync(join(dir, p)).mode & 0o7777).toString(8);
    expect(mode('rootfs')).toBe('755');
    expect(mode('rootfs/bin/node')).toBe('755');
    expect(mode('env')).toBe('644');
    expect(mode('rootfs/app/enclave.mjs')).toBe('644');
    expect(lstatSync(join(dir, 'rootfs/lib64/ld-linux-x86-64.so.2')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, 'rootfs/lib64/ld-linux-x86-64.so.2'))).toBe('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    for (const p of ['cmd', 'env', 'rootfs/bin/node', 'rootfs/app/Zeta']) expect(lstatSync(join(dir, p)).mtimeMs / 1000).toBe(MTIME);
    expect(readFileSync(join(dir, 'cmd'), 'utf8')).toBe('/bin/node\n/app/enclave.mjs\n');
    // Numeric listing: mode, links, uid, gid for every entry.
    const long = cpio(['-tv', '--quiet', '--numeric-uid-gid'], archive).trim().split('\n');
    expect(long).toHaveLength(expectedOrder.length);
    for (const line of long) expect(line).toMatch(/^\S+\s+\d+\s+0\s+0\s/);
  });

  it('reads back with inode numbers 1..n and one mtime', () => {
    const list = readCpio(archive);
    expect(list.map((e) => e.path)).toEqual(expectedOrder);
    expect(list.map((e) => e.ino)).toEqual(expectedOrder.map((_, i) => i + 1));
    expect(new Set(list.map((e) => e.mtime))).toEqual(new Set([MTIME]));
    expect(list.every((e) => e.uid === 0 && e.gid === 0)).toBe(true);
  });

  it('is byte-identical whatever the input order, and changes when an mtime or a byte does', () => {
    const again = writeCpio([...entries].reverse(), { mtime: MTIME });
    expect(Buffer.from(again).equals(Buffer.from(archive))).toBe(true);
    expect(Buffer.from(writeCpio(entries, { mtime: 0 })).equals(Buffer.from(archive))).toBe(false);
  });

  it('takes its default mtime from SOURCE_DATE_EPOCH', () => {
    const before = process.env.SOURCE_DATE_EPOCH;
    try {
      process.env.SOURCE_DATE_EPOCH = String(MTIME);
      expect(Buffer.from(writeCpio(entries)).equals(Buffer.from(archive))).toBe(true);
      delete process.env.SOURCE_DATE_EPOCH;
      expect(new Set(readCpio(writeCpio(entries)).map((e) => e.mtime))).toEqual(new Set([0]));
      process.env.SOURCE_DATE_EPOCH = 'yesterday';
      expect(() => writeCpio(entries)).toThrow(EifError);
    } finally {
      if (before === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = before;
    }
  });

  it('ends with a TRAILER!!! record and pads every record to 4 bytes', () => {
    expect(archive.length % 4).toBe(0);
    expect(Buffer.from(archive).includes('TRAILER!!!')).toBe(true);
  });

  it('refuses bad paths, duplicates and files under non-directories', () => {
    const file = (path: string): CpioEntry => ({ path, type: 'file', data: new Uint8Array(1) });
    for (const bad of ['/abs', 'a/../b', 'a//b', './a', 'a/', '', 'TRAILER!!!', 'a\0b']) expect(() => writeCpio([file(bad)])).toThrow(EifError);
    expect(() => writeCpio([file('a'), file('a')])).toThrow(/duplicate/);
    expect(() => writeCpio([file('a'), file('a/b')])).toThrow(/inside it/);
  });
});
