import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createManifest } from '../attestation/manifest-format.js';
import { signManifest } from '../attestation/manifest-signature.js';
import { toHex } from '../common/bytes.js';
import { DEV_IMAGE_ID, devKeyPolicy, devManifest, devPaths } from '../dev/stack.js';
import { simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'kms-check-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PCR = { 0: 'ab'.repeat(48), 1: 'cd'.repeat(48), 2: 'ef'.repeat(48) };
const ADMIN = 'arn:aws:iam::111122223333:role/kms-admin';
const PARENT = 'arn:aws:iam::111122223333:role/enclave-parent';
const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const manifest = createManifest({
  image: { name: 'enclave-signer', version: '1.2.3', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) },
  pcrs: PCR,
  match: [0, 1, 2],
  buildInputs: {},
  createdAt: new Date(0),
});

function file(name: string, data: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof data === 'string' ? data : JSON.stringify(data));
  return p;
}

async function run(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

const policy = (enclaveExtra: Record<string, unknown> = {}, ...more: unknown[]) => ({
  Version: '2012-10-17',
  Statement: [
    { Sid: 'KeyAdministration', Effect: 'Allow', Principal: { AWS: ADMIN }, Action: ['kms:Describe*', 'kms:PutKeyPolicy'], Resource: '*' },
    { Sid: 'EnclaveOnly', Effect: 'Allow', Principal: { AWS: PARENT }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR[0] } }, ...enclaveExtra },
    ...more,
  ],
});

describe('enclave-signer kms check-policy', () => {
  const m = file('manifest.json', manifest);
  const signed = file('signed.json', signManifest(manifest, release.privateKey));
  const pub = file('release.pub.pem', release.publicKey.export({ type: 'spki', format: 'pem' }).toString());

  it('exit 0 for a policy with no findings (plain, signed+verified, and aws kms get-key-policy output)', async () => {
    const p = file('good.json', policy());
    const r = await run(['kms', 'check-policy', p, '--manifest', m]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^OK: key policy .* enclave-signer 1\.2\.3/);
    expect((await run(['kms', 'check-policy', p, '--manifest', signed, '--manifest-key', pub])).code).toBe(0);
    const wrapped = file('wrapped.json', { Policy: JSON.stringify(policy()), PolicyName: 'default' });
    expect((await run(['kms', 'check-policy', wrapped, '--manifest', signed])).code).toBe(0);
  });

  it('exit 1 with findings naming statement, action and reason; --json', async () => {
    const p = file('bad.json', policy({}, { Sid: 'Store', Effect: 'Allow', Principal: { AWS: PARENT }, Action: 'kms:Encrypt', Resource: '*' }));
    const r = await run(['kms', 'check-policy', p, '--manifest', m]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FINDINGS \(1\)/);
    expect(r.stdout).toMatch(/Sid "Store" \(#2\) {2}kms:Encrypt {2}ENCRYPT_ALLOWED/);
    const j = await run(['kms', 'check-policy', p, '--manifest', m, '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, findings: [{ statement: 'Sid "Store" (#2)', action: 'kms:Encrypt', code: 'ENCRYPT_ALLOWED' }] });
  });

  it('exit 2 on usage errors and unusable inputs', async () => {
    const p = file('good2.json', policy());
    expect((await run(['kms', 'check-policy', p])).code).toBe(2);
    expect((await run(['kms', 'check-policy', '--manifest', m])).code).toBe(2);
    expect((await run(['kms', 'check-policy', join(dir, 'missing.json'), '--manifest', m])).code).toBe(2);
    expect((await run(['kms', 'check-policy', file('notjson.json', '{'), '--manifest', m])).code).toBe(2);
    expect((await run(['kms', 'check-policy', p, '--manifest', file('badmanifest.json', { pcrs: {} })])).code).toBe(2);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const r = await run(['kms', 'check-policy', p, '--manifest', signed, '--manifest-key', file('other.pem', other)]);
    expect(r.code).toBe(2);
  });

  it("the dev stack's CMK policy passes against the dev manifest", async () => {
    const pcrs = simulatedImagePcrs(DEV_IMAGE_ID);
    const paths = devPaths(join(dir, 'dev'));
    const { mkdirSync } = await import('node:fs');
    mkdirSync(paths.dataDir, { recursive: true });
    devManifest(paths, release.privateKey);
    const p = file('dev-policy.json', devKeyPolicy(toHex(pcrs.get(0)!), toHex(pcrs.get(2)!)));
    const r = await run(['kms', 'check-policy', p, '--manifest', paths.manifest, '--manifest-key', pub]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // …and the same policy judged against another image's manifest is not.
    const wrong = await run(['kms', 'check-policy', p, '--manifest', m]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/PCR_MISMATCH/);
  });
});
