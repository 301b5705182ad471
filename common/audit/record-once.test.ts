/**
 * parseRecordOnce: one parse per bytes object on the parent's release path, never a stale one.
 */
import { describe, expect, it } from 'vitest';
import { buildChain } from '../../test/audit-chain.js';
import { parseRecord, parseRecordOnce } from './record.js';

describe('parseRecordOnce', () => {
  it('answers the same object from one parse; bytes changed in place are parsed again', async () => {
    const { log, records } = await buildChain(2);
    const rec = records[2]!;
    const first = parseRecordOnce(rec);
    expect(parseRecordOnce(rec)).toBe(first);
    // An equal copy is another object: parsed on its own (the key is the object, checked by content).
    expect(parseRecordOnce(Uint8Array.from(rec))).not.toBe(first);
    rec[Buffer.from(rec).indexOf('backend')] = 'c'.charCodeAt(0);
    const again = parseRecordOnce(rec);
    expect(again).not.toBe(first);
    expect(again.body.principal).toBe('cackend');
    expect(Buffer.from(again.hash).equals(Buffer.from(parseRecord(Uint8Array.from(rec)).hash))).toBe(true);
    expect(Buffer.from(again.hash).equals(Buffer.from(first.hash))).toBe(false);
    log.close();
  });

  it('bad input: bytes that stopped parsing are refused, and a refusal is not remembered', async () => {
    const { log, records } = await buildChain(1);
    const rec = records[1]!;
    parseRecordOnce(rec);
    rec[0] = 0x85;
    expect(() => parseRecordOnce(rec)).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    rec[0] = 0x84;
    expect(parseRecordOnce(rec).body.seq).toBe(1);
    expect(() => parseRecordOnce('not bytes' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'AUDIT_MALFORMED' }));
    log.close();
  });

  it('bytes that cannot remember their parse (not extensible) are parsed every time, with the same result', async () => {
    const { log, records } = await buildChain(1);
    const rec = Object.preventExtensions(Uint8Array.from(records[1]!));
    const a = parseRecordOnce(rec);
    const b = parseRecordOnce(rec);
    expect(b).not.toBe(a);
    expect(b.body).toEqual(a.body);
    log.close();
  });
});
