// The extension-host suite in a trusted workspace (test/integration/suite/trusted.ts), run in
// the real VS Code server's extension host; one vitest case per in-host case.
import { defineHostSuite } from "./host-runner";

defineHostSuite(
  "extension host, trusted workspace",
  [
    "workspace holds the demo model and is trusted",
    "extension activates",
    "every command in package.json is registered",
    "Quantize (one click, GPTQ W4 g32 preset) writes a valid model and report next to the model",
    "cancelling Quantize from its progress notification leaves no files",
    "settings are honoured: method, bits, group, format and samples",
    "Inspect Model opens the model inspector",
  ],
  {
    suite: "trusted",
    trust: true,
    settings: { "quantlens.method": "gptq", "quantlens.bits": 4, "quantlens.group": 32, "quantlens.format": "matmulnbits", "quantlens.samples": 16 },
    timeoutMs: 780_000,
  },
);
