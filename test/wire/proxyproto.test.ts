import { describe, expect, test } from "bun:test";
import {
  crc32c,
  encodeProxyV1,
  encodeProxyV2,
  parseProxyHeader,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NOOP,
  type ProxyResult,
} from "../../src/wire/proxyproto.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v2(verCmd: number, fam: number, body: number[]): Uint8Array {
  return new Uint8Array([...SIG, verCmd, fam, body.length >> 8, body.length & 0xff, ...body]);
}
const tlv = (type: number, value: number[]) => [type, value.length >> 8, value.length & 0xff, ...value];
const V4_BLOCK = [203, 0, 113, 7, 192, 0, 2, 1, 0x15, 0xb3, 0x01, 0xbb]; // 203.0.113.7:5555 → 192.0.2.1:443

function ok(r: ProxyResult) {
  if (r.status !== "ok") throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r;
}
const reason = (r: ProxyResult) => (r.status === "error" ? r.reason : r.status);

/** Delivers `b` one byte at a time: every strict prefix must be need_more, the whole must match `whole`. */
function expectBytewiseSame(b: Uint8Array) {
  const whole = parseProxyHeader(b);
  for (let n = 0; n < b.length; n++) {
    const r = parseProxyHeader(b.subarray(0, n));
    if (r.status !== "need_more") throw new Error(`prefix ${n}/${b.length} gave ${JSON.stringify(r)}`);
  }
  expect(parseProxyHeader(b)).toEqual(whole);
  return whole;
}

