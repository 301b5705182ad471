import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeCbor } from '../../common/cbor.js';
import { writeEif } from '../../build/eif-writer.js';
import { parseCoseSign1 } from '../cose.js';
import { describeEif, EifError, measureEif, parseEif, type EifErrorCode } from './index.js';
import { fixCrc, opensslSigner, rawPcrs, sampleInput, type TestSigner } from './test-helpers.js';

function codeOf(f: () => unknown): EifErrorCode | string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EifError);
    return (e as EifError).code;
  }
  return 'no error';
}

const be = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

let signerCache: TestSigner | undefined;
const signer = (): TestSigner => (signerCache ??= opensslSigner());

describe('writeEif → parseEif', () => {
  it('lays sections out as nitro-cli does and round-trips every field', () => {
    const input = sampleInput({ defaultMem: 512 * 1024 * 1024, defaultCpus: 4 });
    const { bytes, cmdline } = writeEif(input);
    const p = parseEif(bytes);
    expect(p.header.version).toBe(4);
    expect(p.header.arch).toBe('x86_64');
    expect(p.header.flags).toBe(0);
    expect(p.header.defaultMem).toBe(512 * 1024 * 1024);
    expect(p.header.defaultCpus).toBe(4);
    expect(p.header.sections.map((s) => s.typeName)).toEqual(['kernel', 'cmdline', 'metadata', 'ramdisk', 'ramdisk']);
    expect(p.header.sections[0]!.offset).toBe(548);
    for (let i = 1; i < p.sections.length; i++) {
      const prev = p.sections[i - 1]!;
      expect(p.sections[i]!.offset).toBe(prev.offset + 12 + prev.size);
    }
    expect(Buffer.from(p.kernel).equals(Buffer.from(input.kernel))).toBe(true);
    expect(p.ramdisks.map((r) => Buffer.from(r).toString('hex'))).toEqual(input.ramdisks.map((r) => Buffer.from(r).toString('hex')));
    // nitro-cli trims the blobs' cmdline when it builds.
    expect(cmdline).toBe('reboot=k panic=30 pci=off nomodules console=ttyS0');
    expect(Buffer.from(p.cmdline).toString()).toBe(cmdline);
    expect(p.crc.ok).toBe(true);
    expect(p.crc.stored).toBe(be(bytes).getUint32(0x220));
    expect(p.signature).toBeUndefined();
    expect(JSON.parse(Buffer.from(p.metadata!).toString())).toEqual(input.metadata);
  });

  it('sets the aarch64 flag', () => {
    const p = parseEif(writeEif(sampleInput({ arch: 'aarch64' })).bytes);
    expect(p.header.flags).toBe(1);
    expect(p.header.arch).toBe('aarch64');
  });

  it('trims cmdline whitespace the way Rust str::trim does (Unicode White_Space, not U+FEFF)', () => {
    expect(writeEif(sampleInput({ cmdline: '\u0085 a b \t\n' })).cmdline).toBe('a b');
    expect(writeEif(sampleInput({ cmdline: '\ufeffa' })).cmdline).toBe('\ufeffa');
    expect(codeOf(() => writeEif(sampleInput({ cmdline: 'a\0b' })))).toBe('EIF_INPUT');
  });

  it('PCRs equal an independent computation from the raw section bytes', () => {
    const { bytes, measurements } = writeEif(sampleInput());
    const raw = rawPcrs(bytes);
    const m = measureEif(parseEif(bytes));
    expect(m).toEqual({ HashAlgorithm: 'Sha384 { ... }', PCR0: raw.PCR0, PCR1: raw.PCR1, PCR2: raw.PCR2 });
    expect(measurements).toEqual(m);
    // And the cmdline hashed is the trimmed one, with no trailing newline.
    expect(raw.sections[1]!.data.at(-1)).not.toBe(0x0a);
  });

  it('keeps metadata out of every PCR', () => {
    const a = writeEif(sampleInput());
    const other = sampleInput();
    other.metadata = { ...other.metadata, ImageVersion: '9.9.9', BuildMetadata: { ...other.metadata.BuildMetadata, BuildTime: '2030-01-01T00:00:00+00:00' } };
    const b = writeEif(other);
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(false);
    expect(measureEif(parseEif(b.bytes))).toEqual(measureEif(parseEif(a.bytes)));
  });

  it('moves PCR2 but not PCR1 when only the application ramdisk changes', () => {
    const a = sampleInput();
    const b = sampleInput();
    b.ramdisks = [b.ramdisks[0]!, new Uint8Array([...b.ramdisks[1]!, 0, 0, 0, 0])];
    const ma = writeEif(a).measurements;
    const mb = writeEif(b).measurements;
    expect(mb.PCR1).toBe(ma.PCR1);
    expect(mb.PCR2).not.toBe(ma.PCR2);
    expect(mb.PCR0).not.toBe(ma.PCR0);
  });

  it('writes byte-identical images for the same inputs', () => {
    const a = writeEif(sampleInput()).bytes;
    const b = writeEif(sampleInput()).bytes;
    expect(createHash('sha256').update(a).digest('hex')).toBe(createHash('sha256').update(b).digest('hex'));
  });
});

