/**
 * The set of backend clients one scope may share. The runtime's pool serves
 * every route without send_proxy_protocol. A route with send_proxy_protocol
 * gets a pool per CLIENT connection, because each backend connection starts
 * with that client's PROXY header and must never carry another client's
 * requests; it is closed with the client connection.
 */
import { H1Pool } from "../h1/client.ts";
import { H2Client } from "./h2.ts";
import type { ProtocolProbe, WireProtocol } from "./probe.ts";
import type { BackendTarget } from "./target.ts";

export interface PoolTimeouts {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

export type Client = { kind: "h2"; client: H2Client } | { kind: "http1"; pool: H1Pool };

export class BackendPool {
  private readonly h2 = new Map<string, Client>();
  private readonly h1: Client;

  constructor(
    private readonly proxyHeader: Uint8Array | null,
    private readonly timeouts: PoolTimeouts,
    private readonly probe: ProtocolProbe,
  ) {
    this.h1 = { kind: "http1", pool: new H1Pool({ ...timeouts, proxyHeader }) };
  }

  /**
   * The client for `t` when its protocol is known now (fixed, or probed
   * before), else null: call `resolve` then.
   */
  clientNow(t: BackendTarget): Client | null {
    const proto: WireProtocol | undefined = t.protocol === "auto" ? this.probe.remembered(t) : t.protocol;
    return proto ? this.clientFor(t, proto) : null;
  }

  /** Probes an auto backend and returns its client; rejects when unreachable. */
  async resolve(t: BackendTarget): Promise<Client> {
    const proto = await this.probe.probe(t, this.proxyHeader, this.timeouts.connectTimeoutMs);
    return this.clientFor(t, proto);
  }

  /** A connection to `t` failed: in auto mode, probe again next time. */
  connectFailed(t: BackendTarget): void {
    if (t.protocol === "auto") this.probe.forget(t);
  }

  close(): void {
    for (const c of this.h2.values()) if (c.kind === "h2") c.client.close();
    this.h2.clear();
    if (this.h1.kind === "http1") this.h1.pool.close();
  }

  private clientFor(t: BackendTarget, proto: WireProtocol): Client {
    if (proto === "http1") return this.h1;
    let c = this.h2.get(t.key);
    if (!c) {
      const { connectTimeoutMs, idleTimeoutMs } = this.timeouts;
      this.h2.set(t.key, (c = { kind: "h2", client: new H2Client(t, this.proxyHeader, connectTimeoutMs, idleTimeoutMs) }));
    }
    return c;
  }
}
