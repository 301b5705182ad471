import { SignerError } from '../../common/errors.js';

/**
 * Why an EIF was refused. Stable: the CLI prints the code, CI and auditors
 * branch on it, tests assert on it.
 */
export type EifErrorCode =
  | 'EIF_TRUNCATED' // shorter than the 548-byte header or a section header
  | 'EIF_BAD_MAGIC' // does not start with ".eif"
  | 'EIF_BAD_HEADER' // version, flags, section count, unused slots not zero
  | 'EIF_SECTION_OUT_OF_BOUNDS' // a section (header or data) reaches past the end of the file
  | 'EIF_SIZE_MISMATCH' // the main header and the section header disagree on a size
  | 'EIF_OVERLAP' // a section starts inside the previous one
  | 'EIF_BAD_LAYOUT' // gaps, trailing bytes, missing/duplicate kernel or cmdline, no ramdisk
  | 'EIF_UNKNOWN_SECTION' // section type not 1..5
  | 'EIF_CRC_MISMATCH' // stored CRC32 differs from the computed one
  | 'EIF_BAD_METADATA' // metadata section is not the JSON nitro-cli writes
  | 'EIF_BAD_SIGNATURE' // signature section malformed, certificate unusable, COSE signature or PCR0 wrong
  | 'EIF_INPUT'; // the builder was given something it cannot put in an EIF

export class EifError extends SignerError {
  override readonly code: EifErrorCode;
  constructor(code: EifErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
  }
}
