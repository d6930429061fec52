/**
 * Theme colours for canvas drawing and SVG marks. Everything comes from VS Code's CSS variables;
 * only the data colour scales (viridis etc.) are fixed.
 */
export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

export function themeColors() {
  return {
    foreground: cssVar("--vscode-foreground", "CanvasText"),
    background: cssVar("--vscode-editor-background", "Canvas"),
    muted: cssVar("--vscode-descriptionForeground", "GrayText"),
    border: cssVar("--vscode-panel-border", "GrayText"),
    focus: cssVar("--vscode-focusBorder", "Highlight"),
    error: cssVar("--vscode-errorForeground", "red"),
    warning: cssVar("--vscode-editorWarning-foreground", "orange"),
    font: `${cssVar("--vscode-font-size", "13px")} ${cssVar("--vscode-font-family", "sans-serif")}`,
  };
}

/** Call `fn` when VS Code switches theme (it rewrites <body>'s class). */
export function onThemeChange(fn: () => void): void {
  new MutationObserver(fn).observe(document.body, { attributes: true, attributeFilter: ["class", "data-vscode-theme-kind"] });
}