describe('signed images', () => {
  it('PCR8 is SHA384(zeros ‖ SHA384(certificate DER)) and the signature verifies', () => {
    const s = signer();
    const { bytes, measurements } = writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } }));
    const p = parseEif(bytes);
    expect(p.header.sections.at(-1)!.typeName).toBe('signature');
    const m = measureEif(p);
    const inner = createHash('sha384').update(s.certDer).digest();
    expect(m.PCR8).toBe(createHash('sha384').update(new Uint8Array(48)).update(inner).digest('hex'));
    expect(measurements).toEqual(m);
    // Signing adds a section but changes none of PCR0/1/2.
    const unsigned = measureEif(parseEif(writeEif(sampleInput()).bytes));
    expect({ ...m, PCR8: undefined }).toEqual({ ...unsigned, PCR8: undefined });
    expect(m.PCR0).toBe(rawPcrs(bytes).PCR0);
  });

  it('encodes the section as serde_cbor does: arrays of small uints, payload {register_index, register_value}', () => {
    const s = signer();
    const p = parseEif(writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes);
    const top = decodeCbor(p.signature!) as Map<string, unknown>[];
    expect(Array.isArray(top) && top.length === 1).toBe(true);
    const entry = top[0]!;
    expect([...entry.keys()]).toEqual(['signing_certificate', 'signature']);
    const cert = entry.get('signing_certificate') as number[];
    expect(Array.isArray(cert)).toBe(true);
    expect(Buffer.from(cert).toString()).toBe(s.certPem);
    const cose = parseCoseSign1(Uint8Array.from(entry.get('signature') as number[]));
    expect(cose.tagged).toBe(false);
    expect(Buffer.from(cose.protectedHeader).toString('hex')).toBe('a1013822');
    const payload = Buffer.from(cose.payload);
    // a2, "register_index": 0, "register_value": array(48)
    expect(payload.subarray(0, 17).toString('hex')).toBe('a26e72656769737465725f696e64657800');
    expect(payload.subarray(17, 18).toString('hex')).toBe('6e');
    expect(payload.subarray(18, 32).toString()).toBe('register_value');
    expect(payload.subarray(32, 34).toString('hex')).toBe('9830');
    const pcr0 = Buffer.from(measureEif(p).PCR0, 'hex');
    // Each byte is a CBOR uint: one byte below 24, two (0x18 xx) otherwise.
    expect(payload.length).toBe(34 + [...pcr0].reduce((n, x) => n + (x < 24 ? 1 : 2), 0));
    const value = decodeCbor(cose.payload) as Map<string, unknown>;
    expect(Buffer.from(value.get('register_value') as number[]).toString('hex')).toBe(measureEif(p).PCR0);
  });

  it('describes the signing certificate as OpenSSL does', () => {
    const s = signer();
    const d = describeEif(writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes);
    expect(d.IsSigned).toBe(true);
    expect(d.SignatureCheck).toBe(true);
    const c = d.SigningCertificate!;
    expect(c.IssuerName).toEqual({ commonName: 'enclave-signer test', countryName: 'US', organizationName: 'Example Corp', stateOrProvinceName: 'Washington' });
    expect(c.Algorithm).toBe('ecdsa-with-SHA384');
    expect(s.opensslText).toContain(`notBefore=${c.NotBefore}`);
    expect(s.opensslText).toContain(`notAfter=${c.NotAfter}`);
    // openssl -text prints the signature as lowercase hex pairs joined by ':' across lines.
    const opensslSig = /Signature Value:\s*([\s\S]*)$/.exec(s.opensslText)![1]!.replace(/[\s]/g, '').toUpperCase();
    expect(c.Signature).toBe(opensslSig.replace(/:$/, ''));
  });

  it('signs deterministically: two signed builds are byte-identical', () => {
    const s = signer();
    const a = writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes;
    const b = writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes;
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('refuses a changed image, a forged signature, and a mismatched key', () => {
    const s = signer();
    const { bytes } = writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } }));
    const p = parseEif(bytes);
    // One kernel byte changed (CRC fixed so the signature check is what fails).
    const changed = new Uint8Array(bytes);
    changed[p.sections[0]!.offset + 12 + 100]! ^= 1;
    const e1 = (() => {
      try {
        measureEif(parseEif(fixCrc(changed)));
      } catch (e) {
        return e as EifError;
      }
      return undefined;
    })();
    expect(e1?.code).toBe('EIF_BAD_SIGNATURE');
    expect(e1?.message).toMatch(/covers register_index 0, register_value [0-9a-f]{96}, but the image measures PCR0/);
    // Still measurable on request (PCR8 comes from the certificate alone).
    expect(measureEif(parseEif(fixCrc(changed)), { verifySignature: false }).PCR8).toBe(measureEif(p).PCR8);

    // Flip one signature byte: find the COSE signature array's last element in the section.
    const sigSec = p.sections.at(-1)!;
    const forged = new Uint8Array(bytes);
    const last = sigSec.offset + 12 + sigSec.size - 1; // last item of the last array: a byte of r‖s
    forged[last] = forged[last]! === 0x00 ? 0x01 : forged[last]! < 0x17 ? forged[last]! + 1 : forged[last]! ^ 1;
    expect(codeOf(() => measureEif(parseEif(fixCrc(forged))))).toBe('EIF_BAD_SIGNATURE');

    // A certificate for another key.
    const other = opensslSigner('/CN=other');
    expect(codeOf(() => writeEif(sampleInput({ sign: { certPem: other.certPem, keyPem: s.keyPem } })))).toBe('EIF_INPUT');
    // A P-256 key is not what nitro-cli's ES384 expects.
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(codeOf(() => writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: p256 } })))).toBe('EIF_INPUT');
  });

  it('checks the certificate validity window only when asked', () => {
    const s = signer();
    const p = parseEif(writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes);
    const notAfter = new Date(new X509Certificate(s.certPem).validTo);
    expect(() => measureEif(p, { at: new Date() })).not.toThrow();
    expect(codeOf(() => measureEif(p, { at: new Date(notAfter.getTime() + 86_400_000) }))).toBe('EIF_BAD_SIGNATURE');
  });
});

