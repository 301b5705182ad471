/**
 * The whole pipeline, for real: build/check-reproducible.sh downloads (or
 * reuses) the pinned Debian kernel and libraries and the pinned Node runtime,
 * builds the image twice in two directories and compares. Slow (about a
 * minute with warm caches) and needs apt-get, dpkg-deb, readelf, npm.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('build-eif.sh', () => {
  it('builds byte-identical images in two directories', () => {
    const r = spawnSync(join(ROOT, 'build/check-reproducible.sh'), [], { cwd: ROOT, encoding: 'utf8', timeout: 15 * 60_000 });
    if (r.status !== 0) console.error(r.stdout, r.stderr);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/same\s+enclave\.eif\s+[0-9a-f]{64}/);
    expect(r.stdout).toContain('reproducible: two builds in different directories are byte-identical');
  }, 16 * 60_000);
});
