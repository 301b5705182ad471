/**
 * The EIF checksum: zlib's CRC-32 (IEEE, the one nitro-cli gets from the
 * `crc` crate as CRC_32_ISO_HDLC) over the whole file except the four CRC
 * bytes at 0x220. zlib.crc32 is native and streams, so a 200 MB image costs
 * one pass.
 */
import { crc32 } from 'node:zlib';
import { EIF_CRC_OFFSET, EIF_HEADER_SIZE } from './format.js';

/** CRC of a complete EIF image (the stored CRC bytes are skipped). */
export function eifCrc32(file: Uint8Array): number {
  return eifCrc32Parts([file.subarray(0, EIF_CRC_OFFSET), file.subarray(EIF_HEADER_SIZE)]);
}

/** CRC-32 of the concatenation of `parts`, without concatenating them. */
export function eifCrc32Parts(parts: readonly Uint8Array[]): number {
  let c = 0;
  for (const p of parts) c = crc32(p, c);
  return c >>> 0;
}
