/**
 * The IPC stream splitter: any sequence of JSON objects/arrays, separated by
 * any whitespace or by nothing, cut into any chunks, comes out value by
 * value; strings with brackets, quotes and escapes do not confuse it; the cap
 * holds for complete and endless values alike; garbage between values stops it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createJsonStreamSplitter } from './json-stream.js';

function feed(chunks: Uint8Array[], max = 1 << 20) {
  const s = createJsonStreamSplitter(max);
  const values: string[] = [];
  let error;
  for (const c of chunks) {
    const r = s.push(c);
    values.push(...r.values.map((v) => v.toString('utf8')));
    if (r.error) {
      error = r.error;
      break;
    }
  }
  return { values, error, pending: s.pending };
}

const json = fc.oneof(fc.array(fc.jsonValue({ maxDepth: 4 }), { maxLength: 4 }), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 4 }));
const ws = fc.stringMatching(/^[ \t\r\n]{0,3}$/);

describe('createJsonStreamSplitter', () => {
  it('splits any stream of values, however it is chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(json, ws), { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 30 }), (items, cuts) => {
        const texts = items.map(([v]) => JSON.stringify(v));
        const bytes = Buffer.from(items.map(([v, w]) => JSON.stringify(v) + w).join(''), 'utf8');
        const chunks: Uint8Array[] = [];
        let at = 0;
        for (const c of cuts) {
          if (at >= bytes.length) break;
          chunks.push(bytes.subarray(at, at + c));
          at += c;
        }
        if (at < bytes.length) chunks.push(bytes.subarray(at));
        const out = feed(chunks);
        expect(out.error).toBeUndefined();
        expect(out.values).toEqual(texts);
        expect(out.pending).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('brackets, quotes and backslashes inside strings are data', () => {
    const v = { a: '}{][', b: 'say \\"hi\\" }', c: ['\\\\', '"'], d: '\u00e9\u{1f600}' };
    const text = JSON.stringify(v);
    expect(feed([Buffer.from(`${text}${text}`)]).values).toEqual([text, text]);
    // Cut between a backslash and the quote it escapes.
    const b = Buffer.from(JSON.stringify({ s: 'x\\"y' }));
    const cut = b.indexOf(0x5c) + 1;
    expect(feed([b.subarray(0, cut), b.subarray(cut)]).values).toEqual([b.toString()]);
  });

  it('a value over the cap is an error, even one that never ends (inside a string too), holding at most the cap', () => {
    const s = createJsonStreamSplitter(1000);
    const r1 = s.push(Buffer.from('{"a":"'));
    expect(r1.error).toBeUndefined();
    let err;
    for (let i = 0; i < 100 && !err; i++) {
      const r = s.push(Buffer.alloc(100, 0x61));
      expect(s.pending).toBeLessThanOrEqual(1000);
      err = r.error;
    }
    expect(err).toEqual({ kind: 'too_large', limit: 1000 });
    expect(feed([Buffer.from(`[${'1,'.repeat(600)}1]`)], 1000).error).toEqual({ kind: 'too_large', limit: 1000 });
    // Exactly at the cap is fine.
    const exact = `[${'1'.repeat(998)}]`;
    expect(feed([Buffer.from(exact)], 1000).values).toEqual([exact]);
  });

  it('anything but whitespace, { or [ between values is garbage', () => {
    for (const g of ['x', '1', '"s"', 'null', '}', ']', '\u0000']) {
      const out = feed([Buffer.from(`{"ok":1}${g}{"ok":2}`)]);
      expect(out.values).toEqual(['{"ok":1}']);
      expect(out.error?.kind).toBe('garbage');
    }
    // After an error it stays stopped.
    const s = createJsonStreamSplitter(100);
    s.push(Buffer.from('x'));
    expect(s.push(Buffer.from('{}')).values).toEqual([]);
  });
});
