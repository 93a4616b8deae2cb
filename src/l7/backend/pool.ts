/**
 * The set of backend clients one scope may share. The process-wide pool
 * serves every route without send_proxy_protocol. A route with
 * send_proxy_protocol gets a pool per CLIENT connection, because each backend
 * connection starts with that client's PROXY header and must never carry
 * another client's requests; it is closed with the client connection.
 */
import { H1Client } from "./h1.ts";
import { H2Client } from "./h2.ts";
import { forgetProtocol, knownProtocol, probeProtocol, type WireProtocol } from "./probe.ts";
import type { BackendTarget } from "./target.ts";

export interface PoolTimeouts {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

export type Client = { kind: "h2"; client: H2Client } | { kind: "http1"; client: H1Client };

export class BackendPool {
  private readonly h2 = new Map<string, Client>();
  private readonly h1 = new Map<string, Client>();

  constructor(
    private readonly proxyHeader: Uint8Array | null,
    private readonly timeouts: PoolTimeouts,
  ) {}

  /**
   * The client for `t` when its protocol is known now (fixed, or probed
   * before), else null: call `resolve` then.
   */
  clientNow(t: BackendTarget): Client | null {
    const proto: WireProtocol | undefined = t.protocol === "auto" ? knownProtocol(t) : t.protocol;
    return proto ? this.clientFor(t, proto) : null;
  }

  /** Probes an auto backend and returns its client; rejects when unreachable. */
  async resolve(t: BackendTarget): Promise<Client> {
    const proto = await probeProtocol(t, this.proxyHeader, this.timeouts.connectTimeoutMs);
    return this.clientFor(t, proto);
  }

  /** A connection to `t` failed: in auto mode, probe again next time. */
  connectFailed(t: BackendTarget): void {
    if (t.protocol === "auto") forgetProtocol(t);
  }

  close(): void {
    for (const c of this.h2.values()) c.client.close();
    for (const c of this.h1.values()) c.client.close();
    this.h2.clear();
    this.h1.clear();
  }

  private clientFor(t: BackendTarget, proto: WireProtocol): Client {
    const { connectTimeoutMs, idleTimeoutMs } = this.timeouts;
    if (proto === "h2") {
      let c = this.h2.get(t.key);
      if (!c) this.h2.set(t.key, (c = { kind: "h2", client: new H2Client(t, this.proxyHeader, connectTimeoutMs, idleTimeoutMs) }));
      return c;
    }
    let c = this.h1.get(t.key);
    if (!c) this.h1.set(t.key, (c = { kind: "http1", client: new H1Client(t, this.proxyHeader, connectTimeoutMs, idleTimeoutMs) }));
    return c;
  }
}