describe('malformed images fail with the right code', () => {
  const good = writeEif(sampleInput()).bytes;
  const parsed = parseEif(good);
  const sec = (i: number) => parsed.sections[i]!;
  const mutate = (f: (b: Uint8Array, v: DataView) => void, crc = true): Uint8Array => {
    const b = new Uint8Array(good);
    f(b, be(b));
    return crc ? fixCrc(b) : b;
  };

  const cases: [string, () => Uint8Array, EifErrorCode][] = [
    ['flipped magic', () => mutate((b) => (b[0] = 0x2f), false), 'EIF_BAD_MAGIC'],
    ['not an EIF at all', () => new TextEncoder().encode('MZ this is something else entirely'), 'EIF_BAD_MAGIC'],
    ['truncated inside the header', () => good.slice(0, 300), 'EIF_TRUNCATED'],
    ['three bytes', () => good.slice(0, 3), 'EIF_TRUNCATED'],
    ['truncated inside the last section', () => good.slice(0, good.length - 10), 'EIF_SECTION_OUT_OF_BOUNDS'],
    ['truncated inside a section header', () => good.slice(0, sec(1).offset + 5), 'EIF_SECTION_OUT_OF_BOUNDS'],
    [
      'last section claims more bytes than the file has',
      () =>
        mutate((_, v) => {
          const i = parsed.sections.length - 1;
          v.setBigUint64(28 + 256 + 8 * i, BigInt(sec(i).size + 4096));
          v.setBigUint64(sec(i).offset + 4, BigInt(sec(i).size + 4096));
        }),
      'EIF_SECTION_OUT_OF_BOUNDS',
    ],
    ['section offset past the end', () => mutate((_, v) => v.setBigUint64(28 + 8 * 4, BigInt(good.length + 100))), 'EIF_SECTION_OUT_OF_BOUNDS'],
    ['huge u64 size', () => mutate((_, v) => (v.setBigUint64(28 + 256, 0xffffffffffffff00n), v.setBigUint64(sec(0).offset + 4, 0xffffffffffffff00n))), 'EIF_SECTION_OUT_OF_BOUNDS'],
    ['CRC byte flipped', () => mutate((b) => (b[0x221]! ^= 0x10), false), 'EIF_CRC_MISMATCH'],
    ['a kernel byte flipped', () => mutate((b) => (b[sec(0).offset + 40]! ^= 1), false), 'EIF_CRC_MISMATCH'],
    ['a metadata byte flipped', () => mutate((b) => (b[sec(2).offset + 14]! ^= 1), false), 'EIF_CRC_MISMATCH'],
    ['unknown section type 9', () => mutate((_, v) => v.setUint16(sec(2).offset, 9)), 'EIF_UNKNOWN_SECTION'],
    ['section type 0 (nitro-cli: invalid)', () => mutate((_, v) => v.setUint16(sec(3).offset, 0)), 'EIF_UNKNOWN_SECTION'],
    ['header size differs from section header size', () => mutate((_, v) => v.setBigUint64(28 + 256 + 8, BigInt(sec(1).size - 1))), 'EIF_SIZE_MISMATCH'],
    ['section header size differs from header size', () => mutate((_, v) => v.setBigUint64(sec(3).offset + 4, BigInt(sec(3).size + 1))), 'EIF_SIZE_MISMATCH'],
    ['overlapping sections', () => mutate((_, v) => v.setBigUint64(28 + 8 * 2, BigInt(sec(2).offset - 4))), 'EIF_OVERLAP'],
    ['section inside the header', () => mutate((_, v) => v.setBigUint64(28, 100n)), 'EIF_OVERLAP'],
    ['trailing bytes', () => fixCrc(new Uint8Array([...good, 1, 2, 3])), 'EIF_BAD_LAYOUT'],
    ['version 5', () => mutate((_, v) => v.setUint16(4, 5)), 'EIF_BAD_HEADER'],
    ['unknown flag bit', () => mutate((_, v) => v.setUint16(6, 2)), 'EIF_BAD_HEADER'],
    ['zero sections', () => mutate((_, v) => v.setUint16(26, 0)), 'EIF_BAD_HEADER'],
    ['33 sections', () => mutate((_, v) => v.setUint16(26, 33)), 'EIF_BAD_HEADER'],
    ['num_sections one short (a slot past it is used)', () => mutate((_, v) => v.setUint16(26, parsed.sections.length - 1)), 'EIF_BAD_HEADER'],
    ['kernel and cmdline swapped', () => mutate((_, v) => (v.setUint16(sec(0).offset, 2), v.setUint16(sec(1).offset, 1))), 'EIF_BAD_LAYOUT'],
    ['no ramdisk', () => mutate((_, v) => (v.setUint16(sec(3).offset, 5), v.setUint16(sec(4).offset, 2))), 'EIF_BAD_LAYOUT'],
  ];
  for (const [name, make, code] of cases) {
    it(name, () => expect(codeOf(() => parseEif(make()))).toBe(code));
  }

  it('reports a CRC mismatch as CheckCRC false when asked, like nitro-cli', () => {
    const bad = mutate((b) => (b[0x221]! ^= 0x10), false);
    const d = describeEif(bad, { allowCrcMismatch: true });
    expect(d.CheckCRC).toBe(false);
    expect(d.Measurements).toEqual(measureEif(parsed));
  });

  it('metadata that is not nitro-cli JSON: PCRs still measure, describe fails with EIF_BAD_METADATA', () => {
    const b = mutate((x) => x.fill(0x20, sec(2).offset + 12, sec(2).offset + 12 + sec(2).size));
    expect(measureEif(parseEif(b))).toEqual(measureEif(parsed));
    expect(codeOf(() => describeEif(b))).toBe('EIF_BAD_METADATA');
  });

  it('signature section garbage is EIF_BAD_SIGNATURE', () => {
    const s = signer();
    const signed = writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes;
    const ps = parseEif(signed);
    const last = ps.sections.at(-1)!;
    const b = new Uint8Array(signed);
    b[last.offset + 12] = 0x82; // array of 2: claims a second signature that is not there
    expect(codeOf(() => measureEif(parseEif(fixCrc(b))))).toBe('EIF_BAD_SIGNATURE');
    b[last.offset + 12] = 0xa0; // a map instead of an array
    expect(codeOf(() => measureEif(parseEif(fixCrc(b))))).toBe('EIF_BAD_SIGNATURE');
  });

  it('never throws anything but EifError on random corruption', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < 300; i++) {
      const b = new Uint8Array(good);
      const flips = 1 + rnd(4);
      for (let j = 0; j < flips; j++) b[rnd(i % 2 ? 600 : b.length)] = rnd(256);
      const input = i % 3 === 0 ? fixCrc(b) : b;
      try {
        describeEif(input);
      } catch (e) {
        expect(e).toBeInstanceOf(EifError);
      }
    }
  });
});

