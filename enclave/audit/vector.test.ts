import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toHex, parseHex } from '../../common/bytes.js';
import { decodeCbor, encodeCbor, type CborValue } from '../../common/cbor.js';
import { AuditLog } from './log.js';
import { encodeAuditBinding, parseAuditBinding } from '../../common/audit/binding.js';
import { parseCheckpoint } from '../../common/audit/checkpoint.js';
import { encodeEnvelope, parseEnvelope, sigStructure, verifyEnvelope } from '../../common/audit/envelope.js';
import { decodeRecordBody, parseRecord, recordSignatureValid, sha256 } from '../../common/audit/record.js';

/*
 * The test vector of docs/audit.md ("Test vector"): seed 01 02 … 20, enclave
 * clock starting at 1767225600000 ms (2026-01-01T00:00:00Z) and ticking 1 ms
 * per record, a placeholder attestation document de ad be ef, then one
 * key.create and one allowed personal_sign. Ed25519 is deterministic, so the
 * bytes are exact.
 */
const VECTOR = {
  seed: '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20',
  auditKey: '79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664',
  binding: 'a36176016861756469744b6579582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad0496646a706f6c69637948617368f6',
  records: [
    {
      hash: 'b338d92ebfab9f123304aabd4184d69bd8a5b665909579ef690e36efee6e05d9',
      bytes:
        '8443a10127a05883b1000101667265636f726402000358200000000000000000000000000000000000000000000000000000000000000000041b0000019b76daa80005582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664066868616e646f7665720764646f6e6508f609f60af60bf60cf60df60ef60ff61044deadbeef5840613b4508cf139fc3c596a530064adce069be4ae52465f06f9e184385303f1d4cb517cacc49cb11880d850c0de27500646da27ba25b868a64646b4b424888db0a',
    },
    {
      hash: '33eb7256aec30ef4062eab949370126354d2ce3563ddcce7621e56782c78bcdf',
      bytes:
        '8443a10127a05891b1000101667265636f72640201035820b338d92ebfab9f123304aabd4184d69bd8a5b665909579ef690e36efee6e05d9041b0000019b76daa80105582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664066a6b65792e6372656174650764646f6e650864686f7374096a6b65792e6372656174650a626b310bf60cf60df60ef60ff610f658403c927cfc3eda6ad81575604b81738e15d1f261a044f4960ce754d763d1463a80a7f56d8ab613a91414e05d81534415964e44a5a9351c2e70570c6c5733a5ad00',
    },
    {
      hash: '887a4d22f900722a26704f8a42ac50a31db03d8ca7fd54852ab2b73deb092123',
      bytes:
        '8443a10127a058d3b1000101667265636f7264020203582033eb7256aec30ef4062eab949370126354d2ce3563ddcce7621e56782c78bcdf041b0000019b76daa80205582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad04966406647369676e0767616c6c6f7765640864686f7374096d706572736f6e616c5f7369676e0a626b310b58201f58b9145b24d108d7ac38887338b3ea3229833b9c1e418250343f907bfd10470cf60df60e5820f6a214f7a5fcda0c2cee9660b7fc29f5649e3c68aad48e20e950137c98913a680ff610f65840a6dd7e80d1b7a18cafded7a0fd7c9e8c148f9fc607bf904cd0f6ec18624ff3ed8f33d5de92d2b98b56a9fcc84fdd13f4d51e35d9a7b1a23336c05b81a77dec0d',
    },
  ],
  checkpoint:
    '8443a10127a05863a70001016a636865636b706f696e740202035820887a4d22f900722a26704f8a42ac50a31db03d8ca7fd54852ab2b73deb092123041b0000019b76daa80305582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad04966406f65840c2460f8291ee15215c3c460f8e93cc6cebc4b5935a4ce7dd1b743b8f2bf75b4b806a5355263168dbb18ed5b1314623ad77f2903e43b9657cd7b30de6626cc603',
};

const h = (s: string): Uint8Array => new Uint8Array(createHash('sha256').update(s).digest());
const hex = (s: string): Uint8Array => parseHex(s)!;

async function vectorLog(): Promise<{ log: AuditLog; records: Uint8Array[] }> {
  let t = 1767225600000;
  const log = await AuditLog.open({ nsm: { attest: async () => Uint8Array.of(0xde, 0xad, 0xbe, 0xef) }, seed: hex(VECTOR.seed), now: () => t++ });
  const r1 = log.append({ kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: 'k1' });
  const r2 = log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'personal_sign', keyId: 'k1', requestDigest: h('request'), resultDigest: h('result') });
  return { log, records: [log.handover.bytes, r1.bytes, r2.bytes] };
}

