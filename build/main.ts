/**
 * The last step of build-eif.sh: staged inputs → EIF, PCR manifest, describe
 * output. Bundled by esbuild to dist/build/eif-build.mjs and run with the
 * host's node. Everything it reads is a pinned input; the only clock is
 * SOURCE_DATE_EPOCH.
 *
 *   node dist/build/eif-build.mjs --blobs DIR --stage DIR --out DIR
 *     --image-version V --source-commit SHA [--image-name N]
 *     [--sign-cert PEM --sign-key PEM] [--manifest-key PEM]
 *     [--node-runtime name@version] [--lockfile-sha256 HEX] [--input name=value]…
 *     [--ramdisk-mtime SECONDS]   (default 0: PCRs depend on content only)
 */
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createManifest, signManifest, type BuildInputs } from '../attestation/manifest.js';
import { describeEif } from '../attestation/eif/describe.js';
import { EifError } from '../attestation/eif/errors.js';
import { isSignerError } from '../common/errors.js';
import { wipe } from '../common/bytes.js';
import { BUILD_TOOL, buildInfo } from './build-info.js';
import { writeEif } from './eif-writer.js';
import { applicationRamdisk, bootstrapRamdisk } from './ramdisks.js';
import { sourceDateEpoch } from './source-date.js';

const BLOBS = ['bzImage', 'bzImage.config', 'cmdline', 'init', 'nsm.ko'] as const;

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function readKey(path: string): KeyObject {
  const pem = readFileSync(path);
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new EifError('EIF_INPUT', `${path} is not a PEM private key`, { cause: e });
  } finally {
    wipe(pem);
  }
}

