import { describe, expect, test } from "bun:test";
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, huffmanDecode, huffmanEncode, huffmanLength } from "../../../src/l7/h2/huffman.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

function decode(b: Uint8Array): string | null {
  const out = new Uint8Array(Math.ceil((b.length * 8) / 5));
  const n = huffmanDecode(b, 0, b.length, out, 0);
  return n < 0 ? null : Buffer.from(out.subarray(0, n)).toString("latin1");
}

function encode(s: string): string {
  const out = new Uint8Array(huffmanLength(s));
  expect(huffmanEncode(s, out, 0)).toBe(out.length);
  return Buffer.from(out).toString("hex");
}

describe("Huffman code table (RFC 7541 Appendix B)", () => {
  // [symbol, code as in the RFC, length]
  const samples: Array<[number, number, number]> = [
    [0, 0x1ff8, 13],
    [1, 0x7fffd8, 23],
    [10, 0x3ffffffc, 30],
    [32, 0x14, 6],
    [48, 0x0, 5],
    [97, 0x3, 5],
    [122, 0x7b, 7],
    [127, 0xffffffc, 28],
    [200, 0x3ffffe2, 26],
    [255, 0x3ffffee, 26],
    [256, 0x3fffffff, 30],
  ];
  for (const [sym, code, len] of samples) {
    test(`symbol ${sym} is ${code.toString(16)} in ${len} bits`, () => {
      expect(HUFFMAN_CODES[sym]).toBe(code);
      expect(HUFFMAN_LENGTHS[sym]).toBe(len);
    });
  }
});

describe("RFC 7541 Appendix C strings", () => {
  const vectors: Array<[string, string]> = [
    ["www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"],
    ["no-cache", "a8eb 1064 9cbf"],
    ["custom-key", "25a8 49e9 5ba9 7d7f"],
    ["custom-value", "25a8 49e9 5bb8 e8b4 bf"],
    ["302", "6402"],
    ["private", "aec3 771a 4b"],
    ["Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"],
    ["https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"],
    ["gzip", "9bd9 ab"],
    ["foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1", "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"],
  ];
  for (const [plain, coded] of vectors) {
    test(`"${plain}" encodes and decodes`, () => {
      expect(encode(plain)).toBe(coded.replace(/\s+/g, ""));
      expect(decode(hex(coded))).toBe(plain);
    });
  }
});

describe("round trips", () => {
  test("every octet alone, and all 256 octets in a row", () => {
    for (let c = 0; c < 256; c++) {
      const s = String.fromCharCode(c);
      expect(decode(hex(encode(s)))).toBe(s);
    }
    let all = "";
    for (let c = 255; c >= 0; c--) all += String.fromCharCode(c);
    expect(decode(hex(encode(all)))).toBe(all);
  });

  test("empty string is zero bytes", () => {
    expect(encode("")).toBe("");
    expect(decode(new Uint8Array(0))).toBe("");
  });

  test("random binary strings", () => {
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      let s = "";
      const n = i % 97;
      for (let j = 0; j < n; j++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        s += String.fromCharCode((seed >>> 16) & 0xff);
      }
      expect(decode(hex(encode(s)))).toBe(s);
    }
  });
});

describe("invalid input (COMPRESSION_ERROR upstream)", () => {
  const bad: Array<[string, string]> = [
    ["8 bits of padding", "ff"],
    ["'a' then a byte of padding", "1f ff"],
    ["'a' then 2 bytes of padding", "1f ff ff"],
    ["'a' then 29 bits of padding", "ff 9f ff ff ff"],
    ["padding ending on a partial symbol", "52 bc 30 ff ff ff ff"],
    ["padding of zero bits", "00"],
    ["'0' then padding with a zero bit", "02"],
    ["EOS followed by '?'", "ff ff ff ff fc"],
    ["a lone EOS", "ff ff ff ff"],
  ];
  for (const [what, h] of bad) {
    test(what, () => expect(decode(hex(h))).toBeNull());
  }

  test("1..7 bits of one-padding are accepted", () => {
    // "0" = 00000 (5 bits) + 3 bits of padding.
    expect(decode(hex("07"))).toBe("0");
    // "00" = 10 bits + 6 bits of padding.
    expect(decode(hex("00 3f"))).toBe("00");
  });
});
