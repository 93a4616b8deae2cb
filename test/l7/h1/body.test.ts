import { describe, expect, test } from "bun:test";
import {
  CHUNK_END,
  ChunkedDecoder,
  H1_DEFAULT_LIMITS,
  type H1Error,
  LengthDecoder,
  encodeChunk,
  encodeChunkHeader,
  encodeLastChunk,
  isFieldValue,
  serializeRequestHead,
  serializeResponseHead,
} from "../../../src/l7/h1/codec.ts";
import { bytes, expectError, okReq, okRes } from "./helpers.ts";

interface Decoded {
  body: string;
  trailers: string[];
  consumed: number;
  done: boolean;
}

/** Feeds `wire` to a fresh decoder in the given pieces; returns body, trailers and bytes consumed. */
function decodeChunked(wire: string, cuts: number[] = [], status: 400 | 502 = 400): Decoded | H1Error {
  const b = bytes(wire);
  const d = new ChunkedDecoder(H1_DEFAULT_LIMITS, status);
  const parts: Buffer[] = [];
  let consumed = 0;
  const bounds = [0, ...cuts, b.length];
  for (let i = 0; i + 1 < bounds.length && !d.done; i++) {
    // each piece in its own buffer, as a socket would deliver it
    const piece = Buffer.from(b.subarray(bounds[i], bounds[i + 1]));
    const r = d.push(piece, 0, piece.length, (x, s, e) => parts.push(Buffer.from(x.subarray(s, e))));
    if (typeof r !== "number") return r;
    consumed += r;
    if (!d.done) expect(r).toBe(piece.length);
  }
  return { body: Buffer.concat(parts).toString("latin1"), trailers: d.trailers, consumed, done: d.done };
}

