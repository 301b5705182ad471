/**
 * `enclave-signer/verify` (attestation/receipts.ts): custody code checks a key's receipt or a
 * result's receipt in process, against the signed manifest of its release. Real records and
 * attestation documents (simulated NSM, dev CA), a real signed manifest; the host's substitutes
 * and an image the host built must fail, and a missing manifest must fail closed.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildReceipt } from '../common/audit/receipt.js';
import { sha256 } from '../common/audit/record.js';
import { keyPublicDigest } from '../common/audit/result.js';
import { toHex } from '../common/bytes.js';
import { simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { auditCa, digest, openEnclaveLog } from '../test/audit-chain.js';
import { createManifest } from './manifest-format.js';
import { signManifest } from './manifest-signature.js';
import { verifyKeyReceipt, verifyResultReceipt, type ReceiptTrust } from './receipts.js';
import { derToPem } from './roots.js';

const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const pcrs = simulatedImagePcrs('real-image');
const manifest = JSON.stringify(
  signManifest(
    createManifest({
      image: { name: 'enclave-signer', version: '9.9.9', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) },
      pcrs: { 0: toHex(pcrs.get(0)!), 1: toHex(pcrs.get(1)!), 2: toHex(pcrs.get(2)!) },
    }),
    release.privateKey,
  ),
);
const trust: ReceiptTrust = { manifest, manifestKeys: [release.publicKey.export({ type: 'spki', format: 'pem' }) as string], root: derToPem(auditCa.root.certDer) };

const KEY = { keyId: '0b7a3b4e-5d0c-4a4b-9b3e-2f5d6c7e8f90', kind: 'secp256k1', keyringId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f', publicKey: `02${'ab'.repeat(32)}`, address: '0x52908400098527886E0F7030069857D2E4169EE7', label: null, createdAt: '2026-12-07T16:00:00.000Z' };
const SIGNATURE = `0x${'11'.repeat(65)}`;

async function receipts(imageId = 'real-image') {
  const log = await openEnclaveLog({ imageId });
  const made = log.append({ kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: KEY.keyId, resultDigest: keyPublicDigest(KEY) });
  const signed = log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'personal_sign', keyId: KEY.keyId, requestDigest: digest('r'), resultDigest: sha256(Buffer.from('11'.repeat(65), 'hex')) });
  return { key: buildReceipt(made.bytes, log.attestation), sig: buildReceipt(signed.bytes, log.attestation) };
}

describe('enclave-signer/verify', () => {
  it('a key receipt proves the key as the host serves it; as JSON text or the object getReceipt returns', async () => {
    const r = await receipts();
    expect(verifyKeyReceipt(r.key, KEY, trust)).toMatchObject({ valid: true, kind: 'key.create', keyId: KEY.keyId, enclave: { manifest: { name: 'enclave-signer', version: '9.9.9' } } });
    expect(verifyKeyReceipt(JSON.stringify(r.key), KEY, trust).valid).toBe(true);
    expect(verifyResultReceipt(r.sig, SIGNATURE, trust)).toMatchObject({ valid: true, kind: 'sign', op: 'personal_sign' });
  });

  it("the host's address, a receipt of the other kind, or an enclave image the host built: refused", async () => {
    const r = await receipts();
    expect(() => verifyKeyReceipt(r.key, { ...KEY, address: '0x000000000000000000000000000000000000dEaD' }, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect(() => verifyKeyReceipt(r.sig, KEY, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect(() => verifyResultReceipt(r.key, SIGNATURE, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect(() => verifyResultReceipt(r.sig, `0x${'22'.repeat(65)}`, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    const rogue = await receipts('host-built-image');
    expect(() => verifyKeyReceipt(rogue.key, KEY, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_ATTESTATION' }));
  });

  it('fails closed without a manifest or a manifest key, and with a manifest key that did not sign it', async () => {
    const r = await receipts();
    expect(() => verifyKeyReceipt(r.key, KEY, { ...trust, manifest: undefined as unknown as string })).toThrow(/manifest is required/);
    expect(() => verifyKeyReceipt(r.key, KEY, { ...trust, manifestKeys: [] })).toThrow(/at least one manifest key/);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => verifyKeyReceipt(r.key, KEY, { ...trust, manifestKeys: [other] })).toThrow(expect.objectContaining({ code: 'AUDIT_ATTESTATION' }));
    // Without the dev root the dev CA's documents do not verify (the default is AWS's root).
    const { root: _, ...aws } = trust;
    expect(() => verifyKeyReceipt(r.key, KEY, aws)).toThrow(expect.objectContaining({ code: 'AUDIT_ATTESTATION' }));
  });
});
