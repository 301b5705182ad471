import { describe, expect, test } from 'vitest';
import { signRequestHeaders, verifySigV4, type RawRequest, type SigV4Credential } from './sigv4.js';

const CRED: SigV4Credential & { principalArn: string } = { accessKeyId: 'AKIAEXAMPLE000000001', secretAccessKey: 'secret-one', principalArn: 'x' };
const OTHER = { accessKeyId: 'AKIAEXAMPLE000000002', secretAccessKey: 'secret-two', sessionToken: 'tok-123', principalArn: 'y' };
const EXPECT = { region: 'us-east-1', service: 'kms' };
const BODY = '{"KeyId":"alias/x"}';

async function signed(over: { cred?: SigV4Credential; region?: string; service?: string; now?: Date; body?: string; url?: string } = {}): Promise<RawRequest> {
  const base = { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.DescribeKey' };
  const h = await signRequestHeaders(
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
  test('accepts a correctly signed request and names the credential', async () => {
    expect((await verifySigV4(await signed(), creds, EXPECT)).credential.principalArn).toBe('x');
    expect((await verifySigV4(await signed({ cred: OTHER }), creds, EXPECT)).credential.principalArn).toBe('y');
  });

  test('wrong secret → InvalidSignatureException', async () => {
    const r = await signed({ cred: { accessKeyId: CRED.accessKeyId, secretAccessKey: 'not-the-secret' } });
    await expect(verifySigV4(r, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException', status: 400 }));
  });

  test('unknown access key → UnrecognizedClientException', async () => {
    const r = await signed({ cred: { accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: 'whatever' } });
    await expect(verifySigV4(r, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
  });

  test('no Authorization → MissingAuthenticationTokenException', async () => {
    const r = await signed();
    const raw = r.rawHeaders.filter((_, i, a) => a[i - (i % 2)]!.toLowerCase() !== 'authorization');
    await expect(verifySigV4({ ...r, rawHeaders: raw }, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'MissingAuthenticationTokenException' }));
  });

  test('tampering with body, target, host or path breaks the signature', async () => {
    const r = await signed();
    await expect(verifySigV4({ ...r, body: new TextEncoder().encode('{"KeyId":"alias/y"}') }, creds, EXPECT)).rejects.toThrow(
      expect.objectContaining({ type: 'InvalidSignatureException' }),
    );
    await expect(verifySigV4(setHeader(r, 'x-amz-target', 'TrentService.Decrypt'), creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    await expect(verifySigV4(setHeader(r, 'host', 'evil:4000'), creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    await expect(verifySigV4({ ...r, url: '/x' }, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
  });

  test('x-amz-content-sha256 must match the body actually received', async () => {
    const r = setHeader(await signed(), 'x-amz-content-sha256', 'UNSIGNED-PAYLOAD');
    await expect(verifySigV4(r, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/content-sha256/) }));
  });

  test('stale or future X-Amz-Date beyond 15 minutes is rejected; within it is accepted', async () => {
    const now = new Date();
    await expect(verifySigV4(await signed({ now: new Date(now.getTime() - 16 * 60_000) }), creds, EXPECT)).rejects.toThrow(
      expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/expired/) }),
    );
    await expect(verifySigV4(await signed({ now: new Date(now.getTime() + 16 * 60_000) }), creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    expect((await verifySigV4(await signed({ now: new Date(now.getTime() - 14 * 60_000) }), creds, EXPECT)).credential).toBe(CRED);
  });

  test('credential scope must name our region and the kms service', async () => {
    await expect(verifySigV4(await signed({ region: 'eu-west-1' }), creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/region/) }));
    await expect(verifySigV4(await signed({ service: 's3' }), creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException', message: expect.stringMatching(/service/) }));
  });

  test('a configured session token is required, exact and signed', async () => {
    const noToken = await signed({ cred: { accessKeyId: OTHER.accessKeyId, secretAccessKey: OTHER.secretAccessKey } });
    await expect(verifySigV4(noToken, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
    const wrongToken = await signed({ cred: { ...OTHER, sessionToken: 'tok-124' } });
    await expect(verifySigV4(wrongToken, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
    const stray = await signed({ cred: { ...CRED, sessionToken: 'anything' } });
    await expect(verifySigV4(stray, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }));
  });

  test('signature must cover host and x-amz-target', async () => {
    const r = await signed();
    const raw = [...r.rawHeaders];
    const i = raw.findIndex((x) => x.toLowerCase() === 'authorization');
    raw[i + 1] = raw[i + 1]!.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=content-type;host;x-amz-date');
    await expect(verifySigV4({ ...r, rawHeaders: raw }, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ message: expect.stringMatching(/x-amz-target/) }));
  });
});

describe('canonical forms (AWS SigV4 test-suite rules, through @smithy/signature-v4)', () => {
  test("the signer reproduces the AWS SigV4 test suite's get-vanilla signature", async () => {
    const h = await signRequestHeaders(
      { method: 'GET', url: '/', host: 'example.amazonaws.com', headers: {}, body: '' },
      { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
      'us-east-1',
      'service',
      new Date('2015-08-30T12:36:00Z'),
    );
    expect(h.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });

  test('paths are compared normalized (dot segments) and encoded, queries sorted; a different path or query fails', async () => {
    const ok = async (r: RawRequest) => expect((await verifySigV4(r, creds, EXPECT)).credential).toBe(CRED);
    const bad = async (r: RawRequest) => expect(verifySigV4(r, creds, EXPECT)).rejects.toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }));
    const dots = await signed({ url: '/a/./b/../c/' });
    await ok(dots);
    await ok({ ...dots, url: '/a/c/' });
    await bad({ ...dots, url: '/a/c' });
    const spaced = await signed({ url: '/a%20b' });
    await ok(spaced);
    await bad({ ...spaced, url: '/a%2520b' });
    const q = await signed({ url: '/?b=2&a=1&a=0' });
    await ok(q);
    await ok({ ...q, url: '/?a=0&b=2&a=1' });
    await ok({ ...q, url: '/?a=0&b=2&a=1&X-Amz-Signature=zzz' });
    await bad({ ...q, url: '/?a=0&a=1&b=3' });
    const star = await signed({ url: '/?k=%2a' });
    await ok({ ...star, url: '/?k=*' });
  });
});
