/**
 * Test support (not part of the library): sample images, an OpenSSL-made
 * signing certificate, and PCRs computed from raw file bytes without any of
 * our parsing code.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { writeCpio } from '../../build/cpio.js';
import type { EifInput } from '../../build/eif-writer.js';

export function requireTool(name: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'pipe' });
  } catch {
    throw new Error(`${name} is required by this test and is not installed (apt-get install ${name}); .ci/run installs it`);
  }
}

export interface TestSigner {
  certPem: string;
  keyPem: string;
  certDer: Uint8Array;
  /** `openssl x509 -noout -issuer -startdate -enddate -nameopt …` lines. */
  opensslText: string;
}

/** A self-signed P-384 certificate made the way nitro-cli's docs tell users to make one. */
export function opensslSigner(subject = '/C=US/ST=Washington/O=Example Corp/CN=enclave-signer test', curve = 'secp384r1'): TestSigner {
  requireTool('openssl');
  const dir = mkdtempSync(join(tmpdir(), 'eif-signer-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync('openssl', ['ecparam', '-name', curve, '-genkey', '-noout', '-out', key], { stdio: 'pipe' });
    execFileSync('openssl', ['req', '-new', '-x509', '-sha384', '-key', key, '-out', cert, '-days', '30', '-subj', subject], { stdio: 'pipe' });
    const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
    const text = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-startdate', '-enddate', '-text'], { encoding: 'utf8' });
    return { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8'), certDer: new Uint8Array(der), opensslText: text };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pseudoRandom(n: number, seed: number): Uint8Array {
  // Deterministic filler: SHA-256 in counter mode.
  const out = new Uint8Array(n);
  for (let i = 0, c = 0; i < n; c++) {
    const block = createHash('sha256').update(`${seed}:${c}`).digest();
    out.set(block.subarray(0, Math.min(32, n - i)), i);
    i += 32;
  }
  return out;
}

export function sampleInput(overrides: Partial<EifInput> = {}): EifInput {
  const bootstrap = writeCpio(
    [
      { path: 'init', type: 'file', data: new TextEncoder().encode('#!/bin/sh\necho init\n'), executable: true },
      { path: 'nsm.ko', type: 'file', data: pseudoRandom(3000, 2) },
      { path: 'dev', type: 'dir' },
    ],
    { mtime: 0 },
  );
  const app = writeCpio(
    [
      { path: 'rootfs/bin/node', type: 'file', data: pseudoRandom(20_000, 3), executable: true },
      { path: 'rootfs/app/enclave.mjs', type: 'file', data: new TextEncoder().encode('console.log("hi")\n') },
      { path: 'cmd', type: 'file', data: new TextEncoder().encode('/bin/node\n/app/enclave.mjs\n') },
      { path: 'env', type: 'file', data: new TextEncoder().encode('PATH=/bin\n') },
    ],
    { mtime: 0 },
  );
  return {
    kernel: pseudoRandom(50_001, 1),
    cmdline: 'reboot=k panic=30 pci=off nomodules console=ttyS0\n',
    ramdisks: [bootstrap, app],
    metadata: {
      ImageName: 'enclave-signer',
      ImageVersion: '0.1.0',
      BuildMetadata: { BuildTime: '1970-01-01T00:00:00+00:00', BuildTool: 'enclave-signer-eif', BuildToolVersion: '0.1.0', OperatingSystem: 'Linux', KernelVersion: '6.1.192' },
      DockerInfo: null,
      CustomMetadata: { SourceCommit: '0'.repeat(40) },
    },
    arch: 'x86_64',
    ...overrides,
  };
}

/**
 * PCRs straight from the file bytes with node:crypto: walks the header's
 * offset table by hand (big-endian u64s at 0x1c and 0x11c).
 */
export function rawPcrs(file: Uint8Array): { PCR0: string; PCR1: string; PCR2: string; sections: { type: number; data: Uint8Array }[] } {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = dv.getUint16(26);
  const sections: { type: number; data: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    const off = Number(dv.getBigUint64(28 + 8 * i));
    const size = Number(dv.getBigUint64(28 + 256 + 8 * i));
    sections.push({ type: dv.getUint16(off), data: file.subarray(off + 12, off + 12 + size) });
  }
  const sha = (parts: Uint8Array[]): Buffer => {
    const h = createHash('sha384');
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const pcr = (parts: Uint8Array[]): string => sha([new Uint8Array(48), sha(parts)]).toString('hex');
  const kernel = sections.filter((s) => s.type === 1).map((s) => s.data);
  const cmdline = sections.filter((s) => s.type === 2).map((s) => s.data);
  const ramdisks = sections.filter((s) => s.type === 3).map((s) => s.data);
  return {
    PCR0: pcr([...kernel, ...cmdline, ...ramdisks]),
    PCR1: pcr([...kernel, ...cmdline, ramdisks[0]!]),
    PCR2: pcr(ramdisks.slice(1)),
    sections,
  };
}

/** Rewrites the stored CRC so that a deliberate mutation reaches the check under test. */
export function fixCrc(file: Uint8Array): Uint8Array {
  const out = new Uint8Array(file);
  const c = crc32(out.subarray(548), crc32(out.subarray(0, 544))) >>> 0;
  new DataView(out.buffer).setUint32(544, c);
  return out;
}
