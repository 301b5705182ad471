/**
 * parseEif: validates an EIF's container strictly and hands back typed
 * section views. Nothing here hashes or trusts content; measure.ts does that.
 *
 * nitro-cli's own reader walks section headers one after another from byte
 * 548 and ignores the offset table, while the Nitro loader uses the table.
 * An image where the two readings differ would measure one way and boot
 * another, so we require them to agree: sections contiguous from 548, in
 * table order, each table size equal to its section header's size, and
 * nothing after the last section.
 */
import { EifError } from './errors.js';
import { eifCrc32 } from './crc.js';
import {
  EIF_CURRENT_VERSION,
  EIF_FLAG_AARCH64,
  EIF_HEADER_SIZE,
  EIF_MAGIC,
  EIF_MAX_SECTIONS,
  EIF_SECTION_HEADER_SIZE,
  SectionType,
  decodeHeader,
  decodeSectionHeader,
  sectionTypeName,
  type EifArch,
  type SectionTypeName,
} from './format.js';

export interface EifSection {
  /** Index in the header's section table (= file order). */
  index: number;
  type: number;
  typeName: SectionTypeName;
  flags: number;
  /** File offset of the 12-byte section header. */
  offset: number;
  /** Data size (without the section header). */
  size: number;
  /** The section's data: a view into the input, not a copy. */
  data: Uint8Array;
}

export interface EifHeaderInfo {
  version: number;
  flags: number;
  arch: EifArch;
  /** Bytes. */
  defaultMem: number;
  defaultCpus: number;
  sections: Omit<EifSection, 'data'>[];
}

export interface ParsedEif {
  header: EifHeaderInfo;
  crc: { stored: number; computed: number; ok: boolean };
  sections: EifSection[];
  kernel: Uint8Array;
  cmdline: Uint8Array;
  /** ramdisks[0] is the bootstrap ramdisk (PCR1), the rest are the application (PCR2). */
  ramdisks: Uint8Array[];
  metadata: Uint8Array | undefined;
  signature: Uint8Array | undefined;
  /** The file size. */
  size: number;
}

export interface ParseEifOptions {
  /**
   * Report a CRC mismatch in `crc.ok` instead of throwing EIF_CRC_MISMATCH
   * (what `nitro-cli describe-eif` does with CheckCRC). Default false.
   */
  allowCrcMismatch?: boolean;
}

function toSafe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new EifError('EIF_SECTION_OUT_OF_BOUNDS', `${what} ${v} is beyond any file this tool reads`);
  return Number(v);
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

