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
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
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
