// Preloaded (node --require) into the CLI by network.test.ts: every way Node code can reach the
// network throws, and each attempt is appended to $QUANTLENS_NET_LOG so the test can assert there
// were none. At exit the file also records whether ORT_DISABLE_TELEMETRY was set.
"use strict";
/* global require, process */
/* eslint-disable @typescript-eslint/no-require-imports */
const fs = require("node:fs");
const log = process.env.QUANTLENS_NET_LOG;
function attempt(what) {
  const line = `attempt: ${what}\n${new Error().stack.split("\n").slice(2, 6).join("\n")}\n`;
  if (log) fs.appendFileSync(log, line);
  const e = new Error(`network access blocked in test: ${what}`);
  e.code = "EQUANTLENSNONET";
  throw e;
}
function block(mod, names, label) {
  for (const n of names) {
    if (typeof mod[n] === "function") mod[n] = function blocked() { return attempt(`${label}.${n}`); };
  }
}
const net = require("node:net");
block(net, ["connect", "createConnection", "createServer"], "net");
net.Socket.prototype.connect = function blocked() { return attempt("net.Socket.connect"); };
block(require("node:tls"), ["connect", "createServer"], "tls");
block(require("node:http"), ["request", "get", "createServer"], "http");
block(require("node:https"), ["request", "get", "createServer"], "https");
const dns = require("node:dns");
block(dns, ["lookup", "resolve", "resolve4", "resolve6", "resolveAny", "lookupService"], "dns");
block(dns.promises, ["lookup", "resolve", "resolve4", "resolve6", "resolveAny", "lookupService"], "dns.promises");
block(require("node:dgram"), ["createSocket"], "dgram");
try { block(require("node:http2"), ["connect", "createServer", "createSecureServer"], "http2"); } catch { /* absent */ }
globalThis.fetch = function blocked() { return attempt("fetch"); };
if (globalThis.WebSocket) globalThis.WebSocket = function blocked() { return attempt("WebSocket"); };
process.on("exit", () => {
  if (log) fs.appendFileSync(log, `telemetry-env: ${process.env.ORT_DISABLE_TELEMETRY ?? "(unset)"}\n`);
});
