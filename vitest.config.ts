import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // Each file gets its own database; two workers match this machine's two cores.
    pool: 'forks',
    maxWorkers: 2,
  },
});
