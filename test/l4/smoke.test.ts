import { afterAll, beforeAll, expect, test } from "bun:test";
import tls from "node:tls";
import { makeCA, makeLeaf } from "../fixtures/certs.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";

let proxy: TestProxy;
let backend: tls.Server;
const ca = makeCA("smoke-ca");
const leaf = makeLeaf(ca, ["a.test"]);

beforeAll(async () => {
  backend = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end("hello from a\n"));
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const bport = (backend.address() as { port: number }).port;
  proxy = await startTestProxy(`
[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:${bport}"
`);
});
afterAll(async () => {
  await proxy?.stop();
  backend?.close();
});

test("an L4 route relays a TLS connection to the backend chosen by SNI", async () => {
  const got = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port: proxy.port(), servername: "a.test", ca: ca.certPem }, () => {});
    let buf = "";
    s.on("data", (d) => (buf += d));
    s.on("end", () => resolve(buf));
    s.on("error", reject);
  });
  expect(got).toBe("hello from a\n");
});
