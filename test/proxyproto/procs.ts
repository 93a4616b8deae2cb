/**
 * Real mc-proxy server processes for the multi-hop tests:
 * `bun src/main.ts server -c <cfg>` in its own temp dir and database, with
 * the bound ports read from the `server.start` JSON log line on stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");

export interface McProxyProc {
  /** Bound port of each listener, by configured addr. */
  ports: Map<string, number>;
  /** First listener's port. */
  port: number;
  /** Parsed JSON log lines seen so far. */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** Starts mc-proxy with `toml` (a `[database]` section is added); resolves after `server.start`. */
export async function startMcProxy(toml: string, timeoutMs = 30_000): Promise<McProxyProc> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-pp-proc-"));
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(cfg, `[database]\npath = "mc-proxy.db"\n\n${toml}`);
  const p = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), "server", "-c", cfg], {
    cwd: ROOT,
    stdout: "ignore",
    stderr: "pipe",
  });
  const logs: Record<string, unknown>[] = [];
  let raw = "";
  const waiter: { onStart?: (l: Record<string, unknown>) => void } = {};
  // Read stderr for the life of the process: every line is one JSON object.
  (async () => {
    const dec = new TextDecoder();
    let pending = "";
    for await (const chunk of p.stderr as ReadableStream<Uint8Array>) {
      const text = dec.decode(chunk, { stream: true });
      raw += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.event === "server.start") waiter.onStart?.(rec);
        } catch {
          // not a log line (e.g. a crash trace): kept in `raw` for the error message
        }
      }
    }
  })();
  const stop = async () => {
    if (p.exitCode === null) {
      p.kill("SIGTERM");
      const exited = await Promise.race([p.exited.then(() => true), Bun.sleep(8000).then(() => false)]);
      if (!exited) {
        p.kill("SIGKILL");
        await p.exited;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const start = await Promise.race([
    new Promise<Record<string, unknown>>((res) => (waiter.onStart = res)),
    p.exited.then(() => null),
    Bun.sleep(timeoutMs).then(() => null),
  ]);
  if (!start) {
    await stop();
    throw new Error(`mc-proxy did not start: ${raw}`);
  }
  const ports = new Map<string, number>();
  for (const l of start.listeners as Array<{ addr: string; port: number }>) ports.set(l.addr, l.port);
  return { ports, port: ports.values().next().value!, logs, stop };
}
