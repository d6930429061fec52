// Lint: typescript-eslint, plus the doors between the three rooms (STYLE.md §1):
// the headless engine and the webviews never import `vscode` (types aside), and the
// webviews never import the engine.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const noVscodeValue = {
  name: "vscode",
  allowTypeImports: true,
  message: "The headless engine and the webviews must not import `vscode` (types only).",
};

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "native-kernels/build/**", "**/*_pb.ts", ".cache/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
  {
    files: ["extension/src/engine/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": ["error", { paths: [noVscodeValue] }],
    },
  },
  {
    files: ["webview/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          paths: [noVscodeValue],
          patterns: [
            {
              group: ["**/extension/src/engine/**", "**/engine/**"],
              message: "Webviews talk to the engine through extension/src/protocol only.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["scripts/**/*.mjs", "*.mjs", ".ci/**/*.mjs"],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
  {
    // The onnxruntime worker thread's script: CommonJS, loaded by path (calib/ort-host.ts).
    files: ["extension/src/**/*.cjs"],
    languageOptions: { sourceType: "commonjs", globals: { process: "readonly", require: "readonly" } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
