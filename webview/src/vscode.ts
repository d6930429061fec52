/**
 * The webview's side of the VS Code API: posting messages and the persisted view state
 * (getState/setState survive the panel being hidden; no retainContextWhenHidden needed).
 */
interface VsCodeApi {
  postMessage(msg: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

/** Outside a webview (a page opened on its own) state lives in memory and messages go nowhere. */
function fallbackApi(): VsCodeApi {
  let state: unknown = undefined;
  return {
    postMessage: () => undefined,
    getState: () => state,
    setState: (s) => {
      state = s;
    },
  };
}

const api: VsCodeApi = typeof acquireVsCodeApi === "function" ? acquireVsCodeApi() : fallbackApi();

export function post(msg: unknown): void {
  api.postMessage(msg);
}

/** The whole persisted state: one record per panel section. */
type ViewState = Record<string, Record<string, unknown>>;

function all(): ViewState {
  const s = api.getState();
  return s && typeof s === "object" ? (s as ViewState) : {};
}

/** Persisted state of one section, with defaults for what was never saved. */
export function loadState<T extends object>(section: string, defaults: T): T {
  const saved = all()[section] ?? {};
  const out = { ...defaults };
  for (const k of Object.keys(defaults) as (keyof T)[]) {
    const v = saved[k as string];
    if (v !== undefined && typeof v === typeof defaults[k]) out[k] = v as T[keyof T];
  }
  return out;
}

export function saveState<T extends object>(section: string, patch: Partial<T>): void {
  const s = all();
  api.setState({ ...s, [section]: { ...(s[section] ?? {}), ...patch } });
}
