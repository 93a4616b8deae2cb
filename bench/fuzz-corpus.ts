/**
 * Fuzz corpus for bench/fuzz.ts: real ClientHellos captured from curl,
 * openssl s_client and Bun's node:tls (test/wire/hello-fixtures.ts), hellos
 * rebuilt from the published extension layouts of Chrome and Firefox
 * (including the X25519MLKEM768 post-quantum key share, which OpenSSL 3.0 on
 * this machine cannot produce), PROXY v1/v2 headers, and the mutators.
 *
 * Everything here is deterministic given the PRNG seed.
 */
import { captureWithBun, captureWithCurl, captureWithOpenssl, frameRecords, handshakeBytes, reframeHello } from "../test/wire/hello-fixtures.ts";
import { crc32c, encodeProxyV1, encodeProxyV2 } from "../src/wire/proxyproto.ts";

// ------------------------------------------------------------------ PRNG

/** sfc32 (Small Fast Counting, 32-bit; passes PractRand), seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

// ------------------------------------------------------------------ byte helpers

const cat = (...xs: (Uint8Array | number[])[]): Uint8Array => {
  let n = 0;
  for (const x of xs) n += x.length;
  const out = new Uint8Array(n);
  let p = 0;
  for (const x of xs) {
    out.set(x, p);
    p += x.length;
  }
  return out;
};
const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const vec8 = (b: Uint8Array | number[]) => cat([b.length], b);
const vec16 = (b: Uint8Array | number[]) => cat(u16(b.length), b);
const u16list = (xs: number[]) => xs.flatMap(u16);
const ext = (type: number, body: Uint8Array | number[]) => cat(u16(type), vec16(body));
const ascii = (s: string) => new TextEncoder().encode(s);

const GREASE = [0x0a0a, 0x1a1a, 0x2a2a, 0x3a3a, 0x4a4a, 0x5a5a, 0x6a6a, 0x7a7a, 0x8a8a, 0x9a9a, 0xaaaa, 0xbaba, 0xcaca, 0xdada, 0xeaea, 0xfafa];

export function sniExt(host: string | Uint8Array): Uint8Array {
  const name = typeof host === "string" ? ascii(host) : host;
  return ext(0x0000, vec16(cat([0], vec16(name))));
}
const alpnExt = (protos: string[]) => ext(0x0010, vec16(cat(...protos.map((p) => vec8(ascii(p))))));

/** A handshake message (type 1) from its parts. */
function clientHelloMsg(rng: Rng, ciphers: number[], exts: Uint8Array[], sessionId = rng.bytes(32)): Uint8Array {
  const body = cat(u16(0x0303), rng.bytes(32), vec8(sessionId), vec16(u16list(ciphers)), vec8([0]), vec16(cat(...exts)));
  return cat([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff], body);
}

const MLKEM = 0x11ec; // X25519MLKEM768: 1184-byte ML-KEM-768 key + 32-byte X25519 key

