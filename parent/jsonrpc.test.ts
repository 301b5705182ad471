/**
 * The per-request limit checked at parse time (common/limits.ts
 * MAX_JSON_PARAMS_DEPTH): exactly at the limit passes, one more level is
 * -32602 for that request only, naming the field.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_BRIDGE_CBOR_DEPTH, MAX_JSON_PARAMS_DEPTH, MAX_SIGNER_AUTH_DEPTH } from '../common/limits.js';
import { findTooDeep, parsePayload, RPC } from './jsonrpc.js';

/** `levels` objects around 1 under params[0]: the 1 is at depth `levels + 1` (params is depth 0). */
function params(levels: number): unknown[] {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return [v];
}

const request = (p: unknown, id: number | string = 1) => JSON.stringify({ jsonrpc: '2.0', id, method: 'eth_signTransaction', params: p });

describe('JSON-RPC params nesting (finding 2)', () => {
  it(`leaves room for the bridge envelope: ${MAX_JSON_PARAMS_DEPTH} + envelope ≤ ${MAX_BRIDGE_CBOR_DEPTH}`, () => {
    expect(MAX_JSON_PARAMS_DEPTH).toBeLessThan(MAX_BRIDGE_CBOR_DEPTH);
  });

  it(`accepts params nested exactly ${MAX_JSON_PARAMS_DEPTH} levels`, () => {
    const p = parsePayload(request(params(MAX_JSON_PARAMS_DEPTH - 1)), 10);
    expect(p).toMatchObject({ kind: 'single', item: { ok: true } });
  });

  it(`refuses params nested ${MAX_JSON_PARAMS_DEPTH + 1} levels with -32602 naming the field`, () => {
    const p = parsePayload(request(params(MAX_JSON_PARAMS_DEPTH), 'x'), 10);
    expect(p.kind).toBe('single');
    const item = (p as Extract<typeof p, { kind: 'single' }>).item;
    expect(item.ok).toBe(false);
    const field = `params[0]${'.a'.repeat(MAX_JSON_PARAMS_DEPTH)}`;
    expect(!item.ok && item.response).toEqual({
      jsonrpc: '2.0',
      id: 'x',
      error: {
        code: RPC.INVALID_PARAMS,
        message: `invalid params: ${field}: nested deeper than ${MAX_JSON_PARAMS_DEPTH} levels`,
        data: { code: 'PARENT_INVALID_PARAMS', field, hint: expect.stringContaining('at most') },
      },
    });
  });

  it(`refuses a signer_auth nested deeper than ${MAX_SIGNER_AUTH_DEPTH} levels as AUTH_MALFORMED (4100) naming the field; both envelope forms pass`, () => {
    const withAuth = (auth: unknown) => `{"jsonrpc":"2.0","id":7,"method":"signer_signDigest","params":{},"signer_auth":${JSON.stringify(auth)}}`;
    let deep: unknown = 'x';
    for (let i = 0; i < MAX_SIGNER_AUTH_DEPTH + 1; i++) deep = { a: deep };
    const p = parsePayload(withAuth({ v: 1, webauthn: deep }), 10);
    const item = (p as Extract<typeof p, { kind: 'single' }>).item;
    const field = `signer_auth.webauthn${'.a'.repeat(MAX_SIGNER_AUTH_DEPTH)}`;
    expect(!item.ok && item.response).toEqual({
      jsonrpc: '2.0',
      id: 7,
      error: {
        code: 4100,
        message: `unauthorized: malformed signer_auth: ${field}: nested deeper than ${MAX_SIGNER_AUTH_DEPTH} levels`,
        data: { code: 'AUTH_MALFORMED', field, hint: expect.stringContaining('docs/principals.md') },
      },
    });
    // The signature form with a WebAuthn assertion (the deepest legitimate shape) and the session form.
    for (const ok of [
      { v: 1, principal: 'alice', requestId: 'abcdefgh', expiresAt: 1, signature: 'AA', webauthn: { authenticatorData: 'AA', clientDataJSON: 'AA' } },
      { v: 1, principal: 'alice', session: 'AAAAAAAAAAAAAAAAAAAAAA', seq: 1, expiresAt: 1, mac: 'AA' },
    ]) {
      const q = parsePayload(withAuth(ok), 10);
      expect(q).toMatchObject({ kind: 'single', item: { ok: true, request: { auth: ok } } });
    }
  });

  it('in a batch, only the too-deep request fails', () => {
    const batch = `[${request(params(MAX_JSON_PARAMS_DEPTH), 1)},${request(params(1), 2)}]`;
    const p = parsePayload(batch, 10);
    expect(p.kind).toBe('batch');
    const items = (p as Extract<typeof p, { kind: 'batch' }>).items;
    expect(items.map((i) => i.ok)).toEqual([false, true]);
  });

  it('survives any depth (100,000 levels) and names arrays and odd keys readably', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const p = parsePayload(`{"jsonrpc":"2.0","id":1,"method":"m","params":${deep}}`, 10);
    expect(p).toMatchObject({ kind: 'single', item: { ok: false, response: { error: { code: RPC.INVALID_PARAMS } } } });
    expect(findTooDeep({ 'a b': [[1]] }, 2, 'params')).toBe('params["a b"][0][0]');
    expect(findTooDeep({ 'a b': [[1]] }, 3, 'params')).toBeUndefined();
  });

  it('findTooDeep names the same path as a plain recursive walk, on random JSON and limits', () => {
    const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
    const reference = (v: unknown, limit: number, path: string, depth = 0): string | undefined => {
      if (depth > limit) return path;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const p = reference(v[i], limit, `${path}[${i}]`, depth + 1);
          if (p !== undefined) return p;
        }
      } else if (typeof v === 'object' && v !== null) {
        for (const [k, x] of Object.entries(v)) {
          const p = reference(x, limit, IDENT.test(k) ? `${path}.${k.slice(0, 64)}` : `${path}[${JSON.stringify(k.slice(0, 64))}]`, depth + 1);
          if (p !== undefined) return p;
        }
      }
      return undefined;
    };
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 8 }), (v, limit) => {
        expect(findTooDeep(v, limit, 'params')).toBe(reference(v, limit, 'params'));
      }),
      { numRuns: 2000 },
    );
  });
});
