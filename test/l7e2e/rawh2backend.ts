/**
 * A raw h2c backend for hostile-backend tests: it speaks just enough HTTP/2
 * (preface, SETTINGS and their ACK, request HEADERS decoded with our HPACK
 * decoder) and lets each test write whatever frames it wants in answer —
 * content where none is allowed, GOAWAY with a low last-stream-id, and so
 * on. Frames are built with the src/l7/h2 writers (tested on their own).
 */
import type { Socket, TCPSocketListener } from "bun";
import { ByteWriter } from "../../src/l7/h2/bytes.ts";
import { FrameReader, H2_FLAG, H2_FRAME, parseData, parseHeaders, writeData, writeGoaway, writeHeaders, writeSettings, writeSettingsAck } from "../../src/l7/h2/frame.ts";
import { HpackDecoder, HpackEncoder } from "../../src/l7/h2/hpack.ts";

export interface RawH2Request {
  streamId: number;
  /** Decoded request fields, pseudo-headers included. */
  fields: readonly string[];
  path: string;
  /** The request body so far (latin1), and whether END_STREAM came. */
  body: string;
  ended: boolean;
}

/** What a test's handler can do with one connection. */
export class RawH2Conn {
  private readonly enc = new HpackEncoder({ huffman: "never" });
  /** Streams seen on this connection, in order. */
  readonly requests: RawH2Request[] = [];

  constructor(readonly socket: Socket<RawH2Conn>) {}

  /** Response HEADERS (":status" first). */
  headers(streamId: number, status: number, fields: string[], endStream: boolean): this {
    const w = new ByteWriter();
    this.enc.encode([":status", String(status), ...fields], w);
    const block = w.toBytes();
    const out = new ByteWriter();
    writeHeaders(out, streamId, block, endStream);
    this.socket.write(out.toBytes());
    return this;
  }

  /**
   * Response HEADERS with a header block built by the test (e.g. as nginx
   * encodes). The block must not name entries of the peer's table that our
   * encoder (headers()) inserted, nor may headers() follow on this connection
   * if the block inserted any: our encoder would not know of them.
   */
  block(streamId: number, block: Uint8Array, endStream: boolean): this {
    const out = new ByteWriter();
    writeHeaders(out, streamId, block, endStream);
    this.socket.write(out.toBytes());
    return this;
  }

  data(streamId: number, body: string | Uint8Array, endStream: boolean): this {
    const out = new ByteWriter();
    writeData(out, streamId, typeof body === "string" ? new TextEncoder().encode(body) : body, endStream);
    this.socket.write(out.toBytes());
    return this;
  }

  goaway(lastStreamId: number, code = 0): this {
    const out = new ByteWriter();
    writeGoaway(out, lastStreamId, code);
    this.socket.write(out.toBytes());
    return this;
  }
}

export interface RawH2Backend {
  port: number;
  /** Connections accepted so far. */
  conns: RawH2Conn[];
  stop(): void;
}

/**
 * Starts the backend; `onRequest` answers each request HEADERS (any frames, or
 * none); `onEnd`, when given, runs when a request's END_STREAM arrives (on its
 * HEADERS or a DATA frame), with its body.
 */
export function startRawH2Backend(
  onRequest: (c: RawH2Conn, r: RawH2Request) => void,
  onEnd?: (c: RawH2Conn, r: RawH2Request) => void,
  /** SETTINGS parameters it announces, [id, value, …] (none by default). */
  settings: readonly number[] = [],
): RawH2Backend {
  const conns: RawH2Conn[] = [];
  const state = new WeakMap<RawH2Conn, { reader: FrameReader; dec: HpackDecoder }>();
  const listener: TCPSocketListener<RawH2Conn> = Bun.listen<RawH2Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        const c = new RawH2Conn(s);
        s.data = c;
        conns.push(c);
        state.set(c, { reader: new FrameReader({ expectPreface: true }), dec: new HpackDecoder() });
        const out = new ByteWriter();
        writeSettings(out, settings);
        s.write(out.toBytes());
      },
      data(s, chunk) {
        const c = s.data;
        const st = state.get(c)!;
        st.reader.push(chunk);
        for (;;) {
          const f = st.reader.next();
          if (f === null || !("type" in f)) return;
          if (f.type === H2_FRAME.SETTINGS && (f.flags & 1) === 0) {
            const out = new ByteWriter();
            writeSettingsAck(out);
            s.write(out.toBytes());
          } else if (f.type === H2_FRAME.HEADERS) {
            const h = parseHeaders(f);
            if (!("buf" in h)) return;
            const list = st.dec.decode(h.buf, h.start, h.end);
            if (!("fields" in list)) return;
            const fields = list.fields;
            const i = fields.indexOf(":path");
            const r: RawH2Request = { streamId: f.streamId, fields, path: i >= 0 ? fields[i + 1]! : "", body: "", ended: (f.flags & H2_FLAG.END_STREAM) !== 0 };
            c.requests.push(r);
            onRequest(c, r);
            if (r.ended) onEnd?.(c, r);
          } else if (f.type === H2_FRAME.DATA) {
            const d = parseData(f);
            const r = c.requests.find((q) => q.streamId === f.streamId);
            if (!("buf" in d) || r === undefined) continue;
            r.body += Buffer.from(d.buf.subarray(d.start, d.end)).toString("latin1");
            if (d.endStream) {
              r.ended = true;
              onEnd?.(c, r);
            }
          }
        }
      },
      error() {},
    },
  });
  return { port: listener.port, conns, stop: () => listener.stop(true) };
}
