import { describe, expect, it } from 'vitest';
import { createDevCa } from '../../dev/ca/dev-ca.js';
import { encodeEnvelope, signEnvelope } from '../../common/audit/envelope.js';
import { encodeRecordBody, parseRecord, sha256 } from '../../common/audit/record.js';
import { parseCheckpoint } from '../../common/audit/checkpoint.js';
import { AuditLog } from '../../enclave/audit/log.js';
import { createSimulatedNsm } from '../../enclave/nsm/simulated.js';
import { auditCa, buildChain, decision, digest, openEnclaveLog } from '../../test/audit-chain.js';
import { verifyAuditChain, type AuditAnchor, type AuditVerifyOptions } from './verify.js';
import { generateKeyPairSync } from 'node:crypto';

const opts: AuditVerifyOptions = { root: auditCa.trustRoot };
const raw = (rs: Uint8Array[]) => rs.map((bytes) => ({ bytes }));
const verify = (rs: Uint8Array[], o: AuditVerifyOptions = opts) => verifyAuditChain(raw(rs), o);

/** Two enclaves: the second continues the first's head (a restart). */
async function twoEnclaves(n1: number, n2: number) {
  const a = await buildChain(n1);
  const b = await buildChain(n2, { lastRecord: a.records.at(-1)! });
  return { a, b, records: [...a.records, ...b.records] };
}

function anchorOf(cp: Uint8Array, source = 'checkpoint'): AuditAnchor {
  const c = parseCheckpoint(cp).body;
  return { seq: c.seq, hash: c.head, auditKey: c.auditKey, source };
}

describe('audit verify: good chains', () => {
  it('a chain across a restart verifies: every signature, link, hand-over and attestation binding', async () => {
    const { a, b, records } = await twoEnclaves(20, 10);
    const r = verify(records);
    expect(r.problems).toEqual([]);
    expect(r.valid).toBe(true);
    expect(r.records).toBe(32);
    expect(r.head).toMatchObject({ seq: 31 });
    expect(r.gaps).toEqual([]);
    expect(r.enclaves.map((e) => [e.auditKey, e.handoverSeq, e.firstSeq, e.lastSeq, e.records])).toEqual([
      [Buffer.from(a.log.auditKey).toString('hex'), 0, 0, 20, 21],
      [Buffer.from(b.log.auditKey).toString('hex'), 21, 21, 31, 11],
    ]);
    expect(r.enclaves[0]!.root).toContain('DEV');
  });

  it('policy loads change the hash in force; records must carry it', async () => {
    const log = await openEnclaveLog();
    const rs = [log.handover.bytes, log.append({ kind: 'policy.load', decision: 'done', policyHash: digest('policy v1'), principal: 'admins' }).bytes];
    rs.push(log.append(decision(1)).bytes);
    const r = verify(rs);
    expect(r.valid).toBe(true);
    expect(r.enclaves[0]!.policyHashes).toEqual([null, Buffer.from(digest('policy v1')).toString('hex')]);
  });

  it('a checkpoint at the head verifies; a receipt position inside the chain verifies', async () => {
    const { log, records } = await buildChain(5);
    const r = verify(records, { ...opts, anchors: [anchorOf(log.checkpoint(digest('nonce')))] });
    expect(r.valid).toBe(true);
    expect(r.anchors).toEqual([{ source: 'checkpoint', seq: 5, ok: true }]);
  });
});

