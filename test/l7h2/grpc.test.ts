/**
 * gRPC through the REAL server (subprocess; the compiled binary when built):
 * @grpc/grpc-js client (TLS, SNI a.test, test CA) → mc-proxy L7 route (our
 * HTTP/2 session on the front) → h2c backend. Two parts:
 *
 *  1. the shared suite (test/helpers/grpc-suite.ts): unary, server-, client-
 *     and bidi-streaming, a non-ASCII grpc-message with trailer metadata
 *     (incl. -bin), cancellation seen by the backend, grpc-timeout forwarded,
 *     backend_protocol auto;
 *  2. here: 4 MiB messages both ways, custom trailers on an OK call,
 *     trailers-only responses (one HEADERS with END_STREAM, checked on the
 *     wire), grpc-message percent-encoded on the wire and byte-identical
 *     through the proxy, DEADLINE_EXCEEDED when the backend is slow (and the
 *     backend sees the call cancelled), a client cancel arriving at the
 *     backend as RST_STREAM(CANCEL), and a backend reset reaching the client
 *     (before the response head: UNAVAILABLE from the 502; after: INTERNAL
 *     from the reset stream).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import tls from "node:tls";
import { H2_ERROR } from "../../src/l7/h2/errors.ts";
import { H2Session } from "../../src/l7/h2/session.ts";
import { defineGrpcSuite } from "../helpers/grpc-suite.ts";
import { killAllServers, type ServerProc } from "../helpers/subprocess.ts";
import { HOST, testPki, waitFor } from "../l7/harness.ts";
import { proxyBinary, startRouteProc } from "./proc.ts";

setDefaultTimeout(60_000);

const procs: ServerProc[] = [];

defineGrpcSuite(`gRPC through the real server subprocess (${proxyBinary() ? "compiled binary" : "source"}), h2c grpc-js backend`, {
  async start(backend, backendProtocol) {
    const p = await startRouteProc({ hostname: HOST, backend, backendProtocol });
    procs.push(p);
    return { port: p.port(), stop: () => p.stop().then(() => {}) };
  },
  teardown: () => killAllServers(),
});

// ---------------------------------------------------------------- part 2

type Msg = { text: string; n?: number };
const ser = (v: Msg) => Buffer.from(JSON.stringify(v));
const des = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const method = (name: string, requestStream = false, responseStream = false) => ({
  path: `/mcproxy.test.More/${name}`,
  requestStream,
  responseStream,
  requestSerialize: ser,
  requestDeserialize: des,
  responseSerialize: ser,
  responseDeserialize: des,
});
const service = {
  big: method("Big"),
  trailers: method("Trailers"),
  trailersOnly: method("TrailersOnly"),
  slow: method("Slow"),
  hold: method("Hold", false, true),
} satisfies grpc.ServiceDefinition;

const FOUR_MIB = 4 * 1024 * 1024;
/** Needs percent-encoding three ways: non-ASCII, '%' itself, and control characters. */
const MESSAGE = "quota dépassée: 100% — 配额 ✗\nline two";

let server: grpc.Server;
let proc: ServerProc;
let rawProc: ServerProc;
let client: grpc.Client & Record<string, Function>;
let slowCancelled = false;
let holdCancelled = false;

/**
 * A gRPC-speaking h2c backend on our own H2Session (its resets are exact RST_STREAM frames;
 * Bun's node:http2 server turns stream.close(code) into a clean END_STREAM): …/ResetBefore
 * (RST INTERNAL_ERROR before any head), …/ResetAfter (head + one message, then RST
 * INTERNAL_ERROR), …/Hold (head + one message, records the RST code it gets),
 * …/TrailersOnly (one HEADERS with END_STREAM: status 200, grpc-status 5, grpc-message).
 */
let rawBackend: { port: number; stop(): void };
let grpcBackendPort = 0;
let heldRstCode: number | null = null;

function dial(port: number): grpc.Client & Record<string, Function> {
  const Ctor = grpc.makeGenericClientConstructor(service, "More");
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(testPki().ca.certPem)), {
    "grpc.ssl_target_name_override": HOST,
    "grpc.default_authority": HOST,
    "grpc.max_receive_message_length": 8 * 1024 * 1024,
    "grpc.max_send_message_length": 8 * 1024 * 1024,
  }) as unknown as grpc.Client & Record<string, Function>;
}