describe("PROXY v1", () => {
  test("TCP4 line: addresses, ports and exact length consumed", () => {
    const line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    const r = ok(parseProxyHeader(enc(line + "GET / HTTP/1.1\r\n")));
    expect(r.length).toBe(line.length);
    expect(r.header).toEqual({
      version: 1,
      command: "proxy",
      family: "tcp4",
      source: { address: "192.168.0.1", port: 56324 },
      destination: { address: "192.168.0.11", port: 443 },
      tlvs: [],
    });
  });

  test("TCP6 line, including the 104-byte maximum form", () => {
    const r = ok(parseProxyHeader(enc("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")));
    expect(r.header.family).toBe("tcp6");
    expect(r.header.source).toEqual({ address: "2001:db8::1", port: 1 });
    const f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const max = `PROXY TCP6 ${f} ${f} 65535 65535\r\n`;
    expect(max.length).toBe(104);
    expect(ok(parseProxyHeader(enc(max))).length).toBe(104);
  });

  test("UNKNOWN short form and the 107-byte worst case are accepted; the rest of the line is ignored", () => {
    const short = ok(parseProxyHeader(enc("PROXY UNKNOWN\r\nrest")));
    expect(short.length).toBe(15);
    expect(short.header).toEqual({ version: 1, command: "proxy", family: "unknown", tlvs: [] });
    const f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const worst = `PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`;
    expect(worst.length).toBe(107);
    const r = ok(parseProxyHeader(enc(worst)));
    expect(r.length).toBe(107);
    expect(r.header.family).toBe("unknown");
    expect(r.header.source).toBeUndefined();
  });

  test("need_more while under 107 bytes without CRLF; error at 107 bytes without CRLF", () => {
    const long = "PROXY UNKNOWN " + "x".repeat(200);
    expect(parseProxyHeader(enc(long.slice(0, 106))).status).toBe("need_more");
    expect(reason(parseProxyHeader(enc(long.slice(0, 107))))).toBe("v1_too_long");
    expect(reason(parseProxyHeader(enc(long)))).toBe("v1_too_long");
    // CR as the 107th byte: the LF would be the 108th.
    expect(reason(parseProxyHeader(enc(long.slice(0, 106) + "\r\n")))).toBe("v1_too_long");
  });

  test("a lone CR or a lone LF does not end the line", () => {
    expect(reason(parseProxyHeader(enc("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX")))).toBe("v1_bad_crlf");
    expect(reason(parseProxyHeader(enc("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")))).toBe("v1_bad_crlf");
    expect(reason(parseProxyHeader(enc("PROXY UNKNOWN\n")))).toBe("v1_bad_crlf");
    expect(parseProxyHeader(enc("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r")).status).toBe("need_more");
  });

  test("bad addresses are rejected per family", () => {
    for (const [fam, a] of [
      ["TCP4", "1.2.3"],
      ["TCP4", "1.2.3.256"],
      ["TCP4", "01.2.3.4"], // leading zero: octal ambiguity
      ["TCP4", "::1"],
      ["TCP4", "1.2.3.4 "],
      ["TCP6", "1.2.3.4"],
      ["TCP6", "fe80::1%eth0"],
      ["TCP6", "2001:db8:::1"],
    ]) {
      const r = parseProxyHeader(enc(`PROXY ${fam} ${a} ${fam === "TCP4" ? "5.6.7.8" : "::2"} 1 2\r\n`));
      expect([a, reason(r)]).toEqual([a, expect.stringMatching(/^v1_bad_(address|format)$/)]);
    }
  });

  test("bad ports: 65536, leading zero, non-digits, sign, empty", () => {
    for (const p of ["65536", "08", "08x", "+1", "-1", "", "1e3", "123456"]) {
      const r = parseProxyHeader(enc(`PROXY TCP4 1.2.3.4 5.6.7.8 ${p} 443\r\n`));
      expect([p, reason(r)]).toEqual([p, expect.stringMatching(/^v1_bad_(port|format)$/)]);
    }
    expect(ok(parseProxyHeader(enc("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n"))).header.source?.port).toBe(0);
  });

  test("spacing, protocol name and field count must match exactly", () => {
    for (const line of [
      "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY UNKNOWNX\r\n",
      "PROXY \r\n",
    ]) {
      expect([line, parseProxyHeader(enc(line)).status]).toEqual([line, "error"]);
    }
  });

  test("bytes that cannot start a PROXY header are not_proxy at once", () => {
    expect(reason(parseProxyHeader(enc("G")))).toBe("not_proxy");
    expect(reason(parseProxyHeader(enc("PROXX")))).toBe("not_proxy");
    expect(reason(parseProxyHeader(new Uint8Array([0x16, 0x03, 0x01])))).toBe("not_proxy"); // a TLS hello
    expect(reason(parseProxyHeader(new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x01])))).toBe("not_proxy");
    expect(parseProxyHeader(enc("PROX")).status).toBe("need_more");
    expect(parseProxyHeader(new Uint8Array([0x0d, 0x0a, 0x0d])).status).toBe("need_more");
  });
});

