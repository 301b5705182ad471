/**
 * Host-side preparation for the appliance VM test (appliance.system.test.ts):
 * the real enclave image built by build-eif.sh, its ramdisks taken out of the
 * EIF, better-sqlite3 compiled for the image's Node (the parent runs on the
 * image's runtime in the guest), and a third "payload" initramfs with our test
 * init and the guest harness. Nothing here opens a vsock socket.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { measureEif, parseEif, type EifMeasurements, type ParsedEif } from '../../attestation/eif/index.js';
import { readCpio, writeCpio, type CpioEntry } from '../../build/cpio.js';
import { DEV_POLICY_DOCUMENT } from '../../enclave/policy/dev-policy.js';
import { REPO_ROOT, VM_CACHE } from './harness.js';

export const TEST_BLOBS = join(REPO_ROOT, '.cache', 'test-blobs');
/**
 * The keyring CMK the test image pins (build-eif.sh --kms-key-arn). The guest's
 * KMS emulator makes a key with exactly this id (presetKeys), since the ARN
 * must be fixed before the image exists: the same order as production, where
 * the CMK exists before the build and its policy learns PCR0 after it.
 */
export const VM_CMK_KEY_ID = '00000000-0000-4000-8000-0000000a11ce';
export const VM_CMK_ARN = `arn:aws:kms:us-east-1:111122223333:key/${VM_CMK_KEY_ID}`;
/** Loaded after the image's own /nsm.ko (the test blobs' vsock.ko): the loopback transport, CID 1. */
export const LOOPBACK_MODULES = ['vmw_vsock_virtio_transport_common', 'vsock_loopback'] as const;
/** Where the payload puts things: /vmtest (init, busybox, modules) outside the image's rootfs, /rootfs/vmtest inside it. */
export const PAYLOAD_OUTSIDE = 'vmtest';
export const PAYLOAD_INSIDE = 'rootfs/vmtest';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sha256File = (p: string): string => sha256(readFileSync(p));

/**
 * Runs a command without blocking the event loop (vitest's worker RPC times out on long synchronous
 * work); resolves with stdout and stderr together, or with stdout alone when `stdoutOnly` is set.
 */
function run(cmd: string, args: string[], what: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdoutOnly?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stdout = '';
    const keep = (b: Buffer) => {
      out += b.toString('utf8');
      if (out.length > 1_000_000) out = out.slice(-100_000);
    };
    c.stdout.on('data', (b: Buffer) => {
      if (opts.stdoutOnly) stdout += b.toString('utf8');
      keep(b);
    });
    c.stderr.on('data', keep);
    c.on('error', reject);
    c.on('close', (code, signal) => (code === 0 ? resolve(opts.stdoutOnly ? stdout : out) : reject(new Error(`${what} failed (exit ${code ?? signal}):\n${out.slice(-4000)}`))));
  });
}

/** The test blobs directory (Debian cloud kernel, our init, vsock.ko as nsm.ko, loopback modules), made if incomplete. */
export async function ensureTestBlobs(): Promise<{ dir: string; made: boolean }> {
  const need = ['bzImage', 'bzImage.config', 'cmdline', 'init', 'nsm.ko', ...LOOPBACK_MODULES.map((m) => `modules/${m}.ko`)];
  if (need.every((f) => existsSync(join(TEST_BLOBS, f)))) return { dir: TEST_BLOBS, made: false };
  await run('bash', ['build/test-blobs.sh', TEST_BLOBS], 'build/test-blobs.sh');
  return { dir: TEST_BLOBS, made: true };
}

export interface BuiltEif {
  path: string;
  /** build-eif.sh's pcr-manifest.json (image fields, build inputs). */
  manifest: { image: { name: string; version: string; sourceCommit: string; eifSha256: string }; buildInputs?: Record<string, unknown> };
  sha256: string;
  size: number;
  parsed: ParsedEif;
  pcrs: EifMeasurements;
  buildMs: number;
  /** true when VM_TEST_EIF named an existing image instead. */
  reused: boolean;
}

