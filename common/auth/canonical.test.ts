/**
 * The canonical JSON behind every request digest and session MAC, and the mac message's direct
 * layout (session.ts requestMacMessage), against an independent reference: a JCS serializer
 * written here the obvious way (sorted keys, JSON.stringify for scalars), which both must match
 * byte for byte.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { canonicalRequestBytes, canonicalRequestJson } from './canonical.js';
import { REQUEST_DOMAIN, requestDigest } from './request.js';
import { REQUEST_MAC_DOMAIN, requestMacMessage } from './session.js';

function reference(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`)
      .join(',')}}`;
  }
  if (typeof v === 'number' && Object.is(v, -0)) return '0';
  return JSON.stringify(v);
}

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.string({ unit: 'grapheme' }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('canonical request JSON', () => {
  it('matches an independent JCS serializer on random JSON values', () => {
    fc.assert(
      fc.property(json, (v) => {
        expect(canonicalRequestJson(v)).toBe(reference(v));
        expect(Buffer.from(canonicalRequestBytes(v)).toString('utf8')).toBe(reference(v));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses lone surrogates in values and keys, accepts pairs', () => {
    expect(() => canonicalRequestJson({ a: 'x\uD800' })).toThrow(/lone surrogate/);
    expect(() => canonicalRequestJson({ '\uDC00': 1 })).toThrow(/lone surrogate/);
    expect(() => canonicalRequestJson(['\uD83D'])).toThrow(/lone surrogate/);
    expect(canonicalRequestJson({ a: '\uD83D\uDE00' })).toBe('{"a":"\uD83D\uDE00"}');
  });
});

describe('the request digest', () => {
  it('is SHA-256 of the UTF-8 bytes of the canonical JSON (known answer, computed outside node)', () => {
    // python3: hashlib.sha256(json_text.encode('utf-8')).hexdigest(), the JSON written out by hand
    const params = ['h\u00e9llo \u2713 \u{1F600}', '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'];
    expect(requestDigest('ab'.repeat(32), 'personal_sign', params)).toBe('9fe52cf32699766bf6b02c733f691139fe5f7164940dadcf33db9f954bb83df3');
  });

  it('the written-out layout is the canonical JSON of { domain, audience, method, params } for any method and params', () => {
    const audience = fc.stringMatching(/^[0-9a-f]{64}$/);
    const method = fc.string({ minLength: 1, maxLength: 40 }).filter((m) => m.isWellFormed());
    fc.assert(
      fc.property(audience, method, json, (a, m, params) => {
        const general = createHash('sha256').update(reference({ domain: REQUEST_DOMAIN, audience: a, method: m, params }), 'utf8').digest('hex');
        expect(requestDigest(a, m, params)).toBe(general);
      }),
      { numRuns: 1000 },
    );
    // Absent params are null, as in the general form.
    const a = 'cd'.repeat(32);
    expect(requestDigest(a, 'm', undefined)).toBe(createHash('sha256').update(reference({ domain: REQUEST_DOMAIN, audience: a, method: 'm', params: null })).digest('hex'));
  });
});

describe('the session mac message', () => {
  const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
  const session = fc.stringMatching(/^[A-Za-z0-9_-]{22}$/);
  const digest = fc.stringMatching(/^[0-9a-f]{64}$/);
  const count = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

  it('the direct layout gives the canonical bytes for every well-formed member', () => {
    fc.assert(
      fc.property(name, session, digest, count, count, (principal, s, d, seq, expiresAt) => {
        const m = { principal, session: s, requestDigest: d, seq, expiresAt };
        const canonical = canonicalRequestBytes({ domain: REQUEST_MAC_DOMAIN, ...m });
        expect(Buffer.from(requestMacMessage(m)).equals(Buffer.from(canonical))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('members outside those shapes go through the general canonicalizer (escaped, still canonical)', () => {
    for (const principal of ['with "quote"', 'ünïcode', 'a\\b', '']) {
      const m = { principal, session: 'AAAAAAAAAAAAAAAAAAAAAA', requestDigest: '0'.repeat(64), seq: 1.5, expiresAt: 1 };
      expect(Buffer.from(requestMacMessage(m)).toString('utf8')).toBe(reference({ domain: REQUEST_MAC_DOMAIN, ...m }));
    }
  });
});
