/**
 * writeEif: assembles an EIF the way nitro-cli's EifBuilder does
 * (aws-nitro-enclaves-image-format src/utils/mod.rs), from bytes instead of a
 * Docker image: sections kernel, cmdline, metadata, ramdisk0…n, signature,
 * contiguous from byte 548, CRC over everything but the CRC field.
 *
 * The cmdline is trimmed (Rust's str::trim, Unicode White_Space on both
 * ends) because nitro-cli trims its blobs' cmdline file *when it builds*;
 * the measurement then hashes the stored bytes as they are. Doing the same
 * keeps our PCR1 equal to nitro-cli's for the same blobs.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { toHex } from '../common/bytes.js';
import { eifCrc32Parts } from '../attestation/eif/crc.js';
import { EifError } from '../attestation/eif/errors.js';
import {
  EIF_CURRENT_VERSION,
  EIF_DEFAULT_CPUS,
  EIF_DEFAULT_MEM,
  EIF_FLAG_AARCH64,
  EIF_HEADER_SIZE,
  EIF_MAX_SECTIONS,
  EIF_SECTION_HEADER_SIZE,
  EIF_CRC_OFFSET,
  SectionType,
  encodeHeader,
  encodeSectionHeader,
  type EifArch,
  type SectionTypeCode,
} from '../attestation/eif/format.js';
import { extendFromZero, NITRO_HASH_ALGORITHM, type EifMeasurements } from '../attestation/eif/measure.js';
import { encodeEifMetadata, type EifIdentityInfo } from '../attestation/eif/metadata.js';
import { decodeSignatureSection, signPcr0 } from '../attestation/eif/signature.js';

export interface EifInput {
  kernel: Uint8Array;
  /** Text or bytes (UTF-8); trimmed like nitro-cli does. */
  cmdline: string | Uint8Array;
  /** ramdisks[0] is the bootstrap ramdisk (PCR1), the rest the application (PCR2). */
  ramdisks: readonly Uint8Array[];
  metadata: EifIdentityInfo;
  arch: EifArch;
  /** Bytes; default 1 GiB like nitro-cli. */
  defaultMem?: number;
  /** Default 2 like nitro-cli. */
  defaultCpus?: number;
  /** Adds a signature section over PCR0 (and so PCR8). P-384 key, PEM. */
  sign?: { certPem: string | Uint8Array; keyPem: string | KeyObject };
}

export interface WrittenEif {
  bytes: Uint8Array;
  measurements: EifMeasurements;
  /** The cmdline as stored (after trimming). */
  cmdline: string;
}

const WHITESPACE_EDGES = /^\p{White_Space}+|\p{White_Space}+$/gu;

/** Rust's str::trim: Unicode White_Space (which differs from String.prototype.trim at U+FEFF and U+0085). */
export function nitroTrim(s: string): string {
  return s.replace(WHITESPACE_EDGES, '');
}

function bad(message: string): EifError {
  return new EifError('EIF_INPUT', message);
}

function checkBytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${what} must be a Uint8Array`);
  return v;
}

function count(v: number | undefined, dflt: number, what: string): number {
  const n = v ?? dflt;
  if (!Number.isSafeInteger(n) || n <= 0) throw bad(`${what} must be a positive integer, got ${String(v)}`);
  return n;
}

export function writeEif(input: EifInput): WrittenEif {
  const kernel = checkBytes(input.kernel, 'kernel');
  if (kernel.length === 0) throw bad('kernel is empty');
  let cmdlineText: string;
  if (typeof input.cmdline === 'string') cmdlineText = input.cmdline;
  else {
    try {
      cmdlineText = new TextDecoder('utf-8', { fatal: true }).decode(checkBytes(input.cmdline, 'cmdline'));
    } catch {
      throw bad('cmdline is not UTF-8');
    }
  }
  cmdlineText = nitroTrim(cmdlineText);
  if (cmdlineText.includes('\0')) throw bad('cmdline contains NUL (nitro-cli stores it through a C string)');
  const cmdline = new TextEncoder().encode(cmdlineText);
  if (!Array.isArray(input.ramdisks) || input.ramdisks.length === 0) throw bad('at least one ramdisk (the bootstrap ramdisk) is required');
  const ramdisks = input.ramdisks.map((r, i) => checkBytes(r, `ramdisks[${i}]`));
  if (input.arch !== 'x86_64' && input.arch !== 'aarch64') throw bad(`arch must be x86_64 or aarch64, got ${String(input.arch)}`);
  const metadata = encodeEifMetadata(input.metadata);
  const defaultMem = count(input.defaultMem, EIF_DEFAULT_MEM, 'defaultMem');
  const defaultCpus = count(input.defaultCpus, EIF_DEFAULT_CPUS, 'defaultCpus');

  // Measure first: the signature section signs PCR0.
  const image = createHash('sha384').update(kernel).update(cmdline);
  const boot = createHash('sha384').update(kernel).update(cmdline);
  const app = createHash('sha384');
  ramdisks.forEach((r, i) => {
    image.update(r);
    (i === 0 ? boot : app).update(r);
  });
  const pcr0 = extendFromZero(new Uint8Array(image.digest()));
  const measurements: EifMeasurements = {
    HashAlgorithm: NITRO_HASH_ALGORITHM,
    PCR0: toHex(pcr0),
    PCR1: toHex(extendFromZero(new Uint8Array(boot.digest()))),
    PCR2: toHex(extendFromZero(new Uint8Array(app.digest()))),
  };

  const sections: { type: SectionTypeCode; data: Uint8Array }[] = [
    { type: SectionType.kernel, data: kernel },
    { type: SectionType.cmdline, data: cmdline },
    { type: SectionType.metadata, data: metadata },
    ...ramdisks.map((data) => ({ type: SectionType.ramdisk, data })),
  ];
  if (input.sign) {
    const section = signPcr0(pcr0, input.sign.certPem, input.sign.keyPem);
    sections.push({ type: SectionType.signature, data: section });
    const certDer = decodeSignatureSection(section).certificate.der;
    measurements.PCR8 = toHex(extendFromZero(new Uint8Array(createHash('sha384').update(certDer).digest())));
  }
  if (sections.length > EIF_MAX_SECTIONS) throw bad(`${ramdisks.length} ramdisks make ${sections.length} sections; an EIF holds ${EIF_MAX_SECTIONS}`);

  const layout: { offset: number; size: number }[] = [];
  let at = EIF_HEADER_SIZE;
  for (const s of sections) {
    layout.push({ offset: at, size: s.data.length });
    at += EIF_SECTION_HEADER_SIZE + s.data.length;
  }
  const parts: Uint8Array[] = [];
  for (const s of sections) parts.push(encodeSectionHeader(s.type, s.data.length), s.data);
  const fields = { version: EIF_CURRENT_VERSION, flags: input.arch === 'aarch64' ? EIF_FLAG_AARCH64 : 0, defaultMem, defaultCpus, sections: layout };
  const unsigned = encodeHeader({ ...fields, crc32: 0 });
  const crc = eifCrc32Parts([unsigned.subarray(0, EIF_CRC_OFFSET), ...parts]);
  const header = encodeHeader({ ...fields, crc32: crc });

  const bytes = new Uint8Array(at);
  let o = 0;
  for (const p of [header, ...parts]) {
    bytes.set(p, o);
    o += p.length;
  }
  return { bytes, measurements, cmdline: cmdlineText };
}
