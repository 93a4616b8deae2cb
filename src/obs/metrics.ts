/**
 * The metrics mc-proxy exports (SPEC §10), as typed calls for the data path.
 * Every label value is drawn from a bounded set (listener addresses and route
 * hostnames come from config/admin; reasons and outcomes are enums below) —
 * never client addresses. Per-connection code should resolve
 * `metrics.listener(addr)` once per listener and keep the returned object:
 * its methods only add to numbers.
 *
 * `metrics` is the process-wide instance rendered by `startMetricsServer`;
 * tests build their own with `createMetrics(new Registry(...))`.
 */
import { countOpenFds, readFdLimit } from "../net/fds.ts";
import { VERSION } from "../version.ts";
import { type CounterChild, type HistogramChild, Registry } from "./prom.ts";

/** Why admission/firewall refused a connection (SPEC §4, §6); `fd_limit`: the process is near its descriptor limit. */
export const BLOCK_REASONS = ["ip", "cidr", "country", "rate_limit", "max_connections", "proxy_header", "untrusted_proxy", "fd_limit"] as const;
export type BlockReason = (typeof BLOCK_REASONS)[number];

/** How a connection ended; anything else the caller passes is counted as "other". */
export const CLOSE_OUTCOMES = [
  "ok", // both sides finished normally
  "blocked", // refused by admission/firewall
  "hello_failed", // ClientHello/PROXY header missing, malformed, too large or late
  "no_route", // SNI matched no route
  "backend_connect_failed",
  "tls_failed", // L7 handshake failed
  "idle_timeout",
  "header_timeout", // L7 HTTP/1.1: request head not complete within hello_timeout (408)
  "error", // socket error on either side mid-stream
  "shutdown", // cut at shutdown_timeout
  "other",
] as const;
export type CloseOutcome = (typeof CLOSE_OUTCOMES)[number];

/** ClientHello read/parse failures (wire parser reasons plus `unknown_sni` from routing). */
export const HELLO_FAILURES = ["not_tls", "truncated", "too_large", "no_sni", "malformed", "timeout", "unknown_sni", "other"] as const;
export type HelloFailure = (typeof HELLO_FAILURES)[number];

/** L7 TLS handshake failure classes; see `classifyTlsError`. */
export const TLS_FAILURES = ["version", "no_cipher", "alert", "timeout", "certificate", "other"] as const;
export type TlsFailure = (typeof TLS_FAILURES)[number];

export type Mode = "l4" | "l7";
export type ReloadKind = "geoip" | "certificates";

/** Buckets for L7 request duration: 5 ms … 60 s (backend_timeout defaults to 60 s). */
export const L7_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const GRPC_CODES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/** Pre-resolved counters for one listener; hold it for the listener's lifetime. */
export interface ListenerMetrics {
  accepted(): void;
  blocked(reason: BlockReason): void;
  closed(outcome: CloseOutcome): void;
  /** Adds relayed bytes (call at close, or periodically with deltas). */
  bytes(mode: Mode, clientToBackend: number, backendToClient: number): void;
  backendConnectFailure(mode: Mode): void;
}

/** Pre-resolved L7 counters for one route (hostname). */
export interface RouteMetrics {
  /** One finished request: HTTP status (or 0 if none was sent) and its duration in seconds. */
  request(status: number, seconds: number): void;
}

export interface ActiveConnections {
  listener: string;
  active: number;
}

/** Resolves every value of `keys` to a child up front, so lookups on the hot path are property reads. */
function childrenFor<K extends string>(keys: readonly K[], make: (k: K) => CounterChild): Record<K, CounterChild> {
  const out = {} as Record<K, CounterChild>;
  for (const k of keys) out[k] = make(k);
  return out;
}

const CODE_CLASSES = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** Index into CODE_CLASSES: 1–5 for 100–599, 0 for anything else (e.g. 0: no response). */
function codeClassIndex(status: number): number {
  return status >= 100 && status < 600 ? (status / 100) | 0 : 0;
}

/** `200` → "2xx"; anything outside 100–599 (e.g. 0: no response) → "other". */
export function codeClass(status: number): string {
  return CODE_CLASSES[codeClassIndex(status)]!;
}

/**
 * Maps a TLS handshake error (BoringSSL code/text as surfaced by node:tls under
 * Bun, e.g. `ERR_SSL_UNSUPPORTED_PROTOCOL`, `ERR_TLS_HANDSHAKE_TIMEOUT`) to one
 * of a few classes, so the label set stays bounded. Order matters:
 * "tlsv1 alert protocol version" is a version problem, "alert unknown ca" a
 * certificate problem, before the generic "alert".
 */
