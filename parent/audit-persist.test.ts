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
import { createAuditPersister, GROUP_TARGET } from './audit-persist.js';
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

  it('an answer that was only late, arriving while its record is fetched back, is no gap; the persister never steps back', async () => {
    // The CI soak's parent log: "GAP: records seq 16414..16414 were never received", then
    // "record seq 16415 was fetched", with a chain that verified. The answer for 16414 came after
    // gapFetchMs, during the fetch; fillGap then judged on what held before it (a gap ending at
    // the lowest pending seq), logged a false GAP and set `next` back below the stored head.
    const path = join(dir, 'late.db');
    const ks = await openKeystore(path);
    const log = await AuditLog.open({ nsm });
    await ks.appendAuditRecords([log.handover.bytes]);
    const lines: string[] = [];
    const p = createAuditPersister({ keystore: ks, log: (l) => lines.push(l), gapFetchMs: 10 });
    const [r1, r2, r3] = [sign(log, 1), sign(log, 2), sign(log, 3)];
    let lateAnswer: Promise<unknown> | undefined;
    let fetched!: () => void;
    const fetchReturned = new Promise<void>((r) => (fetched = r));
    p.setFetch(async (from) => {
      // The late answer for seq 1 arrives while the fetch is on its way; the enclave still holds all three.
      lateAnswer ??= p.persist([r1]);
      await lateAnswer;
      fetched();
      return [r1, r2, r3].slice(from - 1);
    });
    await Promise.all([p.persist([r2]), p.persist([r3])]);
    await fetchReturned;
    // fillGap resumes from its fetch in microtasks; a macrotask turn later it has decided.
    await new Promise<void>((r) => setImmediate(r));
    expect(lines.filter((l) => /GAP/.test(l))).toEqual([]);
    expect(p.nextSeq).toBe(4);
    const r4 = sign(log, 4);
    p.setFetch(async () => {
      throw new Error('nothing is missing: no fetch expected');
    });
    await p.persist([r4]);
    expect(await seqs(path)).toEqual([0, 1, 2, 3, 4]);
    expect(lines.filter((l) => /could not fetch/.test(l))).toEqual([]);
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

  it('a key change whose record was fetched back and is being written when its answer arrives still runs (the key is stored, its result returned)', async () => {
    // The soak's "signer_createKey: internal error": the answer to key.create waited on the fleet's
    // sealed-state store past gapFetchMs, its record was fetched back and batched as a plain record,
    // and the answer attached to it while that batch was being written. The batch's completion
    // settled the request without running the change: no key stored, and `undefined` returned.
    const path = join(dir, 'fetched-change.db');
    const ks = await openKeystore(path);
    const log = await AuditLog.open({ nsm });
    await ks.appendAuditRecords([log.handover.bytes]);
    let writing!: () => void;
    const started = new Promise<void>((r) => (writing = r));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const store = {
      ...ks,
      appendAuditRecords: async (r: readonly Uint8Array[]) => {
        writing();
        await held;
        return ks.appendAuditRecords(r);
      },
    };
    const p = createAuditPersister({ keystore: store, log: () => {}, gapFetchMs: 10 });
    const created = log.append({ kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: 'k1' }).bytes;
    const later = p.persist([sign(log, 2)]);
    p.setFetch(async (from) => (from === 1 ? [created] : []));
    await started; // the fetched record and seq 2 are in the write now
    let ran = 0;
    const key = p.persist([created], async (recs) => {
      ran++;
      await ks.appendAuditRecords(recs);
      return 'stored';
    });
    release();
    expect(await key).toBe('stored');
    await later;
    expect(ran).toBe(1);
    expect(await seqs(path)).toEqual([0, 1, 2]);
    p.close();
    await ks.close();
  });

  describe('group commit', () => {
    const turn = () => new Promise<void>((r) => setImmediate(r));
    /** A real keystore that records how many records each audit transaction carried. */
    const counted = async (name: string) => {
      const path = join(dir, name);
      const ks = await openKeystore(path);
      const log = await AuditLog.open({ nsm });
      await ks.appendAuditRecords([log.handover.bytes]);
      const groups: number[] = [];
      let broken = false;
      const store = {
        ...ks,
        appendAuditRecords: (r: readonly Uint8Array[]) => {
          groups.push(r.length);
          return broken ? Promise.reject(new Error('disk full')) : ks.appendAuditRecords(r);
        },
      };
      return { path, ks, log, groups, store, breakIt: () => (broken = true) };
    };

    it('while enclave calls are still to answer, their records join one transaction; nothing is released before it is durable', async () => {
      const { path, ks, log, groups, store } = await counted('group.db');
      let onTheirWay = 3;
      // A delay no test waits out: only the last record arriving can start the write.
      const p = createAuditPersister({ keystore: store, log: () => {}, awaiting: () => onTheirWay, commitDelayMs: 600_000 });
      const released: number[] = [];
      const waits: Promise<unknown>[] = [];
      for (let n = 1; n <= 3; n++) {
        onTheirWay--;
        waits.push(p.persist([sign(log, n)]).then(() => released.push(n)));
        await turn();
        await turn();
        if (n < 3) {
          expect(released).toEqual([]); // waiting for the others: not durable, so not released
          expect(await seqs(path)).toEqual([0]);
        }
      }
      await Promise.all(waits);
      expect(groups).toEqual([3]);
      expect(released.sort()).toEqual([1, 2, 3]);
      expect(await seqs(path)).toEqual([0, 1, 2, 3]);
      p.close();
      await ks.close();
    });

    it('with nothing else on its way a record is written at once, and a call that never answers delays the write by commitDelayMs at most', async () => {
      const { path, ks, log, groups, store } = await counted('alone.db');
      let onTheirWay = 0;
      const p = createAuditPersister({ keystore: store, log: () => {}, awaiting: () => onTheirWay, commitDelayMs: 600_000 });
      await p.persist([sign(log, 1)]); // would hang for 10 minutes if it waited
      const q = createAuditPersister({ keystore: store, log: () => {}, awaiting: () => onTheirWay, commitDelayMs: 20 });
      await q.resync();
      onTheirWay = 5; // calls that never answer
      await q.persist([sign(log, 2)]);
      expect(groups).toEqual([1, 1]);
      expect(await seqs(path)).toEqual([0, 1, 2]);
      p.close();
      q.close();
      await ks.close();
    });

    it(`a group that reaches ${GROUP_TARGET} records is written without waiting for the delay or for calls still on their way`, async () => {
      const { path, ks, log, groups, store } = await counted('target.db');
      const onTheirWay = 100; // many calls still to answer, and a delay no test waits out
      const p = createAuditPersister({ keystore: store, log: () => {}, awaiting: () => onTheirWay, commitDelayMs: 600_000 });
      const waits: Promise<unknown>[] = [];
      for (let n = 1; n < GROUP_TARGET; n++) waits.push(p.persist([sign(log, n)]));
      await turn();
      await turn();
      expect(groups).toEqual([]); // one short: still waiting for more
      waits.push(p.persist([sign(log, GROUP_TARGET)]));
      await Promise.all(waits); // the last one starts the write
      expect(groups).toEqual([GROUP_TARGET]);
      expect(await seqs(path)).toEqual(Array.from({ length: GROUP_TARGET + 1 }, (_, i) => i));
      p.close();
      await ks.close();
    });

    it('a group whose write fails withholds every result in it (fail closed)', async () => {
      const { path, ks, log, store, breakIt } = await counted('group-fail.db');
      let onTheirWay = 2;
      const p = createAuditPersister({ keystore: store, log: () => {}, awaiting: () => onTheirWay, commitDelayMs: 600_000 });
      breakIt();
      onTheirWay--;
      const first = p.persist([sign(log, 1)]);
      await turn();
      onTheirWay--;
      const second = p.persist([sign(log, 2)]);
      await expect(first).rejects.toMatchObject({ code: 'PARENT_AUDIT_UNAVAILABLE' });
      await expect(second).rejects.toMatchObject({ code: 'PARENT_AUDIT_UNAVAILABLE' });
      expect(await seqs(path)).toEqual([0]);
      p.close();
      await ks.close();
    });
  });
});
