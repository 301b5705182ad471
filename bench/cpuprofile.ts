/**
 * Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes) into the frames that cost the most:
 * self time by function (name, file, line) and inclusive time of a few named functions. Used by
 * the policy-cost section of bench/e2e.ts to say which part of a request costs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  frame: string;
  ms: number;
  /** Share of the non-idle samples. */
  pct: number;
}

export interface ProfileSummary {
  file: string;
  /** Profiled wall time and the part of it the thread was busy (not idle), ms. */
  wallMs: number;
  busyMs: number;
  topSelf: Frame[];
  /** Inclusive time of the functions asked for as `name@file.js` (counted once per sample, however deep). */
  inclusive: Frame[];
}

function frameName(n: ProfileNode): string {
  const f = n.callFrame;
  const file = f.url ? basename(f.url) : '';
  return file ? `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}` : f.functionName || '(anonymous)';
}

/** A `.cpuprofile` with its nodes by id and each node's parent id (the stack of a sample is its parent chain). */
function loadProfile(file: string): { p: Profile; byId: Map<number, ProfileNode>; parent: Map<number, number> } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  return { p, byId, parent };
}

/** `node --cpu-prof` names files CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile; tid 0 is the main thread. */
export function findProfile(dir: string, pid: number, thread: 'main' | 'others'): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .filter((f) => {
      const parts = f.split('.');
      return Number(parts[3]) === pid && (thread === 'main' ? parts[4] === '0' : parts[4] !== '0');
    })
    .map((f) => join(dir, f));
}

export function summarize(file: string, opts: { top?: number; inclusive?: readonly string[] } = {}): ProfileSummary {
  const { p, byId, parent } = loadProfile(file);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const wanted = new Set(opts.inclusive ?? []);
  let busy = 0;
  let wall = 0;
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; the sample stands for the interval after it.
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    wall += dt;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const name = frameName(node);
    if (node.callFrame.functionName === '(idle)') continue;
    busy += dt;
    self.set(name, (self.get(name) ?? 0) + dt);
    if (wanted.size) {
      const seen = new Set<string>();
      for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
        const cf = byId.get(id)!.callFrame;
        const fn = `${cf.functionName}@${cf.url ? basename(cf.url) : ''}`;
        if (wanted.has(fn) && !seen.has(fn)) {
          seen.add(fn);
          incl.set(fn, (incl.get(fn) ?? 0) + dt);
        }
      }
    }
  }
  const frames = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).map(([frame, ms]) => ({ frame, ms: +ms.toFixed(1), pct: +((100 * ms) / Math.max(busy, 1e-9)).toFixed(1) }));
  return {
    file: basename(file),
    wallMs: +wall.toFixed(1),
    busyMs: +busy.toFixed(1),
    topSelf: frames(self).slice(0, opts.top ?? 12),
    inclusive: frames(incl),
  };
}

/** A named group of functions: `name@file.js` (one function) or `*@file.js` (every function of that file). */
export interface Category {
  name: string;
  match: readonly string[];
}

export interface Attribution {
  file: string;
  /** Profiled wall time inside the windows, and the part of it the thread was not idle, ms. */
  wallMs: number;
  busyMs: number;
  /** Samples in the garbage collector (not attributed to any category: their cause is not on the stack). */
  gcMs: number;
  /** Per category: sampled ms, and share of busyMs. */
  categories: Frame[];
  /** All categories together. */
  matchedMs: number;
  matchedPct: number;
  /** The functions that cost the most inside matched samples (self time). */
  topSelfMatched: Frame[];
}

/**
 * Splits one `.cpuprofile` by category, counting only samples inside `windows` (CLOCK_MONOTONIC
 * µs, the clock V8 stamps samples with). A sample belongs to the category of the deepest frame on
 * its stack that matches one (so a hash inside the record writer counts as hashing, and the
 * writer's own work as the writer's); a sample with no matching frame belongs to none. Functions
 * that V8 inlined are charged to the function they were inlined into.
 */
export function attribute(file: string, opts: { windows: readonly { startUs: number; endUs: number }[]; categories: readonly Category[] }): Attribution {
  const { p, byId, parent } = loadProfile(file);
  const exact = new Map<string, string>();
  const wholeFile = new Map<string, string>();
  for (const c of opts.categories) {
    for (const m of c.match) {
      const [fn, f] = m.split('@') as [string, string];
      if (fn === '*') wholeFile.set(f, c.name);
      else exact.set(m, c.name);
    }
  }
  /** The category of a node's deepest matching frame, memoised per node (stacks share prefixes). */
  const memo = new Map<number, string | null>();
  const categoryOf = (id: number): string | null => {
    const hit = memo.get(id);
    if (hit !== undefined) return hit;
    const cf = byId.get(id)!.callFrame;
    const f = cf.url ? basename(cf.url) : '';
    const mine = exact.get(`${cf.functionName}@${f}`) ?? wholeFile.get(f);
    const up = parent.get(id);
    const out = mine ?? (up === undefined ? null : categoryOf(up));
    memo.set(id, out);
    return out;
  };
  const inWindow = (t: number) => opts.windows.some((w) => t >= w.startUs && t <= w.endUs);
  const cats = new Map<string, number>();
  const selfMatched = new Map<string, number>();
  let wall = 0;
  let busy = 0;
  let gc = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (!inWindow(t)) continue;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    wall += dt;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const fn = node.callFrame.functionName;
    if (fn === '(idle)') continue;
    busy += dt;
    if (fn === '(garbage collector)') {
      gc += dt;
      continue;
    }
    const c = categoryOf(node.id);
    if (c === null) continue;
    cats.set(c, (cats.get(c) ?? 0) + dt);
    const name = frameName(node);
    selfMatched.set(name, (selfMatched.get(name) ?? 0) + dt);
  }
  const frames = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).map(([frame, ms]) => ({ frame, ms: +ms.toFixed(1), pct: +((100 * ms) / Math.max(busy, 1e-9)).toFixed(2) }));
  const matched = [...cats.values()].reduce((a, b) => a + b, 0);
  return {
    file: basename(file),
    wallMs: +wall.toFixed(1),
    busyMs: +busy.toFixed(1),
    gcMs: +gc.toFixed(1),
    categories: frames(cats),
    matchedMs: +matched.toFixed(1),
    matchedPct: +((100 * matched) / Math.max(busy, 1e-9)).toFixed(2),
    topSelfMatched: frames(selfMatched).slice(0, 10),
  };
}
