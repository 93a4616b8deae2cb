/**
 * Test plumbing for the session engine: in-memory transports that can apply
 * backpressure, a connected client/server pair, and a "raw peer" that writes
 * hand-made frames and parses what the session writes back.
 */

import { ByteWriter } from "../../../src/l7/h2/bytes.ts";
import { H2Error } from "../../../src/l7/h2/errors.ts";
import {
  CLIENT_PREFACE,
  FrameReader,
  H2_FLAG,
  H2_FRAME,
  parseGoaway,
  parseRstStream,
  writeData,
  writeFrameHeader,
  writeHeaders,
  writePing,
  writeRstStream,
  writeSettings,
  writeSettingsAck,
  writeWindowUpdate,
  type H2Frame,
} from "../../../src/l7/h2/frame.ts";
import { HpackDecoder, HpackEncoder } from "../../../src/l7/h2/hpack.ts";
import { H2Session, type H2SessionOptions, type H2Transport } from "../../../src/l7/h2/session.ts";

/** A transport into memory. `budget` caps the bytes accepted until the test calls drain(). */
export class MemoryTransport implements H2Transport {
  budget = Infinity;
  ended: "" | "shutdown" | "terminate" = "";
  /** Copies of every accepted write. */
  readonly chunks: Uint8Array[] = [];
  writes = 0;
  /** Where accepted bytes go (asynchronously, like a socket). */
  deliver: ((chunk: Uint8Array) => void) | null = null;
  onDrainable: (() => void) | null = null;

  writeRange(data: Uint8Array, offset: number, length: number): number {
    if (this.ended) return -1;
    this.writes++;
    const n = Math.min(length, this.budget);
    if (n <= 0) return 0;
    this.budget -= n;
    const copy = data.slice(offset, offset + n);
    this.chunks.push(copy);
    const to = this.deliver;
    if (to) queueMicrotask(() => to(copy));
    return n;
  }
  shutdown(): void {
    this.ended = "shutdown";
  }
  terminate(): void {
    this.ended = "terminate";
  }
  /** Grants `bytes` more and tells the session it may write. */
  drain(bytes = Infinity): void {
    this.budget = bytes;
    this.onDrainable?.();
  }
  /** All bytes accepted so far, joined, and forgets them. */
  take(): Uint8Array {
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    this.chunks.length = 0;
    return all;
  }
}

/** Lets queued microtasks (deliveries, flushes) run to completion. */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export interface Pair {
  server: H2Session;
  client: H2Session;
  /** Client → server bytes. */
  up: MemoryTransport;
  /** Server → client bytes. */
  down: MemoryTransport;
}

/** A client and a server session wired together in memory. */
export function pair(serverOpts: Partial<H2SessionOptions> = {}, clientOpts: Partial<H2SessionOptions> = {}): Pair {
  const up = new MemoryTransport();
  const down = new MemoryTransport();
  const server = new H2Session(down, { ...serverOpts, role: "server" });
  const client = new H2Session(up, { ...clientOpts, role: "client" });
  up.deliver = (c) => server.receive(c);
  down.deliver = (c) => client.receive(c);
  up.onDrainable = () => client.drained();
  down.onDrainable = () => server.drained();
  return { server, client, up, down };
}

export const GET = [":method", "GET", ":scheme", "https", ":authority", "example.com", ":path", "/"];
export const POST = [":method", "POST", ":scheme", "https", ":authority", "example.com", ":path", "/upload"];

/** A peer that speaks frames by hand to a session, and reads what the session writes. */
export class RawPeer {
  readonly transport = new MemoryTransport();
  readonly session: H2Session;
  readonly encoder = new HpackEncoder();
  readonly decoder = new HpackDecoder();
  private readonly reader: FrameReader;
  /** Every frame the session wrote so far, in order. */
  readonly frames: H2Frame[] = [];
  private readonly blocks: Array<{ streamId: number; fields: readonly string[] }> = [];
  clock = 1_000_000;

  constructor(role: "server" | "client", opts: Partial<H2SessionOptions> = {}) {
    this.session = new H2Session(this.transport, { now: () => this.clock, ...opts, role });
    // We read the session's output: a client session starts with the preface.
    this.reader = new FrameReader({ expectPreface: role === "client", maxFrameSize: 1 << 24 });
  }

  /** Feeds bytes to the session (synchronously) and collects its output. */
  send(bytes: Uint8Array): void {
    this.session.receive(bytes);
    this.collect();
  }

  /** Client peer of a server session: preface + empty SETTINGS + ACK of the server's SETTINGS. */
  handshake(settings: number[] = []): this {
    const w = new ByteWriter();
    if (!this.session.isServer) {
      writeSettings(w, settings);
      writeSettingsAck(w);
      this.send(w.toBytes());
      return this;
    }
    w.bytes(CLIENT_PREFACE);
    writeSettings(w, settings);
    writeSettingsAck(w);
    this.send(w.toBytes());
    return this;
  }

