/**
 * One composition root per program: parent/ and dev/ export start functions
 * that take a typed config, and every command line is read in cli/. A module
 * of theirs that imports cli/ (argv parsing, exit codes, the Io plumbing)
 * would make the program depend on its command line again, and would pull
 * cli/ into whatever bundles the program.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every module specifier a file imports or re-exports, static or dynamic, resolved to a repo path when relative. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO, file), 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  return specs.map((s) => (s.startsWith('.') ? relative(REPO, resolve(REPO, dirname(file), s)) : s));
}

describe('composition roots', () => {
  it('parent/ and dev/ never import cli/: argv handling lives only in cli/', () => {
    const offenders = [...sources('parent'), ...sources('dev')].flatMap((f) => importsOf(f).filter((i) => i.startsWith('cli/')).map((i) => `${f} → ${i}`));
    expect(offenders).toEqual([]);
  });

  it('the programs are started from a config object: startParent, startKmsLocal, startDevAppliance', async () => {
    const parent = await import('../parent/main.js');
    const kms = await import('../dev/kms-emulator/index.js');
    const dev = await import('../dev/appliance.js');
    expect(typeof parent.startParent).toBe('function');
    expect(typeof kms.startKmsLocal).toBe('function');
    expect(typeof dev.startDevAppliance).toBe('function');
    // Nothing argv-shaped is exported by the programs themselves.
    for (const mod of [parent, kms, dev] as Record<string, unknown>[]) {
      expect(Object.keys(mod).filter((k) => /^run|usage|fromargs/i.test(k))).toEqual([]);
    }
  });
});
