import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplayCache } from './replay-cache.js';

describe('replay cache', () => {
  it('property: a (principal, requestId) is admitted at most once before its expiry, and the cache never exceeds its bound', () => {
    const step = fc.record({
      advance: fc.integer({ min: 0, max: 40 }),
      principal: fc.constantFrom('backend', 'alice'),
      id: fc.constantFrom('req-00000001', 'req-00000002', 'req-00000003', 'req-00000004'),
      ttl: fc.integer({ min: 1, max: 60 }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(step, { maxLength: 40 }), (max, steps) => {
        const cache = new ReplayCache({ maxEntries: max });
        // Reference model: the expiry of the last admission of each key.
        const admitted = new Map<string, number>();
        let now = 1000;
        for (const s of steps) {
          now += s.advance;
          const k = `${s.principal}/${s.id}`;
          const live = [...admitted.values()].filter((e) => e > now).length;
          let outcome: string;
          try {
            cache.admit(s.principal, s.id, now + s.ttl, now);
            outcome = 'ok';
          } catch (e) {
            outcome = (e as { code: string }).code;
          }
          const prev = admitted.get(k);
          const want = prev !== undefined && prev > now ? 'AUTH_REPLAYED' : live >= max ? 'AUTH_REPLAY_CACHE_FULL' : 'ok';
          expect(outcome).toBe(want);
          if (outcome === 'ok') admitted.set(k, now + s.ttl);
          expect(cache.size).toBeLessThanOrEqual(max);
        }
      }),
      { numRuns: 200 },
    );
  });
});
