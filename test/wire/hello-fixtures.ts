/**
 * Real and rebuilt TLS ClientHellos for tests (wire, L4, e2e).
 *
 * - captureClientHello / captureWith{Openssl,Curl,Bun}: start a raw TCP
 *   server on 127.0.0.1:0, point a real TLS client at it, and return the
 *   exact bytes of the client's ClientHello records.
 * - reframeHello: the same handshake message split across N TLS records
 *   (legal TLS; a real server still completes the handshake — see
 *   raw-tls-client.ts).
 * - padHello: the hello grown to a target size with a padding extension
 *   (type 21) and every length fixed up. The CONTENT changes, so a real
 *   handshake with it fails at Finished (the transcript hash differs); use it
 *   only where the peer just has to parse/route the hello. For a real big
 *   hello that completes, use bigHelloArgs / bigHelloClient.
 * - makeSelfSignedCert: key + certificate files via the openssl CLI.
 *
 * This file frames TLS records on its own (helloRecordsEnd) so tests never
 * depend on the parser they test.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";

/**
 * End offset of the records holding the first handshake message (the
 * ClientHello) in `b`, or -1 if incomplete or not handshake records.
 */
export function helloRecordsEnd(b: Uint8Array): number {
  let pos = 0;
  let have = 0;
  let need = -1;
  const hs: number[] = [];
  while (pos + 5 <= b.length) {
    if (b[pos] !== 22) return -1;
    const len = (b[pos + 3] << 8) | b[pos + 4];
    if (pos + 5 + len > b.length) return -1;
    for (let i = 0; i < len && hs.length < 4; i++) hs.push(b[pos + 5 + i]);
    have += len;
    pos += 5 + len;
    if (need < 0 && hs.length === 4) need = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3]);
    if (need >= 0 && have >= need) return pos;
  }
  return -1;
}

/** The handshake message bytes (header + body) carried by the hello records `rec`. */
export function handshakeBytes(rec: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let pos = 0;
  while (pos + 5 <= rec.length) {
    const len = (rec[pos + 3] << 8) | rec[pos + 4];
    parts.push(rec.subarray(pos + 5, pos + 5 + len));
    pos += 5 + len;
  }
  return Buffer.concat(parts);
}

/** Wraps a handshake message into records of at most `maxFragment` bytes each (record version 0x0301). */
export function frameRecords(hs: Uint8Array, maxFragment = 16384, recordVersion = 0x0301): Uint8Array {
  const out: Uint8Array[] = [];
  for (let p = 0; p < hs.length; p += maxFragment) {
    const frag = hs.subarray(p, Math.min(hs.length, p + maxFragment));
    const h = new Uint8Array([22, recordVersion >> 8, recordVersion & 0xff, frag.length >> 8, frag.length & 0xff]);
    out.push(h, frag);
  }
  return Buffer.concat(out);
}

/**
 * Re-frames hello records into exactly `n` records (n ≥ 1, at most the
 * handshake length) of near-equal size, keeping the handshake bytes and the
 * record version unchanged.
 */
export function reframeHello(rec: Uint8Array, n: number): Uint8Array {
  const hs = handshakeBytes(rec);
  const version = (rec[1] << 8) | rec[2];
  const size = Math.ceil(hs.length / n);
  const out: Uint8Array[] = [];
  for (let p = 0; p < hs.length; p += size) {
    const frag = hs.subarray(p, Math.min(hs.length, p + size));
    out.push(new Uint8Array([22, version >> 8, version & 0xff, frag.length >> 8, frag.length & 0xff]), frag);
  }
  return Buffer.concat(out);
}

/**
 * Returns the hello grown to at least `targetSize` bytes on the wire by
 * appending a padding extension (type 21, zeros) and fixing the handshake and
 * extensions lengths; records are re-framed at 2^14 bytes. Expects a hello
 * that has an extensions block and no padding extension yet.
 */
export function padHello(rec: Uint8Array, targetSize: number): Uint8Array {
  const hs = handshakeBytes(rec);
  // Locate the extensions block: header(4) version(2) random(32) sid cs comp.
  let p = 4 + 2 + 32;
  p += 1 + hs[p];
  p += 2 + ((hs[p] << 8) | hs[p + 1]);
  p += 1 + hs[p];
  const extLenAt = p;
  const extLen = (hs[p] << 8) | hs[p + 1];
  // Wire size ≈ hs + 5 per record; solve for the padding length.
  let pad = Math.max(0, targetSize - (hs.length + 4) - 5 * Math.ceil(targetSize / 16384));
  pad = Math.min(pad, 0xffff - extLen - 4);
  const ext = new Uint8Array(4 + pad);
  ext[0] = 0;
  ext[1] = 21;
  ext[2] = pad >> 8;
  ext[3] = pad & 0xff;
  const out = Buffer.concat([hs, ext]);
  const newExt = extLen + ext.length;
  out[extLenAt] = newExt >> 8;
  out[extLenAt + 1] = newExt & 0xff;
  const body = out.length - 4;
  out[1] = body >> 16;
  out[2] = (body >> 8) & 0xff;
  out[3] = body & 0xff;
  return frameRecords(out, 16384, (rec[1] << 8) | rec[2]);
}

