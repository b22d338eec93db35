import { defineConfig } from 'vitest/config';

// One project per package plus the whole-system e2e project. Tests spawn real PHP processes,
// so file parallelism is bounded for the 2-core machines CI runs on.
export default defineConfig({
  test: {
    globalSetup: ['./test/helpers/global-setup.ts'],
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'pool', include: ['packages/pool/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'fastify', include: ['packages/fastify/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'config', include: ['packages/config/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'server', include: ['apps/server/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'swap', include: ['apps/swap/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'] } },
    ],
  },
});
