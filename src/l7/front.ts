/**
 * The client-facing side of the L7 proxy: adapters that let `forward` answer
 * over an HTTP/2 stream or an HTTP/1.1 response, and the request handlers the
 * shared node:http2 / node:http servers call.
 */
import http2 from "node:http2";
import type http from "node:http";
import type { L7Conn } from "./context.ts";
import type { HeaderMap } from "./headers.ts";
import { forward, type Front } from "./proxy.ts";

const { NGHTTP2_FLAG_END_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** Where the handler stores the L7Conn on the TLS socket (HTTP/1.1) and the session (HTTP/2). */
export const kConn = Symbol("mc-proxy.l7conn");

const EMPTY: HeaderMap = {};

class H2Front implements Front {
  readonly protocol = "h2";
  headSent = false;
  private trailers: HeaderMap | null = null;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    /** The client announced `te: trailers` (gRPC does): keep the stream open for trailers. */
    private readonly wantsTrailers: boolean,
  ) {}

  get body(): http2.ServerHttp2Stream {
    return this.stream;
  }

  head(status: number, headers: HeaderMap, endStream: boolean): void {
    const s = this.stream;
    if (s.destroyed || s.closed) return;
    headers[":status"] = status;
    const waitForTrailers = this.wantsTrailers && !endStream;
    try {
      s.respond(headers as http2.OutgoingHttpHeaders, { endStream, waitForTrailers });
    } catch {
      // Headers node:http2 refuses (invalid values): the response cannot be relayed.
      this.abort();
      return;
    }
    this.headSent = true;
    if (waitForTrailers) s.once("wantTrailers", () => s.sendTrailers((this.trailers ?? EMPTY) as http2.OutgoingHttpHeaders));
  }

  setTrailers(t: HeaderMap): void {
    this.trailers = t;
  }

  fail(status: number, text: string): void {
    const s = this.stream;
    if (this.headSent || s.destroyed || s.closed || s.headersSent) return;
    this.headSent = true;
    s.respond({ ":status": status, "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
    s.end(text);
  }

  abort(): void {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }
}

class H1Front implements Front {
  readonly protocol = "http1";

  constructor(private readonly res: http.ServerResponse) {}

  get headSent(): boolean {
    return this.res.headersSent;
  }

  get body(): http.ServerResponse {
    return this.res;
  }

  head(status: number, headers: HeaderMap, endStream: boolean): void {
    try {
      this.res.writeHead(status, headers as http.OutgoingHttpHeaders);
    } catch {
      this.abort();
      return;
    }
    if (endStream) this.res.end();
  }

  setTrailers(t: HeaderMap): void {
    try {
      this.res.addTrailers(t as http.OutgoingHttpHeaders);
    } catch {
      // Trailers need chunked encoding; a fixed-length response drops them.
    }
  }

  fail(status: number, text: string): void {
    if (this.res.headersSent) return this.abort();
    this.res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
    this.res.end(text);
  }

  abort(): void {
    this.res.destroy();
  }
}

/**
 * node:http2 'stream' handler: one HTTP/2 request from a client. The
 * exchange starts on the next turn of the event loop, and only if the client
 * has not reset the stream by then.
 */
export function onH2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void {
  // Rapid reset (CVE-2023-44487): an attacker writes HEADERS + RST_STREAM
  // pairs back to back. Bun emits 'stream' before it parses the RST that sits
  // in the same read, so starting at once would send every one of them to
  // the backend (measured: 1000 backend requests before Bun's own reset cap
  // sends GOAWAY). One setImmediate lets the parser see the RST first.
  setImmediate(startH2Stream, stream, headers, flags);
  // A stream torn down with its session (GOAWAY, reset) emits 'error'; with
  // no listener Bun prints an uncaught error per stream. 'close' cleans up.
  stream.on("error", ignore);
}

function ignore(): void {}

function startH2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void {
  if (stream.destroyed || stream.closed || stream.aborted) return;
  const conn = (stream.session as unknown as Record<symbol, L7Conn | undefined> | undefined)?.[kConn];
  if (!conn) {
    stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const noBody = (flags & NGHTTP2_FLAG_END_STREAM) !== 0 || stream.endAfterHeaders === true;
  if (noBody) stream.resume();
  const te = headers["te"];
  const front = new H2Front(stream, te === "trailers");
  const ex = forward(
    conn,
    front,
    headers[":method"] ?? "GET",
    headers[":path"] ?? "/",
    headers[":authority"] ?? headers["host"],
    headers as HeaderMap,
    noBody ? null : stream,
  );
  // Bun reports a client RST_STREAM as 'aborted' ('close' then shows rstCode 0): cancel on either.
  stream.once("aborted", () => ex.clientGone());
  stream.once("close", () => {
    ex.clientGone();
    ex.logDone();
  });
}

/** node:http 'request' handler: one HTTP/1.1 request from a client. */
export function onH1Request(req: http.IncomingMessage, res: http.ServerResponse): void {
  const conn = (req.socket as unknown as Record<symbol, L7Conn | undefined>)[kConn];
  if (!conn) {
    res.destroy();
    return;
  }
  const h = req.headers;
  const cl = h["content-length"];
  const hasBody = (cl !== undefined && cl !== "0") || h["transfer-encoding"] !== undefined;
  const ex = forward(conn, new H1Front(res), req.method ?? "GET", req.url ?? "/", h["host"], h as HeaderMap, hasBody ? req : null);
  res.once("close", () => {
    if (!res.writableFinished) ex.clientGone();
    ex.logDone();
  });
}
