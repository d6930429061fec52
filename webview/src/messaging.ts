/**
 * Requests to the host, matched to their `response` by id (hexeditor-style). The host answers
 * every request once; a pending request is rejected if the panel reloads.
 */
import type { ResponseMessage } from "../../extension/src/protocol";
import { post } from "./vscode";

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

let nextId = 1;
const pending = new Map<number, Pending>();

/** Send `msg` with a fresh id; resolves with the host's result. */
export function request<T>(msg: { type: string } & Record<string, unknown>): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    post({ ...msg, id });
  });
}

/** Send a request whose id the caller already assigned (the re-plan state machine numbers its own). */
export function requestWithId<T>(msg: { type: string; id: number } & Record<string, unknown>): Promise<T> {
  nextId = Math.max(nextId, msg.id + 1);
  return new Promise<T>((resolve, reject) => {
    pending.set(msg.id, { resolve: resolve as (v: unknown) => void, reject });
    post(msg);
  });
}

export function handleResponse(msg: ResponseMessage<unknown>): void {
  const p = pending.get(msg.id);
  if (!p) return;
  pending.delete(msg.id);
  if (msg.ok) p.resolve(msg.result);
  else p.reject(new Error(msg.error));
}

export function rejectAll(reason: string): void {
  for (const p of pending.values()) p.reject(new Error(reason));
  pending.clear();
}

export function reportError(e: unknown): void {
  const message = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
  post({ type: "webviewError", message: message.slice(0, 4000) });
}