function unary(name: string, req: Msg, opts: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; res?: Msg; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = client[name](req, new grpc.Metadata(), opts, (err: grpc.ServiceError | null, res?: Msg) => {
      // 'status' comes before the callback in grpc-js; wait a tick to be sure.
      setImmediate(() => resolve({ err, res, trailers }));
    });
    call.on("status", (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

/** One gRPC call over a raw node:http2 TLS client, to see the wire: response headers, flags, trailers. */
function rawGrpc(port: number, path: string): Promise<{ headers: http2.IncomingHttpHeaders; endAfterHeaders: boolean; trailers: http2.IncomingHttpHeaders | null; body: number }> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://${HOST}:${port}`, {
      createConnection: () => tls.connect({ host: "127.0.0.1", port, servername: HOST, ca: testPki().ca.certPem, ALPNProtocols: ["h2"] }),
    });
    s.on("error", reject);
    const req = s.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const body = ser({ text: "x" });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    req.end(frame);
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    let n = 0;
    let endAfterHeaders = false;
    req.on("response", (h, flags) => {
      headers = h;
      endAfterHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (d: Buffer) => (n += d.length));
    req.on("error", reject);
    req.on("close", () => {
      resolve({ headers, endAfterHeaders, trailers, body: n });
      s.close();
    });
  });
}

beforeAll(async () => {
  server = new grpc.Server({ "grpc.max_receive_message_length": 8 * 1024 * 1024, "grpc.max_send_message_length": 8 * 1024 * 1024 });
  server.addService(service, {
    big: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      cb(null, { text: call.request.text.split("").reverse().join(""), n: call.request.text.length });
    },
    trailers: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const head = new grpc.Metadata();
      head.set("x-head", "h1");
      call.sendMetadata(head);
      const t = new grpc.Metadata();
      t.set("x-trailer", "t1");
      t.set("x-trailer-bin", Buffer.from([0xff, 0x00, 0x80, 0x7f]));
      cb(null, { text: "ok" }, t);
    },
    trailersOnly: (_call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const md = new grpc.Metadata();
      md.set("x-why", "no-such-thing");
      cb({ code: grpc.status.NOT_FOUND, details: MESSAGE, metadata: md });
    },
    slow: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      call.on("cancelled", () => (slowCancelled = true));
      setTimeout(() => {
        if (!call.cancelled) cb(null, { text: "late" });
      }, 3000);
    },
    hold: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      call.on("cancelled", () => (holdCancelled = true));
      call.write({ text: "first" });
    },
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  grpcBackendPort = grpcPort;
  proc = await startRouteProc({ hostname: HOST, backend: `127.0.0.1:${grpcPort}`, backendProtocol: "h2" });
  client = dial(proc.port());

  rawBackend = startSessionBackend();
  rawProc = await startRouteProc({ hostname: HOST, backend: `127.0.0.1:${rawBackend.port}`, backendProtocol: "h2" });
});

afterAll(async () => {
  client?.close();
  await proc?.stop();
  await rawProc?.stop();
  for (const p of procs) p.cleanup();
  killAllServers();
  server?.forceShutdown();
  rawBackend?.stop();
});

