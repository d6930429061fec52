// Driving the VS Code workbench (code-server in Chromium) the way a person does: explorer rows,
// context menus, notifications, webviews. Selectors are VS Code's own DOM (1.139).
import fs from "node:fs";
import path from "node:path";
import type { FrameLocator, Locator, Page } from "playwright-core";

export class Workbench {
  constructor(
    readonly page: Page,
    readonly shots: string,
  ) {
    fs.mkdirSync(shots, { recursive: true });
  }

  async screenshot(name: string): Promise<string> {
    const file = path.join(this.shots, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /** The explorer row of a file in the workspace root. */
  explorerItem(name: string): Locator {
    return this.page.locator(".explorer-folders-view").getByRole("treeitem", { name, exact: true });
  }

  async waitReady(timeout = 90_000): Promise<void> {
    await this.page.locator(".monaco-workbench").waitFor({ timeout });
    await this.explorerItem("model.onnx").waitFor({ timeout });
  }

  /**
   * Right-click `file` in the explorer and choose `item`. The entries of an extension appear
   * once the remote extension host has scanned it: reopen the menu until the item is there.
   */
  async explorerContextMenu(file: string, item: string, timeout = 60_000): Promise<void> {
    await this.showExplorer();
    const end = Date.now() + timeout;
    for (;;) {
      await this.explorerItem(file).click({ button: "right" });
      const menu = this.page.locator(".context-view .monaco-menu");
      await menu.waitFor({ timeout: 10_000 });
      const entry = menu.locator(".action-item .action-label").getByText(item, { exact: true });
      if ((await entry.count()) > 0) {
        // VS Code's menus ignore a click that comes right after they open (the right-click's own
        // mouse-up): settle first, and click again if the menu is still there.
        await this.page.waitForTimeout(400);
        for (let i = 0; i < 3 && (await menu.isVisible()); i++) {
          await entry.first().click();
          await this.page.waitForTimeout(300);
        }
        if (await menu.isVisible()) throw new Error(`the explorer menu stayed open after clicking "${item}"`);
        return;
      }
      const shown = await menu.locator(".action-label").allInnerTexts();
      await this.page.keyboard.press("Escape");
      if (Date.now() > end) throw new Error(`no "${item}" in the explorer menu of ${file}: ${shown.filter(Boolean).join(" | ")}`);
      await this.page.waitForTimeout(1000);
    }
  }

  /** Bring the Explorer view back (another view container may be showing). */
  async showExplorer(): Promise<void> {
    if (await this.page.locator(".explorer-folders-view").isVisible()) return;
    await this.page.locator('.activitybar .action-label[aria-label^="Explorer"]').click();
    await this.page.locator(".explorer-folders-view").waitFor({ timeout: 10_000 });
  }

  /** The entries of the explorer context menu of `file` (the menu is closed again). */
  async explorerMenuItems(file: string): Promise<string[]> {
    await this.showExplorer();
    await this.explorerItem(file).click({ button: "right" });
    const menu = this.page.locator(".context-view .monaco-menu");
    await menu.waitFor({ timeout: 10_000 });
    const items = (await menu.locator(".action-item .action-label").allInnerTexts()).filter(Boolean);
    await this.page.keyboard.press("Escape");
    await menu.waitFor({ state: "hidden", timeout: 10_000 });
    return items;
  }

  /** A notification toast whose message matches. */
  toast(message: RegExp): Locator {
    return this.page.locator(".notifications-toasts .notification-toast").filter({ hasText: message });
  }

  /** All notification messages visible now (toasts), for error messages. */
  async toastTexts(): Promise<string[]> {
    return this.page.locator(".notifications-toasts .notification-list-item-message").allInnerTexts();
  }

  async clearNotifications(): Promise<void> {
    await this.runCommand("Notifications: Clear All Notifications");
  }

  /** Run a command from the command palette by its full title. */
  async runCommand(title: string, timeout = 60_000): Promise<void> {
    await this.page.keyboard.press("F1");
    const input = this.page.locator(".quick-input-widget input.input");
    await input.waitFor({ timeout: 10_000 });
    await input.fill(`>${title}`);
    // The first row must be the command (extension commands appear once the host scanned them).
    const row = this.page.locator(".quick-input-widget .monaco-list-row.focused", { hasText: title });
    await row.waitFor({ timeout });
    await this.page.keyboard.press("Enter");
  }

  /**
   * Answer the open quick pick whose title matches `title`: type `choice` to filter it and
   * accept the focused row once it shows `choice`.
   */
  async quickPick(title: RegExp, choice: string, timeout = 30_000): Promise<void> {
    const widget = this.page.locator(".quick-input-widget");
    await widget.locator(".quick-input-title", { hasText: title }).waitFor({ timeout });
    await widget.locator("input.input").fill(choice);
    await widget.locator(".monaco-list-row.focused", { hasText: choice }).waitFor({ timeout: 10_000 });
    await this.page.keyboard.press("Enter");
    await widget.locator(".quick-input-title", { hasText: title }).waitFor({ state: "hidden", timeout: 10_000 });
  }

  /** The visible webview's content frame (VS Code nests it: iframe.webview → #active-frame). */
  webview(): FrameLocator {
    return this.page.locator("iframe.webview.ready:visible").contentFrame().locator("#active-frame").contentFrame();
  }

  /** Wait until the explorer lists `name`. */
  async waitExplorerItem(name: string, timeout = 30_000): Promise<void> {
    await this.explorerItem(name).waitFor({ timeout });
  }
}

/** Pixel statistics of a canvas: size, pixels differing from the page background, distinct colours. */
export async function canvasStats(canvas: Locator): Promise<{ width: number; height: number; nonBackground: number; distinct: number; background: string }> {
  return canvas.evaluate((el) => {
    const c = el as HTMLCanvasElement;
    const ctx = c.getContext("2d");
    if (!ctx) throw new Error("canvas has no 2d context");
    const { width, height } = c;
    const px = ctx.getImageData(0, 0, width, height).data;
    // The page background behind the canvas (transparent canvas pixels show it).
    let bgEl: Element | null = c;
    let bg = "rgba(0, 0, 0, 0)";
    while (bgEl) {
      const b = getComputedStyle(bgEl).backgroundColor;
      if (b && !/rgba\(0, 0, 0, 0\)|transparent/.test(b)) {
        bg = b;
        break;
      }
      bgEl = bgEl.parentElement;
    }
    const m = /(\d+), (\d+), (\d+)/.exec(bg);
    const [br, bgG, bb] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
    let nonBackground = 0;
    const colours = new Set<number>();
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] === 0) continue;
      const d = Math.abs(px[i] - br) + Math.abs(px[i + 1] - bgG) + Math.abs(px[i + 2] - bb);
      if (d > 24) nonBackground++;
      colours.add(((px[i] >> 3) << 10) | ((px[i + 1] >> 3) << 5) | (px[i + 2] >> 3));
    }
    return { width, height, nonBackground, distinct: colours.size, background: bg };
  });
}
