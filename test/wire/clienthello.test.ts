import { beforeAll, describe, expect, test } from "bun:test";
import { ClientHelloReader, parseClientHello, type HelloResult } from "../../src/wire/clienthello.ts";
import {
  bigHelloArgs,
  captureWithBun,
  captureWithCurl,
  captureWithOpenssl,
  handshakeBytes,
  frameRecords,
  padHello,
  reframeHello,
} from "./hello-fixtures.ts";

const MAX = 64 * 1024;
const enc = (s: string) => new TextEncoder().encode(s);

let openssl: Uint8Array; // s_client, SNI a.test, ALPN h2,http/1.1
let curl: Uint8Array;
let bun: Uint8Array;
let noSni: Uint8Array;
let tls12: Uint8Array;
let big: Uint8Array; // a real >16 KB hello: OpenSSL itself splits it over two records

beforeAll(async () => {
  // Sequential: the machine is small and each capture spawns a client.
  openssl = await captureWithOpenssl({ sni: "a.test", alpn: ["h2", "http/1.1"] });
  curl = await captureWithCurl("a.test");
  bun = await captureWithBun("bun.a.test", ["h2", "http/1.1"]);
  noSni = await captureWithOpenssl({});
  tls12 = await captureWithOpenssl({ sni: "old.a.test", args: ["-tls1_2"] });
  big = await captureWithOpenssl({ sni: "big.a.test", args: bigHelloArgs(20000) });
}, 90_000);

function ok(r: HelloResult) {
  if (r.status !== "ok") throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r;
}

function recordCount(b: Uint8Array): number {
  let n = 0;
  for (let p = 0; p + 5 <= b.length; p += 5 + ((b[p + 3] << 8) | b[p + 4])) n++;
  return n;
}

/** Feeds `b` one byte at a time and returns the first non-need_more result. */
function feedBytewise(b: Uint8Array, max = MAX): { result: HelloResult; reader: ClientHelloReader; at: number } {
  const reader = new ClientHelloReader(max);
  for (let i = 0; i < b.length; i++) {
    const r = reader.push(b.subarray(i, i + 1));
    if (r.status !== "need_more") return { result: r, reader, at: i + 1 };
  }
  return { result: reader.result(), reader, at: b.length };
}

/** Returns a copy of the hello with its handshake bytes rewritten by `edit`, re-framed in one record. */
function editHandshake(rec: Uint8Array, edit: (hs: Uint8Array) => Uint8Array | void): Uint8Array {
  const hs = new Uint8Array(handshakeBytes(rec));
  return frameRecords(edit(hs) ?? hs);
}

/** Offset of the extensions block (its 2-byte length) in a handshake message. */
function extensionsAt(hs: Uint8Array): number {
  let p = 4 + 2 + 32;
  p += 1 + hs[p];
  p += 2 + ((hs[p] << 8) | hs[p + 1]);
  p += 1 + hs[p];
  return p;
}

describe("SNI and ALPN from real clients", () => {
  test("openssl s_client: SNI a.test and ALPN h2,http/1.1, input left untouched", () => {
    const copy = new Uint8Array(openssl);
    const r = ok(parseClientHello(openssl, MAX));
    expect(r.sni).toBe("a.test");
    expect(r.alpn).toEqual(["h2", "http/1.1"]);
    expect(r.supportedVersions).toContain(0x0304);
    expect(r.legacyVersion).toBe(0x0303);
    expect(r.length).toBe(openssl.length);
    expect(openssl).toEqual(copy); // peeked, not consumed
  });

  test("curl --resolve: SNI and ALPN h2 + http/1.1", () => {
    const r = ok(parseClientHello(curl, MAX));
    expect(r.sni).toBe("a.test");
    expect(r.alpn).toEqual(["h2", "http/1.1"]);
  });

  test("Bun tls.connect: SNI and ALPN", () => {
    const r = ok(parseClientHello(bun, MAX));
    expect(r.sni).toBe("bun.a.test");
    expect(r.alpn).toEqual(["h2", "http/1.1"]);
  });

  test("TLS 1.2-only client: SNI read, no supported_versions", () => {
    const r = ok(parseClientHello(tls12, MAX));
    expect(r.sni).toBe("old.a.test");
    expect(r.supportedVersions).toEqual([]);
  });

  test("a hello without server_name parses ok with sni null (the caller rejects it as no_sni)", () => {
    const r = ok(parseClientHello(noSni, MAX));
    expect(r.sni).toBeNull();
  });

  test("a real 20 KB ClientHello split by OpenSSL over two TLS records", () => {
    expect(big.length).toBeGreaterThan(16384);
    expect(recordCount(big)).toBe(2);
    const r = ok(parseClientHello(big, MAX));
    expect(r.sni).toBe("big.a.test");
    expect(r.alpn.at(-1)).toBe("http/1.1");
  });

  test("bytes after the hello (pipelined data) do not change the result", () => {
    const withTail = Buffer.concat([openssl, enc("\x17\x03\x03\x00\x05hello")]);
    const r = ok(parseClientHello(withTail, MAX));
    expect(r.sni).toBe("a.test");
    expect(r.length).toBe(openssl.length);
  });
});

