/**
 * backend_protocol = "auto": find out once whether a backend speaks HTTP/2.
 * Over TLS, ALPN decides (we offer h2 and http/1.1). In cleartext we send the
 * HTTP/2 connection preface plus an empty SETTINGS frame: an h2c server's first
 * frame is SETTINGS (type 0x4 at byte 3); an HTTP/1.1 server answers with text
 * ("HTTP/1.1 400 …"), closes, or stays silent — all of which mean HTTP/1.1.
 * The answer is remembered per backend address until `forgetProtocol`.
 */
import { log } from "../../obs/log.ts";
import { connectBackend } from "./connect.ts";
import type { BackendTarget } from "./target.ts";
import type tls from "node:tls";
import { BACKEND_PROBE_ANSWER_MS } from "../../limits.ts";

export type WireProtocol = "h2" | "http1";

const PREFACE = Buffer.concat([
  Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
  Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0]), // empty SETTINGS frame on stream 0
]);

/** The answers, per backend address; one per L7 runtime (no module state). */
export class ProtocolProbe {
  private readonly known = new Map<string, WireProtocol>();
  private readonly inflight = new Map<string, Promise<WireProtocol>>();

  /** The remembered protocol of this backend address, or undefined when not probed yet. */
  remembered(t: BackendTarget): WireProtocol | undefined {
    return this.known.get(t.addrKey);
  }

  /** Drops the remembered answer (after a connection error) so the next request probes again. */
  forget(t: BackendTarget): void {
    this.known.delete(t.addrKey);
  }

  /**
   * Probes `t` (one connection, closed afterwards) and remembers the answer.
   * Rejects with the connection error when the backend cannot be reached;
   * concurrent callers share one probe.
   */
  probe(t: BackendTarget, proxyHeader: Uint8Array | null, timeoutMs: number): Promise<WireProtocol> {
    const known = this.known;
    const inflight = this.inflight;
    const have = known.get(t.addrKey);
    if (have) return Promise.resolve(have);
    // A PROXY header makes the probe client-specific: never share it.
    const shareKey = proxyHeader ? null : t.addrKey;
    const running = shareKey ? inflight.get(shareKey) : undefined;
    if (running) return running;
    const p = new Promise<WireProtocol>((resolve, reject) => {
      const sock = connectBackend(t, { proxyHeader, alpn: ["h2", "http/1.1"], timeoutMs });
      let settled = false;
      let answerTimer: ReturnType<typeof setTimeout> | undefined;
      const done = (proto: WireProtocol | null, err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(answerTimer);
        sock.destroy();
        if (proto) {
          known.set(t.addrKey, proto);
          log.debug("l7.backend_probe", { backend: `${t.host}:${t.port}`, protocol: proto });
          resolve(proto);
        } else reject(err);
      };
      sock.on("error", (e) => done(null, e));
      if (t.tls) {
        sock.once("secureConnect", () => done((sock as tls.TLSSocket).alpnProtocol === "h2" ? "h2" : "http1"));
        return;
      }
      sock.once("connect", () => {
        sock.write(PREFACE);
        // A silent backend is an HTTP/1.1 server waiting for the rest of a request.
        answerTimer = setTimeout(() => done("http1"), Math.min(timeoutMs, BACKEND_PROBE_ANSWER_MS));
      });
      let got: Buffer = Buffer.alloc(0);
      sock.on("data", (d: Buffer) => {
        got = got.length === 0 ? d : Buffer.concat([got, d]);
        if (got.length >= 4) done(got[3] === 0x04 ? "h2" : "http1");
      });
      sock.on("end", () => done("http1"));
      sock.on("close", () => done("http1"));
    });
    if (shareKey) {
      inflight.set(shareKey, p);
      const clear = () => inflight.delete(shareKey);
      p.then(clear, clear);
    }
    return p;
  }
}
