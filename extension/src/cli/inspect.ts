import type { Command } from "commander";
import { inspectModel, type InspectResult } from "../engine/inspect";
import { bytes, count, num, progress, progressDone, table } from "./format";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("List the linear layers of an ONNX model: role, block, shape, dtype, weight statistics")
    .argument("<model>", "path to a .onnx file (external data is read from its folder)")
    .option("--json", "print one JSON object on stdout")
    .option("--no-stats", "skip weight statistics (index only)")
    .action(async (modelPath: string, opts: { json?: boolean; stats: boolean }) => {
      const result = await inspectModel(modelPath, {
        noStats: !opts.stats,
        onProgress: (done, total, layer) => progress(`inspect: ${done + 1}/${total} ${layer}`),
      });
      progressDone();
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatInspect(result));
    });
}

export function formatInspect(r: InspectResult): string {
  const lines: string[] = [];
  lines.push(
    `${r.model}  (IR ${r.ir_version}, opset ${r.opset}${r.producer ? `, ${r.producer}` : ""})`,
    `  file ${bytes(r.file_bytes)}, weights ${bytes(r.weight_bytes)}${r.external_data ? " (external data)" : ""}, ${count(r.nodes)} nodes, ${r.blocks} blocks`,
    "",
  );
  lines.push(
    table(
      ["layer", "role", "block", "in", "out", "dtype", "params", "absmax", "std", "kurt", "group"],
      r.linears.map((l) => [
        l.name + (l.tied_to ? `  (tied to ${l.tied_to})` : ""),
        l.role + (l.role_source === "structure" ? "*" : ""),
        l.block ?? "-",
        l.in,
        l.out,
        l.dtype,
        count(l.params),
        num(l.stats?.absmax),
        num(l.stats?.std),
        num(l.stats?.kurtosis),
        l.share_group,
      ]),
      ["left", "left", "right", "right", "right", "left", "right", "right", "right", "right", "right"],
    ),
  );
  if (r.linears.some((l) => l.role_source === "structure")) lines.push("  * role inferred from graph structure");
  const shared = r.share_groups.filter((g) => g.layers.length > 1);
  lines.push(
    "",
    `Linear layers: ${r.totals.linears}, ${count(r.totals.linear_params)} parameters of ${count(r.totals.all_params)} in the model`,
    "By role: " +
      Object.entries(r.totals.by_role)
        .map(([role, v]) => `${role} ${v.count} (${count(v.params)})`)
        .join(", "),
    `Shared inputs: ${shared.length} groups (${shared.map((g) => g.layers.length).join("+") || "none"})`,
    "Ops: " +
      Object.entries(r.ops)
        .sort((a, b) => b[1] - a[1])
        .map(([op, n]) => `${op} ${n}`)
        .join(", "),
    `Time: load ${num(r.timing.load_s)} s, index ${num(r.timing.index_s)} s, stats ${num(r.timing.stats_s)} s` +
      ` (${r.kernels.native ? `native kernels, ${r.kernels.simd}, ${r.kernels.threads} threads` : `TypeScript kernels: ${r.kernels.reason ?? "native addon off"}`})`,
    "",
  );
  return lines.join("\n");
}
