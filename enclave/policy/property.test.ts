/**
 * Property: for random intents and random policies, the evaluator decides exactly what an
 * independent reference evaluator decides — so nothing outside the policy is ever signed.
 *
 * The reference below is written from docs/policy.md, not from evaluate.ts: it flattens the
 * intent into plain facts and checks each rule as a list of (field present → condition)
 * clauses, then applies the four-step order literally. Deliberately slow and plain.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy, type CompiledPolicy } from './document.js';
import { PolicyDocumentError } from './errors.js';
import { evaluate, type Outcome } from './evaluate.js';
import type { DecodedCall, Grant, Intent } from './intent.js';
import { PRINCIPALS } from './test-fixtures.js';
import type { WindowState } from './windows.js';

const ADDR = ['0x' + 'a1'.repeat(20), '0x' + 'b2'.repeat(20), '0x' + 'c3'.repeat(20), '0x' + 'd4'.repeat(20)] as `0x${string}`[];
const KEYS = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222'];
const SCRIPTS = ['0014' + '01'.repeat(20), '0014' + '02'.repeat(20), '5120' + '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'];
// The bech32 addresses of SCRIPTS on mainnet, for rule documents.
const SCRIPT_ADDR: Record<string, string> = {};
const SELECTORS = ['0xa9059cbb', '0x095ea7b3', '0x3593564c', '0x12345678'];
const PRINCIPAL_NAMES = ['host', 'backend', 'alice', 'bob', 'carol'];
const OPS = ['eth_signTransaction', 'eth_sign', 'personal_sign', 'eth_signTypedData_v4', 'signer_signDigest', 'signer_signSchnorr', 'signer_signPsbt', 'signer_signAuthorization', 'signer_deriveKey', 'signer_createKey'] as const;
const AMOUNTS = [0n, 1n, 1000n, 10n ** 18n, 2n * 10n ** 18n, (1n << 160n) - 1n, (1n << 256n) - 1n];
const NOW = 1_000_000;

{
  // Derive addresses for the scripts with the production helper only for *writing* rules; the
  // reference compares scripts itself.
  const { scriptToAddress } = await import('./btc-network.js');
  for (const s of SCRIPTS) SCRIPT_ADDR[s] = scriptToAddress(Buffer.from(s, 'hex'), 'bitcoin')!;
}

// ── arbitraries ──────────────────────────────────────────────────────────────
const addr = fc.constantFrom(...ADDR);
const amt = fc.constantFrom(...AMOUNTS);
const sub = <T>(xs: readonly T[]) => fc.subarray([...xs], { minLength: 1 });

const callArb: fc.Arbitrary<DecodedCall> = fc.oneof(
  fc.constant<DecodedCall>({ kind: 'none' }),
  fc.record({ to: addr, amount: amt }).map((x): DecodedCall => ({ kind: 'erc20-transfer', ...x })),
  fc.record({ spender: addr, amount: amt }).map((x): DecodedCall => ({ kind: 'erc20-approve', ...x })),
  fc.record({ from: addr, to: addr, amount: amt }).map((x): DecodedCall => ({ kind: 'erc20-transferFrom', ...x })),
  fc.constantFrom(...SELECTORS.slice(2)).map((selector): DecodedCall => ({ kind: 'other', selector: selector as `0x${string}`, args: [], rest: '0x' })),
  fc.constant<DecodedCall>({ kind: 'short', data: '0x12' }),
);

const grantArb: fc.Arbitrary<Grant> = fc.record({
  kind: fc.constantFrom<Grant['kind']>('eip2612-permit', 'permit2-allowance', 'seaport-offer', 'unrecognised-permit'),
  token: fc.option(addr, { nil: null }),
  spender: fc.option(addr, { nil: null }),
  amount: amt,
}).map((g) => ({ ...g, unlimited: g.amount === AMOUNTS[6] }));

const keyArb = fc.constantFrom(...KEYS);
const intentArb: fc.Arbitrary<Intent> = fc.oneof(
  // Weighted toward the intents with the most structure (transactions, typed data, PSBTs).
  { weight: 4, arbitrary: fc.record({
    keyId: keyArb, chainId: fc.constantFrom(1, 5), to: fc.option(addr, { nil: null }), value: amt, call: callArb,
    maxFeeWei: fc.constantFrom(0n, 10n ** 15n, 10n ** 17n), delegates: fc.subarray(ADDR, { maxLength: 2 }),
  }).map(({ keyId, chainId, to, value, call, maxFeeWei, delegates }): Intent => ({
    op: 'eth_signTransaction', keyId,
    tx: {
      type: delegates.length > 0 ? 'eip7702' : 'eip1559', chainId, to, contractCreation: to === null, value, nonce: 0, data: '0x',
      call: to === null ? { kind: 'none' } : call,
      fees: { gas: 21000n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n, maxFeePerBlobGas: null, blobCount: 0, maxFeeWei },
      delegates: to === null ? [] : delegates,
    },
  })) },
  { weight: 3, arbitrary: fc.record({
    keyId: keyArb, chainId: fc.option(fc.constantFrom(1, 5), { nil: undefined }), vc: fc.option(addr, { nil: undefined }),
    primaryType: fc.constantFrom('Permit', 'Mail', 'PermitBatch', 'OrderComponents'), grants: fc.array(grantArb, { maxLength: 3 }),
  }).map(({ keyId, chainId, vc, primaryType, grants }): Intent => ({
    op: 'eth_signTypedData_v4', keyId,
    typedData: { domain: { ...(chainId === undefined ? {} : { chainId }), ...(vc === undefined ? {} : { verifyingContract: vc }) }, primaryType, grants, message: {} },
  })) },
  { weight: 3, arbitrary: fc.record({
    keyId: keyArb,
    outputs: fc.array(fc.record({ script: fc.constantFrom(...SCRIPTS), amount: fc.constantFrom(0n, 1000n, 100_000n, 10n ** 8n), change: fc.boolean() }), { maxLength: 3 }),
    fee: fc.option(fc.constantFrom(0n, 500n, 50_000n, 60_000n), { nil: null }),
  }).map(({ keyId, outputs, fee }): Intent => ({
    op: 'signer_signPsbt', keyId,
    psbt: {
      masterFingerprint: '00000000', fee,
      outputs: outputs.map((o, index) => ({ index, script: o.script, address: null, amount: o.amount, change: o.change, claimsOurs: o.change })),
      externalAmount: outputs.filter((o) => !o.change).reduce((a, o) => a + o.amount, 0n),
    },
  })) },
  fc.record({ keyId: keyArb, address: addr, chainId: fc.constantFrom(1, 5) }).map(({ keyId, address, chainId }): Intent => ({ op: 'signer_signAuthorization', keyId, authorization: { chainId, address, nonce: 0 } })),
  keyArb.map((keyId): Intent => ({ op: 'personal_sign', keyId, message: { length: 1, hex: '0x00', text: null } })),
  keyArb.map((keyId): Intent => ({ op: 'eth_sign', keyId, data: '0x00' })),
  keyArb.map((keyId): Intent => ({ op: 'signer_signDigest', keyId, digest: '0x00', path: null })),
  keyArb.map((keyId): Intent => ({ op: 'signer_signSchnorr', keyId, message: '0x00', path: null })),
  keyArb.map((keyId): Intent => ({ op: 'signer_deriveKey', keyId, path: 'm/0' })),
  fc.constant<Intent>({ op: 'signer_createKey', kind: 'secp256k1' }),
);

const dec = (a: fc.Arbitrary<bigint>) => a.map(String);
const ruleArb = (i: number) =>
  fc.record(
    {
      effect: fc.constantFrom('allow', 'allow', 'deny'),
      ops: sub(OPS),
      principals: sub(PRINCIPAL_NAMES),
      keys: sub(KEYS),
      chainIds: sub([1, 5]),
      to: sub(ADDR),
      maxValueWei: dec(amt),
      maxFeeWei: dec(fc.constantFrom(0n, 10n ** 15n, 10n ** 17n)),
      contractCreation: fc.boolean(),
      erc20: fc.record({ tokens: sub(ADDR), functions: sub(['transfer', 'approve', 'transferFrom']), recipients: sub(ADDR), spenders: sub(ADDR), maxAmount: dec(amt) }, { requiredKeys: ['tokens'] }),
      calls: fc.record({ contracts: sub(ADDR), selectors: sub(SELECTORS) }),
      typedData: fc.record({
        domains: fc.array(fc.record({ chainId: fc.constantFrom(1, 5), verifyingContract: addr }, { requiredKeys: [] }).filter((d) => Object.keys(d).length > 0), { minLength: 1, maxLength: 2 }),
        primaryTypes: sub(['Permit', 'Mail', 'PermitBatch']),
        permitSpenders: fc.oneof(fc.constant('any'), sub(ADDR)),
        permitTokens: sub(ADDR),
        permitMaxAmount: dec(amt),
      }, { requiredKeys: [] }),
      btc: fc.record({ network: fc.constant('bitcoin'), outputs: sub(SCRIPTS.map((s) => SCRIPT_ADDR[s])), maxOutputSats: dec(fc.constantFrom(1000n, 10n ** 8n)), maxFeeSats: dec(fc.constantFrom(500n, 50_000n)), maxTotalSats: dec(fc.constantFrom(1000n, 10n ** 8n)) }, { requiredKeys: ['network'] }),
      delegates: fc.oneof(fc.constant('any'), sub(ADDR)),
      window: fc.record({ seconds: fc.constantFrom(10, 100), maxValueWei: dec(amt), maxCount: fc.constantFrom(1, 2) }, { requiredKeys: ['seconds'] }),
      approvals: fc.record({ threshold: fc.constantFrom(1, 2), from: sub(['alice', 'bob', 'carol']) }),
    },
    { requiredKeys: ['effect', 'ops', 'principals', 'keys', 'chainIds', 'to', 'maxValueWei', 'maxFeeWei', 'contractCreation', 'erc20', 'calls', 'typedData', 'btc', 'delegates', 'window', 'approvals'] },
  ).chain((all) => {
    // Sparse rules (up to three matchers/options) match often enough to exercise every branch.
    const fields = Object.keys(all).filter((k) => k !== 'effect');
    return fc.subarray(fields, { maxLength: 3 }).map((pick) => ({ id: `r${i}`, effect: all.effect, ...Object.fromEntries(pick.map((k) => [k, (all as Doc)[k]])) }));
  });

const policyArb = fc.integer({ min: 0, max: 5 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => ruleArb(i))));

const windowsArb = fc.array(fc.record({ rule: fc.constantFrom('r0', 'r1', 'r2', 'r3', 'r4'), key: fc.constantFrom(...KEYS, '*'), age: fc.constantFrom(1, 50, 500), value: amt }), { maxLength: 4 })
  .map((es): WindowState => {
    const rules: WindowState['rules'] = {};
    for (const e of es) ((rules[e.rule] ??= {})[e.key] ??= []).push({ t: NOW - e.age, value: e.value.toString(), amount: '0' });
    return { version: 1, rules };
  });

// ── the reference evaluator ──────────────────────────────────────────────────
type Doc = Record<string, any>;
const RAW = ['signer_signDigest', 'signer_signSchnorr', 'eth_sign'];
const low = (xs: string[] | undefined) => xs?.map((x) => x.toLowerCase());
const has = (xs: unknown[] | undefined, x: unknown) => xs !== undefined && xs.includes(x);
const scriptOf = (a: string) => SCRIPTS.find((s) => SCRIPT_ADDR[s] === a);

interface Facts {
  op: string; key?: string; chain?: number; tx?: Extract<Intent, { op: 'eth_signTransaction' }>['tx'];
  delegates: string[]; counterparties: string[]; grants: Grant[]; td?: Extract<Intent, { op: 'eth_signTypedData_v4' }>['typedData'];
  psbt?: Extract<Intent, { op: 'signer_signPsbt' }>['psbt']; value: bigint; erc20?: { fn: string; token: string | null; party: string; amount: bigint };
}

function facts(i: Intent): Facts {
  const f: Facts = { op: i.op, delegates: [], counterparties: [], grants: [], value: 0n };
  if (i.keyId !== undefined) f.key = i.keyId;
  if (i.op === 'eth_signTransaction') {
    f.tx = i.tx; f.chain = i.tx.chainId; f.value = i.tx.value; f.delegates = i.tx.delegates;
    const c = i.tx.call;
    if (c.kind === 'erc20-transfer') f.erc20 = { fn: 'transfer', token: i.tx.to, party: c.to, amount: c.amount };
    if (c.kind === 'erc20-approve') f.erc20 = { fn: 'approve', token: i.tx.to, party: c.spender, amount: c.amount };
    if (c.kind === 'erc20-transferFrom') f.erc20 = { fn: 'transferFrom', token: i.tx.to, party: c.to, amount: c.amount };
    f.counterparties = [...(i.tx.to ? [i.tx.to] : []), ...(f.erc20 ? [f.erc20.party] : []), ...i.tx.delegates];
  }
  if (i.op === 'eth_signTypedData_v4') { f.td = i.typedData; f.chain = i.typedData.domain.chainId; f.grants = i.typedData.grants; f.counterparties = f.grants.flatMap((g) => (g.spender ? [g.spender] : [])); }
  if (i.op === 'signer_signAuthorization') { f.chain = i.authorization.chainId; f.delegates = [i.authorization.address]; f.counterparties = [i.authorization.address]; }
  if (i.op === 'signer_signPsbt') f.psbt = i.psbt;
  return f;
}

function selectorOf(tx: NonNullable<Facts['tx']>): string | null {
  const c = tx.call;
  return c.kind === 'erc20-transfer' ? '0xa9059cbb' : c.kind === 'erc20-approve' ? '0x095ea7b3' : c.kind === 'erc20-transferFrom' ? '0x23b872dd' : c.kind === 'other' ? c.selector : null;
}

function domainOk(r: Doc, f: Facts): boolean {
  return r.typedData?.domains === undefined || r.typedData.domains.some((d: Doc) =>
    (d.chainId === undefined || d.chainId === f.td!.domain.chainId) && (d.verifyingContract === undefined || d.verifyingContract === f.td!.domain.verifyingContract));
}

function refAllow(r: Doc, f: Facts, principal: string): boolean {
  const clauses: [boolean, () => boolean][] = [
    [true, () => (r.ops ? has(r.ops, f.op) : !RAW.includes(f.op))],
    [r.principals !== undefined, () => has(r.principals, principal)],
    [r.keys !== undefined, () => has(low(r.keys), f.key)],
    [r.chainIds !== undefined, () => has(r.chainIds, f.chain)],
    [f.tx !== undefined, () => (r.contractCreation === true) === f.tx!.contractCreation],
    [r.to !== undefined, () => f.tx !== undefined && has(low(r.to), f.tx.to)],
    [r.to !== undefined && !r.erc20 && !r.calls, () => f.tx !== undefined && f.tx.call.kind === 'none'],
    [r.maxValueWei !== undefined, () => f.tx === undefined || f.tx.value <= BigInt(r.maxValueWei)],
    [r.maxFeeWei !== undefined, () => f.tx !== undefined && f.tx.fees.maxFeeWei <= BigInt(r.maxFeeWei)],
    [r.contractCreation === true, () => f.tx !== undefined],
    [r.erc20 !== undefined, () => {
      const e = f.erc20; const re = r.erc20;
      if (!e || f.tx!.value !== 0n || !has(low(re.tokens), e.token) || !has(re.functions ?? ['transfer'], e.fn)) return false;
      if (e.fn === 'approve' ? !has(low(re.spenders), e.party) : re.recipients !== undefined && !has(low(re.recipients), e.party)) return false;
      return re.maxAmount === undefined || e.amount <= BigInt(re.maxAmount);
    }],
    [r.calls !== undefined, () => f.tx !== undefined && has(low(r.calls.contracts), f.tx.to) && has(low(r.calls.selectors), selectorOf(f.tx))],
    [r.delegates !== undefined, () => f.delegates.length > 0],
    [f.delegates.length > 0, () => r.delegates === 'any' || (r.delegates !== undefined && f.delegates.every((d) => has(low(r.delegates), d)))],
    [r.typedData !== undefined, () => f.td !== undefined && domainOk(r, f) && (r.typedData.primaryTypes === undefined || has(r.typedData.primaryTypes, f.td.primaryType))],
    [f.grants.length > 0, () => {
      const t = r.typedData;
      if (!t || t.permitSpenders === undefined) return false;
      return f.grants.every((g) => (t.permitSpenders === 'any' || (g.spender !== null && has(low(t.permitSpenders), g.spender)))
        && (t.permitTokens === undefined || (g.token !== null && has(low(t.permitTokens), g.token)))
        && (t.permitMaxAmount === undefined || g.amount <= BigInt(t.permitMaxAmount)));
    }],
    [r.btc !== undefined, () => {
      const p = f.psbt; const b = r.btc;
      if (!p) return false;
      const ext = p.outputs.filter((o) => !o.change);
      if (b.outputs && !ext.every((o) => b.outputs.map(scriptOf).includes(o.script))) return false;
      if (b.maxOutputSats && !ext.every((o) => o.amount <= BigInt(b.maxOutputSats))) return false;
      if (b.maxTotalSats && ext.reduce((a, o) => a + o.amount, 0n) > BigInt(b.maxTotalSats)) return false;
      return b.maxFeeSats === undefined || (p.fee !== null && p.fee <= BigInt(b.maxFeeSats));
    }],
  ];
  return clauses.every(([applies, ok]) => !applies || ok());
}

function refDeny(r: Doc, f: Facts, principal: string): boolean {
  if (r.ops && !has(r.ops, f.op)) return false;
  if (r.principals && !has(r.principals, principal)) return false;
  if (r.keys && !has(low(r.keys), f.key)) return false;
  if (r.chainIds && !has(r.chainIds, f.chain)) return false;
  if (r.to && !f.counterparties.some((c) => has(low(r.to), c))) return false;
  if (r.contractCreation === true && !f.tx?.contractCreation) return false;
  if (r.erc20) {
    const e = f.erc20;
    if (!e || !has(r.erc20.functions ?? ['transfer'], e.fn) || !has(low(r.erc20.tokens), e.token)) return false;
    if ((r.erc20.recipients || r.erc20.spenders) && !has(low(e.fn === 'approve' ? r.erc20.spenders : r.erc20.recipients), e.party)) return false;
  }
  if (r.calls && !(f.tx && has(low(r.calls.contracts), f.tx.to) && has(low(r.calls.selectors), selectorOf(f.tx)))) return false;
  if (r.delegates && !(f.delegates.length > 0 && (r.delegates === 'any' || f.delegates.some((d) => has(low(r.delegates), d))))) return false;
  if (r.typedData) {
    if (!f.td || !domainOk(r, f)) return false;
    if (r.typedData.primaryTypes && !has(r.typedData.primaryTypes, f.td.primaryType)) return false;
    if (r.typedData.permitSpenders && !f.grants.some((g) => r.typedData.permitSpenders === 'any' || has(low(r.typedData.permitSpenders), g.spender))) return false;
    if (r.typedData.permitTokens && !f.grants.some((g) => has(low(r.typedData.permitTokens), g.token))) return false;
  }
  if (r.btc) {
    if (!f.psbt) return false;
    if (r.btc.outputs && !f.psbt.outputs.some((o) => !o.change && r.btc.outputs.map(scriptOf).includes(o.script))) return false;
  }
  return true;
}

function refWindowOk(r: Doc, f: Facts, w: WindowState): boolean {
  if (!r.window) return true;
  const entries = (w.rules[r.id]?.[f.key ?? '*'] ?? []).filter((e) => e.t > NOW - r.window.seconds);
  if (r.window.maxCount !== undefined && entries.length + 1 > r.window.maxCount) return false;
  const spent = entries.reduce((a, e) => a + BigInt(e.value), 0n);
  return r.window.maxValueWei === undefined || spent + f.value <= BigInt(r.window.maxValueWei);
}

function reference(doc: Doc, i: Intent, principal: string, approvals: string[], rejections: string[], w: WindowState): { outcome: Outcome; rule: string | null } {
  const f = facts(i);
  const rules: Doc[] = doc.rules;
  const deny = rules.find((r) => r.effect === 'deny' && refDeny(r, f, principal));
  if (deny) return { outcome: 'refused', rule: deny.id };
  const candidates = rules.filter((r) => r.effect === 'allow' && refAllow(r, f, principal) && refWindowOk(r, f, w))
    .filter((r) => !r.approvals || !rejections.some((x) => r.approvals.from.includes(x) && x !== principal));
  const count = (r: Doc) => new Set(approvals.filter((a) => r.approvals.from.includes(a) && a !== principal)).size;
  const signed = candidates.find((r) => !r.approvals || count(r) >= r.approvals.threshold);
  if (signed) return { outcome: 'signed', rule: signed.id };
  const pending = candidates.find((r) => r.approvals);
  if (pending) return { outcome: 'pending', rule: pending.id };
  return { outcome: 'refused', rule: null };
}

function tryCompile(doc: Doc): CompiledPolicy | undefined {
  try {
    return compilePolicy(doc);
  } catch (e) {
    if (e instanceof PolicyDocumentError) return undefined;
    throw e;
  }
}

describe('property: the evaluator never allows what the policy does not', () => {
  it('agrees with the reference evaluator on random intents and policies', () => {
    let valid = 0;
    let signed = 0;
    fc.assert(
      fc.property(
        policyArb, intentArb, fc.constantFrom(...PRINCIPAL_NAMES), fc.subarray(['alice', 'bob', 'carol', 'backend', 'alice']),
        fc.oneof(fc.constant<string[]>([]), fc.subarray(['alice', 'bob', 'carol'])), windowsArb,
        (rules, intent, principal, approvals, rejections, windows) => {
          const doc = { policyVersion: 1, name: 'p', principals: PRINCIPALS, rules };
          const p = tryCompile(doc);
          if (!p) return;
          valid++;
          const d = evaluate(p, intent, { principal, approvals, rejections, now: NOW, windows });
          const ref = reference(doc, intent, principal, approvals, rejections, windows);
          // A refusal's rule may name the rule whose window or veto stopped it; compare rules for signed/pending and deny refusals.
          if (d.outcome === 'signed') signed++;
          expect(d.outcome).toBe(ref.outcome);
          if (ref.outcome !== 'refused' || ref.rule !== null) expect(d.rule).toBe(ref.rule);
        },
      ),
      { numRuns: 2500, seed: 0x9011c7 },
    );
    // The generator must exercise the interesting part, not only invalid policies.
    expect(valid).toBeGreaterThan(600);
    expect(signed).toBeGreaterThan(100);
  });

  it('also holds with random seeds (smaller run)', () => {
    fc.assert(
      fc.property(policyArb, intentArb, fc.constantFrom(...PRINCIPAL_NAMES), windowsArb, (rules, intent, principal, windows) => {
        const doc = { policyVersion: 1, name: 'p', principals: PRINCIPALS, rules };
        const p = tryCompile(doc);
        if (!p) return;
        const d = evaluate(p, intent, { principal, now: NOW, windows });
        expect(d.outcome).toBe(reference(doc, intent, principal, [], [], windows).outcome);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('property: the rule index (rule-index.ts) skips only rules that cannot match', () => {
  const bigPolicyArb = fc.integer({ min: 5, max: 40 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => ruleArb(i))));
  const requestArb = fc.record({ intent: intentArb, principal: fc.constantFrom(...PRINCIPAL_NAMES), approvals: fc.subarray(['alice', 'bob', 'carol']), windows: windowsArb });
  const upper = (i: Intent): Intent => (i.keyId === undefined ? i : { ...i, keyId: i.keyId.toUpperCase() });

  it('decides what the full scan decides (explain: every rule), with the same rule, reason and approvals, on one policy for many callers and keys', () => {
    let compared = 0;
    let decidedByRule = 0;
    fc.assert(
      fc.property(bigPolicyArb, fc.array(requestArb, { minLength: 20, maxLength: 20 }), (rules, requests) => {
        // Random rules are often impossible (a policy error): keep the ones that compile alone.
        const valid = rules.filter((r) => tryCompile({ policyVersion: 1, name: 'p', principals: PRINCIPALS, rules: [r] }) !== undefined);
        const p = tryCompile({ policyVersion: 1, name: 'p', principals: PRINCIPALS, rules: valid });
        if (!p) return;
        for (const [n, r] of requests.entries()) {
          // Key ids are matched case-insensitively: every other request names its key in upper case.
          const intent = n % 2 === 0 ? r.intent : upper(r.intent);
          const ctx = { principal: r.principal, approvals: r.approvals, now: NOW, windows: r.windows };
          const { trace: _trace, ...full } = evaluate(p, intent, { ...ctx, explain: true });
          const indexed = evaluate(p, intent, ctx);
          expect(indexed).toEqual(full);
          compared++;
          if (full.rule !== null) decidedByRule++;
        }
      }),
      { numRuns: 300, seed: 0x1de7 },
    );
    expect(compared).toBeGreaterThan(2000);
    expect(decidedByRule).toBeGreaterThan(300);
  });
});