/** Chrome 131+ layout (BoringSSL): GREASE, X25519MLKEM768 key share, ALPS, ECH GREASE; ~1.8 KB, two TCP segments on the wire. */
export function chromeHello(rng: Rng, sni: string, pq = true): Uint8Array {
  const g = () => rng.pick(GREASE);
  const groups = pq ? [g(), MLKEM, 0x001d, 0x0017, 0x0018] : [g(), 0x001d, 0x0017, 0x0018];
  const shares = [cat(u16(g()), vec16([0]))];
  if (pq) shares.push(cat(u16(MLKEM), vec16(rng.bytes(1216))));
  shares.push(cat(u16(0x001d), vec16(rng.bytes(32))));
  const exts: Uint8Array[] = [
    sniExt(sni),
    ext(0x0017, []),
    ext(0xff01, [0]),
    ext(0x000a, vec16(u16list(groups))),
    ext(0x000b, [1, 0]),
    ext(0x0023, []),
    alpnExt(["h2", "http/1.1"]),
    ext(0x0005, [1, 0, 0, 0, 0]),
    ext(0x000d, vec16(u16list([0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]))),
    ext(0x0012, []),
    ext(0x0033, vec16(cat(...shares))),
    ext(0x002d, [1, 1]),
    ext(0x002b, vec8(u16list([g(), 0x0304, 0x0303]))),
    ext(0x001b, vec8(u16list([0x0002]))),
    ext(0x44cd, cat(vec16(vec8(ascii("h2"))))),
    ext(0xfe0d, cat([0], u16list([0x0001, 0x0001]), [rng.int(256)], vec16(rng.bytes(32)), vec16(rng.bytes(rng.pick([144, 176, 208, 240]))))),
  ];
  // Chrome shuffles the extension order per connection, keeping GREASE first and last.
  for (let i = exts.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [exts[i], exts[j]] = [exts[j], exts[i]];
  }
  // Two GREASE extensions with distinct values (BoringSSL makes them differ: a duplicate type is illegal).
  const g1 = g();
  let g2 = g();
  while (g2 === g1) g2 = g();
  exts.unshift(ext(g1, []));
  exts.push(ext(g2, [0]));
  if (!pq) {
    // Pre-PQ Chrome pads the hello to 512 bytes (padding extension, type 21).
    const len = 4 + 2 + 32 + 33 + 2 + 32 + 2 + 2 + exts.reduce((n, e) => n + e.length, 0);
    if (len < 512) exts.splice(exts.length - 1, 0, ext(0x0015, new Uint8Array(Math.max(0, 512 - len - 4))));
  }
  const ciphers = [g(), 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035];
  return new Uint8Array(frameRecords(clientHelloMsg(rng, ciphers, exts), 16384, 0x0301));
}

/** Firefox 132+ layout (NSS): no GREASE, X25519MLKEM768 + x25519 + P-256 key shares, record_size_limit, delegated credentials, ECH. */
export function firefoxHello(rng: Rng, sni: string): Uint8Array {
  const exts: Uint8Array[] = [
    sniExt(sni),
    ext(0x0017, []),
    ext(0xff01, [0]),
    ext(0x000a, vec16(u16list([MLKEM, 0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101]))),
    ext(0x000b, [1, 0]),
    ext(0x0023, []),
    alpnExt(["h2", "http/1.1"]),
    ext(0x0005, [1, 0, 0, 0, 0]),
    ext(0x0022, vec16(u16list([0x0403, 0x0503, 0x0603, 0x0203]))),
    ext(0x0012, []),
    ext(0x0033, vec16(cat(cat(u16(MLKEM), vec16(rng.bytes(1216))), cat(u16(0x001d), vec16(rng.bytes(32))), cat(u16(0x0017), vec16(cat([4], rng.bytes(64))))))),
    ext(0x002b, vec8(u16list([0x0304, 0x0303]))),
    ext(0x000d, vec16(u16list([0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201]))),
    ext(0x002d, [1, 1]),
    ext(0x001c, u16(0x4001)),
    ext(0x001b, vec8(u16list([0x0001, 0x0002, 0x0003]))),
    ext(0xfe0d, cat([0], u16list([0x0001, 0x0001]), [rng.int(256)], vec16(rng.bytes(32)), vec16(rng.bytes(239)))),
  ];
  const ciphers = [0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035];
  return new Uint8Array(frameRecords(clientHelloMsg(rng, ciphers, exts), 16384, 0x0301));
}

// ------------------------------------------------------------------ seeds

export interface Seed {
  name: string;
  /** The hello's records as a client sends them. */
  bytes: Uint8Array;
}

/**
 * Captures real hellos (each client pointed at a raw TCP capture server) and
 * builds the synthesized ones. Hosts: `l4` routes to the sink, `l7` to the
 * terminating route. A capture that fails is reported and skipped.
 */