export function parseEif(bytes: Uint8Array, opts: ParseEifOptions = {}): ParsedEif {
  if (!(bytes instanceof Uint8Array)) throw new EifError('EIF_INPUT', 'parseEif expects a Uint8Array');
  if (bytes.length >= 4 && !EIF_MAGIC.every((m, i) => bytes[i] === m)) {
    const got = Buffer.from(bytes.subarray(0, 4)).toString('hex');
    throw new EifError('EIF_BAD_MAGIC', `not an EIF: the file starts with 0x${got}, an EIF starts with ".eif" (0x2e656966)`);
  }
  const h = decodeHeader(bytes); // EIF_TRUNCATED below 548 bytes
  if (h.version < 1 || h.version > EIF_CURRENT_VERSION) {
    throw new EifError('EIF_BAD_HEADER', `EIF version ${h.version} is not one this tool reads (1..${EIF_CURRENT_VERSION})`);
  }
  if ((h.flags & ~EIF_FLAG_AARCH64) !== 0) throw new EifError('EIF_BAD_HEADER', `unknown header flags 0x${h.flags.toString(16)} (only bit 0, aarch64, is defined)`);
  if (h.numSections === 0 || h.numSections > EIF_MAX_SECTIONS) {
    throw new EifError('EIF_BAD_HEADER', `num_sections is ${h.numSections}; an EIF has 1..${EIF_MAX_SECTIONS}`);
  }
  for (let i = h.numSections; i < EIF_MAX_SECTIONS; i++) {
    if (h.offsets[i] !== 0n || h.sizes[i] !== 0n) throw new EifError('EIF_BAD_HEADER', `section slot ${i} is past num_sections (${h.numSections}) but not zero`);
  }
  if (h.defaultMem > BigInt(Number.MAX_SAFE_INTEGER) || h.defaultCpus > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new EifError('EIF_BAD_HEADER', 'default_mem or default_cpus is out of range');
  }

  const sections: EifSection[] = [];
  let expected = EIF_HEADER_SIZE;
  for (let i = 0; i < h.numSections; i++) {
    const offset = toSafe(h.offsets[i]!, `section ${i} offset`);
    if (offset < expected) {
      throw new EifError('EIF_OVERLAP', `section ${i} starts at ${offset}, inside ${i === 0 ? 'the EIF header' : `section ${i - 1}`} (which ends at ${expected})`);
    }
    if (offset + EIF_SECTION_HEADER_SIZE > bytes.length) {
      throw new EifError('EIF_SECTION_OUT_OF_BOUNDS', `section ${i} header at ${offset} reaches past the end of the ${bytes.length}-byte file`);
    }
    if (offset > expected) throw new EifError('EIF_BAD_LAYOUT', `${offset - expected} unaccounted bytes before section ${i} (at ${expected}..${offset})`);
    const sh = decodeSectionHeader(bytes, offset);
    const typeName = sectionTypeName(sh.type);
    if (typeName === undefined) throw new EifError('EIF_UNKNOWN_SECTION', `section ${i} has type ${sh.type}; known types are 1 kernel, 2 cmdline, 3 ramdisk, 4 signature, 5 metadata`);
    if (sh.size !== h.sizes[i]) {
      throw new EifError('EIF_SIZE_MISMATCH', `section ${i} (${typeName}): the EIF header says ${h.sizes[i]} bytes, its section header says ${sh.size}`);
    }
    const size = toSafe(sh.size, `section ${i} size`);
    const start = offset + EIF_SECTION_HEADER_SIZE;
    if (start + size > bytes.length) {
      throw new EifError('EIF_SECTION_OUT_OF_BOUNDS', `section ${i} (${typeName}) data ends at ${start + size}, past the end of the ${bytes.length}-byte file`);
    }
    sections.push({ index: i, type: sh.type, typeName, flags: sh.flags, offset, size, data: bytes.subarray(start, start + size) });
    expected = start + size;
  }
  if (expected !== bytes.length) throw new EifError('EIF_BAD_LAYOUT', `${bytes.length - expected} bytes after the last section`);

  const of = (t: SectionTypeName): EifSection[] => sections.filter((s) => s.typeName === t);
  const kernels = of('kernel');
  const cmdlines = of('cmdline');
  const ramdisks = of('ramdisk');
  const metas = of('metadata');
  const sigs = of('signature');
  if (kernels.length !== 1 || sections[0]!.type !== SectionType.kernel) throw new EifError('EIF_BAD_LAYOUT', `an EIF has exactly one kernel section, first; found ${kernels.length}${kernels.length === 1 ? ` at index ${kernels[0]!.index}` : ''}`);
  if (cmdlines.length !== 1 || sections[1]?.type !== SectionType.cmdline) throw new EifError('EIF_BAD_LAYOUT', `an EIF has exactly one cmdline section, second; found ${cmdlines.length}`);
  if (ramdisks.length === 0) throw new EifError('EIF_BAD_LAYOUT', 'an EIF has at least one ramdisk section; found none');
  if (metas.length > 1) throw new EifError('EIF_BAD_LAYOUT', `at most one metadata section; found ${metas.length}`);
  if (sigs.length > 1) throw new EifError('EIF_BAD_LAYOUT', `at most one signature section; found ${sigs.length}`);
  if (metas.length === 1 && h.version < 4) throw new EifError('EIF_BAD_LAYOUT', `a metadata section needs EIF version 4, header says ${h.version}`);
  if (sigs.length === 1 && h.version < 3) throw new EifError('EIF_BAD_LAYOUT', `a signature section needs EIF version 3, header says ${h.version}`);

  // Version 1 predates the CRC; everything later carries one.
  const computed = eifCrc32(bytes);
  const ok = h.version < 2 || computed === h.crc32;
  if (!ok && opts.allowCrcMismatch !== true) {
    throw new EifError('EIF_CRC_MISMATCH', `CRC32 mismatch: header says 0x${hex8(h.crc32)}, the file hashes to 0x${hex8(computed)} (the file is corrupt or was modified)`);
  }

  return {
    header: {
      version: h.version,
      flags: h.flags,
      arch: (h.flags & EIF_FLAG_AARCH64) !== 0 ? 'aarch64' : 'x86_64',
      defaultMem: Number(h.defaultMem),
      defaultCpus: Number(h.defaultCpus),
      sections: sections.map(({ data: _data, ...rest }) => rest),
    },
    crc: { stored: h.crc32, computed, ok },
    sections,
    kernel: kernels[0]!.data,
    cmdline: cmdlines[0]!.data,
    ramdisks: ramdisks.map((s) => s.data),
    metadata: metas[0]?.data,
    signature: sigs[0]?.data,
    size: bytes.length,
  };
}
