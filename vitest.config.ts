import { defineConfig } from 'vitest/config';

// Fast tests live next to the code as *.test.ts. System tests (QEMU, long e2e)
// are *.system.test.ts and run via `npm run test:vm`/`test:system`.
export default defineConfig({
  test: {
    include: ['{attestation,enclave,parent,common,cli,client,dev,test,build,native,bench}/**/*.test.ts'],
    exclude: ['**/*.system.test.ts', 'node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
