/**
 * Helpers for L7 tests through the REAL pipeline: a real mc-proxy (in this
 * process, via startTestProxy) whose config has `mode = "l7"` routes, with
 * the certificate of the L7 test PKI (test/l7/harness.ts testPki: a.test,
 * backend.test, localhost, 127.0.0.1). Clients reach it with the `curl`
 * helper of test/l7/harness.ts (it resolves a.test to 127.0.0.1).
 */
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { setLogSink } from "../../src/obs/log.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { HOST, testPki } from "../l7/harness.ts";

export { HOST };

export interface L7RouteOpts {
  hostname?: string;
  mode?: "l4" | "l7";
  backendProtocol?: "auto" | "h2" | "http1";
  backendTls?: boolean;
  /** Cert/key paths; default: the L7 test PKI's a.test full chain + key. */
  cert?: string;
  key?: string;
}

/** One `[[listeners.routes]]` TOML block for `backend` (l7 by default). */
export function routeToml(backend: string, o: L7RouteOpts = {}): string {
  const { leaf } = testPki();
  const mode = o.mode ?? "l7";
  const lines = [
    "  [[listeners.routes]]",
    `  hostname = "${o.hostname ?? HOST}"`,
    `  backend = "${backend}"`,
    `  mode = "${mode}"`,
  ];
  if (mode === "l7") {
    lines.push(`  tls_cert = "${o.cert ?? leaf.fullchainPath}"`, `  tls_key = "${o.key ?? leaf.keyPath}"`);
    lines.push(`  backend_protocol = "${o.backendProtocol ?? "auto"}"`);
    if (o.backendTls) lines.push("  backend_tls = true");
  }
  return lines.join("\n") + "\n";
}

/**
 * A full config body: one listener on 127.0.0.1:0 holding `routes` (TOML
 * blocks from routeToml) and a `[proxy]` section with `proxy` lines
 * (e.g. `backend_timeout = "800ms"`).
 */
export function listenerToml(routes: string[], proxy: string[] = []): string {
  return `[[listeners]]\naddr = "127.0.0.1:0"\n${routes.join("")}\n[proxy]\n${proxy.join("\n")}\n`;
}

/** Starts a real in-process mc-proxy with one L7 listener. */
export async function startL7Proxy(routes: string[], proxy: string[] = []): Promise<TestProxy> {
  return await startTestProxy(listenerToml(routes, proxy));
}

/** Copies the test PKI's a.test full chain and key into `dir` (files a test may overwrite). */
export function copyTestCert(dir: string): { cert: string; key: string } {
  const { leaf } = testPki();
  const cert = join(dir, "a.test.fullchain.pem");
  const key = join(dir, "a.test.key");
  copyFileSync(leaf.fullchainPath, cert);
  copyFileSync(leaf.keyPath, key);
  return { cert, key };
}

/**
 * Captures parsed log lines until the returned `restore()` is called. Note
 * test/setup.ts installs a dropping sink; this replaces it for the duration.
 */
export function captureLogs(): { lines: Record<string, unknown>[]; of(event: string): Record<string, unknown>[]; restore(): void } {
  const lines: Record<string, unknown>[] = [];
  const prev = setLogSink((l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      // not JSON: ignore (our logger only writes JSON)
    }
  });
  return {
    lines,
    of: (event) => lines.filter((o) => o.event === event),
    restore: () => void setLogSink(prev),
  };
}