describe("PROXY v2", () => {
  test("TCP over IPv4", () => {
    const b = v2(0x21, 0x11, V4_BLOCK);
    const r = ok(parseProxyHeader(Buffer.concat([b, enc("payload")])));
    expect(r.length).toBe(28);
    expect(r.header).toEqual({
      version: 2,
      command: "proxy",
      family: "tcp4",
      source: { address: "203.0.113.7", port: 5555 },
      destination: { address: "192.0.2.1", port: 443 },
      tlvs: [],
    });
  });

  test("TCP over IPv6", () => {
    const src = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 0x07];
    const dst = [...new Array(15).fill(0), 1];
    const r = ok(parseProxyHeader(v2(0x21, 0x21, [...src, ...dst, 0x00, 0x50, 0x01, 0xbb])));
    expect(r.length).toBe(52);
    expect(r.header.family).toBe("tcp6");
    expect(r.header.source).toEqual({ address: "2001:db8::7", port: 80 });
    expect(r.header.destination).toEqual({ address: "::1", port: 443 });
  });

  test("LOCAL: accepted with any family, the protocol block is discarded", () => {
    const empty = ok(parseProxyHeader(v2(0x20, 0x00, [])));
    expect(empty.length).toBe(16);
    expect(empty.header).toEqual({ version: 2, command: "local", family: "unknown", tlvs: [] });
    // Receivers must skip `len` bytes and not assume zero for LOCAL.
    const withBlock = ok(parseProxyHeader(v2(0x20, 0x11, V4_BLOCK)));
    expect(withBlock.length).toBe(28);
    expect(withBlock.header.source).toBeUndefined();
    expect(ok(parseProxyHeader(v2(0x20, 0x32, [1, 2, 3]))).length).toBe(19); // unix dgram, ignored
    expect(ok(parseProxyHeader(v2(0x20, 0x77, []))).header.command).toBe("local"); // undefined family, ignored
  });

  test("PROXY with AF_UNSPEC is accepted as family unknown (use the real endpoints)", () => {
    const r = ok(parseProxyHeader(v2(0x21, 0x00, [])));
    expect(r.header).toEqual({ version: 2, command: "proxy", family: "unknown", tlvs: [] });
  });

  test("TLVs after the address block; AUTHORITY decoded as UTF-8", () => {
    const host = [...enc("bücher.example")];
    const b = v2(0x21, 0x11, [...V4_BLOCK, ...tlv(PP2_TYPE_NOOP, []), ...tlv(PP2_TYPE_AUTHORITY, host), ...tlv(0xe0, [1, 2, 3])]);
    const r = ok(parseProxyHeader(b));
    expect(r.header.authority).toBe("bücher.example");
    expect(r.header.tlvs.map((t) => [t.type, [...t.value]])).toEqual([
      [PP2_TYPE_NOOP, []],
      [PP2_TYPE_AUTHORITY, host],
      [0xe0, [1, 2, 3]],
    ]);
  });

  test("a CRC32C TLV is verified", () => {
    const body = [...V4_BLOCK, ...tlv(PP2_TYPE_CRC32C, [0, 0, 0, 0])];
    const b = v2(0x21, 0x11, body);
    const c = crc32c(b);
    b.set([c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff], b.length - 4);
    expect(parseProxyHeader(b).status).toBe("ok");
    b[b.length - 1] ^= 1;
    expect(reason(parseProxyHeader(b))).toBe("v2_bad_crc32c");
    expect(crc32c(enc("123456789"))).toBe(0xe3069283); // the CRC-32C check value
  });

  test("parsing never modifies the caller's buffer (a Node Buffer with a CRC32C TLV parses the same twice)", () => {
    const b = Buffer.from(v2(0x21, 0x11, [...V4_BLOCK, ...tlv(PP2_TYPE_CRC32C, [0, 0, 0, 0]), ...tlv(PP2_TYPE_AUTHORITY, [0x61])]));
    const c = crc32c(b);
    b.writeUInt32BE(c, 16 + 12 + 3);
    const before = Buffer.from(b);
    const first = ok(parseProxyHeader(b));
    expect(b).toEqual(before);
    expect(ok(parseProxyHeader(b))).toEqual(first);
    b.fill(0xee); // TLV values are copies, not views into the caller's buffer
    expect([...first.header.tlvs[1].value]).toEqual([0x61]);
  });

  test("bad version, bad command, undefined and unsupported families", () => {
    expect(reason(parseProxyHeader(v2(0x11, 0x11, V4_BLOCK)))).toBe("v2_bad_version");
    expect(reason(parseProxyHeader(v2(0x31, 0x11, V4_BLOCK)))).toBe("v2_bad_version");
    expect(reason(parseProxyHeader(v2(0x22, 0x11, V4_BLOCK)))).toBe("v2_bad_command");
    expect(reason(parseProxyHeader(v2(0x2f, 0x11, V4_BLOCK)))).toBe("v2_bad_command");
    for (const fam of [0x13, 0x41, 0x10, 0x01, 0x23]) expect(reason(parseProxyHeader(v2(0x21, fam, V4_BLOCK)))).toBe("v2_bad_family");
    for (const fam of [0x12, 0x22, 0x31, 0x32]) expect(reason(parseProxyHeader(v2(0x21, fam, new Array(216).fill(0))))).toBe("v2_unsupported_family");
  });

  test("declared length beyond the data is need_more (the caller's deadline decides); shorter than the address block is an error", () => {
    const full = v2(0x21, 0x11, [...V4_BLOCK, ...tlv(PP2_TYPE_AUTHORITY, [...enc("a.test")])]);
    expect(parseProxyHeader(full.subarray(0, full.length - 1)).status).toBe("need_more");
    const lying = new Uint8Array(full);
    lying[15] += 100; // claims 100 more bytes than will ever arrive
    expect(parseProxyHeader(lying).status).toBe("need_more");
    expect(reason(parseProxyHeader(v2(0x21, 0x11, V4_BLOCK.slice(0, 11))))).toBe("v2_short_address");
    expect(reason(parseProxyHeader(v2(0x21, 0x21, V4_BLOCK)))).toBe("v2_short_address"); // 12 < 36
  });

  test("a TLV overrunning the header is an error", () => {
    expect(reason(parseProxyHeader(v2(0x21, 0x11, [...V4_BLOCK, PP2_TYPE_AUTHORITY, 0x00, 0x09, 0x61])))).toBe("v2_tlv_overrun");
    expect(reason(parseProxyHeader(v2(0x21, 0x11, [...V4_BLOCK, PP2_TYPE_AUTHORITY, 0x00])))).toBe("v2_tlv_overrun");
  });
});

