/**
 * TLS backends and the PROXY header (send_proxy_protocol): verification
 * settings, and the header as the very first bytes on the TCP connection —
 * before the TLS ClientHello, before the request.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { H1Pool } from "../../../src/l7/h1/client.ts";
import { encodeProxyV2 } from "../../../src/wire/proxyproto.ts";
import { type CA, type CertFiles, cleanupCerts, makeCA, makeLeaf, makeSelfSigned } from "../../fixtures/certs.ts";
import { type TestBackend, ok, send, startBackend, target } from "./client-backends.ts";

let ca: CA;
let leaf: CertFiles;
let self: CertFiles;
let verified: TestBackend;
let selfSigned: TestBackend;
beforeAll(() => {
  ca = makeCA("H1 Client Test Root");
  leaf = makeLeaf(ca, ["backend.test"]);
  self = makeSelfSigned(["self.test"]);
  verified = startBackend((r) => ok(`tls ${r.head.target}`), { cert: leaf.fullchainPem, key: leaf.keyPem });
  selfSigned = startBackend(() => ok("self"), { cert: self.certPem, key: self.keyPem });
});
afterAll(() => {
  verified?.stop();
  selfSigned?.stop();
  cleanupCerts();
});

const opts = { connectTimeoutMs: 3000, idleTimeoutMs: 10_000, proxyHeader: null };
const PP2_SIGNATURE = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

test("rejectUnauthorized false accepts a self-signed backend certificate", async () => {
  const p = new H1Pool(opts);
  const r = await send(p, target(selfSigned.port, { servername: "self.test", rejectUnauthorized: false, ca: undefined }), "GET").done;
  expect(r.error).toBeNull();
  expect(r.body.toString()).toBe("self");
  p.close();
});

test("rejectUnauthorized true with the backend's CA verifies it, and the TLS connection is reused", async () => {
  const p = new H1Pool(opts);
  const t = target(verified.port, { servername: "backend.test", rejectUnauthorized: true, ca: ca.certPem });
  const before = verified.conns.length;
  for (let i = 0; i < 5; i++) expect((await send(p, t, "GET", `/${i}`).done).body.toString()).toBe(`tls /${i}`);
  expect(verified.conns.length - before).toBe(1);
  p.close();
});

test("rejectUnauthorized true without the CA fails as a connect error", async () => {
  const p = new H1Pool(opts);
  const r = await send(p, target(verified.port, { servername: "backend.test", rejectUnauthorized: true, ca: undefined }), "GET").done;
  expect(r.error?.kind).toBe("connect");
  expect(r.error?.beforeResponse).toBe(true);
  expect(r.error?.code).toMatch(/CERT|SIGNED|VERIFY/);
  p.close();
});

test("a certificate for another name fails verification", async () => {
  const p = new H1Pool(opts);
  const r = await send(p, target(verified.port, { servername: "other.test", rejectUnauthorized: true, ca: ca.certPem }), "GET").done;
  expect(r.error?.kind).toBe("connect");
  expect(r.error?.code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
  p.close();
});

/** A TCP front that records the first bytes of each connection, strips `strip` bytes and relays the rest to `to`. */
function recordingRelay(to: number, strip: number): Promise<{ port: number; first: Buffer[]; close(): void }> {
  const first: Buffer[] = [];
  const server = net.createServer((s) => {
    let head = Buffer.alloc(0);
    let stripped = false;
    const up = net.connect(to, "127.0.0.1");
    s.on("data", (d: Buffer) => {
      if (!stripped) {
        head = Buffer.concat([head, d]);
        if (head.length < strip + 16) return;
        first.push(head);
        stripped = true;
        d = head.subarray(strip);
      }
      up.write(d);
    });
    up.on("data", (d) => s.write(d));
    up.on("close", () => s.destroy());
    s.on("close", () => up.destroy());
    s.on("error", () => {});
    up.on("error", () => {});
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, first, close: () => server.close() })),
  );
}

const header = encodeProxyV2({ source: { address: "203.0.113.7", port: 40000 }, destination: { address: "10.0.0.1", port: 443 } });

test("the PROXY v2 header is written on the raw TCP before the TLS ClientHello", async () => {
  const relay = await recordingRelay(verified.port, header.length);
  const p = new H1Pool({ ...opts, proxyHeader: header });
  const t = { ...target(relay.port, { servername: "backend.test", rejectUnauthorized: true, ca: ca.certPem }) };
  const r = await send(p, t, "GET", "/pp").done;
  expect(r.error).toBeNull();
  expect(r.body.toString()).toBe("tls /pp");
  const seen = relay.first[0];
  expect(seen.subarray(0, 12).equals(PP2_SIGNATURE)).toBe(true);
  expect(seen.subarray(0, header.length).equals(Buffer.from(header))).toBe(true);
  expect(seen[header.length]).toBe(0x16); // TLS handshake record
  p.close();
  relay.close();
});

test("the PROXY v2 header precedes the request in cleartext, once per connection", async () => {
  const plain = startBackend((r) => ok(`plain ${r.head.target}`));
  const relay = await recordingRelay(plain.port, header.length);
  const p = new H1Pool({ ...opts, proxyHeader: header });
  const t = target(relay.port);
  expect((await send(p, t, "GET", "/a").done).body.toString()).toBe("plain /a");
  expect((await send(p, t, "GET", "/b").done).body.toString()).toBe("plain /b");
  expect(relay.first.length).toBe(1);
  const seen = relay.first[0];
  expect(seen.subarray(0, header.length).equals(Buffer.from(header))).toBe(true);
  expect(seen.subarray(header.length, header.length + 6).toString()).toBe("GET /a");
  expect(plain.requests.map((q) => q.head.target)).toEqual(["/a", "/b"]);
  p.close();
  relay.close();
  plain.stop();
});
