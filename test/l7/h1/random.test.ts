/**
 * Randomized round trips: generate valid pipelined messages (random names,
 * case, OWS, bodies, chunk extensions, trailers), cut the stream at random
 * points as sockets would, parse it like a connection would, and compare with
 * what was generated. Seeded: a failure names its seed.
 */
import { describe, expect, test } from "bun:test";
import {
  ChunkedDecoder,
  type H1BodyDecoder,
  H1_DEFAULT_LIMITS,
  LengthDecoder,
  parseRequestHead,
  parseResponseHead,
  serializeRequestHead,
} from "../../../src/l7/h1/codec.ts";
import { ValueMemo } from "../../../src/l7/h1/bytes.ts";
import { prng } from "./helpers.ts";

interface Message {
  startLine: [string, string]; // method+target or status+reason
  headers: string[]; // expected: lower-case names, trimmed values
  body: string;
  trailers: string[];
}

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const KNOWN = ["user-agent", "accept", "cookie", "x-request-id", "cache-control", "sec-fetch-mode", "grpc-timeout", "etag"];

function generator(seed: number) {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const str = (alphabet: string, min: number, max: number) => {
    let s = "";
    for (let n = min + int(max - min + 1); n > 0; n--) s += alphabet[int(alphabet.length)];
    return s;
  };
  const randomCase = (s: string) => [...s].map((c) => (rnd() < 0.5 ? c.toUpperCase() : c)).join("");
  const vchar = () => String.fromCharCode(rnd() < 0.1 ? 0x80 + int(128) : 0x21 + int(94));
  const value = () => {
    if (rnd() < 0.1) return "";
    let s = vchar();
    for (let n = int(30); n > 0; n--) s += rnd() < 0.15 ? (rnd() < 0.5 ? " " : "\t") : vchar();
    return s + vchar();
  };
  const ows = () => (rnd() < 0.7 ? " " : pick(["", "  ", "\t", " \t"]));
  const fieldName = () => (rnd() < 0.4 ? pick(KNOWN) : "x-" + str(TCHAR, 1, 12)).toLowerCase();

  /** Fields as wire text and as expected output. */
  const fields = (count: number, wire: string[], expected: string[]) => {
    for (let i = 0; i < count; i++) {
      const name = fieldName();
      const v = value();
      wire.push(randomCase(name) + ":" + ows() + v + (rnd() < 0.2 ? ows() : "") + "\r\n");
      expected.push(name, v);
    }
  };

  const body = (m: Message, wire: string[], framing: string[]) => {
    const kind = int(3);
    if (kind === 0) return;
    if (kind === 1) {
      m.body = str("abc\r\n0123456789", 0, 200);
      framing.push("Content-Length", String(m.body.length));
      return;
    }
    framing.push("Transfer-Encoding", "chunked");
    const chunks: string[] = [];
    for (let n = int(5); n > 0; n--) {
      const data = str("xyz\r\n;0", 1, 100);
      m.body += data;
      const ext = rnd() < 0.3 ? (rnd() < 0.5 ? " " : "") + ";" + str(TCHAR, 1, 8) + (rnd() < 0.5 ? "=" + str(TCHAR, 1, 8) : "") : "";
      const size = data.length.toString(16);
      chunks.push((rnd() < 0.5 ? size.toUpperCase() : size) + ext + "\r\n" + data + "\r\n");
    }
    const trailerWire: string[] = [];
    fields(rnd() < 0.5 ? 0 : 1 + int(3), trailerWire, m.trailers);
    wire.push(chunks.join("") + "0\r\n" + trailerWire.join("") + "\r\n");
  };

  function request(): [string, Message] {
    const method = pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"]);
    const target = "/" + str("abcXYZ019-._~!$&'()*+,;=:@/?%[]|{}\"<>^`\\", 0, 40);
    const m: Message = { startLine: [method, target], headers: [], body: "", trailers: [] };
    const framing: string[] = [];
    const tail: string[] = [];
    body(m, tail, framing);
    const host = str("abcdefghij.", 1, 20);
    const wire: string[] = [];
    const expected: string[] = [];
    fields(int(4), wire, expected);
    wire.push("Host: " + host + "\r\n");
    expected.push("host", host);
    fields(int(8), wire, expected);
    for (let i = 0; i < framing.length; i += 2) {
      wire.push(framing[i] + ": " + framing[i + 1] + "\r\n");
      expected.push(framing[i].toLowerCase(), framing[i + 1]);
    }
    fields(int(3), wire, expected);
    m.headers = expected;
    if (m.body !== "" && framing[0] === "Content-Length") tail.push(m.body);
    // Half the time write the head with our serializer (canonical form) instead.
    let head: string;
    if (rnd() < 0.5) head = `${method} ${target} HTTP/1.1\r\n${wire.join("")}\r\n`;
    else head = Buffer.from(serializeRequestHead(method, target, expected) as Uint8Array).toString("latin1");
    const empties = rnd() < 0.05 ? "\r\n" : "";
    return [empties + head + tail.join(""), m];
  }

  function response(): [string, Message] {
    const status = pick([200, 201, 404, 500, 302]);
    const reason = rnd() < 0.2 ? "" : str("abc XYZ", 1, 20);
    const m: Message = { startLine: [String(status), reason], headers: [], body: "", trailers: [] };
    const framing: string[] = [];
    const tail: string[] = [];
    body(m, tail, framing);
    if (framing.length === 0) framing.push("Content-Length", "0");
    const wire: string[] = [];
    const expected: string[] = [];
    fields(int(6), wire, expected);
    wire.push(framing[0] + ": " + framing[1] + "\r\n");
    expected.push(framing[0].toLowerCase(), framing[1]);
    fields(int(6), wire, expected);
    m.headers = expected;
    if (m.body !== "" && framing[0] === "Content-Length") tail.push(m.body);
    return [`HTTP/1.1 ${status}${reason === "" && rnd() < 0.5 ? "" : " " + reason}\r\n${wire.join("")}\r\n${tail.join("")}`, m];
  }

  return { request, response, int };
}