export async function buildSeeds(l4: string, l7: string, log: (s: string) => void): Promise<Seed[]> {
  const seeds: Seed[] = [];
  const rng = new Rng(7);
  const tryCap = async (name: string, f: () => Promise<Uint8Array>) => {
    try {
      seeds.push({ name, bytes: await f() });
    } catch (e) {
      log(`seed ${name}: capture failed (${(e as Error).message}), skipped`);
    }
  };
  await tryCap("curl", () => captureWithCurl(l4));
  await tryCap("curl-l7", () => captureWithCurl(l7));
  await tryCap("openssl", () => captureWithOpenssl({ sni: l4, alpn: ["h2", "http/1.1"] }));
  await tryCap("openssl-tls12", () => captureWithOpenssl({ sni: l4, args: ["-tls1_2"] }));
  await tryCap("openssl-nosni", () => captureWithOpenssl({}));
  // OpenSSL ≥ 3.5 knows X25519MLKEM768; 3.0 refuses the group, so the PQ seed is synthesized below.
  const ver = /OpenSSL (\d+)\.(\d+)/.exec(Bun.spawnSync(["openssl", "version"]).stdout.toString());
  if (ver && (Number(ver[1]) > 3 || (Number(ver[1]) === 3 && Number(ver[2]) >= 5)))
    await tryCap("openssl-pq", () => captureWithOpenssl({ sni: l4, args: ["-groups", "X25519MLKEM768:X25519"] }));
  else log(`seed openssl-pq: ${ver?.[0] ?? "openssl"} has no X25519MLKEM768 (needs 3.5); the PQ hellos are the synthesized Chrome/Firefox ones`);
  await tryCap("node-tls", () => captureWithBun(l4, ["h2", "http/1.1"]));
  await tryCap("node-tls-l7", () => captureWithBun(l7, ["h2", "http/1.1"]));
  seeds.push({ name: "chrome-pq (synth)", bytes: chromeHello(rng, l4) });
  seeds.push({ name: "chrome-pq-l7 (synth)", bytes: chromeHello(rng, l7) });
  seeds.push({ name: "chrome-classic (synth)", bytes: chromeHello(rng, l4, false) });
  seeds.push({ name: "firefox-pq (synth)", bytes: firefoxHello(rng, l4) });
  seeds.push({ name: "firefox-pq-l7 (synth)", bytes: firefoxHello(rng, l7) });
  return seeds;
}

// ------------------------------------------------------------------ hello structure

interface Ext {
  /** Offset of the extension's type field within the handshake message. */
  at: number;
  type: number;
  len: number;
}

interface HelloLayout {
  hs: Uint8Array;
  extLenAt: number;
  exts: Ext[];
  sidAt: number;
  csAt: number;
}

/** Best-effort layout of a handshake message (may be partial on odd input; never throws). */
function layout(hs: Uint8Array): HelloLayout | null {
  let p = 4 + 2 + 32;
  if (p >= hs.length) return null;
  const sidAt = p;
  p += 1 + hs[p];
  if (p + 2 > hs.length) return null;
  const csAt = p;
  p += 2 + ((hs[p] << 8) | hs[p + 1]);
  if (p >= hs.length) return null;
  p += 1 + hs[p];
  if (p + 2 > hs.length) return null;
  const extLenAt = p;
  p += 2;
  const exts: Ext[] = [];
  while (p + 4 <= hs.length) {
    const len = (hs[p + 2] << 8) | hs[p + 3];
    exts.push({ at: p, type: (hs[p] << 8) | hs[p + 1], len });
    p += 4 + len;
  }
  return { hs, extLenAt, exts, sidAt, csAt };
}

