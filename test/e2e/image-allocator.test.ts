/**
 * The enclave on the image's malloc (enclave/node-flags.ts ENCLAVE_ALLOCATOR): tcmalloc from the
 * .deb build/debs.lock pins, fetched and checked by build/debs.sh as build-eif.sh does, preloaded
 * into the dev stack's enclave process with `dev --enclave-allocator`. The image itself is checked
 * by build-eif.sh's chroot run and, booted, by the QEMU test (test/vm/appliance.system.test.ts).
 *
 * What this shows: the library is mapped into the enclave process and not into the parent (the
 * preload is the enclave's alone), and signatures made on it, inline and on the workers, recover
 * to the key with viem.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recoverAddress, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedAllocator } from '../../build/pinned-runtime.js';
import { ENCLAVE_ALLOCATOR } from '../../enclave/node-flags.js';
import { REPO, call, startDevStack, type DevStack } from './dev-stack.js';

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-alloc-'));
let stack: DevStack;
let lib: string;

const maps = (pid: number) => readFileSync(`/proc/${pid}/maps`, 'utf8');
const digest = (n: number) => `0x${n.toString(16).padStart(64, '0')}` as Hex;

beforeAll(async () => {
  const pinned = pinnedAllocator(REPO);
  // Not a skip: CI fetches the .deb as build-eif.sh does (apt-get download, sha256 from build/debs.lock).
  if (pinned === undefined) throw new Error(`the pinned ${ENCLAVE_ALLOCATOR.debPackage} .deb could not be fetched or verified (build/debs.sh extract_deb)`);
  lib = pinned.path;
  stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--enclave-allocator', lib] });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the enclave on the image's malloc", () => {
  it('maps the pinned library in the enclave process only, and dev says so', () => {
    expect(maps(stack.enclavePid)).toContain(`/${ENCLAVE_ALLOCATOR.soname}`);
    expect(maps(stack.pid)).not.toContain(ENCLAVE_ALLOCATOR.soname);
    expect(stack.output().stderr).toContain(`enclave malloc: ${lib} (preloaded)`);
  });

  it('signs on it: one at a time (inline) and 64 at once (the workers), every signature recovers to the key', async () => {
    const { keyId, address } = await call(stack.socket, 'signer_createKey', { label: 'malloc' });
    const one = await call(stack.socket, 'signer_signDigest', { keyId, digest: digest(1) });
    expect(await recoverAddress({ hash: digest(1), signature: one.signature })).toBe(address);
    const many = await Promise.all(Array.from({ length: 64 }, (_, i) => call(stack.socket, 'signer_signDigest', { keyId, digest: digest(1000 + i) })));
    const signers = await Promise.all(many.map((s, i) => recoverAddress({ hash: digest(1000 + i), signature: s.signature })));
    expect(new Set(signers)).toEqual(new Set([address]));
  });
});
