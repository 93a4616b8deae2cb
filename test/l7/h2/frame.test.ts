import { describe, expect, test } from "bun:test";
import { ByteWriter } from "../../../src/l7/h2/bytes.ts";
import { H2_ERROR, H2Error, type H2ErrorCode } from "../../../src/l7/h2/errors.ts";
import {
  CLIENT_PREFACE,
  FrameReader,
  H2_DEFAULT_MAX_FRAME_SIZE,
  H2_FLAG,
  H2_FRAME,
  H2_MAX_CONTINUATION_FRAMES,
  H2_MAX_HEADER_BLOCK_BYTES,
  H2_SETTING,
  HeaderBlockAssembler,
  parseContinuation,
  parseData,
  parseGoaway,
  parseHeaders,
  parsePing,
  parsePriority,
  parsePushPromise,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  writeData,
  writeFrameHeader,
  writeGoaway,
  writeHeaders,
  writePing,
  writePriority,
  writeRstStream,
  writeSettings,
  writeSettingsAck,
  writeWindowUpdate,
  type H2Frame,
} from "../../../src/l7/h2/frame.ts";

/** A raw frame, for inputs our writers would never produce. */
function raw(type: number, flags: number, streamId: number, payload: number[] | Uint8Array = []): Uint8Array {
  const w = new ByteWriter();
  const p = payload instanceof Uint8Array ? payload : Uint8Array.from(payload);
  writeFrameHeader(w, p.length, type, flags, streamId);
  w.bytes(p);
  return w.toBytes();
}

/** Reads exactly one frame from bytes. */
function one(bytes: Uint8Array): H2Frame {
  const r = new FrameReader({ maxFrameSize: H2_MAX_HEADER_BLOCK_BYTES * 4 });
  r.push(bytes);
  const f = r.next();
  if (f === null || f instanceof H2Error) throw new Error(`no frame: ${f}`);
  expect(r.next()).toBeNull();
  return f;
}

function frame(type: number, flags: number, streamId: number, payload: number[] | Uint8Array = []): H2Frame {
  return one(raw(type, flags, streamId, payload));
}

function err<T>(r: T | H2Error, scope: "connection" | "stream", code: H2ErrorCode): H2Error {
  if (!(r instanceof H2Error)) throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  expect([r.scope, r.code]).toEqual([scope, code]);
  return r;
}

function val<T>(r: T | H2Error): T {
  if (r instanceof H2Error) throw new Error(`unexpected ${r}`);
  return r;
}

const simplify = (f: H2Frame) => ({ type: f.type, flags: f.flags, streamId: f.streamId, payload: Array.from(f.payload) });

/** A realistic client opening: preface, SETTINGS, WINDOW_UPDATE, HEADERS split in CONTINUATION, DATA, PING. */
function clientOpening(): Uint8Array {
  const w = new ByteWriter();
  w.bytes(CLIENT_PREFACE);
  writeSettings(w, [H2_SETTING.ENABLE_PUSH, 0, H2_SETTING.INITIAL_WINDOW_SIZE, 1 << 20]);
  writeWindowUpdate(w, 0, 1 << 24);
  writeHeaders(w, 1, Uint8Array.from({ length: 40 }, (_, i) => i), false, 16);
  writeData(w, 1, new TextEncoder().encode("hello"), true);
  writePing(w, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), false);
  writeFrameHeader(w, 0, 0xfa, 0, 0); // unknown type: passed through for the session to ignore
  return w.toBytes();
}

function readAll(r: FrameReader, out: H2Frame[]): H2Error | null {
  for (;;) {
    const f = r.next();
    if (f === null) return null;
    if (f instanceof H2Error) return f;
    out.push(f.copy());
  }
}

