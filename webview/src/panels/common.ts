/** Pieces every panel uses: the panel root, "missing section" notes, axes drawn in SVG. */
import { TESTID } from "../../../extension/src/protocol";
import { h, s } from "../dom";

export function panelRoot(kind: string, title: string, ...children: (Node | null)[]): HTMLElement {
  return h("section", { class: "panel", "data-testid": TESTID.panel(kind), "data-state": "ready", "aria-label": title }, h("h2", undefined, title), ...children);
}

export function missingPanel(kind: string, title: string, why: string): HTMLElement {
  const root = h("section", { class: "panel", "data-testid": TESTID.panel(kind), "data-state": "empty", "aria-label": title }, h("h2", undefined, title));
  root.append(h("p", { class: "missing", "data-testid": TESTID.missing }, why));
  return root;
}

/** A bottom axis: ticks at x positions, labels under them. */
export function xAxis(ticks: { x: number; label: string }[], y: number, x0: number, x1: number): SVGGElement {
  const g = s("g", { class: "axis" });
  g.append(s("line", { x1: x0, x2: x1, y1: y, y2: y }));
  for (const t of ticks) {
    g.append(s("line", { x1: t.x, x2: t.x, y1: y, y2: y + 4 }));
    g.append(s("text", { x: t.x, y: y + 15, "text-anchor": "middle" }, t.label));
  }
  return g;
}

/** A left axis with optional horizontal grid lines across the plot. */
export function yAxis(ticks: { y: number; label: string }[], x: number, gridTo?: number): SVGGElement {
  const g = s("g", { class: "axis" });
  for (const t of ticks) {
    if (gridTo !== undefined) g.append(s("line", { class: "grid", x1: x, x2: gridTo, y1: t.y, y2: t.y }));
    g.append(s("line", { x1: x - 4, x2: x, y1: t.y, y2: t.y }));
    g.append(s("text", { x: x - 6, y: t.y + 4, "text-anchor": "end" }, t.label));
  }
  return g;
}

export function axisLabel(text: string, x: number, y: number, rotate = false): SVGTextElement {
  return s("text", { class: "axis-label", x, y, "text-anchor": "middle", transform: rotate ? `rotate(-90 ${x} ${y})` : null }, text);
}

/** A definition list of label: value pairs. */
export function facts(items: [string, string][], attrs?: Record<string, string>): HTMLElement {
  const dl = h("dl", { class: "facts", ...attrs });
  for (const [k, v] of items) dl.append(h("dt", undefined, k), h("dd", undefined, v));
  return dl;
}
