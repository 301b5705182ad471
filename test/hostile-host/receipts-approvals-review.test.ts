/**
 * Review of session 26's two changes, playing the hostile host:
 *
 *   1. key receipts (a key.create record names the key's public data, keyPublicDigest;
 *      verifyReceipt / `receipt verify --result <json>` check a key object against it);
 *   2. approval message v2 (the approver's signature names the requester and rule shown).
 *
 * Each "cannot" test fails if the weakness it names exists. Real audit logs (simulated NSM, dev
 * CA), the real parent with the fake enclave's real audit trail (parent/test-helpers.ts), and the
 * real ApprovalBook with real principal keys.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyReceipt } from '../../attestation/audit/receipt.js';
import { verifyResultReceipt } from '../../attestation/receipts.js';
import { derToPem } from '../../attestation/roots.js';
import { main } from '../../cli/main.js';
import { signApproval, signMessage, webauthnSign } from '../../common/auth/client-signer.js';
import { approvalMessage, approvalMessageV1, requestDigest, toBase64Url } from '../../common/auth/request.js';
import { canonicalRequestBytes } from '../../common/auth/canonical.js';
import { buildReceipt, parseReceipt } from '../../common/audit/receipt.js';
import { sha256 } from '../../common/audit/record.js';
import { keyPublicDigest, releasedResultDigest } from '../../common/audit/result.js';
import { parseHex } from '../../common/bytes.js';
import { ApprovalBook, type ApprovalRequest } from '../../enclave/auth/approvals.js';
import { AUDIENCE, errorCode, testPrincipals } from '../../enclave/auth/test-helpers.js';
import { devManifest, rpc, startRig, waitFor, type Rig } from '../../parent/test-helpers.js';
import { auditCa, digest, openEnclaveLog } from '../audit-chain.js';

const dir = mkdtempSync(join(tmpdir(), 'es-review-receipts-'));
const rigs: Rig[] = [];
afterAll(async () => {
  for (const r of rigs.splice(0)) await r.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});
const rootPem = join(dir, 'dev-root.pem');
writeFileSync(rootPem, derToPem(auditCa.root.certDer));
const trust = { root: auditCa.trustRoot };

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
  return { code, out, err };
}

const KEY = {
  keyId: '0b7a3b4e-5d0c-4a4b-9b3e-2f5d6c7e8f90',
  kind: 'secp256k1',
  keyringId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f',
  publicKey: `02${'ab'.repeat(32)}`,
  address: '0x52908400098527886E0F7030069857D2E4169EE7',
};
const SEED = {
  keyId: '1c8b4c5f-6e1d-4b5c-8c4f-3a6e7d8f9a01',
  kind: 'bip32-seed',
  keyringId: KEY.keyringId,
  publicKey: `03${'cd'.repeat(32)}`,
  xpub: 'xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8',
  fingerprint: '3442193e',
};
const SERVED = { ...KEY, label: 'deposits', createdAt: '2026-12-07T16:00:00.000Z' };
const EVIL = '0x000000000000000000000000000000000000dEaD';

const receiptOf = (bytes: Uint8Array, attestation: Uint8Array) => parseReceipt(JSON.stringify(buildReceipt(bytes, attestation)));

async function keyReceipt(key: Record<string, string>, resultDigest: Uint8Array | null = keyPublicDigest(key)) {
  const log = await openEnclaveLog();
  const rec = log.append({ kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: key.keyId!, resultDigest });
  return { log, receipt: receiptOf(rec.bytes, log.attestation), bytes: rec.bytes };
}

/** A genuine personal_sign of the key (65 bytes) and its genuine receipt. */
async function signReceipt() {
  const log = await openEnclaveLog();
  const sig = new Uint8Array(65).fill(0x5a);
  const rec = log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'personal_sign', keyId: KEY.keyId, requestDigest: digest('a message'), resultDigest: sha256(sig), rule: 'messages' });
  return { log, sig, receipt: receiptOf(rec.bytes, log.attestation), bytes: rec.bytes };
}

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;

