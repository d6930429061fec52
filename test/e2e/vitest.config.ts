import { defineConfig } from "vitest/config";

// The browser end-to-end layer: one code-server + Chromium per file, files one at a time, hard
// limits on every step (the suite tears code-server down in afterAll, and on process exit).
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/e2e/**/*.e2e.test.ts"],
    globalSetup: ["test/e2e/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    pool: "forks",
    env: { ORT_DISABLE_TELEMETRY: "1", PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1" },
  },
});
