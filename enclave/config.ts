/**
 * The enclave's measured configuration: which KMS keys (CMKs) it may adopt a
 * keyring under, and the KMS region it talks to. In production it is a JSON
 * file baked into the image next to the bundle (/app/enclave-config.json,
 * written by `build-eif.sh --kms-key-arn …`), so it is part of ramdisk1 and
 * therefore of PCR2 and PCR0: the host cannot change it without changing the
 * measurements the CMK's key policy and the PCR manifest name.
 *
 * Why pinning matters (docs/keyring.md): KMS honours `Recipient` for ANY CMK
 * the caller may use. A host that holds a CMK of its own can make a data key
 * it knows, wrap it under that CMK, and hand the enclave the record. Only a
 * list of CMKs fixed at build time lets the enclave tell a real keyring from
 * a host-made one.
 *
 * Parsed strictly: unknown fields are refused and every error names its field.
 */
import { readFileSync } from 'node:fs';
import { SignerError } from '../common/errors.js';

export const ENCLAVE_CONFIG_FORMAT = 'enclave-signer/enclave-config';
export const ENCLAVE_CONFIG_VERSION = 1;
/** Where build-eif.sh puts the file inside the image (beside /app/enclave.mjs). */
export const IMAGE_CONFIG_PATH = '/app/enclave-config.json';
/** A sanity bound: a handful of CMKs (one, plus a rotation target) is normal. */
export const MAX_ALLOWED_KEYS = 16;
const MAX_CONFIG_BYTES = 64 * 1024;

export interface EnclaveImageConfig {
  format: typeof ENCLAVE_CONFIG_FORMAT;
  version: typeof ENCLAVE_CONFIG_VERSION;
  kms: {
    /** AWS region of the KMS endpoint; every pinned ARN must be in it. */
    region: string;
    /** Full key ARNs, `arn:aws:kms:<region>:<account>:key/<uuid>`; the only CMKs a keyring may live under. */
    allowedKeyArns: string[];
    /** Optional KMS endpoint (https only); default https://kms.<region>.amazonaws.com. */
    endpoint?: string;
  };
}

export class EnclaveConfigError extends SignerError {}

function invalid(field: string, why: string): EnclaveConfigError {
  return new EnclaveConfigError('ENCLAVE_CONFIG_INVALID', `enclave configuration: ${field}: ${why}`);
}

const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Full CMK ARN. Lowercase UUID key ids only: aliases and bare key ids can be repointed, an ARN of a key cannot. */
const KEY_ARN_RE = /^arn:(aws|aws-cn|aws-us-gov):kms:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):key\/([0-9a-f-]{36})$/;

export interface KeyArnParts {
  partition: string;
  region: string;
  account: string;
  keyId: string;
}

