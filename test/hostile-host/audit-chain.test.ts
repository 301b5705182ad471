/**
 * The host as the adversary of the audit chain: it holds the database and
 * carries every message. Each test plays one move and shows what the
 * verifier (or the keystore) says. The chain core is new in this branch; on
 * the base commit none of these modules exist, so every test here fails there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCheckpoint } from '../../common/audit/checkpoint.js';
import { verifyAuditChain, type AuditAnchor } from '../../attestation/audit/verify.js';
import { openKeystore } from '../../parent/keystore.js';
import { auditCa, buildChain } from '../audit-chain.js';
import { collect } from '../async.js';

const dir = mkdtempSync(join(tmpdir(), 'es-hh-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = auditCa.trustRoot;
const anchor = (cp: Uint8Array): AuditAnchor => {
  const b = parseCheckpoint(cp).body;
  return { seq: b.seq, hash: b.head, auditKey: b.auditKey, source: 'published checkpoint' };
};
const stored = async (path: string) => {
  const ks = await openKeystore(path, { readonly: true });
  const out = (await collect(ks.iterateAuditRecords())).map((r) => ({ bytes: r.record, storedSeq: r.seq }));
  await ks.close();
  return out;
};

describe('hostile host vs the audit chain', () => {
  it('replay: shown an old head, a restarted enclave forks; the keystore refuses to overwrite, and a rewritten DB is caught against a checkpoint', async () => {
    const a = await buildChain(6);
    const cp = a.log.checkpoint(); // published by the custodian before the host acts
    const path = join(dir, 'replay.db');
    const ks = await openKeystore(path);
    await ks.appendAuditRecords(a.records);
    // The host restarts the enclave and shows it seq 3 as the head.
    const b = await buildChain(2, { lastRecord: a.records[3]! });
    await expect(ks.appendAuditRecords([b.log.handover.bytes])).rejects.toMatchObject({ code: 'KEYSTORE_AUDIT_CONFLICT' });
    await ks.close();
    // The host rewrites the database to the fork instead.
    const db = new Database(path);
    db.prepare('DELETE FROM audit_records WHERE seq > 3').run();
    db.close();
    const ks2 = await openKeystore(path);
    await ks2.appendAuditRecords(b.records);
    await ks2.close();
    expect(verifyAuditChain((await stored(path)), { root }).valid).toBe(true); // alone, the fork looks fine…
    const r = verifyAuditChain((await stored(path)), { root, anchors: [anchor(cp)] }); // …not against the checkpoint
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ seq: 6, code: 'AUDIT_LINK' });
  });

  it('withholding: a record the host does not store leaves a gap the verifier names', async () => {
    const a = await buildChain(5);
    const shown = a.records.filter((_, i) => i !== 2);
    const r = verifyAuditChain(shown.map((bytes) => ({ bytes })), { root });
    expect(r).toMatchObject({ valid: false, gaps: [{ from: 2, to: 2 }], firstBad: { seq: 3, code: 'AUDIT_GAP' } });
  });

  it('own key: records signed by an enclave the host runs under another root are not accepted', async () => {
    const { createDevCa } = await import('../../dev/ca/dev-ca.js');
    const a = await buildChain(2);
    const rogue = await buildChain(2, { lastRecord: a.records.at(-1)!, ca: createDevCa() });
    const r = verifyAuditChain([...a.records, ...rogue.records].map((bytes) => ({ bytes })), { root });
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ seq: 3, code: 'AUDIT_ATTESTATION' });
    expect(r.problems.some((p) => p.code === 'AUDIT_UNBOUND_KEY' && p.seq === 4)).toBe(true);
  });

  it('fresh start: a second chain at seq 0 cannot be passed off as the first one against its checkpoint', async () => {
    const a = await buildChain(4);
    const cp = a.log.checkpoint();
    const b = await buildChain(6);
    const r = verifyAuditChain(b.records.map((bytes) => ({ bytes })), { root, anchors: [anchor(cp)] });
    expect(r.valid).toBe(false);
    expect(r.problems.map((p) => p.code)).toEqual(expect.arrayContaining(['AUDIT_LINK', 'AUDIT_UNBOUND_KEY']));
  });
});
