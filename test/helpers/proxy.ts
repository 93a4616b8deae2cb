/**
 * Starts a real mc-proxy (in this process) from a TOML body written into a
 * temp dir, with the database beside it. `[database]` is added for you, and
 * `[proxy] workers = 1` unless the body sets workers: in-process tests read
 * this thread's log sink and metrics, which a worker thread's connections
 * would bypass. (Subprocess tests keep the default: every CPU.)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer } from "../../src/server/run.ts";

export interface TestProxy {
  srv: RunningServer;
  dir: string;
  /** Bound port of the listener with this addr (or the first listener). */
  port(addr?: string): number;
  stop(): Promise<void>;
}

export async function startTestProxy(toml: string, opts: { dir?: string } = {}): Promise<TestProxy> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "mcp-test-"));
  const path = join(dir, "mc-proxy.toml");
  writeFileSync(path, `[database]\npath = "mc-proxy.db"\n\n${oneWorker(toml)}`);
  const srv = await startServer(path);
  const ports = srv.proxy.ports();
  return {
    srv,
    dir,
    port(addr?: string) {
      const p = addr ? ports.get(addr) : ports.values().next().value;
      if (p === undefined) throw new Error(`no listener ${addr}`);
      return p;
    },
    async stop() {
      await srv.shutdown();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `toml` with `[proxy] workers = 1` added when it does not choose a number of workers. */
export function oneWorker(toml: string): string {
  if (/^\s*workers\s*=/m.test(toml)) return toml;
  const table = /^[ \t]*\[proxy\][ \t]*$/m;
  if (table.test(toml)) return toml.replace(table, "[proxy]\nworkers = 1");
  return `${toml}\n\n[proxy]\nworkers = 1\n`;
}

/** A port that was free a moment ago (bind 0, close). For configs that need fixed ports. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Resolves when `fn` returns truthy, polling every 20 ms; rejects after `ms`. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms = 5000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}
