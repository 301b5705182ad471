/**
 * Argument handling shared by `audit verify` and `receipt verify`: node:util
 * parseArgs (strict) and the trust inputs — root, manifest and its keys.
 * Kept here, in the audit commands' own files, so they do not depend on the
 * general flag parser.
 */
import type { KeyObject } from 'node:crypto';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AuditVerifyOptions } from '../attestation/audit/verify.js';
import { MAX_SIGNED_MANIFEST_BYTES } from '../attestation/manifest-signature.js';
import { UsageError } from './errors.js';
import { readInputFile, type Io } from './io.js';
import { isAwsRoot, loadPublicKey, loadRoot } from './keys.js';

export const TRUST_OPTIONS = {
  root: { type: 'string' },
  manifest: { type: 'string' },
  'manifest-key': { type: 'string', multiple: true },
  'manifest-key-id': { type: 'string', multiple: true },
  'allow-debug': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** parseArgs with usage errors instead of TypeErrors. */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/, ''));
  }
}

export interface TrustFlags {
  root?: string | undefined;
  manifest?: string | undefined;
  'manifest-key'?: string[] | undefined;
  'manifest-key-id'?: string[] | undefined;
  'allow-debug'?: boolean | undefined;
}

/**
 * Loads --root, --manifest and its keys (exit 2 when unusable). Without --manifest it warns (unless
 * the caller says it warns itself) that attestation documents are checked against the root only:
 * any Nitro enclave image's document is then accepted, including one the host built and ran.
 */
export async function trustOptions(f: TrustFlags, io: Io, opts: { warnWithoutManifest?: boolean } = {}): Promise<Omit<AuditVerifyOptions, 'anchors' | 'maxProblems'>> {
  const keyFiles = f['manifest-key'] ?? [];
  const keyIds = f['manifest-key-id'] ?? [];
  if (f.manifest !== undefined && keyFiles.length + keyIds.length === 0) {
    throw new UsageError('--manifest needs --manifest-key <pub.pem> or --manifest-key-id <hex>', { hint: 'a manifest is only as good as the key you trust to have signed it' });
  }
  if (f.manifest === undefined && keyFiles.length + keyIds.length > 0) throw new UsageError('--manifest-key/--manifest-key-id without --manifest');
  for (const id of keyIds) if (!/^[0-9a-fA-F]{64}$/.test(id)) throw new UsageError(`--manifest-key-id must be 64 hex characters, got ${JSON.stringify(id.slice(0, 70))}`);
  const out: Omit<AuditVerifyOptions, 'anchors' | 'maxProblems'> = { allowDebug: f['allow-debug'] === true };
  if (f.root !== undefined) {
    out.root = await loadRoot(f.root);
    if (!isAwsRoot(out.root)) io.stderr(`warning: trusting ${out.root.name} (SHA-256 ${out.root.fingerprint}), NOT the AWS Nitro Enclaves root: success does not prove the records came from AWS hardware\n`);
  }
  if (f.manifest !== undefined) {
    const trustedKeys: (KeyObject | string)[] = [...keyIds];
    for (const p of keyFiles) trustedKeys.push(await loadPublicKey(p, 'manifest-key'));
    out.manifest = { signed: await readInputFile(f.manifest, 'manifest', MAX_SIGNED_MANIFEST_BYTES), trustedKeys };
  } else if (opts.warnWithoutManifest !== false) {
    io.stderr(
      'WARNING: no --manifest: the attestation document is checked only against the attestation root, not against a signed PCR manifest, so a document from ANY Nitro enclave image is accepted (--json shows its PCRs); pass --manifest signed.json --manifest-key release.pub.pem\n',
    );
  }
  return out;
}
