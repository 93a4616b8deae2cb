/**
 * Binds one native listening socket per configured listener and runs every
 * accepted connection through its stages (src/server/conn.ts). Owns the set
 * of live connections, the one coarse clock and sweeper that enforce every
 * deadline (hello, connect, idle, L7 head), the L7 runtime, and graceful
 * shutdown: stop accepting, drain up to a deadline, then cut what is left.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { ProxyConfig } from "../config/types.ts";
import type { Firewall } from "../firewall/firewall.ts";
import { L7Runtime } from "../l7/runtime.ts";
import { SWEEP_MAX_MS, SWEEP_MIN_MS } from "../limits.ts";
import { parseHostPort } from "../net/addr.ts";
import { fdBudget } from "../net/fds.ts";
import { socketError } from "../net/socket-error.ts";
import { log } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import type { ListenerState, RouteTable } from "../state/state.ts";
import type { ConnCounters } from "./counters.ts";
import { admit } from "./admission.ts";
import { Conn, type ListenerContext } from "./conn.ts";

export interface ProxyServerDeps {
  state: RouteTable;
  firewall: Firewall;
  proxy: ProxyConfig;
  counters: ConnCounters;
  /**
   * Several data-path threads (`workers` > 1): every thread binds the same
   * ports with SO_REUSEPORT and the kernel spreads connections. `ports` pins
   * each listener's port (the first thread's, when the config says 0).
   */
  shared?: { ports?: ReadonlyMap<string, number> };
}

interface Bound {
  ls: ListenerState;
  listener: TCPSocketListener<Conn>;
}

/**
 * Client socket handlers of one listener. `socket.data` is the Conn; every
 * event goes to the stage that currently owns it.
 */
function clientHandlers(lc: ListenerContext) {
  return {
    open(s: Socket<Conn>) {
      const c = new Conn(lc, s);
      s.data = c;
      lc.track(c);
      admit(c);
    },
    data(s: Socket<Conn>, chunk: Uint8Array) {
      s.data.stage.onData(chunk);
    },
    end(s: Socket<Conn>) {
      s.data.stage.onEnd();
    },
    drain(s: Socket<Conn>) {
      s.data.stage.onDrain();
    },
    close(s: Socket<Conn>, err?: Error) {
      s.data?.stage.onClose(err);
    },
    error(s: Socket<Conn>, err: Error) {
      socketError("client", s, err, (e) => s.data?.stage.onClose(e));
    },
  };
}

/** The address Bun.listen binds for a listener host: ":port" = every IPv4 and IPv6 address ("::" is dual-stack on Linux). */
export function listenHostname(host: string): string {
  return host === "" ? "::" : host;
}

export class ProxyServer {
  readonly conns = new Set<Conn>();
  private bound: Bound[] = [];
  private clock = Date.now();
  private sweeper: ReturnType<typeof setInterval>;
  private drainWaiter: (() => void) | null = null;
  private readonly l7: L7Runtime;

  private constructor(private readonly deps: ProxyServerDeps) {
    this.l7 = new L7Runtime(deps.proxy);
    // One coarse clock + sweep for every deadline: no timer per connection.
    const shortest = Math.min(deps.proxy.helloTimeoutMs, deps.proxy.connectTimeoutMs);
    const every = Math.max(SWEEP_MIN_MS, Math.min(SWEEP_MAX_MS, Math.floor(shortest / 10)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref?.();
  }

  /** Binds every listener in the state; on a bind failure closes what was bound and throws naming the address. */
  static start(deps: ProxyServerDeps): ProxyServer {
    const srv = new ProxyServer(deps);
    try {
      for (const ls of deps.state.listeners()) srv.bind(ls);
    } catch (e) {
      srv.stopAccepting();
      clearInterval(srv.sweeper);
      throw e;
    }
    metrics.setActiveSource(() => deps.state.listeners().map((l) => ({ listener: l.record.addr, active: deps.counters.activeOn(l.slot) })));
    return srv;
  }

  private bind(ls: ListenerState): void {
    const hp = parseHostPort(ls.record.addr);
    if (!hp) throw new Error(`listener ${ls.record.addr}: not a listen address`); // validated when configured
    const { host } = hp;
    const shared = this.deps.shared;
    const port = shared?.ports?.get(ls.record.addr) ?? hp.port;
    const lc: ListenerContext = {
      ls,
      metrics: metrics.listener(ls.record.addr),
      state: this.deps.state,
      firewall: this.deps.firewall,
      counters: this.deps.counters,
      proxy: this.deps.proxy,
      l7: this.l7,
      now: () => this.clock,
      release: (c) => {
        fdBudget.closed();
        this.conns.delete(c);
        if (this.drainWaiter && this.conns.size === 0) this.drainWaiter();
      },
      track: (c) => {
        fdBudget.opened();
        this.deps.counters.accepted();
        this.conns.add(c);
      },
    };
    let listener: TCPSocketListener<Conn>;
    try {
      const opts = {
        hostname: listenHostname(host),
        port,
        allowHalfOpen: true,
        // One thread: exclusive, so a second instance on the port fails to start. Several: each
        // thread's socket joins the port's SO_REUSEPORT group (run.ts first checks that the port is free).
        exclusive: !shared,
        socket: clientHandlers(lc) as never, // handler `data` typing is per-listener; shapes match Bun's SocketHandler
      };
      // reusePort: honoured by Bun.listen at run time (probed on 1.4.4), missing from bun-types' listen options.
      listener = Bun.listen<Conn>(Object.assign(opts, { reusePort: !!shared }));
    } catch (e) {
      throw new Error(`listener ${ls.record.addr}: cannot bind: ${(e as Error).message}`);
    }
    this.bound.push({ ls, listener });
  }

  /** The port each listener actually bound (useful with ":0" in tests). */
  ports(): Map<string, number> {
    return new Map(this.bound.map((b) => [b.ls.record.addr, b.listener.port]));
  }

  private sweep(): void {
    const now = (this.clock = Date.now());
    for (const c of this.conns) c.stage.tick(now);
    fdBudget.refresh(now);
    const w = fdBudget.takeWarning(now);
    if (w) {
      log.warn("server.fd_exhausted", {
        ...w,
        connections: this.conns.size,
        detail: "near the file descriptor limit: new connections are closed at accept (reason fd_limit) until descriptors are free; a backend dial refused meanwhile is probably EMFILE (Bun reports it as ECONNREFUSED)",
      });
    }
  }

  /** Closes the listening sockets: new connections are refused by the kernel. */
  stopAccepting(): void {
    for (const b of this.bound) b.listener.stop(false);
    this.bound = [];
  }

  /**
   * Tells every open connection to wind down (L7: GOAWAY / Connection: close),
   * waits for them to finish, at most `timeoutMs`, then cuts the rest.
   * Returns how many were cut.
   */
  async drain(timeoutMs: number): Promise<number> {
    // A copy: beginDrain may close (and so untrack) a connection synchronously.
    for (const c of [...this.conns]) c.beginDrain();
    if (this.conns.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.drainWaiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const cut = this.conns.size;
    for (const c of [...this.conns]) c.cut();
    clearInterval(this.sweeper);
    this.l7.close();
    if (cut > 0) log.warn("shutdown.cut", { connections: cut });
    return cut;
  }
}