/** Rewrites the handshake and extensions-block lengths of `hs` to match its bytes. */
function fixLengths(hs: Uint8Array): Uint8Array {
  const l = layout(hs);
  if (l) {
    const n = hs.length - l.extLenAt - 2;
    if (n >= 0 && n <= 0xffff) {
      hs[l.extLenAt] = n >> 8;
      hs[l.extLenAt + 1] = n & 0xff;
    }
  }
  const body = hs.length - 4;
  hs[1] = (body >> 16) & 0xff;
  hs[2] = (body >> 8) & 0xff;
  hs[3] = body & 0xff;
  return hs;
}

function randomHost(rng: Rng): Uint8Array {
  switch (rng.int(12)) {
    case 0:
      return new Uint8Array(0);
    case 1:
      return rng.bytes(rng.range(1, 64));
    case 2:
      return ascii("x".repeat(rng.range(64, 300)) + ".test");
    case 3:
      return ascii(`${"a".repeat(63)}.`.repeat(rng.range(3, 6)) + "test");
    case 4:
      return ascii("fuzz-l4.test\0evil");
    case 5:
      return ascii("FUZZ-L4.TEST.");
    case 6:
      return ascii("fuzz-l4.test..");
    case 7:
      return ascii("fuzz-l4.test:443");
    case 8:
      return ascii("xn--fuzz-l4.test");
    case 9:
      return ascii("fUzZ-l7.TeSt");
    case 10:
      return ascii("127.0.0.1");
    default: {
      const labels = rng.range(1, 4);
      const parts: string[] = [];
      for (let i = 0; i < labels; i++) parts.push(Array.from(rng.bytes(rng.range(1, 12)), (b) => "abcdefghijklmnopqrstuvwxyz0123456789-"[b % 37]).join(""));
      return ascii(parts.join("."));
    }
  }
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x16, 0x03, 0x40];

// ------------------------------------------------------------------ mutators

