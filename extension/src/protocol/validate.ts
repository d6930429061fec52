/**
 * Validation of messages coming from a webview. Webview content is untrusted input (a compromised
 * or buggy page can post anything), so the host checks every message against the panel's
 * protocol before acting on it: unknown types, unknown or missing fields, wrong field types,
 * out-of-range numbers and oversized strings are rejected with a message naming the field.
 */
import type { OpenLayerCommand, PanelKind, ReadyMessage, WebviewErrorMessage } from "./common";
import { PANEL_KINDS } from "./common";
import type { ReplanRequest } from "./bits";
import type { TokenHeatmapRequest } from "./heatmap";
import type { CompareCommand } from "./report";

/** Any message a webview may send (the union over all panels). */
export type WebviewMessage = ReadyMessage | OpenLayerCommand | WebviewErrorMessage | TokenHeatmapRequest | ReplanRequest | CompareCommand;
export type WebviewMessageType = WebviewMessage["type"];

export const LIMITS = {
  /** Layer and tensor names (ONNX names are rarely over a few hundred characters). */
  maxNameLength: 1024,
  /** Error text a webview reports. */
  maxErrorLength: 4096,
  /** Request ids: non-negative 31-bit integers. */
  maxId: 0x7fffffff,
  /** Average bits per weight a re-plan may ask for. */
  minBudget: 1,
  maxBudget: 16,
  /** Calibration sequence index. */
  maxSample: 1_000_000,
} as const;

/** Which messages each panel may send. */
export const PANEL_MESSAGES: Record<PanelKind, readonly WebviewMessageType[]> = {
  report: ["ready", "openLayer", "webviewError", "tokenHeatmap", "replan", "compare"],
  overview: ["ready", "openLayer", "webviewError"],
  heatmap: ["ready", "openLayer", "webviewError", "tokenHeatmap"],
  spectrum: ["ready", "openLayer", "webviewError"],
  bits: ["ready", "openLayer", "webviewError", "replan"],
  sensitivity: ["ready", "openLayer", "webviewError"],
  compare: ["ready", "openLayer", "webviewError"],
};

export type ValidationResult = { ok: true; message: WebviewMessage } | { ok: false; error: string };

type Fields = Record<string, unknown>;
type FieldCheck = (value: unknown, field: string) => string | null;

const name: FieldCheck = (v, f) => {
  if (typeof v !== "string") return `${f} must be a string, got ${typeName(v)}`;
  if (v.length === 0) return `${f} must not be empty`;
  if (v.length > LIMITS.maxNameLength) return `${f} is ${v.length} characters long (at most ${LIMITS.maxNameLength})`;
  return null;
};
const text: FieldCheck = (v, f) => {
  if (typeof v !== "string") return `${f} must be a string, got ${typeName(v)}`;
  if (v.length > LIMITS.maxErrorLength) return `${f} is ${v.length} characters long (at most ${LIMITS.maxErrorLength})`;
  return null;
};
const integer =
  (lo: number, hi: number): FieldCheck =>
  (v, f) => {
    if (typeof v !== "number") return `${f} must be a number, got ${typeName(v)}`;
    if (!Number.isInteger(v)) return `${f} must be an integer, got ${v}`;
    if (v < lo || v > hi) return `${f} = ${v} is out of range [${lo}, ${hi}]`;
    return null;
  };
const finite =
  (lo: number, hi: number): FieldCheck =>
  (v, f) => {
    if (typeof v !== "number") return `${f} must be a number, got ${typeName(v)}`;
    if (!Number.isFinite(v)) return `${f} must be a finite number, got ${v}`;
    if (v < lo || v > hi) return `${f} = ${v} is out of range [${lo}, ${hi}]`;
    return null;
  };

const requestId = integer(0, LIMITS.maxId);

/** Fields (besides `type`) of each message and their checks. */
const SHAPES: Record<WebviewMessageType, Record<string, FieldCheck>> = {
  ready: {},
  compare: {},
  openLayer: { layer: name },
  webviewError: { message: text },
  tokenHeatmap: { id: requestId, tensor: name, sample: integer(0, LIMITS.maxSample) },
  replan: { id: requestId, budget: finite(LIMITS.minBudget, LIMITS.maxBudget) },
};

/**
 * Check `msg` (as received from `webview.onDidReceiveMessage`) against what `panel` may send.
 * Returns the typed message, or an error naming the panel, message type and field.
 */
export function validateWebviewMessage(panel: PanelKind, msg: unknown): ValidationResult {
  if (!PANEL_KINDS.includes(panel)) return { ok: false, error: `unknown panel ${JSON.stringify(panel)}` };
  const where = `${panel} webview message`;
  if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
    return { ok: false, error: `${where} must be an object, got ${typeName(msg)}` };
  }
  const m = msg as Fields;
  if (typeof m.type !== "string") return { ok: false, error: `${where}: field "type" must be a string, got ${typeName(m.type)}` };
  const type = m.type;
  const allowed = PANEL_MESSAGES[panel];
  if (!(allowed as readonly string[]).includes(type)) {
    const shown = type.length > 64 ? `${type.slice(0, 64)}…` : type;
    return { ok: false, error: `${where}: unknown type "${shown}" (the ${panel} panel sends ${allowed.join(", ")})` };
  }
  const shape = SHAPES[type as WebviewMessageType];
  // Own properties only: `in` would accept inherited names such as "__proto__" or "constructor".
  for (const key of Object.keys(m)) {
    if (key !== "type" && !Object.hasOwn(shape, key)) return { ok: false, error: `${where} "${type}": unexpected field "${key.slice(0, 64)}"` };
  }
  for (const [key, check] of Object.entries(shape)) {
    if (!Object.hasOwn(m, key)) return { ok: false, error: `${where} "${type}": missing field "${key}"` };
    const problem = check(m[key], `field "${key}"`);
    if (problem) return { ok: false, error: `${where} "${type}": ${problem}` };
  }
  return { ok: true, message: m as unknown as WebviewMessage };
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v;
}
