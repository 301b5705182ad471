/**
 * The EIF container, byte for byte (aws-nitro-enclaves-image-format,
 * src/defs/mod.rs). Everything is big-endian.
 *
 *   0x000  4   magic ".eif"
 *   0x004  u16 version (4 since the metadata section was added)
 *   0x006  u16 flags (bit 0: aarch64; the rest unused)
 *   0x008  u64 default_mem (bytes)
 *   0x010  u64 default_cpus
 *   0x018  u16 reserved
 *   0x01a  u16 num_sections (≤ 32)
 *   0x01c  u64 section_offsets[32]  (file offset of each 12-byte section header)
 *   0x11c  u64 section_sizes[32]    (data size, without the 12-byte header)
 *   0x21c  u32 unused
 *   0x220  u32 crc32 (zlib/IEEE, over every other byte of the file)
 *   0x224  first section header
 *
 * Section header: u16 type, u16 flags, u64 size, then `size` bytes of data.
 * Reader and writer share these definitions so both sides mean the same bytes.
 */
import { EifError } from './errors.js';

export const EIF_MAGIC = Uint8Array.of(0x2e, 0x65, 0x69, 0x66); // ".eif"
export const EIF_HEADER_SIZE = 548;
export const EIF_SECTION_HEADER_SIZE = 12;
export const EIF_MAX_SECTIONS = 32;
export const EIF_CURRENT_VERSION = 4;
export const EIF_FLAG_AARCH64 = 0x1;
export const EIF_CRC_OFFSET = 0x220;
/** nitro-cli's defaults for images it builds: 1 GiB and 2 vCPUs. */
export const EIF_DEFAULT_MEM = 1024 * 1024 * 1024;
export const EIF_DEFAULT_CPUS = 2;

const OFF_VERSION = 4;
const OFF_FLAGS = 6;
const OFF_MEM = 8;
const OFF_CPUS = 16;
const OFF_RESERVED = 24;
const OFF_NUM = 26;
const OFF_OFFSETS = 28;
const OFF_SIZES = OFF_OFFSETS + 8 * EIF_MAX_SECTIONS;
const OFF_UNUSED = OFF_SIZES + 8 * EIF_MAX_SECTIONS;

export const SectionType = { kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 } as const;
export type SectionTypeName = keyof typeof SectionType;
export type SectionTypeCode = (typeof SectionType)[SectionTypeName];

const NAMES: Record<number, SectionTypeName> = { 1: 'kernel', 2: 'cmdline', 3: 'ramdisk', 4: 'signature', 5: 'metadata' };

/** The name of a section type, or undefined for 0 ("invalid" in nitro-cli) and anything past 5. */
export function sectionTypeName(t: number): SectionTypeName | undefined {
  return NAMES[t];
}

export type EifArch = 'x86_64' | 'aarch64';

export interface RawEifHeader {
  version: number;
  flags: number;
  defaultMem: bigint;
  defaultCpus: bigint;
  reserved: number;
  numSections: number;
  offsets: bigint[];
  sizes: bigint[];
  unused: number;
  crc32: number;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Decodes the 548 header bytes without judging them (parse.ts does the judging). */
export function decodeHeader(b: Uint8Array): RawEifHeader {
  if (b.length < EIF_HEADER_SIZE) throw new EifError('EIF_TRUNCATED', `file is ${b.length} bytes, shorter than the ${EIF_HEADER_SIZE}-byte EIF header`);
  const v = view(b);
  const offsets: bigint[] = [];
  const sizes: bigint[] = [];
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) {
    offsets.push(v.getBigUint64(OFF_OFFSETS + 8 * i));
    sizes.push(v.getBigUint64(OFF_SIZES + 8 * i));
  }
  return {
    version: v.getUint16(OFF_VERSION),
    flags: v.getUint16(OFF_FLAGS),
    defaultMem: v.getBigUint64(OFF_MEM),
    defaultCpus: v.getBigUint64(OFF_CPUS),
    reserved: v.getUint16(OFF_RESERVED),
    numSections: v.getUint16(OFF_NUM),
    offsets,
    sizes,
    unused: v.getUint32(OFF_UNUSED),
    crc32: v.getUint32(EIF_CRC_OFFSET),
  };
}

export interface HeaderFields {
  version?: number;
  flags: number;
  defaultMem: number;
  defaultCpus: number;
  /** In file order; at most 32. */
  sections: readonly { offset: number; size: number }[];
  crc32: number;
}

/** Encodes a main header (the writer's side of decodeHeader). */
export function encodeHeader(h: HeaderFields): Uint8Array {
  if (h.sections.length > EIF_MAX_SECTIONS) throw new EifError('EIF_INPUT', `an EIF holds at most ${EIF_MAX_SECTIONS} sections, got ${h.sections.length}`);
  const b = new Uint8Array(EIF_HEADER_SIZE);
  const v = view(b);
  b.set(EIF_MAGIC, 0);
  v.setUint16(OFF_VERSION, h.version ?? EIF_CURRENT_VERSION);
  v.setUint16(OFF_FLAGS, h.flags);
  v.setBigUint64(OFF_MEM, BigInt(h.defaultMem));
  v.setBigUint64(OFF_CPUS, BigInt(h.defaultCpus));
  v.setUint16(OFF_NUM, h.sections.length);
  h.sections.forEach((s, i) => {
    v.setBigUint64(OFF_OFFSETS + 8 * i, BigInt(s.offset));
    v.setBigUint64(OFF_SIZES + 8 * i, BigInt(s.size));
  });
  v.setUint32(EIF_CRC_OFFSET, h.crc32 >>> 0);
  return b;
}

export interface RawSectionHeader {
  type: number;
  flags: number;
  size: bigint;
}

export function decodeSectionHeader(b: Uint8Array, at: number): RawSectionHeader {
  const v = view(b);
  return { type: v.getUint16(at), flags: v.getUint16(at + 2), size: v.getBigUint64(at + 4) };
}

export function encodeSectionHeader(type: SectionTypeCode, size: number, flags = 0): Uint8Array {
  const b = new Uint8Array(EIF_SECTION_HEADER_SIZE);
  const v = view(b);
  v.setUint16(0, type);
  v.setUint16(2, flags);
  v.setBigUint64(4, BigInt(size));
  return b;
}
