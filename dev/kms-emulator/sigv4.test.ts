import { describe, expect, test } from 'vitest';
import { canonicalPath, canonicalQuery, signRequestHeaders, verifySigV4, type RawRequest, type SigV4Credential } from './sigv4.js';

const CRED: SigV4Credential & { principalArn: string } = { accessKeyId: 'AKIAEXAMPLE000000001', secretAccessKey: 'secret-one', principalArn: 'x' };
const OTHER = { accessKeyId: 'AKIAEXAMPLE000000002', secretAccessKey: 'secret-two', sessionToken: 'tok-123', principalArn: 'y' };
const EXPECT = { region: 'us-east-1', service: 'kms' };
const BODY = '{"KeyId":"alias/x"}';

function signed(over: { cred?: SigV4Credential; region?: string; service?: string; now?: Date; body?: string; url?: string } = {}): RawRequest {
  const base = { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.DescribeKey' };
  const h = signRequestHeaders(
    { method: 'POST', url: over.url ?? '/', host: '127.0.0.1:4000', headers: base, body: over.body ?? BODY },
    over.cred ?? CRED,
    over.region ?? 'us-east-1',
    over.service ?? 'kms',
    over.now,
  );
  const rawHeaders = ['Host', '127.0.0.1:4000', ...Object.entries(h).flat()];
  return { method: 'POST', url: over.url ?? '/', rawHeaders, body: new TextEncoder().encode(over.body ?? BODY) };
}

function setHeader(r: RawRequest, name: string, value: string): RawRequest {
  const raw = [...r.rawHeaders];
  const i = raw.findIndex((x, j) => j % 2 === 0 && x.toLowerCase() === name);
  if (i < 0) raw.push(name, value);
  else raw[i + 1] = value;
  return { ...r, rawHeaders: raw };
}

const creds = [CRED, OTHER];

describe('verifySigV4', () => {
  test('accepts a correctly signed request and names the credential', () => {
    expect(verifySigV4(signed(), creds, EXPECT).credential.principalArn).toBe('x');
    expect(verifySigV4(signed({ cred: OTHER }), creds, EXPECT).credential.principalArn).toBe('y');
  });

  test('wrong secret → InvalidSignatureException', () => {
    const r = signed({ cred: { accessKeyId: CRED.accessKeyId, secretAccessKey: 'not-the-secret' } });
    expect(() => verifySigV4(r, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException', status: 400 }));
  });

  test('unknown access key → UnrecognizedClientException', () => {
    const r = signed({ cred: { accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: 'whatever' } });
    expect(() => verifySigV4(r, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
  });

  test('no Authorization → MissingAuthenticationTokenException', () => {
    const r = signed();
    const raw = r.rawHeaders.filter((_, i, a) => a[i - (i % 2)]!.toLowerCase() !== 'authorization');
    expect(() => verifySigV4({ ...r, rawHeaders: raw }, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'MissingAuthenticationTokenException' }));
  });

  test('tampering with body, target, host or path breaks the signature', () => {
    const r = signed();
    expect(() => verifySigV4({ ...r, body: new TextEncoder().encode('{"KeyId":"alias/y"}') }, creds, EXPECT)).toThrow(
      expect.objectContaining({ type: 'InvalidSignatureException' }),
    );
    expect(() => verifySigV4(setHeader(r, 'x-amz-target', 'TrentService.Decrypt'), creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    expect(() => verifySigV4(setHeader(r, 'host', 'evil:4000'), creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    expect(() => verifySigV4({ ...r, url: '/x' }, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
  });

  test('x-amz-content-sha256 must match the body actually received', () => {
    const r = setHeader(signed(), 'x-amz-content-sha256', 'UNSIGNED-PAYLOAD');
    expect(() => verifySigV4(r, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/content-sha256/) }));
  });

  test('stale or future X-Amz-Date beyond 15 minutes is rejected; within it is accepted', () => {
    const now = new Date();
    expect(() => verifySigV4(signed({ now: new Date(now.getTime() - 16 * 60_000) }), creds, EXPECT)).toThrow(
      expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/expired/) }),
    );
    expect(() => verifySigV4(signed({ now: new Date(now.getTime() + 16 * 60_000) }), creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    expect(verifySigV4(signed({ now: new Date(now.getTime() - 14 * 60_000) }), creds, EXPECT).credential).toBe(CRED);
  });

  test('credential scope must name our region and the kms service', () => {
    expect(() => verifySigV4(signed({ region: 'eu-west-1' }), creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/region/) }));
    expect(() => verifySigV4(signed({ service: 's3' }), creds, EXPECT)).toThrow(expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/service/) }));
  });

  test('a configured session token is required, exact and signed', () => {
    const noToken = signed({ cred: { accessKeyId: OTHER.accessKeyId, secretAccessKey: OTHER.secretAccessKey } });
    expect(() => verifySigV4(noToken, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
    const wrongToken = signed({ cred: { ...OTHER, sessionToken: 'tok-124' } });
    expect(() => verifySigV4(wrongToken, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
    const stray = signed({ cred: { ...CRED, sessionToken: 'anything' } });
    expect(() => verifySigV4(stray, creds, EXPECT)).toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
  });

  test('signature must cover host and x-amz-target', () => {
    const r = signed();
    const raw = [...r.rawHeaders];
    const i = raw.findIndex((x) => x.toLowerCase() === 'authorization');
    raw[i + 1] = raw[i + 1]!.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=content-type;host;x-amz-date');
    expect(() => verifySigV4({ ...r, rawHeaders: raw }, creds, EXPECT)).toThrow(expect.objectContaining({ message: expect.stringMatching(/x-amz-target/) }));
  });
});

describe('canonical forms (AWS SigV4 test-suite rules)', () => {
  test('paths are normalized and encoded twice, queries sorted and re-encoded', () => {
    expect(canonicalPath('/')).toBe('/');
    expect(canonicalPath('/a/./b/../c/')).toBe('/a/c/');
    expect(canonicalPath('/a%20b')).toBe('/a%2520b');
    expect(canonicalQuery('b=2&a=1&a=0')).toBe('a=0&a=1&b=2');
    expect(canonicalQuery('k=a b&X-Amz-Signature=zzz')).toBe('k=a%20b');
    expect(canonicalQuery('k=%2a')).toBe('k=%2A');
  });
});