describe("segmentation and record framing", () => {
  test("every strict prefix of a real hello is need_more", () => {
    for (let n = 0; n < openssl.length; n++) expect(parseClientHello(openssl.subarray(0, n), MAX).status).toBe("need_more");
  });

  test("a real hello delivered one byte at a time completes exactly at its last byte", () => {
    const { result, reader, at } = feedBytewise(curl);
    expect(ok(result).sni).toBe("a.test");
    expect(at).toBe(curl.length);
    expect(reader.bytes()).toEqual(curl);
  });

  test("the handshake message re-framed into 3 TLS records", () => {
    const three = reframeHello(openssl, 3);
    expect(recordCount(three)).toBe(3);
    const r = ok(parseClientHello(three, MAX));
    expect(r.sni).toBe("a.test");
    expect(r.alpn).toEqual(["h2", "http/1.1"]);
    expect(ok(feedBytewise(three).result).sni).toBe("a.test");
  });

  test("one-byte records (the handshake header itself split across records)", () => {
    const hsLen = handshakeBytes(openssl).length;
    const tiny = reframeHello(openssl, hsLen);
    expect(recordCount(tiny)).toBe(hsLen);
    expect(ok(parseClientHello(tiny, MAX)).sni).toBe("a.test");
    expect(ok(feedBytewise(tiny).result).sni).toBe("a.test");
  });

  for (const size of [6 * 1024, 12 * 1024, 16 * 1024, 30 * 1024]) {
    test(`a ${size / 1024} KB hello (padding extension) delivered one byte at a time`, () => {
      const padded = padHello(openssl, size);
      expect(padded.length).toBeGreaterThanOrEqual(size - 16);
      const { result, reader } = feedBytewise(padded);
      const r = ok(result);
      expect(r.sni).toBe("a.test");
      expect(r.length).toBe(padded.length);
      expect(reader.bytes()).toEqual(padded);
    });
  }

  test("the reader keeps bytes pushed after the hello for replay", () => {
    const reader = new ClientHelloReader(MAX);
    const tail = enc("after");
    const r = reader.push(Buffer.concat([openssl, tail]));
    expect(ok(r).length).toBe(openssl.length);
    reader.push(enc("-more"));
    expect(Buffer.from(reader.bytes()).toString("latin1")).toEndWith("after-more");
    expect(reader.bytes().length).toBe(openssl.length + 10);
  });

  test("peer close mid-hello is truncated; deadline mid-hello is timeout", () => {
    const a = new ClientHelloReader(MAX);
    a.push(openssl.subarray(0, 100));
    expect(a.end()).toEqual({ status: "error", reason: "truncated" });
    const b = new ClientHelloReader(MAX);
    b.push(openssl.subarray(0, 3));
    expect(b.expire()).toEqual({ status: "error", reason: "timeout" });
    const c = new ClientHelloReader(MAX);
    c.push(openssl);
    expect(c.end().status).toBe("ok"); // a finished hello stays finished
  });

  test("memory is bounded by bytes, not records: 200 pending 64 KB hellos of 1-byte records cost < 128 KiB each", () => {
    // hello_max_bytes of 1-byte records: ~10,800 records, the worst record count a client can send.
    const wire = frameRecords(handshakeBytes(padHello(openssl, 10_800)), 1);
    expect(wire.length).toBeLessThanOrEqual(MAX);
    expect(recordCount(wire)).toBeGreaterThan(10_000);
    const PER_READER_MAX = 2 * MAX; // the bytes themselves (≤ MAX) + the handshake copy (≤ MAX); was ~660 KiB
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    const readers: ClientHelloReader[] = [];
    for (let i = 0; i < 200; i++) {
      const r = new ClientHelloReader(MAX);
      // Everything but the last record, in TCP-sized chunks: the connection is pending.
      for (let p = 0; p < wire.length - 6; p += 1460) r.push(wire.subarray(p, Math.min(p + 1460, wire.length - 6)));
      expect(r.result().status).toBe("need_more");
      readers.push(r);
    }
    Bun.gc(true);
    const perReader = (process.memoryUsage().heapUsed - before) / readers.length;
    expect(perReader).toBeLessThan(PER_READER_MAX);
    // And they still complete correctly.
    const done = ok(readers[0].push(wire.subarray(wire.length - 6)));
    expect(done.sni).toBe("a.test");
    expect(done.length).toBe(wire.length);
  });

  test("a 64 KB hello fed in one-byte pushes stays linear (well under a second of work)", () => {
    const padded = padHello(openssl, 60 * 1024);
    const t0 = performance.now();
    expect(ok(feedBytewise(padded, 128 * 1024).result).sni).toBe("a.test");
    expect(performance.now() - t0).toBeLessThan(3000); // generous: the machine is shared
  });
});