/**
 * Builds the real image with build-eif.sh into .cache/vm/eif (dist/ is left
 * alone). VM_TEST_EIF=path/enclave.eif reuses a built image (its
 * pcr-manifest.json must sit beside it) — only for iterating on the test.
 */
export async function buildEif(blobs: string): Promise<BuiltEif> {
  const t0 = performance.now();
  let path: string;
  let reused = false;
  const given = process.env.VM_TEST_EIF;
  if (given !== undefined && given !== '') {
    path = given;
    reused = true;
  } else {
    const out = join(VM_CACHE, 'eif');
    rmSync(out, { recursive: true, force: true });
    // The permissive dev policy: the VM tests exercise the appliance, not the policy language.
    const policyFile = join(VM_CACHE, 'vm-policy.json');
    mkdirSync(VM_CACHE, { recursive: true });
    writeFileSync(policyFile, JSON.stringify(DEV_POLICY_DOCUMENT));
    await run('bash', ['build-eif.sh', '--blobs', blobs, '--out', out, '--kms-key-arn', VM_CMK_ARN, '--policy', policyFile], 'build-eif.sh');
    path = join(out, 'enclave.eif');
  }
  const buildMs = Math.round(performance.now() - t0);
  const bytes = new Uint8Array(readFileSync(path));
  const parsed = parseEif(bytes);
  const manifestPath = join(path, '..', 'pcr-manifest.json');
  const mjson = JSON.parse(readFileSync(manifestPath, 'utf8')) as BuiltEif['manifest'] | { manifest: BuiltEif['manifest'] };
  const manifest = 'manifest' in mjson ? mjson.manifest : mjson;
  return { path, manifest, sha256: sha256(bytes), size: bytes.length, parsed, pcrs: measureEif(parsed, { verifySignature: false }), buildMs, reused };
}

export interface ImageFacts {
  /** SHA-256 of files in the application ramdisk, keyed by guest path (/bin/node, /app/enclave.mjs, …). */
  files: Record<string, string>;
  cmd: string[];
  env: string[];
  /** Every path in ramdisk0 and ramdisk1 (to prove the payload replaces none of them). */
  paths: Set<string>;
}

/** What the image holds, read back from its own ramdisks. */
export function imageFacts(eif: ParsedEif): ImageFacts {
  const paths = new Set<string>();
  const files: Record<string, string> = {};
  let cmd: string[] = [];
  let env: string[] = [];
  const td = new TextDecoder();
  for (const rd of eif.ramdisks) {
    for (const e of readCpio(rd)) {
      paths.add(e.path);
      const isFile = (e.mode & 0o170000) === 0o100000;
      if (!isFile) continue;
      if (e.path === 'cmd') cmd = td.decode(e.data).split('\n').filter((l) => l !== '');
      else if (e.path === 'env') env = td.decode(e.data).split('\n').filter((l) => l !== '');
      else if (e.path.startsWith('rootfs/app/') || e.path === 'rootfs/bin/node' || e.path === 'init' || e.path === 'nsm.ko') {
        files[e.path.startsWith('rootfs/') ? e.path.slice('rootfs'.length) : `/${e.path}`] = sha256(e.data);
      }
    }
  }
  return { files, cmd, env, paths };
}

export interface GuestSqlite {
  /** A package directory: package.json, lib/, build/Release/better_sqlite3.node. */
  dir: string;
  compiled: boolean;
  ms: number;
  nodeVersion: string;
  abi: string;
}

/**
 * better-sqlite3 is not an N-API addon: its .node is tied to one Node ABI. The
 * parent runs in the guest on the image's runtime (Node 22), while
 * node_modules holds a build for the host's Node. build/runtime-sqlite.sh
 * compiles it once against the runtime package's headers (nothing is
 * downloaded) and caches it by versions; .ci/node22-tests.sh uses the same
 * build, so in CI it is already there when this test runs.
 */
