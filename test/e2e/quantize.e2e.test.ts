// A person's path through QuantLens in the real VS Code (code-server) and a real browser
// (Debian's Chromium through playwright-core): right-click the demo model → Quantize, watch the
// progress, find the quantized model and its report in the explorer, open the report, check every
// panel shows real data (against the report file), move the budget slider, open the model in the
// custom editor. Screenshots of every view go to test-output/screenshots/.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { installExtension, launchBrowser, prepareDemoWorkspace, ROOT, startCodeServer, workbenchUrl, type CodeServer } from "../../scripts/vscode-env.mjs";
import { readReport } from "../../extension/src/engine/report/write";
import type { QuantLensReport } from "../../extension/src/engine/report/schema";
import { decodeF32 } from "../../extension/src/engine/report/schema";
import { TESTID } from "../../extension/src/protocol/testids";
import { canvasStats, Workbench } from "./workbench";

const OUT = path.join(ROOT, "test-output", "e2e");
const SHOTS = path.join(ROOT, "test-output", "screenshots");
/** code-server's folders (with the installed extension) and the browser profile: not in test-output. */
const RUN = path.join(ROOT, ".cache", "vscode-runs", "e2e");
const QUANTIZED = "model.gptq-w4g32.onnx";
const REPORT = "model.gptq-w4g32.quantlens.json";
const tid = (id: string) => `[data-testid="${id}"]`;

let cs: CodeServer | undefined;
let browser: BrowserContext | undefined;
let page: Page;
let wb: Workbench;
let workspace: string;
let report: QuantLensReport;
const browserErrors: string[] = [];

/**
 * The steps build on each other (no report without a quantization): a step whose prerequisite
 * failed fails at once, naming it, instead of waiting out its own timeouts.
 */
const failed = new Set<string>();
function step(name: string, needs: string[], fn: () => Promise<void>, timeout?: number): void {
  test(
    name,
    async () => {
      const missing = needs.filter((n) => failed.has(n));
      if (missing.length) {
        failed.add(name);
        throw new Error(`not run: the step(s) it needs failed: ${missing.join("; ")}`);
      }
      try {
        await fn();
      } catch (e) {
        failed.add(name);
        await wb?.screenshot(`failed-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}`).catch(() => undefined);
        throw e;
      }
    },
    timeout,
  );
}
const QUANTIZE = "right-click model.onnx → Quantize runs with progress and announces the result";
const APPEAR = "the quantized model and its report appear in the explorer";
const OPEN_REPORT = "Open Report shows the report webview";

