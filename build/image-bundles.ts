/**
 * The enclave image's esbuild bundles as build-eif.sh defines them, read from
 * build-eif.sh itself (step 4) so that there is one definition: tests run the
 * very same commands with extra flags (a metafile, another output directory,
 * another entry) instead of restating the options.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commands, scriptLines } from './shell-script.js';

const aboveThisFolder = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** The repository, whether this module runs from build/ or compiled, from dist/build/ (bench/e2e.ts). */
export const REPO_ROOT = basename(aboveThisFolder) === 'dist' ? dirname(aboveThisFolder) : aboveThisFolder;

export interface ImageBundle {
  /** Entry point as build-eif.sh bundles it by default (its $ENTRY default resolved). */
  entry: string;
  /** Path inside the image, e.g. /app/enclave.mjs. */
  imagePath: string;
  /** esbuild's arguments after the entry point, in order, without --outfile. */
  options: string[];
}

/** The esbuild runs of build-eif.sh that write into the image's rootfs. */
export function imageBundles(buildEifSh: string = readFileSync(join(REPO_ROOT, 'build-eif.sh'), 'utf8')): ImageBundle[] {
  const lines = scriptLines(buildEifSh);
  const entryDefault = /(?:^|\s)ENTRY=(\S+)/.exec(lines.find((l) => /^\s*BLOBS=/.test(l)) ?? '')?.[1];
  if (entryDefault === undefined) throw new Error('build-eif.sh: no ENTRY= default found');
  const out: ImageBundle[] = [];
  for (const c of lines.flatMap((l) => commands(l))) {
    if (!/(^|\/)esbuild$/.test(c[0] ?? '')) continue;
    const outfile = c.find((w) => w.startsWith('--outfile='));
    if (outfile === undefined || !outfile.includes('rootfs/')) continue;
    const entry = c.slice(1).find((w) => !w.startsWith('-'));
    if (entry === undefined) throw new Error(`build-eif.sh: an esbuild run without an entry point: ${c.join(' ')}`);
    out.push({
      entry: entry === '$ENTRY' ? entryDefault : entry,
      imagePath: outfile.slice(outfile.indexOf('rootfs/') + 'rootfs'.length),
      options: c.slice(1).filter((w) => w !== entry && w !== outfile),
    });
  }
  if (out.length === 0) throw new Error('build-eif.sh: no esbuild run writes into the image');
  return out;
}

/** esbuild's metafile (the parts we read). */
export interface Metafile {
  inputs: Record<string, { bytes: number; imports: { path: string; kind: string; original?: string }[] }>;
  outputs: Record<string, { bytes: number; inputs: Record<string, { bytesInOutput: number }> }>;
}

/**
 * Runs one bundle's esbuild command as build-eif.sh does (cwd = the
 * repository), writing `outfile`; `extra` flags go after build-eif.sh's own
 * (e.g. --metafile=…). `entry` replaces the entry point (same options).
 */
export function runImageBundle(b: ImageBundle, outfile: string, opts: { entry?: string; extra?: string[] } = {}): Promise<void> {
  const esbuild = join(REPO_ROOT, 'node_modules', '.bin', 'esbuild');
  const args = [opts.entry ?? b.entry, ...b.options, `--outfile=${outfile}`, ...(opts.extra ?? [])];
  return new Promise((resolve, reject) => {
    execFile(esbuild, args, { cwd: REPO_ROOT, maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`esbuild ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

/** Repository-relative module path of a metafile input (esbuild writes them relative to cwd; node_modules may be a symlink). */
export function inputModule(path: string): { kind: 'ours'; path: string } | { kind: 'package'; name: string; path: string } {
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length);
    const parts = rest.split('/');
    const name = parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
    return { kind: 'package', name, path: rest };
  }
  return { kind: 'ours', path };
}
