/**
 * HTTP/2 backend connections (h2c with prior knowledge, or h2 over TLS).
 * Requests are multiplexed over as few sessions as the backend allows: a new
 * session opens only when every open one is at the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS. Sessions leave the pool on GOAWAY, error or
 * close and are replaced on demand; idle sessions close after `idleMs`.
 */
import http2 from "node:http2";
import { connectBackend } from "./connect.ts";
import type { BackendTarget } from "./target.ts";
import { formatHostPort } from "../../net/addr.ts";
import { BACKEND_H2_DEFAULT_MAX_STREAMS } from "../../limits.ts";

interface Entry {
  session: http2.ClientHttp2Session;
  active: number;
  usable: boolean;
}

const DEFAULT_MAX_STREAMS = BACKEND_H2_DEFAULT_MAX_STREAMS;

export class H2Client {
  private entries: Entry[] = [];

  constructor(
    private readonly target: BackendTarget,
    private readonly proxyHeader: Uint8Array | null,
    private readonly connectTimeoutMs: number,
    private readonly idleMs: number,
  ) {}

  /**
   * Opens a stream for `headers` (pseudo-headers included) on a session with
   * room for it. Connection failures arrive as the stream's 'error'.
   */
  request(headers: http2.OutgoingHttpHeaders, endStream: boolean): http2.ClientHttp2Stream {
    const e = this.pick();
    e.active++;
    const stream = e.session.request(headers, { endStream });
    stream.once("close", () => {
      e.active--;
    });
    return stream;
  }

  /** Closes every session (graceful: streams in flight finish). */
  close(): void {
    for (const e of this.entries) {
      e.usable = false;
      e.session.close();
    }
    this.entries = [];
  }

  private pick(): Entry {
    for (const e of this.entries) {
      if (!e.usable) continue;
      const max = e.session.remoteSettings?.maxConcurrentStreams ?? DEFAULT_MAX_STREAMS;
      if (e.active < Math.min(max, 0x7fffffff)) return e;
    }
    return this.open();
  }

  private open(): Entry {
    const t = this.target;
    const scheme = t.tls ? "https" : "http";
    const session = http2.connect(`${scheme}://${formatHostPort(t.host, t.port)}`, {
      createConnection: () => connectBackend(t, { proxyHeader: this.proxyHeader, alpn: ["h2"], timeoutMs: this.connectTimeoutMs }),
    });
    const e: Entry = { session, active: 0, usable: true };
    this.entries.push(e);
    const retire = () => {
      e.usable = false;
      const i = this.entries.indexOf(e);
      if (i >= 0) this.entries.splice(i, 1);
    };
    session.on("error", retire); // streams see the error themselves
    session.on("goaway", retire);
    session.on("close", retire);
    session.setTimeout(this.idleMs, () => {
      if (e.active === 0) {
        retire();
        session.close();
      }
    });
    return e;
  }
}
