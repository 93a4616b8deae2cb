import { describe, expect, test } from "bun:test";
import { H2_HPACK_DECODE_MEMO_BYTES, H2_HPACK_LITERAL_CACHE_BYTES } from "../../../src/limits.ts";
import { ByteWriter } from "../../../src/l7/h2/bytes.ts";
import { H2_ERROR, H2Error } from "../../../src/l7/h2/errors.ts";
import {
  H2_HPACK_MAX_SIZE_UPDATES,
  H2_MAX_HEADER_LIST_BYTES,
  HpackDecoder,
  HpackEncoder,
  STATIC_TABLE,
  type HeaderList,
} from "../../../src/l7/h2/hpack.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function ok(r: HeaderList | H2Error): HeaderList {
  if (r instanceof H2Error) throw new Error(`unexpected ${r}`);
  return r;
}

function fail(r: HeaderList | H2Error): H2Error {
  if (!(r instanceof H2Error)) throw new Error(`expected an error, got ${JSON.stringify(r.fields)}`);
  expect(r.scope).toBe("connection");
  expect(r.code).toBe(H2_ERROR.COMPRESSION_ERROR);
  return r;
}

/** Decodes `block` with a memo decoder and a plain one: the same list, flags and table. False when both failed (alike). */
function decodeAlike(memo: HpackDecoder, plain: HpackDecoder, block: Uint8Array): boolean {
  const a = memo.decode(block);
  const b = plain.decode(block);
  if (a instanceof H2Error || b instanceof H2Error) {
    expect(String(a)).toBe(String(b));
    return false;
  }
  expect(a.fields).toEqual(b.fields);
  expect(a.neverIndexed).toEqual(b.neverIndexed);
  expect([a.overflow, a.checked, a.bytes]).toEqual([b.overflow, b.checked, b.bytes]);
  expect(memo.tableEntries()).toEqual(plain.tableEntries());
  expect([memo.tableSize, memo.tableMaxSize]).toEqual([plain.tableSize, plain.tableMaxSize]);
  return true;
}

function encode(enc: HpackEncoder, fields: string[], neverIndex?: readonly string[]): string {
  const w = new ByteWriter();
  enc.encode(fields, w, neverIndex);
  return toHex(w.view());
}

interface Step {
  block: string;
  fields: string[];
  table: Array<[string, string]>;
  size: number;
}

