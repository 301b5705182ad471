/**
 * A key's receipt: the enclave's key.create record names the new key's public data
 * (keyPublicDigest), so a custody team proves offline that an address the parent serves is a
 * key the attested enclave made. The host serves public data from its own store and could hand
 * out its own address; these tests play that host against real records and documents (simulated
 * NSM, dev CA).
 */
import { describe, expect, it } from 'vitest';
import { buildReceipt, parseReceipt } from '../../common/audit/receipt.js';
import { isKeyInfo, keyPublicDigest } from '../../common/audit/result.js';
import { auditCa, digest, openEnclaveLog } from '../../test/audit-chain.js';
import { verifyReceipt } from './receipt.js';

const KEY = {
  keyId: '0b7a3b4e-5d0c-4a4b-9b3e-2f5d6c7e8f90',
  kind: 'secp256k1',
  keyringId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f',
  publicKey: `02${'ab'.repeat(32)}`,
  address: '0x52908400098527886E0F7030069857D2E4169EE7',
};
/** What signer_getKey answers: the public data plus the parent's own label and time. */
const SERVED = { ...KEY, label: 'deposits', createdAt: '2026-12-07T16:00:00.000Z' };
const trust = { root: auditCa.trustRoot };

async function keyReceipt(resultDigest: Uint8Array | null) {
  const log = await openEnclaveLog();
  const rec = log.append({ kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: KEY.keyId, resultDigest });
  return { log, receipt: parseReceipt(JSON.stringify(buildReceipt(rec.bytes, log.attestation))) };
}

describe('keyPublicDigest', () => {
  it('covers the fields the enclave computed, in any member order, and none the parent adds', () => {
    const reordered = Object.fromEntries(Object.entries(KEY).reverse());
    expect(keyPublicDigest(reordered)).toEqual(keyPublicDigest(KEY));
    expect(keyPublicDigest(SERVED)).toEqual(keyPublicDigest(KEY));
    expect(keyPublicDigest({ ...KEY, blob: new Uint8Array(61) })).toEqual(keyPublicDigest(KEY));
    for (const f of ['keyId', 'kind', 'keyringId', 'publicKey', 'address'] as const) {
      expect(keyPublicDigest({ ...KEY, [f]: `${KEY[f]}0` }), f).not.toEqual(keyPublicDigest(KEY));
    }
    // An xpub the parent adds to a secp256k1 key is covered too: not a way to slip data in.
    expect(keyPublicDigest({ ...KEY, xpub: 'xpub6…' })).not.toEqual(keyPublicDigest(KEY));
  });

  it('refuses public data without a required field, or with a field that is not a string', () => {
    const { publicKey: _, ...noPub } = KEY;
    expect(() => keyPublicDigest(noPub)).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED', message: expect.stringMatching(/publicKey/) }));
    expect(() => keyPublicDigest({ ...KEY, address: 42 })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED', message: expect.stringMatching(/address/) }));
    expect(() => keyPublicDigest({ ...KEY, fingerprint: '' })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
  });

  it('tells a key from a signing result', () => {
    expect(isKeyInfo(SERVED)).toBe(true);
    expect(isKeyInfo({ ...KEY, signature: '0x11' })).toBe(false);
    expect(isKeyInfo({ psbt: 'cHNidP8=' })).toBe(false);
    expect(isKeyInfo('0x11')).toBe(false);
    expect(isKeyInfo([KEY])).toBe(false);
  });
});

describe('a key.create record names the key it made', () => {
  it('only a made key carries a result digest: a refused creation or a keyring record with one is refused by the writer', async () => {
    const log = await openEnclaveLog();
    expect(() => log.append({ kind: 'key.create', decision: 'denied', principal: 'host', op: 'signer_createKey', keyId: 'k', rule: 'error:X', resultDigest: digest('x') })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    expect(() => log.append({ kind: 'keyring.create', decision: 'done', principal: 'host', op: 'keyring.create', keyId: 'r', resultDigest: digest('x') })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
  });

  it('the receipt proves the key as the parent serves it (label and time aside)', async () => {
    const { receipt } = await keyReceipt(keyPublicDigest(KEY));
    expect(verifyReceipt(receipt, SERVED, trust)).toMatchObject({ valid: true, kind: 'key.create', keyId: KEY.keyId, op: 'key.create' });
  });

  it("a host that serves its own address (or another public key, keyring or kind) under the key's id fails", async () => {
    const { receipt } = await keyReceipt(keyPublicDigest(KEY));
    const hostile = [
      { ...SERVED, address: '0x000000000000000000000000000000000000dEaD' },
      { ...SERVED, address: KEY.address.toLowerCase() },
      { ...SERVED, publicKey: `03${'ab'.repeat(32)}` },
      { ...SERVED, keyringId: '00000000-0000-4000-8000-000000000000' },
      { ...SERVED, kind: 'bip32-seed' },
    ];
    for (const h of hostile) {
      expect(() => verifyReceipt(receipt, h, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT', message: expect.stringMatching(/key's public data [0-9a-f]{64} is not the record's result digest/) }));
    }
  });

  it('a key receipt is checked against public data, not bytes; a record written before keys were recorded proves no address', async () => {
    const { receipt } = await keyReceipt(keyPublicDigest(KEY));
    expect(() => verifyReceipt(receipt, keyPublicDigest(KEY), trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT', message: expect.stringMatching(/not bytes/) }));
    const old = await keyReceipt(null);
    expect(() => verifyReceipt(old.receipt, SERVED, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT', message: expect.stringMatching(/proves no address/) }));
  });

  it("a signature's receipt does not prove a key, and a key's receipt does not prove a signature", async () => {
    const log = await openEnclaveLog();
    const sig = new Uint8Array(65).fill(7);
    const signed = log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'personal_sign', keyId: KEY.keyId, requestDigest: digest('r'), resultDigest: keyPublicDigest(KEY) });
    // Even a sign record whose digest happens to be the key's: a sign record is checked as a result object.
    expect(() => verifyReceipt(parseReceipt(JSON.stringify(buildReceipt(signed.bytes, log.attestation))), SERVED, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    const { receipt } = await keyReceipt(keyPublicDigest(KEY));
    expect(() => verifyReceipt(receipt, sig, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
  });
});
