/**
 * Real AF_VSOCK, end to end, inside a QEMU guest (TCG, no network device):
 * the guest loads vsock + vsock_loopback, and two node processes talk over
 * vsock://1:port through our transport registry and native addon (the very
 * modules the enclave uses). Asserted from the serial console:
 *   - 8 MiB echoed intact (sha256) while the client hit backpressure,
 *   - a refused connect is TRANSPORT_CONNECT_FAILED, a second listener on a
 *     live port TRANSPORT_ADDRESS_IN_USE, port "any" resolves to a real port,
 *   - net.Socket refuses a vsock fd (why native/fd-socket.ts exists).
 * It also records bridge-like ping-pong latency over vsock vs a Unix socket in
 * the same guest to bench/results/vsock-vm.json (numbers, not assertions).
 *
 * Needs `bash test/vm/setup.sh` (apt packages + pinned kernel) and the native
 * addon built (`npm ci`). Run with `npm run test:vm`.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../../native/addon.js';
import type { GuestResult, RttStats } from './guest/vsock-guest.js';
import { REPO_ROOT, VM_CACHE, appArchive, baseArchive, bootGuest, guestNode, joinArchives, vmAssets, type BootResult } from './harness.js';

const work = join(VM_CACHE, `run-${process.pid}`);

const ratio = (a: RttStats, b: RttStats) => ({
  p50: Math.round((a.p50Us / b.p50Us) * 100) / 100,
  mean: Math.round((a.meanUs / b.meanUs) * 100) / 100,
  p99: Math.round((a.p99Us / b.p99Us) * 100) / 100,
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('vsock in a QEMU guest', () => {
  it('carries 8 MiB with backpressure over real AF_VSOCK and measures vsock vs unix round trips', async () => {
    const assets = vmAssets();
    const node = guestNode();
    const addonPath = nativeAddonPath();
    if (addonPath === undefined) throw new Error('native addon not built: run `npm ci` or `npm run build:native`');
    mkdirSync(work, { recursive: true });

    const t0 = performance.now();
    const bundle = join(work, 'guest.mjs');
    await build({
      entryPoints: [join(REPO_ROOT, 'test/vm/guest/vsock-guest.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: bundle,
      logLevel: 'warning',
    });
    const base = baseArchive(assets, node);
    const app = appArchive('vsock', 'ENCLAVE_SIGNER_NATIVE_ADDON=/app/enclave_native.node node /app/guest.mjs server', [
      { path: 'app/guest.mjs', from: bundle },
      { path: 'app/enclave_native.node', from: addonPath, mode: 0o755 },
    ]);
    const initrd = await joinArchives([base, app], join(work, 'initrd.cpio'));
    rmSync(app, { force: true });
    const prepareMs = Math.round(performance.now() - t0);

    const boot: BootResult = await bootGuest(assets, { initrd, memMb: 2048, timeoutMs: 240_000 });
    const tail = boot.serial.slice(-4000);
    expect(boot.timedOut, `guest timed out; serial tail:\n${tail}`).toBe(false);
    expect(boot.insmodFailures, tail).toEqual([]);
    expect(boot.guestExit, tail).toBe(0);
    expect(boot.results.length, `no VMTEST-RESULT line; serial tail:\n${tail}`).toBe(1);

    const r = boot.results[0] as GuestResult;
    console.log(`[vm] boot ${boot.bootMs} ms (guest uptime ${boot.guestUptimeAtBoot} s), whole run ${boot.totalMs} ms; result ${JSON.stringify(r)}`);
    expect(r.error, tail).toBeUndefined();
    expect(r.ok).toBe(true);

    // Data path and backpressure.
    const c = r.client!;
    expect(c.echo.bytes).toBe(8 * 1024 * 1024);
    expect(c.echo.sha256Match).toBe(true);
    expect(c.echo.drains).toBeGreaterThan(0);
    // While the server ignored the connection, the kernel took only a bounded part of the 8 MiB.
    expect(c.echo.stalledBytesWritten).toBeGreaterThanOrEqual(0);
    expect(c.echo.stalledBytesWritten).toBeLessThan(8 * 1024 * 1024);

    // Error paths map to transport codes.
    expect(c.refused.code).toBe('TRANSPORT_CONNECT_FAILED');
    expect(['ECONNRESET', 'ECONNREFUSED']).toContain(c.refused.causeCode);
    expect(r.checks.addressInUse).toBe('TRANSPORT_ADDRESS_IN_USE');
    expect(r.checks.anyPortUri).toMatch(/^vsock:\/\/1:[0-9]+$/);
    expect(r.checks.anyPortUri).not.toBe('vsock://1:4294967295');
    expect(r.checks.netSocketFromVsockFd).toBe('ERR_INVALID_FD_TYPE');

    // Both transports answered every ping; timing is recorded, never asserted.
    expect(c.rtt.vsock.n).toBe(1000);
    expect(c.rtt.unix.n).toBe(1000);
    expect(c.rtt.unixFdSocket.n).toBe(1000);

    const out = {
      benchmark: 'bridge-like ping-pong (u32-length-prefixed CBOR frames, 32-byte params), vsock vs unix socket, one guest',
      caveat: 'QEMU TCG (software CPU emulation, 1 vCPU): absolute times are inflated many-fold; compare the ratio, not the microseconds',
      date: new Date().toISOString(),
      guest: {
        kernelPackage: assets.kernelPackage,
        node: r.node,
        nodeSource: node.source,
        qemu: 'qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 -nic none',
        vsockTransport: 'vsock_loopback, CID 1 (VMADDR_CID_LOCAL)',
      },
      bootMs: boot.bootMs,
      guestUptimeAtBootS: boot.guestUptimeAtBoot,
      totalVmMs: boot.totalMs,
      prepareMs,
      pings: 1000,
      rtt: c.rtt,
      streams: {
        vsock: 'vsock://1:port, FdSocket (native addon) on both ends',
        unix: 'unix socket, net.Socket (libuv) on both ends',
        unixFdSocket: 'AF_UNIX socket pair across two processes, FdSocket on both ends',
      },
      ratioVsockOverUnix: ratio(c.rtt.vsock, c.rtt.unix),
      // Split of that ratio: the kernel's vsock path (same stream code) and our JS stream vs libuv's (same kernel path).
      ratioVsockOverUnixFdSocket: ratio(c.rtt.vsock, c.rtt.unixFdSocket),
      ratioUnixFdSocketOverUnix: ratio(c.rtt.unixFdSocket, c.rtt.unix),
      echo8MiB: { ms: c.echo.ms, drains: c.echo.drains, stalledBytesWritten: c.echo.stalledBytesWritten, maxWritableLength: c.echo.maxWritableLength },
    };
    mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(REPO_ROOT, 'bench', 'results', 'vsock-vm.json'), `${JSON.stringify(out, null, 2)}\n`);
  });
});
