/**
 * NativeSocketDuplex over real Bun.listen sockets, with node:net clients.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { createHash } from "node:crypto";
import net from "node:net";
import { NativeSocketDuplex, type NativeSocketLike } from "../../src/l7/duplex.ts";

type Data = { duplex?: NativeSocketDuplex };
let server: TCPSocketListener<Data> | null = null;
const clients: net.Socket[] = [];

afterEach(() => {
  for (const c of clients) c.destroy();
  clients.length = 0;
  server?.stop(true);
  server = null;
});

/**
 * A listener that, like the pipeline, reads the first chunk itself, then
 * wraps the socket in a NativeSocketDuplex replaying that chunk.
 */
function listen(onDuplex: (d: NativeSocketDuplex) => void, wrap?: (s: Socket<Data>) => NativeSocketLike): number {
  server = Bun.listen<Data>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s: Socket<Data>) {
        s.data = {};
      },
      data(s, chunk) {
        if (!s.data.duplex) {
          s.data.duplex = new NativeSocketDuplex(wrap ? wrap(s) : s, chunk);
          onDuplex(s.data.duplex);
        } else s.data.duplex.feed(chunk);
      },
      end(s) {
        s.data.duplex?.feedEnd();
      },
      drain(s) {
        s.data.duplex?.drained();
      },
      close(s, err) {
        s.data.duplex?.socketClosed(err);
      },
    },
  });
  return server.port;
}

function connect(port: number): Promise<net.Socket> {
  const c = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  clients.push(c);
  return new Promise((resolve, reject) => {
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on("data", (d: Buffer) => parts.push(d));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
    s.resume(); // a stream paused explicitly does not resume on a 'data' listener
  });
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("NativeSocketDuplex", () => {
  test("replays the already-read bytes first, then the bytes fed later, then the peer's FIN", async () => {
    let got: Promise<Buffer> | null = null;
    const port = listen((d) => (got = readAll(d)));
    const c = await connect(port);
    c.write("first|");
    await new Promise((r) => setTimeout(r, 50));
    c.write("second|");
    await new Promise((r) => setTimeout(r, 50));
    c.end("third");
    for (let i = 0; i < 100 && !got; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await got!).toString()).toBe("first|second|third");
  });

  test("32 MB written through the duplex to a slow reader arrives complete and in order", async () => {
    const payload = Buffer.alloc(32 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
    let dup: NativeSocketDuplex | null = null;
    const port = listen((d) => {
      dup = d;
      d.end(payload); // far larger than the kernel buffer: partial writes + drain
    });
    const c = await connect(port);
    c.write("go");
    c.pause(); // the reader is slow at first
    await new Promise((r) => setTimeout(r, 300));
    const body = readAll(c);
    c.resume();
    const got = await body;
    expect(got.length).toBe(payload.length);
    expect(sha(got)).toBe(sha(payload));
    expect(dup!.bytesOut).toBe(payload.length);
  });

  test("a reader that stops reading pauses the native socket; all 16 MB still arrive", async () => {
    const payload = Buffer.alloc(16 * 1024 * 1024, 7);
    for (let i = 0; i < payload.length; i += 1000) payload[i] = i & 255;
    let got: Promise<Buffer> | null = null;
    let bufferedWhilePaused = -1;
    const port = listen((d) => {
      d.pause();
      setTimeout(() => {
        bufferedWhilePaused = d.bytesIn;
        got = readAll(d);
      }, 300);
    });
    const c = await connect(port);
    c.end(payload);
    for (let i = 0; i < 300 && !got; i++) await new Promise((r) => setTimeout(r, 10));
    const all = await got!;
    // The native socket was paused: only about one highWaterMark + a socket read was taken in.
    expect(bufferedWhilePaused).toBeGreaterThan(0);
    expect(bufferedWhilePaused).toBeLessThan(4 * 1024 * 1024);
    expect(all.length).toBe(payload.length);
    expect(sha(all)).toBe(sha(payload));
  });

  test("end() sends FIN while the duplex keeps reading what the peer still sends", async () => {
    let rest: Promise<Buffer> | null = null;
    const port = listen((d) => {
      rest = readAll(d);
      d.end("bye");
    });
    const c = await connect(port);
    c.write("hello");
    const fromServer = await readAll(c); // server's FIN arrived
    expect(fromServer.toString()).toBe("bye");
    c.end("still-sending");
    for (let i = 0; i < 100 && !rest; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await rest!).toString()).toBe("hellostill-sending");
  });

  test("destroy(err) resets the connection", async () => {
    const port = listen((d) => {
      d.on("error", () => {});
      d.destroy(new Error("boom"));
    });
    const c = await connect(port);
    const outcome = new Promise<string>((resolve) => {
      c.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      c.on("close", () => resolve("closed"));
    });
    c.write("x");
    expect(["ECONNRESET", "closed"]).toContain(await outcome);
  });

  test("a peer reset (socket closed underneath) destroys the duplex with the error", async () => {
    let dup: NativeSocketDuplex | null = null;
    let err: NodeJS.ErrnoException | null = null;
    const closed = new Promise<void>((resolve) => {
      listen((d) => {
        dup = d;
        d.on("error", (e) => (err = e));
        d.on("close", () => resolve());
        d.resume();
      });
    });
    const c = await connect(server!.port);
    c.write("x");
    await new Promise((r) => setTimeout(r, 50));
    c.resetAndDestroy();
    await closed;
    expect(dup!.destroyed).toBe(true);
    expect(err!.code).toBe("ECONNRESET");
  });
  test("the writes of one event-loop turn leave as one socket write, in order", async () => {
    let socketWrites = 0;
    const count = (s: Socket<Data>): NativeSocketLike => ({
      write: (data, off, len) => {
        socketWrites++;
        return s.write(data, off, len);
      },
      shutdown: () => s.shutdown(),
      terminate: () => s.terminate(),
      end: () => s.end(),
      pause: () => s.pause(),
      resume: () => s.resume(),
    });
    const port = listen((d) => {
      // Like node:tls answering several HTTP/2 streams at once: many small records.
      for (let i = 0; i < 50; i++) d.write(`r${i};`);
      setTimeout(() => d.end("done"), 50);
    }, count);
    const c = await connect(port);
    c.write("go");
    const got = (await readAll(c)).toString();
    expect(got).toBe(Array.from({ length: 50 }, (_, i) => `r${i};`).join("") + "done");
    expect(socketWrites).toBe(2); // the 50 records, then "done"
  });

  test("a clean destroy right after a write still sends the written bytes", async () => {
    const port = listen((d) => {
      d.write("last words");
      d.destroy(); // same turn: the bytes are still corked
    });
    const c = await connect(port);
    c.write("go");
    expect((await readAll(c)).toString()).toBe("last words");
  });
});
