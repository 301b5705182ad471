/**
 * The two ramdisks, in nitro-cli's layout (enclave_build/src/yaml_generator.rs):
 *
 *   ramdisk0, bootstrap (PCR1, with the kernel and cmdline):
 *     init, nsm.ko, dev/                      — from the blobs directory
 *   ramdisk1, application (PCR2):
 *     rootfs/… (the container filesystem; dev run sys var proc tmp always exist)
 *     cmd      argv, one element per line
 *     env      environment, KEY=VALUE per line
 *
 * nitro-cli's init mounts what it needs, loads nsm.ko, chroots into /rootfs
 * and execs cmd with env.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EifError } from '../attestation/eif/errors.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { treeEntries } from './tree.js';

export const ROOTFS_DIRS = ['dev', 'run', 'sys', 'var', 'proc', 'tmp'] as const;

function read(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new EifError('EIF_INPUT', `cannot read ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export function bootstrapRamdisk(blobsDir: string, mtime: number): Uint8Array {
  return writeCpio(
    [
      { path: 'init', type: 'file', data: read(join(blobsDir, 'init'), 'init blob'), executable: true },
      { path: 'nsm.ko', type: 'file', data: read(join(blobsDir, 'nsm.ko'), 'nsm.ko blob') },
      { path: 'dev', type: 'dir' },
    ],
    { mtime },
  );
}

/** `stageDir` holds rootfs/, cmd and env. */
export function applicationRamdisk(stageDir: string, mtime: number): Uint8Array {
  const rootfs = treeEntries(join(stageDir, 'rootfs'), 'rootfs');
  const have = new Set(rootfs.map((e) => e.path));
  const extra: CpioEntry[] = ROOTFS_DIRS.filter((d) => !have.has(`rootfs/${d}`)).map((d) => ({ path: `rootfs/${d}`, type: 'dir' }));
  for (const f of ['cmd', 'env'] as const) {
    const data = read(join(stageDir, f), `${f} file`);
    if (f === 'cmd' && data.length === 0) throw new EifError('EIF_INPUT', 'cmd is empty: the enclave would have nothing to run');
    extra.push({ path: f, type: 'file', data });
  }
  return writeCpio([...rootfs, ...extra], { mtime });
}
