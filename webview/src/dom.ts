/**
 * Tiny DOM builders. Elements are created node by node (never innerHTML), attributes through
 * setAttribute and styles through the CSSOM, so nothing needs 'unsafe-inline' under the CSP.
 */
type Attrs = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | null | undefined | false;

function apply(el: Element, attrs: Attrs | undefined, children: Child[]): void {
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, attrs?: Attrs, ...children: Child[]): HTMLElement;
export function h(tag: string, attrs?: Attrs, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  apply(el, attrs, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs, children);
  return el;
}

/** A VS Code Elements table: header labels, rows of cells. Rows get `attrs(i)`. */
export function table(
  columns: { label: Node | string; width?: string }[],
  rows: { attrs?: Attrs; cells: (Node | string)[]; onActivate?: () => void }[],
  attrs?: Attrs,
): HTMLElement {
  const t = h("vscode-table", { zebra: true, "bordered-rows": true, resizable: true, ...attrs });
  // vscode-table turns `columns` into percentages of its own width, so it can only apply them
  // once it has one (not while detached or in a hidden tab): set them on the first real size.
  const widths = columns.map((c) => c.width ?? "auto");
  const ro = new ResizeObserver((entries) => {
    if (entries[entries.length - 1].contentRect.width <= 0) return;
    ro.disconnect();
    // Next frame: after the table's own resize observer has recorded its width.
    requestAnimationFrame(() => ((t as HTMLElement & { columns: string[] }).columns = widths));
  });
  ro.observe(t);
  const header = h("vscode-table-header", { slot: "header" }, ...columns.map((c) => h("vscode-table-header-cell", undefined, c.label)));
  const body = h("vscode-table-body", { slot: "body" });
  // Keyboard: one tab stop for the body (roving tabindex), arrows move between rows, Enter
  // activates (e.g. reveals the layer).
  const els: HTMLElement[] = [];
  const focusRow = (i: number) => {
    const next = els[Math.max(0, Math.min(els.length - 1, i))];
    if (!next) return;
    for (const el of els) el.tabIndex = el === next ? 0 : -1;
    next.focus();
  };
  rows.forEach((r, i) => {
    const row = h("vscode-table-row", r.attrs, ...r.cells.map((c) => h("vscode-table-cell", undefined, c)));
    row.tabIndex = i === 0 ? 0 : -1;
    const act = r.onActivate;
    if (act) row.addEventListener("dblclick", act);
    row.addEventListener("keydown", (e) => {
      const k = e.key;
      if (k === "Enter" && act) act();
      else if (k === "ArrowDown") focusRow(i + 1);
      else if (k === "ArrowUp") focusRow(i - 1);
      else if (k === "Home") focusRow(0);
      else if (k === "End") focusRow(els.length - 1);
      else if (k === "PageDown") focusRow(i + 10);
      else if (k === "PageUp") focusRow(i - 10);
      else return;
      e.preventDefault();
    });
    els.push(row);
    body.append(row);
  });
  t.append(header, body);
  return t;
}

/** A labelled <input type="range"> (VS Code Elements 2.5 has no slider). */
export function slider(o: { id: string; label: string; min: number; max: number; step: number; value: number; testid: string; disabled?: boolean }): {
  root: HTMLElement;
  input: HTMLInputElement;
  output: HTMLOutputElement;
} {
  const input = h("input", { type: "range", id: o.id, min: o.min, max: o.max, step: o.step, "data-testid": o.testid, disabled: o.disabled });
  input.value = String(o.value);
  const output = h("output", { for: o.id });
  const root = h("div", { class: "slider" }, h("label", { for: o.id }, o.label), input, output);
  return { root, input, output };
}

/** A VS Code Elements single-select with options (value, label). */
export function select(options: { value: string; label: string }[], value: string, attrs?: Attrs): HTMLElement & { value: string } {
  const sel = h("vscode-single-select", attrs) as HTMLElement & { value: string };
  for (const o of options) {
    const opt = h("vscode-option", { value: o.value, selected: o.value === value }, o.label);
    sel.append(opt);
  }
  return sel;
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

/** Watch an element's size; `fn` runs on the next frame after each change (and once now). */
export function onResize(el: Element, fn: (width: number, height: number) => void): () => void {
  let frame = 0;
  const ro = new ResizeObserver((entries) => {
    const r = entries[entries.length - 1].contentRect;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => fn(r.width, r.height));
  });
  ro.observe(el);
  return () => ro.disconnect();
}
