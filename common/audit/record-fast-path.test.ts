/**
 * The record payload's fast path (decodeRecordBody) against the generic path it short-cuts
 * (decodeRecordBodyGeneric: any CBOR, validation, re-encoding). For every input both must
 * agree: the same body, or the same error code and message. The inputs are real payloads (a
 * hand-over with its attestation document, every decision kind) and every way we could think of
 * to bend them: each bit flipped, each byte set to each of a set of values, every truncation,
 * extra bytes, and hand-made aliases (non-minimal integers and lengths, floats, indefinite
 * strings, a BOM, integers past 2^53).
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildChain } from '../../test/audit-chain.js';
import { encodeCbor, type CborValue } from '../cbor.js';
import { parseEnvelope } from './envelope.js';
import { decodeRecordBody, decodeRecordBodyGeneric, encodeRecordBody, encodeViaMap, type AuditRecordBody } from './record.js';

type Outcome = { ok: unknown } | { code: string; message: string };

function outcome(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    const err = e as { code?: string; message: string };
    if (!err.code?.startsWith('AUDIT_')) expect(err.code, `untyped error: ${err.message}`).toMatch(/^AUDIT_/);
    return { code: err.code!, message: err.message };
  }
}

/**
 * The two decoders' outcomes on one payload are equal. Compared with node's deep equality first and
 * handed to expect() only when they differ (for its diff): the sweeps below make ~10^5 comparisons,
 * and expect().toEqual on each took most of this file's time (28 of 35 s).
 */
function agree(payload: Uint8Array, what: string): boolean {
  const fast = outcome(() => decodeRecordBody(payload));
  const generic = outcome(() => decodeRecordBodyGeneric(payload));
  if (!isDeepStrictEqual(fast, generic)) expect(fast, what).toEqual(generic);
  return 'ok' in fast;
}

const payloads = async () => {
  const { log, records } = await buildChain(12);
  log.close();
  return records.map((r) => parseEnvelope(r).payload);
};

/** Payload map with one value replaced by raw CBOR bytes (to build aliases the encoder never makes). */
function withRaw(payload: Uint8Array, key: number, raw: Uint8Array): Uint8Array {
  const body = decodeRecordBodyGeneric(payload) as unknown as Record<string, CborValue>;
  const FIELDS = ['version', 'type', 'seq', 'prev', 'time', 'auditKey', 'kind', 'decision', 'principal', 'op', 'keyId', 'requestDigest', 'rule', 'policyHash', 'resultDigest', 'prevAuditKey', 'attestation'];
  const parts: Uint8Array[] = [Uint8Array.of(0xb1)];
  for (let i = 0; i < FIELDS.length; i++) {
    parts.push(Uint8Array.of(i));
    if (i === key) parts.push(raw);
    else parts.push(encodeCbor((i === 1 ? 'record' : body[FIELDS[i]!]) as CborValue));
  }
  return Uint8Array.from(Buffer.concat(parts));
}