describe("gRPC edge cases through the real server", () => {
  test("4 MiB request and 4 MiB response arrive intact", async () => {
    const big = Array.from({ length: FOUR_MIB }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
    const r = await unary("big", { text: big });
    expect(r.err).toBeNull();
    expect(r.res?.n).toBe(FOUR_MIB);
    expect(r.res?.text.length).toBe(FOUR_MIB);
    expect(r.res?.text).toBe(big.split("").reverse().join(""));
  });

  test("an OK call's custom trailers (text and -bin) and initial metadata reach the client", async () => {
    const md = await new Promise<{ head: grpc.Metadata; status: grpc.StatusObject; res: Msg }>((resolve, reject) => {
      let head: grpc.Metadata | null = null;
      let status: grpc.StatusObject | null = null;
      let res: Msg | null = null;
      const done = () => head && status && res && resolve({ head, status, res });
      const call = client.trailers({ text: "" }, (err: grpc.ServiceError | null, r: Msg) => {
        if (err) return reject(err);
        res = r;
        done();
      });
      call.on("metadata", (m: grpc.Metadata) => {
        head = m;
        done();
      });
      call.on("status", (s: grpc.StatusObject) => {
        status = s;
        done();
      });
    });
    expect(md.res.text).toBe("ok");
    expect(md.head.get("x-head")).toEqual(["h1"]);
    expect(md.status.code).toBe(grpc.status.OK);
    expect(md.status.metadata.get("x-trailer")).toEqual(["t1"]);
    expect(md.status.metadata.get("x-trailer-bin")).toEqual([Buffer.from([0xff, 0x00, 0x80, 0x7f])]);
  });

  test("trailers-only error: status, non-ASCII message and metadata reach grpc-js", async () => {
    const r = await unary("trailersOnly", { text: "" });
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe(MESSAGE);
    expect(r.err?.metadata.get("x-why")).toEqual(["no-such-thing"]);
  });

  test("on the wire: a trailers-only response stays one HEADERS with END_STREAM, grpc-message byte-identical (percent-encoded)", async () => {
    const w = await rawGrpc(rawProc.port(), "/mcproxy.test.More/TrailersOnly");
    expect(Number(w.headers[":status"])).toBe(200);
    expect(w.endAfterHeaders).toBe(true);
    expect(w.trailers).toBeNull();
    expect(w.body).toBe(0);
    expect(w.headers["grpc-status"]).toBe("5");
    const enc = String(w.headers["grpc-message"]);
    expect(enc).toBe(ENCODED);
    expect(enc).toMatch(/^[\x20-\x7e]+$/); // percent-encoded: printable ASCII only
    expect(enc).toContain("%25"); // the '%' itself
    expect(decodeURIComponent(enc)).toBe(MESSAGE);
    // And grpc-js decodes it.
    const c = dialRaw(rawProc.port());
    try {
      const e = await new Promise<grpc.ServiceError | null>((resolve) => c.trailersOnly({ text: "" }, (err: grpc.ServiceError | null) => resolve(err)));
      expect(e?.code).toBe(grpc.status.NOT_FOUND);
      expect(e?.details).toBe(MESSAGE);
    } finally {
      c.close();
    }
  });

  test("a slow backend: DEADLINE_EXCEEDED at the client, and the backend sees the call cancelled", async () => {
    slowCancelled = false;
    const t0 = Date.now();
    const r = await unary("slow", { text: "" }, { deadline: Date.now() + 500 });
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(await waitFor(() => slowCancelled, 5000)).toBe(true);
  });

  test("a client cancel reaches the backend as RST_STREAM(CANCEL)", async () => {
    holdCancelled = false;
    heldRstCode = null;
    // grpc-js backend: sees 'cancelled'.
    await new Promise<void>((resolve) => {
      const call = client.hold({ text: "" });
      call.on("data", () => call.cancel());
      call.on("error", (e: grpc.ServiceError) => {
        expect(e.code).toBe(grpc.status.CANCELLED);
        resolve();
      });
    });
    expect(await waitFor(() => holdCancelled, 5000)).toBe(true);
    // Raw backend: the RST_STREAM code it got.
    const c = dialRaw(rawProc.port());
    await new Promise<void>((resolve) => {
      const call = c.hold({ text: "" });
      call.on("data", () => call.cancel());
      call.on("error", () => resolve());
    });
    c.close();
    expect(await waitFor(() => heldRstCode !== null, 5000)).toBe(true);
    expect(heldRstCode as number | null).toBe(H2_ERROR.CANCEL);
  });

  test("a backend reset reaches the client: before the response head UNAVAILABLE (502), after it INTERNAL (reset stream)", async () => {
    const c = dialRaw(rawProc.port());
    try {
      const before = await new Promise<grpc.ServiceError | null>((resolve) => c.resetBefore({ text: "" }, (e: grpc.ServiceError | null) => resolve(e)));
      expect(before?.code).toBe(grpc.status.UNAVAILABLE);
      const got: string[] = [];
      const after = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = c.resetAfter({ text: "" });
        call.on("data", (m: Msg) => got.push(m.text));
        call.on("error", (e: grpc.ServiceError) => resolve(e));
        call.on("end", () => resolve(null));
      });
      expect(got).toEqual(["first"]);
      expect(after?.code).toBe(grpc.status.INTERNAL);
    } finally {
      c.close();
    }
  });

  test("a node:http2 backend that closes a stream before answering: the client gets 502 (UNAVAILABLE), not a hang", async () => {
    // Bun's node:http2 server sends no RST code for stream.close() before respond(): its client reports a clean end with no head.
    const be = http2.createServer();
    be.on("stream", (st: http2.ServerHttp2Stream) => {
      st.on("error", () => {});
      st.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    await new Promise<void>((r) => be.listen(0, "127.0.0.1", () => r()));
    const p = await startRouteProc({ hostname: HOST, backend: `127.0.0.1:${(be.address() as import("node:net").AddressInfo).port}`, backendProtocol: "h2" });
    const c = dialRaw(p.port());
    try {
      const e = await new Promise<grpc.ServiceError | null>((resolve) => c.resetBefore({ text: "" }, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err)));
      expect(e?.code).toBe(grpc.status.UNAVAILABLE);
      const w = await rawGrpc(p.port(), "/mcproxy.test.More/Anything");
      expect(Number(w.headers[":status"])).toBe(502);
    } finally {
      c.close();
      await p.stop();
      await new Promise<void>((r) => be.close(() => r()));
    }
  });
});