/** Mutations of a hello's handshake message; outer record lengths are re-framed afterwards. */
const hsMutators: ((rng: Rng, hs: Uint8Array) => Uint8Array)[] = [
  // handshake length: huge, zero, off by a few
  (rng, hs) => {
    const v = rng.pick([0, 1, 0xffffff, hs.length - 4 + rng.range(-8, 8), rng.u32() & 0xffffff]);
    hs[1] = (v >> 16) & 0xff;
    hs[2] = (v >> 8) & 0xff;
    hs[3] = v & 0xff;
    return hs;
  },
  // an extension's length corrupted
  (rng, hs) => {
    const l = layout(hs);
    if (!l || l.exts.length === 0) return hs;
    const e = rng.pick(l.exts);
    const v = rng.pick([0, 1, 0xffff, e.len + 1, e.len - 1, rng.int(65536)]) & 0xffff;
    hs[e.at + 2] = v >> 8;
    hs[e.at + 3] = v & 0xff;
    return hs;
  },
  // extensions block length corrupted
  (rng, hs) => {
    const l = layout(hs);
    if (!l) return hs;
    const v = rng.int(65536);
    hs[l.extLenAt] = v >> 8;
    hs[l.extLenAt + 1] = v & 0xff;
    return hs;
  },
  // session id / cipher suites length corrupted
  (rng, hs) => {
    const l = layout(hs);
    if (!l) return hs;
    if (rng.chance(0.5)) hs[l.sidAt] = rng.pick([33, 255, 0, rng.int(256)]);
    else {
      const v = rng.pick([0, 1, 3, 0xffff, rng.int(65536)]);
      hs[l.csAt] = v >> 8;
      hs[l.csAt + 1] = v & 0xff;
    }
    return hs;
  },
  // duplicated extension (SNI most often)
  (rng, hs) => {
    const l = layout(hs);
    if (!l || l.exts.length === 0) return hs;
    const e = rng.chance(0.6) ? (l.exts.find((x) => x.type === 0) ?? rng.pick(l.exts)) : rng.pick(l.exts);
    return fixLengths(cat(hs, hs.subarray(e.at, e.at + 4 + e.len)));
  },
  // SNI replaced (random / hostile / routed-looking host), lengths fixed
  (rng, hs) => {
    const l = layout(hs);
    if (!l) return hs;
    const e = l.exts.find((x) => x.type === 0);
    const fresh = sniExt(randomHost(rng));
    if (!e) return fixLengths(cat(hs, fresh));
    return fixLengths(cat(hs.subarray(0, e.at), fresh, hs.subarray(e.at + 4 + e.len)));
  },
  // SNI inner list: name type, list length, name length corrupted
  (rng, hs) => {
    const l = layout(hs);
    const e = l?.exts.find((x) => x.type === 0);
    if (!e || e.len < 5) return hs;
    const off = e.at + 4 + rng.pick([0, 1, 2, 3, 4]);
    hs[off] = rng.pick(INTERESTING);
    return hs;
  },
  // extension removed (SNI half the time)
  (rng, hs) => {
    const l = layout(hs);
    if (!l || l.exts.length === 0) return hs;
    const e = rng.chance(0.5) ? (l.exts.find((x) => x.type === 0) ?? rng.pick(l.exts)) : rng.pick(l.exts);
    return fixLengths(cat(hs.subarray(0, e.at), hs.subarray(e.at + 4 + e.len)));
  },
  // many tiny extensions / a huge one (padding up to the 64 KiB extension limit)
  (rng, hs) => {
    if (rng.chance(0.5)) {
      const n = rng.range(50, 2000);
      const parts: Uint8Array[] = [];
      for (let i = 0; i < n; i++) parts.push(ext(0x4000 + rng.int(0x8000), []));
      return fixLengths(cat(hs, ...parts));
    }
    return fixLengths(cat(hs, ext(0x0015, new Uint8Array(rng.pick([1000, 16000, 16380, 30000, 60000])))));
  },
  // handshake type changed / legacy version changed
  (rng, hs) => {
    if (rng.chance(0.5)) hs[0] = rng.pick([0, 2, 11, 16, 20, 255]);
    else {
      hs[4] = rng.pick([2, 3, 0xfe, 0]);
      hs[5] = rng.int(256);
    }
    return hs;
  },
  // ALPN / supported_versions bodies corrupted
  (rng, hs) => {
    const l = layout(hs);
    const e = l?.exts.find((x) => x.type === 16 || x.type === 43);
    if (!e || e.len === 0) return hs;
    hs[e.at + 4 + rng.int(e.len)] = rng.pick(INTERESTING);
    return hs;
  },
];

/** Record re-framings of a handshake message (legal or not). */
function reframe(rng: Rng, hs: Uint8Array, version: number): Uint8Array {
  switch (rng.int(6)) {
    case 0: // one byte per record (bounded)
      return hs.length <= 4096 ? frameRecords(hs, 1, version) : frameRecords(hs, 7, version);
    case 1:
      return frameRecords(hs, rng.range(1, 600), version);
    case 2: // a zero-length record in front (malformed per RFC 8446 §5.1)
      return cat([22, version >> 8, version & 0xff, 0, 0], frameRecords(hs, 16384, version));
    case 3: // an over-long record (> 2^14)
      return cat([22, version >> 8, version & 0xff, (hs.length >> 8) & 0xff, hs.length & 0xff], hs);
    default:
      return frameRecords(hs, 16384, version);
  }
}