describe('audit verify: tampering is caught', () => {
  it('every single-byte flip in a record is caught (all positions of two records, a sample of the hand-over)', async () => {
    const { records } = await buildChain(4);
    const flips: [number, number][] = [];
    for (const idx of [2, 4]) for (let p = 0; p < records[idx]!.length; p++) flips.push([idx, p]);
    // The hand-over is ~5 KB (it carries the attestation document): every 7th byte plus the first and last 200.
    const h = records[0]!.length;
    for (let p = 0; p < h; p++) if (p % 7 === 0 || p < 200 || p >= h - 200) flips.push([0, p]);
    let caught = 0;
    for (const [idx, p] of flips) {
      const copy = records.map((r) => r);
      const t = Uint8Array.from(copy[idx]!);
      t[p] = t[p]! ^ 0x01;
      copy[idx] = t;
      const r = verify(copy);
      if (!r.valid && r.firstBad && r.firstBad.index === idx) caught++;
      else throw new Error(`flip at record ${idx} byte ${p} not caught at that record: ${JSON.stringify(r.firstBad)}`);
    }
    expect(caught).toBe(flips.length);
  });

  it('deletion of any record is caught (the last one against a later checkpoint, as for any tail truncation)', async () => {
    const { log, records } = await buildChain(8);
    const anchors = [anchorOf(log.checkpoint())];
    for (let i = 0; i < records.length; i++) {
      const copy = records.filter((_, j) => j !== i);
      const r = verify(copy, { ...opts, anchors });
      expect(r.valid, `deleting seq ${i}`).toBe(false);
      if (i < records.length - 1) {
        expect(r.firstBad).toMatchObject({ code: 'AUDIT_GAP', seq: i + 1 });
        expect(r.gaps).toEqual([{ from: i, to: i }]);
      } else expect(r.firstBad).toMatchObject({ code: 'AUDIT_TRUNCATED', seq: i });
    }
  });

  it('tail truncation is caught against a later checkpoint', async () => {
    const { log, records } = await buildChain(8);
    const cp = log.checkpoint();
    expect(verify(records.slice(0, 6)).valid).toBe(true); // alone, a cut tail is invisible…
    const r = verify(records.slice(0, 6), { ...opts, anchors: [anchorOf(cp)] }); // …but not against a checkpoint
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_TRUNCATED', seq: 8 });
  });

  it('reordering is caught', async () => {
    const { records } = await buildChain(6);
    const copy = [...records];
    [copy[3], copy[4]] = [copy[4]!, copy[3]!];
    const r = verify(copy);
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_GAP', seq: 4 });
    expect(r.problems.map((p) => p.code)).toContain('AUDIT_ORDER');
  });

  it('splicing records from another enclave is caught (another chain, or another enclave continuing the same head)', async () => {
    const { records } = await buildChain(6);
    const other = await buildChain(6);
    const spliced = [...records.slice(0, 3), other.records[3]!, ...records.slice(4)];
    const r = verify(spliced);
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_LINK', seq: 3 });
    // A fork: two enclaves both continued seq 3; the host shows one branch up to 4 then the other.
    const base = records.slice(0, 4);
    const f1 = await buildChain(2, { lastRecord: base.at(-1)! });
    const f2 = await buildChain(2, { lastRecord: base.at(-1)! });
    const forked = [...base, ...f1.records.slice(0, 2), ...f2.records.slice(2)];
    const rf = verify(forked);
    expect(rf.valid).toBe(false);
    expect(rf.firstBad).toMatchObject({ seq: 6 });
    expect(['AUDIT_LINK', 'AUDIT_UNBOUND_KEY']).toContain(rf.firstBad!.code);
  });

  it('a record signed by a key no attestation binds is caught as AUDIT_UNBOUND_KEY', async () => {
    const { records } = await buildChain(3);
    const last = parseRecord(records.at(-1)!);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const rawKey = new Uint8Array((publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(12));
    const body = { ...decisionBody(last.body.seq + 1, last.hash, rawKey) };
    const forged = signEnvelope(encodeRecordBody(body), privateKey);
    const r = verify([...records, forged]);
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_UNBOUND_KEY', seq: 4 });
  });

  it('a hand-over whose attestation does not verify or binds another key is caught, naming the seq', async () => {
    const { records } = await buildChain(2);
    // Wrong root: the dev CA documents do not chain to AWS.
    const aws = verifyAuditChain(raw(records), {});
    expect(aws.valid).toBe(false);
    expect(aws.firstBad).toMatchObject({ code: 'AUDIT_ATTESTATION', seq: 0 });
    expect(aws.firstBad!.message).toContain('ATTEST_UNTRUSTED_ROOT');
    // Another CA entirely.
    expect(verifyAuditChain(raw(records), { root: createDevCa().trustRoot }).firstBad).toMatchObject({ code: 'AUDIT_ATTESTATION', seq: 0 });
    // A hand-over whose document binds some other audit key (a real document, another enclave's).
    const nsm = createSimulatedNsm({ ca: auditCa });
    const other = await AuditLog.open({ nsm });
    const evil = await AuditLog.open({ nsm: { attest: async () => other.attestation } });
    const r = verify([evil.handover.bytes, evil.append(decision(0)).bytes]);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_ATTESTATION', seq: 0 });
    expect(r.firstBad!.message).toContain('binds audit key');
  });

  it('a manifest that does not match the enclave image fails the attestation binding', async () => {
    const { records } = await buildChain(1);
    const r = verify(records, { ...opts, manifest: { signed: { not: 'a manifest' }, trustedKeys: ['00'.repeat(32)] } });
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_ATTESTATION', seq: 0 });
  });

  it('a record under a policy hash other than the one in force is caught', async () => {
    const log = await openEnclaveLog();
    const rs = [log.handover.bytes, log.append(decision(1)).bytes];
    const last = parseRecord(rs[1]!);
    // Re-sign is impossible without the key; so build the lie with a policy load the host withheld:
    const withheld = log.append({ kind: 'policy.load', decision: 'done', policyHash: digest('lax policy') });
    const after = log.append(decision(1));
    const r = verify([...rs, after.bytes]);
    expect(r.valid).toBe(false);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_GAP', seq: withheld.seq + 1 });
    expect(r.problems.map((p) => p.code)).toContain('AUDIT_POLICY');
    expect(last.body.policyHash).toBeNull();
  });

  it('corrupt bytes, unknown versions and empty input give typed problems naming the seq, never a throw', async () => {
    const { records } = await buildChain(3);
    const r = verifyAuditChain([{ bytes: records[0]! }, { bytes: Uint8Array.of(1, 2, 3), storedSeq: 1 }, { bytes: records[2]! }, { bytes: records[3]! }], opts);
    expect(r.firstBad).toMatchObject({ code: 'AUDIT_MALFORMED', seq: 1, index: 1 });
    expect(verifyAuditChain([], opts).firstBad).toMatchObject({ code: 'AUDIT_EMPTY' });
    const throwing = (function* () {
      yield { bytes: records[0]! };
      throw new Error('disk I/O error');
    })();
    expect(verifyAuditChain(throwing, opts).firstBad).toMatchObject({ code: 'AUDIT_SOURCE', seq: 1 });
    // Not even bytes.
    expect(verifyAuditChain([{ bytes: 'x' as unknown as Uint8Array }], opts).firstBad).toMatchObject({ code: 'AUDIT_MALFORMED', index: 0 });
    // An envelope whose signature is another record's.
    const p1 = parseRecord(records[1]!);
    const p2 = parseRecord(records[2]!);
    const swapped = encodeEnvelope(p2.payload, p1.signature);
    expect(verify([records[0]!, records[1]!, swapped]).firstBad).toMatchObject({ code: 'AUDIT_SIGNATURE', seq: 2 });
  });
});

describe('enclave audit log', () => {
  it('no plaintext key byte in any record: neither the audit key seed nor a signing key appear', async () => {
    const seed = new Uint8Array(32).map((_, i) => 0xa0 + i);
    const signingSecret = digest('a secp256k1 secret that the enclave signs with');
    const log = await AuditLog.open({ nsm: createSimulatedNsm({ ca: auditCa }), seed: Uint8Array.from(seed) });
    const rs = [log.handover.bytes];
    // The producer's API takes digests and ids only; the worst a caller can do is pass a digest OF the secret.
    for (let i = 0; i < 50; i++) rs.push(log.append({ ...decision(i) }).bytes);
    rs.push(log.checkpoint());
    const hay = Buffer.concat(rs);
    for (const secret of [seed, signingSecret]) {
      for (let off = 0; off + 8 <= secret.length; off++) expect(hay.indexOf(Buffer.from(secret.subarray(off, off + 8)))).toBe(-1);
    }
    expect(JSON.stringify(Object.keys(log))).not.toMatch(/seed|private|secret/i);
  });

  it('continues the head the parent shows, and refuses a head that is not a validly signed record', async () => {
    const { records } = await buildChain(2);
    const next = await openEnclaveLog({ lastRecord: records.at(-1)! });
    expect(next.handover.seq).toBe(3);
    expect(parseRecord(next.handover.bytes).body.prevAuditKey).toEqual(parseRecord(records[0]!).body.auditKey);
    const bad = Uint8Array.from(records.at(-1)!);
    bad[bad.length - 1]! ^= 1;
    await expect(openEnclaveLog({ lastRecord: bad })).rejects.toMatchObject({ code: 'AUDIT_SIGNATURE' });
    await expect(openEnclaveLog({ lastRecord: Uint8Array.of(0) })).rejects.toMatchObject({ code: 'AUDIT_MALFORMED' });
  });

  it('after close nothing can be recorded or checkpointed; time never goes backwards', async () => {
    let t = 1000;
    const log = await openEnclaveLog({ now: () => t });
    t = 500; // the clock jumps back
    const r = parseRecord(log.append(decision(0)).bytes);
    expect(r.body.time).toBe(1000);
    log.close();
    expect(() => log.append(decision(0))).toThrow(expect.objectContaining({ code: 'AUDIT_KEY_CLOSED' }));
    expect(() => log.checkpoint()).toThrow(expect.objectContaining({ code: 'AUDIT_KEY_CLOSED' }));
  });

  it('attest() binds the audit key in user_data with the verifier\'s nonce', async () => {
    const { verifyAttestation } = await import('../verify.js');
    const log = await openEnclaveLog({ policyHash: digest('p') });
    const nonce = digest('nonce');
    const v = verifyAttestation(await log.attest(nonce), { root: auditCa.trustRoot, expectedNonce: nonce, expectedUserData: log.binding });
    expect(v.checks).toContain('user_data');
  });
});

function decisionBody(seq: number, prev: Uint8Array, auditKey: Uint8Array) {
  return {
    version: 1 as const,
    seq,
    prev,
    time: Date.now(),
    auditKey,
    kind: 'sign' as const,
    decision: 'allowed' as const,
    principal: 'host',
    op: 'personal_sign',
    keyId: 'key-0',
    requestDigest: sha256(Uint8Array.of(1)),
    rule: null,
    policyHash: null,
    resultDigest: sha256(Uint8Array.of(2)),
    prevAuditKey: null,
    attestation: null,
  };
}

describe('audit verify: hostile bytes', () => {
  it('random mutations (flips, truncations, insertions, splices) never throw and never verify', async () => {
    const fc = await import('fast-check');
    const { records } = await buildChain(3);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: records.length - 1 }),
        fc.oneof(
          fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
          fc.record({ op: fc.constant('insert' as const), at: fc.nat(), b: fc.integer({ min: 0, max: 255 }) }),
          fc.record({ op: fc.constant('splice' as const), at: fc.nat(), junk: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
        ),
        (idx, m) => {
          const r = records[idx]!;
          const at = m.at % r.length;
          let t: Uint8Array;
          if (m.op === 'flip') {
            t = Uint8Array.from(r);
            t[at] = t[at]! ^ (1 << m.bit);
          } else if (m.op === 'cut') t = r.subarray(0, at);
          else if (m.op === 'insert') t = Uint8Array.from([...r.subarray(0, at), m.b, ...r.subarray(at)]);
          else t = Uint8Array.from([...r.subarray(0, at), ...m.junk, ...r.subarray(at + m.junk.length)]);
          if (Buffer.from(t).equals(Buffer.from(r))) return;
          const copy = [...records];
          copy[idx] = t;
          const rep = verify(copy);
          expect(rep.valid).toBe(false);
          expect(rep.firstBad!.index).toBe(idx);
          expect(rep.firstBad!.code).toMatch(/^AUDIT_/);
        },
      ),
      { numRuns: 400 },
    );
  });
});
