import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cleanupCerts } from "../fixtures/certs.ts";
import { patternSha256, startH1Backend, startH2cBackend, startTlsH1Backend, startTlsH2Backend, type Backend } from "./backends.ts";
import { curl, routeRecord, startHarness, testPki, type L7Harness } from "./harness.ts";
import type { BackendProtocol } from "../../src/config/types.ts";

let h2c: Backend, h1: Backend, tlsH1: Backend, tlsH2: Backend;
const proxies: L7Harness[] = [];
let tmp: string;

function proxyTo(b: Backend, protocol: BackendProtocol, over = {}): L7Harness {
  const p = startHarness(routeRecord(b.addr, { backendProtocol: protocol, ...over }));
  proxies.push(p);
  return p;
}

beforeAll(async () => {
  testPki();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mc-l7-"));
  [h2c, h1, tlsH1, tlsH2] = await Promise.all([startH2cBackend(), startH1Backend(), startTlsH1Backend(), startTlsH2Backend()]);
});

afterAll(async () => {
  for (const p of proxies) p.stop();
  await Promise.all([h2c, h1, tlsH1, tlsH2].map((b) => b?.stop()));
  fs.rmSync(tmp, { recursive: true, force: true });
  cleanupCerts();
});

describe("front protocols × backend protocols", () => {
  const cases: [string, () => Backend, BackendProtocol, object, string][] = [
    ["h2c backend (h2)", () => h2c, "h2", {}, "h2c"],
    ["HTTP/1.1 backend (http1)", () => h1, "http1", {}, "http1"],
    ["h2c backend found by auto probe", () => h2c, "auto", {}, "h2c"],
    ["HTTP/1.1 backend found by auto probe", () => h1, "auto", {}, "http1"],
    ["TLS HTTP/1.1 backend", () => tlsH1, "http1", { backendTls: true }, "https1"],
    ["TLS h2 backend", () => tlsH2, "h2", { backendTls: true }, "h2tls"],
    ["TLS backend, auto picks h2 by ALPN", () => tlsH2, "auto", { backendTls: true }, "h2tls"],
    ["TLS HTTP/1.1 backend, auto by ALPN", () => tlsH1, "auto", { backendTls: true }, "https1"],
  ];
  for (const [name, backend, proto, over, label] of cases) {
    for (const front of ["--http2", "--http1.1"]) {
      test(`${front.slice(2)} client reaches ${name}: status, headers and body intact`, async () => {
        const p = proxyTo(backend(), proto, over);
        const r = await curl(p.port, "/hello", [front]);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(200);
        expect(r.httpVersion).toBe(front === "--http2" ? "2" : "1.1");
        expect(r.headers["x-backend"]).toBe(label);
        expect(r.headers["content-type"]).toBe("text/plain");
        expect(r.body).toBe(`hello from ${label}\n`);
      });
    }
  }
});

describe("bodies", () => {
  for (const front of ["--http2", "--http1.1"]) {
    for (const [name, b, proto] of [["h2c", () => h2c, "h2"], ["http1", () => h1, "http1"]] as const) {
      test(`1 MB response through ${front.slice(2)} → ${name} hashes equal`, async () => {
        const p = proxyTo(b(), proto);
        const out = path.join(tmp, `resp-${front}-${name}`);
        const r = await curl(p.port, "/bytes?n=1048576", [front, "-o", out]);
        expect(r.status).toBe(200);
        const got = createHash("sha256").update(fs.readFileSync(out)).digest("hex");
        expect(got).toBe(patternSha256(1048576));
      });

      test(`10 MB upload through ${front.slice(2)} → ${name} arrives intact`, async () => {
        const p = proxyTo(b(), proto);
        const file = path.join(tmp, "upload.bin");
        if (!fs.existsSync(file)) fs.writeFileSync(file, Buffer.from(Array.from({ length: 10 * 1024 * 1024 }, (_, i) => (i * 31 + 7) & 255)));
        const want = createHash("sha256").update(fs.readFileSync(file)).digest("hex");
        const r = await curl(p.port, "/upload", [front, "--data-binary", `@${file}`, "-H", "content-type: application/octet-stream"], 60);
        expect(r.status).toBe(200);
        const j = JSON.parse(r.body);
        expect(j.bytes).toBe(10 * 1024 * 1024);
        expect(j.sha256).toBe(want);
      });
    }
  }
});

