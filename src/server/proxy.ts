/**
 * Binds one native listening socket per configured listener and runs every
 * accepted connection through `Conn` (src/server/connection.ts). Owns the set
 * of live connections, the coarse clock and sweeper that enforce the hello,
 * connect and idle deadlines, and graceful shutdown: stop accepting, drain up
 * to a deadline, then cut what is left.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { ProxyConfig } from "../config/types.ts";
import { parseListenAddr } from "../config/validate.ts";
import type { Firewall } from "../firewall/firewall.ts";
import { closeSharedBackends } from "../l7/proxy.ts";
import { log } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import type { ListenerState, State } from "../state/state.ts";
import { Conn, type ListenerContext } from "./connection.ts";

export interface ProxyServerDeps {
  state: State;
  firewall: Firewall;
  proxy: ProxyConfig;
}

interface Bound {
  ls: ListenerState;
  listener: TCPSocketListener<Conn>;
}

/** Client socket handlers, shared by all listeners. `socket.data` is the Conn. */
function clientHandlers(lc: ListenerContext) {
  return {
    open(s: Socket<Conn>) {
      const c = new Conn(lc, s);
      s.data = c;
      lc.track(c);
      c.open();
    },
    data(s: Socket<Conn>, chunk: Uint8Array) {
      s.data.onData(chunk);
    },
    end(s: Socket<Conn>) {
      s.data.onClientEnd();
    },
    drain(s: Socket<Conn>) {
      s.data.onClientDrain();
    },
    close(s: Socket<Conn>, err?: Error) {
      s.data?.onClientClose(err);
    },
    error(s: Socket<Conn>, err: Error) {
      s.data?.onClientClose(err);
    },
  };
}

export class ProxyServer {
  /** Connections accepted since start (admin GetStatus). */
  totalConnections = 0;
  readonly conns = new Set<Conn>();
  private bound: Bound[] = [];
  private clock = Date.now();
  private sweeper: ReturnType<typeof setInterval>;
  private drainWaiter: (() => void) | null = null;

  private constructor(private readonly deps: ProxyServerDeps) {
    // One coarse clock + sweep for every deadline: no timer per connection.
    const every = Math.max(20, Math.min(250, Math.floor(Math.min(deps.proxy.helloTimeoutMs, deps.proxy.connectTimeoutMs) / 10)));
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
    metrics.setActiveSource(() => deps.state.listeners().map((l) => ({ listener: l.record.addr, active: l.active })));
    return srv;
  }

  private bind(ls: ListenerState): void {
    const { host, port } = parseListenAddr(ls.record.addr);
    const lc: ListenerContext = {
      ls,
      metrics: metrics.listener(ls.record.addr),
      state: this.deps.state,
      firewall: this.deps.firewall,
      proxy: this.deps.proxy,
      now: () => this.clock,
      release: (c) => {
        this.conns.delete(c);
        if (this.drainWaiter && this.conns.size === 0) this.drainWaiter();
      },
      track: (c) => {
        this.totalConnections++;
        this.conns.add(c);
      },
    };
    let listener: TCPSocketListener<Conn>;
    try {
      listener = Bun.listen<Conn>({
        // ":port" = every IPv4 and IPv6 address: "::" is dual-stack on Linux.
        hostname: host === "" ? "::" : host,
        port,
        allowHalfOpen: true,
        exclusive: true,
        socket: clientHandlers(lc) as never, // handler `data` typing is per-listener; shapes match Bun's SocketHandler
      });
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
    for (const c of this.conns) c.tick(now);
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
    closeSharedBackends();
    if (cut > 0) log.warn("shutdown.cut", { connections: cut });
    return cut;
  }
}
