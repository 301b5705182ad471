/**
 * One target's run as the CLI and the tests do it: replay the regression
 * corpus, fuzz, optionally save new crashers.
 */
import { loadCorpus, saveCrasher } from './corpus.js';
import { runTarget, type Finding, type FuzzOptions, type FuzzResult, type FuzzTarget } from './engine.js';

export interface SessionResult extends FuzzResult {
  replayed: number;
  findings: Array<Finding & { saved?: string }>;
}

export function runFuzzTarget(t: FuzzTarget, opts: FuzzOptions, save = false): SessionResult {
  const replay = loadCorpus(t.name).map((c) => c.input);
  const r = runTarget(t, { ...opts, replay });
  return { ...r, replayed: replay.length, findings: r.findings.map((f) => (save ? { ...f, saved: saveCrasher(t.name, f.input) } : f)) };
}
