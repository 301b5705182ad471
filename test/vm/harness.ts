/**
 * Boots a throwaway QEMU guest (TCG, no KVM, no network device) with a busybox
 * initramfs, the vsock kernel modules, a node runtime and one bundled test
 * program, and reads its result from the serial console. Real AF_VSOCK exists
 * only in there (vsock_loopback, CID 1); the development machine never opens
 * a vsock socket.
 *
 * Host prerequisites come from test/vm/setup.sh (apt packages, pinned Debian
 * cloud kernel in .cache/vm/). The initramfs is two concatenated cpio
 * archives, which Linux unpacks as one: a cached base (busybox, node and its
 * shared libraries, kernel modules, /init) and a small per-run app archive.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { pinnedRuntimeNode } from '../../build/pinned-runtime.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VM_CACHE = join(REPO_ROOT, '.cache', 'vm');
/** Modules loaded in this order (each after its dependencies, read from the .ko's modinfo). */
export const VSOCK_MODULES = ['vsock', 'vmw_vsock_virtio_transport_common', 'vsock_loopback'] as const;
export const RESULT_MARKER = 'VMTEST-RESULT ';

export interface VmAssets {
  kernel: string;
  kernelPackage: string;
  /** .../lib/modules/<release>/kernel */
  modulesDir: string;
  qemu: string;
  busybox: string;
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p !== '' ? p : undefined;
}

/** What setup.sh prepared; throws (with the fix) if anything is missing. */
export function vmAssets(): VmAssets {
  const envFile = join(VM_CACHE, 'kernel.env');
  const fix = 'run `bash test/vm/setup.sh` first';
  if (!existsSync(envFile)) throw new Error(`VM test assets missing (${envFile}): ${fix}`);
  const env = Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
  const qemu = which('qemu-system-x86_64');
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  const cpio = which('cpio');
  const kernel = env.VM_KERNEL;
  const modulesDir = env.VM_MODULES;
  if (qemu === undefined || busybox === undefined || cpio === undefined || kernel === undefined || modulesDir === undefined || !existsSync(kernel)) {
    throw new Error(`VM test prerequisites incomplete (qemu ${qemu ?? 'missing'}, busybox ${busybox ?? 'missing'}, cpio ${cpio ?? 'missing'}, kernel ${kernel ?? 'missing'}): ${fix}`);
  }
  return { kernel, kernelPackage: env.VM_KERNEL_PACKAGE ?? 'unknown', modulesDir, qemu, busybox };
}

export interface GuestNode {
  path: string;
  version: string;
  /** "pinned runtime" (build/runtime, what the enclave image runs) or "host". */
  source: string;
}

/** The node that runs in the guest: the pinned enclave runtime when installed, else the host's. */
export function guestNode(): GuestNode {
  const pinned = pinnedRuntimeNode(REPO_ROOT);
  if (pinned) return { ...pinned, source: 'pinned runtime (build/runtime)' };
  return { path: process.execPath, version: process.version, source: 'host' };
}

/** Shared libraries a dynamic executable needs, from ldd: [path on host, path in guest]. */
function sharedLibs(binary: string): [string, string][] {
  const r = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (/not a dynamic executable/.test(r.stdout + r.stderr)) return [];
    throw new Error(`ldd ${binary} failed: ${r.stderr}`);
  }
  const out: [string, string][] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1] === undefined) continue;
    // Same path in the guest: the loader must sit where the executable names it (/lib64/ld-linux-x86-64.so.2).
    out.push([m[1], m[1]]);
  }
  return out;
}