describe('review: a receipt for one thing is no proof of another', () => {
  it("the host cannot pass its own address off as a key's with a signature's receipt: a key object carrying a genuine `signature` (or `raw`) member fails verifyReceipt", async () => {
    const { sig, receipt } = await signReceipt();
    // The host serves its own deposit address under the key's id, plus a signature the enclave really made.
    for (const extra of [{ signature: hex(sig) }, { raw: hex(sig) }]) {
      const forged = { ...SERVED, address: EVIL, ...extra };
      expect(() => verifyReceipt(receipt, forged, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    }
    // The receipt still proves what it is for: the signature.
    expect(verifyReceipt(receipt, sig, trust)).toMatchObject({ valid: true, kind: 'sign' });
    expect(verifyReceipt(receipt, { signature: hex(sig) }, trust)).toMatchObject({ valid: true, kind: 'sign' });
  });

  it("the same through `enclave-signer receipt verify --result '<key json>'`: exit 1, not 0", async () => {
    const { sig, receipt: _, bytes, log } = await signReceipt();
    const file = join(dir, 'sign-receipt.json');
    writeFileSync(file, JSON.stringify(buildReceipt(bytes, log.attestation)));
    const forged = JSON.stringify({ ...SERVED, address: EVIL, signature: hex(sig) });
    const r = await cli('receipt', 'verify', file, '--result', forged, '--root', rootPem, '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ valid: false, error: { code: 'AUDIT_RECEIPT' } });
  });

  it("enclave-signer/verify: verifyResultReceipt refuses a doctored signer_deriveKey answer (the host's ethereumAddress) carrying a genuine signature; genuine result objects still verify", async () => {
    const release = devManifest();
    const vtrust = { manifest: release.signed, manifestKeys: [release.publicKeyPem], root: derToPem(auditCa.root.certDer) };
    const { sig, bytes, log } = await signReceipt();
    const receipt = buildReceipt(bytes, log.attestation);
    const doctored = { path: "m/44'/60'/0'/0/0", masterFingerprint: '3442193e', publicKey: `0x02${'ef'.repeat(32)}`, xpub: SEED.xpub, ethereumAddress: EVIL, signature: hex(sig) };
    expect(() => verifyResultReceipt(receipt, doctored, vtrust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    // A signing result as the enclave answers it (eth-message.ts: signature, r, s, v, yParity, digest, address) still verifies.
    const answer = { signature: hex(sig), r: `0x${'5a'.repeat(32)}`, s: `0x${'5a'.repeat(32)}`, v: 28, yParity: 1, digest: `0x${'00'.repeat(32)}`, address: KEY.address };
    expect(verifyResultReceipt(receipt, answer, vtrust)).toMatchObject({ valid: true, kind: 'sign' });
    // signer_signDigest (ecdsa.ts) and signer_signSchnorr (schnorr.ts) answers, as the parent relays them.
    const digestAnswer = { r: `0x${'5a'.repeat(32)}`, s: `0x${'5a'.repeat(32)}`, yParity: 1, v: 28, signature: hex(sig), compact: `0x${'5a'.repeat(64)}`, der: '0x3044' };
    expect(verifyResultReceipt(receipt, digestAnswer, vtrust).valid).toBe(true);
    expect(verifyResultReceipt(receipt, { signature: hex(sig), publicKey: `0x02${'ef'.repeat(32)}` }, vtrust).valid).toBe(true);
    // A genuine derive answer (no signature: its digest is the whole object's canonical JSON) still verifies.
    const derived = { path: "m/44'/60'/0'/0/0", masterFingerprint: '3442193e', fingerprint: '01020304', parentFingerprint: '05060708', depth: 5, index: 0, publicKey: `0x02${'ef'.repeat(32)}`, xOnlyPublicKey: `0x${'ef'.repeat(32)}`, xpub: SEED.xpub, ethereumAddress: KEY.address };
    const dlog = await openEnclaveLog();
    const drec = dlog.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'signer_deriveKey', keyId: SEED.keyId, requestDigest: digest('d'), resultDigest: releasedResultDigest(derived) });
    expect(verifyResultReceipt(buildReceipt(drec.bytes, dlog.attestation), derived, vtrust)).toMatchObject({ valid: true, kind: 'sign' });
    expect(() => verifyResultReceipt(buildReceipt(drec.bytes, dlog.attestation), { ...derived, ethereumAddress: EVIL }, vtrust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
  });

  it("a sign record is no key proof even when the object is exactly a key's public fields (no domain shared with keyPublicDigest)", async () => {
    const log = await openEnclaveLog();
    // Whatever the enclave released, a sign record whose digest is the canonical JSON of these fields
    // would otherwise "prove" the key with kind 'sign'.
    const rec = log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'signer_deriveKey', keyId: KEY.keyId, requestDigest: digest('r'), resultDigest: releasedResultDigest(KEY) });
    expect(() => verifyReceipt(receiptOf(rec.bytes, log.attestation), KEY, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
  });

  it("the host cannot pass a doctored signer_deriveKey answer (its own ethereumAddress, any path) off with the seed key's key.create receipt: members the record does not cover are refused", async () => {
    const { receipt } = await keyReceipt(SEED);
    const doctored = {
      ...SEED,
      path: "m/44'/60'/0'/0/0",
      masterFingerprint: SEED.fingerprint,
      ethereumAddress: EVIL,
    };
    expect(() => verifyReceipt(receipt, doctored, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    // Prototype-looking members are members too.
    expect(() => verifyReceipt(receipt, JSON.parse(`{"__proto__":{"address":"${EVIL}"},${JSON.stringify(SEED).slice(1)}`), trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    // The seed key as the parent serves it (label, createdAt) still verifies.
    expect(verifyReceipt(receipt, { ...SEED, label: null, createdAt: '2026-12-07T16:00:00.000Z' }, trust)).toMatchObject({ valid: true, kind: 'key.create' });
  });

  it('holds: key A\'s record does not verify key B; denied, pending and old (null digest) records verify nothing; a key receipt is no signature receipt', async () => {
    const a = await keyReceipt(KEY);
    expect(() => verifyReceipt(a.receipt, { ...SEED, keyringId: KEY.keyringId }, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect(() => verifyReceipt(a.receipt, { ...KEY, keyId: SEED.keyId }, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect(() => verifyReceipt(a.receipt, keyPublicDigest(KEY), trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    const old = await keyReceipt(KEY, null);
    expect(() => verifyReceipt(old.receipt, SERVED, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    const log = await openEnclaveLog();
    const denied = log.append({ kind: 'key.create', decision: 'denied', principal: 'host', op: 'signer_createKey', keyId: KEY.keyId, rule: 'no-keys' });
    const pending = log.append({ kind: 'sign', decision: 'pending', principal: 'host', op: 'personal_sign', keyId: KEY.keyId, requestDigest: digest('x'), rule: 'r' });
    for (const rec of [denied, pending]) {
      expect(() => verifyReceipt(receiptOf(rec.bytes, log.attestation), SERVED, trust)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    }
  });

  it('holds: the canonical form has no collisions from quotes, unicode forms, case or non-strings; bad values fail closed', async () => {
    const { receipt } = await keyReceipt(KEY);
    const tries: Record<string, unknown>[] = [
      { ...SERVED, address: KEY.address.toLowerCase() },
      { ...SERVED, address: KEY.address.replace('E0F', 'e0f') },
      { ...SERVED, address: `${KEY.address} ` },
      { ...SERVED, kind: 'secp256k1\u0000' },
      { ...SERVED, keyringId: `${KEY.keyringId}","address":"${EVIL}` },
      { ...SERVED, address: ['0x52908400098527886E0F7030069857D2E4169EE7'] },
      { ...SERVED, address: { toString: () => KEY.address } },
      { ...SERVED, address: undefined },
      { ...SERVED, xpub: null },
    ];
    for (const t of tries) expect(() => verifyReceipt(receipt, t, trust), JSON.stringify(t)).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    // Field values that differ only in Unicode normalisation are different keys (NFC vs NFD).
    const nfc = { ...KEY, keyId: 'caf\u00e9' };
    const nfd = { ...KEY, keyId: 'cafe\u0301' };
    expect(keyPublicDigest(nfc)).not.toEqual(keyPublicDigest(nfd));
    // A value that embeds the next member's text does not collide with the two members.
    const joined = { ...KEY, kind: `secp256k1","keyringId":"${KEY.keyringId}`, keyringId: 'x' };
    expect(keyPublicDigest(joined)).not.toEqual(keyPublicDigest(KEY));
    // A lone surrogate is escaped by JSON.stringify before UTF-8 encoding: not U+FFFD's twin.
    expect(keyPublicDigest({ ...KEY, keyId: '\ud800' })).not.toEqual(keyPublicDigest({ ...KEY, keyId: '\ufffd' }));
  });

  it('`--result` JSON with a duplicate member is refused (a parser keeping the first would read another address than the verifier checked)', async () => {
    const { bytes, log } = await keyReceipt(KEY);
    const file = join(dir, 'key-receipt.json');
    writeFileSync(file, JSON.stringify(buildReceipt(bytes, log.attestation)));
    const good = JSON.stringify(SERVED);
    expect((await cli('receipt', 'verify', file, '--result', good, '--root', rootPem)).code).toBe(0);
    // The host's answer names its own address first, the genuine one second: JSON.parse keeps the last.
    const dup = `{"address":"${EVIL}",${good.slice(1)}`;
    const escaped = `{"addr\\u0065ss":"${EVIL}",${good.slice(1)}`;
    for (const text of [dup, escaped]) {
      const r = await cli('receipt', 'verify', file, '--result', text, '--root', rootPem);
      expect(r.code, text).not.toBe(0);
      expect(r.err).toMatch(/duplicate/i);
    }
    // Escaped quotes and braces inside values are not members; the same name in two objects is no duplicate.
    const tricky = JSON.stringify({ ...SERVED, label: 'a\\"b{"address":"x"}\\' });
    expect((await cli('receipt', 'verify', file, '--result', tricky, '--root', rootPem)).code).toBe(0);
    // A member the key's answer does not have is refused with a clear reason (exit 1).
    const extra = await cli('receipt', 'verify', file, '--result', `{"ethereumAddress":"${EVIL}",${good.slice(1)}`, '--root', rootPem);
    expect(extra.code).toBe(1);
    expect(extra.err).toMatch(/ethereumAddress/);
    // Nested duplicates count too, and a duplicate in an array of objects; not across objects.
    expect((await cli('receipt', 'verify', file, '--result', `{"a":{"b":1,"b":2},${good.slice(1)}`, '--root', rootPem)).err).toMatch(/duplicate/i);
    // Garbage is a usage error, not a crash.
    for (const text of ['{', '{"keyId":}', '{}', '{"__proto__":null}', `{"keyId":${'['.repeat(5000)}`]) {
      const r = await cli('receipt', 'verify', file, '--result', text, '--root', rootPem);
      expect([1, 2], text.slice(0, 30)).toContain(r.code);
    }
  });
});

describe('review: the parent cannot make signer_getReceipt vouch for data the enclave did not make', () => {
  it("a key object with the host's address and a genuine signature member gets a receipt from the parent, but it does not verify", async () => {
    const r = await startRig({ dir, parent: { keystore: join(dir, 'getreceipt.db') } });
    rigs.push(r);
    const key = (await rpc(r.socket, 'signer_createKey', {})).result;
    const sig = (await rpc(r.socket, 'personal_sign', ['0x6f6b', key.address])).result as string;
    const forged = { ...key, address: EVIL, signature: sig };
    const answer = await rpc(r.socket, 'signer_getReceipt', { result: forged });
    // The parent may hand out the signature's receipt; what matters is that it proves no address.
    if (answer.result !== undefined) {
      expect(() => verifyReceipt(parseReceipt(JSON.stringify(answer.result)), forged, { root: r.ca.trustRoot })).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
      // It is the signature's receipt, and still proves the signature.
      expect(verifyReceipt(parseReceipt(JSON.stringify(answer.result)), parseHex(sig)!, { root: r.ca.trustRoot }).kind).toBe('sign');
    }
    // The key as made: its own receipt, kind key.create.
    const own = (await rpc(r.socket, 'signer_getReceipt', { result: key })).result;
    expect(verifyReceipt(parseReceipt(JSON.stringify(own)), key, { root: r.ca.trustRoot })).toMatchObject({ valid: true, kind: 'key.create', keyId: key.keyId });
    // Bad results fail that request only.
    for (const bad of [{ ...key, address: 42 }, { ...key, keyId: {} }, [key], null, '0x', { __proto__: { keyId: key.keyId } }]) {
      expect((await rpc(r.socket, 'signer_getReceipt', { result: bad })).error).toMatchObject({ code: -32602 });
    }
    expect((await rpc(r.socket, 'signer_getKey', { keyId: key.keyId })).result.keyId).toBe(key.keyId);
  });

  it("holds (fleet): a key_audit row pointed at another key's or another instance's record gets no receipt, and any record it returns does not verify", async () => {
    const ks = join(dir, 'fleet-key-audit.db');
    const r1 = await startRig({ dir, parent: { keystore: ks } });
    const a = (await rpc(r1.socket, 'signer_createKey', {})).result;
    const b = (await rpc(r1.socket, 'signer_createKey', {})).result;
    await r1.parent.close();
    const db = new Database(ks);
    const rowA = db.prepare('SELECT instance_id, seq FROM key_audit WHERE key_id = ?').get(a.keyId) as { instance_id: string; seq: number };
    // B's row now names A's record; and a copy of A's record under another instance id.
    db.prepare('UPDATE key_audit SET seq = ? WHERE key_id = ?').run(rowA.seq, b.keyId);
    db.close();
    const r2 = await startRig({ dir, noEnclave: true, enclave: { ca: r1.ca }, parent: { keystore: ks, enclave: r1.enclaveUri } });
    rigs.push(r2, r1);
    await waitFor(() => r2.parent.state().ready, 10_000, 'ready');
    expect((await rpc(r2.socket, 'signer_getReceipt', { result: b })).error).toMatchObject({ code: -32602 });
    // A hostile parent hands A's receipt for B anyway: it does not verify.
    const forA = (await rpc(r2.socket, 'signer_getReceipt', { result: a })).result;
    expect(() => verifyReceipt(parseReceipt(JSON.stringify(forA)), b, { root: r1.ca.trustRoot })).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect(verifyReceipt(parseReceipt(JSON.stringify(forA)), a, { root: r1.ca.trustRoot }).kind).toBe('key.create');
  });
});

describe('review: approval message v2', () => {
  const { keys, registry } = testPrincipals();
  const T0 = 1_800_000_000;
  const PARAMS = [{ to: `0x${'22'.repeat(20)}`, value: '0xde0b6b3a7640000' }];
  const DIGEST = requestDigest(AUDIENCE, 'eth_signTransaction', PARAMS);
  function setup() {
    let n = 0;
    const book = new ApprovalBook({ principals: registry, now: () => T0, newId: () => `apr_review${++n}` });
    const req: ApprovalRequest = { requestDigest: DIGEST, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requester: 'host', ttlSeconds: 3600, request: { method: 'eth_signTransaction', params: PARAMS } };
    return { book, req };
  }
  const v2 = (who: 'alice' | 'bob' | 'carol', approvalId: string, requester: string, rule: string, decision: 'approve' | 'reject' = 'approve') =>
    signApproval({ key: keys[who], approver: who, approvalId, requestDigest: DIGEST, requester, rule, decision }).signature;

  it('the host cannot get a v2 approval (or veto) shown as another requester or rule counted; the same approver signing what waits counts', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    for (const [requester, rule] of [['backend', 'treasury'], ['host', 'small'], ['Host', 'treasury'], ['host', 'treasury ']] as const) {
      expect(errorCode(() => book.approve(a.approvalId, 'alice', v2('alice', a.approvalId, requester, rule)))).toBe('APPROVAL_BAD_SIGNATURE');
      expect(errorCode(() => book.reject(a.approvalId, 'bob', v2('bob', a.approvalId, requester, rule, 'reject')))).toBe('APPROVAL_BAD_SIGNATURE');
    }
    expect(book.get(a.approvalId)).toMatchObject({ approvedBy: [], rejectedBy: null });
    // A second approval for the same digest by another requester: a signature for one is not the other's.
    const other = book.authorize({ ...req, requester: 'backend' });
    expect(errorCode(() => book.approve(other.approvalId, 'alice', v2('alice', a.approvalId, 'host', 'treasury')))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(book.approve(a.approvalId, 'alice', v2('alice', a.approvalId, 'host', 'treasury')).approvedBy).toEqual(['alice']);
  });

  it('the host cannot downgrade: a v2 signature is never a v1 one, and a v1-domain message carrying v2 members is not v1', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    const m = { approvalId: a.approvalId, approver: 'alice', decision: 'approve' as const, requestDigest: DIGEST };
    // What alice's v2 tool signed, for the requester the host lied about, offered as any version: refused.
    const lied = toBase64Url(signMessage(keys.alice, approvalMessage({ ...m, requester: 'backend', rule: 'treasury' })));
    expect(errorCode(() => book.approve(a.approvalId, 'alice', lied))).toBe('APPROVAL_BAD_SIGNATURE');
    // A hybrid (v1 domain, v2 members) is neither message.
    const hybrid = canonicalRequestBytes({ domain: 'enclave-signer/approval/v1', ...m, requester: 'backend', rule: 'treasury' });
    expect(errorCode(() => book.approve(a.approvalId, 'alice', toBase64Url(signMessage(keys.alice, hybrid))))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(Buffer.from(approvalMessageV1(m)).toString()).not.toContain('requester');
    expect(book.get(a.approvalId).approvedBy).toEqual([]);
  });

  it('holds: WebAuthn approvals verify as v2 and as v1 (a v2 miss does not make a v1 assertion fail); a WebAuthn v2 naming another requester is refused', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    const m = { approvalId: a.approvalId, approver: 'carol', decision: 'approve' as const, requestDigest: DIGEST };
    const wrong = webauthnSign(keys.carol, approvalMessage({ ...m, requester: 'backend', rule: 'treasury' }), {});
    expect(errorCode(() => book.approve(a.approvalId, 'carol', wrong.signature, wrong.webauthn))).toBe('APPROVAL_BAD_SIGNATURE');
    const v1 = webauthnSign(keys.carol, approvalMessageV1(m), {});
    expect(book.approve(a.approvalId, 'carol', v1.signature, v1.webauthn).approvedBy).toEqual(['carol']);
    const b = book.authorize({ ...req, requestDigest: 'b'.repeat(64) });
    const ok = webauthnSign(keys.alice, approvalMessage({ approvalId: b.approvalId, approver: 'alice', decision: 'approve', requestDigest: 'b'.repeat(64), requester: 'host', rule: 'treasury' }), {});
    expect(book.approve(b.approvalId, 'alice', ok.signature, ok.webauthn).approvedBy).toEqual(['alice']);
  });

  // The enclave's approval.approve checks that approvalId, approver and signature are bounded strings
  // (enclave/principal-methods.ts approvalParams) before the book sees them: only strings reach it.
  it('holds: malformed approvals fail that call only, with a typed refusal', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    const bad: Array<[unknown, unknown, unknown, unknown?]> = [
      [a.approvalId, 'alice', 'A'.repeat(10_000)],
      [a.approvalId, 'alice', 'not base64!'],
      [a.approvalId, 'alice', 'AAAA', { authenticatorData: 'AA', clientDataJSON: 'AA' }],
      [a.approvalId, 'alice', 'AAAA', { authenticatorData: 'A'.repeat(5000), clientDataJSON: '' }],
      ['apr_nope', 'alice', 'AAAA'],
      [a.approvalId, 'host', 'AAAA'],
      [a.approvalId, 'outsider', 'AAAA'],
      [a.approvalId, '__proto__', 'AAAA'],
    ];
    for (const [id, who, s, w] of bad) {
      const code = errorCode(() => book.approve(id as string, who as string, s as string, w as never));
      expect(code, JSON.stringify([typeof id, typeof who, String(s).slice(0, 20)])).toMatch(/^APPROVAL_/);
    }
    expect(book.get(a.approvalId)).toMatchObject({ approvedBy: [], rejectedBy: null });
    expect(book.approve(a.approvalId, 'bob', v2('bob', a.approvalId, 'host', 'treasury')).approvedBy).toEqual(['bob']);
  });
});
