/**
 * The policy document: every malformed policy is refused with the JSON path of the offending
 * field; the hash is SHA-256 of the canonical JSON.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compilePolicy, parsePolicy } from './document.js';
import { PolicyDocumentError } from './errors.js';
import { HOT_RULES } from './policy-fixtures.js';
import { policyHash } from './policy-hash.js';
import { PAYEE_1, PRINCIPALS, USDC } from './test-fixtures.js';

const base = (rules: unknown[], extra: Record<string, unknown> = {}) => ({ policyVersion: 1, name: 't', principals: PRINCIPALS, rules, ...extra });

function failure(doc: unknown): PolicyDocumentError {
  try {
    compilePolicy(doc);
  } catch (e) {
    if (e instanceof PolicyDocumentError) return e;
    throw e;
  }
  throw new Error('expected the policy to be invalid');
}

const ok = { id: 'r', effect: 'allow', ops: ['personal_sign'] };

describe('policy document validation', () => {
  it('accepts the hot-wallet policy and the issue\'s example shape', () => {
    const p = compilePolicy(base(HOT_RULES));
    expect(p.rules.length).toBe(HOT_RULES.length);
    expect(p.principals.get('alice')?.alg).toBe('ecdsa-p256');
  });

  it('a principal may be given sessions of at most maxSeconds; without the member it has none', () => {
    const p = compilePolicy(base([], { principals: { ...PRINCIPALS, bob: { ...PRINCIPALS.bob, sessions: { maxSeconds: 900 } } } }));
    expect(p.principals.get('bob')?.sessions).toEqual({ maxSeconds: 900 });
    expect(p.principals.get('alice')?.sessions).toBeUndefined();
  });

  const bad: [string, unknown, string, RegExp?][] = [
    ['not an object', [], ''],
    ['unknown top-level field', { ...base([]), extra: 1 }, 'extra', /unknown field/],
    ['missing rules', { policyVersion: 1, name: 'x' }, 'rules', /required/],
    ['wrong version', base([], { policyVersion: 2 }), 'policyVersion', /unsupported version/],
    ['empty name', base([], { name: '' }), 'name'],
    ['unknown rule field', base([{ ...ok, maxValue: '1' }]), 'rules[0].maxValue', /unknown field/],
    ['typo in a nested field', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], erc20: { tokens: [USDC], recipient: [USDC] } }]), 'rules[0].erc20.recipient', /unknown field/],
    ['bad effect', base([{ id: 'x', effect: 'permit' }]), 'rules[0].effect'],
    ['bad id', base([{ id: 'has space', effect: 'deny' }]), 'rules[0].id'],
    ['duplicate rule id', base([ok, ok]), 'rules[1].id', /duplicate rule id/],
    ['unknown op', base([{ id: 'x', effect: 'allow', ops: ['eth_sendTransaction'] }]), 'rules[0].ops[0]', /unknown operation/],
    ['empty ops list', base([{ id: 'x', effect: 'allow', ops: [] }]), 'rules[0].ops', /empty list/],
    ['duplicate op', base([{ id: 'x', effect: 'allow', ops: ['personal_sign', 'personal_sign'] }]), 'rules[0].ops[1]', /duplicate/],
    ['bad address in to', base([{ id: 'x', effect: 'deny', to: ['0x123'] }]), 'rules[0].to[0]', /20-byte/],
    ['bad checksum in to', base([{ id: 'x', effect: 'deny', to: ['0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49'] }]), 'rules[0].to[0]', /checksum/],
    ['bad address in erc20.tokens', base([{ id: 'x', effect: 'allow', erc20: { tokens: ['usdc'] } }]), 'rules[0].erc20.tokens[0]'],
    ['bad bitcoin address', base([{ id: 'x', effect: 'allow', btc: { network: 'bitcoin', outputs: ['bc1qnotanaddress'] } }]), 'rules[0].btc.outputs[0]', /bitcoin address/],
    ['mainnet address on testnet', base([{ id: 'x', effect: 'allow', btc: { network: 'testnet', outputs: [PAYEE_1] } }]), 'rules[0].btc.outputs[0]', /testnet address/],
    ['unknown network', base([{ id: 'x', effect: 'allow', btc: { network: 'litecoin' } }]), 'rules[0].btc.network'],
    ['unknown principal in a rule', base([{ ...ok, principals: ['mallory'] }]), 'rules[0].principals[0]', /unknown principal "mallory"/],
    ['unknown principal in approvals', base([{ ...ok, approvals: { threshold: 1, from: ['alice', 'mallory'] } }]), 'rules[0].approvals.from[1]', /unknown principal/],
    ['host as an approver', base([{ ...ok, approvals: { threshold: 1, from: ['host'] } }]), 'rules[0].approvals.from[0]', /cannot approve/],
    ['threshold above approvers', base([{ ...ok, approvals: { threshold: 3, from: ['alice', 'bob'] } }]), 'rules[0].approvals.threshold', /impossible: threshold 3 > 2/],
    ['threshold zero', base([{ ...ok, approvals: { threshold: 0, from: ['alice'] } }]), 'rules[0].approvals.threshold', /positive integer/],
    ['requester-only approvers leave too few', base([{ ...ok, principals: ['alice'], approvals: { threshold: 2, from: ['alice', 'bob'] } }]), 'rules[0].approvals.threshold', /cannot approve its own/],
    ['approvals on a deny rule', base([{ id: 'x', effect: 'deny', approvals: { threshold: 1, from: ['alice'] } }]), 'rules[0].approvals', /deny rules take no approvals/],
    ['window on a deny rule', base([{ id: 'x', effect: 'deny', window: { seconds: 1, maxCount: 1 } }]), 'rules[0].window'],
    ['maxValueWei negative', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], maxValueWei: '-1' }]), 'rules[0].maxValueWei', /non-negative integer/],
    ['maxValueWei fractional', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], maxValueWei: '1.5' }]), 'rules[0].maxValueWei', /non-negative integer/],
    ['maxValueWei as a JSON number', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], maxValueWei: 1000 }]), 'rules[0].maxValueWei', /decimal strings/],
    ['maxValueWei hex', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], maxValueWei: '0x10' }]), 'rules[0].maxValueWei'],
    ['maxValueWei above 2^256', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], maxValueWei: (1n << 256n).toString() }]), 'rules[0].maxValueWei', /2\^256/],
    ['window maxValueWei negative', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], window: { seconds: 60, maxValueWei: '-5' } }]), 'rules[0].window.maxValueWei'],
    ['window without limits', base([{ ...ok, window: { seconds: 60 } }]), 'rules[0].window', /needs maxValueWei/],
    ['window seconds zero', base([{ ...ok, window: { seconds: 0, maxCount: 1 } }]), 'rules[0].window.seconds'],
    ['window maxAmount without erc20/btc', base([{ ...ok, window: { seconds: 60, maxAmount: '1' } }]), 'rules[0].window.maxAmount'],
    ['erc20 with personal_sign only', base([{ id: 'x', effect: 'allow', ops: ['personal_sign'], erc20: { tokens: [USDC] } }]), 'rules[0].erc20', /impossible/],
    ['btc with eth ops only', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], btc: { network: 'bitcoin' } }]), 'rules[0].btc', /impossible/],
    ['typedData with tx ops only', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], typedData: { primaryTypes: ['Mail'] } }]), 'rules[0].typedData', /impossible/],
    ['chainIds on personal_sign', base([{ ...ok, chainIds: [1] }]), 'rules[0].chainIds', /impossible/],
    ['maxValueWei on personal_sign', base([{ ...ok, maxValueWei: '1' }]), 'rules[0].maxValueWei', /impossible/],
    ['contractCreation with to', base([{ id: 'x', effect: 'allow', ops: ['eth_signTransaction'], contractCreation: true, to: [USDC] }]), 'rules[0].contractCreation', /impossible/],
    ['approve without spenders', base([{ id: 'x', effect: 'allow', erc20: { tokens: [USDC], functions: ['approve'] } }]), 'rules[0].erc20.spenders', /must name the spenders/],
    ['spenders without approve', base([{ id: 'x', effect: 'allow', erc20: { tokens: [USDC], spenders: [USDC] } }]), 'rules[0].erc20.spenders'],
    ['bad selector', base([{ id: 'x', effect: 'allow', calls: { contracts: [USDC], selectors: ['0x123'] } }]), 'rules[0].calls.selectors[0]', /selector/],
    ['permit caps without spenders', base([{ id: 'x', effect: 'allow', typedData: { permitMaxAmount: '1' } }]), 'rules[0].typedData.permitSpenders'],
    ['cap on a deny rule', base([{ id: 'x', effect: 'deny', ops: ['eth_signTransaction'], maxValueWei: '1' }]), 'rules[0].maxValueWei', /deny rules take no caps/],
    ['empty domain', base([{ id: 'x', effect: 'allow', typedData: { domains: [{}] } }]), 'rules[0].typedData.domains[0]'],
    ['keys on createKey only', base([{ id: 'x', effect: 'allow', ops: ['signer_createKey'], keys: ['0b9a8c4e-1f2d-4c3b-9a8e-7d6c5b4a3f21'] }]), 'rules[0].keys', /impossible/],
    ['bad key id', base([{ ...ok, keys: ['not-a-uuid'] }]), 'rules[0].keys[0]', /UUID/],
    ['chain id zero', base([{ id: 'x', effect: 'allow', chainIds: [0] }]), 'rules[0].chainIds[0]'],
    ['principal with an unknown alg', base([], { principals: { a: { alg: 'rsa', publicKey: 'x' } } }), 'principals.a.alg'],
    ['principal key not PEM', base([], { principals: { a: { alg: 'ed25519', publicKey: 'hello' } } }), 'principals.a.publicKey', /PEM/],
    ['principal key of the wrong type', base([], { principals: { a: { alg: 'ed25519', publicKey: PRINCIPALS.alice.publicKey } } }), 'principals.a.publicKey', /not an ed25519/],
    ['principal named host', base([], { principals: { host: PRINCIPALS.bob } }), 'principals.host'],
    ['unknown principal field', base([], { principals: { a: { ...PRINCIPALS.bob, role: 'x' } } }), 'principals.a.role', /unknown field/],
    ['sessions without maxSeconds', base([], { principals: { a: { ...PRINCIPALS.bob, sessions: {} } } }), 'principals.a.sessions.maxSeconds', /required/],
    ['sessions longer than a day', base([], { principals: { a: { ...PRINCIPALS.bob, sessions: { maxSeconds: 86401 } } } }), 'principals.a.sessions.maxSeconds', /at most 86400/],
    ['sessions of zero seconds', base([], { principals: { a: { ...PRINCIPALS.bob, sessions: { maxSeconds: 0 } } } }), 'principals.a.sessions.maxSeconds', /positive integer/],
    ['unknown sessions field', base([], { principals: { a: { ...PRINCIPALS.bob, sessions: { maxSeconds: 60, renew: true } } } }), 'principals.a.sessions.renew', /unknown field/],
  ];
  it.each(bad)('refuses %s, naming %s', (_name, doc, path, msg) => {
    const e = failure(doc);
    expect(e.code).toBe('POLICY_INVALID');
    expect(e.path).toBe(path);
    if (msg) expect(e.message).toMatch(msg);
    if (path !== '') expect(e.message.startsWith(`${path}: `)).toBe(true);
  });

  it('refuses non-strict JSON (duplicate key, float, trailing garbage)', () => {
    for (const text of ['{"policyVersion":1,"policyVersion":1}', '{"policyVersion":1.0}', '{} x', '']) {
      const e = (() => {
        try {
          parsePolicy(new TextEncoder().encode(text));
        } catch (err) {
          return err as PolicyDocumentError;
        }
        throw new Error('accepted');
      })();
      expect(e.code).toBe('POLICY_JSON');
      expect(e.message).not.toMatch(/manifest/);
    }
  });
});

describe('restartGuard', () => {
  const pay = { id: 'pay', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], maxValueWei: '10' };
  const guard = (g: Record<string, unknown>) => base([pay, ok], { restartGuard: { when: 'unclean', approvals: { threshold: 1, from: ['alice'] }, ...g } });

  it('defaults to the allow rules with a window or maxValueWei; names the guarded rules when given', () => {
    expect([...compilePolicy(guard({})).restartGuard!.rules]).toEqual(['pay']);
    expect(compilePolicy(guard({ when: 'always', rules: ['r'] })).restartGuard).toMatchObject({ when: 'always', rules: new Set(['r']), approvals: { threshold: 1, from: ['alice'], ttlSeconds: 86400 } });
  });

  const bad: [string, unknown, string, RegExp][] = [
    ['bad when', guard({ when: 'sometimes' }), 'restartGuard.when', /unclean/],
    ['unknown rule', guard({ rules: ['nope'] }), 'restartGuard.rules[0]', /no rule/],
    ['deny rule', base([pay, { id: 'd', effect: 'deny', ops: ['personal_sign'] }], { restartGuard: { when: 'unclean', rules: ['d'], approvals: { threshold: 1, from: ['alice'] } } }), 'restartGuard.rules[0]', /deny/],
    ['host approver', guard({ approvals: { threshold: 1, from: ['host'] } }), 'restartGuard.approvals.from[0]', /host cannot approve/],
    ['impossible threshold', guard({ approvals: { threshold: 2, from: ['alice'] } }), 'restartGuard.approvals.threshold', /impossible/],
    ['nothing to guard', base([ok], { restartGuard: { when: 'unclean', approvals: { threshold: 1, from: ['alice'] } } }), 'restartGuard.rules', /impossible/],
    ['reserved rule id', base([{ ...ok, id: 'restart-guard' }]), 'rules[0].id', /reserved/],
  ];
  for (const [what, doc, path, msg] of bad) {
    it(`refuses ${what}, naming ${path}`, () => {
      const e = failure(doc);
      expect(e.path).toBe(path);
      expect(e.message).toMatch(msg);
    });
  }
});

describe('policy hash', () => {
  it('is SHA-256 of the canonical JSON: key order and whitespace do not change it, meaning does', () => {
    const doc = base([ok]);
    const text1 = JSON.stringify(doc);
    const text2 = JSON.stringify({ rules: [{ ops: ['personal_sign'], effect: 'allow', id: 'r' }], principals: PRINCIPALS, name: 't', policyVersion: 1 }, null, 2);
    const h1 = policyHash(parsePolicy(new TextEncoder().encode(text1)));
    expect(policyHash(parsePolicy(new TextEncoder().encode(text2)))).toBe(h1);
    expect(h1).toMatch(/^[0-9a-f]{64}$/);
    // Independent recomputation: sorted keys, no whitespace (RFC 8785 for this subset).
    const sortKeys = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(sortKeys) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])])) : v;
    expect(createHash('sha256').update(JSON.stringify(sortKeys(doc))).digest('hex')).toBe(h1);
    const changed = base([{ ...ok, ops: ['eth_sign'] }]);
    expect(policyHash(compilePolicy(changed))).not.toBe(h1);
  });
});

describe('the shipped dev policy', () => {
  it('is valid, names every permissive switch explicitly, and says it is for development', async () => {
    const { devPolicy } = await import('./dev-policy.js');
    const p = devPolicy();
    expect(p.name).toBe('dev-permissive');
    expect(p.description).toMatch(/Never use in production/);
    expect(p.rules.map((r) => r.id)).toEqual(['dev-all', 'dev-create', 'dev-permits', 'dev-delegates', 'dev-raw']);
    expect(policyHash(p)).toMatch(/^[0-9a-f]{64}$/);
  });
});
