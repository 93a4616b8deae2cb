/**
 * h2spec against the REAL server (subprocess; the compiled binary when built)
 * with an L7 route for `localhost` (h2spec's `-h` is the SNI) towards an h2c
 * backend — the whole path: TLS + ALPN h2 → our HTTP/2 session
 * (src/l7/h2/session.ts) → exchange → node:http2 client → backend.
 * The backend (node:http2, h2c) reads each request body to its end, then
 * answers 200 with a short body, for any path.
 *
 * SPEC §5: no failures. Figures (Bun 1.4.4): 146/146; strict (-S) 147/147.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import http2 from "node:http2";
import type net from "node:net";
import { cleanupCerts } from "../fixtures/certs.ts";
import { killAllServers, type ServerProc } from "../helpers/subprocess.ts";
import { testPki } from "../l7/harness.ts";
import { proxyBinary, startRouteProc } from "./proc.ts";
import { h2spec, h2specFailures, runH2spec } from "../helpers/h2spec.ts";

setDefaultTimeout(120_000);


let backend: http2.Http2Server;
let backendPort = 0;
let requests = 0;
let proc: ServerProc;

beforeAll(async () => {
  if (!h2spec) return;
  testPki();
  backend = http2.createServer();
  backend.on("stream", (s: http2.ServerHttp2Stream) => {
    requests++;
    s.on("error", () => {});
    s.on("data", () => {});
    s.on("end", () => {
      if (s.destroyed || s.closed) return;
      s.respond({ ":status": 200, "content-type": "text/plain" });
      s.end("hello from the h2c backend\n");
    });
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", () => r()));
  backendPort = (backend.address() as net.AddressInfo).port;
  proc = await startRouteProc({ hostname: "localhost", backend: `127.0.0.1:${backendPort}`, backendProtocol: "h2" });
  console.log(`h2spec route: server ${proxyBinary() ? "dist/mc-proxy (compiled)" : "bun src/main.ts"} on port ${proc.port()}`);
});

afterAll(async () => {
  await proc?.stop();
  killAllServers();
  await new Promise<void>((r) => (backend ? backend.close(() => r()) : r()));
  cleanupCerts();
});

describe.skipIf(!h2spec)("h2spec through an L7 route (TLS front, h2c backend)", () => {
  test("every case passes (146/146)", async () => {
    const r = await runH2spec(["-t", "-k", "-h", "localhost", "-p", String(proc.port())]);
    console.log(`h2spec L7 route: ${r.passed}/${r.total} passed, ${r.failed} failed; backend saw ${requests} requests`);
    expect(h2specFailures(r)).toBe("");
    expect(r.passed).toBe(146);
    expect(r.total).toBe(146);
  });

  test("strict mode (-S): every case passes", async () => {
    const r = await runH2spec(["-t", "-k", "-S", "-h", "localhost", "-p", String(proc.port())]);
    console.log(`h2spec L7 route strict: ${r.passed}/${r.total} passed, ${r.failed} failed`);
    expect(h2specFailures(r)).toBe("");
    expect(r.failed).toBe(0);
  });

  test("the server is still healthy after both runs", async () => {
    expect(proc.done).toBe(false);
  });
});
