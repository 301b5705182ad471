/**
 * describeEif: the JSON `nitro-cli describe-eif` prints, from our own
 * parser. Field names, order and formats follow nitro-cli's EifDescribeInfo
 * (src/common/json_output.rs) so that scripts written against nitro-cli
 * read ours unchanged:
 *
 *   EifVersion, Measurements {HashAlgorithm, PCR0, PCR1, PCR2, PCR8?},
 *   IsSigned, SigningCertificate?, CheckCRC, SignatureCheck?,
 *   ImageName?, ImageVersion?, Metadata?
 *
 * Metadata flattens CustomMetadata's fields into itself, as nitro-cli's
 * `#[serde(flatten)]` does.
 */
import type { JsonValue } from '../manifest-json.js';
import { certificateInfo, type SigningCertificateInfo } from './certificate.js';
import { measureEifDetailed, type EifMeasurements, type MeasureOptions } from './measure.js';
import { parseEifMetadata } from './metadata.js';
import { parseEif, type ParseEifOptions, type ParsedEif } from './parse.js';

export interface EifDescription {
  EifVersion: number;
  Measurements: EifMeasurements;
  IsSigned: boolean;
  SigningCertificate?: SigningCertificateInfo;
  CheckCRC: boolean;
  SignatureCheck?: boolean;
  ImageName?: string;
  ImageVersion?: string;
  Metadata?: { [k: string]: JsonValue };
}

export type DescribeOptions = ParseEifOptions & MeasureOptions;

/** Describes a parsed image (see describeEif). */
export function describeParsedEif(parsed: ParsedEif, opts: MeasureOptions = {}): EifDescription {
  const { measurements, signature } = measureEifDetailed(parsed, opts);
  // Built in nitro-cli's field order: JSON.stringify keeps insertion order.
  const out = { EifVersion: parsed.header.version, Measurements: measurements, IsSigned: signature !== undefined } as EifDescription;
  if (signature) out.SigningCertificate = certificateInfo(signature.certificate);
  out.CheckCRC = parsed.crc.ok;
  // measureEifDetailed has thrown already if the signature is bad.
  if (signature && opts.verifySignature !== false) out.SignatureCheck = true;
  if (parsed.metadata !== undefined) {
    const meta = parseEifMetadata(parsed.metadata);
    out.ImageName = meta.ImageName;
    out.ImageVersion = meta.ImageVersion;
    const m: { [k: string]: JsonValue } = {
      BuildTime: meta.BuildMetadata.BuildTime,
      BuildTool: meta.BuildMetadata.BuildTool,
      BuildToolVersion: meta.BuildMetadata.BuildToolVersion,
      OperatingSystem: meta.BuildMetadata.OperatingSystem,
      KernelVersion: meta.BuildMetadata.KernelVersion,
      DockerInfo: meta.DockerInfo,
    };
    const custom = meta.CustomMetadata;
    if (custom !== null && typeof custom === 'object' && !Array.isArray(custom)) {
      for (const [k, v] of Object.entries(custom)) m[k] = v;
    } else if (custom !== null) m.CustomMetadata = custom;
    out.Metadata = m;
  }
  return out;
}

/**
 * Parses, measures, verifies the signature (if any) and describes an EIF.
 * Throws EifError for anything malformed; a CRC mismatch throws too unless
 * `allowCrcMismatch`, in which case CheckCRC is false.
 */
export function describeEif(bytes: Uint8Array, opts: DescribeOptions = {}): EifDescription {
  return describeParsedEif(parseEif(bytes, opts), opts);
}