describe("byte-at-a-time delivery", () => {
  const f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const headers: Array<[string, Uint8Array]> = [
    ["v1 TCP4", enc("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n")],
    ["v1 TCP6", enc(`PROXY TCP6 ${f} ${f} 65535 65535\r\n`)],
    ["v1 UNKNOWN worst case", enc(`PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`)],
    ["v2 TCP4 + TLVs", v2(0x21, 0x11, [...V4_BLOCK, ...tlv(PP2_TYPE_AUTHORITY, [...enc("a.test")])])],
    ["v2 LOCAL", v2(0x20, 0x00, [])],
    ["v2 encoded TCP6", encodeProxyV2({ source: { address: "2001:db8::1", port: 1 }, destination: { address: "2001:db8::2", port: 2 }, authority: "x.test" })],
  ];
  for (const [name, b] of headers) {
    test(`${name}: every prefix is need_more and the whole parses identically`, () => {
      const r = ok(expectBytewiseSame(b));
      expect(r.length).toBe(b.length);
    });
  }
});

describe("encoders", () => {
  const roundTrip = (u: Uint8Array) => ok(parseProxyHeader(u)).header;

  test("v2 IPv4 pair encodes as TCP4 and reads back", () => {
    const u = encodeProxyV2({ source: { address: "203.0.113.7", port: 5555 }, destination: { address: "192.0.2.1", port: 443 } });
    expect(u.length).toBe(28);
    expect(u[13]).toBe(0x11);
    const h = roundTrip(u);
    expect([h.family, h.source, h.destination, h.authority]).toEqual(["tcp4", { address: "203.0.113.7", port: 5555 }, { address: "192.0.2.1", port: 443 }, undefined]);
  });

  test("v2 IPv4-mapped IPv6 addresses are sent as TCP4", () => {
    const h = roundTrip(encodeProxyV2({ source: { address: "::ffff:203.0.113.7", port: 1 }, destination: { address: "::FFFF:c000:201", port: 2 } }));
    expect(h.family).toBe("tcp4");
    expect(h.source?.address).toBe("203.0.113.7");
    expect(h.destination?.address).toBe("192.0.2.1");
  });

  test("v2 IPv6, and mixed families mapped into TCP6", () => {
    const h = roundTrip(encodeProxyV2({ source: { address: "2001:DB8:0:0:0:0:0:7", port: 1 }, destination: { address: "fe80::1:2", port: 2 } }));
    expect([h.family, h.source?.address, h.destination?.address]).toEqual(["tcp6", "2001:db8::7", "fe80::1:2"]);
    const mixed = roundTrip(encodeProxyV2({ source: { address: "2001:db8::7", port: 1 }, destination: { address: "192.0.2.1", port: 443 } }));
    expect([mixed.family, mixed.destination?.address]).toEqual(["tcp6", "::ffff:192.0.2.1"]);
  });

  test("v2 AUTHORITY TLV carries the SNI", () => {
    const h = roundTrip(encodeProxyV2({ source: { address: "10.0.0.1", port: 1 }, destination: { address: "10.0.0.2", port: 2 }, authority: "app.example.com" }));
    expect(h.authority).toBe("app.example.com");
    expect(h.tlvs.length).toBe(1);
  });

  test("v2 LOCAL encodes as AF_UNSPEC with no addresses", () => {
    const u = encodeProxyV2({ source: { address: "10.0.0.1", port: 1 }, destination: { address: "10.0.0.2", port: 2 }, command: "local" });
    expect(u.length).toBe(16);
    expect(roundTrip(u).command).toBe("local");
  });

  test("v1 encoder: TCP4, TCP6 (mapped v4 written in hex groups), UNKNOWN", () => {
    const t = (u: Uint8Array) => new TextDecoder().decode(u);
    expect(t(encodeProxyV1({ source: { address: "::ffff:1.2.3.4", port: 1 }, destination: { address: "5.6.7.8", port: 2 } }))).toBe("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    const six = encodeProxyV1({ source: { address: "2001:db8::7", port: 1 }, destination: { address: "5.6.7.8", port: 2 } });
    expect(t(six)).toBe("PROXY TCP6 2001:db8::7 ::ffff:506:708 1 2\r\n");
    expect(roundTrip(six).family).toBe("tcp6");
    expect(t(encodeProxyV1({ source: { address: "1.2.3.4", port: 1 }, destination: { address: "5.6.7.8", port: 2 }, command: "local" }))).toBe("PROXY UNKNOWN\r\n");
  });

  test("invalid addresses and ports are refused with InvalidArgumentError", () => {
    const bad = [
      { source: { address: "not-an-ip", port: 1 }, destination: { address: "1.2.3.4", port: 2 } },
      { source: { address: "1.2.3.4", port: 70000 }, destination: { address: "1.2.3.4", port: 2 } },
      { source: { address: "1.2.3.4", port: 1 }, destination: { address: "fe80::1%lo", port: 2 } },
    ];
    for (const o of bad) expect(() => encodeProxyV2(o)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });
});

test("random bytes after a PROXY-looking prefix never throw (2000 cases)", () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const bases = [enc("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), v2(0x21, 0x11, [...V4_BLOCK, ...tlv(2, [97, 98])]), enc("PROXY UNKNOWN\r\n")];
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(bases[i % bases.length]);
    for (let k = 0; k <= rnd(3); k++) b[rnd(b.length)] = rnd(256);
    const r = parseProxyHeader(b.subarray(0, rnd(b.length + 1)));
    expect(["ok", "need_more", "error"]).toContain(r.status);
    if (r.status === "ok") expect(r.length).toBeLessThanOrEqual(b.length);
  }
});

test("v1 with an unknown protocol name fails before the CRLF arrives", () => {
  expect(reason(parseProxyHeader(enc("PROXY UDP4 ")))).toBe("v1_bad_protocol");
  expect(reason(parseProxyHeader(enc("PROXY T")))).toBe("need_more");
  expect(reason(parseProxyHeader(enc("PROXY TCP4")))).toBe("need_more");
  expect(reason(parseProxyHeader(enc("PROXY TCP4x")))).toBe("v1_bad_protocol");
});
