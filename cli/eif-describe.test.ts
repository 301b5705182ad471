import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeEif } from '../build/eif-writer.js';
import { describeEif } from '../attestation/eif/describe.js';
import { fixCrc, opensslSigner, sampleInput } from '../attestation/eif/test-helpers.js';
import { eifDescribe } from './eif-describe.js';

const dir = mkdtempSync(join(tmpdir(), 'eif-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await eifDescribe(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
  return { code, out, err };
}

const plain = writeEif(sampleInput());
const plainPath = join(dir, 'plain.eif');
writeFileSync(plainPath, plain.bytes);

describe('enclave-signer eif describe', () => {
  it('prints PCRs, sections and metadata as text', async () => {
    const r = await run([plainPath]);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    for (const k of ['PCR0', 'PCR1', 'PCR2'] as const) expect(r.out).toContain(`${k}  ${plain.measurements[k]}`);
    expect(r.out).toMatch(/crc32\s+0x[0-9a-f]{8} ok/);
    expect(r.out).toMatch(/kernel\s+50001 bytes at 548/);
    expect(r.out).toContain('signed       no');
    expect(r.out).toContain('image        enclave-signer 0.1.0');
  });

  it('--json prints exactly what describeEif returns (nitro-cli fields)', async () => {
    const r = await run([plainPath, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(describeEif(plain.bytes));
    expect(Object.keys(JSON.parse(r.out))[0]).toBe('EifVersion');
  });

  it('describes a signed image with its certificate and PCR8', async () => {
    const s = opensslSigner();
    const signed = writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } }));
    const p = join(dir, 'signed.eif');
    writeFileSync(p, signed.bytes);
    const r = await run([p]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`PCR8  ${signed.measurements.PCR8}`);
    expect(r.out).toContain('signature over PCR0 verified');
    expect(r.out).toContain('commonName=enclave-signer test');
    const j = JSON.parse((await run([p, '--json'])).out);
    expect(j.IsSigned).toBe(true);
    expect(j.SignatureCheck).toBe(true);
    expect(j.Measurements.PCR8).toBe(signed.measurements.PCR8);
  });

  it('exits 1 with the error code on a malformed image, and on a bad CRC unless allowed', async () => {
    const bad = new Uint8Array(plain.bytes);
    bad[1] = 0;
    const badPath = join(dir, 'bad.eif');
    writeFileSync(badPath, bad);
    const r = await run([badPath]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('EIF_BAD_MAGIC');
    const j = await run([badPath, '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out).error.code).toBe('EIF_BAD_MAGIC');

    const crc = new Uint8Array(plain.bytes);
    crc[600]! ^= 0xff;
    const crcPath = join(dir, 'crc.eif');
    writeFileSync(crcPath, crc);
    expect((await run([crcPath])).err).toContain('EIF_CRC_MISMATCH');
    const allowed = await run([crcPath, '--json', '--allow-crc-mismatch']);
    expect(allowed.code).toBe(0);
    expect(JSON.parse(allowed.out).CheckCRC).toBe(false);
    expect((await run([crcPath, '--allow-crc-mismatch'])).out).toMatch(/MISMATCH \(computed 0x[0-9a-f]{8}\)/);

    // A signed image changed after signing, CRC made consistent: the signature check catches it.
    const s = opensslSigner();
    const signed = new Uint8Array(writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes);
    signed[700]! ^= 1;
    const tampered = join(dir, 'tampered.eif');
    writeFileSync(tampered, fixCrc(signed));
    const t = await run([tampered]);
    expect(t.code).toBe(1);
    expect(t.err).toContain('EIF_BAD_SIGNATURE');
  });

  it('exits 2 on usage errors and unreadable files', async () => {
    expect((await run([])).code).toBe(2);
    expect((await run([plainPath, '--nope'])).code).toBe(2);
    expect((await run([plainPath, plainPath])).code).toBe(2);
    const missing = await run([join(dir, 'missing.eif')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('no such file');
    expect((await run([dir])).code).toBe(2);
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('Usage: enclave-signer eif describe');
  });
});