/** Raw wire mutations of the complete input. */
const rawMutators: ((rng: Rng, b: Uint8Array) => Uint8Array)[] = [
  (rng, b) => {
    const out = new Uint8Array(b); // a copy: Buffer#slice would be a view
    const n = rng.range(1, 8);
    for (let i = 0; i < n && out.length; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  },
  (rng, b) => {
    const out = new Uint8Array(b); // a copy: Buffer#slice would be a view
    if (out.length) out[rng.int(out.length)] = rng.pick(INTERESTING);
    return out;
  },
  (rng, b) => {
    const at = rng.int(b.length + 1);
    return cat(b.subarray(0, at), rng.bytes(rng.range(1, 16)), b.subarray(at));
  },
  (rng, b) => {
    const at = rng.int(b.length + 1);
    return cat(b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 16))));
  },
  (rng, b) => b.subarray(0, rng.int(b.length + 1)), // truncation
  (rng, b) => {
    // record length corruption (first or a later record header)
    const out = new Uint8Array(b); // a copy: Buffer#slice would be a view
    let p = 0;
    const hops = rng.int(3);
    for (let i = 0; i < hops && p + 5 <= out.length; i++) p += 5 + ((out[p + 3] << 8) | out[p + 4]);
    if (p + 5 > out.length) p = 0;
    if (out.length < 5) return out;
    const v = rng.pick([0, 1, 0x4000, 0x4001, 0xffff, rng.int(65536)]);
    out[p + 3] = v >> 8;
    out[p + 4] = v & 0xff;
    return out;
  },
  (rng, b) => {
    // record type / version
    const out = new Uint8Array(b); // a copy: Buffer#slice would be a view
    if (out.length < 3) return out;
    if (rng.chance(0.5)) out[0] = rng.pick([20, 21, 23, 24, 0x80, 0x16 ^ 0x20, 0]);
    else {
      out[1] = rng.pick([2, 3, 0, 0xff]);
      out[2] = rng.int(256);
    }
    return out;
  },
  (rng, b) => {
    // a chunk duplicated
    if (b.length < 2) return b;
    const a = rng.int(b.length);
    const e = Math.min(b.length, a + rng.range(1, 64));
    return cat(b.subarray(0, e), b.subarray(a, e), b.subarray(e));
  },
  (rng, b) => cat(b, b.subarray(0, rng.int(b.length + 1))), // a second (partial) hello behind the first
];

/** Inputs that are not TLS at all. */
export function junk(rng: Rng): Uint8Array {
  switch (rng.int(6)) {
    case 0:
      return rng.bytes(rng.range(0, 2048));
    case 1:
      return ascii(`GET / HTTP/1.1\r\nHost: fuzz-l4.test\r\n\r\n`);
    case 2: // SSLv2-style hello
      return cat([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10], rng.bytes(37));
    case 3:
      return new Uint8Array(0);
    case 4: // a handshake record header promising everything
      return cat([22, 3, 1, 0xff, 0xff], rng.bytes(rng.range(0, 600)));
    default:
      return cat([22, 3, 1], rng.bytes(rng.range(0, 64)));
  }
}

/** A mutated hello derived from `seed`: 1–3 stacked mutations, structural and/or raw. */
export function mutateHello(rng: Rng, seed: Uint8Array): Uint8Array {
  let out: Uint8Array;
  const version = (seed[1] << 8) | seed[2];
  if (rng.chance(0.55)) {
    let hs: Uint8Array = new Uint8Array(handshakeBytes(seed));
    const n = rng.range(1, 2);
    for (let i = 0; i < n; i++) hs = rng.pick(hsMutators)(rng, hs);
    out = reframe(rng, hs, version);
    if (rng.chance(0.3)) out = rng.pick(rawMutators)(rng, out);
  } else if (rng.chance(0.15)) {
    // valid re-framing only: must still route
    out = reframeHello(seed, rng.range(2, 40));
  } else {
    out = seed;
    const n = rng.range(1, 3);
    for (let i = 0; i < n; i++) out = rng.pick(rawMutators)(rng, out);
  }
  return out;
}

// ------------------------------------------------------------------ PROXY headers

function randomIp(rng: Rng, v6: boolean): string {
  if (!v6) return `${rng.int(256)}.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}`;
  if (rng.chance(0.2)) return `::ffff:${rng.int(256)}.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}`;
  return Array.from({ length: 8 }, () => rng.int(65536).toString(16)).join(":");
}