export function classifyTlsError(err: unknown): TlsFailure {
  const e = err as { code?: unknown; message?: unknown } | null;
  const text = `${typeof e?.code === "string" ? e.code : ""} ${typeof e?.message === "string" ? e.message : String(err)}`.toLowerCase();
  if (/protocol.version|unsupported.protocol|wrong.version|version.too.low|version.too.high|no.protocols.available|inappropriate.fallback/.test(text)) return "version";
  // BoringSSL (Bun) reports a key-exchange mismatch as NO_SHARED_GROUP or WRONG_CURVE: same class.
  if (/no.shared.cipher|no.cipher|no.suitable.signature|no.shared.group|wrong.curve|no.common.signature/.test(text)) return "no_cipher";
  if (/certificate|unknown.ca|cert_|bad.cert|self.signed|unable.to.verify/.test(text)) return "certificate";
  if (/timed?.?out|etimedout/.test(text)) return "timeout";
  if (/alert/.test(text)) return "alert";
  return "other";
}

/** Builds the mc-proxy metric set on `registry`. */
export function createMetrics(registry: Registry) {
  const accepted = registry.counter({ name: "mcproxy_connections_accepted_total", help: "TCP connections accepted, per listener.", labelNames: ["listener"] });
  const blocked = registry.counter({ name: "mcproxy_connections_blocked_total", help: "Connections refused by admission or firewall, per listener and reason.", labelNames: ["listener", "reason"] });
  const closed = registry.counter({ name: "mcproxy_connections_closed_total", help: "Connections closed, per listener and outcome.", labelNames: ["listener", "outcome"] });
  const bytes = registry.counter({ name: "mcproxy_bytes_total", help: "Bytes relayed, per listener, mode and direction.", labelNames: ["listener", "mode", "direction"] });
  const backendFail = registry.counter({ name: "mcproxy_backend_connect_failures_total", help: "Failed connection attempts to backends, per listener and mode.", labelNames: ["listener", "mode"] });
  const hello = registry.counter({ name: "mcproxy_clienthello_failures_total", help: "ClientHello read or routing failures, per reason.", labelNames: ["reason"] });
  const tls = registry.counter({ name: "mcproxy_tls_handshake_failures_total", help: "L7 TLS handshake failures, per reason class.", labelNames: ["reason"] });
  const l7Requests = registry.counter({ name: "mcproxy_l7_requests_total", help: "L7 requests, per route and status class.", labelNames: ["route", "code_class"] });
  const l7Duration = registry.histogram({ name: "mcproxy_l7_request_duration_seconds", help: "L7 request duration from request headers to response end, per route.", labelNames: ["route"], buckets: L7_DURATION_BUCKETS });
  const adminRpcs = registry.counter({ name: "mcproxy_admin_rpcs_total", help: "Admin gRPC calls, per method and status code.", labelNames: ["method", "code"] });
  const reloads = registry.counter({ name: "mcproxy_reloads_total", help: "Reloads of GeoIP data or certificates, per kind and result.", labelNames: ["kind", "result"] });
  // Seeded at 0 (a label-free child), so rate() and alerts work before the first death.
  const workerDeaths = registry.counter({ name: "mcproxy_worker_deaths_total", help: "Data-path worker threads that died (each is replaced; a crash loop ends the process)." }).labels();
  let workerCount = 1;
  registry.gaugeFn({ name: "mcproxy_workers", help: "Data-path threads serving ([proxy] workers, the main thread included)." }, () => [{ labels: [], value: workerCount }]);

  let activeSource: () => readonly ActiveConnections[] = () => [];
  registry.gaugeFn({ name: "mcproxy_active_connections", help: "Connections currently open, per listener.", labelNames: ["listener"] }, () =>
    activeSource().map((a) => ({ labels: [a.listener], value: a.active })),
  );
  registry.gaugeFn({ name: "mcproxy_build_info", help: "Always 1; labelled with the mc-proxy version.", labelNames: ["version"] }, () => [{ labels: [VERSION], value: 1 }]);
  const startSeconds = Math.floor((Date.now() - performance.now()) / 1000);
  registry.gaugeFn({ name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds." }, () => [{ labels: [], value: startSeconds }]);
  registry.gaugeFn({ name: "process_resident_memory_bytes", help: "Resident memory size in bytes." }, () => [{ labels: [], value: process.memoryUsage().rss }]);
  // Near process_max_fds − the reserve, new connections are refused (`fd_limit`, src/net/fds.ts).
  registry.gaugeFn({ name: "process_open_fds", help: "Number of open file descriptors." }, () => {
    const n = countOpenFds();
    return n < 0 ? [] : [{ labels: [], value: n }];
  });
  registry.gaugeFn({ name: "process_max_fds", help: "Maximum number of open file descriptors." }, () => {
    const l = readFdLimit();
    return l === null || !Number.isFinite(l.soft) ? [] : [{ labels: [], value: l.soft }];
  });

  // Seed the label-free enums at zero so rate() works from the first failure.
  const helloBy = childrenFor(HELLO_FAILURES, (r) => hello.labels(r));
  const tlsBy = childrenFor(TLS_FAILURES, (r) => tls.labels(r));

  const listeners = new Map<string, ListenerMetrics>();
  const routes = new Map<string, RouteMetrics>();

  // The lookups run per connection or per request; the makers hold the closures (a function whose
  // locals an inner function captures gets a scope object on every call, fast path included).
  function listener(addr: string): ListenerMetrics {
    return listeners.get(addr) ?? makeListener(addr);
  }

  function makeListener(addr: string): ListenerMetrics {
    const acc = accepted.labels(addr);
    const blockedBy = childrenFor(BLOCK_REASONS, (r) => blocked.labels(addr, r));
    const closedBy = childrenFor(CLOSE_OUTCOMES, (o) => closed.labels(addr, o));
    const bytesBy = {
      l4: { c2b: bytes.labels(addr, "l4", "client_to_backend"), b2c: bytes.labels(addr, "l4", "backend_to_client") },
      l7: { c2b: bytes.labels(addr, "l7", "client_to_backend"), b2c: bytes.labels(addr, "l7", "backend_to_client") },
    };
    const failBy = { l4: backendFail.labels(addr, "l4"), l7: backendFail.labels(addr, "l7") };
    const m: ListenerMetrics = {
      accepted: () => acc.inc(),
      blocked: (reason) => (blockedBy[reason] ?? blocked.labels(addr, "other")).inc(),
      closed: (outcome) => (closedBy[outcome] ?? closedBy.other).inc(),
      bytes: (mode, c2b, b2c) => {
        const b = bytesBy[mode] ?? bytesBy.l4;
        b.c2b.inc(c2b);
        b.b2c.inc(b2c);
      },
      backendConnectFailure: (mode) => (failBy[mode] ?? failBy.l4).inc(),
    };
    listeners.set(addr, m);
    return m;
  }

  function route(hostname: string): RouteMetrics {
    return routes.get(hostname) ?? makeRoute(hostname);
  }

  function makeRoute(hostname: string): RouteMetrics {
    // Per request: no string built, no map lookup (children made on first use, by class index).
    const byClass: (CounterChild | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
    const hist: HistogramChild = l7Duration.labels(hostname);
    const m: RouteMetrics = {
      request(status, seconds) {
        const i = codeClassIndex(status);
        let c = byClass[i];
        if (c === undefined) byClass[i] = c = l7Requests.labels(hostname, CODE_CLASSES[i]!);
        c.inc();
        hist.observe(seconds);
      },
    };
    routes.set(hostname, m);
    return m;
  }

  return {
    registry,
    listener,
    route,
    connAccepted: (l: string) => listener(l).accepted(),
    connBlocked: (l: string, reason: BlockReason) => listener(l).blocked(reason),
    connClosed: (l: string, outcome: CloseOutcome) => listener(l).closed(outcome),
    bytes: (l: string, mode: Mode, c2b: number, b2c: number) => listener(l).bytes(mode, c2b, b2c),
    backendConnectFailure: (l: string, mode: Mode) => listener(l).backendConnectFailure(mode),
    helloFailure: (reason: HelloFailure) => (helloBy[reason] ?? helloBy.other).inc(),
    /** Counts a TLS failure; pass the error itself or an already classified reason. */
    tlsFailure: (reason: TlsFailure | Error) => (tlsBy[typeof reason === "string" ? reason : classifyTlsError(reason)] ?? tlsBy.other).inc(),
    l7Request: (routeName: string, status: number, seconds: number) => route(routeName).request(status, seconds),
    /** `code` is a gRPC status number or name (`0` / "OK"). */
    adminRpc: (method: string, code: number | string) => adminRpcs.labels(method, typeof code === "number" ? (GRPC_CODES[code] ?? String(code)) : code).inc(),
    reload: (kind: ReloadKind, ok: boolean) => reloads.labels(kind, ok ? "ok" : "error").inc(),
    workerDied: () => workerDeaths.inc(),
    setWorkers: (n: number) => {
      workerCount = n;
    },
    /** Where `mcproxy_active_connections` reads from at scrape time (the listener state). */
    setActiveSource: (fn: () => readonly ActiveConnections[]) => {
      activeSource = fn;
    },
    /** The exposition text for /metrics. */
    render: () => registry.render(),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The process-wide metric set. */
export const metrics: Metrics = createMetrics(new Registry({ dropCounterName: "mcproxy_metric_series_dropped_total" }));
