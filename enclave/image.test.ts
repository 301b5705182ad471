/**
 * The production composition root: it reads the measured configuration
 * before anything else, refuses to start without a pinned CMK, runs only the
 * hardware NSM, and takes no argument that changes what it trusts.
 * (This machine has no /dev/nsm, so a good configuration ends in NSM_UNAVAILABLE.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseImageArgs, runImage } from './image.js';

const dir = mkdtempSync(join(tmpdir(), 'enclave-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ARN = 'arn:aws:kms:us-east-1:111122223333:key/0f0e0d0c-0b0a-4908-8706-050403020100';

const POLICY = { policyVersion: 1, name: 'image-test', rules: [{ id: 'messages', effect: 'allow', ops: ['personal_sign'] }] };

async function start(argv: string[], config?: unknown, policy: unknown = POLICY) {
  const configPath = join(dir, `cfg-${Math.random().toString(16).slice(2)}.json`);
  const policyPath = join(dir, `policy-${Math.random().toString(16).slice(2)}.json`);
  if (config !== undefined) writeFileSync(configPath, JSON.stringify(config));
  if (policy !== null) writeFileSync(policyPath, JSON.stringify(policy));
  const lines: string[] = [];
  const code = await runImage(argv, { configPath, policyPath, log: (l) => lines.push(l) });
  return { code, out: lines.join('\n') };
}

describe('the image entry (enclave/image.ts)', () => {
  it('the image cmd parses; simulated NSM, unknown and repeated flags are refused', () => {
    expect(parseImageArgs(['--listen', 'vsock://4294967295:5000', '--nsm', 'auto', '--kms-pipe', 'vsock://3:8000'])).toEqual({ listen: 'vsock://4294967295:5000', nsm: 'auto', kmsPipe: 'vsock://3:8000' });
    expect(() => parseImageArgs(['--nsm', 'simulated'])).toThrow(/only the hardware NSM/);
    expect(() => parseImageArgs(['--kms-key-arn', ARN])).toThrow(/unknown argument "--kms-key-arn"/);
    expect(() => parseImageArgs(['--listen', 'a', '--listen', 'b'])).toThrow(/given twice/);
    expect(() => parseImageArgs(['--listen'])).toThrow(/needs a value/);
  });

  it('an image without a pinned CMK refuses to start, before it touches the NSM', async () => {
    const r = await start([]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/refusing to start: ENCLAVE_CONFIG_MISSING: .*pins no CMK and refuses to start/);
    const empty = await start([], { format: 'enclave-signer/enclave-config', version: 1, kms: { region: 'us-east-1', allowedKeyArns: [] } });
    expect(empty.code).toBe(1);
    expect(empty.out).toMatch(/ENCLAVE_CONFIG_INVALID: .*kms\.allowedKeyArns: must be a non-empty list/);
  });

  it('with a pinned CMK it goes on to the hardware NSM (absent here: NSM_UNAVAILABLE); usage errors exit 2', async () => {
    const r = await start(['--listen', 'unix:/nonexistent/x.sock', '--kms-pipe', 'unix:/nonexistent/p.sock'], { format: 'enclave-signer/enclave-config', version: 1, kms: { region: 'us-east-1', allowedKeyArns: [ARN] } });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/NSM_UNAVAILABLE: .*hint: the production image runs only inside a Nitro enclave/);
    expect(r.out).not.toMatch(/--nsm simulated/);
    expect((await start(['--nsm', 'simulated'])).code).toBe(2);
  });

  it('an image without its measured policy, or with an invalid one, refuses to start, naming the field', async () => {
    const cfg = { format: 'enclave-signer/enclave-config', version: 1, kms: { region: 'us-east-1', allowedKeyArns: [ARN] } };
    const none = await start([], cfg, null);
    expect(none.code).toBe(1);
    expect(none.out).toMatch(/refusing to start: POLICY_MISSING: .*refuses to start without its policy .*build-eif\.sh --policy/);
    const bad = await start([], cfg, { ...POLICY, rules: [{ id: 'x', effect: 'allow', to: ['0x12'] }] });
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/refusing to start: POLICY_INVALID: policy .* is invalid: rules\[0\]\.to\[0\]/);
    expect(bad.out).not.toMatch(/NSM/);
  });
});
