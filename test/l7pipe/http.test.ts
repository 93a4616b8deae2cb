/**
 * L7 routes through the REAL pipeline (listener → ClientHello → route lookup
 * → TLS termination → h2/HTTP/1.1 front → backend), driven by curl: every
 * front protocol against an h2c, an HTTP/1.1-only and a TLS backend; bodies
 * hash equal; forwarding headers are set from the real client address.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProxy } from "../helpers/proxy.ts";
import { cleanupCerts } from "../fixtures/certs.ts";
import { patternChunk, patternSha256, startH1Backend, startH2cBackend, startTlsH1Backend, startTlsH2Backend, type Backend } from "../l7/backends.ts";
import { curl, testPki } from "../l7/harness.ts";
import { routeToml, startL7Proxy } from "./pipe.ts";

// bunfig's [test] timeout is not honoured by Bun 1.4.4: set it here (covers hooks too).
setDefaultTimeout(60_000);

let h2c: Backend, h1: Backend, tlsH1: Backend, tlsH2: Backend;
const proxies: TestProxy[] = [];
let tmp: string;
let upload: string;
const UPLOAD = 10 * 1024 * 1024;
const MB = 1024 * 1024;

async function proxyTo(backend: string, o: Parameters<typeof routeToml>[1] = {}, proxy: string[] = []): Promise<TestProxy> {
  const p = await startL7Proxy([routeToml(backend, o)], proxy);
  proxies.push(p);
  return p;
}

beforeAll(async () => {
  testPki();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mc-l7pipe-"));
  upload = path.join(tmp, "upload.bin");
  const fd = fs.openSync(upload, "w");
  for (let off = 0; off < UPLOAD; off += 65536) fs.writeSync(fd, patternChunk(off, 65536));
  fs.closeSync(fd);
  [h2c, h1, tlsH1, tlsH2] = await Promise.all([startH2cBackend(), startH1Backend(), startTlsH1Backend(), startTlsH2Backend()]);
});

afterAll(async () => {
  for (const p of proxies) await p.stop();
  await Promise.all([h2c, h1, tlsH1, tlsH2].map((b) => b?.stop()));
  fs.rmSync(tmp, { recursive: true, force: true });
  cleanupCerts();
});

describe("L7 route through the real server: front × backend", () => {
  const cases: [string, () => Backend, Parameters<typeof routeToml>[1], string][] = [
    ["an h2c backend (backend_protocol h2)", () => h2c, { backendProtocol: "h2" }, "h2c"],
    ["an h2c backend (backend_protocol auto)", () => h2c, { backendProtocol: "auto" }, "h2c"],
    ["an HTTP/1.1-only backend (auto)", () => h1, { backendProtocol: "auto" }, "http1"],
    ["a TLS HTTP/1.1 backend (backend_tls)", () => tlsH1, { backendTls: true }, "https1"],
    ["a TLS h2 backend (backend_tls, ALPN)", () => tlsH2, { backendTls: true }, "h2tls"],
  ];
  for (const [name, backend, opts, label] of cases) {
    describe(name, () => {
      let p: TestProxy;
      beforeAll(async () => {
        p = await proxyTo(backend().addr, opts);
      });
      for (const front of ["--http2", "--http1.1"]) {
        const fv = front === "--http2" ? "2" : "1.1";
        test(`HTTP/${fv} client: status, headers and body intact`, async () => {
          const r = await curl(p.port(), "/hello", [front]);
          expect(r.stderr).toBe("");
          expect(r.status).toBe(200);
          expect(r.httpVersion).toBe(fv);
          expect(r.headers["x-backend"]).toBe(label);
          expect(r.headers["x-multi"]).toBe("v1");
          expect(r.headers["content-type"]).toBe("text/plain");
          expect(r.body).toBe(`hello from ${label}\n`);
          const s = await curl(p.port(), "/status/418", [front]);
          expect(s.status).toBe(418);
          expect(s.body).toBe("status 418\n");
        });

        test(`HTTP/${fv} client: a 1 MB response hashes equal`, async () => {
          const q = Bun.spawn(
            ["bash", "-c", `set -o pipefail; curl -sS ${front} --max-time 60 --resolve a.test:${p.port()}:127.0.0.1 --cacert ${testPki().ca.certPath} https://a.test:${p.port()}/bytes?n=${MB} | sha256sum`],
            { stdout: "pipe", stderr: "pipe" },
          );
          const out = await new Response(q.stdout).text();
          expect(await q.exited).toBe(0);
          expect(out.split(" ")[0]).toBe(patternSha256(MB));
        });

        test(`HTTP/${fv} client: a 10 MB upload arrives intact`, async () => {
          const r = await curl(p.port(), "/upload", [front, "--data-binary", `@${upload}`, "-H", "content-type: application/octet-stream"], 60);
          expect(r.status).toBe(200);
          expect(JSON.parse(r.body)).toEqual({ sha256: patternSha256(UPLOAD), bytes: UPLOAD });
        });
      }
    });
  }
});

describe("forwarding headers come from the real client address", () => {
  for (const [name, b] of [["h2c", () => h2c], ["HTTP/1.1", () => h1]] as const) {
    for (const front of ["--http2", "--http1.1"]) {
      test(`client on 127.0.0.4 (${front.slice(2)} → ${name}): X-Forwarded-For and X-Real-IP are 127.0.0.4, a client-sent X-Forwarded-For is replaced`, async () => {
        const p = await proxyTo(b().addr, { backendProtocol: "auto" });
        const r = await curl(p.port(), "/headers", [front, "--interface", "127.0.0.4", "-H", "X-Forwarded-For: 6.6.6.6", "-H", "X-Real-IP: 6.6.6.6", "-H", "Forwarded: for=6.6.6.6"]);
        expect(r.status).toBe(200);
        const h = JSON.parse(r.body) as Record<string, string>;
        expect(h["x-forwarded-for"]).toBe("127.0.0.4");
        expect(h["x-real-ip"]).toBe("127.0.0.4");
        expect(h["x-forwarded-proto"]).toBe("https");
        expect(h["forwarded"]).toBeUndefined();
        expect(h[":authority"] ?? h["host"]).toStartWith("a.test");
      });
    }
  }
});