  /** Reads everything the session wrote since the last call. */
  collect(): H2Frame[] {
    const bytes = this.transport.take();
    const got: H2Frame[] = [];
    if (bytes.length > 0) {
      this.reader.push(bytes);
      for (;;) {
        const f = this.reader.next();
        if (f === null) break;
        if (f instanceof H2Error) throw new Error(`session wrote a bad frame: ${f}`);
        const copy = f.copy();
        got.push(copy);
        this.frames.push(copy);
        if (copy.type === H2_FRAME.HEADERS) this.decodeHeaders(copy);
      }
    }
    return got;
  }

  /** Waits for microtask flushes, then collects. */
  async flushed(): Promise<H2Frame[]> {
    await settle();
    return this.collect();
  }

  headers(streamId: number, fields: string[], endStream: boolean, opts: { endHeaders?: boolean; flags?: number } = {}): Uint8Array {
    const block = new ByteWriter();
    this.encoder.encode(fields, block);
    const w = new ByteWriter();
    if (opts.endHeaders === false || opts.flags !== undefined) {
      const flags = opts.flags ?? (endStream ? H2_FLAG.END_STREAM : 0);
      writeFrameHeader(w, block.len, H2_FRAME.HEADERS, flags, streamId);
      w.bytes(block.view());
    } else {
      writeHeaders(w, streamId, block.view(), endStream);
    }
    return w.toBytes();
  }

  static frame(type: number, flags: number, streamId: number, payload: ArrayLike<number> = []): Uint8Array {
    const w = new ByteWriter();
    writeFrameHeader(w, payload.length, type, flags, streamId);
    w.bytes(Uint8Array.from(payload));
    return w.toBytes();
  }

  static data(streamId: number, data: Uint8Array | string, endStream: boolean): Uint8Array {
    const w = new ByteWriter();
    writeData(w, streamId, typeof data === "string" ? new TextEncoder().encode(data) : data, endStream);
    return w.toBytes();
  }

  static windowUpdate(streamId: number, inc: number): Uint8Array {
    const w = new ByteWriter();
    writeWindowUpdate(w, streamId, inc);
    return w.toBytes();
  }

  static rst(streamId: number, code: number): Uint8Array {
    const w = new ByteWriter();
    writeRstStream(w, streamId, code);
    return w.toBytes();
  }

  static ping(ack = false, opaque = [1, 2, 3, 4, 5, 6, 7, 8]): Uint8Array {
    const w = new ByteWriter();
    writePing(w, Uint8Array.from(opaque), ack);
    return w.toBytes();
  }

  static settings(params: number[]): Uint8Array {
    const w = new ByteWriter();
    writeSettings(w, params);
    return w.toBytes();
  }

  /** The GOAWAY the session sent, if any: {lastStreamId, errorCode, debug}. */
  goaway(): { lastStreamId: number; errorCode: number; debug: string } | null {
    const f = [...this.frames].reverse().find((x) => x.type === H2_FRAME.GOAWAY);
    if (!f) return null;
    const g = parseGoaway(f);
    if (g instanceof H2Error) throw new Error(String(g));
    return { lastStreamId: g.lastStreamId, errorCode: g.errorCode, debug: new TextDecoder().decode(g.debug) };
  }

  /** RST_STREAM codes the session sent for `streamId`. */
  resets(streamId: number): number[] {
    return this.frames
      .filter((f) => f.type === H2_FRAME.RST_STREAM && f.streamId === streamId)
      .map((f) => {
        const r = parseRstStream(f);
        if (r instanceof H2Error) throw new Error(String(r));
        return r.errorCode;
      });
  }

  /** Decoded header lists the session sent on `streamId`. */
  headerLists(streamId: number): Array<readonly string[]> {
    return this.blocks.filter((b) => b.streamId === streamId).map((b) => b.fields);
  }

  /** Decodes a HEADERS frame as it arrives (the table must see every block, in order). */
  private decodeHeaders(f: H2Frame): void {
    let p = f.payload;
    if (f.flags & H2_FLAG.PADDED) p = p.subarray(1, p.length - f.payload[0]);
    if (f.flags & H2_FLAG.PRIORITY) p = p.subarray(5);
    const list = this.decoder.decode(p);
    if (list instanceof H2Error) throw new Error(String(list));
    this.blocks.push({ streamId: f.streamId, fields: list.fields });
  }

  dataOn(streamId: number): string {
    return this.frames
      .filter((f) => f.type === H2_FRAME.DATA && f.streamId === streamId)
      .map((f) => new TextDecoder().decode(f.payload))
      .join("");
  }

  types(): number[] {
    return this.frames.map((f) => f.type);
  }
}
