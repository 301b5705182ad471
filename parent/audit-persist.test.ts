/**
 * The parent's ordered, fail-closed audit persistence: out-of-order arrival,
 * lost answers fetched back, a new enclave life dropping records that can no
 * longer be written without a fork, and a failed write withholding results.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecord } from '../common/audit/record.js';
import { AuditLog } from '../enclave/audit/log.js';
import { createAuditPersister } from './audit-persist.js';
import { openKeystore } from './keystore.js';
import { collect } from '../test/async.js';

const dir = mkdtempSync(join(tmpdir(), 'es-audit-persist-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const nsm = { attest: async () => Uint8Array.from([0xde, 0xad, 0xbe, 0xef]) };
const digest = (n: number) => new Uint8Array(32).fill(n);
const sign = (log: AuditLog, n: number) =>
  log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'personal_sign', keyId: 'k', requestDigest: digest(n), resultDigest: digest(n + 1) }).bytes;
const seqs = async (path: string) => {
  const ks = await openKeystore(path, { readonly: true });
  const out = (await collect(ks.iterateAuditRecords())).map((r) => r.seq);
  await ks.close();
  return out;
};

describe('audit persistence', () => {
  it('records arriving out of order are written in seq order; a result waits for every earlier seq', async () => {
    const path = join(dir, 'order.db');
    const ks = await openKeystore(path);
    const log = await AuditLog.open({ nsm });
    await ks.appendAuditRecords([log.handover.bytes]);
    const p = createAuditPersister({ keystore: ks, log: () => {} });
    const [r1, r2, r3] = [sign(log, 1), sign(log, 2), sign(log, 3)];
    let third = false;
    const w3 = p.persist([r3]).then(() => (third = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(third).toBe(false); // seq 3 is not released before 1 and 2 are durable
    await Promise.all([p.persist([r2]), p.persist([r1]), w3]);
    expect(await seqs(path)).toEqual([0, 1, 2, 3]);
    p.close();
    await ks.close();
  });

  it('a record whose answer never arrived is fetched back from the enclave; one it no longer holds is a logged gap', async () => {
    const path = join(dir, 'gap.db');
    const ks = await openKeystore(path);
    const log = await AuditLog.open({ nsm });
    await ks.appendAuditRecords([log.handover.bytes]);
    const lines: string[] = [];
    const p = createAuditPersister({ keystore: ks, log: (l) => lines.push(l), gapFetchMs: 10 });
    const lost = sign(log, 1);
    const r2 = sign(log, 2);
    p.setFetch(async (from) => (from === 1 ? [lost] : []));
    await p.persist([r2]);
    expect(await seqs(path)).toEqual([0, 1, 2]);
    expect(lines.join('\n')).toMatch(/record seq 1 was fetched from the enclave/);
    sign(log, 3); // lost for good
    const r4 = sign(log, 4);
    p.setFetch(async () => []);
    await p.persist([r4]);
    expect(await seqs(path)).toEqual([0, 1, 2, 4]);
    expect(lines.join('\n')).toMatch(/GAP: records seq 3\.\.3/);
    p.close();
    await ks.close();
  });

  it('a write that fails withholds every waiting result (PARENT_AUDIT_UNAVAILABLE); the records are retried and nothing is skipped', async () => {
    const path = join(dir, 'fail.db');
    const ks = await openKeystore(path);
    const log = await AuditLog.open({ nsm });
    await ks.appendAuditRecords([log.handover.bytes]);
    let broken = true;
    const flaky = { ...ks, appendAuditRecords: (r: readonly Uint8Array[]) => (broken ? (() => { throw new Error('disk full'); })() : ks.appendAuditRecords(r)) };
    const p = createAuditPersister({ keystore: flaky, log: () => {} });
    await expect(p.persist([sign(log, 1)])).rejects.toMatchObject({ code: 'PARENT_AUDIT_UNAVAILABLE', message: expect.stringMatching(/audit record could not be stored/) });
    broken = false;
    await p.persist([sign(log, 2)]);
    expect(await seqs(path)).toEqual([0, 1, 2]);
    p.close();
    await ks.close();
  });

  it('after a new enclave life, records of the old audit key still waiting for a lost seq are dropped, not written as a fork', async () => {
    const path = join(dir, 'restart.db');
    const ks = await openKeystore(path);
    const old = await AuditLog.open({ nsm });
    await ks.appendAuditRecords([old.handover.bytes]);
    const p = createAuditPersister({ keystore: ks, log: () => {}, gapFetchMs: 60_000 });
    sign(old, 1); // lost with the old enclave
    const waiting = p.persist([sign(old, 2)]);
    const fresh = await AuditLog.open({ nsm, lastRecord: (await ks.auditHead())! });
    await ks.appendAuditRecords([fresh.handover.bytes]);
    p.resync(fresh.auditKey);
    await expect(waiting).rejects.toMatchObject({ code: 'PARENT_AUDIT_UNAVAILABLE' });
    await p.persist([sign(fresh, 3)]);
    const ro = await openKeystore(path, { readonly: true });
    expect((await collect(ro.iterateAuditRecords())).map((r) => parseRecord(r.record).body.kind)).toEqual(['handover', 'handover', 'sign']);
    await ro.close();
    p.close();
    await ks.close();
  });
});