describe("chunked decoder", () => {
  const WIRE = "5\r\nhello\r\n1;name=val;q=\"x y\"\r\n \r\nA\r\n0123456789\r\n0\r\nGrpc-Status: 0\r\nGrpc-Message: ok then\r\n\r\n";

  test("data, extensions ignored, trailers parsed, stops exactly at the end", () => {
    const r = decodeChunked(WIRE + "GET / HTTP/1.1\r\n");
    expect(r).toEqual({
      body: "hello 0123456789",
      trailers: ["grpc-status", "0", "grpc-message", "ok then"],
      consumed: bytes(WIRE).length,
      done: true,
    });
  });

  test("no trailers", () => {
    expect(decodeChunked("3\r\nabc\r\n0\r\n\r\nNEXT")).toEqual({ body: "abc", trailers: [], consumed: 13, done: true });
    expect(decodeChunked("0\r\n\r\n")).toEqual({ body: "", trailers: [], consumed: 5, done: true });
  });

  test("split at every byte offset gives the same body and trailers", () => {
    const whole = decodeChunked(WIRE);
    for (let k = 1; k < WIRE.length; k++) expect(decodeChunked(WIRE, [k])).toEqual(whole);
  });

  test("delivered one byte at a time", () => {
    const cuts = Array.from({ length: WIRE.length - 1 }, (_, i) => i + 1);
    expect(decodeChunked(WIRE, cuts)).toEqual(decodeChunked(WIRE));
  });

  test("data is handed out as views of the caller's buffer (zero copy)", () => {
    const b = bytes("5\r\nhello\r\n0\r\n\r\n");
    const seen: Uint8Array[] = [];
    new ChunkedDecoder().push(b, 0, b.length, (x, s, e) => seen.push(x.subarray(s, e)));
    expect(seen.length).toBe(1);
    expect(seen[0].buffer).toBe(b.buffer);
  });

  test("hex sizes in either case, leading zeros, BWS before an extension", () => {
    const r = decodeChunked("0000a\r\n0123456789\r\nB ;x\r\nabcdefghijk\r\n0\r\n\r\n");
    expect(r).toMatchObject({ body: "0123456789abcdefghijk", done: true });
  });

  test("trailer section larger than one read is buffered and parsed", () => {
    const trailer = "X-Long: " + "t".repeat(3000) + "\r\n";
    const wire = "1\r\na\r\n0\r\n" + trailer + "\r\n";
    const r = decodeChunked(wire, [12, 500, 1000, 2990]);
    expect(r).toMatchObject({ body: "a", trailers: ["x-long", "t".repeat(3000)], done: true, consumed: wire.length });
  });

  const errors: [string, string, string][] = [
    ["no size digits", "\r\nabc\r\n0\r\n\r\n", "invalid_chunk"],
    ["non-hex size", "g\r\n", "invalid_chunk"],
    ["0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "invalid_chunk"],
    ["negative size", "-1\r\n", "invalid_chunk"],
    ["size overflow", "fffffffffffffffff\r\n", "invalid_chunk"],
    ["size line with bare LF", "5\nhello\r\n", "bare_lf"],
    ["extension with bare LF", "5;a\nhello\r\n", "bare_lf"],
    ["size line with bare CR", "5\rhello\r\n", "bare_cr"],
    ["trailing whitespace without extension", "5 \r\nhello\r\n", "invalid_chunk"],
    ["control char in extension", "5;a\x01\r\nhello\r\n", "invalid_chunk"],
    ["data longer than its size", "3\r\nhello\r\n", "invalid_chunk"],
    ["data without CRLF", "3\r\nabc0\r\n\r\n", "invalid_chunk"],
    ["data with LF only", "3\r\nabc\n0\r\n\r\n", "bare_lf"],
    ["data with CR only", "3\r\nabc\rX", "bare_cr"],
    ["last chunk with bare LF", "0\r\n\n", "bare_lf"],
    ["last chunk with bare CR", "0\r\n\rX", "bare_cr"],
    ["obs-fold in trailers", "0\r\nA: b\r\n c\r\n\r\n", "obs_fold"],
    ["bad trailer name", "0\r\nA(b: c\r\n\r\n", "invalid_header_name"],
    ["space before colon in a trailer", "0\r\nA : c\r\n\r\n", "space_before_colon"],
    ["NUL in trailer value", "0\r\nA: \x00\r\n\r\n", "invalid_header_value"],
  ];
  for (const [name, wire, reason] of errors) {
    test(`${name} → ${reason}`, () => {
      expectError(decodeChunked(wire) as H1Error, reason as never, 400);
      // the same error whatever the split
      for (let k = 1; k < wire.length; k++) expectError(decodeChunked(wire, [k]) as H1Error, reason as never, 400);
    });
  }

  test("response-side decoder errors carry 502", () => {
    expectError(decodeChunked("z\r\n", [], 502) as H1Error, "invalid_chunk", 502);
  });

  test("size line longer than maxChunkLine → chunk_line_too_long (leading zeros or extensions)", () => {
    expectError(decodeChunked("0".repeat(H1_DEFAULT_LIMITS.maxChunkLine + 1) + "5\r\n") as H1Error, "chunk_line_too_long");
    const ext = "5;" + "x".repeat(H1_DEFAULT_LIMITS.maxChunkLine);
    expectError(decodeChunked(ext) as H1Error, "chunk_line_too_long");
    expectError(decodeChunked(ext, [3, 100, 700]) as H1Error, "chunk_line_too_long");
    expect(decodeChunked("5;" + "x".repeat(H1_DEFAULT_LIMITS.maxChunkLine - 5) + "\r\nhello\r\n0\r\n\r\n")).toMatchObject({ done: true });
  });

  test("trailers over maxTrailerBytes → trailers_too_large; over maxTrailers → too_many_trailers", () => {
    const big = "0\r\nX: " + "v".repeat(H1_DEFAULT_LIMITS.maxTrailerBytes) + "\r\n\r\n";
    expectError(decodeChunked(big) as H1Error, "trailers_too_large");
    expectError(decodeChunked(big, [5, 100]) as H1Error, "trailers_too_large");
    const many = "0\r\n" + "X: y\r\n".repeat(H1_DEFAULT_LIMITS.maxTrailers + 1) + "\r\n";
    expectError(decodeChunked(many) as H1Error, "too_many_trailers");
  });
});

describe("length decoder", () => {
  test("passes exactly Content-Length bytes and leaves the next message", () => {
    const b = bytes("helloGET / HTTP/1.1\r\n");
    const d = new LengthDecoder(5);
    const seen: string[] = [];
    expect(d.push(b, 0, 3, (x, s, e) => seen.push(Buffer.from(x.subarray(s, e)).toString()))).toBe(3);
    expect(d.done).toBe(false);
    expect(d.push(b, 3, b.length, (x, s, e) => seen.push(Buffer.from(x.subarray(s, e)).toString()))).toBe(2);
    expect(d.done).toBe(true);
    expect(seen).toEqual(["hel", "lo"]);
    expect(new LengthDecoder(0).done).toBe(true);
  });
});

describe("chunked encoder", () => {
  test("encodeChunk, encodeLastChunk round-trip through the decoder", () => {
    const data = bytes("x".repeat(300));
    const parts = [encodeChunk(data), encodeChunk(bytes("yz")), encodeChunk(new Uint8Array(0)), encodeLastChunk(["grpc-status", "0"])];
    const wire = Buffer.concat(parts.map((p) => p as Uint8Array)).toString("latin1");
    expect(wire.startsWith("12c\r\n")).toBe(true);
    expect(decodeChunked(wire)).toMatchObject({ body: "x".repeat(300) + "yz", trailers: ["grpc-status", "0"], done: true });
  });

  test("an empty chunk encodes to nothing, never to the last-chunk marker", () => {
    expect(encodeChunk(new Uint8Array(0)).length).toBe(0);
  });

  test("header + data + CHUNK_END equals encodeChunk", () => {
    const data = bytes("hello");
    expect(Buffer.concat([encodeChunkHeader(5), data, CHUNK_END])).toEqual(Buffer.from(encodeChunk(data)));
    expect(Buffer.from(encodeLastChunk() as Uint8Array).toString()).toBe("0\r\n\r\n");
  });

  test("trailers with CR/LF are refused", () => {
    expectError(encodeLastChunk(["x", "a\r\nb"]) as H1Error, "invalid_header_value");
    expectError(encodeLastChunk(["x y", "a"]) as H1Error, "invalid_header_name");
  });
});

describe("head serializers", () => {
  test("request head round-trips through the parser", () => {
    const out = serializeRequestHead("POST", "/p?q=1", ["host", "a.example", "content-length", "3", "x-forwarded-for", "203.0.113.7"]);
    const h = okReq(Buffer.from(out as Uint8Array).toString("latin1"));
    expect(h).toMatchObject({ method: "POST", target: "/p?q=1", contentLength: 3 });
    expect(h.headers).toEqual(["host", "a.example", "content-length", "3", "x-forwarded-for", "203.0.113.7"]);
  });

  test("response head round-trips through the parser", () => {
    const out = serializeResponseHead(404, "Not Found", ["content-length", "0"]);
    expect(Buffer.from(out as Uint8Array).toString()).toBe("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
    expect(okRes(Buffer.from(out as Uint8Array).toString("latin1"))).toMatchObject({ status: 404, contentLength: 0 });
  });

  test("values that would split the message are refused (h2 → h1 smuggling)", () => {
    expectError(serializeRequestHead("GET", "/", ["host", "a\r\nx: y"]) as H1Error, "invalid_header_value", 400);
    expectError(serializeRequestHead("GET", "/", ["host", "a\nb"]) as H1Error, "invalid_header_value", 400);
    expectError(serializeRequestHead("GET", "/", ["host", "a\u010ab"]) as H1Error, "invalid_header_value", 400);
    expectError(serializeRequestHead("GET", "/", ["host", "a\0"]) as H1Error, "invalid_header_value", 400);
    expectError(serializeRequestHead("GET", "/", ["ho st", "a"]) as H1Error, "invalid_header_name", 400);
    expectError(serializeRequestHead("GET", "/", ["", "a"]) as H1Error, "invalid_header_name", 400);
    expectError(serializeRequestHead("GET", "/ x", ["host", "a"]) as H1Error, "invalid_target", 400);
    expectError(serializeRequestHead("G T", "/", ["host", "a"]) as H1Error, "invalid_method", 400);
    expectError(serializeResponseHead(200, "OK\r\nx: y", []) as H1Error, "invalid_status", 502);
    expectError(serializeResponseHead(42, "OK", []) as H1Error, "invalid_status", 502);
    expectError(serializeResponseHead(200, "OK", ["x", " lead"]) as H1Error, "invalid_header_value", 502);
  });

  test("isFieldValue accepts obs-text, HTAB and inner spaces", () => {
    expect(isFieldValue("caf\xe9 au\tlait")).toBe(true);
    expect(isFieldValue("")).toBe(true);
  });
});
