// The extension-host suite in an untrusted workspace (Restricted Mode): Workspace Trust stays on
// and the test folder was never trusted (test/integration/suite/restricted.ts).
import { defineHostSuite } from "./host-runner";

defineHostSuite(
  "extension host, Restricted Mode",
  [
    "the workspace is in Restricted Mode",
    "extension activates in Restricted Mode and registers its commands",
    "Quantize, Quantize… and Inspect Model refuse to run the model",
  ],
  { suite: "restricted", trust: false, timeoutMs: 300_000 },
);