export async function guestSqlite(runtimeDir: string): Promise<GuestSqlite> {
  const nodeBin = join(runtimeDir, 'bin', 'node');
  const v = (await run(nodeBin, ['-p', 'process.version + " " + process.versions.modules'], 'runtime node')).trim().split(' ');
  const nodeVersion = v[0]!;
  const abi = v[1]!;
  const startedAt = Date.now();
  const dir = (await run('bash', [join(REPO_ROOT, 'build', 'runtime-sqlite.sh')], 'build/runtime-sqlite.sh', { stdoutOnly: true })).trim();
  const addon = join(dir, 'build', 'Release', 'better_sqlite3.node');
  // The builder checks the ABI too; checked again here because the guest's parent cannot load anything else.
  if (!readFileSync(addon).includes(`node_register_module_v${abi}\0`)) throw new Error(`${addon} is not built for Node ABI ${abi} (${nodeVersion})`);
  // A build copies the addon into place, so it is newer than this call; a reused one is older.
  const compiled = statSync(addon).mtimeMs >= startedAt;
  return { dir, compiled, ms: compiled ? Date.now() - startedAt : 0, nodeVersion, abi };
}

/**
 * The dev enclave entry for the guest (test/vm/guest/enclave-dev.ts → the dev
 * command `enclave-signer enclave`) and its signing worker beside it: the
 * production image's /app/enclave.mjs runs only the hardware NSM, which a QEMU
 * guest does not have, so the appliance runs the same enclave code through the
 * dev command, on the image's node and addon, with the image's own measured
 * /app/enclave-config.json. Options as build-eif.sh bundles the image.
 */
export async function bundleGuestEnclave(dir: string): Promise<{ entry: string; worker: string }> {
  const common = {
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node22',
    charset: 'utf8' as const,
    external: ['*.node'],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'warning' as const,
  };
  const entry = join(dir, 'enclave-dev.mjs');
  const worker = join(dir, 'worker.mjs');
  await build({ ...common, entryPoints: [join(REPO_ROOT, 'test/vm/guest/enclave-dev.ts')], outfile: entry });
  await build({ ...common, entryPoints: [join(REPO_ROOT, 'enclave/worker.ts')], outfile: worker });
  return { entry, worker };
}

