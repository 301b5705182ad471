import { describe, expect, it } from 'vitest';
import { parseArgs } from './args.js';
import { UsageError } from './errors.js';
import { decodeDocumentInput } from './document-input.js';
import { AttestationError } from '../attestation/errors.js';
import { atFlag, hexFlag, matchFlag, pcrFlags } from './values.js';

const spec = {
  name: { type: 'string' },
  tag: { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

function usage(fn: () => unknown, msg: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).message).toMatch(msg);
    return;
  }
  throw new Error('expected a UsageError');
}

describe('parseArgs', () => {
  it('parses long flags both ways, booleans, repeats and positionals', () => {
    const r = parseArgs(['a', '--name', 'x', '--tag=1', '--json', '--tag', '2', '-', '--', '--not-a-flag'], spec, { positionals: { min: 0, max: 9 } });
    expect(r).toEqual({ help: false, flags: { name: 'x', tag: ['1', '2'], json: true }, positionals: ['a', '-', '--not-a-flag'] });
    expect(parseArgs(['--name='], spec).flags.name).toBe('');
    expect(parseArgs([], spec).flags).toEqual({ name: undefined, tag: [], json: false });
  });

  it('recognizes help anywhere before --, without validating the rest', () => {
    expect(parseArgs(['--bogus', '-h'], spec).help).toBe(true);
    expect(parseArgs(['--help'], spec, { positionals: { min: 1, max: 1 } }).help).toBe(true);
    expect(parseArgs(['--', '-h'], spec, { positionals: { min: 1, max: 1 } }).positionals).toEqual(['-h']);
  });

  it('rejects what it does not know', () => {
    usage(() => parseArgs(['--nam', 'x'], spec), /unknown option --nam/);
    usage(() => parseArgs(['-n'], spec), /unknown option -n/);
    usage(() => parseArgs(['--name'], spec), /--name needs a value/);
    usage(() => parseArgs(['--name', '--json'], spec), /--name needs a value/);
    usage(() => parseArgs(['--name', 'a', '--name', 'b'], spec), /given twice/);
    usage(() => parseArgs(['--json', '--json'], spec), /given twice/);
    usage(() => parseArgs(['--json=true'], spec), /takes no value/);
    usage(() => parseArgs(['x'], spec), /expected 0 arguments, got 1 \(unexpected: x\)/);
    usage(() => parseArgs([], spec, { positionals: { min: 1, max: 1 } }), /expected 1 argument, got 0/);
    usage(() => parseArgs(['--toString', 'x'], spec), /unknown option --toString/);
  });

  it('a flag that is not repeatable is refused the second time, whatever the spelling (node:util parseArgs alone keeps the last)', () => {
    usage(() => parseArgs(['--name=a', '--name', 'b'], spec), /--name given twice/);
    usage(() => parseArgs(['--name', 'a', '--json', '--name='], spec), /--name given twice/);
    expect(parseArgs(['--tag', 'a', '--tag=a'], spec).flags.tag).toEqual(['a', 'a']);
  });

  it('takes values that start with a dash when they cannot be a flag, and names short options as typed', () => {
    expect(parseArgs(['--name', '-'], spec).flags.name).toBe('-');
    expect(parseArgs(['--name', '-5'], spec).flags.name).toBe('-5');
    expect(parseArgs(['--name', '--'], spec).flags.name).toBe('--');
    expect(parseArgs(['--name=--json'], spec).flags.name).toBe('--json');
    usage(() => parseArgs(['-abc'], spec), /unknown option -abc/);
    usage(() => parseArgs(['--name', 'x', '-5'], spec), /unknown option -5/);
    usage(() => parseArgs(['--nam=x', 'y'], spec), /unknown option --nam$/);
  });
});

describe('flag values', () => {
  it('hex, time, PCR and match values', () => {
    expect(hexFlag('n', '0xABcd')).toEqual(new Uint8Array([0xab, 0xcd]));
    usage(() => hexFlag('nonce', 'abc'), /--nonce must be hex/);
    usage(() => hexFlag('nonce', ''), /must not be empty/);
    usage(() => hexFlag('x', 'ab', 2), /must be 2 bytes/);
    expect(atFlag('doc')).toBe('document');
    expect(atFlag('2024-09-07T14:37:39.545Z')).toEqual(new Date(1725719859545));
    expect(atFlag('2024-09-07')).toEqual(new Date('2024-09-07T00:00:00Z'));
    usage(() => atFlag('2024-09-07T14:37:39'), /with a zone/);
    usage(() => atFlag('yesterday'), /--at must be/);
    usage(() => atFlag('2024-13-45T00:00:00Z'), /not a real time/);
    expect(pcrFlags([`4=${'ab'.repeat(48)}`])).toEqual({ 4: new Uint8Array(48).fill(0xab) });
    usage(() => pcrFlags(['4:ab']), /N=hex/);
    usage(() => pcrFlags([`40=${'ab'.repeat(48)}`]), /out of range/);
    usage(() => pcrFlags([`1=${'ab'.repeat(48)}`, `1=${'ab'.repeat(48)}`]), /given twice/);
    usage(() => pcrFlags(['1=abcd']), /48 bytes/);
    expect(matchFlag('2, 0,1')).toEqual([0, 1, 2]);
    usage(() => matchFlag('0,,1'), /comma-separated/);
    usage(() => matchFlag('0,0'), /twice/);
  });
});

describe('decodeDocumentInput', () => {
  const doc = new Uint8Array([0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0]);
  const input = (s: string) => new TextEncoder().encode(s);

  it('detects raw CBOR, base64 (standard, url-safe, wrapped, unpadded) and hex', () => {
    expect(decodeDocumentInput(doc)).toEqual({ bytes: doc, encoding: 'cbor' });
    const b64 = Buffer.from(doc).toString('base64');
    expect(decodeDocumentInput(input(`${b64}\n`))).toEqual({ bytes: doc, encoding: 'base64' });
    expect(decodeDocumentInput(input(Buffer.from(doc).toString('base64url'))).bytes).toEqual(doc);
    expect(decodeDocumentInput(input(b64.replace(/(.{3})/g, '$1\r\n'))).bytes).toEqual(doc);
    expect(decodeDocumentInput(input(Buffer.from(doc).toString('hex').toUpperCase()))).toEqual({ bytes: doc, encoding: 'hex' });
  });

  it('rejects everything else as ATTEST_INPUT', () => {
    for (const bad of [new Uint8Array(0), input('   \n'), new Uint8Array([0xff, 0x00]), input('not base64!'), input('hQ=x'), input('hQ==='), input('hR'), input('a')]) {
      try {
        decodeDocumentInput(bad);
        throw new Error(`accepted ${Buffer.from(bad).toString('hex')}`);
      } catch (e) {
        expect(e).toBeInstanceOf(AttestationError);
        expect((e as AttestationError).code).toBe('ATTEST_INPUT');
        expect((e as AttestationError).check).toBe('input');
      }
    }
  });
});