// RFC 7541 Appendix C.3 / C.4: three requests on one connection.
const REQ_FIELDS = [
  [":method", "GET", ":scheme", "http", ":path", "/", ":authority", "www.example.com"],
  [":method", "GET", ":scheme", "http", ":path", "/", ":authority", "www.example.com", "cache-control", "no-cache"],
  [":method", "GET", ":scheme", "https", ":path", "/index.html", ":authority", "www.example.com", "custom-key", "custom-value"],
];
const REQ_TABLES: Array<Array<[string, string]>> = [
  [[":authority", "www.example.com"]],
  [["cache-control", "no-cache"], [":authority", "www.example.com"]],
  [["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]],
];
const REQ_SIZES = [57, 110, 164];
const C3 = ["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", "8286 84be 5808 6e6f 2d63 6163 6865", "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"];
const C4 = ["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", "8286 84be 5886 a8eb 1064 9cbf", "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"];

// RFC 7541 Appendix C.5 / C.6: three responses, SETTINGS_HEADER_TABLE_SIZE 256 (evictions).
const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const LOC = "https://www.example.com";
const RES_FIELDS = [
  [":status", "302", "cache-control", "private", "date", DATE1, "location", LOC],
  [":status", "307", "cache-control", "private", "date", DATE1, "location", LOC],
  [":status", "200", "cache-control", "private", "date", DATE2, "location", LOC, "content-encoding", "gzip", "set-cookie", COOKIE],
];
const RES_TABLES: Array<Array<[string, string]>> = [
  [["location", LOC], ["date", DATE1], ["cache-control", "private"], [":status", "302"]],
  [[":status", "307"], ["location", LOC], ["date", DATE1], ["cache-control", "private"]],
  [["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE2]],
];
const RES_SIZES = [222, 222, 215];
const C5 = [
  `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
   2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
  "4803 3330 37c1 c0bf",
  `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
   54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
   5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
];
const C6 = [
  `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
   2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
  "4883 640e ffc1 c0bf",
  `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
   77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
   9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
];

const steps = (blocks: string[], fields: string[][], tables: Array<Array<[string, string]>>, sizes: number[]): Step[] =>
  blocks.map((block, i) => ({ block, fields: fields[i], table: tables[i], size: sizes[i] }));

const SEQUENCES: Array<{ name: string; tableSize: number; huffman: "never" | "always"; steps: Step[] }> = [
  { name: "C.3 requests without Huffman", tableSize: 4096, huffman: "never", steps: steps(C3, REQ_FIELDS, REQ_TABLES, REQ_SIZES) },
  { name: "C.4 requests with Huffman", tableSize: 4096, huffman: "always", steps: steps(C4, REQ_FIELDS, REQ_TABLES, REQ_SIZES) },
  { name: "C.5 responses without Huffman", tableSize: 256, huffman: "never", steps: steps(C5, RES_FIELDS, RES_TABLES, RES_SIZES) },
  { name: "C.6 responses with Huffman", tableSize: 256, huffman: "always", steps: steps(C6, RES_FIELDS, RES_TABLES, RES_SIZES) },
];

describe("RFC 7541 Appendix C", () => {
  test("C.2.1 literal with indexing: decoded, and added to the table", () => {
    const d = new HpackDecoder();
    const r = ok(d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")));
    expect(r.fields).toEqual(["custom-key", "custom-header"]);
    expect(d.tableEntries()).toEqual([["custom-key", "custom-header"]]);
    expect(d.tableSize).toBe(55);
    expect(encode(new HpackEncoder({ huffman: "never" }), ["custom-key", "custom-header"])).toBe(
      "400a637573746f6d2d6b65790d637573746f6d2d686561646572",
    );
  });

  test("C.2.2 literal without indexing: decoded, table untouched", () => {
    const d = new HpackDecoder();
    expect(ok(d.decode(hex("040c 2f73 616d 706c 652f 7061 7468"))).fields).toEqual([":path", "/sample/path"]);
    expect(d.tableEntries()).toEqual([]);
    // :path is one of the fields we never index, as in the example.
    expect(encode(new HpackEncoder({ huffman: "never" }), [":path", "/sample/path"])).toBe("040c2f73616d706c652f70617468");
  });

  test("C.2.3 literal never indexed: reported in neverIndexed, table untouched", () => {
    const d = new HpackDecoder();
    const r = ok(d.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74")));
    expect(r.fields).toEqual(["password", "secret"]);
    expect(r.neverIndexed).toEqual(["password"]);
    expect(d.tableEntries()).toEqual([]);
    const enc = new HpackEncoder({ huffman: "never" });
    expect(encode(enc, ["password", "secret"], r.neverIndexed ?? [])).toBe("100870617373776f726406736563726574");
    expect(enc.tableEntries()).toEqual([]);
  });

  test("C.2.4 indexed field from the static table", () => {
    const d = new HpackDecoder();
    expect(ok(d.decode(hex("82"))).fields).toEqual([":method", "GET"]);
    expect(d.tableEntries()).toEqual([]);
    expect(encode(new HpackEncoder(), [":method", "GET"])).toBe("82");
  });

  for (const seq of SEQUENCES) {
    test(`${seq.name}: decoder gives the fields and the table after each block`, () => {
      const d = new HpackDecoder({ maxTableSize: seq.tableSize });
      for (const step of seq.steps) {
        const r = ok(d.decode(hex(step.block)));
        expect(r.fields).toEqual(step.fields);
        expect(r.overflow).toBe(false);
        expect(d.tableEntries()).toEqual(step.table);
        expect(d.tableSize).toBe(step.size);
      }
    });

    test(`${seq.name}: encoder (indexing everything) produces the RFC bytes and table`, () => {
      const enc = new HpackEncoder({ huffman: seq.huffman, indexAll: true, maxTableSize: seq.tableSize });
      seq.steps.forEach((step, i) => {
        // A 256-octet table is announced to the peer with a size update (3f e1 01) in the first block.
        const prefix = i === 0 && seq.tableSize !== 4096 ? "3fe101" : "";
        expect(encode(enc, step.fields)).toBe(prefix + toHex(hex(step.block)));
        expect(enc.tableEntries()).toEqual(step.table);
        expect(enc.tableSize).toBe(step.size);
      });
    });

    test(`${seq.name}: encoder output with default policy decodes to the same fields`, () => {
      const enc = new HpackEncoder({ huffman: seq.huffman, maxTableSize: seq.tableSize });
      const d = new HpackDecoder();
      for (const step of seq.steps) {
        const w = new ByteWriter();
        enc.encode(step.fields, w);
        expect(ok(d.decode(w.view())).fields).toEqual(step.fields);
        expect(d.tableEntries()).toEqual(enc.tableEntries());
      }
    });
  }
});

describe("decoder errors are connection COMPRESSION_ERRORs", () => {
  const cases: Array<[string, string, string]> = [
    ["index 0", "80", "hpack_index_zero"],
    ["index past the static table with an empty dynamic table", "be", "hpack_index_out_of_range"],
    ["literal name index past the table", "7f00 0161", "hpack_index_out_of_range"],
    ["size update above the advertised setting", "3fe2 1f", "hpack_size_update_too_large"],
    ["size update after a field", "82 3f e1 01", "hpack_size_update_after_field"],
    ["three size updates in a row", "20 20 20 82", "hpack_too_many_size_updates"],
    ["integer overflowing 2^31", "ff ff ff ff ff 0f", "hpack_integer_overflow"],
    ["integer with six continuation octets", "ff 80 80 80 80 80 00", "hpack_integer_too_long"],
    ["integer cut short", "ff 80", "hpack_truncated_integer"],
    ["string longer than the block", "40 05 61 62", "hpack_truncated_string"],
    ["literal without its value", "40 01 61", "hpack_truncated_string"],
    ["Huffman padding longer than 7 bits", "00 01 61 82 1f ff", "hpack_bad_huffman"],
    ["Huffman padding that is not all ones", "00 01 61 81 00", "hpack_bad_huffman"],
    ["Huffman string containing EOS", "00 01 61 85 ff ff ff ff fc", "hpack_bad_huffman"],
  ];
  for (const [what, block, reason] of cases) {
    test(what, () => {
      const d = new HpackDecoder();
      expect(fail(d.decode(hex(block))).reason).toBe(reason);
      // The table state is undefined after an error: the decoder stays failed.
      expect(fail(d.decode(hex("82"))).reason).toBe(reason);
    });
  }

  test(`two size updates (smallest, then final) are accepted; H2_HPACK_MAX_SIZE_UPDATES = ${H2_HPACK_MAX_SIZE_UPDATES}`, () => {
    const d = new HpackDecoder();
    expect(ok(d.decode(hex("20 3f e1 1f 82"))).fields).toEqual([":method", "GET"]);
    expect(d.tableMaxSize).toBe(4096);
  });

  test("after we lower SETTINGS_HEADER_TABLE_SIZE, a block without a size update is refused", () => {
    const d = new HpackDecoder();
    ok(d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")));
    d.setMaxTableSize(0);
    expect(d.tableEntries()).toEqual([]);
    expect(fail(d.decode(hex("82"))).reason).toBe("hpack_size_update_missing");
  });

  test("after we lower the setting, the update must not exceed the smallest value since the last one", () => {
    const d = new HpackDecoder();
    d.setMaxTableSize(100);
    d.setMaxTableSize(2000);
    expect(fail(d.decode(hex("3f 46 82"))).reason).toBe("hpack_size_update_too_large"); // 31 + 70 = 101 > 100
  });

  test("after we lower the setting, min then final size updates are accepted", () => {
    const d = new HpackDecoder();
    d.setMaxTableSize(100);
    d.setMaxTableSize(2000);
    // 3f 45 = 31 + 69 = 100, then 3f b1 0e = 31 + 49 + 14·128 = 1872
    expect(ok(d.decode(hex("3f 45 3f b1 0e 82"))).fields).toEqual([":method", "GET"]);
    expect(d.tableMaxSize).toBe(1872);
  });

  test("after we raise the setting, the peer may grow the table up to it", () => {
    const d = new HpackDecoder();
    d.setMaxTableSize(8192);
    expect(ok(d.decode(hex("82"))).fields).toEqual([":method", "GET"]); // no update required
    expect(ok(d.decode(hex("3f e1 3f 82"))).fields).toEqual([":method", "GET"]); // 31 + 97 + 63·128 = 8192
    expect(d.tableMaxSize).toBe(8192);
    expect(fail(d.decode(hex("3f e2 3f"))).reason).toBe("hpack_size_update_too_large");
  });
});

describe("decoding a range of a larger buffer (the session decodes blocks where they lie in the read chunk)", () => {
  test("only block[start, end) is read: the bytes around it change nothing", () => {
    const fields = [":method", "GET", ":path", "/a?b=1", "x-long-value", "v".repeat(300), "accept", "text/html"];
    const w = new ByteWriter();
    new HpackEncoder({ huffman: "never" }).encode(fields, w);
    const block = w.toBytes();
    const framed = new Uint8Array(block.length + 16).fill(0x82); // 0x82 = an indexed field, if it were read
    framed.set(block, 9);
    expect(ok(new HpackDecoder().decode(framed, 9, 9 + block.length)).fields).toEqual(fields);
    expect(ok(new HpackDecoder().decode(framed, 9, 9)).fields).toEqual([]);
  });

  test("the size update owed after we lower the setting is looked for at the range's start", () => {
    const d = new HpackDecoder();
    d.setMaxTableSize(0);
    expect(fail(d.decode(hex("20 82 82"), 1, 3)).reason).toBe("hpack_size_update_missing");
    const d2 = new HpackDecoder();
    d2.setMaxTableSize(0);
    expect(ok(d2.decode(hex("82 20 82"), 1, 3)).fields).toEqual([":method", "GET"]);
  });
});

describe("HeaderList.checked: the §8.2.1 character checks done while decoding", () => {
  const block = (enc: HpackEncoder, fields: string[]) => {
    const w = new ByteWriter();
    enc.encode(fields, w);
    return w.toBytes();
  };
  test("clean literals and table entries: checked; a bad name or value in a literal: not", () => {
    const enc = new HpackEncoder();
    const d = new HpackDecoder();
    expect(ok(d.decode(block(enc, [":method", "GET", ":path", "/", "x-a", "1"]))).checked).toBe(true);
    expect(ok(d.decode(block(enc, [":method", "GET", ":path", "/", "x-a", "1"]))).checked).toBe(true); // now indexed
    const neverIndexed = (f: string[]) => {
      const w = new ByteWriter();
      enc.encode(f, w, [f[0]]);
      return w.toBytes();
    };
    expect(ok(d.decode(neverIndexed(["X-Upper", "1"]))).checked).toBe(false);
    expect(ok(d.decode(neverIndexed(["x-sp", " lead"]))).checked).toBe(false);
    expect(ok(d.decode(neverIndexed(["x-lf", "a\nb"]))).checked).toBe(false);
    // Not inserted into the table: later clean lists are still checked.
    expect(ok(d.decode(block(enc, [":method", "GET", "x-b", "2"]))).checked).toBe(true);
  });
  test("once a bad entry is in the dynamic table, no list is checked any more (an index may name it)", () => {
    const enc = new HpackEncoder();
    const d = new HpackDecoder();
    expect(ok(d.decode(block(enc, ["x-bad", "a\u0000b"]))).checked).toBe(false);
    expect(ok(d.decode(block(enc, ["x-bad", "a\u0000b"]))).checked).toBe(false); // a bare index this time
    expect(ok(d.decode(block(enc, [":method", "GET"]))).checked).toBe(false);
  });
});

describe("remembered literal values (rememberLiterals, backend connections)", () => {
  /** Literal without indexing, static name `index` (< 127), raw or Huffman value. */
  const literal = (index: number, value: string, huffman = false): number[] => {
    const name = index < 15 ? [index] : [0x0f, index - 15];
    if (!huffman) return [...name, value.length, ...Buffer.from(value, "latin1")];
    const w = new ByteWriter();
    new HpackEncoder({ huffman: "always" }).encode(["x", value], w, ["x"]); // never-indexed, literal name "x": 0x10 0x01 'x' <H len> <bytes>
    return [...name, ...w.toBytes().subarray(3)];
  };
  const DATE = 33;
  const ETAG = 34;
  test("a repeated value decodes the same; a different value of the same length, or the same value Huffman-coded, is decoded afresh", () => {
    const d = new HpackDecoder({ rememberLiterals: true });
    const a = "Sun, 06 Dec 2026 23:15:00 GMT";
    const b = "Sun, 06 Dec 2026 23:15:01 GMT";
    expect(ok(d.decode(Uint8Array.from(literal(DATE, a)))).fields).toEqual(["date", a]);
    expect(ok(d.decode(Uint8Array.from(literal(DATE, a)))).fields).toEqual(["date", a]);
    expect(ok(d.decode(Uint8Array.from(literal(DATE, b)))).fields).toEqual(["date", b]);
    expect(ok(d.decode(Uint8Array.from(literal(DATE, b, true)))).fields).toEqual(["date", b]);
    expect(ok(d.decode(Uint8Array.from([...literal(DATE, a), ...literal(ETAG, '"abc"'), ...literal(DATE, a)]))).fields).toEqual(["date", a, "etag", '"abc"', "date", a]);
    const long = "x".repeat(H2_HPACK_LITERAL_CACHE_BYTES + 1);
    expect(ok(d.decode(Uint8Array.from(literal(ETAG, long)))).fields).toEqual(["etag", long]);
    expect(ok(d.decode(Uint8Array.from(literal(ETAG, long)))).fields).toEqual(["etag", long]);
    expect(d.tableSize).toBe(0); // literals without indexing: the HPACK table is untouched
  });
  test("a remembered bad value keeps its verdict: the list is not checked the second time either", () => {
    const d = new HpackDecoder({ rememberLiterals: true });
    for (let i = 0; i < 2; i++) {
      const r = ok(d.decode(Uint8Array.from(literal(ETAG, "a\u0000b"))));
      expect(r.fields).toEqual(["etag", "a\u0000b"]);
      expect(r.checked).toBe(false);
    }
    expect(ok(d.decode(Uint8Array.from(literal(ETAG, "a-b")))).checked).toBe(true);
  });
  test("a truncated value is still a COMPRESSION_ERROR when the memo holds a longer match", () => {
    const d = new HpackDecoder({ rememberLiterals: true });
    ok(d.decode(Uint8Array.from(literal(ETAG, "abcdef"))));
    const cut = literal(ETAG, "abcdef").slice(0, -2);
    expect(fail(d.decode(Uint8Array.from(cut))).code).toBe(H2_ERROR.COMPRESSION_ERROR);
  });
});

describe("header list cap", () => {
  test("a list over the cap is reported as overflow with no fields, and the table stays in sync", () => {
    const d = new HpackDecoder({ maxHeaderListBytes: 100 });
    const enc = new HpackEncoder();
    const w = new ByteWriter();
    // Two indexed entries of 32 + 1 + 40 = 73 octets: the list is 146 > 100.
    enc.encode(["x-a", "a".repeat(40), "x-b", "b".repeat(40)], w);
    const r = ok(d.decode(w.view()));
    expect(r.overflow).toBe(true);
    expect(r.fields).toEqual([]);
    expect(r.bytes).toBe(2 * (3 + 40 + 32));
    // Both entries were still inserted: the next block refers to them.
    w.reset();
    enc.encode(["x-b", "b".repeat(40)], w);
    expect(toHex(w.view())).toBe("be");
    expect(ok(d.decode(w.view())).fields).toEqual(["x-b", "b".repeat(40)]);
  });

  test("a list exactly at the cap is accepted", () => {
    const d = new HpackDecoder({ maxHeaderListBytes: 3 + 40 + 32 });
    const r = ok(d.decode(hex("0003782d61" + "28" + "61".repeat(40))));
    expect(r.overflow).toBe(false);
    expect(r.fields).toEqual(["x-a", "a".repeat(40)]);
  });

  test(`HPACK bomb: 60k references to a 4 KiB entry stop at H2_MAX_HEADER_LIST_BYTES (${H2_MAX_HEADER_LIST_BYTES}) and store nothing`, () => {
    const d = new HpackDecoder();
    const big = "v".repeat(4000);
    const w = new ByteWriter();
    new HpackEncoder({ huffman: "never", indexAll: true }).encode(["x-bomb", big], w); // inserted: dynamic index 62
    const refs = 60_000;
    const block = new Uint8Array(w.len + refs);
    block.set(w.view());
    block.fill(0xbe, w.len);
    const before = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const r = ok(d.decode(block));
    const ms = performance.now() - t0;
    expect(r.overflow).toBe(true);
    expect(r.fields.length).toBe(0);
    expect(r.bytes).toBe((refs + 1) * (6 + 4000 + 32)); // ~242 MB had it been materialized
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(8 * 1024 * 1024);
    expect(ms).toBeLessThan(200);
    expect(d.tableEntries()).toEqual([["x-bomb", big]]);
  });
});

describe("encoder", () => {
  test("authorization, proxy-authorization and short cookies are never indexed; long cookies are", () => {
    const enc = new HpackEncoder({ huffman: "never" });
    const d = new HpackDecoder();
    const fields = ["authorization", "Basic Zm9vOmJhcg==", "proxy-authorization", "x", "cookie", "a=b", "cookie", "session=0123456789abcdefghij"];
    const w = new ByteWriter();
    enc.encode(fields, w);
    const r = ok(d.decode(w.view()));
    expect(r.fields).toEqual(fields);
    expect(r.neverIndexed).toEqual(["authorization", "proxy-authorization", "cookie"]);
    expect(enc.tableEntries()).toEqual([["cookie", "session=0123456789abcdefghij"]]);
  });

  test("names passed as neverIndex are sent never-indexed even when a full match exists", () => {
    const enc = new HpackEncoder({ huffman: "never" });
    const w = new ByteWriter();
    enc.encode(["x-token", "secret"], w);
    w.reset();
    enc.encode(["x-token", "secret"], w, ["x-token"]);
    expect(toHex(w.view())).toBe("1f2f06736563726574"); // 0001 + name index 62 (15 + 47), literal value
  });

  test("repeat of a typical response head is a handful of bytes", () => {
    const enc = new HpackEncoder();
    const head = [":status", "200", "content-type", "text/html; charset=utf-8", "content-length", "1234", "date", DATE1, "server", "mc-proxy"];
    const w = new ByteWriter();
    enc.encode(head, w);
    const first = w.len;
    w.reset();
    enc.encode(head, w);
    // :status, content-type, date, server indexed (1 byte each); content-length
    // without indexing: name index 28 (2 bytes) + length + "1234" in 3 Huffman bytes.
    expect(w.len).toBe(10);
    expect(first).toBeGreaterThan(40);
  });

  test("peer's SETTINGS_HEADER_TABLE_SIZE 0 then 4096: min and final size updates are emitted once", () => {
    const enc = new HpackEncoder();
    const w = new ByteWriter();
    enc.encode(["x-a", "1"], w);
    expect(enc.tableSize).toBe(36);
    enc.setPeerMaxTableSize(0);
    enc.setPeerMaxTableSize(4096);
    w.reset();
    enc.encode([":method", "GET"], w);
    expect(toHex(w.view())).toBe("20" + "3fe11f" + "82");
    expect(enc.tableSize).toBe(0);
    w.reset();
    enc.encode([":method", "GET"], w);
    expect(toHex(w.view())).toBe("82");
  });

  test("peer's larger table is capped by our maxTableSize: no update needed", () => {
    const enc = new HpackEncoder();
    enc.setPeerMaxTableSize(1 << 20);
    const w = new ByteWriter();
    enc.encode([":method", "GET"], w);
    expect(toHex(w.view())).toBe("82");
  });

  test("an entry larger than 3/4 of the table is not indexed", () => {
    const enc = new HpackEncoder({ maxTableSize: 256 });
    const w = new ByteWriter();
    enc.encode(["x-big", "z".repeat(200)], w);
    expect(enc.tableEntries()).toEqual([]);
  });

  test("static table full matches: every static entry with a value encodes to one byte", () => {
    const enc = new HpackEncoder();
    STATIC_TABLE.forEach(([name, value], i) => {
      if (value === "" || name === "authorization" || name === "proxy-authorization" || name === "cookie") return;
      const w = new ByteWriter();
      enc.encode([name, value], w);
      expect(Array.from(w.view())).toEqual([0x80 | (i + 1)]);
    });
  });
});

describe("randomized round trips", () => {
  // Deterministic PRNG so a failure reproduces.
  let seed = 0x1234567;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const NAMES = ["content-type", "x-custom", "accept", "cookie", "authorization", "date", ":path", "set-cookie", "x-a", "vary", "etag"];
  const randomString = (max: number) => {
    const n = rnd(max);
    let s = "";
    const binary = rnd(4) === 0;
    for (let i = 0; i < n; i++) s += String.fromCharCode(binary ? rnd(256) : 0x20 + rnd(95));
    return s;
  };
  const randomList = () => {
    const out: string[] = [];
    const n = 1 + rnd(20);
    for (let i = 0; i < n; i++) {
      const name = rnd(3) === 0 ? "x-" + randomString(12).toLowerCase().replace(/[^a-z]/g, "q") : NAMES[rnd(NAMES.length)];
      // Reuse earlier values often so the dynamic table gets hits.
      out.push(name, rnd(2) === 0 && out.length > 0 ? out[1 + 2 * rnd(out.length / 2)] : randomString(rnd(10) === 0 ? 300 : 40));
    }
    return out;
  };

  for (const [label, opts, peer] of [
    ["default table", {}, 4096],
    ["small table with evictions", { maxTableSize: 256 }, 4096],
    ["no Huffman", { huffman: "never" }, 4096],
    ["peer table 0", {}, 0],
  ] as const) {
    test(`2000 random header lists survive encode → decode (${label})`, () => {
      const enc = new HpackEncoder(opts);
      const dec = new HpackDecoder();
      enc.setPeerMaxTableSize(peer);
      const w = new ByteWriter(64);
      for (let i = 0; i < 2000; i++) {
        if (i === 1000) enc.setPeerMaxTableSize(rnd(2) ? 128 : 4096);
        const fields = randomList();
        w.reset();
        enc.encode(fields, w);
        const r = ok(dec.decode(w.view()));
        expect(r.fields).toEqual(fields);
        expect(dec.tableEntries()).toEqual(enc.tableEntries());
      }
    });
  }

  for (const [label, opts] of [
    ["default table", {}],
    ["small table with evictions", { maxTableSize: 256 }],
  ] as const) {
    test(`encodeBlock (memo of the last unchanged block) gives the bytes encode gives, over 3000 blocks that repeat (${label})`, () => {
      const memo = new HpackEncoder(opts);
      const plain = new HpackEncoder(opts);
      const dec = new HpackDecoder();
      const STATUS = [[":status", "200"], [":status", "404"]];
      // A few lists that come back often (a proxy's responses), some fresh ones.
      const pool = [randomList(), randomList(), ["server", "nginx", "content-type", "text/plain", "content-length", "100", "etag", '"abc"'], ["content-length", "5", "cookie", "short=1"]];
      const a = new ByteWriter(64);
      const b = new ByteWriter(64);
      let prevK = 0;
      for (let i = 0; i < 3000; i++) {
        if (i === 1500) {
          const size = rnd(2) ? 128 : 1024;
          memo.setPeerMaxTableSize(size);
          plain.setPeerMaxTableSize(size);
        }
        // Runs of the same list, as a proxy sees them.
        const k = (prevK = rnd(2) === 0 ? prevK : rnd(10));
        // Equal content in a fresh array (and sometimes fresh strings): the memo compares values, not identity.
        const fields = k < 8 ? pool[k % pool.length]!.map((x) => (rnd(2) ? x : (" " + x).slice(1))) : randomList();
        const head = rnd(3) === 0 ? null : STATUS[rnd(2)]!;
        const never = rnd(20) === 0 ? ["etag"] : null;
        a.reset();
        b.reset();
        memo.encodeBlock(head, fields, a, never);
        if (head !== null) plain.encode(head, b);
        plain.encode(fields, b, never);
        expect(toHex(a.view())).toBe(toHex(b.view()));
        const r = ok(dec.decode(a.view()));
        expect(r.fields).toEqual([...(head ?? []), ...fields]);
      }
      // The memo was used (and checked against the plain encoding each time).
      expect(memo.blockMemoHits).toBeGreaterThan(100);
    });
  }

  test("the decoder's block memo gives what decoding gives, over 4000 blocks that repeat, with replays of old blocks", () => {
    const STATUS = [":status", "200"];
    const pool = [randomList(), [...STATUS, "server", "nginx", "content-length", "100"], [":method", "GET", ":path", "/x", "user-agent", "h2load"], ["password", "secret"]];
    let hits = 0;
    let replays = 0;
    let pairs = 0;
    let blocks = 0;
    while (blocks < 4000) {
      // A fresh pair whenever both failed alike (a replayed block can name an entry no longer there).
      pairs++;
      const small = rnd(3) === 0;
      const cap = rnd(4) === 0 ? 200 : undefined; // sometimes a small header-list cap: overflowing lists
      const memo = new HpackDecoder({ maxTableSize: small ? 256 : 4096, maxHeaderListBytes: cap });
      const plain = new HpackDecoder({ maxTableSize: small ? 256 : 4096, maxHeaderListBytes: cap, blockMemo: false });
      const enc = new HpackEncoder({ maxTableSize: small ? 256 : 4096 });
      const sent: Uint8Array[] = [];
      const w = new ByteWriter(64);
      let prevK = 0;
      for (let i = 0; i < 400 && blocks < 4000; i++, blocks++) {
        let block: Uint8Array;
        if (sent.length > 0 && rnd(8) === 0) {
          block = sent[rnd(sent.length)]!;
          replays++;
        } else {
          const k = (prevK = rnd(3) === 0 ? rnd(6) : prevK);
          const fields = k < pool.length ? pool[k]! : randomList();
          w.reset();
          enc.encode(fields, w, rnd(10) === 0 ? ["password"] : null);
          block = w.view().slice();
          sent.push(block);
        }
        if (!decodeAlike(memo, plain, block)) break;
      }
      hits += memo.memoHits;
      expect(plain.memoHits).toBe(0);
    }
    // The memo was used, and replays of old blocks (stale for the table) were among the cases.
    expect(hits).toBeGreaterThan(500);
    expect(replays).toBeGreaterThan(200);
    expect(pairs).toBeGreaterThan(5);
  });

  // Blocks as servers such as nginx send them: literals with incremental indexing after static names,
  // which insert into the table each time but never read it. Built by hand (our encoder reads its table).
  function intBytes(out: number[], first: number, prefix: number, v: number): void {
    const max = (1 << prefix) - 1;
    if (v < max) return void out.push(first | v);
    out.push(first | max);
    v -= max;
    while (v >= 128) {
      out.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
  }
  function strBytes(out: number[], s: string): void {
    intBytes(out, 0, 7, s.length);
    for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  }
  // Mostly valid fields; now and then one that fails the §8.2.1 checks (the table is then "unchecked").
  const VALUES = ["nginx/1.22.1", "Mon, 07 Dec 2026 14:00:00 GMT", "text/html", "100", "bytes", "\"6937a1-64\"", "x".repeat(300)];
  const LIT_NAMES = ["etag", "x-trace", "accept-ranges"];
  const pickValue = () => (rnd(40) === 0 ? "bad\x01value" : VALUES[rnd(VALUES.length)]!);
  const pickName = () => (rnd(40) === 0 ? "Bad Name" : LIT_NAMES[rnd(LIT_NAMES.length)]!);
  function rawBlock(): Uint8Array {
    const out: number[] = [];
    if (rnd(12) === 0) intBytes(out, 0x20, 5, [0, 64, 256, 4096][rnd(4)]!); // size update
    const n = 1 + rnd(7);
    for (let i = 0; i < n; i++) {
      const kind = rnd(10);
      const dyn = rnd(8) === 0; // a name or entry from the dynamic table (maybe not there)
      const index = dyn ? 62 + rnd(6) : 1 + rnd(61);
      const value = pickValue();
      if (kind === 0) intBytes(out, 0x80, 7, index); // indexed
      else if (kind <= 5) {
        // with incremental indexing: static or dynamic name, or a new name
        if (rnd(4) === 0) {
          out.push(0x40);
          strBytes(out, pickName());
        } else intBytes(out, 0x40, 6, index);
        strBytes(out, value);
      } else {
        intBytes(out, kind === 9 ? 0x10 : 0x00, 4, index); // without indexing, or never indexed
        strBytes(out, value);
      }
    }
    return Uint8Array.from(out);
  }

  test("self-contained blocks (insertions, no table reads) repeat from the memo with their insertions replayed: list and table as decoding gives, over 6000 blocks", () => {
    let hits = 0;
    let blocks = 0;
    let pairs = 0;
    let pendingChecks = 0;
    while (blocks < 6000) {
      pairs++;
      const size = [256, 4096][rnd(2)]!;
      const cap = rnd(4) === 0 ? 300 : undefined;
      const literals = rnd(2) === 0;
      const memo = new HpackDecoder({ maxTableSize: size, maxHeaderListBytes: cap, rememberLiterals: literals });
      const plain = new HpackDecoder({ maxTableSize: size, maxHeaderListBytes: cap, rememberLiterals: literals, blockMemo: false });
      const pool = [rawBlock(), rawBlock(), rawBlock()];
      for (let i = 0; i < 500 && blocks < 6000; i++, blocks++) {
        if (rnd(40) === 0) {
          // A smaller SETTINGS_HEADER_TABLE_SIZE acknowledged: the next block must start with a size update.
          const to = [0, 64, 128][rnd(3)]!;
          memo.setMaxTableSize(to);
          plain.setMaxTableSize(to);
          pendingChecks++;
        }
        const block = rnd(5) === 0 ? rawBlock() : pool[rnd(pool.length)]!;
        if (!decodeAlike(memo, plain, block)) break;
      }
      hits += memo.memoHits;
    }
    expect(hits).toBeGreaterThan(1000);
    expect(pendingChecks).toBeGreaterThan(20);
    expect(pairs).toBeGreaterThan(10);
  });

  test("nginx's response head (it indexes server, date, content-type… every time) is decoded once and then repeats from the memo", () => {
    // Three identical HEADERS blocks nginx 1.22 sent for GET /100b on one h2c connection.
    const block = hex(
      "887689aa6355e580ae212e1f6196d07abe9403aa5f29141004e2816ae041702d298b46ff5f901d75d0620d263d4c1c892a56426c28e95c033130306c96d07abe9403aa5f29141004e2810dc086e36ea98b46ff008919085ad2b583aa62a3848fd24a8f",
    );
    const memo = new HpackDecoder({ rememberLiterals: true });
    const plain = new HpackDecoder({ rememberLiterals: true, blockMemo: false });
    const first = ok(memo.decode(block));
    for (let i = 0; i < 200; i++) {
      const a = ok(memo.decode(block));
      expect(a).toBe(first); // the same list object: consumers memoize by identity
      expect(ok(plain.decode(block)).fields).toEqual(a.fields);
    }
    ok(plain.decode(block));
    expect(memo.memoHits).toBe(200);
    expect(memo.tableEntries()).toEqual(plain.tableEntries());
    expect(memo.tableEntries().map(([n]) => n).slice(0, 5)).toEqual(["last-modified", "content-length", "content-type", "date", "server"]);
    expect(first.fields.slice(0, 4)).toEqual([":status", "200", "server", "nginx/1.22.1"]);
    // A size update required by our SETTINGS: the memo does not answer a block without one.
    memo.setMaxTableSize(100);
    fail(memo.decode(block));
  });

  test("a self-contained block longer than H2_HPACK_DECODE_MEMO_BYTES is decoded every time (its insertions are not recorded)", () => {
    const out: number[] = [0x88];
    while (out.length <= H2_HPACK_DECODE_MEMO_BYTES) out.push(0x40 | 28, 3, 0x31, 0x30, 0x30); // content-length: 100, indexed
    const block = Uint8Array.from(out);
    const memo = new HpackDecoder();
    const plain = new HpackDecoder({ blockMemo: false });
    for (let i = 0; i < 3; i++) {
      expect(ok(memo.decode(block)).fields).toEqual(ok(plain.decode(block)).fields);
      expect(memo.tableEntries()).toEqual(plain.tableEntries());
    }
    expect(memo.memoHits).toBe(0);
    // One octet shorter than the cap's worth of fields: remembered.
    const short = block.subarray(0, 1 + 5 * Math.floor((H2_HPACK_DECODE_MEMO_BYTES - 1) / 5));
    for (let i = 0; i < 3; i++) {
      expect(ok(memo.decode(short)).fields).toEqual(ok(plain.decode(short)).fields);
      expect(memo.tableEntries()).toEqual(plain.tableEntries());
    }
    expect(memo.memoHits).toBe(2);
  });

  test("decoding random bytes never throws", () => {
    for (let i = 0; i < 5000; i++) {
      const d = new HpackDecoder();
      const b = new Uint8Array(rnd(64));
      for (let j = 0; j < b.length; j++) b[j] = rnd(256);
      const r = d.decode(b);
      expect(r instanceof H2Error || Array.isArray(r.fields)).toBe(true);
    }
  });
});