function tlv(type: number, value: Uint8Array): Uint8Array {
  return cat([type], u16(value.length), value);
}

/** A well-formed PROXY v1/v2 header of a random kind. */
export function proxyHeader(rng: Rng): Uint8Array {
  const v6 = rng.chance(0.4);
  const src = { address: randomIp(rng, v6), port: rng.int(65536) };
  const dst = { address: randomIp(rng, v6), port: rng.int(65536) };
  switch (rng.int(7)) {
    case 0:
      return encodeProxyV1({ source: src, destination: dst });
    case 1:
      return ascii("PROXY UNKNOWN\r\n");
    case 2: // worst-case v1: UNKNOWN with full IPv6 addresses (107 bytes)
      return ascii("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".replace(/f\.\.\.f/g, "ffff:ffff:ffff:ffff:ffff:ffff").slice(0, 105) + "\r\n");
    case 3:
      return encodeProxyV2({ source: src, destination: dst, authority: rng.chance(0.5) ? "fuzz-l4.test" : undefined });
    case 4:
      return encodeProxyV2({ source: src, destination: dst, command: "local" });
    default: {
      // v2 with TLVs (NOOP, ALPN, a CRC32C that is right or wrong)
      const base = encodeProxyV2({ source: src, destination: dst });
      const tlvs = [tlv(0x04, rng.bytes(rng.range(0, 40))), tlv(0x01, ascii("h2"))];
      const withCrc = rng.chance(0.6);
      const crcTlv = tlv(0x03, new Uint8Array(4));
      const all = cat(base, ...tlvs, withCrc ? crcTlv : []);
      const len = all.length - 16;
      all[14] = len >> 8;
      all[15] = len & 0xff;
      if (withCrc) {
        const c = rng.chance(0.8) ? crc32c(all) : rng.u32();
        new DataView(all.buffer, all.byteOffset).setUint32(all.length - 4, c >>> 0);
      }
      return all;
    }
  }
}

/** Mutations of a PROXY header. */
export function mutateProxy(rng: Rng, h: Uint8Array): Uint8Array {
  const v2 = h[0] === 0x0d;
  switch (rng.int(v2 ? 8 : 7)) {
    case 0:
    case 1:
      return rng.pick(rawMutators)(rng, h);
    case 2: // truncation
      return h.subarray(0, rng.int(h.length));
    case 3: {
      // CRLF → LF / CR / nothing, or an extra space
      const s = new TextDecoder("latin1").decode(h);
      return ascii(rng.pick([s.replace("\r\n", "\n"), s.replace("\r\n", "\r"), s.replace("\r\n", ""), s.replace(" ", "  "), s.replace("PROXY", "proxy")]));
    }
    case 4: {
      // v1 number fields: leading zeros, overflow, negative
      const s = new TextDecoder("latin1").decode(h);
      return ascii(s.replace(/\d+/, rng.pick(["01", "256", "65536", "-1", "99999999999999999999", ""])));
    }
    case 5: // overlong
      return cat(h.subarray(0, Math.max(0, h.length - 2)), ascii(" ".repeat(rng.range(1, 200))), h.subarray(Math.max(0, h.length - 2)));
    case 6:
      return cat(h, h); // two headers
    default: {
      // v2 fields: version/command, family, length
      const out = new Uint8Array(h);
      const which = rng.int(3);
      if (which === 0) out[12] = rng.pick([0x20, 0x21, 0x22, 0x11, 0x31, 0x2f, 0xff]);
      else if (which === 1) out[13] = rng.pick([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x10, 0x01, 0xff]);
      else {
        const v = rng.pick([0, 11, 12, 35, 36, 0xffff, rng.int(65536), ((out[14] << 8) | out[15]) + rng.range(-4, 4)]) & 0xffff;
        out[14] = v >> 8;
        out[15] = v & 0xff;
      }
      return out;
    }
  }
}
