import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // e2e suites start real processes (drachtio-server, sipp); give them room but keep a hard ceiling.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The e2e files share one drachtio-server per file; run files one at a time so ports and CPU are not contended.
    fileParallelism: false,
    pool: 'forks',
  },
});
