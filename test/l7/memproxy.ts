/**
 * The REAL mc-proxy as a subprocess (`bun src/main.ts server -c <cfg>`), for
 * tests that must observe the proxy's own process (peak RSS, signals). The
 * config goes into a fresh temp dir with the database beside it; listeners
 * should use port 0 — the bound ports are read from the `server.start` log
 * line the server writes on stderr.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface ProxyProcess {
  pid: number;
  /** Bound port per listener addr, as logged by the server. */
  ports: Map<string, number>;
  /** The first listener's port. */
  port: number;
  dir: string;
  /** Every stderr line so far (JSON log lines). */
  logs: string[];
  /** SIGTERM, wait (bounded) for exit, SIGKILL if needed, remove the temp dir. */
  stop(): Promise<void>;
}

const MAIN = path.join(import.meta.dir, "../../src/main.ts");

/** Starts `mc-proxy server` with `[database]` + `toml`; resolves once it logged server.start (≤ 30 s). */
export async function spawnRealProxy(toml: string): Promise<ProxyProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mcp-proc-"));
  const cfg = path.join(dir, "mc-proxy.toml");
  fs.writeFileSync(cfg, `[database]\npath = "mc-proxy.db"\n\n${toml}`);
  const p = Bun.spawn([process.execPath, MAIN, "server", "-c", cfg], { stdout: "ignore", stderr: "pipe", cwd: dir });
  const logs: string[] = [];
  let started: Map<string, number> | null = null;
  // Keep draining stderr for the whole life of the process (a full pipe would block it).
  void (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of p.stderr) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        try {
          const o = JSON.parse(line);
          if (o.event === "server.start") started = new Map(o.listeners.map((l: { addr: string; port: number }) => [l.addr, l.port]));
        } catch {
          // not a log line
        }
      }
    }
  })();
  const stop = async () => {
    if (p.exitCode === null) {
      p.kill("SIGTERM");
      await Promise.race([p.exited, Bun.sleep(10000)]);
      if (p.exitCode === null) p.kill("SIGKILL");
      await Promise.race([p.exited, Bun.sleep(5000)]);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 30000;
  while (!started && p.exitCode === null && Date.now() < until) await Bun.sleep(25);
  if (!started) {
    await stop();
    throw new Error(`mc-proxy did not start:\n${logs.join("\n")}`);
  }
  const ports: Map<string, number> = started;
  return { pid: p.pid, ports, port: ports.values().next().value!, dir, logs, stop };
}
