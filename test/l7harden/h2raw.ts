/**
 * A deliberately rude HTTP/2 client for hardening tests: writes raw frames
 * over TLS (ALPN h2) with no flow control, no concurrency limit and no
 * politeness, and records the frames the server sends back. Just enough
 * HPACK (static-table indices and literals without indexing) to open
 * requests.
 */
import tls from "node:tls";

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const ERR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** One frame's bytes. */
export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function literal(nameIndex: number, value: string): Buffer {
  // "Literal Header Field without Indexing — Indexed Name" (RFC 7541 §6.2.2), 4-bit prefix; values < 127 bytes.
  const v = Buffer.from(value);
  if (nameIndex >= 15 || v.length >= 127) throw new Error("h2raw: keep names in the static table and values short");
  return Buffer.concat([Buffer.from([nameIndex, v.length]), v]);
}

function literalNewName(name: string, value: Buffer): Buffer {
  const n = Buffer.from(name);
  return Buffer.concat([Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(value.length, 7), value]);
}

function hpackInt(n: number, prefix: number): Buffer {
  const max = (1 << prefix) - 1;
  if (n < max) return Buffer.from([n]);
  const out = [max];
  n -= max;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** An HPACK header block for GET `path` on `authority`, plus optional extra (name, value) pairs. */
export function getBlock(path: string, authority: string, extra: [string, Buffer][] = []): Buffer {
  // 0x82 :method GET, 0x87 :scheme https; :path (4) and :authority (1) as literals.
  return Buffer.concat([Buffer.from([0x82, 0x87]), literal(4, path), literal(1, authority), ...extra.map(([n, v]) => literalNewName(n, v))]);
}

export interface RawH2 {
  /** Every frame received so far, in order. */
  frames: Frame[];
  closed: boolean;
  write(b: Buffer): boolean;
  /** Resolves when the socket closed or `ms` passed. */
  closedWithin(ms: number): Promise<boolean>;
  goaway(): { lastStream: number; code: number } | null;
  rstCodes(): Map<number, number>;
  destroy(): void;
}

/**
 * Connects, sends the preface and an empty SETTINGS (ACKing the server's),
 * and never sends WINDOW_UPDATE: the server may send at most the initial
 * windows (65535 bytes per stream and per connection).
 */
export function connectRawH2(port: number, servername: string, ca: Buffer | string): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    let buf = Buffer.alloc(0);
    let onClose: (() => void)[] = [];
    const sock = tls.connect({ host: "127.0.0.1", port, servername, ca, ALPNProtocols: ["h2"] }, () => {
      if (sock.alpnProtocol !== "h2") return reject(new Error(`ALPN ${sock.alpnProtocol}`));
      sock.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      resolve(raw);
    });
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f: Frame = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        frames.push(f);
        buf = buf.subarray(9 + len);
        if (f.type === FRAME.SETTINGS && (f.flags & 1) === 0 && !sock.destroyed) sock.write(frame(FRAME.SETTINGS, 1, 0));
      }
    });
    sock.on("close", () => {
      raw.closed = true;
      for (const f of onClose) f();
      onClose = [];
    });
    const raw: RawH2 = {
      frames,
      closed: false,
      write: (b) => (sock.destroyed ? false : sock.write(b)),
      closedWithin: (ms) =>
        new Promise((r) => {
          if (raw.closed) return r(true);
          const t = setTimeout(() => r(false), ms);
          onClose.push(() => {
            clearTimeout(t);
            r(true);
          });
        }),
      goaway() {
        const g = frames.find((f) => f.type === FRAME.GOAWAY);
        return g ? { lastStream: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) } : null;
      },
      rstCodes() {
        const m = new Map<number, number>();
        for (const f of frames) if (f.type === FRAME.RST_STREAM) m.set(f.stream, f.payload.readUInt32BE(0));
        return m;
      },
      destroy: () => sock.destroy(),
    };
  });
}

/** HEADERS (END_HEADERS, and END_STREAM: no body) for stream `id`. */
export function headersFrame(id: number, block: Buffer): Buffer {
  return frame(FRAME.HEADERS, 0x4 | 0x1, id, block);
}

/** RST_STREAM for stream `id` with `code`. */
export function rstFrame(id: number, code: number = ERR.CANCEL): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return frame(FRAME.RST_STREAM, 0, id, p);
}

/** A header block split into HEADERS + CONTINUATION frames of at most 16384 bytes (END_STREAM set). */
export function headersFrames(id: number, block: Buffer): Buffer {
  const MAX = 16384;
  const parts: Buffer[] = [];
  for (let off = 0; off < block.length || off === 0; off += MAX) {
    const chunk = block.subarray(off, off + MAX);
    const first = off === 0;
    const last = off + MAX >= block.length;
    parts.push(frame(first ? FRAME.HEADERS : 9, (first ? 0x1 : 0) | (last ? 0x4 : 0), id, chunk));
    if (last) break;
  }
  return Buffer.concat(parts);
}

/** The :status of the first HEADERS frame the server sent on stream `id`, if it used the HPACK static table (200, 204, 206, 304, 400, 404, 500). */
export function statusOf(frames: Frame[], id: number): number | null {
  const h = frames.find((f) => f.type === FRAME.HEADERS && f.stream === id);
  if (!h) return null;
  const STATIC: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
  return STATIC[h.payload[0]!] ?? -1;
}
