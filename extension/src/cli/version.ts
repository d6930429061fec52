/** Kept in step with package.json by the build (esbuild `define`); "dev" when run from source. */
declare const __QUANTLENS_VERSION__: string | undefined;
export const VERSION: string = typeof __QUANTLENS_VERSION__ === "string" ? __QUANTLENS_VERSION__ : "dev";