describe("FrameReader", () => {
  const input = clientOpening();
  const whole: H2Frame[] = [];
  {
    const r = new FrameReader({ expectPreface: true });
    r.push(input);
    readAll(r, whole);
  }

  test("reads the preface, then every frame of a client opening", () => {
    expect(whole.map((f) => f.type)).toEqual([
      H2_FRAME.SETTINGS,
      H2_FRAME.WINDOW_UPDATE,
      H2_FRAME.HEADERS,
      H2_FRAME.CONTINUATION,
      H2_FRAME.CONTINUATION,
      H2_FRAME.DATA,
      H2_FRAME.PING,
      0xfa,
    ]);
  });

  test("returns one frame object, refilled for each frame (valid until the next call): no object per frame", () => {
    const r = new FrameReader({ expectPreface: true });
    r.push(input);
    const seen: Array<[number, number, number]> = [];
    let first: H2Frame | null = null;
    for (;;) {
      const f = r.next();
      if (f === null || f instanceof H2Error) break;
      first ??= f;
      expect(f).toBe(first);
      seen.push([f.type, f.streamId, f.length]);
    }
    expect(seen).toEqual(whole.map((f) => [f.type, f.streamId, f.length]));
  });

  test("gives the same frames when the input is split at every byte offset", () => {
    for (let cut = 0; cut <= input.length; cut++) {
      const r = new FrameReader({ expectPreface: true });
      const got: H2Frame[] = [];
      r.push(input.subarray(0, cut));
      expect(readAll(r, got)).toBeNull();
      r.push(input.subarray(cut));
      expect(readAll(r, got)).toBeNull();
      expect(got.map(simplify)).toEqual(whole.map(simplify));
      expect(r.buffered).toBe(0);
    }
  });

  test("gives the same frames when split at every pair of offsets", () => {
    for (let a = 0; a <= input.length; a += 3) {
      for (let b = a; b <= input.length; b += 5) {
        const r = new FrameReader({ expectPreface: true });
        const got: H2Frame[] = [];
        for (const part of [input.subarray(0, a), input.subarray(a, b), input.subarray(b)]) {
          r.push(part);
          expect(readAll(r, got)).toBeNull();
        }
        expect(got.map(simplify)).toEqual(whole.map(simplify));
      }
    }
  });

  test("gives the same frames fed one byte at a time", () => {
    const r = new FrameReader({ expectPreface: true });
    const got: H2Frame[] = [];
    for (let i = 0; i < input.length; i++) {
      r.push(input.subarray(i, i + 1));
      expect(readAll(r, got)).toBeNull();
    }
    expect(got.map(simplify)).toEqual(whole.map(simplify));
  });

  test("keeps unread bytes when push() is called before next() returned null", () => {
    const r = new FrameReader({ expectPreface: true });
    const got: H2Frame[] = [];
    r.push(input.subarray(0, 60));
    r.push(input.subarray(60, 100));
    r.push(input.subarray(100));
    expect(readAll(r, got)).toBeNull();
    expect(got.map(simplify)).toEqual(whole.map(simplify));
  });

  test("a frame inside one chunk is a view into that chunk (no copy)", () => {
    const bytes = raw(H2_FRAME.DATA, 0, 1, [1, 2, 3]);
    const r = new FrameReader();
    r.push(bytes);
    const f = val(r.next()) as H2Frame;
    expect(f.payload.buffer).toBe(bytes.buffer);
    expect(f.payload.byteOffset).toBe(9);
  });

  test("a frame of exactly SETTINGS_MAX_FRAME_SIZE is read; one octet more is a connection FRAME_SIZE_ERROR", () => {
    const max = H2_DEFAULT_MAX_FRAME_SIZE;
    const r = new FrameReader();
    r.push(raw(H2_FRAME.DATA, 0, 1, new Uint8Array(max)));
    expect((val(r.next()) as H2Frame).payload.length).toBe(max);
    r.push(raw(H2_FRAME.DATA, 0, 1, new Uint8Array(max + 1)).subarray(0, 12));
    const e = err(r.next(), "connection", H2_ERROR.FRAME_SIZE_ERROR);
    expect(e.reason).toBe("frame_too_large");
    expect(r.next()).toBe(e); // final
  });

  test("the size check also applies when the frame header straddles chunks", () => {
    const bytes = raw(H2_FRAME.HEADERS, 0, 1, new Uint8Array(H2_DEFAULT_MAX_FRAME_SIZE + 1));
    const r = new FrameReader();
    r.push(bytes.subarray(0, 4));
    expect(r.next()).toBeNull();
    r.push(bytes.subarray(4, 20));
    err(r.next(), "connection", H2_ERROR.FRAME_SIZE_ERROR);
  });

  test("setMaxFrameSize raises the limit", () => {
    const r = new FrameReader();
    r.setMaxFrameSize(1 << 20);
    r.push(raw(H2_FRAME.DATA, 0, 1, new Uint8Array(100_000)));
    expect((val(r.next()) as H2Frame).payload.length).toBe(100_000);
  });

  test("a wrong preface is a connection PROTOCOL_ERROR, even split", () => {
    const bad = new TextEncoder().encode("PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n");
    const r = new FrameReader({ expectPreface: true });
    r.push(bad.subarray(0, 5));
    expect(r.next()).toBeNull();
    expect(r.awaitingPreface).toBe(true);
    r.push(bad.subarray(5));
    expect(err(r.next(), "connection", H2_ERROR.PROTOCOL_ERROR).reason).toBe("bad_preface");
    const h1 = new FrameReader({ expectPreface: true });
    h1.push(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
    err(h1.next(), "connection", H2_ERROR.PROTOCOL_ERROR);
  });

  test("the reserved bit of the stream id is ignored", () => {
    const bytes = raw(H2_FRAME.DATA, 0, 3);
    bytes[5] |= 0x80;
    expect(one(bytes).streamId).toBe(3);
  });
});

describe("DATA (§6.1)", () => {
  test("unpadded and padded payloads; flow control counts the padding", () => {
    expect(Array.from(val(parseData(frame(H2_FRAME.DATA, H2_FLAG.END_STREAM, 1, [1, 2]))).data)).toEqual([1, 2]);
    const d = val(parseData(frame(H2_FRAME.DATA, H2_FLAG.PADDED, 1, [2, 7, 0, 0])));
    expect(Array.from(d.data)).toEqual([7]);
    expect(d.flowLength).toBe(4);
    expect(d.endStream).toBe(false);
    expect(val(parseData(frame(H2_FRAME.DATA, H2_FLAG.PADDED, 1, [0]))).data.length).toBe(0);
  });
  test("on stream 0: connection PROTOCOL_ERROR", () => {
    err(parseData(frame(H2_FRAME.DATA, 0, 0, [1])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
  test("pad length equal to or above the rest: connection PROTOCOL_ERROR", () => {
    err(parseData(frame(H2_FRAME.DATA, H2_FLAG.PADDED, 1, [3, 0, 0])), "connection", H2_ERROR.PROTOCOL_ERROR);
    err(parseData(frame(H2_FRAME.DATA, H2_FLAG.PADDED, 1, [1])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
  test("PADDED with an empty payload: connection FRAME_SIZE_ERROR", () => {
    err(parseData(frame(H2_FRAME.DATA, H2_FLAG.PADDED, 1)), "connection", H2_ERROR.FRAME_SIZE_ERROR);
  });
});

describe("HEADERS (§6.2)", () => {
  test("padding and priority are removed from the fragment", () => {
    const h = val(parseHeaders(frame(H2_FRAME.HEADERS, H2_FLAG.PADDED | H2_FLAG.PRIORITY | H2_FLAG.END_HEADERS, 3, [1, 0x80, 0, 0, 1, 15, 0x82, 0])));
    expect(Array.from(h.fragment)).toEqual([0x82]);
    expect(h.priority).toEqual({ dependency: 1, exclusive: true, weight: 16 });
    expect(h.endHeaders).toBe(true);
    expect(h.endStream).toBe(false);
  });
  test("on stream 0: connection PROTOCOL_ERROR", () => {
    err(parseHeaders(frame(H2_FRAME.HEADERS, H2_FLAG.END_HEADERS, 0, [0x82])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
  test("bad pad length: connection PROTOCOL_ERROR", () => {
    err(parseHeaders(frame(H2_FRAME.HEADERS, H2_FLAG.PADDED, 1, [5, 0x82])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
  test("PRIORITY flag without 5 octets: connection FRAME_SIZE_ERROR", () => {
    err(parseHeaders(frame(H2_FRAME.HEADERS, H2_FLAG.PRIORITY, 1, [0, 0, 0])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
  });
  test("depending on itself: stream PROTOCOL_ERROR, block still returned for HPACK sync", () => {
    const h = val(parseHeaders(frame(H2_FRAME.HEADERS, H2_FLAG.PRIORITY, 5, [0, 0, 0, 5, 0, 0x82])));
    expect([...h.fragment]).toEqual([0x82]);
    err(h.streamError as H2Error, "stream", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("PRIORITY (§6.3)", () => {
  test("parsed", () => {
    expect(val(parsePriority(frame(H2_FRAME.PRIORITY, 0, 3, [0, 0, 0, 1, 255])))).toEqual({ dependency: 1, exclusive: false, weight: 256 });
  });
  test("length other than 5: stream FRAME_SIZE_ERROR", () => {
    err(parsePriority(frame(H2_FRAME.PRIORITY, 0, 3, [0, 0, 0, 1])), "stream", H2_ERROR.FRAME_SIZE_ERROR);
    err(parsePriority(frame(H2_FRAME.PRIORITY, 0, 3, [0, 0, 0, 1, 0, 0])), "stream", H2_ERROR.FRAME_SIZE_ERROR);
  });
  test("on stream 0: connection PROTOCOL_ERROR; self-dependency: stream PROTOCOL_ERROR", () => {
    err(parsePriority(frame(H2_FRAME.PRIORITY, 0, 0, [0, 0, 0, 1, 0])), "connection", H2_ERROR.PROTOCOL_ERROR);
    err(parsePriority(frame(H2_FRAME.PRIORITY, 0, 7, [0, 0, 0, 7, 0])), "stream", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("RST_STREAM (§6.4)", () => {
  test("parsed; length other than 4: connection FRAME_SIZE_ERROR; stream 0: PROTOCOL_ERROR", () => {
    expect(val(parseRstStream(frame(H2_FRAME.RST_STREAM, 0, 1, [0, 0, 0, 8])))).toEqual({ errorCode: H2_ERROR.CANCEL });
    err(parseRstStream(frame(H2_FRAME.RST_STREAM, 0, 1, [0, 0, 8])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
    err(parseRstStream(frame(H2_FRAME.RST_STREAM, 0, 0, [0, 0, 0, 8])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("SETTINGS (§6.5)", () => {
  const setting = (id: number, value: number) => [id >> 8, id & 255, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
  test("parameters in wire order, unknown ids kept", () => {
    const s = val(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, [...setting(H2_SETTING.MAX_CONCURRENT_STREAMS, 100), ...setting(0x99, 7)])));
    expect(s).toEqual({ ack: false, params: [H2_SETTING.MAX_CONCURRENT_STREAMS, 100, 0x99, 7] });
    expect(val(parseSettings(frame(H2_FRAME.SETTINGS, H2_FLAG.ACK, 0)))).toEqual({ ack: true, params: [] });
  });
  test("on a stream: connection PROTOCOL_ERROR", () => {
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 1)), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
  test("ACK with a payload, or a length not a multiple of 6: connection FRAME_SIZE_ERROR", () => {
    err(parseSettings(frame(H2_FRAME.SETTINGS, H2_FLAG.ACK, 0, setting(1, 1))), "connection", H2_ERROR.FRAME_SIZE_ERROR);
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, [0, 1, 0])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
  });
  test("ENABLE_PUSH and ENABLE_CONNECT_PROTOCOL other than 0/1: connection PROTOCOL_ERROR", () => {
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.ENABLE_PUSH, 2))), "connection", H2_ERROR.PROTOCOL_ERROR);
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.ENABLE_CONNECT_PROTOCOL, 2))), "connection", H2_ERROR.PROTOCOL_ERROR);
    val(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.ENABLE_PUSH, 1))));
  });
  test("INITIAL_WINDOW_SIZE above 2^31-1: connection FLOW_CONTROL_ERROR", () => {
    val(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.INITIAL_WINDOW_SIZE, 0x7fffffff))));
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.INITIAL_WINDOW_SIZE, 0x80000000))), "connection", H2_ERROR.FLOW_CONTROL_ERROR);
  });
  test("MAX_FRAME_SIZE outside 16384..16777215: connection PROTOCOL_ERROR", () => {
    val(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.MAX_FRAME_SIZE, 16384))));
    val(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.MAX_FRAME_SIZE, 16777215))));
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.MAX_FRAME_SIZE, 16383))), "connection", H2_ERROR.PROTOCOL_ERROR);
    err(parseSettings(frame(H2_FRAME.SETTINGS, 0, 0, setting(H2_SETTING.MAX_FRAME_SIZE, 16777216))), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("PUSH_PROMISE (§6.6)", () => {
  test("parsed with padding; too short: FRAME_SIZE_ERROR; stream 0: PROTOCOL_ERROR", () => {
    const p = val(parsePushPromise(frame(H2_FRAME.PUSH_PROMISE, H2_FLAG.PADDED | H2_FLAG.END_HEADERS, 1, [1, 0, 0, 0, 2, 0x82, 0])));
    expect(p.promisedStreamId).toBe(2);
    expect(Array.from(p.fragment)).toEqual([0x82]);
    err(parsePushPromise(frame(H2_FRAME.PUSH_PROMISE, 0, 1, [0, 0, 2])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
    err(parsePushPromise(frame(H2_FRAME.PUSH_PROMISE, 0, 0, [0, 0, 0, 2])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("PING (§6.7)", () => {
  test("parsed; length other than 8: FRAME_SIZE_ERROR; on a stream: PROTOCOL_ERROR", () => {
    const p = val(parsePing(frame(H2_FRAME.PING, H2_FLAG.ACK, 0, [1, 2, 3, 4, 5, 6, 7, 8])));
    expect(p.ack).toBe(true);
    expect(Array.from(p.opaque)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    err(parsePing(frame(H2_FRAME.PING, 0, 0, [1, 2, 3, 4, 5, 6, 7])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
    err(parsePing(frame(H2_FRAME.PING, 0, 1, [1, 2, 3, 4, 5, 6, 7, 8])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("GOAWAY (§6.8)", () => {
  test("parsed with debug data; shorter than 8: FRAME_SIZE_ERROR; on a stream: PROTOCOL_ERROR", () => {
    const g = val(parseGoaway(frame(H2_FRAME.GOAWAY, 0, 0, [0x80, 0, 0, 5, 0, 0, 0, 11, 0x61])));
    expect(g.lastStreamId).toBe(5);
    expect(g.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(Array.from(g.debug)).toEqual([0x61]);
    err(parseGoaway(frame(H2_FRAME.GOAWAY, 0, 0, [0, 0, 0, 5, 0, 0, 0])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
    err(parseGoaway(frame(H2_FRAME.GOAWAY, 0, 1, [0, 0, 0, 5, 0, 0, 0, 0])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("WINDOW_UPDATE (§6.9)", () => {
  test("parsed, reserved bit ignored", () => {
    expect(val(parseWindowUpdate(frame(H2_FRAME.WINDOW_UPDATE, 0, 1, [0x80, 0, 1, 0])))).toEqual({ increment: 256 });
  });
  test("length other than 4: connection FRAME_SIZE_ERROR", () => {
    err(parseWindowUpdate(frame(H2_FRAME.WINDOW_UPDATE, 0, 1, [0, 0, 1])), "connection", H2_ERROR.FRAME_SIZE_ERROR);
  });
  test("increment 0: stream PROTOCOL_ERROR on a stream, connection PROTOCOL_ERROR on stream 0", () => {
    err(parseWindowUpdate(frame(H2_FRAME.WINDOW_UPDATE, 0, 1, [0, 0, 0, 0])), "stream", H2_ERROR.PROTOCOL_ERROR);
    err(parseWindowUpdate(frame(H2_FRAME.WINDOW_UPDATE, 0, 0, [0, 0, 0, 0])), "connection", H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("CONTINUATION (§6.10) and header block assembly", () => {
  const cont = (streamId: number, bytes: number[], end: boolean) => frame(H2_FRAME.CONTINUATION, end ? H2_FLAG.END_HEADERS : 0, streamId, bytes);

  test("on stream 0: connection PROTOCOL_ERROR", () => {
    err(parseContinuation(cont(0, [1], true)), "connection", H2_ERROR.PROTOCOL_ERROR);
  });

  test("a HEADERS with END_HEADERS is the block itself (no copy)", () => {
    const a = new HeaderBlockAssembler();
    const frag = Uint8Array.of(0x82);
    expect(a.begin(1, frag, 0, frag.length, true)).toBeNull();
    expect(a.active).toBe(false);
    expect(a.active).toBe(false);
  });

  test("fragments are joined in order", () => {
    const a = new HeaderBlockAssembler();
    expect(a.begin(3, Uint8Array.of(9, 1, 2), 1, 3, false)).toBeNull();
    expect(a.active).toBe(true);
    expect(a.continue(cont(3, [3], false))).toBeNull();
    expect(a.continue(cont(3, [], false))).toBeNull();
    expect(Array.from(val(a.continue(cont(3, [4, 5], true))) as Uint8Array)).toEqual([1, 2, 3, 4, 5]);
    expect(a.active).toBe(false);
  });

  test("any other frame, or a CONTINUATION on another stream, is a connection PROTOCOL_ERROR", () => {
    const a = new HeaderBlockAssembler();
    a.begin(3, Uint8Array.of(1), 0, 1, false);
    err(a.continue(frame(H2_FRAME.DATA, 0, 3, [1])), "connection", H2_ERROR.PROTOCOL_ERROR);
    const b = new HeaderBlockAssembler();
    b.begin(3, Uint8Array.of(1), 0, 1, false);
    err(b.continue(cont(5, [1], true)), "connection", H2_ERROR.PROTOCOL_ERROR);
    err(new HeaderBlockAssembler().continue(cont(1, [1], true)), "connection", H2_ERROR.PROTOCOL_ERROR);
  });

  test(`more than H2_MAX_CONTINUATION_FRAMES (${H2_MAX_CONTINUATION_FRAMES}) CONTINUATIONs: connection ENHANCE_YOUR_CALM`, () => {
    const a = new HeaderBlockAssembler();
    a.begin(1, Uint8Array.of(1), 0, 1, false);
    for (let i = 0; i < H2_MAX_CONTINUATION_FRAMES; i++) expect(a.continue(cont(1, [], false))).toBeNull();
    const e = err(a.continue(cont(1, [], false)), "connection", H2_ERROR.ENHANCE_YOUR_CALM);
    expect(e.reason).toBe("too_many_continuations");
  });

  test(`a block over H2_MAX_HEADER_BLOCK_BYTES (${H2_MAX_HEADER_BLOCK_BYTES}): connection ENHANCE_YOUR_CALM`, () => {
    const a = new HeaderBlockAssembler();
    const half = new Uint8Array(H2_MAX_HEADER_BLOCK_BYTES / 2);
    a.begin(1, half, 0, half.length, false);
    expect(a.continue(one(raw(H2_FRAME.CONTINUATION, 0, 1, half)))).toBeNull();
    const e = err(a.continue(cont(1, [1], true)), "connection", H2_ERROR.ENHANCE_YOUR_CALM);
    expect(e.reason).toBe("header_block_too_large");
    err(a.begin(1, new Uint8Array(H2_MAX_HEADER_BLOCK_BYTES + 1), 0, H2_MAX_HEADER_BLOCK_BYTES + 1, true), "connection", H2_ERROR.ENHANCE_YOUR_CALM);
  });
});

describe("writers round-trip through the reader and parsers", () => {
  function readFrames(w: ByteWriter): H2Frame[] {
    const r = new FrameReader({ maxFrameSize: 1 << 20 });
    r.push(w.toBytes());
    const out: H2Frame[] = [];
    expect(readAll(r, out)).toBeNull();
    return out;
  }

  test("HEADERS is split into CONTINUATIONs by the peer's max frame size; END_STREAM on HEADERS, END_HEADERS on the last", () => {
    const block = Uint8Array.from({ length: 40_000 }, (_, i) => i & 255);
    const w = new ByteWriter(16);
    writeHeaders(w, 7, block, true, 16384);
    const frames = readFrames(w);
    expect(frames.map((f) => [f.type, f.flags, f.payload.length])).toEqual([
      [H2_FRAME.HEADERS, H2_FLAG.END_STREAM, 16384],
      [H2_FRAME.CONTINUATION, 0, 16384],
      [H2_FRAME.CONTINUATION, H2_FLAG.END_HEADERS, 40_000 - 2 * 16384],
    ]);
    const a = new HeaderBlockAssembler();
    const h = val(parseHeaders(frames[0]));
    expect(h.endStream).toBe(true);
    expect(a.begin(7, h.buf, h.start, h.end, h.endHeaders)).toBeNull();
    expect(a.continue(frames[1])).toBeNull();
    expect(val(a.continue(frames[2]))).toEqual(block);
  });

  test("HEADERS that fits, with priority", () => {
    const w = new ByteWriter();
    writeHeaders(w, 9, Uint8Array.of(0x82, 0x84), false, 16384, { dependency: 3, exclusive: true, weight: 200 });
    const [f] = readFrames(w);
    const h = val(parseHeaders(f));
    expect(Array.from(h.fragment)).toEqual([0x82, 0x84]);
    expect(h.priority).toEqual({ dependency: 3, exclusive: true, weight: 200 });
    expect(h.endHeaders).toBe(true);
  });

  test("empty header block: one HEADERS with END_HEADERS", () => {
    const w = new ByteWriter();
    writeHeaders(w, 1, new Uint8Array(0), true);
    const [f] = readFrames(w);
    expect([f.type, f.flags, f.payload.length]).toEqual([H2_FRAME.HEADERS, H2_FLAG.END_STREAM | H2_FLAG.END_HEADERS, 0]);
  });

  test("DATA, SETTINGS, SETTINGS ACK, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, PRIORITY", () => {
    const w = new ByteWriter(8);
    writeData(w, 1, Uint8Array.of(9, 8, 7), true);
    writeSettings(w, [H2_SETTING.HEADER_TABLE_SIZE, 0, H2_SETTING.MAX_HEADER_LIST_SIZE, 0xffffffff]);
    writeSettingsAck(w);
    writePing(w, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), true);
    writeGoaway(w, 0x7fffffff, H2_ERROR.PROTOCOL_ERROR, new TextEncoder().encode("bye"));
    writeRstStream(w, 3, H2_ERROR.REFUSED_STREAM);
    writeWindowUpdate(w, 0, 0x7fffffff);
    writePriority(w, 5, { dependency: 0, exclusive: false, weight: 1 });
    const [data, settings, ack, ping, goaway, rst, wu, prio] = readFrames(w);
    const d = val(parseData(data));
    expect([Array.from(d.data), d.endStream, data.streamId]).toEqual([[9, 8, 7], true, 1]);
    expect(val(parseSettings(settings)).params).toEqual([H2_SETTING.HEADER_TABLE_SIZE, 0, H2_SETTING.MAX_HEADER_LIST_SIZE, 0xffffffff]);
    expect(val(parseSettings(ack)).ack).toBe(true);
    expect(val(parsePing(ping)).ack).toBe(true);
    const g = val(parseGoaway(goaway));
    expect([g.lastStreamId, g.errorCode, new TextDecoder().decode(g.debug)]).toEqual([0x7fffffff, H2_ERROR.PROTOCOL_ERROR, "bye"]);
    expect([rst.streamId, val(parseRstStream(rst)).errorCode]).toEqual([3, H2_ERROR.REFUSED_STREAM]);
    expect(val(parseWindowUpdate(wu)).increment).toBe(0x7fffffff);
    expect(val(parsePriority(prio))).toEqual({ dependency: 0, exclusive: false, weight: 1 });
  });

  test("reading random bytes never throws", () => {
    let seed = 99;
    for (let i = 0; i < 3000; i++) {
      const r = new FrameReader({ expectPreface: i % 2 === 0 });
      const b = new Uint8Array(i % 80);
      for (let j = 0; j < b.length; j++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        b[j] = seed >>> 24;
      }
      r.push(b);
      for (let k = 0; k < 20; k++) {
        const f = r.next();
        if (f === null || f instanceof H2Error) break;
        for (const parse of [parseData, parseHeaders, parsePriority, parseRstStream, parseSettings, parsePushPromise, parsePing, parseGoaway, parseWindowUpdate, parseContinuation]) {
          parse(f);
        }
      }
    }
  });
});