/** Bundles the guest harness: ESM, with better-sqlite3 left to node_modules in the payload. */
export async function bundleGuestHarness(outfile: string): Promise<void> {
  await build({
    entryPoints: [join(REPO_ROOT, 'test/vm/guest/appliance-harness.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    outfile,
    external: ['better-sqlite3', '*.node'],
    // Bundled CommonJS dependencies (the AWS SDK, …) call require() for node builtins.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

function filesUnder(dir: string, prefix: string): CpioEntry[] {
  const out: CpioEntry[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) out.push(...filesUnder(p, `${prefix}/${name}`));
    else if (s.isFile()) out.push({ path: `${prefix}/${name}`, type: 'file', data: new Uint8Array(readFileSync(p)), executable: (s.mode & 0o111) !== 0 });
  }
  return out;
}

export interface PayloadInput {
  busybox: string;
  blobs: string;
  harnessBundle: string;
  /** The dev enclave entry and its worker (bundleGuestEnclave), put under /vmtest in the guest. */
  enclaveBundle: { entry: string; worker: string };
  sqlite: GuestSqlite;
  config: unknown;
}

/**
 * The third initramfs: /vmtest/init (PID 1 via rdinit=), busybox and the
 * loopback modules outside the image's rootfs; the harness bundle, its
 * node_modules (better-sqlite3 + bindings + file-uri-to-path) and config
 * under /rootfs/vmtest, where the chrooted harness sees them.
 */
export function payloadArchive(p: PayloadInput): { bytes: Uint8Array; paths: string[] } {
  const nm = join(REPO_ROOT, 'node_modules');
  const entries: CpioEntry[] = [
    { path: `${PAYLOAD_OUTSIDE}/init`, type: 'file', data: new TextEncoder().encode(GUEST_INIT), executable: true },
    { path: `${PAYLOAD_OUTSIDE}/bin/busybox`, type: 'file', data: new Uint8Array(readFileSync(p.busybox)), executable: true },
    ...LOOPBACK_MODULES.map((m): CpioEntry => ({ path: `${PAYLOAD_OUTSIDE}/modules/${m}.ko`, type: 'file', data: new Uint8Array(readFileSync(join(p.blobs, 'modules', `${m}.ko`))) })),
    { path: `${PAYLOAD_INSIDE}/harness.mjs`, type: 'file', data: new Uint8Array(readFileSync(p.harnessBundle)) },
    { path: `${PAYLOAD_INSIDE}/enclave-dev.mjs`, type: 'file', data: new Uint8Array(readFileSync(p.enclaveBundle.entry)) },
    { path: `${PAYLOAD_INSIDE}/worker.mjs`, type: 'file', data: new Uint8Array(readFileSync(p.enclaveBundle.worker)) },
    { path: `${PAYLOAD_INSIDE}/config.json`, type: 'file', data: new TextEncoder().encode(JSON.stringify(p.config)) },
    // type: module so node treats nothing here as CommonJS by accident; the packages below carry their own package.json.
    { path: `${PAYLOAD_INSIDE}/package.json`, type: 'file', data: new TextEncoder().encode('{"type":"module","private":true}\n') },
    ...filesUnder(p.sqlite.dir, `${PAYLOAD_INSIDE}/node_modules/better-sqlite3`),
    ...['bindings', 'file-uri-to-path'].flatMap((pkg) =>
      readdirSync(join(nm, pkg))
        .filter((f) => f.endsWith('.js') || f === 'package.json')
        .map((f): CpioEntry => ({ path: `${PAYLOAD_INSIDE}/node_modules/${pkg}/${f}`, type: 'file', data: new Uint8Array(readFileSync(join(nm, pkg, f))) })),
    ),
  ];
  const bytes = writeCpio(entries, { mtime: 0 });
  return { bytes, paths: readCpio(bytes).map((e) => e.path) };
}

/**
 * PID 1 of the appliance guest (the EIF's own /init is the test blobs'
 * stand-in; ours runs instead via rdinit=/vmtest/init and leaves the image's
 * files as they are). It does what that init does — pseudo filesystems,
 * insmod /nsm.ko, bind mounts and tmpfs into /rootfs, the image's env — plus
 * the vsock loopback transport and `lo`, then runs the harness chrooted in
 * the image's rootfs on the image's /bin/node.
 */
export const GUEST_INIT = `#!/vmtest/bin/busybox sh
B=/vmtest/bin/busybox
$B mkdir -p /proc /sys /dev
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
# The image's bootstrap module (test blobs: vsock.ko as nsm.ko), then vsock_loopback for CID 1.
$B insmod /nsm.ko || echo "VMTEST-INSMOD-FAILED nsm.ko"
for m in ${LOOPBACK_MODULES.join(' ')}; do
  $B insmod /vmtest/modules/$m.ko || echo "VMTEST-INSMOD-FAILED $m"
done
# No network device exists (qemu -nic none); the KMS emulator listens on 127.0.0.1.
$B ip link set lo up || echo "VMTEST-LO-FAILED"
$B mkdir -p /rootfs/proc /rootfs/sys /rootfs/dev /rootfs/tmp /rootfs/run /rootfs/vmtest/image
$B mount --bind /proc /rootfs/proc
$B mount --bind /sys /rootfs/sys
$B mount --bind /dev /rootfs/dev
$B mount -t tmpfs tmpfs /rootfs/tmp
$B mount -t tmpfs tmpfs /rootfs/run
$B cp /cmd /env /rootfs/vmtest/image/
echo "VMTEST-BOOTED uptime=$($B cut -d' ' -f1 /proc/uptime)"
while IFS= read -r kv || [ -n "$kv" ]; do [ -n "$kv" ] && export "$kv"; done < /env
export ENCLAVE_SIGNER_VM_GUEST=1
cd /rootfs
$B chroot /rootfs /bin/node /vmtest/harness.mjs
echo "VMTEST-EXIT $? uptime=$($B cut -d' ' -f1 /proc/uptime)"
$B poweroff -f
`;

export { sha256File };