describe('describeEif', () => {
  it("prints nitro-cli's fields in nitro-cli's order", () => {
    const d = describeEif(writeEif(sampleInput()).bytes);
    expect(Object.keys(d)).toEqual(['EifVersion', 'Measurements', 'IsSigned', 'CheckCRC', 'ImageName', 'ImageVersion', 'Metadata']);
    expect(Object.keys(d.Measurements)).toEqual(['HashAlgorithm', 'PCR0', 'PCR1', 'PCR2']);
    expect(d.Metadata).toEqual({
      BuildTime: '1970-01-01T00:00:00+00:00',
      BuildTool: 'enclave-signer-eif',
      BuildToolVersion: '0.1.0',
      OperatingSystem: 'Linux',
      KernelVersion: '6.1.192',
      DockerInfo: null,
      SourceCommit: '0'.repeat(40),
    });
    const s = signer();
    const ds = describeEif(writeEif(sampleInput({ sign: { certPem: s.certPem, keyPem: s.keyPem } })).bytes);
    expect(Object.keys(ds)).toEqual(['EifVersion', 'Measurements', 'IsSigned', 'SigningCertificate', 'CheckCRC', 'SignatureCheck', 'ImageName', 'ImageVersion', 'Metadata']);
    expect(Object.keys(ds.Measurements)).toEqual(['HashAlgorithm', 'PCR0', 'PCR1', 'PCR2', 'PCR8']);
    expect(Object.keys(ds.SigningCertificate!)).toEqual(['IssuerName', 'Algorithm', 'NotBefore', 'NotAfter', 'Signature']);
  });
});
