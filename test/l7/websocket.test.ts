/**
 * WebSocket (HTTP/1.1 Upgrade) through the L7 proxy to a Bun.serve echo backend.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { cleanupCerts } from "../fixtures/certs.ts";
import { routeRecord, startHarness, testPki, type L7Harness } from "./harness.ts";

let backend: Server<unknown>;
const upgrades: Record<string, string>[] = [];
const proxies: L7Harness[] = [];

beforeAll(() => {
  testPki();
  backend = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      upgrades.push(Object.fromEntries(req.headers.entries()));
      if (server.upgrade(req, { data: undefined })) return undefined;
      return new Response("not a websocket\n", { status: 400 });
    },
    websocket: {
      message(ws, msg) {
        ws.send(typeof msg === "string" ? `echo:${msg}` : msg);
      },
    },
  });
});

afterAll(() => {
  for (const p of proxies) p.stop();
  backend?.stop(true);
  cleanupCerts();
});

function open(port: number, headers: Record<string, string> = {}): Promise<WebSocket> {
  // Bun's WebSocket accepts tls options; the harness serves a.test whatever the SNI, and the
  // Host must name it (421 otherwise, SPEC §5).
  const ws = new WebSocket(`wss://127.0.0.1:${port}/chat`, { headers: { host: "a.test", ...headers }, tls: { rejectUnauthorized: false } } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) => reject(new Error(`websocket error: ${String((e as ErrorEvent).message ?? e.type)}`));
  });
}

function next(ws: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((resolve, reject) => {
    ws.onmessage = (m) => resolve(m.data as string | ArrayBuffer);
    ws.onclose = () => reject(new Error("closed before a message"));
  });
}

describe("WebSocket through the L7 proxy", () => {
  test("text and binary messages echo both ways; backend sees forwarding headers", async () => {
    const p = startHarness(routeRecord(`127.0.0.1:${backend.port}`, { backendProtocol: "auto" }));
    proxies.push(p);
    const ws = await open(p.port, { "X-Forwarded-For": "6.6.6.6" });
    ws.send("hello");
    expect(await next(ws)).toBe("echo:hello");
    const bin = new Uint8Array(200_000).map((_, i) => i & 255);
    ws.send(bin);
    const back = await next(ws);
    expect(new Uint8Array(back as ArrayBuffer)).toEqual(bin);
    ws.close();
    const h = upgrades.at(-1)!;
    expect(h["upgrade"]?.toLowerCase()).toBe("websocket");
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-real-ip"]).toBe("127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("https");
  });

  test("a WebSocket upgrade is subject to policies (403, backend not contacted)", async () => {
    const p = startHarness(
      routeRecord(`127.0.0.1:${backend.port}`, { l7Policies: [{ id: 1, routeId: 1, type: "require_header", value: "x-token" }] }),
    );
    proxies.push(p);
    const before = upgrades.length;
    await expect(open(p.port)).rejects.toThrow();
    expect(upgrades.length).toBe(before);
    const ws = await open(p.port, { "x-token": "t" });
    ws.send("ok");
    expect(await next(ws)).toBe("echo:ok");
    ws.close();
  });
});
