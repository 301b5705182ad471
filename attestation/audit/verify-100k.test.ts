/**
 * Scale: a chain of 100,000 records (two enclaves, a restart at 60,000) is
 * produced by the real AuditLog and verified in full — every Ed25519
 * signature, every link. Prints the times (no timing assertion).
 */
import { describe, expect, it } from 'vitest';
import { auditCa, decision, openEnclaveLog } from '../../test/audit-chain.js';
import { AuditChainVerifier } from './verify.js';

/** Lets vitest's worker RPC breathe during long CPU-bound loops. */
const breathe = (): Promise<void> => new Promise((r) => setImmediate(r));

const N = 100_000;

describe('audit verify at scale', () => {
  it(
    'verifies a 100k-record chain; one flipped byte deep inside is found at its seq',
    async () => {
      const t0 = performance.now();
      const records: Uint8Array[] = [];
      let log = await openEnclaveLog();
      records.push(log.handover.bytes);
      while (records.length < N) {
        if (records.length === 60_000) {
          log.close();
          log = await openEnclaveLog({ lastRecord: records.at(-1)! });
          records.push(log.handover.bytes);
          continue;
        }
        records.push(log.append(decision(records.length)).bytes);
        if (records.length % 2000 === 0) await breathe();
      }
      const t1 = performance.now();
      // A byte flipped deep inside one record must be found at exactly that record.
      const bad = Uint8Array.from(records[60_500]!);
      bad[40]! ^= 0x80;
      const v = new AuditChainVerifier({ root: auditCa.trustRoot });
      const vBad = new AuditChainVerifier({ root: auditCa.trustRoot });
      for (let i = 0; i < records.length; i++) {
        v.add({ bytes: records[i]! });
        if (i >= 60_000 && i < 61_000) vBad.add({ bytes: i === 60_500 ? bad : records[i]! });
        if (i % 2000 === 0) await breathe();
      }
      const r = v.report();
      const t2 = performance.now();
      console.log(`audit 100k: produced in ${((t1 - t0) / 1000).toFixed(1)} s, verified (plus 1k in a second verifier) in ${((t2 - t1) / 1000).toFixed(1)} s`);
      expect(r.problems).toEqual([]);
      expect(r.valid).toBe(true);
      expect(r.records).toBe(N);
      expect(r.head?.seq).toBe(N - 1);
      expect(r.enclaves.map((e) => e.records)).toEqual([60_000, 40_000]);
      // The second verifier reads from the restart's hand-over (its index 0 = seq 60,000), so it
      // first reports the missing prefix, then the flipped record.
      const r2 = vBad.report();
      expect(r2.valid).toBe(false);
      expect(r2.problems.find((p) => p.index === 500)).toMatchObject({ seq: 60_500 });
    },
    600_000,
  );
});
