/**
 * An HTTP/2 client's FIN (its input to us ends) with a request it had not
 * finished: that request can never complete, so its stream is reset and the
 * exchange ends (logged), and the backend side is let go. It used to wait
 * for the rest of the body forever: the connection, the exchange and the
 * backend stream or connection stayed (a sweep saw ~60 MiB kept per 4000
 * such requests, round after round). A whole request on the same connection
 * still gets its response.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ByteWriter } from "../../src/l7/h2/bytes.ts";
import { writeData, writeHeaders, writeSettings } from "../../src/l7/h2/frame.ts";
import { HpackEncoder } from "../../src/l7/h2/hpack.ts";
import { cleanupCerts, e2ePki, killAllServers, route, startProxy, startRawBackend, tlsClient, waitUntil, type RawBackend, type ServerProc } from "./e2e.ts";

let be: RawBackend;
let p: ServerProc;

beforeAll(async () => {
  e2ePki();
  // Answers a whole request after 300 ms (so the FIN comes while it is in flight).
  be = await startRawBackend((r) => setTimeout(() => r.send(200, "whole"), 300));
  p = await startProxy([route({ backend: be.addr })]);
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

test("a FIN after part of a request body: that stream is reset and its exchange ends; a whole request on the connection is still answered", async () => {
  const c = await tlsClient(p.port(), { alpn: ["h2"], allowHalfOpen: true });
  const enc = new HpackEncoder({ huffman: "never" });
  const out = new ByteWriter();
  out.bytes(new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  writeSettings(out, []);
  const head = (path: string, extra: string[]) => {
    const w = new ByteWriter();
    enc.encode([":method", "POST", ":scheme", "https", ":authority", "a.test", ":path", path, ...extra], w);
    return w.toBytes();
  };
  // Stream 1: 10 of 100 bytes. Stream 3: a whole request.
  writeHeaders(out, 1, head("/fin-partial", ["content-length", "100"]), false);
  writeData(out, 1, new TextEncoder().encode("0123456789"), false);
  writeHeaders(out, 3, head("/fin-whole", ["content-length", "2"]), false);
  writeData(out, 3, new TextEncoder().encode("ok"), true);
  c.sock.write(out.toBytes());
  expect(await waitUntil(() => be.seen.some((s) => s.path === "/fin-whole"), 5000)).toBe(true);
  c.sock.end(); // FIN: nothing more will come from this client
  // The unfinished request ends at once (logged), not when some timeout fires.
  const line = await p.waitLog((x) => x.event === "l7.request" && x.path === "/fin-partial", 3000, "l7.request for /fin-partial");
  expect(line.path).toBe("/fin-partial");
  // The whole one is answered (the client can still read), then the connection closes.
  expect(await c.closed(5000)).toBe(true);
  expect(c.text()).toContain("whole");
  expect(be.seen.some((s) => s.path === "/fin-partial")).toBe(false);
});