describe('audit record format', () => {
  it('test vector: fixed key and records give exactly the documented bytes', async () => {
    const { log, records } = await vectorLog();
    expect(toHex(log.auditKey)).toBe(VECTOR.auditKey);
    expect(toHex(log.binding)).toBe(VECTOR.binding);
    records.forEach((r, i) => {
      expect(toHex(r)).toBe(VECTOR.records[i]!.bytes);
      const p = parseRecord(r);
      expect(toHex(p.hash)).toBe(VECTOR.records[i]!.hash);
      expect(recordSignatureValid(p)).toBe(true);
    });
    expect(toHex(log.checkpoint())).toBe(VECTOR.checkpoint);
    // The signed bytes are the COSE Sig_structure over the payload; the hash is SHA-256(payload).
    const p = parseRecord(records[2]!);
    expect(toHex(sigStructure(p.payload)).startsWith('846a5369676e61747572653143a1012740')).toBe(true);
    expect(toHex(sha256(p.payload))).toBe(VECTOR.records[2]!.hash);
  });

  it('the vector verifies from its bytes alone', () => {
    for (const v of VECTOR.records) expect(recordSignatureValid(parseRecord(hex(v.bytes)))).toBe(true);
    const cp = parseCheckpoint(hex(VECTOR.checkpoint));
    expect(cp.body.seq).toBe(2);
    expect(toHex(cp.body.head)).toBe(VECTOR.records[2]!.hash);
  });

  it('an unknown record version is refused as AUDIT_VERSION, naming the seq position', () => {
    const p = parseRecord(hex(VECTOR.records[1]!.bytes));
    const m = new Map(decodeAsMap(p.payload));
    m.set(0, 2);
    const bad = encodeEnvelope(encodeCbor(m), p.signature);
    expect(() => parseRecord(bad, { index: 1 })).toThrow(expect.objectContaining({ code: 'AUDIT_VERSION', index: 1 }));
  });

  it('non-canonical encodings are refused: float for an integer, indefinite length, reordered keys', () => {
    const p = parseRecord(hex(VECTOR.records[1]!.bytes));
    const payload = p.payload;
    // seq (key 2) = 1 written as a float64 1.0.
    const m = decodeAsMap(payload);
    const withFloat = Buffer.from(encodeCbor(new Map(m)));
    const at = withFloat.indexOf(Buffer.from([0x02, 0x01, 0x03]));
    expect(at).toBeGreaterThan(0);
    const floatSeq = Buffer.concat([withFloat.subarray(0, at + 1), Buffer.from('fb3ff0000000000000', 'hex'), withFloat.subarray(at + 2)]);
    expect(() => decodeRecordBody(new Uint8Array(floatSeq))).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    const reordered = new Map([...m].reverse());
    expect(() => decodeRecordBody(encodeCbor(reordered))).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    const indefinite = encodeCbor(new Map(m), { indefiniteMaps: true });
    expect(() => decodeRecordBody(indefinite)).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    // A tagged envelope (tag 18) is a different byte string for the same record: refused.
    const tagged = new Uint8Array([0xd2, ...hex(VECTOR.records[1]!.bytes)]);
    expect(() => parseEnvelope(tagged)).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
  });

  it('per-kind rules: a released signature must carry its result digest; a hand-over its attestation', async () => {
    const { log } = await vectorLog();
    expect(() => log.append({ kind: 'sign', decision: 'allowed', requestDigest: h('x') })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    expect(() => log.append({ kind: 'sign', decision: 'denied', requestDigest: h('x'), resultDigest: h('y') })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    expect(() => log.append({ kind: 'sign', decision: 'approved', requestDigest: h('x') })).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    // A refused entry does not move the head.
    expect(log.head().seq).toBe(2);
  });

  it('the attestation binding is canonical and round-trips; anything else is refused', () => {
    const key = hex(VECTOR.auditKey);
    expect(parseAuditBinding(encodeAuditBinding({ auditKey: key, policyHash: h('p') }))).toEqual({ auditKey: key, policyHash: h('p') });
    expect(() => parseAuditBinding(null)).toThrow(expect.objectContaining({ code: 'AUDIT_ATTESTATION' }));
    expect(() => parseAuditBinding(Uint8Array.of(1, 2, 3))).toThrow(expect.objectContaining({ code: 'AUDIT_ATTESTATION' }));
    const extra = encodeCbor(new Map<string, unknown>([['v', 1], ['auditKey', key], ['policyHash', null], ['x', 1]]) as never);
    expect(() => parseAuditBinding(extra)).toThrow(expect.objectContaining({ code: 'AUDIT_ATTESTATION' }));
  });

  it('a signature over other bytes does not verify', () => {
    const p = parseRecord(hex(VECTOR.records[2]!.bytes));
    const other = parseRecord(hex(VECTOR.records[1]!.bytes));
    expect(verifyEnvelope({ payload: p.payload, signature: other.signature }, p.body.auditKey)).toBe(false);
  });
});

function decodeAsMap(payload: Uint8Array): Map<number, CborValue> {
  return decodeCbor(payload) as Map<number, CborValue>;
}

describe('record digests', () => {
  it('requestDigest is SHA-256 of CBOR [method, params]; resultDigest of the hex result is over its bytes', async () => {
    const { requestDigest, resultDigest } = await import('../../common/audit/digest.js');
    const params = new Map<string, CborValue>([['keyId', 'k1'], ['message', Uint8Array.of(1, 2)]]);
    expect(toHex(requestDigest('personal_sign', params))).toBe(toHex(sha256(encodeCbor(['personal_sign', params]))));
    expect(toHex(resultDigest(`0x${'ab'.repeat(65)}`))).toBe(toHex(sha256(new Uint8Array(65).fill(0xab))));
    expect(() => resultDigest('0xzz')).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
  });
});
