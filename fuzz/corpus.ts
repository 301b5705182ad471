/**
 * The regression corpus: fuzz/corpus/<target>/<name>.bin, raw input bytes.
 * Every file is replayed (before any mutation) on every run, the CI run in
 * `npm test` included, so a crasher that was fixed stays fixed. `npm run
 * fuzz -- --save` writes each new finding here as crash-<sha256 prefix>.bin;
 * fix the bug, keep the file.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './fixtures.js';

export const CORPUS_DIR = join(REPO, 'fuzz', 'corpus');

export function loadCorpus(target: string): Array<{ name: string; input: Uint8Array }> {
  const dir = join(CORPUS_DIR, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => ({ name: f, input: new Uint8Array(readFileSync(join(dir, f))) }));
}

/** Saves a crasher; returns its path (the same input is saved once). */
export function saveCrasher(target: string, input: Uint8Array): string {
  const dir = join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const p = join(dir, `crash-${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`);
  writeFileSync(p, input);
  return p;
}