/** Parses a full CMK ARN strictly; `field` names it in the error. */
export function parseKeyArn(v: unknown, field: string): KeyArnParts {
  if (typeof v !== 'string') throw invalid(field, 'must be a string (a full KMS key ARN)');
  const m = KEY_ARN_RE.exec(v);
  if (!m || !UUID_RE.test(m[4]!)) {
    throw invalid(field, `${JSON.stringify(v.slice(0, 200))} is not a full KMS key ARN (arn:aws:kms:<region>:<12-digit account>:key/<lowercase uuid>; aliases and bare key ids are not accepted)`);
  }
  return { partition: m[1]!, region: m[2]!, account: m[3]!, keyId: m[4]! };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyFields(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw invalid(where === '' ? k : `${where}.${k}`, 'unknown field');
}

/** Validates a parsed JSON value as the enclave configuration. */
export function parseEnclaveConfig(v: unknown): EnclaveImageConfig {
  if (!isObject(v)) throw invalid('(root)', 'must be a JSON object');
  onlyFields(v, ['format', 'version', 'kms'], '');
  if (v.format !== ENCLAVE_CONFIG_FORMAT) throw invalid('format', `must be ${JSON.stringify(ENCLAVE_CONFIG_FORMAT)}`);
  if (v.version !== ENCLAVE_CONFIG_VERSION) throw invalid('version', `must be ${ENCLAVE_CONFIG_VERSION}`);
  const kms = v.kms;
  if (!isObject(kms)) throw invalid('kms', 'must be an object with region and allowedKeyArns');
  onlyFields(kms, ['region', 'allowedKeyArns', 'endpoint'], 'kms');
  if (typeof kms.region !== 'string' || !REGION_RE.test(kms.region)) throw invalid('kms.region', 'must be an AWS region such as us-east-1');
  const region = kms.region;
  const list = kms.allowedKeyArns;
  if (!Array.isArray(list) || list.length === 0) {
    throw invalid('kms.allowedKeyArns', 'must be a non-empty list of full KMS key ARNs: an image with no pinned CMK cannot adopt any keyring');
  }
  if (list.length > MAX_ALLOWED_KEYS) throw invalid('kms.allowedKeyArns', `at most ${MAX_ALLOWED_KEYS} keys`);
  const seen = new Set<string>();
  const allowedKeyArns = list.map((a, i) => {
    const field = `kms.allowedKeyArns[${i}]`;
    const parts = parseKeyArn(a, field);
    if (parts.region !== region) throw invalid(field, `is in region ${parts.region}, but kms.region is ${region} (the enclave talks to one KMS region)`);
    if (seen.has(a as string)) throw invalid(field, 'is listed twice');
    seen.add(a as string);
    return a as string;
  });
  const out: EnclaveImageConfig = { format: ENCLAVE_CONFIG_FORMAT, version: ENCLAVE_CONFIG_VERSION, kms: { region, allowedKeyArns } };
  if (kms.endpoint !== undefined) {
    if (typeof kms.endpoint !== 'string') throw invalid('kms.endpoint', 'must be an https URL');
    let u: URL;
    try {
      u = new URL(kms.endpoint);
    } catch {
      throw invalid('kms.endpoint', 'must be an https URL');
    }
    if (u.protocol !== 'https:' || u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') {
      throw invalid('kms.endpoint', 'must be a plain https URL (no credentials, query or fragment)');
    }
    // An AWS KMS host of this region only (session 25's review). The enclave checks KMS's TLS
    // certificate against the public CAs Node bundles, and KMS's answers only by the KeyId they
    // repeat: any host with a public certificate, named here, could answer GenerateDataKey with a
    // data key it chose (encrypted to the enclave's recipient key) and the pinned ARN as KeyId —
    // a keyring its operator knows. The field is measured, not the host's, but nothing showed it.
    if (!isAwsKmsHost(u, region)) {
      throw invalid('kms.endpoint', `must be an AWS KMS endpoint of ${region} on port 443 (kms[-fips].${region}.amazonaws.com[.cn], kms[-fips].${region}.api.aws, or a KMS VPC endpoint vpce-….kms.${region}.vpce.amazonaws.com): the enclave trusts the public CAs, so another host with a certificate could answer as KMS`);
    }
    out.kms.endpoint = kms.endpoint;
  }
  return out;
}

/** `region` has matched REGION_RE (letters, digits, hyphens): it goes into the patterns as it is. */
function isAwsKmsHost(u: URL, region: string): boolean {
  if ((u.port !== '' && u.port !== '443') || (u.pathname !== '' && u.pathname !== '/')) return false;
  const host = u.hostname;
  return (
    new RegExp(`^kms(-fips)?\\.${region}\\.(amazonaws\\.com(\\.cn)?|api\\.aws)$`).test(host) ||
    new RegExp(`^vpce-[a-z0-9-]{1,100}\\.kms\\.${region}\\.vpce\\.amazonaws\\.com(\\.cn)?$`).test(host)
  );
}

/** Parses the configuration text (JSON). */
export function parseEnclaveConfigText(text: string): EnclaveImageConfig {
  if (text.length > MAX_CONFIG_BYTES) throw invalid('(root)', `the file is over ${MAX_CONFIG_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalid('(root)', `not valid JSON: ${(e as Error).message}`);
  }
  return parseEnclaveConfig(v);
}

/** Reads the image's configuration file; a missing file is its own error, so the operator knows the image was built without a pinned CMK. */
export function readEnclaveConfig(path: string = IMAGE_CONFIG_PATH): EnclaveImageConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new EnclaveConfigError('ENCLAVE_CONFIG_MISSING', `enclave configuration ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): this image pins no CMK and refuses to start`, {
      cause: e,
      hint: 'build the image with build-eif.sh --kms-key-arn <arn of the keyring CMK> (or --enclave-config FILE)',
    });
  }
  return parseEnclaveConfigText(text);
}

/** The configuration for a list of pinned ARNs (build-eif.sh and the dev command); the region defaults to the ARNs' own. */
export function enclaveConfigFor(allowedKeyArns: readonly string[], opts: { region?: string; endpoint?: string } = {}): EnclaveImageConfig {
  const first = allowedKeyArns[0];
  const region = opts.region ?? (first === undefined ? undefined : parseKeyArn(first, 'kms.allowedKeyArns[0]').region);
  return parseEnclaveConfig({
    format: ENCLAVE_CONFIG_FORMAT,
    version: ENCLAVE_CONFIG_VERSION,
    kms: { region, allowedKeyArns: [...allowedKeyArns], ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) },
  });
}

/** The set of pinned ARNs, as the keyring code consults it. */
export interface PinnedKeys {
  readonly arns: readonly string[];
  has(arn: string): boolean;
}

export function pinnedKeys(allowedKeyArns: readonly string[]): PinnedKeys {
  if (allowedKeyArns.length === 0) {
    throw new EnclaveConfigError('ENCLAVE_CONFIG_INVALID', 'enclave configuration: kms.allowedKeyArns: no CMK is pinned; the enclave refuses to start without one');
  }
  for (const [i, a] of allowedKeyArns.entries()) parseKeyArn(a, `kms.allowedKeyArns[${i}]`);
  const set = new Set(allowedKeyArns);
  const arns = Object.freeze([...set]);
  return { arns, has: (arn) => set.has(arn) };
}