/** Writes atomically so a failed build never leaves a half-written artifact under the final name. */
function put(path: string, data: Uint8Array | string): void {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      blobs: { type: 'string' },
      stage: { type: 'string' },
      out: { type: 'string', default: 'dist' },
      'image-name': { type: 'string', default: 'enclave-signer' },
      'image-version': { type: 'string' },
      'source-commit': { type: 'string' },
      'sign-cert': { type: 'string' },
      'sign-key': { type: 'string' },
      'manifest-key': { type: 'string' },
      'node-runtime': { type: 'string' },
      'lockfile-sha256': { type: 'string' },
      input: { type: 'string', multiple: true, default: [] },
      'ramdisk-mtime': { type: 'string', default: '0' },
    },
  });
  const need = (k: 'blobs' | 'stage' | 'image-version' | 'source-commit'): string => {
    const v = values[k];
    if (v === undefined || v === '') throw new EifError('EIF_INPUT', `--${k} is required`);
    return v;
  };
  const blobsDir = need('blobs');
  const stageDir = need('stage');
  const version = need('image-version');
  const commit = need('source-commit');
  const out = values.out;
  // --sign-key alone signs the manifest only; with --sign-cert it signs the EIF too (PCR8).
  if (values['sign-cert'] !== undefined && values['sign-key'] === undefined) throw new EifError('EIF_INPUT', '--sign-cert needs --sign-key');
  const epoch = sourceDateEpoch();

  const blobs: Record<string, Uint8Array> = {};
  for (const b of BLOBS) {
    try {
      blobs[b] = new Uint8Array(readFileSync(join(blobsDir, b)));
    } catch (e) {
      throw new EifError('EIF_INPUT', `blobs directory ${blobsDir} has no readable ${b} (expected ${BLOBS.join(', ')})`, { cause: e });
    }
  }

  // File times inside the ramdisks are measured (PCR1/PCR2). They default to 0
  // rather than SOURCE_DATE_EPOCH so that PCRs depend on content alone: a commit
  // that changes nothing in the image keeps every PCR, and with it every KMS
  // policy. SOURCE_DATE_EPOCH still dates the (unmeasured) metadata and manifest.
  const mtime = Number(values['ramdisk-mtime']);
  if (!/^\d{1,10}$/.test(values['ramdisk-mtime']) || mtime > 0xffffffff) throw new EifError('EIF_INPUT', '--ramdisk-mtime must be whole seconds');
  const bootstrap = bootstrapRamdisk(blobsDir, mtime);
  const app = applicationRamdisk(stageDir, mtime);
  const other: Record<string, string> = {};
  for (const kv of values.input) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new EifError('EIF_INPUT', `--input wants name=value, got ${JSON.stringify(kv)}`);
    other[kv.slice(0, i)] = kv.slice(i + 1);
  }

  let eifKey: KeyObject | undefined;
  let certPem: Uint8Array | undefined;
  if (values['sign-cert'] !== undefined && values['sign-key'] !== undefined) {
    certPem = new Uint8Array(readFileSync(values['sign-cert']));
    eifKey = readKey(values['sign-key']);
  }

  const written = writeEif({
    kernel: blobs.bzImage!,
    cmdline: blobs.cmdline!,
    ramdisks: [bootstrap, app],
    arch: 'x86_64',
    metadata: {
      ImageName: values['image-name'],
      ImageVersion: version,
      BuildMetadata: buildInfo({ sourceDateEpoch: epoch, toolVersion: version, kernelConfig: Buffer.from(blobs['bzImage.config']!).toString('utf8') }),
      DockerInfo: null,
      CustomMetadata: { SourceCommit: commit, SourceDateEpoch: epoch, ...(values['node-runtime'] ? { NodeRuntime: values['node-runtime'] } : {}) },
    },
    ...(eifKey && certPem ? { sign: { certPem, keyPem: eifKey } } : {}),
  });
  const m = written.measurements;
  const eifSha256 = sha256(written.bytes);

  const buildInputs: BuildInputs = {
    blobs: Object.fromEntries(BLOBS.map((b) => [b, sha256(blobs[b]!)])),
    builder: `${BUILD_TOOL}/${version}`,
    sourceDateEpoch: epoch,
    ...(values['node-runtime'] ? { nodeRuntime: values['node-runtime'] } : {}),
    ...(values['lockfile-sha256'] ? { lockfileSha256: values['lockfile-sha256'] } : {}),
    ...(Object.keys(other).length > 0 ? { other } : {}),
  };
  const manifest = createManifest({
    image: { name: values['image-name'], version, sourceCommit: commit, eifSha256 },
    pcrs: { 0: m.PCR0, 1: m.PCR1, 2: m.PCR2, ...(m.PCR8 ? { 8: m.PCR8 } : {}) },
    buildInputs,
    createdAt: new Date(epoch * 1000),
  });
  const manifestKeyPath = values['manifest-key'] ?? values['sign-key'];
  const manifestOut = manifestKeyPath !== undefined ? signManifest(manifest, manifestKeyPath === values['sign-key'] && eifKey ? eifKey : readKey(manifestKeyPath)) : manifest;

  // Describe what we wrote with the reader, not the writer: a self-check.
  const described = describeEif(written.bytes);
  for (const k of ['PCR0', 'PCR1', 'PCR2', 'PCR8'] as const) {
    if (described.Measurements[k] !== m[k]) throw new EifError('EIF_INPUT', `internal error: reader and writer disagree on ${k}`);
  }

  mkdirSync(out, { recursive: true });
  put(join(out, 'enclave.eif'), written.bytes);
  put(join(out, 'pcr-manifest.json'), `${JSON.stringify(manifestOut, null, 2)}\n`);
  put(join(out, 'describe.json'), `${JSON.stringify(described, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ Measurements: m, EifSha256: eifSha256, Size: written.bytes.length }, null, 2)}\n`);
  return 0;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isEntry) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    if (isSignerError(e)) process.stderr.write(`eif-build: ${e.code}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}\n`);
    else process.stderr.write(`eif-build: ${(e as Error).message ?? String(e)}\n`);
    process.exitCode = 1;
  }
}
