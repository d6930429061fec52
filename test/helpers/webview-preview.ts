/**
 * Standalone preview of the webview panels: renders a real report into the built bundle
 * (dist/webview) under the same strict CSP the extension uses, in headless Chromium at 1280×800,
 * answers the panels' requests like the host would, checks what the e2e tests will check, and
 * saves a screenshot per panel. For looking at the panels without VS Code.
 *
 *   node scripts/build.mjs --quiet
 *   npx tsx test/helpers/webview-preview.ts REPORT.json [MODEL.onnx] [OUT_DIR]
 *
 * The compare panel shows REPORT against $COMPARE (another report; default: REPORT itself).
 * MODEL (optional) supplies the per-input-channel W absmax for the SmoothQuant preview. Re-plans
 * use the host's re-planner (views/replan.ts) when the report has a proxy table; otherwise the
 * preview makes an illustrative assignment, marked as such on the console. Tokens × channels
 * answers are synthetic (absmax-shaped), for looking at the rendering only.
 */
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Page } from "playwright-core";
import { readReport } from "../../extension/src/engine/report/write";
import { OnnxModel } from "../../extension/src/engine/onnx/model";
import { indexLinears } from "../../extension/src/engine/onnx/linear";
import { readWeightOutIn } from "../../extension/src/engine/quant/layer-weights";
import { reportToCompare, reportToPanels } from "../../extension/src/views/report-to-panels";
import { webviewHtml } from "../../extension/src/views/html";
import { canReplan, replanner } from "../../extension/src/views/replan";
import { bitsPerWeight, REPORT_TABS, TESTID, type BitLayer, type BitPlan, type ReportData } from "../../extension/src/protocol";
import { ROOT } from "./paths";

const [reportFile, modelFile, outArg] = process.argv.slice(2);
if (!reportFile) {
  console.error("usage: tsx test/helpers/webview-preview.ts REPORT.json [MODEL.onnx] [OUT_DIR]");
  process.exit(1);
}
const out = path.resolve(outArg ?? "/tmp/quantlens-webview-preview");
fs.mkdirSync(out, { recursive: true });

/** ArrayBuffers → {__f32: [...]} (NaN as null) so the data crosses page.evaluate as JSON. */
function encode(v: unknown): unknown {
  if (v instanceof ArrayBuffer) return { __f32: Array.from(new Float32Array(v), (x) => (Number.isNaN(x) ? null : x)) };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  return v;
}

async function columnsFromModel(file: string): Promise<(layer: string) => Float32Array | null> {
  const model = await OnnxModel.load(file);
  const cols = new Map<string, Float32Array>();
  try {
    for (const l of indexLinears(model).layers) {
      const w = readWeightOutIn(model, l); // W: [out, in]
      const c = new Float32Array(l.in);
      for (let o = 0; o < l.out; o++) for (let i = 0; i < l.in; i++) c[i] = Math.max(c[i], Math.abs(w[o * l.in + i]));
      cols.set(l.name, c);
    }
  } finally {
    model.close();
  }
  return (layer) => cols.get(layer) ?? null;
}

function illustrativePlan(data: ReportData, budgetBits: number): BitPlan {
  const layers: BitLayer[] = data.overview.layers
    .filter((l) => l.role !== "lm_head")
    .map((l, i) => {
      const bits = l.role === "v" || l.role === "o" ? Math.min(8, budgetBits + 1) : i % 5 === 0 ? Math.max(2, budgetBits - 1) : budgetBits;
      const group = 32;
      return { name: l.name, role: l.role, block: l.block, params: l.in * l.out, method: "gptq", bits, group, bitsPerWeight: bitsPerWeight(bits, group, l.in), proxyLoss: l.proxyLoss };
    });
  let p = 0;
  let b = 0;
  for (const l of layers) {
    p += l.params;
    b += l.params * l.bitsPerWeight;
  }
  return { budget: b / p, avgBits: b / p, predicted: null, sizeBytes: b / 8, layers };
}

