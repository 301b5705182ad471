/**
 * Policy evaluation cost per request (µs) at 10, 100 and 1,000 rules.
 *
 * Each policy is a realistic mix (10 % deny rules by counterparty; allow rules for plain
 * transfers, ERC-20 payouts, contract calls, permits, PSBT payouts, messages), generated with
 * distinct addresses so that the benchmark requests are decided by the LAST rules or by the
 * default — the evaluator scans every rule (worst case). Intents are built once per request
 * kind (that cost — the signer's own parse — is reported separately; the signer pays it anyway).
 *
 * Usage: npm run build && node dist/bench/policy.js   (writes bench/results/policy.json, < 20 s)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { JsonLike } from '../common/cbor-json.js';
import { buildIntent } from '../enclave/policy/build-intent.js';
import { compilePolicy, type CompiledPolicy } from '../enclave/policy/document.js';
import { evaluate } from '../enclave/policy/evaluate.js';
import type { Intent, PolicyOp } from '../enclave/policy/intent.js';
import {
  derivePublicKey, erc20Transfer, FINGERPRINT, KEY_1, PAYEE_1, permit2Batch, psbt, tx, USDC, WETH,
} from '../enclave/policy/test-fixtures.js';
import { emptyWindowState, recordWindow } from '../enclave/policy/windows.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addr = (n: number, salt: number) => `0x${salt.toString(16).padStart(8, '0')}${n.toString(16).padStart(32, '0')}`;
const ROUTER = '0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad';

function rules(n: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const id = `r${i}`;
    const last = i >= n - 10; // the last ten rules decide the benchmark requests
    switch (i % 10) {
      case 0:
        out.push({ id, effect: 'deny', to: [addr(i, 0xdead), addr(i + 1, 0xdead)] });
        break;
      case 1:
      case 2:
        out.push({ id, effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [addr(i, 1), addr(i, 2), ...(last ? ['0x1111111111111111111111111111111111111111'] : [])], maxValueWei: '1000000000000000000', window: { seconds: 86400, maxValueWei: '5000000000000000000', maxCount: 50 } });
        break;
      case 3:
      case 4:
        out.push({ id, effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], erc20: { tokens: [last ? USDC : addr(i, 3)], recipients: [addr(i, 4), '0x3333333333333333333333333333333333333333'], maxAmount: '1000000000' } });
        break;
      case 5:
        out.push({ id, effect: 'allow', ops: ['eth_signTransaction'], calls: { contracts: [addr(i, 5)], selectors: ['0x3593564c'] }, maxValueWei: '1' });
        break;
      case 6:
        out.push({ id, effect: 'allow', ops: ['eth_signTypedData_v4'], typedData: { domains: [{ chainId: 1 }], permitSpenders: [last ? ROUTER : addr(i, 6)], permitTokens: [USDC, WETH], permitMaxAmount: '1000000000000000000000000' } });
        break;
      case 7:
        out.push({ id, effect: 'allow', ops: ['signer_signPsbt'], btc: { network: 'bitcoin', ...(last ? { outputs: [PAYEE_1] } : { maxTotalSats: '1' }), maxFeeSats: '50000' } });
        break;
      case 8:
        out.push({ id, effect: 'allow', ops: ['personal_sign'], keys: [`${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`] });
        break;
      default:
        out.push({ id, effect: 'allow', ops: ['eth_signTransaction'], to: [addr(i, 9)], approvals: { threshold: 1, from: ['alice'] } });
    }
  }
  return out;
}

const PEM = `-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n`;

function policyOf(n: number): CompiledPolicy {
  return compilePolicy({ policyVersion: 1, name: `bench-${n}`, principals: { alice: { alg: 'ed25519', publicKey: PEM } }, rules: rules(n) });
}

const REQUESTS: [string, PolicyOp, Record<string, JsonLike>][] = [
  ['eth transfer (allowed, window checked)', 'eth_signTransaction', tx({ value: 10n ** 17n })],
  ['USDC transfer (allowed)', 'eth_signTransaction', tx({ to: USDC, data: erc20Transfer('0x3333333333333333333333333333333333333333', 1_000_000n), gas: 65000n })],
  ['Permit2 batch (allowed)', 'eth_signTypedData_v4', permit2Batch(ROUTER, [[USDC, 1n], [WETH, 2n]])],
  ['PSBT payout (allowed)', 'signer_signPsbt', psbt([{ to: PAYEE_1, amount: 990_000n }])],
  ['unknown call (refused by default)', 'eth_signTransaction', tx({ to: '0x9999999999999999999999999999999999999999', data: '0xdeadbeef' })],
];

/**
 * A custody policy partitioned by client: each rule names its client (principal) and the key it
 * governs, a tenth of them deny a key. The request is the last client's signer_signDigest on its
 * own key, so every rule names the op: the engine's index by caller and key
 * (enclave/policy/rule-index.ts) leaves it one or two rules to check instead of all of them.
 */
