/**
 * In-process cost of a window rule on the enclave's main thread, as a function of how many
 * signatures the window holds and how many signed requests the replay cache holds: the same
 * modules the enclave runs (enclave/policy/gate.ts, durable.ts; enclave/auth/replay-cache.ts),
 * without processes or sockets. Explains the end-to-end "window" configuration of the
 * policy-cost section of bench/e2e.ts, whose occupancy depends on its own throughput.
 *
 * Per signature the enclave: decides (evaluate: windowUsage scans every entry of the rule and
 * key, after effective() replayed every in-flight reservation), commits (recordWindow copies the
 * list, compacted past 256 entries), and seals the whole state (plain JSON of the windows and
 * approvals, AES-256-GCM; the replay cache is no longer sealed); the parent then writes that
 * record to SQLite (not measured here).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ReplayCache } from '../enclave/auth/replay-cache.js';
import { createApprovalsGate } from '../enclave/policy/approvals-gate.js';
import { buildIntent } from '../enclave/policy/build-intent.js';
import { compilePolicy } from '../enclave/policy/document.js';
import { createDurableState } from '../enclave/policy/durable.js';
import { createPolicyGate } from '../enclave/policy/gate.js';

export interface WindowCostRow {
  /** Signatures in the window (rule × key) when measured. */
  windowEntries: number;
  /** Live entries in the replay cache (sealed with the state). */
  replayEntries: number;
  /** µs per signature on the enclave main thread. */
  authorizeUs: number;
  commitUs: number;
  sealUs: number;
  totalUs: number;
  /** Size of one sealed record (what the parent writes per signature). */
  sealedBytes: number;
}

function policyDoc(windowSeconds: number) {
  return {
    policyVersion: 1,
    name: 'bench-window-cost',
    rules: [{ id: 'digest-window', effect: 'allow', ops: ['signer_signDigest'], window: { seconds: windowSeconds, maxCount: 1_000_000_000 } }],
  };
}

function once(windowEntries: number, replayEntries: number, iterations: number): WindowCostRow {
  const now = 1_800_000_000;
  const policy = compilePolicy(policyDoc(86_400));
  const gate = createPolicyGate(policy, { source: 'file', now: () => now });
  const approvals = createApprovalsGate(gate);
  const replay = new ReplayCache({ maxEntries: Math.max(65_536, replayEntries + 1) });
  for (let i = 0; i < replayEntries; i++) replay.admit('backend', `r${i.toString(36).padStart(10, '0')}`, now + 60, now);
  // The replay cache is filled as a running enclave's would be; it is no longer sealed (durable.ts).
  void replay;
  const durable = createDurableState(gate, approvals);
  durable.attach(new Uint8Array(32).fill(7), randomUUID(), true);
  durable.restore(null);
  const keyId = randomUUID();
  const intent = buildIntent('signer_signDigest', { digest: `0x${'11'.repeat(32)}` }, { keyId });
  for (let i = 0; i < windowEntries; i++) gate.commit(gate.authorize(intent, 'host'));
  let a = 0;
  let c = 0;
  let s = 0;
  let bytes = 0;
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const t = gate.authorize(intent, 'host');
    const t1 = performance.now();
    gate.commit(t);
    const t2 = performance.now();
    const sealed = durable.seal();
    const t3 = performance.now();
    a += t1 - t0;
    c += t2 - t1;
    s += t3 - t2;
    bytes = JSON.stringify(sealed).length;
  }
  const us = (x: number) => +((x * 1000) / iterations).toFixed(1);
  return { windowEntries, replayEntries, authorizeUs: us(a), commitUs: us(c), sealUs: us(s), totalUs: us(a + c + s), sealedBytes: bytes };
}

/** A few points: window entries 0–10,000 without signed requests, then replay-cache entries 0–50,000 with a small window. */
export function measureWindowCost(points: readonly [number, number][] = [[0, 0], [100, 0], [1_000, 0], [10_000, 0], [100, 10_000], [100, 50_000]]): WindowCostRow[] {
  once(100, 100, 50); // warm-up (JIT)
  return points.map(([w, r]) => once(w, r, w + r >= 10_000 ? 20 : 100));
}