describe("forwarding headers", () => {
  for (const front of ["--http2", "--http1.1"]) {
    for (const [name, b, proto] of [["h2c", () => h2c, "h2"], ["http1", () => h1, "http1"]] as const) {
      test(`${front.slice(2)} → ${name}: client-sent XFF/X-Real-IP/Forwarded are replaced by the real client address; hop-by-hop dropped; Host kept`, async () => {
        const p = proxyTo(b(), proto);
        const r = await curl(p.port, "/headers", [
          front,
          "-H", "X-Forwarded-For: 6.6.6.6",
          "-H", "X-Real-IP: 6.6.6.6",
          "-H", "X-Forwarded-Proto: http",
          "-H", "Forwarded: for=6.6.6.6",
          "-H", "X-Custom: kept",
          ...(front === "--http1.1" ? ["-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: drop-me", "-H", "Keep-Alive: timeout=5"] : []),
        ]);
        expect(r.status).toBe(200);
        const h = JSON.parse(r.body);
        expect(h["x-forwarded-for"]).toBe("127.0.0.1");
        expect(h["x-real-ip"]).toBe("127.0.0.1");
        expect(h["x-forwarded-proto"]).toBe("https");
        expect(h["forwarded"]).toBeUndefined();
        expect(h["x-custom"]).toBe("kept");
        expect(h["x-secret"]).toBeUndefined();
        expect(h["keep-alive"]).toBeUndefined();
        // Host (h1) or :authority (h2) carries the client's authority.
        expect(h["host"] ?? h[":authority"]).toBe(`a.test:${p.port}`);
      });
    }
  }
});

describe("backend TLS verification", () => {
  for (const [name, b, proto] of [["TLS HTTP/1.1", () => tlsH1, "http1"], ["TLS h2", () => tlsH2, "h2"]] as const) {
    test(`${name}: backend_tls_verify with the right CA and server name succeeds`, async () => {
      const p = proxyTo(b(), proto, { backendTls: true, backendTlsVerify: true, backendTlsCa: testPki().ca.certPath, backendTlsServerName: "backend.test" });
      const r = await curl(p.port, "/hello", ["--http2"]);
      expect(r.status).toBe(200);
    });

    test(`${name}: backend_tls_verify fails (502) when the name does not match the certificate`, async () => {
      const p = proxyTo(b(), proto, { backendTls: true, backendTlsVerify: true, backendTlsCa: testPki().ca.certPath, backendTlsServerName: "wrong.test" });
      const r = await curl(p.port, "/hello", ["--http2"]);
      expect(r.status).toBe(502);
    });

    test(`${name}: backend_tls_verify fails (502) against system roots for a private CA`, async () => {
      const p = proxyTo(b(), proto, { backendTls: true, backendTlsVerify: true, hostname: "backend.test" });
      const r = await curl(p.port, "/hello", ["--http2"]);
      expect(r.status).toBe(502);
    });

    test(`${name}: without backend_tls_verify an unverifiable backend is still reached`, async () => {
      const p = proxyTo(b(), proto, { backendTls: true, backendTlsServerName: "wrong.test" });
      const r = await curl(p.port, "/hello", ["--http2"]);
      expect(r.status).toBe(200);
    });
  }
});

describe("connection reuse", () => {
  test("h2c backend: many requests from several clients share one backend session", async () => {
    const b = await startH2cBackend();
    try {
      const p = proxyTo(b, "h2");
      for (let i = 0; i < 3; i++) {
        const r = await curl(p.port, "/hello", ["--http2", `https://a.test:${p.port}/hello`]);
        expect(r.status).toBe(200);
      }
      expect(b.seen.length).toBe(6);
      expect(b.connections).toBe(1);
    } finally {
      await b.stop();
    }
  });

  test("HTTP/1.1 backend: sequential requests reuse keep-alive connections", async () => {
    const b = await startH1Backend();
    try {
      const p = proxyTo(b, "http1");
      for (let i = 0; i < 4; i++) expect((await curl(p.port, "/hello", ["--http1.1"])).status).toBe(200);
      expect(b.seen.length).toBe(4);
      expect(b.connections).toBe(1);
    } finally {
      await b.stop();
    }
  });
});