const CLIENTS = 20;
const keyOf = (i: number) => `${i.toString(16).padStart(8, '0')}-0000-4000-8000-00000000c11e`;
function clientRules(n: number): unknown[] {
  return Array.from({ length: n }, (_, i) =>
    i % 10 === 0 && i < n - 1
      ? { id: `k${i}`, effect: 'deny', ops: ['signer_signDigest', 'personal_sign'], keys: [keyOf(i)] }
      : { id: `k${i}`, effect: 'allow', ops: ['signer_signDigest', 'personal_sign'], principals: [`client${i % CLIENTS}`], keys: [keyOf(i)] },
  );
}
function clientPolicyOf(n: number): CompiledPolicy {
  const principals = Object.fromEntries(Array.from({ length: CLIENTS }, (_, c) => [`client${c}`, { alg: 'ed25519', publicKey: PEM }]));
  return compilePolicy({ policyVersion: 1, name: `bench-clients-${n}`, principals, rules: clientRules(n) });
}

function measure(fn: () => void, ms: number): { meanUs: number; iterations: number } {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    t = performance.now();
  }
  return { meanUs: Math.round(((t - t0) * 1000 * 100) / n) / 100, iterations: n };
}

const started = performance.now();
const intents: [string, Intent][] = REQUESTS.map(([name, op, req]) => [name, buildIntent(op, req, { keyId: KEY_1, masterFingerprint: FINGERPRINT, derivePublicKey })]);
const build = Object.fromEntries(REQUESTS.map(([name, op, req]) => [name, measure(() => buildIntent(op, req, { keyId: KEY_1, masterFingerprint: FINGERPRINT, derivePublicKey }), 250).meanUs]));

let windows = emptyWindowState();
for (let t = 0; t < 40; t++) windows = recordWindow(windows, 'r991', KEY_1, { t: 1_800_000_000 - t * 60, value: '1000000000000000', amount: '0' }, 86400);

const results: Record<string, unknown>[] = [];
for (const n of [10, 100, 1000]) {
  const compileMs = Math.round(measure(() => policyOf(n), 300).meanUs) / 1000;
  const p = policyOf(n);
  const per: Record<string, { outcome: string; rule: string | null; meanUs: number }> = {};
  for (const [name, intent] of intents) {
    const ctx = { principal: 'host', now: 1_800_000_000, windows };
    const d = evaluate(p, intent, ctx);
    per[name] = { outcome: d.outcome, rule: d.rule, meanUs: measure(() => evaluate(p, intent, ctx), 400).meanUs };
  }
  const mean = Object.values(per).reduce((a, x) => a + x.meanUs, 0) / intents.length;
  results.push({ rules: n, compileMs, meanUsPerRequest: Math.round(mean * 100) / 100, requests: per });
  console.log(`${String(n).padStart(5)} rules: ${mean.toFixed(2)} µs/request (compile ${compileMs} ms)`);
  for (const [name, r] of Object.entries(per)) console.log(`        ${name.padEnd(40)} ${String(r.meanUs).padStart(8)} µs  ${r.outcome} (${r.rule ?? 'default'})`);
}
console.log('intent build (the signer parse, paid anyway):', build);

const perClient: Record<string, unknown>[] = [];
for (const n of [10, 100, 1000]) {
  const p = clientPolicyOf(n);
  const last = n - 1;
  const intent: Intent = { op: 'signer_signDigest', keyId: keyOf(last), digest: `0x${'11'.repeat(32)}`, path: null };
  const ctx = { principal: `client${last % CLIENTS}`, now: 1_800_000_000 };
  const d = evaluate(p, intent, ctx);
  const other = evaluate(p, { ...intent, keyId: keyOf(last - 1) }, ctx);
  const r = { rules: n, outcome: d.outcome, rule: d.rule, meanUs: measure(() => evaluate(p, intent, ctx), 400).meanUs, anotherClientsKey: { outcome: other.outcome, meanUs: measure(() => evaluate(p, { ...intent, keyId: keyOf(last - 1) }, ctx), 400).meanUs } };
  perClient.push(r);
  console.log(`${String(n).padStart(5)} rules by client and key: ${r.meanUs} µs (${d.outcome} by ${d.rule}); another client's key: ${r.anotherClientsKey.meanUs} µs (${other.outcome})`);
}

const out = {
  benchmark: 'policy-evaluation',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  method: 'evaluate() on prebuilt intents; each request is decided by one of the last ten rules or by the default, so every rule that can match its op is checked; mean over ≥ 400 ms per cell after warm-up',
  results,
  byClientAndKey: {
    method: `${CLIENTS} clients; rule i allows signer_signDigest and personal_sign for client i mod ${CLIENTS} on key i (a tenth deny key i instead); the request is the last client's signer_signDigest on the last key, and the same client on the key before it (refused by default)`,
    results: perClient,
  },
  intentBuildUs: build,
  durationMs: Math.round(performance.now() - started),
};
mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
writeFileSync(join(REPO, 'bench', 'results', 'policy.json'), `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote bench/results/policy.json in ${out.durationMs} ms`);