describe("rejections", () => {
  const reason = (b: Uint8Array, max = MAX) => {
    const r = parseClientHello(b, max);
    return r.status === "error" ? r.reason : r.status;
  };

  test("plain HTTP is not_tls from its first byte", () => {
    expect(reason(enc("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))).toBe("not_tls");
    expect(reason(enc("G"))).toBe("not_tls");
  });

  test("an SSLv2-style ClientHello is not_tls", () => {
    // 2-byte header with the high bit set, msg type 1, version 3.1, then lengths.
    const v2 = new Uint8Array([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]);
    expect(reason(v2)).toBe("not_tls");
  });

  test("garbage and a handshake record with a non-3 major version are not_tls", () => {
    expect(reason(new Uint8Array([0x00, 0x01, 0x02]))).toBe("not_tls");
    expect(reason(new Uint8Array([0x16, 0x02]))).toBe("not_tls");
    expect(reason(new Uint8Array([0x17, 0x03, 0x03, 0x00, 0x10]))).toBe("not_tls"); // application data first
  });

  test("a hello larger than maxBytes is too_large, known from the headers alone", () => {
    expect(reason(openssl, openssl.length - 1)).toBe("too_large");
    expect(reason(openssl, openssl.length)).toBe("ok"); // the cap is inclusive
    const padded = padHello(openssl, 30 * 1024);
    expect(reason(padded.subarray(0, 9), 20 * 1024)).toBe("too_large"); // record + handshake header say 30 KB
    expect(reason(padded.subarray(0, 5), 10 * 1024)).toBe("too_large"); // the first 16 KB record alone overflows
    expect(feedBytewise(padded, 20 * 1024).at).toBeLessThanOrEqual(9);
  });

  test("zero-length and over-2^14 records are malformed", () => {
    expect(reason(new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x00]))).toBe("malformed");
    expect(reason(new Uint8Array([0x16, 0x03, 0x01, 0x40, 0x01]))).toBe("malformed"); // 16385
  });

  test("a handshake message that is not a ClientHello is malformed", () => {
    expect(reason(editHandshake(openssl, (hs) => void (hs[0] = 2)))).toBe("malformed"); // ServerHello
  });

  test("a non-handshake record before the hello is complete is malformed", () => {
    const two = reframeHello(openssl, 2);
    const firstLen = (two[3] << 8) | two[4];
    const bad = new Uint8Array(two);
    bad[5 + firstLen] = 23; // second record becomes application_data
    expect(reason(bad)).toBe("malformed");
  });

  test("an extension length overrunning the extensions block is malformed", () => {
    const bad = editHandshake(openssl, (hs) => {
      const first = extensionsAt(hs) + 2; // first extension: type(2) len(2)
      hs[first + 2] = 0xff;
    });
    expect(reason(bad)).toBe("malformed");
  });

  test("an extensions block shorter than the message is malformed", () => {
    const bad = editHandshake(openssl, (hs) => {
      const at = extensionsAt(hs);
      const n = ((hs[at] << 8) | hs[at + 1]) - 1;
      hs[at] = n >> 8;
      hs[at + 1] = n & 0xff;
    });
    expect(reason(bad)).toBe("malformed");
  });

  test("a session id longer than 32 bytes is malformed", () => {
    expect(reason(editHandshake(openssl, (hs) => void (hs[4 + 2 + 32] = 33)))).toBe("malformed");
  });

  test("a server_name that is not a hostname is malformed", () => {
    const hs = handshakeBytes(openssl);
    const at = Buffer.from(hs).indexOf("a.test");
    expect(at).toBeGreaterThan(0);
    for (const ch of [" ", "/", ":", "\0", "\xff"]) {
      const bad = editHandshake(openssl, (h) => void (h[at + 1] = ch.charCodeAt(0)));
      expect(reason(bad)).toBe("malformed");
    }
    expect(reason(editHandshake(openssl, (h) => void (h[at] = ".".charCodeAt(0))))).toBe("malformed"); // "..test"
  });

  test("duplicate extensions are malformed", () => {
    const bad = editHandshake(openssl, (hs) => {
      const at = extensionsAt(hs);
      const first = hs.subarray(at + 2, at + 2 + 4 + ((hs[at + 4] << 8) | hs[at + 5]));
      const out = Buffer.concat([hs, first]);
      const extLen = ((hs[at] << 8) | hs[at + 1]) + first.length;
      out[at] = extLen >> 8;
      out[at + 1] = extLen & 0xff;
      const body = out.length - 4;
      out[1] = body >> 16;
      out[2] = (body >> 8) & 0xff;
      out[3] = body & 0xff;
      return out;
    });
    expect(reason(bad)).toBe("malformed");
  });
});

describe("robustness", () => {
  test("2000 random mutations and truncations of real hellos never throw, and the reader agrees with the parser", () => {
    // Deterministic PRNG so a failure is reproducible.
    let seed = 0x12345678;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const sources = [openssl, curl, bun, reframeHello(openssl, 3), padHello(curl, 7000)];
    const counts: Record<string, number> = {};
    for (let i = 0; i < 2000; i++) {
      const src = sources[i % sources.length];
      let b = new Uint8Array(src);
      const kind = rnd(4);
      if (kind === 0) b = b.subarray(0, rnd(b.length)); // truncation
      else if (kind === 1) for (let k = 0; k <= rnd(4); k++) b[rnd(b.length)] = rnd(256); // byte flips
      else if (kind === 2) b[5 + rnd(Math.min(200, b.length - 5))] ^= 0xff; // hit the headers and lengths
      else {
        const at = rnd(b.length); // insertion
        b = Buffer.concat([b.subarray(0, at), new Uint8Array([rnd(256)]), b.subarray(at)]);
      }
      const r = parseClientHello(b, MAX);
      const key = r.status === "error" ? r.reason : r.status;
      counts[key] = (counts[key] ?? 0) + 1;
      // Random-size pushes must reach the same verdict as one parse of the whole buffer.
      const reader = new ClientHelloReader(MAX);
      let rr: HelloResult = reader.result();
      for (let p = 0; p < b.length; ) {
        const n = 1 + rnd(700);
        rr = reader.push(b.subarray(p, p + n));
        p += n;
      }
      if (r.status !== "need_more") expect(rr.status === "error" ? rr.reason : rr.status).toBe(key);
      else expect(rr.status).toBe("need_more");
    }
    // The mutations really exercised several outcomes.
    expect(Object.keys(counts).length).toBeGreaterThanOrEqual(3);
  });
});
