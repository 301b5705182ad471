import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { enclaveConfigFor, parseEnclaveConfig, parseEnclaveConfigText, parseKeyArn, pinnedKeys, readEnclaveConfig } from './config.js';

const ARN = 'arn:aws:kms:us-east-1:111122223333:key/0f0e0d0c-0b0a-4908-8706-050403020100';
const ARN2 = 'arn:aws:kms:us-east-1:111122223333:key/1f0e0d0c-0b0a-4908-8706-050403020100';
const good = () => ({ format: 'enclave-signer/enclave-config', version: 1, kms: { region: 'us-east-1', allowedKeyArns: [ARN] } });
const dir = mkdtempSync(join(tmpdir(), 'enclave-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('enclave configuration', () => {
  it.each([
    'https://kms-fips.us-east-1.amazonaws.com',
    'https://kms.us-east-1.api.aws/',
    'https://vpce-0a1b2c3d4e5f60718-abcdefgh.kms.us-east-1.vpce.amazonaws.com:443',
  ])('accepts the AWS KMS endpoint %s', (endpoint) => {
    expect(parseEnclaveConfig({ ...good(), kms: { ...good().kms, endpoint } }).kms.endpoint).toBe(endpoint);
  });

  it('accepts a pinned CMK list and an https endpoint', () => {
    expect(parseEnclaveConfig(good()).kms.allowedKeyArns).toEqual([ARN]);
    const c = parseEnclaveConfig({ ...good(), kms: { ...good().kms, allowedKeyArns: [ARN, ARN2], endpoint: 'https://kms.us-east-1.amazonaws.com' } });
    expect(c.kms.endpoint).toBe('https://kms.us-east-1.amazonaws.com');
    expect(enclaveConfigFor([ARN])).toEqual(good());
  });

  const bad: [string, unknown, RegExp][] = [
    ['not an object', [1], /\(root\): must be a JSON object/],
    ['unknown top-level field', { ...good(), policy: {} }, /policy: unknown field/],
    ['unknown kms field', { ...good(), kms: { ...good().kms, allowAny: true } }, /kms\.allowAny: unknown field/],
    ['wrong format', { ...good(), format: 'x' }, /format: must be/],
    ['wrong version', { ...good(), version: 2 }, /version: must be 1/],
    ['no kms', { format: 'enclave-signer/enclave-config', version: 1 }, /kms: must be an object/],
    ['bad region', { ...good(), kms: { ...good().kms, region: 'US-EAST-1' } }, /kms\.region/],
    ['empty key list', { ...good(), kms: { ...good().kms, allowedKeyArns: [] } }, /kms\.allowedKeyArns: must be a non-empty list/],
    ['key list not a list', { ...good(), kms: { ...good().kms, allowedKeyArns: ARN } }, /kms\.allowedKeyArns: must be a non-empty list/],
    ['alias', { ...good(), kms: { ...good().kms, allowedKeyArns: ['alias/enclave'] } }, /kms\.allowedKeyArns\[0\]: .* is not a full KMS key ARN/],
    ['alias ARN', { ...good(), kms: { ...good().kms, allowedKeyArns: ['arn:aws:kms:us-east-1:111122223333:alias/enclave'] } }, /allowedKeyArns\[0\]/],
    ['bare key id', { ...good(), kms: { ...good().kms, allowedKeyArns: ['0f0e0d0c-0b0a-4908-8706-050403020100'] } }, /allowedKeyArns\[0\]/],
    ['uppercase uuid', { ...good(), kms: { ...good().kms, allowedKeyArns: [ARN.toUpperCase()] } }, /allowedKeyArns\[0\]/],
    ['short account', { ...good(), kms: { ...good().kms, allowedKeyArns: [ARN.replace('111122223333', '11112222333')] } }, /allowedKeyArns\[0\]/],
    ['trailing junk', { ...good(), kms: { ...good().kms, allowedKeyArns: [ARN + ' '] } }, /allowedKeyArns\[0\]/],
    ['wildcard', { ...good(), kms: { ...good().kms, allowedKeyArns: ['arn:aws:kms:us-east-1:111122223333:key/*'] } }, /allowedKeyArns\[0\]/],
    ['other region', { ...good(), kms: { ...good().kms, allowedKeyArns: [ARN.replace('us-east-1', 'eu-west-1')] } }, /allowedKeyArns\[0\]: is in region eu-west-1, but kms\.region is us-east-1/],
    ['duplicate', { ...good(), kms: { ...good().kms, allowedKeyArns: [ARN, ARN] } }, /allowedKeyArns\[1\]: is listed twice/],
    ['http endpoint', { ...good(), kms: { ...good().kms, endpoint: 'http://kms.example' } }, /kms\.endpoint/],
    // Session 25's review: any https host was accepted, and the enclave trusts the public CAs — a
    // host with a certificate could answer as KMS with a data key of its choosing.
    ['endpoint not AWS KMS', { ...good(), kms: { ...good().kms, endpoint: 'https://kms.attacker.example:8443/' } }, /kms\.endpoint: must be an AWS KMS endpoint of us-east-1/],
    ['endpoint of another region', { ...good(), kms: { ...good().kms, endpoint: 'https://kms.eu-west-1.amazonaws.com' } }, /kms\.endpoint/],
    ['endpoint look-alike', { ...good(), kms: { ...good().kms, endpoint: 'https://kms.us-east-1.amazonaws.com.attacker.example' } }, /kms\.endpoint/],
    ['endpoint on another port', { ...good(), kms: { ...good().kms, endpoint: 'https://kms.us-east-1.amazonaws.com:8443' } }, /kms\.endpoint/],
    ['endpoint with a path', { ...good(), kms: { ...good().kms, endpoint: 'https://kms.us-east-1.amazonaws.com/x' } }, /kms\.endpoint/],
  ];
  it.each(bad)('refuses %s, naming the field', (_n, v, re) => {
    expect(() => parseEnclaveConfig(v)).toThrow(re);
    expect(() => parseEnclaveConfig(v)).toThrow(expect.objectContaining({ code: 'ENCLAVE_CONFIG_INVALID' }));
  });

  it('a missing file is ENCLAVE_CONFIG_MISSING: the image refuses to start without a pinned CMK', () => {
    expect(() => readEnclaveConfig(join(dir, 'nope.json'))).toThrow(expect.objectContaining({ code: 'ENCLAVE_CONFIG_MISSING', message: expect.stringMatching(/pins no CMK and refuses to start/) }));
    writeFileSync(join(dir, 'bad.json'), '{');
    expect(() => readEnclaveConfig(join(dir, 'bad.json'))).toThrow(/not valid JSON/);
    writeFileSync(join(dir, 'ok.json'), JSON.stringify(good()));
    expect(readEnclaveConfig(join(dir, 'ok.json')).kms.allowedKeyArns).toEqual([ARN]);
    expect(() => parseEnclaveConfigText(' '.repeat(70_000))).toThrow(/over/);
  });

  it('parseKeyArn splits a key ARN; pinnedKeys matches exact ARNs only and refuses an empty list', () => {
    expect(parseKeyArn(ARN, 'x')).toEqual({ partition: 'aws', region: 'us-east-1', account: '111122223333', keyId: '0f0e0d0c-0b0a-4908-8706-050403020100' });
    const p = pinnedKeys([ARN]);
    expect(p.has(ARN)).toBe(true);
    expect(p.has(ARN2)).toBe(false);
    expect(p.has('0f0e0d0c-0b0a-4908-8706-050403020100')).toBe(false);
    expect(() => pinnedKeys([])).toThrow(/no CMK is pinned/);
    expect(() => pinnedKeys(['alias/x'])).toThrow(/not a full KMS key ARN/);
  });
});
