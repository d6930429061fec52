import { defineConfig } from "vitest/config";

// The extension-host layer: each file starts its own code-server + Chromium, so files run one
// at a time. Hard limits everywhere: a hung host never hangs `npm test`.
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/integration/**/*.test.ts"],
    globalSetup: ["test/integration/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 900_000,
    teardownTimeout: 30_000,
    pool: "forks",
    env: { ORT_DISABLE_TELEMETRY: "1", PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1" },
  },
});
