/** `enclave-signer policy check|hash|explain`, run in-process against the example policies. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './main.js';
import { erc20Transfer, maxUint256, erc20Approve } from '../enclave/policy/test-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'enclave-signer-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const EXAMPLES = ['hot-wallet', 'treasury', 'erc20-issuer', 'btc-payout'].map((n) => join(import.meta.dirname, '..', 'examples', 'policy', `${n}.json`));
const HOT = EXAMPLES[0]!;
const TREASURY = EXAMPLES[1]!;

async function run(argv: string[], stdin?: string) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    stdin: async () => new TextEncoder().encode(stdin ?? ''),
  });
  return { code, stdout, stderr };
}

function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

describe('policy check', () => {
  it.each(EXAMPLES)('the shipped example %s is valid', async (f) => {
    const r = await run(['policy', 'check', f]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^OK: policy ".+" is valid/);
    expect(r.stdout).toMatch(/sha256 +[0-9a-f]{64}/);
  });

  it('an invalid policy exits 1 naming the field (text and --json)', async () => {
    const doc = JSON.parse(readFileSync(HOT, 'utf8'));
    doc.rules[2].erc20.tokens[0] = '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49';
    const f = file('bad.json', doc);
    const r = await run(['policy', 'check', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/field +rules\[2\]\.erc20\.tokens\[0\]/);
    expect(r.stderr).toMatch(/checksum/);
    const j = await run(['policy', 'check', f, '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({ valid: false, error: { code: 'POLICY_INVALID', path: 'rules[2].erc20.tokens[0]' } });
  });

  it('an unknown principal in approvals is named', async () => {
    const doc = JSON.parse(readFileSync(TREASURY, 'utf8'));
    doc.rules[0].approvals.from.push('dave');
    const j = await run(['policy', 'check', file('dave.json', doc), '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout).error.path).toBe('rules[0].approvals.from[3]');
  });

  it('duplicate JSON keys are refused', async () => {
    const r = await run(['policy', 'check', file('dup.json', '{"policyVersion":1,"name":"a","name":"b","rules":[]}')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/POLICY_JSON/);
    expect(r.stderr).toMatch(/duplicate key/);
  });

  it('usage errors exit 2; a missing file exits 2', async () => {
    expect((await run(['policy', 'check'])).code).toBe(2);
    expect((await run(['policy', 'check', HOT, '--nope'])).code).toBe(2);
    expect((await run(['policy', 'check', join(dir, 'missing.json')])).code).toBe(2);
    expect((await run(['policy', 'frob'])).code).toBe(2);
    expect((await run(['policy', '--help'])).stdout).toMatch(/check[\s\S]*hash[\s\S]*explain/);
  });

  it('reads standard input with -', async () => {
    expect((await run(['policy', 'check', '-'], readFileSync(HOT, 'utf8'))).code).toBe(0);
  });
});

describe('policy hash', () => {
  it('prints the SHA-256 of the canonical JSON; reformatting does not change it', async () => {
    const a = await run(['policy', 'hash', HOT]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const reformatted = file('hot-min.json', JSON.stringify(JSON.parse(readFileSync(HOT, 'utf8'))));
    expect((await run(['policy', 'hash', reformatted])).stdout).toBe(a.stdout);
    expect(JSON.parse((await run(['policy', 'hash', HOT, '--json'])).stdout).hash).toBe(a.stdout.trim());
    const check = await run(['policy', 'check', HOT]);
    expect(check.stdout).toContain(a.stdout.trim());
  });

  it('an invalid policy has no hash (exit 1)', async () => {
    expect((await run(['policy', 'hash', file('v2.json', { policyVersion: 2, name: 'x', rules: [] })])).code).toBe(1);
  });
});

describe('policy explain', () => {
  const tx = (fields: Record<string, unknown>) => ({ type: '0x2', chainId: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x6fc23ac00', maxPriorityFeePerGas: '0x3b9aca00', value: '0x0', ...fields });

  it('says which rule signs a USDC transfer to a KYC address and shows the decoded call', async () => {
    const req = file('usdc.json', { method: 'eth_signTransaction', principal: 'backend', keyId: '0b9a8c4e-1f2d-4c3b-9a8e-7d6c5b4a3f21', request: { tx: tx({ to: '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48', data: erc20Transfer('0x3333333333333333333333333333333333333333', 5_000_000n), gas: '0xfde8' }) } });
    const r = await run(['policy', 'explain', HOT, '--request', req]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/decision +SIGNED by rule usdc-kyc/);
    expect(r.stdout).toMatch(/ERC-20 transfer 5000000 to 0x3333/);
    expect(r.stdout).toMatch(/allow eth-small +no: /);
  });

  it('the same request from the unauthenticated host is refused by default, with each rule\'s reason', async () => {
    const req = file('usdc-host.json', { method: 'eth_signTransaction', request: { tx: tx({ to: '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48', data: erc20Transfer('0x3333333333333333333333333333333333333333', 1n), gas: '0xfde8' }) } });
    const j = JSON.parse((await run(['policy', 'explain', HOT, '--request', req, '--json'])).stdout);
    expect(j.decision).toMatchObject({ outcome: 'refused', rule: null });
    expect(j.decision.trace.find((t: { rule: string }) => t.rule === 'usdc-kyc').reason).toMatch(/caller host not in principals/);
    expect(j.intent.tx.call).toEqual({ kind: 'erc20-transfer', to: '0x3333333333333333333333333333333333333333', amount: '1' });
  });

  it('a max-value approve is shown as such and refused', async () => {
    const req = file('approve.json', { method: 'eth_signTransaction', principal: 'backend', request: { tx: tx({ to: '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48', data: erc20Approve('0x1111111111111111111111111111111111111111', maxUint256), gas: '0xfde8' }) } });
    const r = await run(['policy', 'explain', HOT, '--request', req]);
    expect(r.stdout).toMatch(/ERC-20 approve 1157920892373161954235709850086879078532699846656405640394575840079131296399\d+ to spender/);
    expect(r.stdout).toMatch(/decision +REFUSED/);
  });

  it('treasury: pending with one approval, signed with two, and the approver list', async () => {
    const body = { method: 'eth_signTransaction', principal: 'backend', request: { tx: tx({ to: '0x5555555555555555555555555555555555555555', value: '0xde0b6b3a7640000' }) } };
    const one = await run(['policy', 'explain', TREASURY, '--request', file('t1.json', { ...body, approvals: ['alice'] })]);
    expect(one.stdout).toMatch(/decision +PENDING by rule treasury-eth/);
    expect(one.stdout).toMatch(/approvals 1 of 2 \(approvers: alice, bob, carol\)/);
    const two = await run(['policy', 'explain', TREASURY, '--request', file('t2.json', { ...body, approvals: ['alice', 'carol'] })]);
    expect(two.stdout).toMatch(/decision +SIGNED by rule treasury-eth/);
  });

  it('a request the signer would refuse is an error (exit 1), not a decision', async () => {
    const r = await run(['policy', 'explain', HOT, '--request', file('bad-tx.json', { method: 'eth_signTransaction', request: { tx: { to: '0x1' } } })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SIGN_INVALID_PARAMS/);
    const u = await run(['policy', 'explain', HOT, '--request', file('unknown.json', { method: 'eth_sendTransaction', request: {} }), '--json']);
    expect(u.code).toBe(1);
    expect(JSON.parse(u.stdout).valid).toBe(false);
    expect((await run(['policy', 'explain', HOT, '--request', file('p.json', { method: 'personal_sign', principal: 'mallory', request: { message: 'x' } })])).code).toBe(1);
    expect((await run(['policy', 'explain', HOT])).code).toBe(2);
  });
});