/** Module files with their dependencies first, resolved from each .ko's `depends=` modinfo. */
export function moduleClosure(modulesDir: string, names: readonly string[]): { name: string; path: string }[] {
  const find = spawnSync('find', [modulesDir, '-name', '*.ko'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const byName = new Map(find.map((p) => [basename(p, '.ko').replace(/-/g, '_'), p]));
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    const n = name.replace(/-/g, '_');
    if (seen.has(n)) return;
    seen.add(n);
    const path = byName.get(n);
    if (path === undefined) throw new Error(`kernel module ${n} not found under ${modulesDir}`);
    const info = readFileSync(path).toString('latin1').split('\0');
    const deps = info.find((s) => s.startsWith('depends='))?.slice('depends='.length) ?? '';
    for (const d of deps.split(',').filter(Boolean)) visit(d);
    order.push({ name: n, path });
  };
  for (const n of names) visit(n);
  return order;
}

const INIT = `#!/bin/busybox sh
# PID 1 of the vsock test guest. No network device exists (qemu -nic none).
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin HOME=/tmp ENCLAVE_SIGNER_VM_GUEST=1
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "VMTEST-INSMOD-FAILED $m"
done
echo "VMTEST-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
cd /app
sh /app/run.sh
echo "VMTEST-EXIT $? uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
`;

function cpioArchive(stageDir: string, out: string): void {
  // Sorted names, owner root, fixed mtimes (--reproducible): the same tree gives the same bytes.
  const r = spawnSync('sh', ['-c', 'find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet > "$OUT"'], {
    cwd: stageDir,
    env: { ...process.env, OUT: out },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`cpio failed: ${r.stderr}`);
}

function put(stage: string, guestPath: string, src: string, mode?: number): void {
  const dest = join(stage, guestPath);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(src, dest);
  if (mode !== undefined) chmodSync(dest, mode);
}

/** busybox, node + libs, vsock modules, /init. Cached by everything that goes in. */
export function baseArchive(assets: VmAssets, node: GuestNode): string {
  const mods = moduleClosure(assets.modulesDir, VSOCK_MODULES);
  const libs = sharedLibs(node.path);
  const key = createHash('sha256');
  for (const p of [assets.busybox, node.path, ...mods.map((m) => m.path), ...libs.map((l) => l[0])]) {
    const s = statSync(p);
    key.update(`${p}\0${s.size}\0${s.mtimeMs}\0`);
  }
  key.update(INIT);
  const out = join(VM_CACHE, `base-${key.digest('hex').slice(0, 16)}.cpio`);
  if (existsSync(out)) return out;

  const stage = join(VM_CACHE, `stage-base-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  try {
    put(stage, 'bin/busybox', assets.busybox, 0o755);
    put(stage, 'bin/node', node.path, 0o755);
    for (const [host, guest] of libs) put(stage, guest, host, 0o755);
    for (const m of mods) put(stage, `lib/modules/${m.name}.ko`, m.path, 0o644);
    writeFileSync(join(stage, 'lib/modules/order'), `${mods.map((m) => m.name).join('\n')}\n`);
    writeFileSync(join(stage, 'init'), INIT, { mode: 0o755 });
    mkdirSync(join(stage, 'tmp'), { recursive: true });
    cpioArchive(stage, `${out}.tmp`);
    renameSync(`${out}.tmp`, out);
    // Older bases (another node or kernel) are ~130 MB each: keep only the current one.
    for (const f of readdirSync(VM_CACHE)) if (/^base-[0-9a-f]{16}\.cpio$/.test(f) && join(VM_CACHE, f) !== out) rmSync(join(VM_CACHE, f), { force: true });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return out;
}

export interface AppFile {
  /** Path inside the guest, relative to / (e.g. "app/guest.mjs"). */
  path: string;
  /** Host file to copy… */
  from?: string;
  /** …or literal content. */
  content?: string;
  mode?: number;
}

/** The per-run archive: /app/run.sh (the command) plus the given files. */
export function appArchive(name: string, command: string, files: AppFile[]): string {
  const stage = join(VM_CACHE, `stage-app-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  const out = join(VM_CACHE, `app-${name}-${process.pid}.cpio`);
  try {
    mkdirSync(join(stage, 'app'), { recursive: true });
    writeFileSync(join(stage, 'app/run.sh'), `${command}\n`, { mode: 0o755 });
    for (const f of files) {
      if (f.from !== undefined) put(stage, f.path, f.from, f.mode ?? 0o644);
      else {
        mkdirSync(dirname(join(stage, f.path)), { recursive: true });
        writeFileSync(join(stage, f.path), f.content ?? '', { mode: f.mode ?? 0o644 });
      }
    }
    cpioArchive(stage, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return out;
}

/** Concatenates cpio archives into one initrd (Linux unpacks them in order). */
export async function joinArchives(parts: string[], out: string): Promise<string> {
  const w = createWriteStream(out);
  for (const p of parts) await pipeline(createReadStream(p), w, { end: false });
  await new Promise<void>((resolve, reject) => w.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return out;
}

export interface BootOptions {
  initrd: string;
  memMb?: number;
  cpus?: number;
  timeoutMs?: number;
  /** Every serial line as it arrives (progress logging). */
  onLine?: (line: string) => void;
  /** Kernel image to boot instead of the setup.sh kernel (e.g. an EIF's kernel section). */
  kernel?: string;
  /** Kernel command line instead of the default one. */
  append?: string;
}

export interface BootResult {
  /** qemu's exit status (null if killed on timeout). */
  exitCode: number | null;
  timedOut: boolean;
  /** Everything the serial console printed. */
  serial: string;
  /** Host ms from spawning qemu to the guest's VMTEST-BOOTED line. */
  bootMs: number | undefined;
  /** Guest uptime (s) when /init had loaded the modules. */
  guestUptimeAtBoot: number | undefined;
  /** Exit status of /app/run.sh, from VMTEST-EXIT. */
  guestExit: number | undefined;
  totalMs: number;
  /** Parsed JSON of each VMTEST-RESULT line. */
  results: unknown[];
  insmodFailures: string[];
}

export function qemuArgs(assets: VmAssets, o: BootOptions): string[] {
  return [
    '-accel', 'tcg',
    '-cpu', 'max',
    '-m', String(o.memMb ?? 2048),
    '-smp', String(o.cpus ?? 1),
    '-nographic',
    '-serial', 'mon:stdio',
    '-no-reboot',
    '-nic', 'none', // never a network device
    '-kernel', o.kernel ?? assets.kernel,
    '-initrd', o.initrd,
    '-append', o.append ?? 'console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init',
  ];
}

/** Boots the guest and waits for it to power off (or the timeout). */
export function bootGuest(assets: VmAssets, o: BootOptions): Promise<BootResult> {
  const timeoutMs = o.timeoutMs ?? 240_000;
  const t0 = performance.now();
  return new Promise<BootResult>((resolvePromise, reject) => {
    const q = spawn(assets.qemu, qemuArgs(assets, o), { stdio: ['ignore', 'pipe', 'pipe'] });
    let serial = '';
    let partial = '';
    let bootMs: number | undefined;
    let guestUptimeAtBoot: number | undefined;
    let guestExit: number | undefined;
    const results: unknown[] = [];
    const insmodFailures: string[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      q.kill('SIGKILL');
    }, timeoutMs);
    const onLine = (raw: string) => {
      const line = raw.replace(/\r$/, '');
      o.onLine?.(line);
      const booted = /VMTEST-BOOTED uptime=([0-9.]+)/.exec(line);
      if (booted) {
        bootMs = Math.round(performance.now() - t0);
        guestUptimeAtBoot = Number(booted[1]);
      }
      const exit = /VMTEST-EXIT (\d+)/.exec(line);
      if (exit) guestExit = Number(exit[1]);
      const ins = /VMTEST-INSMOD-FAILED (\S+)/.exec(line);
      if (ins?.[1] !== undefined) insmodFailures.push(ins[1]);
      const at = line.indexOf(RESULT_MARKER);
      if (at >= 0) {
        try {
          results.push(JSON.parse(line.slice(at + RESULT_MARKER.length)));
        } catch (e) {
          results.push({ unparsable: line.slice(at), error: String(e) });
        }
      }
    };
    q.stdout.setEncoding('utf8').on('data', (s: string) => {
      serial += s;
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    });
    let stderr = '';
    q.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    q.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    q.on('close', (code) => {
      clearTimeout(timer);
      if (partial !== '') onLine(partial);
      if (stderr !== '') serial += `\n[qemu stderr] ${stderr}`;
      resolvePromise({ exitCode: code, timedOut, serial, bootMs, guestUptimeAtBoot, guestExit, totalMs: Math.round(performance.now() - t0), results, insmodFailures });
    });
  });
}
