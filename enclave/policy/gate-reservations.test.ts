/**
 * The gate counts in-flight window reservations by adding them to the committed usage of the
 * rule and key being decided (gate.ts, evaluate.ts windowMismatch). Reference: the earlier
 * definition — every reservation replayed into a copy of the committed state with recordSigned,
 * then evaluated. For random interleavings of authorize, commit and release over two keys, two
 * window rules (count and value) and a moving clock, both give the same decision every time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildIntent } from './build-intent.js';
import { evaluate, recordSigned, type Decision } from './evaluate.js';
import { createPolicyGate, type PolicyDeniedError, type Ticket } from './gate.js';
import type { Intent } from './intent.js';
import { ETH, KEY_1, KEY_2, policy, tx } from './test-fixtures.js';

const P = policy([
  { id: 'count', effect: 'allow', ops: ['signer_signDigest'], window: { seconds: 30, maxCount: 4 } },
  { id: 'value', effect: 'allow', ops: ['eth_signTransaction'], window: { seconds: 20, maxValueWei: (5n * ETH).toString(), maxCount: 100 } },
]);

function intentOf(kind: 'digest' | 'tx', key: string, eth: number): Intent {
  return kind === 'digest'
    ? buildIntent('signer_signDigest', { digest: `0x${'11'.repeat(32)}` }, { keyId: key })
    : buildIntent('eth_signTransaction', tx({ value: BigInt(eth) * ETH }), { keyId: key });
}

type Step = { op: 'authorize'; kind: 'digest' | 'tx'; key: string; eth: number; dt: number } | { op: 'commit' | 'release'; pick: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('authorize' as const), kind: fc.constantFrom('digest' as const, 'tx' as const), key: fc.constantFrom(KEY_1, KEY_2), eth: fc.integer({ min: 0, max: 3 }), dt: fc.integer({ min: 0, max: 12 }) }),
  fc.record({ op: fc.constantFrom('commit' as const, 'release' as const), pick: fc.nat() }),
);

describe('policy gate: in-flight window reservations', () => {
  it('decide as replaying every reservation into the committed state would (property)', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 120 }), (steps) => {
        const clock = { now: 1_800_000_000 };
        const gate = createPolicyGate(P, { source: 'file', now: () => clock.now });
        const open: Ticket[] = [];
        for (const s of steps) {
          if (s.op === 'authorize') {
            clock.now += s.dt;
            const intent = intentOf(s.kind, s.key, s.eth);
            // The reference decision, on the committed state with every open reservation replayed.
            let w = gate.windows();
            for (const t of open) w = recordSigned(P, w, t.decision, t.intent, t.now);
            const want: Decision = evaluate(P, intent, { principal: 'host', now: clock.now, windows: w });
            let got: string;
            try {
              const t = gate.authorize(intent, 'host');
              open.push(t);
              got = `signed ${t.decision.rule}`;
            } catch (e) {
              got = `refused ${(e as PolicyDeniedError).wireData.rule}`;
            }
            expect(got).toBe(`${want.outcome} ${want.rule}`);
          } else if (open.length > 0) {
            const [t] = open.splice(s.pick % open.length, 1);
            if (s.op === 'commit') gate.commit(t!);
            else gate.release(t!);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