/** A client for the raw backend's methods (same JSON codec). */
function dialRaw(port: number): grpc.Client & Record<string, Function> {
  const raw = {
    resetBefore: { ...method("ResetBefore") },
    resetAfter: { ...method("ResetAfter", false, true) },
    hold: { ...method("Hold", false, true) },
    trailersOnly: { ...method("TrailersOnly") },
  } satisfies grpc.ServiceDefinition;
  const Ctor = grpc.makeGenericClientConstructor(raw, "Raw");
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(testPki().ca.certPem)), {
    "grpc.ssl_target_name_override": HOST,
    "grpc.default_authority": HOST,
  }) as unknown as grpc.Client & Record<string, Function>;
}

/** gRPC's percent-encoding (PROTOCOL-HTTP2.md): UTF-8 bytes outside 0x20–0x7E, and '%', as %XX. */
function grpcPercentEncode(m: string): string {
  let out = "";
  for (const b of Buffer.from(m)) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}
const ENCODED = grpcPercentEncode(MESSAGE);

function grpcFrame(m: Msg): Buffer {
  const body = ser(m);
  const f = Buffer.alloc(5 + body.length);
  f.writeUInt32BE(body.length, 1);
  body.copy(f, 5);
  return f;
}

function startSessionBackend(): { port: number; stop(): void } {
  const sessions = new Set<H2Session>();
  const listener = Bun.listen<{ session: H2Session | null }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        const session = new H2Session(
          { writeRange: (d, o, n) => socket.write(d, o, n), shutdown: () => socket.shutdown(), terminate: () => socket.terminate() },
          {
            role: "server",
            onStream(stream) {
              stream.onData = (c) => stream.consumed(c.length);
              const path = stream.head?.path ?? "";
              if (path.endsWith("/ResetBefore")) return stream.reset(H2_ERROR.INTERNAL_ERROR);
              if (path.endsWith("/TrailersOnly")) {
                return stream.respond(200, ["content-type", "application/grpc", "grpc-status", "5", "grpc-message", ENCODED], true);
              }
              stream.respond(200, ["content-type", "application/grpc"]);
              stream.write(grpcFrame({ text: "first" }));
              if (path.endsWith("/ResetAfter")) setTimeout(() => stream.reset(H2_ERROR.INTERNAL_ERROR), 100);
              else stream.onReset = (code) => (heldRstCode = code);
            },
            onClose: () => sessions.delete(session),
          },
        );
        sessions.add(session);
        socket.data = { session };
      },
      data: (socket, chunk) => socket.data.session?.receive(chunk),
      drain: (socket) => socket.data.session?.drained(),
      close: (socket, err) => socket.data.session?.transportClosed(err ?? undefined),
      error: (socket, err) => socket.data.session?.transportClosed(err),
    },
  });
  return { port: listener.port, stop: () => listener.stop(true) };
}
