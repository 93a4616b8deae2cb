/**
 * WebSocket over HTTP/1.1 Upgrade. After policies, we open a fresh backend
 * connection (TLS and PROXY header as the route says — always HTTP/1.1,
 * whatever backend_protocol is, since the Upgrade handshake is HTTP/1.1),
 * send the request head with forwarding headers, and from then on relay raw
 * bytes both ways, including the backend's own 101 (or error) response.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { log } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import { connectBackend } from "./backend/connect.ts";
import { targetFor } from "./backend/target.ts";
import type { L7Conn } from "./context.ts";
import { headerString, isWebSocketUpgrade, websocketRequestHead, type HeaderMap } from "./headers.ts";
import { BODY_403, BODY_502, BODY_504 } from "./proxy.ts";
import { evaluatePolicies } from "./policy.ts";
import { encodeProxyV2 } from "../wire/proxyproto.ts";

function rawAnswer(sock: Duplex, status: string, text: string): void {
  sock.end(
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

/** node:http 'upgrade' handler body: relays one WebSocket connection, or answers 400/403/502/504. */
export function handleUpgrade(conn: L7Conn, req: http.IncomingMessage, client: Duplex, head: Buffer): void {
  conn.requests++;
  const h = req.headers as HeaderMap;
  const record = conn.ctx.route().record;
  if (!isWebSocketUpgrade(h)) return rawAnswer(client, "400 Bad Request", "400 Bad Request: only WebSocket upgrades are proxied\n");
  if (record.l7Policies.length > 0) {
    const v = evaluatePolicies(record.l7Policies, (n) => headerString(h, n));
    if (v.blocked) {
      log.info("l7.policy_block", { listener: conn.ctx.listenerAddr, route: record.hostname, client: conn.ctx.client.address, policy: v.policy.type, value: v.policy.value });
      return rawAnswer(client, "403 Forbidden", BODY_403);
    }
  }
  const t = targetFor(record);
  const ctx = conn.ctx;
  const proxyHeader = record.sendProxyProtocol
    ? encodeProxyV2({ source: ctx.client, destination: ctx.local, authority: ctx.sni })
    : null;
  const back = connectBackend(t, { proxyHeader, alpn: ["http/1.1"], timeoutMs: ctx.proxy.connectTimeoutMs });
  const t0 = performance.now();
  let answered = false;
  const timer = setTimeout(() => {
    if (answered) return;
    answered = true;
    back.destroy();
    rawAnswer(client, "504 Gateway Timeout", BODY_504);
  }, ctx.proxy.backendTimeoutMs);
  back.on("error", (e) => {
    clearTimeout(timer);
    if (!answered) {
      answered = true;
      log.warn("l7.backend_error", { listener: ctx.listenerAddr, route: record.hostname, backend: record.backend, status: 502, reason: e.message });
      metrics.listener(ctx.listenerAddr).backendConnectFailure("l7");
      metrics.route(record.hostname).request(502, (performance.now() - t0) / 1000);
      rawAnswer(client, "502 Bad Gateway", BODY_502);
    } else client.destroy();
  });
  back.write(websocketRequestHead(req.method ?? "GET", req.url ?? "/", h["host"] ? String(h["host"]) : t.defaultAuthority, h, ctx.client.address));
  if (head.length > 0) back.write(head);
  let bytesOut = 0;
  let bytesIn = 0;
  back.on("data", (d: Buffer) => {
    if (!answered) {
      answered = true;
      clearTimeout(timer);
    }
    bytesOut += d.length;
    // Bun's TLS layer hides the client socket's backpressure: check the duplex below it too.
    if (!client.write(d)) back.pause();
    else if (conn.duplex.overloaded()) {
      back.pause();
      conn.duplex.whenDrained(resumeBack);
    }
  });
  const resumeBack = () => back.resume();
  client.on("drain", () => conn.duplex.whenDrained(resumeBack));
  back.on("end", () => client.end());
  client.on("data", (d: Buffer) => {
    bytesIn += d.length;
    if (!back.write(d)) client.pause();
  });
  back.on("drain", () => client.resume());
  client.on("end", () => back.end());
  client.on("error", () => back.destroy());
  client.on("close", () => {
    back.destroy();
    clearTimeout(timer);
    metrics.route(record.hostname).request(101, (performance.now() - t0) / 1000);
    log.info("l7.request", {
      listener: ctx.listenerAddr,
      route: record.hostname,
      client: ctx.client.address,
      method: req.method,
      path: req.url,
      status: 101,
      bytes_in: bytesIn,
      bytes_out: bytesOut,
      duration_ms: Math.round(performance.now() - t0),
      backend: record.backend,
      protocol: "websocket",
    });
  });
  back.on("close", () => {
    if (answered) client.end();
  });
}
