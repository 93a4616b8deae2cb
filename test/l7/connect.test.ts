/** CONNECT is not proxied (the proxy does not tunnel): 501 over HTTP/2 as over HTTP/1.1, nothing reaches the backend. */
import { afterAll, expect, test } from "bun:test";
import http2 from "node:http2";
import { startH1Backend, type Backend } from "./backends.ts";
import { routeRecord, startHarness, testPki, type L7Harness } from "./harness.ts";

let backend: Backend | null = null;
let p: L7Harness | null = null;
afterAll(async () => {
  p?.stop();
  await backend?.stop?.();
});

test("an HTTP/2 CONNECT gets 501 and never reaches the backend", async () => {
  backend = await startH1Backend();
  p = startHarness(routeRecord(backend.addr, { backendProtocol: "http1" }));
  const before = backend.seen.length;
  const c = http2.connect(`https://127.0.0.1:${p.port}`, { servername: "a.test", ca: testPki().ca.certPem });
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const r = c.request({ ":method": "CONNECT", ":authority": "a.test:443" });
      r.on("response", (h) => resolve(Number(h[":status"])));
      r.on("error", reject);
      r.end();
    });
    expect(status).toBe(501);
    expect(backend.seen.length).toBe(before);
  } finally {
    c.close();
  }
});
