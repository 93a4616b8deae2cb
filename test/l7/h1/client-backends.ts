/** Test backends and helpers for the HTTP/1.1 backend client tests (real sockets on 127.0.0.1). */
import type { Socket, TCPSocketListener } from "bun";
import type { BackendTarget, BackendTls } from "../../../src/l7/backend/target.ts";
import { ChunkedDecoder, LengthDecoder, type RequestHead, parseRequestHead, serializeRequestHead } from "../../../src/l7/h1/codec.ts";
import type { BackendError, H1Exchange, H1Pool, RequestBody, ResponseSink } from "../../../src/l7/h1/client.ts";
import type { ResponseHead } from "../../../src/l7/h1/head.ts";

export function target(port: number, tls: BackendTls | null = null): BackendTarget {
  const addrKey = `127.0.0.1|${port}|${tls ? "tls" : "clear"}`;
  return {
    key: `${addrKey}|http1|${tls ? `${tls.servername}|${tls.rejectUnauthorized}|${tls.ca ?? ""}` : ""}`,
    addrKey,
    host: "127.0.0.1",
    port,
    tls,
    protocol: "http1",
    defaultAuthority: "b.test",
    dial: { answered: false },
  };
}

export function head(method: string, path: string, fields: string[] = []): Uint8Array {
  const h = serializeRequestHead(method, path, ["host", "b.test", ...fields]);
  if (!(h instanceof Uint8Array)) throw new Error(`bad head: ${h.reason}`);
  return h;
}

export interface Result {
  head: ResponseHead | null;
  body: Buffer;
  trailers: string[] | null;
  error: BackendError | null;
  /** Order of callbacks, for contract checks. */
  events: string[];
}

/** A sink that records everything; `onData` may be replaced to test backpressure. */
export function collector(onData?: (chunk: Uint8Array, r: Result) => boolean, onWritable?: () => void): { sink: ResponseSink; result: Result; done: Promise<Result> } {
  const result: Result = { head: null, body: Buffer.alloc(0), trailers: null, error: null, events: [] };
  const parts: Buffer[] = [];
  let resolve!: (r: Result) => void;
  const done = new Promise<Result>((r) => (resolve = r));
  const sink: ResponseSink = {
    onHead(h) {
      result.events.push(`head ${h.status}`);
      result.head = h;
    },
    onInformational(status, fields) {
      result.events.push(`info ${status} ${fields.join(" ")}`);
    },
    onData(buf, start, end) {
      const c = buf.subarray(start, end);
      parts.push(Buffer.from(c)); // copy: the bytes are only valid during the call
      return onData ? onData(c, result) : true;
    },
    onEnd(t) {
      result.events.push("end");
      result.body = Buffer.concat(parts);
      result.trailers = t;
      resolve(result);
    },
    onError(e) {
      result.events.push(`error ${e.kind}`);
      result.body = Buffer.concat(parts);
      result.error = e;
      resolve(result);
    },
    onWritable,
  };
  return { sink, result, done };
}

/** One request through the pool; resolves when it ends or fails. */
export function send(
  pool: H1Pool,
  t: BackendTarget,
  method: string,
  path = "/",
  opts: { fields?: string[]; body?: RequestBody; idempotent?: boolean; onData?: (c: Uint8Array, r: Result) => boolean; onWritable?: () => void } = {},
): { ex: H1Exchange; done: Promise<Result>; result: Result } {
  const { sink, done, result } = collector(opts.onData, opts.onWritable);
  const body = opts.body ?? { kind: "none" };
  const ex = pool.request(t, method, head(method, path, opts.fields), body, sink, opts.idempotent ?? (method === "GET" || method === "HEAD"));
  return { ex, done, result };
}

export interface ParsedRequest {
  head: RequestHead;
  body: Buffer;
  trailers: string[];
  /** Index of the connection (accept order) it arrived on. */
  conn: number;
}

export interface ConnState {
  index: number;
  socket: Socket<ConnState>;
  buf: Buffer;
  cur: { head: RequestHead; parts: Buffer[]; dec: LengthDecoder | ChunkedDecoder | null } | null;
  served: number;
  closed: boolean;
}

export interface TestBackend {
  port: number;
  server: TCPSocketListener<ConnState>;
  requests: ParsedRequest[];
  conns: ConnState[];
  stop(): void;
}

/**
 * An HTTP/1.1 backend on Bun.listen that parses requests with our codec and
 * answers each with `respond(req, conn)`: bytes to write (or null to write
 * nothing — the responder may write itself).
 */
export function startBackend(respond: (req: ParsedRequest, c: ConnState) => Uint8Array | string | null, tls?: { cert: string; key: string }): TestBackend {
  const requests: ParsedRequest[] = [];
  const conns: ConnState[] = [];
  const server = Bun.listen<ConnState>({
    hostname: "127.0.0.1",
    port: 0,
    tls,
    socket: {
      open(s) {
        const c: ConnState = { index: conns.length, socket: s, buf: Buffer.alloc(0), cur: null, served: 0, closed: false };
        conns.push(c);
        s.data = c;
      },
      data(s, d) {
        const c = s.data;
        c.buf = c.buf.length === 0 ? Buffer.from(d) : Buffer.concat([c.buf, d]);
        for (;;) {
          if (c.cur === null) {
            const h = parseRequestHead(c.buf, 0, c.buf.length);
            if (h.kind === "more") return;
            if (h.kind === "error") {
              s.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
              return;
            }
            c.buf = c.buf.subarray(h.length);
            const dec = h.framing === "length" ? new LengthDecoder(h.contentLength) : h.framing === "chunked" ? new ChunkedDecoder() : null;
            c.cur = { head: h, parts: [], dec };
          }
          const cur = c.cur;
          if (cur.dec !== null && !cur.dec.done) {
            const n = cur.dec.push(c.buf, 0, c.buf.length, (b, s, e) => cur.parts.push(Buffer.from(b.subarray(s, e))));
            if (typeof n !== "number") {
              s.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
              return;
            }
            c.buf = c.buf.subarray(n);
            if (!cur.dec.done) return;
          }
          c.cur = null;
          const req: ParsedRequest = {
            head: cur.head,
            body: Buffer.concat(cur.parts),
            trailers: cur.dec instanceof ChunkedDecoder ? cur.dec.trailers : [],
            conn: c.index,
          };
          requests.push(req);
          c.served++;
          const out = respond(req, c);
          if (out !== null) s.write(out);
          if (c.closed) return;
        }
      },
      close(s) {
        s.data.closed = true;
      },
      error() {},
    },
  });
  return { port: server.port, server, requests, conns, stop: () => server.stop(true) };
}

export function ok(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

/** A port nobody listens on (ECONNREFUSED). */
export function deadPort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

export { startBlackhole, synSentTo, type Blackhole } from "../../helpers/blackhole.ts";

export async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > until) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}
