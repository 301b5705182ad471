/**
 * Test fixture: a throwaway PostgreSQL cluster per test file, a database per
 * test (`createDatabase`). The cluster itself is dev/pg-cluster.ts (the
 * multi-instance soak uses it too); this adds the tests' conventions: the role
 * `app` with a password (for the wrong-credentials tests) owns each database,
 * and PG_AVAILABLE says whether the PostgreSQL tests run.
 *
 * `stop()` always runs from the test's afterAll: nothing is left running.
 */
import { findPgBin, startPgCluster as startCluster, type PgCluster, type PgClusterOptions } from '../dev/pg-cluster.js';

export { findPgBin, type PgCluster };

/** CI installs PostgreSQL (.ci/run), so there a missing server is a failure, not a skip. */
export const PG_AVAILABLE = findPgBin() !== undefined || process.env.CI === 'true';

export const APP_PASSWORD = 'app-test-password';

/** `tcp` / `netns`: the network fault tests (test/faults/partition.test.ts). */
export async function startPgCluster(o: Pick<PgClusterOptions, 'tcp' | 'netns'> = {}): Promise<PgCluster> {
  const c = await startCluster({ ...o, roles: [{ name: 'app', password: APP_PASSWORD }] });
  return { ...c, createDatabase: (prefix?: string) => c.createDatabase(prefix, 'app') };
}