/** A raw TCP server on 127.0.0.1:0 that resolves with the first ClientHello it receives. */
export async function helloSink(timeoutMs = 15000): Promise<{ port: number; hello: Promise<Uint8Array>; stop: () => void }> {
  let resolve!: (b: Uint8Array) => void;
  let reject!: (e: Error) => void;
  const hello = new Promise<Uint8Array>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const chunks = new Map<object, Uint8Array[]>();
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        chunks.set(s, []);
      },
      data(s, d) {
        const list = chunks.get(s)!;
        list.push(new Uint8Array(d));
        const all = Buffer.concat(list);
        const end = helloRecordsEnd(all);
        if (end > 0) {
          resolve(new Uint8Array(all.subarray(0, end)));
          s.end();
        }
      },
      close(s) {
        chunks.delete(s);
      },
      error() {},
    },
  });
  const timer = setTimeout(() => reject(new Error("no ClientHello captured in time")), timeoutMs);
  hello.finally(() => clearTimeout(timer)).catch(() => {});
  return { port: server.port, hello, stop: () => server.stop(true) };
}

/** Runs `start(port)` (which launches a client) against a capture server and returns its ClientHello records. */
export async function captureClientHello(start: (port: number) => Promise<{ kill: () => void }> | { kill: () => void }): Promise<Uint8Array> {
  const sink = await helloSink();
  let client: { kill: () => void } | undefined;
  try {
    client = await start(sink.port);
    return await sink.hello;
  } finally {
    client?.kill();
    sink.stop();
  }
}

/** `openssl s_client` ClientHello (TLS 1.3 + 1.2 offer) with optional SNI/ALPN and extra args. */
export function captureWithOpenssl(opts: { sni?: string; alpn?: string[]; args?: string[] } = {}): Promise<Uint8Array> {
  return captureClientHello((port) => {
    const args = ["s_client", "-connect", `127.0.0.1:${port}`];
    if (opts.sni) args.push("-servername", opts.sni);
    else args.push("-noservername");
    if (opts.alpn) args.push("-alpn", opts.alpn.join(","));
    args.push(...(opts.args ?? []));
    const p = Bun.spawn(["openssl", ...args], { stdin: "pipe", stdout: "ignore", stderr: "ignore" });
    return { kill: () => p.kill() };
  });
}

/** curl's ClientHello for https://<sni>:<port>/ (offers ALPN h2, http/1.1). */
export function captureWithCurl(sni: string): Promise<Uint8Array> {
  return captureClientHello((port) => {
    const p = Bun.spawn(
      ["curl", "-sk", "--max-time", "10", "--resolve", `${sni}:${port}:127.0.0.1`, `https://${sni}:${port}/`],
      { stdout: "ignore", stderr: "ignore" },
    );
    return { kill: () => p.kill() };
  });
}

/** Bun's own node:tls client ClientHello. */
export function captureWithBun(sni: string, alpn?: string[]): Promise<Uint8Array> {
  return captureClientHello((port) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: sni, ALPNProtocols: alpn, rejectUnauthorized: false });
    s.on("error", () => {});
    return { kill: () => s.destroy() };
  });
}

/**
 * openssl s_client arguments that make a REAL client send a ClientHello of
 * roughly `targetBytes` (an ALPN list of long dummy names ending in
 * `realAlpn`). The server still negotiates `realAlpn`, so the handshake
 * completes. Note: Bun's TLS server (BoringSSL) rejects ClientHello messages
 * over 16 KB (EXCESSIVE_MESSAGE_SIZE); `openssl s_server` accepts larger.
 */
export function bigHelloArgs(targetBytes: number, realAlpn = "http/1.1"): string[] {
  const names: string[] = [];
  let size = 300; // the rest of an s_client hello, roughly
  for (let i = 0; size < targetBytes && size < 60000; i++) {
    const name = `pad${i}-`.padEnd(200, "x");
    names.push(name);
    size += name.length + 2;
  }
  names.push(realAlpn);
  return ["-alpn", names.join(",")];
}

/** Writes a self-signed P-256 certificate for `names` into a temp dir; returns the file paths. */
export function makeSelfSignedCert(names: string[], dir = fs.mkdtempSync(path.join(os.tmpdir(), "mcp-cert-"))): { dir: string; key: string; cert: string } {
  const key = path.join(dir, "key.pem");
  const cert = path.join(dir, "cert.pem");
  const r = Bun.spawnSync([
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${names[0]}`,
    "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
  ], { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl req failed: ${r.stderr.toString()}`);
  return { dir, key, cert };
}
