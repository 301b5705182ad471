/**
 * ChurnMap: a Map's behaviour (order included) across renewals, snapshot
 * iteration, and the reason it exists — with a plain Map as the control, each
 * in a fresh child process: once a Map's table is in the old generation,
 * entries it deleted stay alive (and get promoted) until a full collection.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ChurnMap, RENEW_FACTOR, RENEW_MIN } from './churn-map.js';

/**
 * Old-generation growth (bytes) while 200,000 entries of ~2 KB of objects come and go, 64 live,
 * in a map whose storage lived through collections first (as after an idle start). Runs in a
 * child process on the build in dist/ (as the worker pool's tests do) after one warm-up round.
 */
function oldGenerationGrowth(kind: 'plain' | 'churn'): number {
  const built = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'common', 'churn-map.js');
  if (!existsSync(built)) throw new Error(`not built: ${built} (run npm run build)`);
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    const { ChurnMap } = await import(${JSON.stringify(pathToFileURL(built).href)});
    const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    const run = (m) => {
      m.set(-1, 0);
      m.delete(-1);
      for (let i = 0; i < 3; i++) gc({ type: 'minor' });
      gc();
      const before = oldSpace();
      const live = [];
      for (let id = 0; id < 200000; id++) {
        m.set(id, { id, parts: Array.from({ length: 20 }, (_, k) => ({ k, s: 'part ' + k })) });
        live.push(id);
        if (live.length > 64) m.delete(live.shift());
      }
      return oldSpace() - before;
    };
    run(new Map()); // warm-up: the first round of a fresh process does not show the effect
    console.log(run(${kind === 'plain' ? 'new Map()' : 'new ChurnMap()'}));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`probe failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

describe('ChurnMap', () => {
  it('gets, sets, deletes and counts like a Map, and keeps insertion order across renewals', () => {
    const m = new ChurnMap<number, string>();
    const control = new Map<number, string>();
    for (let i = 0; i < 10 * RENEW_MIN; i++) {
      m.set(i, `v${i}`);
      control.set(i, `v${i}`);
      if (i % 5 !== 0) {
        expect(m.delete(i - 1)).toBe(control.delete(i - 1));
      }
      if (i % 5 === 0 && i >= 50) {
        expect(m.delete(i - 50)).toBe(control.delete(i - 50));
      }
      if (i % 7 === 0) {
        // LRU-style touch: re-inserting moves the entry to the end
        const v = m.get(i - 5);
        if (v !== undefined) {
          m.delete(i - 5);
          m.set(i - 5, v);
          control.delete(i - 5);
          control.set(i - 5, v);
        }
      }
    }
    expect(m.renewals).toBeGreaterThan(0);
    expect(m.size).toBe(control.size);
    expect(m.entries()).toEqual([...control.entries()]);
    expect(m.first()).toEqual(control.entries().next().value);
    expect(m.has(3)).toBe(control.has(3));
    expect(m.get(3)).toBe(control.get(3));
    expect(m.delete(-1)).toBe(false);
    m.clear();
    expect(m.size).toBe(0);
    expect(m.first()).toBeUndefined();
  });

  it('renews at most once per RENEW_MIN inserts and per RENEW_FACTOR × size inserts (bounded copying)', () => {
    const m = new ChurnMap<number, number>();
    for (let i = 0; i < 1000; i++) m.set(i, i); // 1,000 held
    const before = m.renewals;
    for (let i = 1000; i < 21_000; i++) {
      m.set(i, i);
      m.delete(i - 1000);
    }
    // 20,000 inserts with 1,000 held: a renewal copies 1,000, at most every 4,000 inserts.
    expect(m.renewals - before).toBeLessThanOrEqual(Math.ceil(20_000 / (RENEW_FACTOR * 1000)));
    expect(m.renewals - before).toBeGreaterThan(0);
    expect(m.size).toBe(1000);
  });

  it('iterates over a snapshot: deleting or inserting while iterating is safe', () => {
    const m = new ChurnMap<number, number>();
    for (let i = 0; i < 5; i++) m.set(i, i);
    const seen: number[] = [];
    for (const [k] of m) {
      seen.push(k);
      m.delete(k);
      m.set(k + 100, k);
    }
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(m.keys()).toEqual([100, 101, 102, 103, 104]);
    expect(m.values()).toEqual([0, 1, 2, 3, 4]);
  });

  it('entries it deleted do not pile up in the old generation once its storage was promoted (a plain Map is the control)', () => {
    // In a fresh process each: the collector's own heuristics (the young generation's size,
    // allocation-site pretenuring) depend on everything the process did before, and a test
    // runner's process has done a lot.
    // Whether the plain Map's storage is promoted when the churn starts is itself up to those
    // heuristics (about one fresh process in eight it is not, and it shows nothing; once in CI it
    // was promoted late and grew 2.0 MB only): up to 4 tries, until the control shows the effect
    // at more than 8× the ChurnMap's growth. A ChurnMap that piled up like a plain Map (tens of
    // MB) never lets the control clear that bar, so the test still fails for it.
    const churn = [oldGenerationGrowth('churn'), oldGenerationGrowth('churn')];
    const bar = Math.max(2_000_000, 8 * Math.max(...churn));
    let plain = 0;
    for (let i = 0; i < 4 && plain <= bar; i++) plain = oldGenerationGrowth('plain');
    // Measured (8 processes each): the plain Map 17–27 MB (Node 20; 0.6–34 MB on Node 22), the ChurnMap 0.1–0.4 MB.
    expect(plain).toBeGreaterThan(2_000_000);
    for (const c of churn) expect(c).toBeLessThan(plain / 8);
  });
});