describe("QuantLens in VS Code (code-server + Chromium)", () => {
  beforeAll(async () => {
    fs.rmSync(OUT, { recursive: true, force: true });
    fs.rmSync(SHOTS, { recursive: true, force: true });
    fs.rmSync(RUN, { recursive: true, force: true });
    workspace = prepareDemoWorkspace(path.join(OUT, "demo"), {
      "quantlens.method": "gptq",
      "quantlens.bits": 4,
      "quantlens.group": 32,
      "quantlens.format": "matmulnbits",
      "quantlens.samples": 16,
    });
    const csDir = path.join(RUN, "code-server");
    const vsix = inject("vsix");
    const how = installExtension(path.join(csDir, "extensions"), path.join(csDir, "user-data"), vsix);
    process.stderr.write(`[e2e] extension installed from ${how === "vsix" ? vsix : "this checkout (no VSIX)"}\n`);
    cs = await startCodeServer({ dir: csDir, folder: workspace });
    browser = await launchBrowser(path.join(RUN, "chromium-profile"));
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") browserErrors.push(m.text());
    });
    page.on("pageerror", (e) => browserErrors.push(`pageerror: ${e.message}`));
    page.on("response", (r) => {
      if (r.status() >= 400) browserErrors.push(`HTTP ${r.status()} ${r.url()}`);
    });
    wb = new Workbench(page, SHOTS);
    await page.goto(workbenchUrl(cs.url, workspace));
    await wb.waitReady();
  }, 180_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await cs?.stop();
    if (cs) fs.writeFileSync(path.join(OUT, "code-server.log"), cs.logs());
    fs.writeFileSync(path.join(OUT, "browser-errors.log"), browserErrors.join("\n"));
  }, 60_000);

  step("the demo workspace opens with the model in the explorer", [], async () => {
    await wb.screenshot("01-workbench");
    for (const f of ["model.onnx", "calib.jsonl", "tokenizer.json"]) await expect(wb.explorerItem(f).count()).resolves.toBe(1);
  });

  step(QUANTIZE, [], async () => {
    await wb.explorerContextMenu("model.onnx", "Quantize");
    const progress = wb.toast(/QuantLens: quantizing model\.onnx/);
    await progress.waitFor({ timeout: 30_000 });
    await page.waitForTimeout(600); // the toast's fade-in
    await wb.screenshot("02-quantize-progress");
    const done = wb.toast(new RegExp(`QuantLens: wrote ${QUANTIZED.replace(/\./g, "\\.")}`));
    await done.waitFor({ timeout: 300_000 }).catch(async (e) => {
      await wb.screenshot("02-quantize-failed");
      throw new Error(`no "wrote ${QUANTIZED}" notification; toasts: ${(await wb.toastTexts()).join(" | ")}\n${e}`);
    });
    await expect(progress.count()).resolves.toBe(0);
    await wb.screenshot("03-quantize-done");
  }, 330_000);

  step(APPEAR, [QUANTIZE], async () => {
    await wb.waitExplorerItem(QUANTIZED);
    await wb.waitExplorerItem(REPORT);
    expect(fs.existsSync(path.join(workspace, QUANTIZED))).toBe(true);
    report = readReport(path.join(workspace, REPORT));
    expect(report.layers.length).toBe(36);
  });

  step(OPEN_REPORT, [APPEAR], async () => {
    await wb.toast(/QuantLens: wrote/).getByRole("button", { name: "Open Report" }).click();
    const frame = wb.webview();
    await frame.locator(tid(TESTID.reportTabs)).waitFor({ timeout: 60_000 });
    await frame.locator(`${tid(TESTID.panel("overview"))}[data-state="ready"]`).waitFor({ timeout: 30_000 });
    await expect(frame.locator(tid(TESTID.layerRow)).count()).resolves.toBe(report.layers.length);
    // Every column header is readable at 1280×800: none cut off.
    await page.waitForTimeout(300); // the table applies its column widths on the next frame
    const clipped = await frame.locator("button.sort").evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
    expect(clipped).toEqual([]);
    // Shapes as W is stored, out × in.
    const k = report.layers.find((l) => l.role === "k")!;
    await expect(frame.locator(`${tid(TESTID.layerRow)}[data-layer="${k.name}"]`).innerText()).resolves.toContain(`${k.out} × ${k.in}`);
    await wb.screenshot("04-report-overview");
  }, 120_000);

  async function openTab(tab: string): Promise<void> {
    const frame = wb.webview();
    await frame.locator(`vscode-tab-header[data-tab="${tab}"]`).click();
    await frame.locator(`${tid(TESTID.panel(tab))}[data-state="ready"]`).waitFor({ timeout: 30_000 });
  }

  step("heatmap: one row per layer input, painted with real data", [OPEN_REPORT], async () => {
    await openTab("heatmap");
    const frame = wb.webview();
    const canvas = frame.locator(tid(TESTID.heatmapCanvas));
    const inputs = new Set(report.layers.map((l) => l.input)).size;
    expect(report.heatmap, "the report has no heatmap section").toBeDefined();
    expect(report.heatmap!.rows.length).toBe(inputs);
    await expect(canvas.getAttribute("data-rows")).resolves.toBe(String(inputs));
    await expect(canvas.getAttribute("data-cols")).resolves.toBe(String(report.heatmap!.width));
    const px = await canvasStats(canvas);
    // A log colour scale over 21 × 172 cells: most of the canvas painted, many colours.
    expect(px.nonBackground, JSON.stringify(px)).toBeGreaterThan(0.3 * px.width * px.height);
    expect(px.distinct, JSON.stringify(px)).toBeGreaterThan(16);
    const outliers = report.activations!.reduce((s, a) => s + a.outliers.length, 0);
    if (outliers > 0) expect(await frame.locator(tid(TESTID.heatmapOutlier)).count()).toBeGreaterThan(0);
    // The SmoothQuant α preview renders from the report's per-input-channel weight absmax.
    expect(report.weights?.every((w) => w.col_absmax)).toBe(true);
    const smoothX = frame.locator(tid(TESTID.smoothXCanvas));
    await smoothX.scrollIntoViewIfNeeded();
    const sx = await canvasStats(smoothX);
    // Rows of 64 channels padded to 172 (NaN, unpainted): about half the plot holds data.
    expect(sx.nonBackground, JSON.stringify(sx)).toBeGreaterThan(0.2 * sx.width * sx.height);
    expect(sx.distinct, JSON.stringify(sx)).toBeGreaterThan(16);
    await expect(frame.locator(tid(TESTID.smoothWCanvas)).count()).resolves.toBe(1);
    await wb.screenshot("05-report-heatmap");
  }, 60_000);

  step("spectrum: one point per eigenvalue of the selected layer input", [OPEN_REPORT], async () => {
    await openTab("spectrum");
    const frame = wb.webview();
    const selected = await frame.locator(tid(TESTID.spectrumSelect)).evaluate((el) => (el as HTMLSelectElement).value);
    const row = report.spectra?.find((s) => s.tensor === selected) ?? report.spectra?.[0];
    expect(row, `no spectrum for '${selected}' in the report`).toBeDefined();
    const n = decodeF32(row!.eigenvalues).length;
    expect(n).toBe(row!.n);
    await expect(frame.locator(tid(TESTID.spectrumLine)).getAttribute("data-points")).resolves.toBe(String(n));
    await expect(frame.locator(tid(TESTID.spectrumPoint)).count()).resolves.toBe(n);
    await wb.screenshot("06-report-spectrum");
  }, 60_000);

  step("bits: one bar per layer; moving the budget slider re-plans", [OPEN_REPORT], async () => {
    await openTab("bits");
    const frame = wb.webview();
    const bars = frame.locator(tid(TESTID.bitBar));
    // One bar per quantized layer, each at the bits the report gives it (lm_head stays in float).
    const quantized = report.quantization?.layers ?? report.layers.filter((l) => l.bits !== null).map((l) => ({ name: l.name, bits: l.bits as number }));
    // The chart is drawn once the panel has a width (a resize observer), which can come just
    // after the panel reports ready.
    await expect.poll(() => bars.count(), { timeout: 30_000 }).toBe(quantized.length);
    const shown = await bars.evaluateAll((els) => els.map((e) => `${e.getAttribute("data-layer")}=${e.getAttribute("data-bits")}`));
    expect(shown.sort()).toEqual(quantized.map((l) => `${l.name}=${l.bits}`).sort());
    const planned = quantized.length;
    await wb.screenshot("07-report-bits");
    const bitsOf = () => bars.evaluateAll((els) => els.map((e) => e.getAttribute("data-bits")).join(","));
    const before = { bits: await bitsOf(), avg: await frame.locator(tid(TESTID.avgBits)).innerText() };
    // Keyboard, as a person would: focus the slider and go to the smallest budget.
    const slider = frame.locator(tid(TESTID.budgetSlider));
    await slider.focus();
    await page.keyboard.press("Home");
    await expect
      .poll(async () => (await frame.locator(tid(TESTID.planStatus)).getAttribute("data-status")) === "idle" && (await bitsOf()) !== before.bits, { timeout: 60_000 })
      .toBe(true);
    const after = { bits: await bitsOf(), avg: await frame.locator(tid(TESTID.avgBits)).innerText() };
    expect(after.avg).not.toBe(before.avg);
    expect(Number.parseFloat(after.avg)).toBeLessThan(Number.parseFloat(before.avg));
    // Still one bar per layer: each a layer of the model, none twice.
    const replanned = await bars.evaluateAll((els) => els.map((e) => e.getAttribute("data-layer") ?? ""));
    expect(new Set(replanned).size).toBe(replanned.length);
    const names = new Set(report.layers.map((l) => l.name));
    expect(replanned.filter((n) => !names.has(n))).toEqual([]);
    // The re-plan covers exactly the layers the quantization quantized (lm_head stays in float).
    expect(replanned.length).toBe(planned);
    expect([...replanned].sort()).toEqual(quantized.map((l) => l.name).sort());
    await wb.screenshot("08-report-bits-replanned");
  }, 90_000);

  step("sensitivity: one row per role measured", [OPEN_REPORT], async () => {
    await openTab("sensitivity");
    const frame = wb.webview();
    expect(report.sensitivity, "the report has no sensitivity section").toBeDefined();
    const roles = new Set(report.sensitivity!.rows.filter((r) => r.by === "role").map((r) => r.target));
    expect(roles.size).toBeGreaterThan(0);
    await expect(frame.locator(tid(TESTID.sensitivityRoleRow)).count()).resolves.toBe(roles.size);
    await wb.screenshot("09-report-sensitivity");
  }, 60_000);

  step("the QuantLens view lists models → blocks → layers, and a layer opens its detail", [APPEAR], async () => {
    await wb.runCommand("View: Close All Editors");
    await page.locator('.activitybar .action-label[aria-label^="QuantLens"]').click();
    const rows = page.locator(".part.sidebar .monaco-list-row");
    const row = (text: string) => rows.filter({ hasText: text });
    // Both models of the workspace, the quantized one included.
    await row("model.gptq-w4g32.onnx").first().waitFor({ timeout: 30_000 });
    const model = rows.filter({ has: page.locator(".label-name", { hasText: /^model\.onnx$/ }) }).first();
    await model.click();
    if ((await model.getAttribute("aria-expanded")) !== "true") await page.keyboard.press("ArrowRight");
    await row("block 4").first().waitFor({ timeout: 30_000 });
    const blocks = report.layers.map((l) => l.block).filter((b): b is number => b !== null);
    for (let b = 0; b <= Math.max(...blocks); b++) await expect(row(`block ${b}`).count()).resolves.toBeGreaterThan(0);
    await row("block 0").first().click();
    await page.keyboard.press("ArrowRight");
    const q = row("q_proj").first();
    await q.waitFor({ timeout: 30_000 });
    const layerRows = await rows.evaluateAll((els) => els.filter((e) => e.getAttribute("aria-level") === "3").length);
    expect(layerRows).toBe(report.layers.filter((l) => l.block === 0).length);
    // The fp model shows what the quantization's report measured about it: shape out × in, and
    // the layer's measured sensitivity (KL with only it quantized).
    const q0 = report.layers.find((l) => l.role === "q" && l.block === 0)!;
    await expect(q.innerText()).resolves.toContain(`${q0.out} out × ${q0.in} in`);
    if (q0.sensitivity !== null) await expect(q.innerText()).resolves.toMatch(/KL \d/);
    await wb.screenshot("10-models-view");
    await q.click();
    const frame = wb.webview();
    await frame.locator("h1", { hasText: "q_proj" }).waitFor({ timeout: 30_000 });
    // Its detail reads the quantization's report (the report's source model is this file).
    await frame.getByText("From the report").first().waitFor({ timeout: 30_000 });
    await expect(frame.getByText(REPORT).count()).resolves.toBeGreaterThan(0);
    await wb.screenshot("10-layer-detail");
    await wb.showExplorer();
  }, 120_000);

  step(
    "Cancel on the progress notification stops Quantize and leaves no files",
    [QUANTIZE],
    async () => {
      // A longer run, set the way a user would, in the workspace's settings file: the 128
      // calibration documents 8 times over, from a file outside the workspace (~10 s of work;
      // the 128 alone now quantize in ~2.5 s, about when the Cancel button would be pressed).
      const big = path.join(path.dirname(workspace), `calib-x8-${process.pid}.jsonl`);
      fs.writeFileSync(big, (fs.readFileSync(path.join(workspace, "calib.jsonl"), "utf8").trimEnd() + "\n").repeat(8));
      const settingsFile = path.join(workspace, ".vscode", "settings.json");
      const settings = JSON.parse(fs.readFileSync(settingsFile, "utf8")) as Record<string, unknown>;
      fs.writeFileSync(settingsFile, JSON.stringify({ ...settings, "quantlens.samples": 1024, "quantlens.calibrationFile": big }, null, 2));
      try {
        await page.waitForTimeout(1500); // the configuration service notices the file change
        await wb.runCommand("View: Close All Editors");
        await wb.clearNotifications();
        const before = fs.readdirSync(workspace).sort();
        await wb.explorerContextMenu("model.onnx", "Quantize");
        // The first run's output is there: QuantLens asks before touching it.
        const dialog = page.locator(".monaco-dialog-box");
        await dialog.waitFor({ timeout: 30_000 });
        await wb.screenshot("11-output-exists-dialog");
        await dialog.getByRole("button", { name: "Keep Both" }).click();
        const progress = wb.toast(/QuantLens: quantizing model\.onnx/);
        await progress.waitFor({ timeout: 30_000 });
        await page.waitForTimeout(600);
        await wb.screenshot("12-cancel-progress");
        await progress.getByRole("button", { name: "Cancel" }).click();
        await progress.waitFor({ state: "detached", timeout: 60_000 });
        await wb.toast(/cancell?ed/i).waitFor({ timeout: 30_000 });
        await page.waitForTimeout(600);
        await wb.screenshot("13-cancelled");
        await page.waitForTimeout(1000);
        expect(fs.readdirSync(workspace).sort()).toEqual(before);
        await expect(wb.explorerItem("model.gptq-w4g32-2.onnx").count()).resolves.toBe(0);
      } finally {
        fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
        fs.rmSync(big, { force: true });
      }
    },
    180_000,
  );

  step(
    "Quantize… asks method, bits, group, format and data, and writes what was picked",
    [QUANTIZE],
    async () => {
      await wb.runCommand("View: Close All Editors");
      await wb.clearNotifications();
      await wb.explorerContextMenu("model.onnx", "Quantize…");
      await wb.quickPick(/method/, "RTN");
      await wb.quickPick(/bits/, "8-bit");
      await wb.screenshot("14-quantize-with-picks");
      await wb.quickPick(/group/, "per output channel");
      await wb.quickPick(/format/, "QDQ");
      await wb.quickPick(/calibration/, "calib.jsonl");
      const out = "model.rtn-w8-qdq.onnx";
      await wb.toast(new RegExp(`QuantLens: wrote ${out.replace(/\./g, "\\.")}`)).waitFor({ timeout: 300_000 });
      await wb.waitExplorerItem(out);
      const r = readReport(path.join(workspace, "model.rtn-w8-qdq.quantlens.json"));
      expect(r.quantization).toMatchObject({ method: "rtn", bits: 8, group: 0, format: "qdq" });
      expect(r.calibration?.data).toMatch(/calib\.jsonl$/);
    },
    330_000,
  );

  step("the model opens in the QuantLens custom editor (Open With…)", [], async () => {
    await wb.runCommand("View: Close All Editors");
    await wb.explorerContextMenu("model.onnx", "Open With...");
    const pick = page.locator(".quick-input-widget .monaco-list-row", { hasText: /QuantLens/ });
    await pick.first().waitFor({ timeout: 30_000 });
    await wb.screenshot("15-open-with");
    await pick.first().click();
    const frame = wb.webview();
    await frame.locator(`${tid(TESTID.panel("overview"))}[data-state="ready"]`).waitFor({ timeout: 60_000 });
    await expect(frame.locator(tid(TESTID.layerRow)).count()).resolves.toBe(36);
    await wb.screenshot("16-custom-editor");
  }, 120_000);

  step("the webviews ran without script errors or Content-Security-Policy violations", [OPEN_REPORT], async () => {
    const isBad = (e: string) => /pageerror|Content Security Policy|Refused to (load|execute|apply)|Uncaught/i.test(e);
    const bad = browserErrors.filter(isBad);
    // Positive control: an inline script in the open webview must be refused by its CSP, and the
    // refusal must reach this log (so an empty list above means something).
    const n = browserErrors.length;
    await wb
      .webview()
      .locator("body")
      .evaluate((body) => {
        const el = document.createElement("script");
        el.textContent = "document.body.dataset.cspControl = 'ran'";
        body.append(el);
      });
    await expect.poll(() => browserErrors.slice(n).some(isBad), { timeout: 10_000 }).toBe(true);
    await expect(wb.webview().locator("body").getAttribute("data-csp-control")).resolves.toBeNull();
    expect(bad).toEqual([]);
  });
});
