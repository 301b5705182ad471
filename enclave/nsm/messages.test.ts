/**
 * Wire vectors for the NSM messages, written by hand from serde's externally
 * tagged representation of nsm-api's Request/Response enums (src/api/mod.rs),
 * with a tiny CBOR head writer that is independent of common/cbor.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, type NsmRequest, type NsmResponse } from './messages.js';
import { NsmError } from './nsm.js';

const head = (major: number, n: number): string => {
  const m = major << 5;
  if (n < 24) return (m | n).toString(16).padStart(2, '0');
  if (n < 0x100) return (m | 24).toString(16) + n.toString(16).padStart(2, '0');
  return (m | 25).toString(16) + n.toString(16).padStart(4, '0');
};
const t = (s: string) => head(3, s.length) + Buffer.from(s, 'ascii').toString('hex');
const b = (bytes: Uint8Array) => head(2, bytes.length) + toHex(bytes);
const u = (n: number) => head(0, n);
const map = (n: number) => head(5, n);
const arr = (n: number) => head(4, n);
const NULL = 'f6';
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

const requestVectors: [string, NsmRequest, string][] = [
  ['DescribeNSM (unit variant → text)', { type: 'DescribeNSM' }, t('DescribeNSM')],
  ['GetRandom (unit variant → text)', { type: 'GetRandom' }, t('GetRandom')],
  ['DescribePCR', { type: 'DescribePCR', index: 3 }, map(1) + t('DescribePCR') + map(1) + t('index') + u(3)],
  ['ExtendPCR', { type: 'ExtendPCR', index: 16, data: Uint8Array.of(1, 2, 3) }, map(1) + t('ExtendPCR') + map(2) + t('index') + u(16) + t('data') + b(Uint8Array.of(1, 2, 3))],
  ['LockPCR with a 2-byte index', { type: 'LockPCR', index: 300 }, map(1) + t('LockPCR') + map(1) + t('index') + '19012c'],
  ['LockPCRs', { type: 'LockPCRs', range: 32 }, map(1) + t('LockPCRs') + map(1) + t('range') + '1820'],
  [
    'Attestation with every Option None',
    { type: 'Attestation', userData: null, nonce: null, publicKey: null },
    map(1) + t('Attestation') + map(3) + t('user_data') + NULL + t('nonce') + NULL + t('public_key') + NULL,
  ],
  [
    'Attestation fields in declaration order user_data, nonce, public_key',
    { type: 'Attestation', userData: Uint8Array.of(0xaa), nonce: new Uint8Array(1024).fill(7), publicKey: Uint8Array.of() },
    map(1) + t('Attestation') + map(3) + t('user_data') + '41aa' + t('nonce') + '590400' + '07'.repeat(1024) + t('public_key') + '40',
  ],
];

const pcr = new Uint8Array(48).fill(0x5a);
const responseVectors: [string, NsmResponse, string][] = [
  ['Error(InvalidIndex) (newtype variant → map)', { type: 'Error', error: 'InvalidIndex' }, map(1) + t('Error') + t('InvalidIndex')],
  ['LockPCR (unit)', { type: 'LockPCR' }, t('LockPCR')],
  ['LockPCRs (unit)', { type: 'LockPCRs' }, t('LockPCRs')],
  ['DescribePCR', { type: 'DescribePCR', lock: true, data: pcr }, map(1) + t('DescribePCR') + map(2) + t('lock') + 'f5' + t('data') + '5830' + toHex(pcr)],
  ['ExtendPCR', { type: 'ExtendPCR', data: pcr }, map(1) + t('ExtendPCR') + map(1) + t('data') + '5830' + toHex(pcr)],
  [
    'DescribeNSM (BTreeSet → sorted array, Digest → text)',
    { type: 'DescribeNSM', versionMajor: 1, versionMinor: 0, versionPatch: 14, moduleId: 'i-1-enc2', maxPcrs: 32, lockedPcrs: [0, 1, 2, 16], digest: 'SHA384' },
    map(1) +
      t('DescribeNSM') +
      map(7) +
      t('version_major') + u(1) +
      t('version_minor') + u(0) +
      t('version_patch') + u(14) +
      t('module_id') + t('i-1-enc2') +
      t('max_pcrs') + '1820' +
      t('locked_pcrs') + arr(4) + '00010210' +
      t('digest') + t('SHA384'),
  ],
  ['Attestation', { type: 'Attestation', document: Uint8Array.of(0x84, 0x40) }, map(1) + t('Attestation') + map(1) + t('document') + '428440'],
  ['GetRandom', { type: 'GetRandom', random: new Uint8Array(256).fill(9) }, map(1) + t('GetRandom') + map(1) + t('random') + '590100' + '09'.repeat(256)],
];

describe('requests match serde externally tagged CBOR', () => {
  it.each(requestVectors)('%s', (_name, req, wire) => {
    expect(toHex(encodeRequest(req))).toBe(wire);
    expect(decodeRequest(hex(wire))).toEqual(req);
  });
});

describe('responses match serde externally tagged CBOR', () => {
  it.each(responseVectors)('%s', (_name, res, wire) => {
    expect(toHex(encodeResponse(res))).toBe(wire);
    expect(decodeResponse(hex(wire))).toEqual(res);
  });

  it('sorts and de-duplicates locked_pcrs like a BTreeSet', () => {
    const r = decodeResponse(
      encodeResponse({ type: 'DescribeNSM', versionMajor: 1, versionMinor: 0, versionPatch: 0, moduleId: 'm', maxPcrs: 32, lockedPcrs: [16, 2, 2, 0], digest: 'SHA384' }),
    );
    expect(r).toMatchObject({ lockedPcrs: [0, 2, 16] });
  });

  it('accepts struct fields in any order (serde does)', () => {
    const wire = map(1) + t('DescribePCR') + map(2) + t('data') + '5830' + toHex(pcr) + t('lock') + 'f4';
    expect(decodeResponse(hex(wire))).toEqual({ type: 'DescribePCR', lock: false, data: pcr });
  });

  it('decodes every NSM ErrorCode name', () => {
    for (const e of ['InvalidArgument', 'InvalidIndex', 'InvalidResponse', 'ReadOnlyIndex', 'InvalidOperation', 'BufferTooSmall', 'InputTooLarge', 'InternalError', 'Success'] as const) {
      expect(decodeResponse(hex(map(1) + t('Error') + t(e)))).toEqual({ type: 'Error', error: e });
    }
  });
});

describe('malformed messages are typed errors', () => {
  const badResponses: [string, string][] = [
    ['empty', ''],
    ['not CBOR', 'ff'],
    ['trailing bytes', t('LockPCR') + '00'],
    ['unknown variant', t('Reboot')],
    ['unknown error code', map(1) + t('Error') + t('Oops')],
    ['map with two variants', map(2) + t('LockPCR') + NULL + t('LockPCRs') + NULL],
    ['unit variant with a body', map(1) + t('LockPCR') + map(0)],
    ['missing field', map(1) + t('DescribePCR') + map(1) + t('lock') + 'f5'],
    ['extra field', map(1) + t('ExtendPCR') + map(2) + t('data') + '40' + t('extra') + '00'],
    ['wrong field type', map(1) + t('DescribePCR') + map(2) + t('lock') + '01' + t('data') + '40'],
    ['bytes as an array', map(1) + t('GetRandom') + map(1) + t('random') + arr(1) + '01'],
    ['u16 overflow', map(1) + t('DescribeNSM') + map(7) + t('version_major') + '1a00010000' + t('version_minor') + '00' + t('version_patch') + '00' + t('module_id') + t('m') + t('max_pcrs') + '00' + t('locked_pcrs') + arr(0) + t('digest') + t('SHA384')],
    ['unknown digest', map(1) + t('DescribeNSM') + map(7) + t('version_major') + '00' + t('version_minor') + '00' + t('version_patch') + '00' + t('module_id') + t('m') + t('max_pcrs') + '00' + t('locked_pcrs') + arr(0) + t('digest') + t('MD5')],
    ['indefinite map', 'bf' + t('LockPCR') + NULL + 'ff'],
    ['integer variant name', map(1) + '01' + NULL],
  ];
  it.each(badResponses)('response: %s → NSM_INVALID_RESPONSE', (_name, wire) => {
    expect(() => decodeResponse(hex(wire))).toThrow(expect.objectContaining({ code: 'NSM_INVALID_RESPONSE' }));
  });

  const badRequests: [string, string][] = [
    ['empty', ''],
    ['unknown variant', t('Reboot')],
    ['negative index', map(1) + t('DescribePCR') + map(1) + t('index') + '20'],
    ['index beyond u16', map(1) + t('LockPCR') + map(1) + t('index') + '1a00010000'],
    ['nonce as text', map(1) + t('Attestation') + map(3) + t('user_data') + NULL + t('nonce') + t('x') + t('public_key') + NULL],
    ['attestation missing a field', map(1) + t('Attestation') + map(2) + t('user_data') + NULL + t('nonce') + NULL],
  ];
  it.each(badRequests)('request: %s → NSM_INVALID_ARGUMENT', (_name, wire) => {
    expect(() => decodeRequest(hex(wire))).toThrow(expect.objectContaining({ code: 'NSM_INVALID_ARGUMENT' }));
  });

  it('encodeRequest refuses indexes that do not fit a u16', () => {
    for (const index of [-1, 1.5, 65536, NaN]) {
      expect(() => encodeRequest({ type: 'DescribePCR', index })).toThrow(expect.objectContaining({ code: 'NSM_INVALID_ARGUMENT' }));
    }
  });
});

describe('properties', () => {
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const bytes = fc.uint8Array({ maxLength: 1100 });
  const optBytes = fc.option(bytes, { nil: null });
  const request: fc.Arbitrary<NsmRequest> = fc.oneof(
    u16.map((index) => ({ type: 'DescribePCR' as const, index })),
    fc.tuple(u16, bytes).map(([index, data]) => ({ type: 'ExtendPCR' as const, index, data })),
    u16.map((index) => ({ type: 'LockPCR' as const, index })),
    u16.map((range) => ({ type: 'LockPCRs' as const, range })),
    fc.constant({ type: 'DescribeNSM' as const }),
    fc.constant({ type: 'GetRandom' as const }),
    fc.tuple(optBytes, optBytes, optBytes).map(([userData, nonce, publicKey]) => ({ type: 'Attestation' as const, userData, nonce, publicKey })),
  );

  it('every request round-trips', () => {
    fc.assert(
      fc.property(request, (r) => {
        expect(decodeRequest(encodeRequest(r))).toEqual(r);
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes never escape as anything but NsmError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
        for (const f of [decodeRequest, decodeResponse]) {
          try {
            f(raw);
          } catch (e) {
            expect(e).toBeInstanceOf(NsmError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('mutated valid responses never escape as anything but NsmError', () => {
    const seeds = responseVectors.map(([, , w]) => hex(w));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (s, pos, val) => {
        const m = new Uint8Array(seeds[s]!);
        m[pos % m.length] = val;
        try {
          decodeResponse(m);
        } catch (e) {
          expect(e).toBeInstanceOf(NsmError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
