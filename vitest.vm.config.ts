import { defineConfig } from 'vitest/config';

// QEMU system tests (test/vm/): boot a TCG guest, so they are slow and run only
// via `npm run test:vm` (after `bash test/vm/setup.sh`), never in the default run.
export default defineConfig({
  test: {
    include: ['test/vm/**/*.system.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