/** Parses a pipelined stream delivered in pieces, like a connection would. */
function parseStream(pieces: Buffer[], responses: boolean): Message[] {
  const out: Message[] = [];
  let pending = Buffer.alloc(0);
  let cur: { m: Message; decoder: H1BodyDecoder; body: Buffer[] } | undefined;
  for (const piece of pieces) {
    pending = Buffer.concat([pending, piece]);
    let pos = 0;
    for (;;) {
      if (cur === undefined) {
        const h = responses ? parseResponseHead(pending, pos, pending.length, "GET") : parseRequestHead(pending, pos, pending.length);
        if (h.kind === "more") break;
        if (h.kind === "error") throw new Error(`parse error ${h.reason}`);
        pos += h.length;
        const startLine: [string, string] = h.kind === "request" ? [h.method, h.target] : [String(h.status), h.reason];
        const m: Message = { startLine, headers: h.headers, body: "", trailers: [] };
        if (h.framing === "none") {
          out.push(m);
          continue;
        }
        if (h.framing === "close") throw new Error("unexpected close framing");
        const decoder =
          h.framing === "length" ? new LengthDecoder(h.contentLength) : new ChunkedDecoder(H1_DEFAULT_LIMITS, responses ? 502 : 400);
        cur = { m, decoder, body: [] };
      }
      const c = cur;
      const n = c.decoder.push(pending, pos, pending.length, (d, s, e) => c.body.push(Buffer.from(d.subarray(s, e))));
      if (typeof n !== "number") throw new Error(`body error ${n.reason}`);
      pos += n;
      if (!c.decoder.done) break;
      c.m.body = Buffer.concat(c.body).toString("latin1");
      if (c.decoder instanceof ChunkedDecoder) c.m.trailers = c.decoder.trailers;
      out.push(c.m);
      cur = undefined;
    }
    pending = pending.subarray(pos);
  }
  expect(cur).toBeUndefined();
  expect(pending.length).toBe(0);
  return out;
}

function roundTrips(kind: "request" | "response", cases: number, baseSeed: number): void {
  for (let seed = baseSeed; seed < baseSeed + cases; seed++) {
    const g = generator(seed);
    const messages: Message[] = [];
    let wire = "";
    for (let n = 1 + g.int(6); n > 0; n--) {
      const [w, m] = kind === "request" ? g.request() : g.response();
      wire += w;
      messages.push(m);
    }
    const b = Buffer.from(wire, "latin1");
    const cuts = new Set<number>();
    for (let n = g.int(12); n > 0; n--) cuts.add(1 + g.int(b.length - 1));
    const bounds = [0, ...[...cuts].sort((x, y) => x - y), b.length];
    const pieces = bounds.slice(1).map((end, i) => Buffer.from(b.subarray(bounds[i], end)));
    let got: Message[];
    try {
      got = parseStream(pieces, kind === "response");
    } catch (e) {
      throw new Error(`seed ${seed}: ${(e as Error).message}\n${JSON.stringify(wire)}`);
    }
    if (!Bun.deepEquals(got, messages)) expect({ seed, got }).toEqual({ seed, got: messages });
  }
}

describe("randomized round trips (seeded)", () => {
  test("3000 pipelined request streams cut at random points parse to what was generated", () => {
    roundTrips("request", 3000, 1);
  });
  test("2000 pipelined response streams cut at random points parse to what was generated", () => {
    roundTrips("response", 2000, 100_000);
  });
});

describe("remembered values (ValueMemo, backend connections)", () => {
  test("5000 heads whose values repeat, change by one byte or overflow the memo parse the same with and without it", () => {
    const rnd = prng(7);
    const int = (n: number) => Math.floor(rnd() * n);
    // Interned names (remembered) and one that is not; values of equal length that differ, a long one, obs-text.
    const names = ["Server", "content-type", "Cache-Control", "ETag", "date", "x-custom-thing"];
    const values = ["nginx/1.22.1", "nginx/1.22.2", "text/plain", "text/html!", "no-store", "\"abc\"", "\"abd\"", "caf\xe9", "v".repeat(65), "v".repeat(64), "a  b"];
    const memo = new ValueMemo();
    for (let i = 0; i < 5000; i++) {
      let wire = "HTTP/1.1 200 OK\r\n";
      for (let n = int(5); n > 0; n--) wire += `${names[int(names.length)]}: ${values[int(values.length)]}\r\n`;
      wire += "content-length: 0\r\n\r\n";
      const b = Buffer.from(wire, "latin1");
      const plain = parseResponseHead(b, 0, b.length, "GET");
      const remembered = parseResponseHead(b, 0, b.length, "GET", H1_DEFAULT_LIMITS, false, memo);
      // The buffer is reused by the next read: remembered strings must not depend on it.
      b.fill(0x41);
      if (!Bun.deepEquals(remembered, plain)) expect({ i, remembered }).toEqual({ i, remembered: plain });
    }
  });
});
