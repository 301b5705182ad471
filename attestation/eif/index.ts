/** EIF reading, measuring and describing: the auditor's and CI's view of an enclave image. */
export { EifError, type EifErrorCode } from './errors.js';
export {
  EIF_MAGIC,
  EIF_HEADER_SIZE,
  EIF_SECTION_HEADER_SIZE,
  EIF_MAX_SECTIONS,
  EIF_CURRENT_VERSION,
  EIF_FLAG_AARCH64,
  EIF_CRC_OFFSET,
  EIF_DEFAULT_MEM,
  EIF_DEFAULT_CPUS,
  SectionType,
  sectionTypeName,
  type EifArch,
  type SectionTypeName,
  type SectionTypeCode,
} from './format.js';
export { eifCrc32 } from './crc.js';
export { parseEif, type ParsedEif, type EifSection, type EifHeaderInfo, type ParseEifOptions } from './parse.js';
export { measureEif, measureEifDetailed, extendFromZero, NITRO_HASH_ALGORITHM, type EifMeasurements, type MeasureOptions, type MeasuredEif } from './measure.js';
export {
  decodeSignatureSection,
  verifyPcr0Signature,
  signPcr0,
  pcrSignaturePayload,
  encodeSignatureSection,
  type EifPcrSignature,
  type VerifyPcr0Options,
} from './signature.js';
export { readSigningCertificate, certificateInfo, type SigningCertificate, type SigningCertificateInfo } from './certificate.js';
export { parseEifMetadata, encodeEifMetadata, rfc3339FromEpoch, MAX_METADATA_BYTES, type EifIdentityInfo, type EifBuildInfo } from './metadata.js';
export { describeEif, describeParsedEif, type EifDescription, type DescribeOptions } from './describe.js';
