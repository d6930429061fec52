// The QuantLens view: workspace models → blocks → layers (content from tree-model.ts). Selecting a
// layer runs `quantlens.openLayer`. Refreshes when .onnx files or reports change.
import path from "node:path";
import fs from "node:fs";
import * as vscode from "vscode";
import type { BlockNode, LayerNode, ModelTree } from "./tree-model";
import { modelTree } from "./model-source";
import { classifyError } from "../commands/errors";

export const VIEW_ID = "quantlens.models";

export interface ModelNode {
  kind: "model";
  model: string;
}
interface ErrorNode {
  kind: "error";
  model: string;
  message: string;
}
export type TreeNode = ModelNode | BlockNode | LayerNode | ErrorNode;

const EXCLUDE = "{**/node_modules/**,**/.git/**,**/.cache/**}";
const MAX_MODELS = 500;

export class ModelTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly cache = new Map<string, { stamp: string; tree: Promise<ModelTree>; value?: ModelTree }>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly modelNodes = new Map<string, ModelNode>();

  constructor(private readonly log: (line: string) => void) {
    const watch = (glob: string) => {
      const w = vscode.workspace.createFileSystemWatcher(glob);
      this.disposables.push(w, w.onDidCreate(() => this.refresh()), w.onDidDelete(() => this.refresh()), w.onDidChange(() => this.refresh()));
    };
    watch("**/*.onnx");
    watch("**/*.quantlens.json");
    this.disposables.push(this.changed);
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    switch (node.kind) {
      case "model": {
        const item = new vscode.TreeItem(path.basename(node.model), vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `model:${node.model}`;
        item.resourceUri = vscode.Uri.file(node.model);
        item.contextValue = "quantlens.model";
        item.iconPath = new vscode.ThemeIcon("circuit-board");
        const rel = vscode.workspace.asRelativePath(path.dirname(node.model));
        const summary = this.cache.get(node.model)?.value?.description;
        item.description = [rel === path.dirname(node.model) || rel === "" ? undefined : rel, summary].filter(Boolean).join(" · ") || undefined;
        item.tooltip = node.model;
        return item;
      }
      case "block": {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `block:${node.model}:${node.block}`;
        item.description = node.description;
        item.tooltip = node.tooltip;
        item.contextValue = "quantlens.block";
        item.iconPath = new vscode.ThemeIcon("layers");
        return item;
      }
      case "layer": {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.id = `layer:${node.model}:${node.name}`;
        item.description = node.description;
        item.tooltip = node.tooltip;
        item.contextValue = `quantlens.layer.${node.badge}`;
        item.iconPath =
          node.badge === "outliers"
            ? new vscode.ThemeIcon("warning", new vscode.ThemeColor("list.warningForeground"))
            : node.badge === "quantized"
              ? new vscode.ThemeIcon("symbol-number")
              : new vscode.ThemeIcon("symbol-field");
        item.command = { command: "quantlens.openLayer", title: "Open Layer Detail", arguments: [node.model, node.name] };
        return item;
      }
      case "error": {
        const item = new vscode.TreeItem(node.message, vscode.TreeItemCollapsibleState.None);
        item.iconPath = new vscode.ThemeIcon("error", new vscode.ThemeColor("list.errorForeground"));
        item.tooltip = node.message;
        return item;
      }
    }
  }

  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    if (!node) {
      if (!vscode.workspace.workspaceFolders?.length) return [];
      const uris = await vscode.workspace.findFiles("**/*.onnx", EXCLUDE, MAX_MODELS);
      // The same node object per model: change events must name an element the view knows.
      return uris
        .map((u) => u.fsPath)
        .sort((a, b) => a.localeCompare(b))
        .map((model) => {
          let n = this.modelNodes.get(model);
          if (!n) this.modelNodes.set(model, (n = { kind: "model", model }));
          return n;
        });
    }
    if (node.kind === "model") {
      try {
        const tree = await this.tree(node.model);
        return tree.blocks;
      } catch (e) {
        const f = classifyError(e, `Reading ${path.basename(node.model)}`);
        this.log(f.detail);
        return [{ kind: "error", model: node.model, message: f.message }];
      }
    }
    if (node.kind === "block") return node.layers;
    return [];
  }

  /** The tree of one model, cached until the model or its report changes. */
  tree(model: string): Promise<ModelTree> {
    // The model and every report beside it (its own, or a quantization's that describes it).
    const dir = path.dirname(model);
    const reports = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith(".quantlens.json")).map((n) => path.join(dir, n)) : [];
    const stamp = [model, ...reports].map((f) => `${f}@${fs.existsSync(f) ? fs.statSync(f).mtimeMs : 0}`).join("|");
    const hit = this.cache.get(model);
    if (hit && hit.stamp === stamp) return hit.tree;
    const tree = modelTree(model, (m) => this.log(`tree: ${m}`));
    const entry: { stamp: string; tree: Promise<ModelTree>; value?: ModelTree } = { stamp, tree };
    this.cache.set(model, entry);
    tree.then(
      (value) => {
        entry.value = value;
        // The model row's description summarises its layers once they are known.
        const node = this.modelNodes.get(model);
        if (node) this.changed.fire(node);
      },
      () => this.cache.delete(model),
    );
    return tree;
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }
}
