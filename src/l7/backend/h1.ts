/**
 * HTTP/1.1 backend requests through node:http(s) as Bun implements it.
 *
 * Bun's http client pools keep-alive connections itself when given a
 * keep-alive Agent — and then IGNORES `createConnection` (measured). So:
 *  - without a PROXY header: keep-alive Agent, Bun's pool, Bun's TLS
 *    (servername / verification / CA passed as request options);
 *  - with a PROXY header (send_proxy_protocol): no Agent, our own
 *    `connectBackend` writes the header first; one backend connection per
 *    request (correct but slower; such pools are per client anyway).
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import type { HeaderMap } from "../headers.ts";
import { connectBackend } from "./connect.ts";
import type { BackendTarget } from "./target.ts";
import { BACKEND_H1_MAX_FREE_SOCKETS, BACKEND_H1_MAX_SOCKETS } from "../../limits.ts";

const MAX_SOCKETS = BACKEND_H1_MAX_SOCKETS;
const MAX_FREE_SOCKETS = BACKEND_H1_MAX_FREE_SOCKETS;

export class H1Client {
  private readonly agent: http.Agent | undefined;
  private readonly createConnection: (() => net.Socket) | undefined;
  private readonly tlsOptions: https.RequestOptions | null;

  constructor(
    private readonly target: BackendTarget,
    proxyHeader: Uint8Array | null,
    connectTimeoutMs: number,
    idleMs: number,
  ) {
    const Agent = target.tls ? https.Agent : http.Agent;
    // NB: `agent: false` would make Bun ignore createConnection too; leave it undefined.
    this.agent = proxyHeader
      ? undefined
      : new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_FREE_SOCKETS, timeout: idleMs });
    this.createConnection = proxyHeader
      ? () => connectBackend(target, { proxyHeader, alpn: ["http/1.1"], timeoutMs: connectTimeoutMs })
      : undefined;
    // Bun's https client applies these itself (even when given a connected TLS socket).
    this.tlsOptions = target.tls
      ? ({
          servername: target.tls.servername || undefined,
          rejectUnauthorized: target.tls.rejectUnauthorized,
          ca: target.tls.ca,
          ALPNProtocols: ["http/1.1"],
        } as https.RequestOptions)
      : null;
  }

  /** Starts a request; `headers` must already carry Host. Errors arrive on the request's 'error'. */
  request(method: string, path: string, headers: HeaderMap): http.ClientRequest {
    const opts: https.RequestOptions = {
      host: this.target.host,
      port: this.target.port,
      method,
      path,
      headers: headers as http.OutgoingHttpHeaders,
    };
    if (this.tlsOptions) Object.assign(opts, this.tlsOptions);
    // node's typings want the (options, cb) form; ours connects synchronously and returns the socket.
    if (this.agent) opts.agent = this.agent;
    if (this.createConnection) opts.createConnection = this.createConnection as unknown as https.RequestOptions["createConnection"];
    return (this.target.tls ? https : http).request(opts);
  }

  close(): void {
    if (this.agent) this.agent.destroy();
  }
}
