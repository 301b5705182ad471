/**
 * The metadata section (EIF v4): compact JSON of nitro-cli's EifIdentityInfo.
 *
 *   {"ImageName":…,"ImageVersion":…,
 *    "BuildMetadata":{"BuildTime":…,"BuildTool":…,"BuildToolVersion":…,
 *                     "OperatingSystem":…,"KernelVersion":…},
 *    "DockerInfo":<any JSON>,"CustomMetadata":<any JSON>}
 *
 * It is outside every PCR: it describes, it does not attest. Anyone can edit
 * it without changing a measurement (only the CRC notices).
 */
import { parseStrictJsonBytes, type JsonValue } from '../manifest-json.js';
import { EifError } from './errors.js';

export interface EifBuildInfo {
  BuildTime: string;
  BuildTool: string;
  BuildToolVersion: string;
  OperatingSystem: string;
  KernelVersion: string;
}

export interface EifIdentityInfo {
  ImageName: string;
  ImageVersion: string;
  BuildMetadata: EifBuildInfo;
  DockerInfo: JsonValue;
  CustomMetadata: JsonValue;
}

/** Largest metadata section we read (nitro-cli caps custom metadata at 4 KiB; docker inspect adds a few KiB). */
export const MAX_METADATA_BYTES = 1024 * 1024;

function bad(message: string, cause?: unknown): EifError {
  return new EifError('EIF_BAD_METADATA', message, cause === undefined ? {} : { cause });
}

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, JsonValue>, k: string, path: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw bad(`metadata ${path}${k} must be a string${v === undefined ? ' (missing)' : ''}`);
  return v;
}

/** Parses a metadata section the way nitro-cli's serde does (unknown fields ignored, known ones typed). */
export function parseEifMetadata(data: Uint8Array): EifIdentityInfo {
  if (data.length > MAX_METADATA_BYTES) throw bad(`metadata section is ${data.length} bytes, more than ${MAX_METADATA_BYTES}`);
  let v: JsonValue;
  try {
    v = parseStrictJsonBytes(data);
  } catch (e) {
    throw bad(`metadata section is not JSON: ${(e as Error).message}`, e);
  }
  if (!isObject(v)) throw bad('metadata section must be a JSON object');
  const b = v.BuildMetadata;
  if (!isObject(b)) throw bad('metadata BuildMetadata must be an object');
  for (const k of ['DockerInfo', 'CustomMetadata']) if (!Object.hasOwn(v, k)) throw bad(`metadata ${k} is missing (use null for none)`);
  return {
    ImageName: str(v, 'ImageName', ''),
    ImageVersion: str(v, 'ImageVersion', ''),
    BuildMetadata: {
      BuildTime: str(b, 'BuildTime', 'BuildMetadata.'),
      BuildTool: str(b, 'BuildTool', 'BuildMetadata.'),
      BuildToolVersion: str(b, 'BuildToolVersion', 'BuildMetadata.'),
      OperatingSystem: str(b, 'OperatingSystem', 'BuildMetadata.'),
      KernelVersion: str(b, 'KernelVersion', 'BuildMetadata.'),
    },
    DockerInfo: v.DockerInfo!,
    CustomMetadata: v.CustomMetadata!,
  };
}

/** The section bytes, in nitro-cli's field order, compact (serde_json::to_vec). */
export function encodeEifMetadata(info: EifIdentityInfo): Uint8Array {
  const ordered = {
    ImageName: info.ImageName,
    ImageVersion: info.ImageVersion,
    BuildMetadata: {
      BuildTime: info.BuildMetadata.BuildTime,
      BuildTool: info.BuildMetadata.BuildTool,
      BuildToolVersion: info.BuildMetadata.BuildToolVersion,
      OperatingSystem: info.BuildMetadata.OperatingSystem,
      KernelVersion: info.BuildMetadata.KernelVersion,
    },
    DockerInfo: info.DockerInfo,
    CustomMetadata: info.CustomMetadata,
  };
  const bytes = new TextEncoder().encode(JSON.stringify(ordered));
  parseEifMetadata(bytes); // same rules both ways
  return bytes;
}

/**
 * chrono's DateTime<Utc>::to_rfc3339() for whole seconds, which is what
 * nitro-cli stamps: "2024-01-31T12:00:00+00:00".
 */
export function rfc3339FromEpoch(seconds: number): string {
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new EifError('EIF_INPUT', `build time must be whole non-negative seconds, got ${seconds}`);
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, '+00:00');
}
