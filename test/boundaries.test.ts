/**
 * The import boundaries of docs/boundaries.md, enforced by `npm test` as well
 * as by `npm run lint`: dependency-cruiser's API with the repository's own
 * .dependency-cruiser.cjs over the whole source tree must report no violation.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** What `npm run lint` cruises (package.json). */
const CRUISED = ['attestation', 'bench', 'bin', 'build', 'cli', 'client', 'common', 'dev', 'enclave', 'fuzz', 'native', 'parent', 'test'];

const show = (v: IViolation) => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => c.name).join(' → ')})` : ''}`;

describe('import boundaries (.dependency-cruiser.cjs)', () => {
  it('the source tree breaks none of them', async () => {
    const options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'));
    const tsConfig = extractTSConfig(join(ROOT, 'tsconfig.json'));
    const result = await cruise(CRUISED, { ...options, baseDir: ROOT }, {}, { tsConfig });
    const out = result.output as Exclude<typeof result.output, string>;
    // Not vacuous: the whole tree was read and the rules are loaded.
    expect(out.summary.totalCruised).toBeGreaterThan(200);
    expect(options.ruleSet?.forbidden?.map((r) => r.name)).toEqual(
      expect.arrayContaining(['enclave-not-to-host', 'attestation-standalone', 'common-is-shared', 'parent-not-to-enclave', 'client-is-a-library', 'native-is-the-bottom', 'no-circular', 'no-test-code-in-production']),
    );
    expect(out.summary.violations.map(show)).toEqual([]);
  }, 60_000);
});
