/**
 * Issue 10 wired: nothing is released before it is recorded. The parent (the
 * host) persists every decision's signed audit record before it hands the
 * result to the client; when it cannot, the client gets -32002, never the
 * signature; records of concurrent requests are stored in seq order without
 * gaps; a parent that dies between sign and persist leaves a record the next
 * boot stores and reports. The chain the running stack produces verifies.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { type Hex, verifyMessage } from 'viem';
import { verifyAuditChain } from '../../attestation/audit/verify.js';
import { verifyReceipt } from '../../attestation/audit/receipt.js';
import { parseReceipt } from '../../common/audit/receipt.js';
import { parseRecord } from '../../common/audit/record.js';
import { parseHex, toHex } from '../../common/bytes.js';
import { openKeystore } from '../../parent/keystore.js';
import { httpRequest, rpc, startRig, waitFor, type Rig } from '../../parent/test-helpers.js';
import { collect } from '../async.js';

vi.setConfig({ testTimeout: 60_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-hostile-audit-'));
const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close().catch(() => {});
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function stored(path: string) {
  const ks = await openKeystore(path, { readonly: true });
  const out = (await collect(ks.iterateAuditRecords())).map((r) => ({ bytes: r.record, storedSeq: r.seq }));
  await ks.close();
  return out;
}

const body = (bytes: Uint8Array) => parseRecord(bytes).body;

describe('issue 10: nothing released before it is recorded', () => {
  it('every decision is a stored record (hand-over, keyring, key.create, allowed and denied signs) and the chain verifies against the root', async () => {
    const ks = join(dir, 'chain.db');
    const r = await startRig({ dir, enclave: { denyOps: ['eth_sign'] }, parent: { keystore: ks } });
    rigs.push(r);
    const a = (await rpc(r.socket, 'signer_createKey', {})).result;
    const sig = await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address]);
    expect(await verifyMessage({ address: a.address as Hex, message: 'ok', signature: sig.result })).toBe(true);
    const denied = await rpc(r.socket, 'eth_sign', [a.address, '0x6f6b']);
    expect(denied.error?.message).toMatch(/denied/);
    await r.parent.close();
    const recs = (await stored(ks));
    expect(recs.map((x) => [body(x.bytes).kind, body(x.bytes).decision])).toEqual([
      ['handover', 'done'],
      ['keyring.create', 'done'],
      ['key.create', 'done'],
      ['sign', 'allowed'],
      ['sign', 'denied'],
    ]);
    const signed = body(recs[3]!.bytes);
    expect(toHex(signed.resultDigest!)).toBe(toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', parseHex(sig.result)!))));
    expect(body(recs[4]!.bytes).rule).toBe('error:POLICY_DENIED');
    const report = verifyAuditChain(recs, { root: r.ca.trustRoot });
    expect(report.problems).toEqual([]);
    expect(report.valid).toBe(true);
  });

  it('concurrent signs: every record is stored in seq order without gaps, and every released signature has its record', async () => {
    const ks = join(dir, 'concurrent.db');
    const r = await startRig({ dir, parent: { keystore: ks } });
    rigs.push(r);
    const a = (await rpc(r.socket, 'signer_createKey', {})).result;
    const msgs = Array.from({ length: 40 }, (_, i) => `0x${Buffer.from(`m${i}`).toString('hex')}`);
    const sigs = await Promise.all(msgs.map((m) => rpc(r.socket, 'personal_sign', [m, a.address])));
    for (const s of sigs) expect(s.result).toMatch(/^0x[0-9a-f]{130}$/);
    await r.parent.close();
    const recs = (await stored(ks));
    expect(recs.map((x) => x.storedSeq)).toEqual(recs.map((_, i) => i));
    const digests = new Set(recs.filter((x) => body(x.bytes).kind === 'sign').map((x) => toHex(body(x.bytes).resultDigest!)));
    for (const s of sigs) expect(digests.has(toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', parseHex(s.result)!))))).toBe(true);
    expect(verifyAuditChain(recs, { root: r.ca.trustRoot }).valid).toBe(true);
  });

  it('a keystore that cannot be written (read-only) never releases a signature: -32002, the message says the audit record could not be stored', async () => {
    // A --keystore-readonly parent against an enclave that opened its log for an earlier parent.
    const ks = join(dir, 'ro.db');
    const r1 = await startRig({ dir, parent: { keystore: ks } });
    const a = (await rpc(r1.socket, 'signer_createKey', {})).result;
    await r1.parent.close();
    const r = await startRig({ dir, noEnclave: true, enclave: { ca: r1.ca }, parent: { keystore: ks, keystoreReadonly: true, enclave: r1.enclaveUri } });
    rigs.push(r, r1);
    await waitFor(() => r.parent.state().ready, 10_000, 'ready');
    const signsBefore = r1.enclave!.calls.get('sign') ?? 0;
    const sig = await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address]);
    expect(r1.enclave!.calls.get('sign')).toBe(signsBefore + 1); // the enclave signed …
    expect(sig.result).toBeUndefined(); // … and the client never got it
    expect(sig.error).toMatchObject({ code: -32002, message: expect.stringMatching(/audit record could not be stored/), data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
  });

  const canMount = (() => {
    const m = join(dir, 'probe-mnt');
    mkdirSync(m);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', m], { stdio: 'ignore' });
      execFileSync('umount', [m], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!canMount)('a full disk (a small tmpfs) never releases a signature whose record cannot be stored; it signs again once there is room', async () => {
    const mnt = join(dir, 'full');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    try {
      const ks = join(mnt, 'ks.db');
      const r = await startRig({ dir, parent: { keystore: ks } });
      rigs.push(r);
      const a = (await rpc(r.socket, 'signer_createKey', {})).result;
      // Fill the filesystem.
      const filler = join(mnt, 'filler');
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(4096, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch {
        // ENOSPC: full
      } finally {
        closeSync(fd);
      }
      let refused: { code: number; message: string; data?: any } | undefined;
      const released: string[] = [];
      for (let i = 0; i < 400 && !refused; i++) {
        const s = await rpc(r.socket, 'personal_sign', [`0x${Buffer.from(`full ${i} ${'x'.repeat(200)}`).toString('hex')}`, a.address]);
        if (s.error) refused = s.error;
        else released.push(s.result);
      }
      expect(refused).toMatchObject({ code: -32002, message: expect.stringMatching(/audit record could not be stored.*SQLITE_FULL/), data: { code: 'PARENT_AUDIT_UNAVAILABLE' } });
      rmSync(filler);
      const again = await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address]);
      expect(await verifyMessage({ address: a.address as Hex, message: 'ok', signature: again.result })).toBe(true);
      await r.parent.close();
      // Every signature that was released has its record in the keystore.
      const recs = (await stored(ks));
      const digests = new Set(recs.map((x) => body(x.bytes).resultDigest).filter((d) => d !== null).map((d) => toHex(d!)));
      for (const s of [...released, again.result]) expect(digests.has(toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', parseHex(s)!))))).toBe(true);
      expect(verifyAuditChain(recs, { root: r.ca.trustRoot }).valid).toBe(true);
    } finally {
      for (const r of rigs.splice(0)) await r.close().catch(() => {});
      execFileSync('umount', ['-l', mnt]);
    }
  });

  it('a parent killed between sign and persist: the client never got the signature; the next boot reports the unfinished record and stores it', async () => {
    const ks = join(dir, 'killed.db');
    const r1 = await startRig({ dir, enclave: { signDelayMs: 400 }, parent: { keystore: ks } });
    const a = (await rpc(r1.socket, 'signer_createKey', {})).result;
    const before = (await stored(ks)).length;
    // The enclave is signing when the parent goes away.
    const pending = rpc(r1.socket, 'personal_sign', ['0x6f6b', a.address]).then(
      (v) => ({ ok: true as const, v }),
      (e: Error) => ({ ok: false as const, e }),
    );
    await waitFor(() => (r1.enclave!.calls.get('sign') ?? 0) === 1, 5_000, 'sign reached the enclave');
    await r1.parent.close();
    const out = await pending;
    expect(out.ok && out.v.result !== undefined).toBe(false); // never got the signature
    await new Promise((res) => setTimeout(res, 600)); // the enclave finished signing and recorded it
    expect((await stored(ks)).length).toBe(before); // …but no parent stored it
    const r2 = await startRig({ dir, noEnclave: true, enclave: { ca: r1.ca }, parent: { keystore: ks, enclave: r1.enclaveUri } });
    rigs.push(r2, r1);
    await waitFor(() => r2.parent.state().ready, 10_000, 'ready');
    expect(r2.logs.join('\n')).toMatch(/1 unfinished record\(s\) seq \d+\.\.\d+ were decided by this enclave but never stored/);
    await r2.parent.close();
    const recs = (await stored(ks));
    expect(recs.length).toBe(before + 1);
    expect(body(recs.at(-1)!.bytes)).toMatchObject({ kind: 'sign', decision: 'allowed', op: 'personal_sign' });
    expect(verifyAuditChain(recs, { root: r1.ca.trustRoot }).valid).toBe(true);
  });

  it('signer_getReceipt: the receipt for a released signature verifies offline against the root; with another result it does not', async () => {
    const ks = join(dir, 'receipt.db');
    const r = await startRig({ dir, parent: { keystore: ks } });
    rigs.push(r);
    const a = (await rpc(r.socket, 'signer_createKey', {})).result;
    const sig = (await rpc(r.socket, 'personal_sign', ['0x6f6b', a.address])).result as string;
    const res = await rpc(r.socket, 'signer_getReceipt', { result: sig });
    const receipt = parseReceipt(JSON.stringify(res.result));
    expect(verifyReceipt(receipt, parseHex(sig)!, { root: r.ca.trustRoot })).toMatchObject({ valid: true, op: 'personal_sign' });
    const other = parseHex(sig)!;
    other[0]! ^= 1;
    expect(() => verifyReceipt(receipt, other, { root: r.ca.trustRoot })).toThrow(/result/);
    const unknown = await rpc(r.socket, 'signer_getReceipt', { result: `0x${'11'.repeat(65)}` });
    expect(unknown.error).toMatchObject({ code: -32602 });
  });

  it("a key's receipt proves its address: receipt:true on signer_createKey and signer_getReceipt for signer_getKey's answer verify; a host's substituted address does not", async () => {
    const r = await startRig({ dir, parent: { keystore: join(dir, 'key-receipt.db') } });
    rigs.push(r);
    const reply = await httpRequest(r.socket, { method: 'POST', path: '/', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'signer_createKey', params: {}, receipt: true }), headers: { 'content-type': 'application/json' } });
    const made = JSON.parse(reply.body.toString());
    expect(String(reply.headers['x-enclave-signer-receipt'])).toMatch(/^\d+\.[0-9a-f]{64}$/);
    const receipt = parseReceipt(JSON.stringify(made.receipt));
    expect(verifyReceipt(receipt, made.result, { root: r.ca.trustRoot })).toMatchObject({ valid: true, kind: 'key.create', keyId: made.result.keyId });
    // Later, from the store: the same key as signer_getKey serves it, and its receipt looked up by that answer.
    const served = (await rpc(r.socket, 'signer_getKey', { keyId: made.result.keyId })).result;
    expect(verifyReceipt(receipt, served, { root: r.ca.trustRoot }).valid).toBe(true);
    const looked = (await rpc(r.socket, 'signer_getReceipt', { result: served })).result;
    expect(verifyReceipt(parseReceipt(JSON.stringify(looked)), served, { root: r.ca.trustRoot }).valid).toBe(true);
    // The host hands a backend its own deposit address under the key's id: the receipt refuses it,
    // and no record names it.
    const forged = { ...served, address: '0x000000000000000000000000000000000000dEaD' };
    expect(() => verifyReceipt(receipt, forged, { root: r.ca.trustRoot })).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
    expect((await rpc(r.socket, 'signer_getReceipt', { result: forged })).error).toMatchObject({ code: -32602 });
  });

  it("after a restart a key's receipt comes from the store: the host's edited address gets none, the key as the enclave made it gets one that verifies", async () => {
    const ks = join(dir, 'key-receipt-restart.db');
    const r1 = await startRig({ dir, parent: { keystore: ks } });
    const made = (await rpc(r1.socket, 'signer_createKey', { label: 'deposits' })).result;
    await r1.parent.close();
    // The host edits its own store: the key's address is now one the host controls.
    const db = new Database(ks);
    db.prepare('UPDATE keys SET address = ? WHERE key_id = ?').run('0x000000000000000000000000000000000000dEaD', made.keyId);
    db.close();
    const r2 = await startRig({ dir, noEnclave: true, enclave: { ca: r1.ca }, parent: { keystore: ks, enclave: r1.enclaveUri } });
    rigs.push(r2, r1);
    await waitFor(() => r2.parent.state().ready, 10_000, 'ready');
    const served = (await rpc(r2.socket, 'signer_getKey', { keyId: made.keyId })).result;
    expect(served.address).toBe('0x000000000000000000000000000000000000dEaD');
    expect((await rpc(r2.socket, 'signer_getReceipt', { result: served })).error).toMatchObject({ code: -32602, message: expect.stringMatching(/public data/) });
    // The key as the enclave made it (what the backend kept from signer_createKey): its receipt, from the store.
    const looked = (await rpc(r2.socket, 'signer_getReceipt', { result: made })).result;
    const receipt = parseReceipt(JSON.stringify(looked));
    expect(verifyReceipt(receipt, made, { root: r1.ca.trustRoot })).toMatchObject({ valid: true, kind: 'key.create', keyId: made.keyId });
    expect(() => verifyReceipt(receipt, served, { root: r1.ca.trustRoot })).toThrow(expect.objectContaining({ code: 'AUDIT_RECEIPT' }));
  });

  it('inline receipts: the X-Enclave-Signer-Receipt header names the record; receipt:true returns the whole receipt, which verifies', async () => {
    const r = await startRig({ dir, parent: { keystore: join(dir, 'inline.db') } });
    rigs.push(r);
    const a = (await rpc(r.socket, 'signer_createKey', {})).result;
    const reply = await httpRequest(r.socket, { method: 'POST', path: '/', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'personal_sign', params: ['0x6f6b', a.address], receipt: true }), headers: { 'content-type': 'application/json' } });
    const j = JSON.parse(reply.body.toString());
    const header = String(reply.headers['x-enclave-signer-receipt']);
    expect(header).toMatch(/^\d+\.[0-9a-f]{64}$/);
    expect(j.receipt.position).toEqual({ seq: Number(header.split('.')[0]), hash: header.split('.')[1] });
    expect(verifyReceipt(parseReceipt(JSON.stringify(j.receipt)), parseHex(j.result)!, { root: r.ca.trustRoot }).valid).toBe(true);
    // Without the opt-in: the header only.
    const plain = await httpRequest(r.socket, { method: 'POST', path: '/', body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'personal_sign', params: ['0x6f6b', a.address] }), headers: { 'content-type': 'application/json' } });
    expect(JSON.parse(plain.body.toString()).receipt).toBeUndefined();
    expect(String(plain.headers['x-enclave-signer-receipt'])).toMatch(/^\d+\.[0-9a-f]{64}$/);
  });
});
