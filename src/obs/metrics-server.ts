/**
 * The `[metrics]` endpoint: `GET /metrics` returns the Prometheus text
 * exposition; every other path is 404, other methods on /metrics are 405.
 * Binds exactly the configured host (IPv6 as `[::1]:9091`), never a wildcard
 * the operator did not ask for.
 */
import { InvalidArgumentError } from "../errors.ts";
import { formatHostPort, parseHostPort } from "../net/addr.ts";
import { log } from "./log.ts";
import { metrics as defaultMetrics } from "./metrics.ts";
import { CONTENT_TYPE } from "./prom.ts";

export interface MetricsServer {
  /** The bound port (useful when the config said port 0). */
  port: number;
  /** Stops listening and closes open scrape connections. */
  close(): Promise<void>;
}

/** `[metrics] addr` as host and port: a host is required (never an implicit wildcard), port 0–65535. */
export function parseMetricsAddr(addr: string): { host: string; port: number } | InvalidArgumentError {
  const hp = parseHostPort(addr);
  if (!hp || hp.host === "") return new InvalidArgumentError("metrics.addr", `expected host:port or [v6]:port, got ${JSON.stringify(addr)}`);
  return hp;
}

/**
 * Starts the metrics HTTP server on `addr`, serving `render()` (default: the
 * process-wide `metrics`; with worker threads, a function that first gathers
 * their counts). Rejects with InvalidArgumentError for a bad address, and
 * with an error naming `metrics.addr` (and keeping the bind error's code,
 * e.g. EADDRINUSE) if the port is taken.
 */
export async function startMetricsServer(addr: string, render: () => string | Promise<string> = defaultMetrics.render): Promise<MetricsServer> {
  const hp = parseMetricsAddr(addr);
  if (hp instanceof InvalidArgumentError) throw hp;
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = serve(hp.host, hp.port, render);
  } catch (e) {
    // Bun's own text ("Failed to start server. Is port 9100 in use?") names no setting.
    const err = new Error(`metrics.addr ${addr}: cannot bind: ${(e as Error).message}`) as Error & { code?: string };
    err.code = (e as { code?: string }).code;
    throw err;
  }
  const port = server.port ?? hp.port;
  log.info("metrics.listen", { addr: formatHostPort(hp.host, port) });
  return {
    port,
    close: async () => {
      await server.stop(true);
    },
  };
}

function serve(host: string, port: number, render: () => string | Promise<string>): ReturnType<typeof Bun.serve> {
  return Bun.serve({
    hostname: host,
    port,
    reusePort: false, // why: a second instance on the same port must fail, not silently share scrapes
    development: false,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/metrics") return new Response("not found\n", { status: 404 });
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      return new Response(await render(), { headers: { "content-type": CONTENT_TYPE } });
    },
    error(err) {
      log.error("metrics.scrape_error", { err });
      return new Response("internal error\n", { status: 500 });
    },
  });
}
