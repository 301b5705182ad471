/**
 * The audit key's attestation binding checked against a signed PCR manifest:
 * a chain from the image the manifest names verifies; a chain whose enclave
 * runs another image does not, and the CLI says which seq.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { buildReceipt } from '../../common/audit/receipt.js';
import { parseReceipt } from '../../common/audit/receipt.js';
import { sha256 } from '../../common/audit/record.js';
import { main } from '../../cli/main.js';
import { simulatedImagePcrs } from '../../enclave/nsm/simulated.js';
import { derToPem } from '../roots.js';
import { createManifest } from '../manifest-format.js';
import { signManifest } from '../manifest-signature.js';
import { auditCa, buildChain, digest } from '../../test/audit-chain.js';
import { verifyReceipt } from './receipt.js';
import { verifyAuditChain } from './verify.js';

const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const pcrs = simulatedImagePcrs('audited-image');
const signed = signManifest(
  createManifest({
    image: { name: 'enclave-signer', version: '1.2.3', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) },
    pcrs: { 0: toHex(pcrs.get(0)!), 1: toHex(pcrs.get(1)!), 2: toHex(pcrs.get(2)!), 8: toHex(pcrs.get(8)!) },
    match: [0, 1, 2],
    createdAt: new Date(),
  }),
  release.privateKey,
);
const manifest = { signed, trustedKeys: [release.publicKey] };
const dir = mkdtempSync(join(tmpdir(), 'es-audit-manifest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('audit chain against a signed manifest', () => {
  it('a chain from the manifest\'s image verifies; an enclave of another image in the chain is named', async () => {
    const good = await buildChain(3, { imageId: 'audited-image' });
    const r = verifyAuditChain(good.records.map((bytes) => ({ bytes })), { root: auditCa.trustRoot, manifest });
    expect(r.valid).toBe(true);
    expect(r.enclaves[0]!.manifest).toMatchObject({ name: 'enclave-signer', version: '1.2.3' });
    const other = await buildChain(2, { lastRecord: good.records.at(-1)!, imageId: 'some-other-image' });
    const bad = verifyAuditChain([...good.records, ...other.records].map((bytes) => ({ bytes })), { root: auditCa.trustRoot, manifest });
    expect(bad.firstBad).toMatchObject({ seq: 4, code: 'AUDIT_ATTESTATION' });
    expect(bad.firstBad!.message).toContain('ATTEST_PCR_MISMATCH');
  });

  it('receipt verify with --manifest: the image is proven; another image is refused', async () => {
    const result = Uint8Array.from({ length: 65 }, (_, i) => i);
    const make = async (imageId: string) => {
      const { log } = await buildChain(1, { imageId });
      const rec = log.append({ kind: 'sign', decision: 'allowed', principal: 'backend', op: 'personal_sign', keyId: 'k', requestDigest: digest('r'), resultDigest: sha256(result) });
      return JSON.stringify(buildReceipt(rec.bytes, log.attestation));
    };
    const good = await make('audited-image');
    expect(verifyReceipt(parseReceipt(good), result, { root: auditCa.trustRoot, manifest }).enclave.manifest).toMatchObject({ version: '1.2.3' });

    const files = { root: join(dir, 'root.pem'), manifest: join(dir, 'm.json'), key: join(dir, 'release.pub.pem'), good: join(dir, 'good.json'), bad: join(dir, 'bad.json') };
    writeFileSync(files.root, derToPem(auditCa.root.certDer));
    writeFileSync(files.manifest, JSON.stringify(signed));
    writeFileSync(files.key, release.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    writeFileSync(files.good, good);
    writeFileSync(files.bad, await make('some-other-image'));
    const io = { stdout: () => undefined, stderr: () => undefined };
    const args = (f: string) => ['receipt', 'verify', f, '--result', toHex(result), '--root', files.root, '--manifest', files.manifest, '--manifest-key', files.key];
    expect(await main(args(files.good), io)).toBe(0);
    expect(await main(args(files.bad), io)).toBe(1);
    expect(await main(['receipt', 'verify', files.good, '--result', toHex(result), '--manifest', files.manifest], io)).toBe(2);
  });
});
