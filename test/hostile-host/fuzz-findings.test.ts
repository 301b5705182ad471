/**
 * Bugs the fuzzer found (docs/fuzzing.md), each replayed here as the input the
 * host would send, besides the regression corpus under fuzz/corpus/.
 */
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor } from '../../common/cbor.js';
import { createFrameReader, encodeFrame } from '../../common/bridge/frame.js';
import { encodeMessage, parseMessage } from '../../common/bridge/messages.js';

describe('fuzz findings', () => {
  it('finding 1: a CBOR text string starting with U+FEFF keeps it (the decoder does not strip a "BOM" from inside a value)', () => {
    // fuzz/corpus/cbor/bom-text-string.bin: 63 ef bb bf — the one-character string "\uFEFF".
    expect(decodeCbor(Uint8Array.of(0x63, 0xef, 0xbb, 0xbf))).toBe('\uFEFF');
    // Two different encodings must never decode to the same value: "\uFEFFa" is not "a".
    expect(decodeCbor(encodeCbor('\uFEFFhello'))).toBe('\uFEFFhello');
    expect(encodeCbor(decodeCbor(Uint8Array.of(0x64, 0xef, 0xbb, 0xbf, 0x61)))).toEqual(Uint8Array.of(0x64, 0xef, 0xbb, 0xbf, 0x61));
  });

  it('finding 1 over the bridge: a request whose text param starts with U+FEFF reaches the other side unchanged', () => {
    const sent = { t: 'req' as const, id: 7, method: 'personalSign', params: new Map([['message', '\uFEFFpay 1 ETH']]) };
    const [ev] = createFrameReader().push(encodeFrame(encodeMessage(sent)));
    expect(ev?.ok).toBe(true);
    const got = parseMessage((ev as { ok: true; value: never }).value);
    expect(got).toEqual(sent);
  });
});
