/**
 * Mutation test on real documents: thousands of byte flips, truncations,
 * insertions, deletions and re-encodings. None may verify, and every failure
 * must be a typed AttestationError — never another exception, never a pass.
 *
 * The only byte-level change that legitimately keeps a document valid is
 * wrapping it in COSE tag 18 (0xd2 prefix), which the verifier accepts by
 * design; the insertion generator skips exactly that case.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, IndefiniteMap, type CborValue } from '../common/cbor.js';
import { attestationFixtures } from '../test/fixtures.js';
import { AttestationError } from './errors.js';
import { verifyAttestation } from './verify.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);
const SEED = Number(process.env.MUTATION_SEED ?? 0x5eed1234);

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

type Mutant = { kind: string; bytes: Uint8Array };

function* mutants(doc: Uint8Array, rnd: () => number, n: number): Generator<Mutant> {
  const int = (k: number) => Math.floor(rnd() * k);
  const top = decodeCbor(doc) as CborValue[];
  const payload = decodeCbor(top[2] as Uint8Array) as Map<string, CborValue>;
  const reencodings: (() => Uint8Array)[] = [
    () => encodeCbor([top[0]!, top[1]!, encodeCbor(new IndefiniteMap(payload)), top[3]!]),
    () => encodeCbor([top[0]!, top[1]!, encodeCbor(new Map([...payload].reverse())), top[3]!]),
    () => {
      const m = new Map(payload);
      m.set('pcrs', new IndefiniteMap(m.get('pcrs') as Map<number, CborValue>));
      return encodeCbor([top[0]!, top[1]!, encodeCbor(m), top[3]!]);
    },
    () => {
      // PCR index 0 written non-minimally (0x18 0x00): same value, non-canonical bytes
      const enc = Buffer.from(encodeCbor(payload));
      const i = enc.indexOf(Buffer.of(0x00, 0x58, 0x30));
      return encodeCbor([top[0]!, top[1]!, Buffer.concat([enc.subarray(0, i), Buffer.of(0x18), enc.subarray(i)]), top[3]!]);
    },
    () => encodeCbor([top[0]!, top[1]!, Buffer.concat([top[2] as Uint8Array, Buffer.of(0)]), top[3]!]),
    () => encodeCbor([top[0]!, new Map([[1, -35]]), top[2]!, top[3]!]),
    () => encodeCbor([encodeCbor(new IndefiniteMap([[1, -35]])), top[1]!, top[2]!, top[3]!]),
    () => encodeCbor([top[0]!, top[1]!, top[2]!, Buffer.concat([(top[3] as Uint8Array).subarray(48), (top[3] as Uint8Array).subarray(0, 48)])]),
  ];
  for (let i = 0; i < n; i++) {
    const r = i % 10;
    const b = Uint8Array.from(doc);
    if (r < 5) {
      const pos = int(b.length);
      b[pos]! ^= 1 + int(255);
      yield { kind: 'flip', bytes: b };
    } else if (r === 5) {
      yield { kind: 'truncate', bytes: doc.subarray(0, int(doc.length)) };
    } else if (r === 6) {
      const pos = int(doc.length + 1);
      let byte = int(256);
      if (pos === 0 && byte === 0xd2) byte = 0xd3; // tag 18 wrapping is a valid encoding, see above
      yield { kind: 'insert', bytes: Buffer.concat([doc.subarray(0, pos), Buffer.of(byte), doc.subarray(pos)]) };
    } else if (r === 7) {
      const pos = int(doc.length);
      const len = 1 + int(16);
      yield { kind: 'delete', bytes: Buffer.concat([doc.subarray(0, pos), doc.subarray(pos + len)]) };
    } else if (r === 8) {
      // copy a random span over another position (splices certificate/PCR fragments)
      const from = int(doc.length - 48);
      const to = int(doc.length - 48);
      b.set(doc.subarray(from, from + 1 + int(48)), to);
      if (Buffer.compare(b, doc) === 0) b[to]! ^= 0x80;
      yield { kind: 'splice', bytes: b };
    } else {
      yield { kind: 'reencode', bytes: reencodings[int(reencodings.length)]!() };
    }
  }
}

describe('mutations of real documents', () => {
  const docs = attestationFixtures().filter((f) => !f.knownBad);
  const PER_DOC = Math.ceil(6000 / docs.length);

  it(`none of ${PER_DOC * docs.length} mutants verifies and every failure is typed (seed ${SEED})`, () => {
    const rnd = prng(SEED);
    const byKind = new Map<string, number>();
    const byCode = new Map<string, number>();
    let total = 0;
    for (const f of docs) {
      // Sanity: the unmutated document does verify under the same options.
      const opts = { at: new Date(f.sidecar.timestamp_raw), allowDebug: true };
      verifyAttestation(f.bytes, opts);
      for (const m of mutants(f.bytes, rnd, PER_DOC)) {
        total++;
        if (Buffer.compare(Buffer.from(m.bytes), Buffer.from(f.bytes)) === 0) throw new Error(`generator bug: ${m.kind} mutant equals the original`);
        byKind.set(m.kind, (byKind.get(m.kind) ?? 0) + 1);
        let passed = false;
        try {
          verifyAttestation(m.bytes, opts);
          passed = true;
        } catch (e) {
          if (!(e instanceof AttestationError)) {
            throw new Error(`untyped ${String(e)} from a ${m.kind} mutant of ${f.name} (${m.bytes.length} bytes, sha256 ${sha(m.bytes)})`);
          }
          byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
        }
        if (passed) throw new Error(`a ${m.kind} mutant of ${f.name} verified (${m.bytes.length} bytes, sha256 ${sha(m.bytes)})`);
      }
    }
    expect(total).toBeGreaterThanOrEqual(5000);
    for (const k of ['flip', 'truncate', 'insert', 'delete', 'splice', 'reencode']) expect(byKind.get(k)).toBeGreaterThan(100);
    // The failures spread over several checks, not one catch-all.
    expect(byCode.size).toBeGreaterThanOrEqual(4);
    console.log('mutants by kind', Object.fromEntries(byKind), 'failures by code', Object.fromEntries(byCode));
  });
});
