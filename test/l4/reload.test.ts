/**
 * SIGHUP reloads the GeoIP database of the running server process (SPEC §4):
 * a corrupt file is refused and the old database keeps blocking, with a log
 * line saying the reload failed; a valid new file takes effect.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCountryMmdb } from "../fixtures/mmdb.ts";
import { rawConnect, realHello, startSink, waitUntil, writeAll, type TcpSink } from "../helpers/net.ts";
import { startProxyProc, type ServerProc } from "../helpers/subprocess.ts";

let sink: TcpSink;
let server: ServerProc;
let mmdb: string;
const ADDR = "127.0.0.1:0";

beforeAll(async () => {
  sink = await startSink((c) => {
    c.socket.write("ok");
    c.ended.then(() => c.socket.end());
  });
  const dir = mkdtempSync(join(tmpdir(), "mcp-l4-hup-"));
  mmdb = join(dir, "country.mmdb");
  writeCountryMmdb(mmdb, [{ cidr: "127.0.0.2/32", country: "KP" }]);
  server = await startProxyProc(
    `
[firewall]
geoip_db = "${mmdb}"
blocked_countries = ["KP"]

[proxy]
shutdown_timeout = "1s"

[[listeners]]
addr = "${ADDR}"
  [[listeners.routes]]
  hostname = "hup.test"
  backend = "127.0.0.1:${sink.port}"
`,
    { dir },
  );
});
afterAll(() => {
  server?.cleanup();
  sink?.close();
});

/** How a client from `localAddress` fares: "ok" (routed: the backend's reply arrives) or how it was ended ("reset" = blocked). */
async function fate(localAddress: string): Promise<string> {
  // No `await c.connected`: a RST can beat Bun's 'connect' event (then it is a connect error).
  const c = rawConnect(server.port(ADDR), { localAddress });
  c.socket.write(await realHello("hup.test"));
  const r = await Promise.race([
    waitUntil(() => c.received().toString() === "ok", 5000, "reply").then(() => "ok"),
    c.outcome(5000).then((o) => o.kind),
  ]);
  c.socket.destroy();
  return r;
}

test("a SIGHUP with a corrupt GeoIP file keeps the old database (still blocking) and logs the failure", async () => {
  expect(await fate("127.0.0.2")).toBe("reset");
  expect(await fate("127.0.0.3")).toBe("ok");

  writeFileSync(mmdb, crypto.getRandomValues(new Uint8Array(4096)));
  server.proc.kill("SIGHUP");
  const failed = await server.waitLog((r) => r.event === "geoip.reload_failed", 10_000, "geoip.reload_failed");
  expect(failed.level).toBe("error");
  expect(String(failed.error).length).toBeGreaterThan(0);
  const summary = await server.waitLog((r) => r.event === "server.reload", 5000, "server.reload");
  expect(summary.geoip).not.toBe("ok");

  expect(await fate("127.0.0.2")).toBe("reset");
  expect(await fate("127.0.0.3")).toBe("ok");
});

test("a SIGHUP with a valid new GeoIP file takes effect", async () => {
  writeCountryMmdb(mmdb, [{ cidr: "127.0.0.3/32", country: "KP" }]);
  const before = server.logs.length;
  server.proc.kill("SIGHUP");
  await waitUntil(() => server.logs.slice(before).find((r) => r.event === "geoip.reloaded"), 10_000, "geoip.reloaded");
  expect(await fate("127.0.0.2")).toBe("ok");
  expect(await fate("127.0.0.3")).toBe("reset");
});
