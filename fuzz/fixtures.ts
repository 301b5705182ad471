/**
 * Seeds from real fixtures: ../shared/fixtures beside the repository (as CI
 * lays it out), or ENCLAVE_SIGNER_FIXTURES. Missing fixtures are not an
 * error here — a target then starts from the inputs it builds itself — but
 * the run reports how many seeds it had.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from fuzz/ under tsx/vitest and from dist/fuzz/ when built). */
export const REPO = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();

export const FIXTURES = [process.env.ENCLAVE_SIGNER_FIXTURES, join(REPO, '..', 'shared', 'fixtures'), '/work/shared/fixtures'].find(
  (p): p is string => p !== undefined && p !== '' && existsSync(p),
);

/** A fixture's bytes, or undefined when the fixtures are not present. */
export function fixture(rel: string): Uint8Array | undefined {
  if (!FIXTURES) return undefined;
  const p = join(FIXTURES, rel);
  return existsSync(p) ? new Uint8Array(readFileSync(p)) : undefined;
}
