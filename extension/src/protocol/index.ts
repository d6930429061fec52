/**
 * The host ↔ webview protocol of QuantLens's panels. Dependency-free: files here import only each
 * other, so the host (extension/src/views, commands) and the webview bundle (webview/src) share
 * them. One file per panel; this comment is the contract for whoever builds the HTML shell.
 *
 * ## Bundle (scripts/build.mjs)
 *   dist/webview/main.js   IIFE, loaded with `<script nonce="…" src="…">` at the end of <body>
 *   dist/webview/main.css  loaded with `<link rel="stylesheet" nonce="…" href="…">` in <head>
 * `localResourceRoots` = [extensionUri/dist/webview]. No other asset (no fonts, no codicons).
 *
 * ## HTML shell (extension/src/views/html.ts)
 *   <body data-panel="report|overview|heatmap|spectrum|bits|sensitivity|compare">
 *     <div id="app"></div>
 *     <script nonce="N" src="…/dist/webview/main.js"></script>
 *   </body>
 * CSP: `default-src 'none'; script-src 'nonce-N'; style-src ${cspSource} 'nonce-N';
 *       img-src ${cspSource} data:`. Nothing else is needed:
 * - no inline scripts, no eval / new Function (d3 is imported per module; d3-dsv, the one d3
 *   module that builds functions from strings, is not bundled);
 * - VS Code Elements (Lit) style their shadow roots with constructable stylesheets
 *   (`adoptedStyleSheets`), which CSP `style-src` does not govern; Lit's <style>-tag fallback
 *   reads `window.litNonce`, which main.ts sets from its own script tag's nonce before any
 *   element connects;
 * - no `style="…"` attributes in markup (they would need 'unsafe-inline'): sizes and colours are
 *   set through the CSSOM (`el.style.x = …`, Lit's stylePropertyMap), which CSP allows;
 * - canvases are drawn with 2D contexts (no images, no data: URLs needed, but `img-src data:`
 *   does no harm).
 * `#app` gets `data-state="loading" | "ready" | "failed"`.
 *
 * ## Messages (one interface per message, one union per direction and panel)
 * webview → host: every panel first posts `ready`; the host answers with `load` (the panel's
 * data: overview.ts … report.ts) and sends `load` again when the report changes. Requests carry
 * an `id` (numbered by the webview) and get one `response` with the same id:
 *   tokenHeatmap {id, tensor, sample}   → TokenHeatmapResult   (heatmap, report)
 *   replan       {id, budget}           → BitPlan              (bits, report)
 * Commands (no reply): `openLayer {layer}` (all panels), `compare` (report: pick another report
 * and open the compare panel), `webviewError {message}` (log it).
 * The host validates every incoming message with `validateWebviewMessage(panel, msg)`
 * (validate.ts) before acting: webview content is untrusted.
 * Bulk arrays (`F32Buffer` fields) are ArrayBuffers holding float32 values, posted as they are.
 *
 * ## Panel data
 * The host converts a report (extension/src/engine/report/schema.ts) into panel data with
 * extension/src/views/report-to-panels.ts (`reportToPanels`, `reportToCompare`).
 *
 * ## State
 * The webview keeps its view state (tab, sort, filter, selections, α, zoom, budget) with
 * `acquireVsCodeApi().getState/setState`; the host does not need `retainContextWhenHidden`.
 *
 * ## Test ids
 * testids.ts lists the `data-testid` values tests can rely on. In the report webview each tab's
 * charts draw when the tab is visible (they size themselves to it): click
 * `vscode-tab-header[data-tab="heatmap"]` (overview, heatmap, spectrum, bits, sensitivity) before
 * counting bars or points. Sliders are `<input type="range">` (VS Code Elements 2.5.1 has no
 * slider): set `.value` and dispatch an `input` event, or use the keyboard.
 *
 * test/helpers/webview-preview.ts renders a real report through this contract in headless
 * Chromium under the same CSP and checks what the e2e tests check.
 */
export * from "./common";
export * from "./overview";
export * from "./heatmap";
export * from "./spectrum";
export * from "./bits";
export * from "./sensitivity";
export * from "./compare";
export * from "./report";
export * from "./validate";
export * from "./testids";