describe('audit record fast path = generic path', () => {
  it('accepts every real payload with the same body (hand-over with attestation, every kind)', async () => {
    const ps = await payloads();
    expect(ps[0]!.length).toBeGreaterThan(1000); // the hand-over's attestation: a 2-byte length
    for (const [i, p] of ps.entries()) expect(agree(p, `record ${i}`)).toBe(true);
  });

  it('the in-place encoder writes what the general encoder writes, at every head width', async () => {
    const bodies = (await payloads()).map((p) => decodeRecordBodyGeneric(p));
    for (const b of bodies) expect(Buffer.from(encodeRecordBody(b)).equals(Buffer.from(encodeViaMap(b)))).toBe(true);
    const b = bodies[3]!;
    for (const n of [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const v: AuditRecordBody = { ...b, seq: n === 0 ? 1 : n, time: n, principal: 'p'.repeat(Math.min(256, n % 300 || 1)), rule: 'é'.repeat(Math.min(85, (n % 86) + 1)) };
      const bytes = encodeRecordBody(v);
      expect(Buffer.from(bytes).equals(Buffer.from(encodeViaMap(v))), `n = ${n}`).toBe(true);
      expect(decodeRecordBody(bytes)).toEqual(v);
    }
  });

  it('every bit flip and every truncation of every payload: the same outcome', async () => {
    let refused = 0;
    let accepted = 0;
    for (const p of await payloads()) {
      // The hand-over's attestation is long: its middle bytes are opaque to both paths.
      const positions = p.length > 1000 ? [...Array(200).keys(), ...Array.from({ length: 200 }, (_, i) => p.length - 200 + i)] : [...p.keys()];
      for (const at of positions) {
        for (let bit = 0; bit < 8; bit++) {
          const q = Uint8Array.from(p);
          q[at]! ^= 1 << bit;
          if (agree(q, `byte ${at} bit ${bit}`)) accepted++;
          else refused++;
        }
      }
      for (let n = 0; n < p.length; n += p.length > 1000 ? 37 : 1) if (!agree(p.subarray(0, n), `truncated to ${n}`)) refused++;
      agree(Uint8Array.from([...p, 0x00]), 'one byte appended');
    }
    // Flips inside text and digests still parse (the signature catches them); the rest are refused.
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(1000);
  });

  it('each byte set to each of the CBOR heads that matter: the same outcome', async () => {
    const rest = (await payloads()).slice(1);
    const heads = [0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x38, 0x40, 0x58, 0x5f, 0x60, 0x78, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xd8, 0xf4, 0xf5, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xff, 0xb0, 0xb1, 0xb2];
    for (const p of [rest[0]!, rest[1]!, rest[2]!, rest[5]!]) {
      for (let at = 0; at < p.length; at++) {
        for (const h of heads) {
          const q = Uint8Array.from(p);
          q[at] = h;
          agree(q, `byte ${at} = 0x${h.toString(16)}`);
        }
      }
    }
  });

  it('aliases the encoder never makes are refused the generic way', async () => {
    const p = (await payloads())[2]!;
    const seq = (decodeRecordBodyGeneric(p) as { seq: number }).seq;
    const aliases: Array<[string, number, Uint8Array]> = [
      ['seq as a 1-byte argument below 24', 2, Uint8Array.of(0x18, seq)],
      ['seq as a float', 2, Uint8Array.of(0xf9, 0x40, 0x00)],
      ['seq as a 64-bit float', 2, encodeCbor(1.5)],
      ['time in 8 bytes where 4 would do', 4, Uint8Array.of(0x1b, 0, 0, 0, 0, 0x65, 0x00, 0x00, 0x00)],
      ['time at 2^53', 4, Uint8Array.of(0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0)],
      ['time negative', 4, Uint8Array.of(0x20)],
      ['prev as an indefinite byte string', 3, Uint8Array.from([0x5f, 0x50, ...new Uint8Array(16), 0x50, ...new Uint8Array(16), 0xff])],
      ['prev with a non-minimal length', 3, Uint8Array.from([0x59, 0x00, 0x20, ...new Uint8Array(32)])],
      ['kind with a leading BOM', 6, Uint8Array.from([0x67, 0xef, 0xbb, 0xbf, ...Buffer.from('sign')])],
      ['principal with a leading BOM', 8, Uint8Array.from([0x67, 0xef, 0xbb, 0xbf, ...Buffer.from('host')])],
      ['principal as invalid UTF-8', 8, Uint8Array.of(0x62, 0xc3, 0x28)],
      ['principal as a tagged string', 8, Uint8Array.from([0xd8, 0x20, 0x64, ...Buffer.from('host')])],
      ['principal as undefined', 8, Uint8Array.of(0xf7)],
      ['principal as false', 8, Uint8Array.of(0xf4)],
      ['rule as an empty array', 12, Uint8Array.of(0x80)],
      ['policyHash as an empty map', 13, Uint8Array.of(0xa0)],
      ['version 2', 0, Uint8Array.of(0x02)],
    ];
    for (const [what, key, raw] of aliases) {
      const q = withRaw(p, key, raw);
      expect(agree(q, what), what).toBe(what === 'principal with a leading BOM');
    }
    // The map header itself: indefinite, or 17 entries in a 1-byte argument.
    agree(Uint8Array.from([0xbf, ...p.subarray(1), 0xff]), 'indefinite map');
    agree(Uint8Array.from([0xb8, 17, ...p.subarray(1)]), 'non-minimal map header');
  });
});
