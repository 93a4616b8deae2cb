/**
 * The `[metrics]` endpoint: `GET /metrics` returns the Prometheus text
 * exposition; every other path is 404, other methods on /metrics are 405.
 * Binds exactly the configured host (IPv6 as `[::1]:9091`), never a wildcard
 * the operator did not ask for.
 */
import { InvalidArgumentError } from "../errors.ts";
import { log } from "./log.ts";
import { metrics as defaultMetrics } from "./metrics.ts";
import { CONTENT_TYPE } from "./prom.ts";

export interface MetricsServer {
  /** The bound port (useful when the config said port 0). */
  port: number;
  /** Stops listening and closes open scrape connections. */
  close(): Promise<void>;
}

/** Splits `host:port` / `[v6]:port` into parts; port must be 0–65535. */
export function splitHostPort(addr: string): { host: string; port: number } | InvalidArgumentError {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(addr) ?? /^([^:[\]]+):(\d{1,5})$/.exec(addr);
  if (!m) return new InvalidArgumentError("metrics.addr", `expected host:port or [v6]:port, got ${JSON.stringify(addr)}`);
  const port = Number(m[2]);
  if (port > 65535) return new InvalidArgumentError("metrics.addr", `port out of range in ${JSON.stringify(addr)}`);
  return { host: m[1], port };
}

/**
 * Starts the metrics HTTP server on `addr`, serving `render()` (default: the
 * process-wide `metrics`). Rejects with InvalidArgumentError for a bad address
 * and with the bind error (e.g. EADDRINUSE) if the port is taken.
 */
export async function startMetricsServer(addr: string, render: () => string = defaultMetrics.render): Promise<MetricsServer> {
  const hp = splitHostPort(addr);
  if (hp instanceof InvalidArgumentError) throw hp;
  const server = Bun.serve({
    hostname: hp.host,
    port: hp.port,
    reusePort: false, // why: a second instance on the same port must fail, not silently share scrapes
    development: false,
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/metrics") return new Response("not found\n", { status: 404 });
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      return new Response(render(), { headers: { "content-type": CONTENT_TYPE } });
    },
    error(err) {
      log.error("metrics.scrape_error", { err });
      return new Response("internal error\n", { status: 500 });
    },
  });
  const port = server.port ?? hp.port;
  log.info("metrics.listen", { addr: hp.host.includes(":") ? `[${hp.host}]:${port}` : `${hp.host}:${port}` });
  return {
    port,
    close: async () => {
      await server.stop(true);
    },
  };
}
