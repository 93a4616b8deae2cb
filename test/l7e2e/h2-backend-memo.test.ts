/**
 * Repeated requests and responses on an HTTP/2 backend reuse what was built
 * for them last time: the request's field list (forward.ts h2RequestFields),
 * the decoded response head when its block repeats (HpackDecoder's memo,
 * including blocks that insert into the table every time as nginx's do), its
 * validation (H2Session) and the client's fields (ClientFieldsMemo). Each
 * request and response here must still arrive as its own: a changed value,
 * path, method, body or status is never answered from a stale memo, and the
 * HPACK table stays in step (a later response decodes right).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cleanupCerts, h2Session, e2ePki, killAllServers, route, startProxy, type ServerProc } from "./e2e.ts";
import { startRawH2Backend, type RawH2Backend } from "./rawh2backend.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
/** nginx 1.22's HEADERS block for a 100-byte static file: server, date, content-type, content-length, last-modified inserted into the table each time. */
const NGINX = hex(
  "887689aa6355e580ae212e1f6196d07abe9403aa5f29141004e2816ae041702d298b46ff5f901d75d0620d263d4c1c892a56426c28e95c033130306c96d07abe9403aa5f29141004e2810dc086e36ea98b46ff008919085ad2b583aa62a3848fd24a8f",
);
/** `:status` (indexed: 0x88 = 200, 0x89 = 204), then x-r: `v` as a literal with incremental indexing (new name), and content-length when given (static name 28, indexed too). */
function block(status: 0x88 | 0x89, v: string, contentLength?: string): Uint8Array {
  const out = [status, 0x40, 3, ...Buffer.from("x-r"), v.length, ...Buffer.from(v)];
  if (contentLength !== undefined) out.push(0x40 | 28, contentLength.length, ...Buffer.from(contentLength));
  return Uint8Array.from(out);
}

let be: RawH2Backend;
let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  be = startRawH2Backend(
    () => {},
    (c, r) => {
      const id = r.streamId;
      if (r.path === "/ng") c.block(id, NGINX, false).data(id, "n".repeat(100), true);
      else if (r.path === "/x-204") c.block(id, block(0x89, "n"), true);
      // Names the oldest entry after 3 × nginx's 5 insertions and /x-a's 2: nginx's first "server" is
      // there only if the repeated blocks' insertions were replayed (else a COMPRESSION_ERROR, 502).
      else if (r.path === "/x-dyn") c.block(id, Uint8Array.from([0x88, 0x80 | (62 + 16)]), false).data(id, "d", true);
      else {
        const v = r.path === "/x-a" ? "a" : `b${r.body}`;
        c.block(id, block(0x88, v, String(v.length)), false).data(id, v, true);
      }
    },
  );
  p = await startProxy([route({ backend: `127.0.0.1:${be.port}`, backendProtocol: "h2" })], ["workers = 1"]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  be?.stop();
  killAllServers();
  cleanupCerts();
});

interface Got {
  status: number;
  xr: string | undefined;
  length: string | undefined;
  server: string | undefined;
  body: string;
}

test("one HTTP/2 connection, requests and responses that repeat and change: each arrives as its own, both ways", async () => {
  const s = h2Session(port);
  const one = (method: string, path: string, xv: string, body?: string) =>
    new Promise<Got>((resolve, reject) => {
      const req = s.request({ ":method": method, ":path": path, "x-v": xv, ...(body !== undefined ? { "content-length": String(body.length) } : {}) });
      const got: Got = { status: 0, xr: undefined, length: undefined, server: undefined, body: "" };
      req.on("response", (h) => {
        got.status = Number(h[":status"]);
        got.xr = h["x-r"] as string | undefined;
        got.length = h["content-length"] as string | undefined;
        got.server = h["server"] as string | undefined;
      });
      req.setEncoding("latin1");
      req.on("data", (d: string) => (got.body += d));
      req.on("end", () => resolve(got));
      req.on("error", reject);
      req.end(body);
    });
  const steps: [string, string, string, string | undefined][] = [
    ["GET", "/ng", "1", undefined],
    ["GET", "/ng", "1", undefined],
    ["GET", "/ng", "1", undefined],
    ["GET", "/x-a", "1", undefined],
    ["GET", "/x-dyn", "1", undefined],
    ["GET", "/x-a", "1", undefined],
    ["GET", "/x-a", "2", undefined], // only a field's value changed
    ["GET", "/x-b", "1", undefined],
    ["GET", "/x-a", "2", undefined],
    ["GET", "/x-204", "2", undefined],
    ["GET", "/x-a", "2", undefined],
    ["POST", "/x-b", "2", "hello"],
    ["POST", "/x-b", "2", "hellp"],
    ["GET", "/ng", "3", undefined],
    ["GET", "/x-a", "3", undefined],
  ];
  const got: Got[] = [];
  try {
    for (const [m, path, xv, body] of steps) got.push(await one(m, path, xv, body));
  } finally {
    s.close();
  }
  const summary = got.map((g) => `${g.status} ${g.xr ?? "-"} ${g.length ?? "-"} ${g.server ?? "-"} ${g.body.length > 12 ? `${g.body.length}B` : g.body}`);
  expect(summary).toEqual([
    "200 - 100 nginx/1.22.1 100B",
    "200 - 100 nginx/1.22.1 100B",
    "200 - 100 nginx/1.22.1 100B",
    "200 a 1 - a",
    "200 - - nginx/1.22.1 d",
    "200 a 1 - a",
    "200 a 1 - a",
    "200 b 1 - b",
    "200 a 1 - a",
    "204 n - - ", // no content-length in a 204
    "200 a 1 - a",
    "200 bhello 6 - bhello",
    "200 bhellp 6 - bhellp",
    "200 - 100 nginx/1.22.1 100B",
    "200 a 1 - a",
  ]);
  // What the backend saw: each request's own method, path, x-v and framing, with our forwarding fields.
  const seen = be.conns.flatMap((c) => c.requests);
  const f = (fields: readonly string[], name: string) => {
    const i = fields.indexOf(name);
    return i >= 0 ? fields[i + 1] : "-";
  };
  expect(seen.map((r) => `${f(r.fields, ":method")} ${r.path} ${f(r.fields, "x-v")} ${f(r.fields, "content-length")} ${r.body}`.trim())).toEqual(
    steps.map(([m, path, xv, body]) => `${m} ${path} ${xv} ${body === undefined ? "-" : String(body.length)} ${body ?? ""}`.trim()),
  );
  for (const r of seen) {
    expect(f(r.fields, "x-forwarded-for")).toBe("127.0.0.1");
    expect(f(r.fields, ":authority")).toBe(`a.test:${port}`);
  }
});
