import Table from "cli-table3";

/** Compact number for tables: 3 significant digits, exponent for very small/large values. */
export function num(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return "-";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(digits - 1);
  return x.toPrecision(digits);
}

export function count(n: number): string {
  return n.toLocaleString("en-US");
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A plain table (no colours: output is often piped or read in CI logs). */
export function table(head: string[], rows: (string | number)[][], align?: ("left" | "right")[]): string {
  const t = new Table({
    head,
    style: { head: [], border: [], compact: true },
    colAligns: align,
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

/** Progress on stderr, only when it is a terminal (keeps CI logs and pipes clean). */
export function progress(msg: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${msg}`);
}

export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
}
