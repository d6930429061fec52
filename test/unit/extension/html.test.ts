import { describe, expect, it } from "vitest";
import { contentSecurityPolicy, makeNonce, webviewHtml } from "../../../extension/src/views/html";

const base = {
  panel: "report" as const,
  title: "model <1> & \"x\"",
  cspSource: "https://file+.vscode-resource.vscode-cdn.net",
  scriptUri: "https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/main.js",
  styleUri: "https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/main.css",
};

describe("webview HTML shell", () => {
  it("strict CSP: nothing by default, scripts only with the nonce, styles from the webview source or the nonce", () => {
    const nonce = "AAAAAAAAAAAAAAAAAAAAAA==";
    const csp = contentSecurityPolicy(base.cspSource, nonce);
    const parts = csp.split("; ");
    expect(parts[0]).toBe("default-src 'none'");
    expect(parts).toContain(`script-src 'nonce-${nonce}'`);
    expect(parts).toContain(`style-src ${base.cspSource} 'nonce-${nonce}'`);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
  });

  it("one script tag, carrying the nonce and the bundle; the stylesheet too; no inline script or style attributes", () => {
    const html = webviewHtml({ ...base, nonce: "BBBBBBBBBBBBBBBBBBBBBB==" });
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0][1]).toContain('nonce="BBBBBBBBBBBBBBBBBBBBBB=="');
    expect(scripts[0][1]).toContain(`src="${base.scriptUri}"`);
    expect(scripts[0][2].trim()).toBe("");
    expect(html).toContain(`<link rel="stylesheet" nonce="BBBBBBBBBBBBBBBBBBBBBB==" href="${base.styleUri}">`);
    expect(html).not.toMatch(/\sstyle="/);
    expect(html).toContain('<body data-panel="report">');
    expect(html).toContain('<div id="app" data-state="loading"></div>');
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'nonce-BBBBBBBBBBBBBBBBBBBBBB=='/);
  });

  it("escapes the title (file names are user data)", () => {
    const html = webviewHtml(base);
    expect(html).toContain("<title>model &lt;1&gt; &amp; &quot;x&quot;</title>");
  });

  it("a fresh, unguessable nonce per render", () => {
    const nonces = new Set(Array.from({ length: 50 }, () => makeNonce()));
    expect(nonces.size).toBe(50);
    for (const n of nonces) expect(Buffer.from(n, "base64")).toHaveLength(16);
    const a = webviewHtml(base).match(/nonce-([^']+)'/)![1];
    const b = webviewHtml(base).match(/nonce-([^']+)'/)![1];
    expect(a).not.toBe(b);
  });

  it("rejects an unknown panel and a weak nonce", () => {
    expect(() => webviewHtml({ ...base, panel: "evil" as never })).toThrow(/unknown panel/);
    expect(() => webviewHtml({ ...base, nonce: "abc" })).toThrow(/nonce/);
  });
});