async function main(): Promise<void> {
  const report = readReport(reportFile);
  const weightColumns = modelFile ? await columnsFromModel(modelFile) : undefined;
  const data = reportToPanels(report, { canRequestTokens: true, canReplan: true, weightColumns });
  const replan = canReplan(report) ? replanner(report) : null;
  let illustrative = false;
  if (!data.bits) {
    illustrative = true;
    const plan = illustrativePlan(data, 4);
    const fp = plan.layers.reduce((s, l) => s + l.params * 4, 0);
    data.bits = { plan, fpSizeBytes: fp, budgetMin: 2.25, budgetMax: 8.5, budgetStep: 0.05, pareto: [], canReplan: true };
    console.log("preview: the report has no bit assignment; showing an illustrative one");
  }

  const nonce = "cHJldmlldy1ub25jZS0xMjM0NTY3OA==";
  const dist = path.join(ROOT, "dist", "webview");
  const html = webviewHtml({
    panel: "report",
    title: "QuantLens preview",
    cspSource: "file:",
    scriptUri: pathToFileURL(path.join(dist, "main.js")).href,
    styleUri: pathToFileURL(path.join(dist, "main.css")).href,
    nonce,
  });
  const htmlFile = path.join(out, "report.html");
  fs.writeFileSync(htmlFile, html);

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
  const problems: string[] = [];
  try {
    for (const theme of ["dark", "light"] as const) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(`[${theme}] console ${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`[${theme}] page error: ${e.message}`));
      // tsx (esbuild keepNames) wraps functions in __name(); functions shipped to the page need it.
      await page.addInitScript({ content: "window.__name = (f) => f;" });
      await page.addInitScript((t: string) => {
        const w = window as unknown as { __posted: unknown[]; __csp: string[]; acquireVsCodeApi: () => unknown };
        w.__posted = [];
        w.__csp = [];
        document.addEventListener("securitypolicyviolation", (e) => w.__csp.push(`${e.violatedDirective}: ${e.blockedURI} ${e.sample}`));
        let state: unknown;
        w.acquireVsCodeApi = () => ({ postMessage: (m: unknown) => w.__posted.push(m), getState: () => state, setState: (s: unknown) => (state = s) });
        // A stand-in for the theme variables VS Code injects (Dark Modern / Light Modern values).
        const vars: Record<string, string> =
          t === "dark"
            ? { "--vscode-foreground": "#cccccc", "--vscode-editor-background": "#1f1f1f", "--vscode-descriptionForeground": "#9d9d9d", "--vscode-panel-border": "#2b2b2b", "--vscode-focusBorder": "#0078d4", "--vscode-charts-red": "#f14c4c", "--vscode-charts-blue": "#3794ff", "--vscode-charts-orange": "#d18616", "--vscode-charts-green": "#89d185", "--vscode-charts-purple": "#b180d7", "--vscode-charts-lines": "rgba(204,204,204,0.5)", "--vscode-button-background": "#0078d4", "--vscode-button-foreground": "#ffffff", "--vscode-font-family": "system-ui, sans-serif", "--vscode-font-size": "13px", "--vscode-editor-font-family": "monospace", "--vscode-errorForeground": "#f85149", "--vscode-settings-headerBorder": "#2b2b2b", "--vscode-input-background": "#313131", "--vscode-input-foreground": "#cccccc", "--vscode-dropdown-background": "#313131", "--vscode-dropdown-foreground": "#cccccc", "--vscode-keybindingTable-rowsBackground": "rgba(204,204,204,0.04)", "--vscode-editor-selectionBackground": "#264f78" }
            : { "--vscode-foreground": "#3b3b3b", "--vscode-editor-background": "#ffffff", "--vscode-descriptionForeground": "#6f6f6f", "--vscode-panel-border": "#e5e5e5", "--vscode-focusBorder": "#005fb8", "--vscode-charts-red": "#e51400", "--vscode-charts-blue": "#1a85ff", "--vscode-charts-orange": "#d18616", "--vscode-charts-green": "#388a34", "--vscode-charts-purple": "#652d90", "--vscode-charts-lines": "rgba(97,97,97,0.5)", "--vscode-button-background": "#005fb8", "--vscode-button-foreground": "#ffffff", "--vscode-font-family": "system-ui, sans-serif", "--vscode-font-size": "13px", "--vscode-editor-font-family": "monospace", "--vscode-errorForeground": "#f85149", "--vscode-settings-headerBorder": "#e5e5e5", "--vscode-input-background": "#ffffff", "--vscode-input-foreground": "#3b3b3b", "--vscode-input-border": "#cecece", "--vscode-dropdown-background": "#ffffff", "--vscode-dropdown-foreground": "#3b3b3b", "--vscode-dropdown-border": "#cecece", "--vscode-keybindingTable-rowsBackground": "rgba(97,97,97,0.04)", "--vscode-editor-selectionBackground": "#add6ff", "--vscode-button-secondaryBackground": "#e5e5e5", "--vscode-button-secondaryForeground": "#3b3b3b" };
        document.addEventListener("DOMContentLoaded", () => {
          for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
          document.body.classList.add(t === "dark" ? "vscode-dark" : "vscode-light");
        });
      }, theme);
      await page.goto(pathToFileURL(htmlFile).href);
      await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === "ready"));
      await page.evaluate((payload) => {
        const decode = (v: unknown): unknown => {
          if (v && typeof v === "object" && "__f32" in (v as object)) return Float32Array.from((v as { __f32: (number | null)[] }).__f32, (x) => (x === null ? NaN : x)).buffer;
          if (Array.isArray(v)) return v.map(decode);
          if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]));
          return v;
        };
        window.postMessage({ type: "load", panel: "report", data: decode(payload) }, "*");
      }, encode(data));
      await page.waitForSelector('#app[data-state="ready"]');
      const answer = startHost(page, data, replan);
      for (const tab of REPORT_TABS) {
        await page.click(`vscode-tab-header[data-tab="${tab}"]`);
        await page.waitForTimeout(400);
        if (theme === "dark") await checks(page, tab, data, problems);
        await page.screenshot({ path: path.join(out, `${tab}-${theme}.png`) });
        if (tab === "heatmap" && theme === "dark") {
          await page.evaluate(() => document.querySelector('[data-testid="smooth-alpha"]')?.scrollIntoView());
          await page.waitForTimeout(200);
          await page.screenshot({ path: path.join(out, `heatmap-smooth-${theme}.png`) });
          await page.click(`[data-testid="${TESTID.tokenRequest}"]`);
          await page.waitForSelector(`[data-testid="${TESTID.tokenHeatmapCanvas}"]`);
          await page.evaluate(() => document.querySelector('[data-testid="token-heatmap-canvas"]')?.scrollIntoView());
          await page.waitForTimeout(300);
          await page.screenshot({ path: path.join(out, `heatmap-tokens-${theme}.png`) });
        }
        if (tab === "sensitivity" && theme === "dark") {
          await page.evaluate(() => document.querySelector('[data-testid="sqnr-point"]')?.scrollIntoView());
          await page.waitForTimeout(200);
          await page.screenshot({ path: path.join(out, `sensitivity-depth-${theme}.png`) });
        }
        if (tab === "spectrum" && theme === "dark") {
          await page.evaluate(() => document.querySelector('[data-testid="histogram-select"]')?.scrollIntoView());
          await page.waitForTimeout(200);
          await page.screenshot({ path: path.join(out, `spectrum-hist-${theme}.png`) });
        }
        if (tab === "bits" && theme === "dark") {
          const before = await page.$$eval(`[data-testid="${TESTID.bitBar}"]`, (bars) => bars.map((b) => b.getAttribute("data-bits")).join(","));
          await page.$eval(`[data-testid="${TESTID.budgetSlider}"]`, (el) => {
            const i = el as HTMLInputElement;
            i.value = "3";
            i.dispatchEvent(new Event("input", { bubbles: true }));
          });
          await page.waitForFunction(() => document.querySelector('[data-testid="plan-status"]')?.getAttribute("data-status") === "idle");
          await page.waitForTimeout(200);
          const after = await page.$$eval(`[data-testid="${TESTID.bitBar}"]`, (bars) => bars.map((b) => b.getAttribute("data-bits")).join(","));
          if (before === after) problems.push("bits: moving the budget slider did not change the plan");
          await page.screenshot({ path: path.join(out, `bits-replanned-${theme}.png`) });
        }
      }
      answer.stop();
      const csp = await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp);
      for (const c of csp) problems.push(`[${theme}] CSP violation: ${c}`);
      await page.close();
    }
    // The compare panel (dark theme only).
    const other = process.env.COMPARE ?? reportFile;
    const compare = reportToCompare({ label: path.basename(reportFile), report }, { label: path.basename(other), report: readReport(other) });
    const compareFile = path.join(out, "compare.html");
    fs.writeFileSync(compareFile, fs.readFileSync(htmlFile, "utf8").replace('data-panel="report"', 'data-panel="compare"'));
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("pageerror", (e) => problems.push(`[compare] page error: ${e.message}`));
    await page.addInitScript({ content: "window.__name = (f) => f; window.__posted = []; window.acquireVsCodeApi = () => ({ postMessage: (m) => window.__posted.push(m), getState() {}, setState() {} });" });
    await page.goto(pathToFileURL(compareFile).href);
    await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === "ready"));
    await page.evaluate((data) => window.postMessage({ type: "load", panel: "compare", data }, "*"), compare as unknown as Record<string, unknown>);
    await page.waitForSelector('#app[data-state="ready"]');
    await page.waitForTimeout(400);
    const rows = await page.$$eval(`[data-testid="${TESTID.compareRow}"]`, (els) => els.length);
    const names = new Set([...compare.a.overview.layers, ...compare.b.overview.layers].map((l) => l.name)).size;
    if (rows !== names) problems.push(`compare: ${rows} rows for ${names} layers`);
    await page.screenshot({ path: path.join(out, "compare-dark.png") });
    await page.close();
  } finally {
    await browser.close();
  }
  console.log(`screenshots in ${out}${illustrative ? " (bits: illustrative plan)" : ""}`);
  if (problems.length) {
    console.log(`problems:\n  ${problems.join("\n  ")}`);
    process.exitCode = 1;
  } else console.log("no CSP violations, console errors or failed checks");
}

/** Answer replan / tokenHeatmap requests like the host (illustrative data for the preview). */
function startHost(page: Page, data: ReportData, replan: ((budget: number) => BitPlan) | null): { stop(): void } {
  let seen = 0;
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const posted = (await page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted).catch(() => [])) as { type: string; id?: number; budget?: number; tensor?: string }[];
      for (const m of posted.slice(seen)) {
        if (m.type === "replan") {
          const plan = replan ? replan(m.budget ?? 4) : { ...illustrativePlan(data, Math.max(2, Math.min(8, Math.round(m.budget ?? 4)))), budget: m.budget ?? 4 };
          await page.evaluate((msg) => window.postMessage(msg, "*"), { type: "response", id: m.id, ok: true, result: plan }).catch(() => undefined);
        } else if (m.type === "tokenHeatmap") {
          const row = data.heatmap!.rows.findIndex((r) => r.tensor === m.tensor);
          const C = data.heatmap!.rows[row].channels;
          const x = new Float32Array(data.heatmap!.xAbsmax, row * data.heatmap!.width * 4, C);
          const T = 48;
          const vals: number[] = [];
          for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) vals.push(x[c] * Math.sin(1 + t * 0.37 + c * 1.3) * (0.3 + 0.7 * ((t * 7 + c * 3) % 11) / 10));
          await page
            .evaluate(
              (r) => window.postMessage({ type: "response", id: r.id, ok: true, result: { tensor: r.tensor, sample: 0, tokens: r.T, channels: r.C, values: Float32Array.from(r.vals).buffer, tokenText: Array.from({ length: r.T }, (_, i) => `tok${i}`) } }, "*"),
              { id: m.id, tensor: m.tensor, T, C, vals },
            )
            .catch(() => undefined);
        }
      }
      seen = posted.length;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  void loop();
  return { stop: () => void (stopped = true) };
}

/** What the e2e tests assert, checked here first. */
async function checks(page: Page, tab: string, data: ReportData, problems: string[]): Promise<void> {
  const count = (id: string) => page.$$eval(`[data-testid="${id}"]`, (els) => els.length);
  if (tab === "overview") {
    const rows = await count(TESTID.layerRow);
    if (rows !== data.overview.layers.length) problems.push(`overview: ${rows} rows for ${data.overview.layers.length} layers`);
    // Filter, then sort by proxy loss (descending on the first click).
    await page.fill(`[data-testid="${TESTID.layerFilter}"] input`, "role:v");
    await page.waitForTimeout(150);
    const vRows = await count(TESTID.layerRow);
    const vLayers = data.overview.layers.filter((l) => l.role === "v").length;
    if (vRows !== vLayers) problems.push(`overview: filter role:v shows ${vRows} rows for ${vLayers} v layers`);
    await page.fill(`[data-testid="${TESTID.layerFilter}"] input`, "");
    await page.click(`[data-testid="${TESTID.sort("proxyLoss")}"]`);
    await page.waitForTimeout(150);
    const first = await page.$eval(`[data-testid="${TESTID.layerRow}"]`, (r) => r.getAttribute("data-layer"));
    const worst = [...data.overview.layers].sort((a, b) => (b.proxyLoss ?? -1) - (a.proxyLoss ?? -1))[0].name;
    if (first !== worst) problems.push(`overview: sorted by proxy loss, the first row is ${first}, not ${worst}`);
    await page.click(`[data-testid="${TESTID.sort("block")}"]`);
    // Keyboard: the first row is the table body's tab stop; arrows move between rows.
    await page.focus(`[data-testid="${TESTID.layerRow}"]`);
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    const focused = await page.evaluate(() => document.activeElement?.getAttribute("data-layer"));
    const third = await page.$$eval(`[data-testid="${TESTID.layerRow}"]`, (rs) => rs[2]?.getAttribute("data-layer"));
    if (focused !== third) problems.push(`overview: ArrowDown ×2 focused ${focused}, not the third row ${third}`);
  }
  if (tab === "heatmap" && data.heatmap) {
    const rows = await page.$eval(`[data-testid="${TESTID.heatmapCanvas}"]`, (c) => Number(c.getAttribute("data-rows")));
    if (rows !== data.heatmap.rows.length) problems.push(`heatmap: data-rows ${rows} for ${data.heatmap.rows.length} layer inputs`);
    const painted = await page.$eval(`[data-testid="${TESTID.heatmapCanvas}"]`, (c) => {
      const cv = c as HTMLCanvasElement;
      const d = cv.getContext("2d")!.getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    if (painted < 1000) problems.push(`heatmap: only ${painted} painted pixels`);
    const outliers = data.heatmap.rows.reduce((s, r) => s + r.outliers.length, 0);
    const marks = await count(TESTID.heatmapOutlier);
    if (marks !== outliers) problems.push(`heatmap: ${marks} outlier marks for ${outliers} outlier channels`);
    // Keyboard cursor, hover readout, then brush-zoom into channels and reset.
    await page.focus(".heatmap svg.overlay");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowRight");
    const kb = await page.$eval(`[data-testid="${TESTID.heatmapReadout}"]`, (e) => e.textContent ?? "");
    if (!/channel 1 /.test(kb)) problems.push(`heatmap: keyboard readout is "${kb}"`);
    const box = (await page.$(`[data-testid="${TESTID.heatmapCanvas}"]`))!.boundingBox();
    const b = (await box)!;
    await page.mouse.move(b.x + 400, b.y + 20);
    const read = await page.$eval(`[data-testid="${TESTID.heatmapReadout}"]`, (e) => e.textContent ?? "");
    if (!/channel \d+/.test(read)) problems.push(`heatmap: hover readout is "${read}"`);
    const ticks = () => page.$$eval(".heatmap svg.overlay .axis text", (ts) => ts.map((t) => t.textContent).join(","));
    const before = await ticks();
    await page.mouse.move(b.x + 300, b.y + 30);
    await page.mouse.down();
    await page.mouse.move(b.x + 600, b.y + 30, { steps: 5 });
    await page.mouse.up();
    await page.waitForTimeout(200);
    const zoomed = await ticks();
    if (zoomed === before) problems.push("heatmap: brushing did not zoom");
    await page.screenshot({ path: path.join(out, "heatmap-zoomed-dark.png") });
    await page.click(`[data-testid="${TESTID.heatmapResetZoom}"]`);
    await page.waitForTimeout(200);
    if ((await ticks()) !== before) problems.push("heatmap: reset zoom did not restore the full view");
  }
  if (tab === "spectrum" && data.spectrum?.spectra.length) {
    const pts = await count(TESTID.spectrumPoint);
    if (pts !== data.spectrum.spectra[0].n) problems.push(`spectrum: ${pts} points for n = ${data.spectrum.spectra[0].n}`);
    // Pick another input with a different n through the dropdown, as a user would.
    const other = data.spectrum.spectra.findIndex((s) => s.n !== data.spectrum!.spectra[0].n);
    if (other > 0) {
      await page.click(`[data-testid="${TESTID.spectrumSelect}"]`);
      await page.keyboard.press("Home");
      for (let i = 0; i < other; i++) await page.keyboard.press("ArrowDown");
      await page.keyboard.press("Enter");
      await page.waitForTimeout(300);
      const n2 = await count(TESTID.spectrumPoint);
      const line = await page.$eval(`[data-testid="${TESTID.spectrumLine}"]`, (e) => Number(e.getAttribute("data-points")));
      if (n2 !== data.spectrum.spectra[other].n || line !== n2) problems.push(`spectrum: after choosing input ${other}, ${n2} points / line ${line} for n = ${data.spectrum.spectra[other].n}`);
      await page.screenshot({ path: path.join(out, "spectrum-other-dark.png") });
    }
  }
  if (tab === "bits" && data.bits) {
    const bars = await count(TESTID.bitBar);
    if (bars !== data.bits.plan.layers.length) problems.push(`bits: ${bars} bars for ${data.bits.plan.layers.length} layers`);
  }
  if (tab === "sensitivity" && data.sensitivity) {
    const rows = await count(TESTID.sensitivityRoleRow);
    const roles = new Set(data.sensitivity.byRole.map((e) => e.target)).size;
    if (rows !== roles) problems.push(`sensitivity: ${rows} role rows for ${roles} roles`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
