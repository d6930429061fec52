import { defineConfig } from "vitest/config";

// Unit and native-kernel tests run in Node. Integration (extension host) and e2e (browser)
// layers have their own runners started by npm scripts.
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts", "test/native/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    env: { ORT_DISABLE_TELEMETRY: "1" },
  },
});
