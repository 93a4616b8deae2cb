import { describe, expect, test } from "bun:test";
import { H2_ERROR } from "../../../src/l7/h2/errors.ts";
import { H2_FRAME, H2_SETTING } from "../../../src/l7/h2/frame.ts";
import { H2_DISCARD_AFTER_RESPONSE_MS, H2_OUTPUT_BATCH_BYTES, H2_STREAM_SEND_BUFFER_BYTES, H2_STREAM_SEND_BUFFER_MIN_BYTES, H2_STREAM_WINDOW_BYTES } from "../../../src/limits.ts";
import type { H2Stream } from "../../../src/l7/h2/stream.ts";
import { GET, POST, pair, RawPeer, settle } from "./wire.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (chunks: Uint8Array[]) => new TextDecoder().decode(Buffer.concat(chunks));

/** Collects what a client stream receives. */
function watch(s: H2Stream) {
  const got = { status: 0, fields: [] as readonly string[], body: [] as Uint8Array[], trailers: null as readonly string[] | null, ended: false, reset: -1, reason: "", info: [] as number[] };
  s.onResponse = (status, fields) => {
    got.status = status;
    got.fields = fields;
  };
  s.onInformational = (status) => got.info.push(status);
  s.onData = (c) => {
    got.body.push(c.slice());
    s.consumed(c.length);
  };
  s.onEnd = (t) => {
    got.trailers = t;
    got.ended = true;
  };
  s.onReset = (code, reason) => {
    got.reset = code;
    got.reason = reason;
  };
  return got;
}

describe("request and response between two sessions", () => {
  test("GET: response head, body and trailers reach the client", async () => {
    const p = pair({
      onStream(s) {
        expect(s.head?.method).toBe("GET");
        expect(s.head?.path).toBe("/");
        s.onEnd = () => {
          s.respond(200, ["content-type", "text/plain"]);
          s.write(enc("hello "));
          s.write(enc("world"));
          s.end(["x-checksum", "abc"]);
        };
      },
    });
    const got = watch(p.client.request(GET, true)!);
    await settle();
    expect(got.status).toBe(200);
    expect(got.fields).toEqual([":status", "200", "content-type", "text/plain"]);
    expect(dec(got.body)).toBe("hello world");
    expect(got.trailers).toEqual(["x-checksum", "abc"]);
    expect(p.client.openStreams).toBe(0);
    expect(p.server.openStreams).toBe(0);
  });

  test("POST: the request body arrives in order and the server echoes it with content-length checked", async () => {
    const p = pair({
      onStream(s) {
        const body: Uint8Array[] = [];
        s.onData = (c) => {
          body.push(c.slice());
          s.consumed(c.length);
        };
        s.onEnd = () => {
          const all = Buffer.concat(body);
          s.respond(200, ["content-length", String(all.length)]);
          s.write(all);
          s.end();
        };
      },
    });
    const req = p.client.request([...POST, "content-length", "11"], false)!;
    const got = watch(req);
    req.write(enc("hello "));
    req.write(enc("world"));
    req.end();
    await settle();
    expect(dec(got.body)).toBe("hello world");
    expect(got.ended).toBe(true);
    expect(got.reset).toBe(-1);
  });

  test("gRPC trailers-only response: one HEADERS with END_STREAM carrying grpc-status", async () => {
    const p = pair({
      onStream(s) {
        s.onEnd = () => s.respond(200, ["content-type", "application/grpc", "grpc-status", "12"], true);
      },
    });
    const got = watch(p.client.request([...POST, "content-type", "application/grpc", "te", "trailers"], true)!);
    await settle();
    expect(got.status).toBe(200);
    expect(got.fields).toContain("grpc-status");
    expect(got.ended).toBe(true);
    expect(got.trailers).toBeNull();
  });

  test("1xx informational heads reach onInformational, then the final response", async () => {
    const p = pair({
      onStream(s) {
        s.onEnd = () => {
          s.respond(103, ["link", "</a.css>; rel=preload"]);
          s.respond(204, [], true);
        };
      },
    });
    const got = watch(p.client.request(GET, true)!);
    await settle();
    expect(got.info).toEqual([103]);
    expect(got.status).toBe(204);
    expect(got.ended).toBe(true);
  });

  test("a HEAD response may declare content-length without a body", async () => {
    const p = pair({
      onStream(s) {
        s.onEnd = () => s.respond(200, ["content-length", "1234"], true);
      },
    });
    const got = watch(p.client.request([":method", "HEAD", ":scheme", "https", ":authority", "a", ":path", "/"], true)!);
    await settle();
    expect(got.status).toBe(200);
    expect(got.ended).toBe(true);
    expect(got.reset).toBe(-1);
  });

  test("client reset reaches the server's onReset; server reset reaches the client's", async () => {
    let serverStream: H2Stream | null = null;
    let serverReset = -1;
    const p = pair({
      onStream(s) {
        serverStream = s;
        s.onReset = (code) => (serverReset = code);
      },
    });
    const a = p.client.request(POST, false)!;
    await settle();
    a.reset(H2_ERROR.CANCEL);
    await settle();
    expect(serverReset).toBe(H2_ERROR.CANCEL);
    expect(p.server.openStreams).toBe(0);

    const b = watch(p.client.request(POST, false)!);
    await settle();
    serverStream!.reset(H2_ERROR.INTERNAL_ERROR);
    await settle();
    expect(b.reset).toBe(H2_ERROR.INTERNAL_ERROR);
    expect(p.client.openStreams).toBe(0);
  });

  test("callbacks are called with the stream as `this` on every path (shared functions find their object in `context`)", async () => {
    const seen: string[] = [];
    function tag(this: H2Stream, what: string): void {
      seen.push(`${(this.context as { name: string }).name}:${what}`);
    }
    const p = pair({
      onStream(s) {
        s.context = { name: "server" };
        s.onData = function (this: H2Stream) {
          tag.call(this, "data");
        };
        s.onEnd = function (this: H2Stream) {
          tag.call(this, "end");
          this.respond(200, [], false);
          this.write(new Uint8Array(3));
          this.end(null);
        };
      },
    });
    const c = p.client.request(POST, false)!;
    c.context = { name: "client" };
    c.onResponse = function (this: H2Stream) {
      tag.call(this, "response");
    };
    c.onData = function (this: H2Stream, chunk: Uint8Array) {
      tag.call(this, "data");
      this.consumed(chunk.byteLength);
    };
    c.onEnd = function (this: H2Stream) {
      tag.call(this, "end");
    };
    c.write(new Uint8Array(5));
    c.end(null);
    await settle();
    expect(seen).toEqual(["server:data", "server:end", "client:response", "client:data", "client:end"]);

    // onReset: the §8.1 "response complete" path (the session detaches the callbacks first), and a peer's reset.
    seen.length = 0;
    const q = pair({
      onStream(s) {
        s.context = { name: s.id === 1 ? "early" : "reset" };
        s.onReset = function (this: H2Stream, _code: number, reason: string) {
          tag.call(this, reason);
        };
        if (s.id === 1) s.respond(413, [], true);
      },
    });
    q.client.request(POST, false)!;
    await settle();
    const r = q.client.request(POST, false)!;
    await settle();
    r.reset(H2_ERROR.CANCEL);
    await settle();
    expect(seen).toEqual(["early:response_complete", "reset:peer_reset"]);
  });

  test("a complete response while the request body is still coming: the rest is read and dropped, credited, until the client ends it (§8.1)", async () => {
    let reason = "";
    const p = pair({
      onStream(s) {
        s.onReset = (code, r) => (reason = `${code}:${r}`);
        s.onData = () => {
          throw new Error("the application must not get body bytes after its response");
        };
        s.respond(413, [], true);
      },
    });
    const req = p.client.request(POST, false)!;
    const got = watch(req);
    await settle();
    expect(got.status).toBe(413);
    expect(got.ended).toBe(true);
    expect(got.reset).toBe(-1); // no RST_STREAM: a client that discards a reset response (curl 7.88) still gets it
    expect(reason).toBe(`${H2_ERROR.NO_ERROR}:response_complete`);
    // 1 MiB more than the stream window: it only gets through if the dropped bytes are credited.
    const chunk = new Uint8Array(16 * 1024);
    let sent = 0;
    while (sent < H2_STREAM_WINDOW_BYTES + 1024 * 1024) {
      while (sent < H2_STREAM_WINDOW_BYTES + 1024 * 1024 && req.write(chunk)) sent += chunk.length;
      await settle();
    }
    req.end();
    for (let i = 0; i < 5; i++) await settle();
    expect(p.server.openStreams).toBe(0);
    expect(p.client.openStreams).toBe(0);
    expect(got.reset).toBe(-1);
  });

  test(`a client that keeps sending after the response is asked to stop after H2_DISCARD_AFTER_RESPONSE_MS (${H2_DISCARD_AFTER_RESPONSE_MS} ms) with RST_STREAM(NO_ERROR)`, async () => {
    const peer = new RawPeer("server", {
      onStream(s) {
        s.respond(413, [], true);
      },
    });
    peer.handshake();
    peer.send(peer.headers(1, POST, false));
    await peer.flushed();
    peer.send(RawPeer.data(1, "more", false));
    await peer.flushed();
    expect(peer.frames.some((f) => f.type === H2_FRAME.RST_STREAM)).toBe(false);
    expect(peer.session.openStreams).toBe(1);
    peer.clock += H2_DISCARD_AFTER_RESPONSE_MS;
    peer.session.tick(peer.clock);
    await peer.flushed();
    const rst = peer.frames.find((f) => f.type === H2_FRAME.RST_STREAM);
    expect(rst?.streamId).toBe(1);
    expect(new DataView(rst!.payload.buffer, rst!.payload.byteOffset).getUint32(0)).toBe(H2_ERROR.NO_ERROR);
    expect(peer.session.openStreams).toBe(0);
    peer.send(RawPeer.data(1, "in flight", false)); // after our reset: dropped quietly, no connection error
    await peer.flushed();
    expect(peer.goaway()).toBeNull();
  });

  test("many concurrent streams interleave and all complete", async () => {
    const p = pair({
      onStream(s) {
        s.onEnd = () => {
          s.respond(200, []);
          s.write(enc(`stream ${s.id} `.repeat(3000)));
          s.end();
        };
      },
    });
    const all = Array.from({ length: 50 }, () => {
      const s = p.client.request(GET, true)!;
      return { s, got: watch(s) };
    });
    for (let i = 0; i < 20; i++) await settle();
    for (const { s, got } of all) {
      expect(got.ended).toBe(true);
      expect(dec(got.body)).toBe(`stream ${s.id} `.repeat(3000));
    }
  });
});

describe("flow control and backpressure", () => {
  test("a 2 MiB upload and download cross partial socket writes intact", async () => {
    const size = 2 * 1024 * 1024;
    const big = new Uint8Array(size);
    for (let i = 0; i < size; i++) big[i] = (i * 7) & 0xff;
    let received = 0;
    const p = pair({
      onStream(s) {
        s.onData = (c) => {
          for (let i = 0; i < c.length; i++) if (c[i] !== ((received + i) * 7 & 0xff)) throw new Error("corrupt upload");
          received += c.length;
          s.consumed(c.length);
        };
        s.onEnd = () => {
          s.respond(200, []);
          let at = 0;
          const pump = () => {
            while (at < size) {
              const n = Math.min(20000, size - at);
              const more = s.write(big.subarray(at, at + n));
              at += n;
              expect(s.bufferedBytes).toBeLessThanOrEqual(H2_STREAM_SEND_BUFFER_BYTES + 20000);
              if (!more) return;
            }
            s.end();
          };
          s.onWritable = pump;
          pump();
        };
      },
    });
    const req = p.client.request(POST, false)!;
    const got = watch(req);
    let at = 0;
    let pauses = 0;
    const pump = () => {
      while (at < size) {
        const n = Math.min(30000, size - at);
        const more = req.write(big.subarray(at, at + n));
        at += n;
        if (!more) {
          pauses++;
          return;
        }
      }
      req.end();
    };
    req.onWritable = pump;
    pump();
    // Both sockets accept 10 KB per drain: every flush is a partial write.
    for (let i = 0; i < 5000 && !got.ended; i++) {
      p.up.drain(10_000);
      p.down.drain(10_000);
      await settle();
    }
    expect(received).toBe(size);
    expect(got.ended).toBe(true);
    expect(Buffer.concat(got.body).equals(Buffer.from(big))).toBe(true);
    expect(pauses).toBeGreaterThan(0);
  });

  test("an application that does not consume holds at most the stream window; consumed() reopens it", async () => {
    let held = 0;
    let stream: H2Stream | null = null;
    const p = pair({
      onStream(s) {
        stream = s;
        s.onData = (c) => (held += c.length);
      },
    });
    const req = p.client.request(POST, false)!;
    const chunk = new Uint8Array(16384);
    const pump = () => {
      while (req.write(chunk));
    };
    req.onWritable = pump;
    pump();
    for (let i = 0; i < 20; i++) await settle();
    expect(held).toBe(H2_STREAM_WINDOW_BYTES);
    stream!.consumed(held);
    held = 0;
    for (let i = 0; i < 20; i++) await settle();
    expect(held).toBe(H2_STREAM_WINDOW_BYTES);
  });

  test("a body written with open windows leaves as it was passed (borrowed), and end() puts END_STREAM on its DATA frame", async () => {
    const peer = new RawPeer("server", {
      onStream(s) {
        s.respond(200, ["content-length", "10"]);
        const chunk = enc("0123456789");
        s.write(chunk);
        chunk.fill(0x21); // the caller may reuse its buffer at once: the bytes were taken during the call
        s.end();
      },
    });
    peer.handshake();
    peer.send(peer.headers(1, GET, true));
    await peer.flushed();
    const frames = peer.frames.filter((f) => f.streamId === 1);
    expect(frames.map((f) => f.type)).toEqual([H2_FRAME.HEADERS, H2_FRAME.DATA]); // no empty DATA frame for END_STREAM
    expect(frames[1]!.flags & 0x1).toBe(0x1);
    expect(peer.dataOn(1)).toBe("0123456789");
  });

  test("a borrowed chunk that must wait for the window is copied, and END_STREAM follows the queue", async () => {
    const peer = new RawPeer("server", {
      onStream(s) {
        s.respond(200, []);
        const chunk = enc("abcdefghij");
        s.write(chunk); // stream window 4: queued
        chunk.fill(0x21);
        s.end();
      },
    });
    peer.handshake([H2_SETTING.INITIAL_WINDOW_SIZE, 4]);
    peer.send(peer.headers(1, GET, true));
    await peer.flushed();
    expect(peer.dataOn(1)).toBe("abcd");
    peer.send(RawPeer.windowUpdate(1, 100));
    await peer.flushed();
    expect(peer.dataOn(1)).toBe("abcdefghij");
    const data = peer.frames.filter((f) => f.streamId === 1 && f.type === H2_FRAME.DATA);
    expect(data.at(-1)!.flags & 0x1).toBe(0x1);
  });

  test("END_STREAM is not set on a DATA frame that already left: an empty DATA frame ends the stream", async () => {
    let stream: H2Stream | null = null;
    const peer = new RawPeer("server", {
      onStream(s) {
        stream = s;
        s.respond(200, []);
        s.write(enc("first"));
      },
    });
    peer.handshake();
    peer.send(peer.headers(1, GET, true));
    await peer.flushed(); // HEADERS and DATA written to the transport
    stream!.end();
    await peer.flushed();
    const data = peer.frames.filter((f) => f.streamId === 1 && f.type === H2_FRAME.DATA);
    expect(data.map((f) => [f.length, f.flags & 0x1])).toEqual([[5, 0], [0, 1]]);
    expect(peer.dataOn(1)).toBe("first");
  });

  test("a peer that never opens its window costs one bounded queue per stream, and stalls into GOAWAY", async () => {
    const peer = new RawPeer("server", {
      onStream(s) {
        s.respond(200, []);
        const chunk = new Uint8Array(8192);
        let writes = 0;
        const fill = () => {
          while (writes++ < 1000 && s.write(chunk));
        };
        s.onWritable = fill;
        fill();
        stream = s;
      },
    });
    let stream: H2Stream | null = null;
    peer.handshake([H2_SETTING.INITIAL_WINDOW_SIZE, 0]);
    peer.send(peer.headers(1, GET, true));
    await peer.flushed();
    // Stream window 0: the queue stops at H2_STREAM_SEND_BUFFER_MIN_BYTES (not H2_STREAM_SEND_BUFFER_BYTES).
    expect(stream!.bufferedBytes).toBeLessThanOrEqual(H2_STREAM_SEND_BUFFER_MIN_BYTES + 8192);
    expect(peer.dataOn(1)).toBe(""); // stream window 0: nothing sent
    peer.clock += 60_000;
    peer.session.tick(peer.clock);
    peer.collect();
    // A closed stream window alone is legitimate (a paused video): no GOAWAY.
    expect(peer.goaway()).toBeNull();

    // Now the connection window: open the stream window, never the connection's.
    peer.send(RawPeer.windowUpdate(1, 1 << 20));
    await peer.flushed();
    expect(peer.dataOn(1).length).toBe(65535);
    peer.clock += 31_000;
    peer.session.tick(peer.clock);
    peer.collect();
    expect(peer.goaway()?.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
  });

  test("SETTINGS_INITIAL_WINDOW_SIZE changes move open stream windows, below zero too (§6.9.2)", async () => {
    const peer = new RawPeer("server", {
      onStream(s) {
        s.onEnd = () => {
          s.respond(200, []);
          s.write(new Uint8Array(100));
          s.end();
        };
      },
    });
    peer.handshake([H2_SETTING.INITIAL_WINDOW_SIZE, 30]);
    peer.send(peer.headers(1, GET, true));
    await peer.flushed();
    expect(peer.dataOn(1).length).toBe(30);
    peer.send(RawPeer.settings([H2_SETTING.INITIAL_WINDOW_SIZE, 10])); // window 30-30 → -20
    peer.send(RawPeer.windowUpdate(1, 25)); // → 5
    await peer.flushed();
    expect(peer.dataOn(1).length).toBe(35);
    peer.send(RawPeer.settings([H2_SETTING.INITIAL_WINDOW_SIZE, 100])); // +90 → 95
    await peer.flushed();
    expect(peer.dataOn(1).length).toBe(100);
    expect(peer.frames.filter((f) => f.type === H2_FRAME.DATA).at(-1)!.flags & 1).toBe(1);
  });

  test("a socket that stops draining blocks DATA but the session keeps at most a batch plus the stream queues", async () => {
    const stream: H2Stream[] = [];
    const p = pair({
      onStream(s) {
        stream.push(s);
        s.respond(200, []);
      },
    });
    const got = watch(p.client.request(GET, true)!);
    await settle();
    p.down.budget = 0;
    const s = stream[0];
    let accepted = 0;
    const chunk = new Uint8Array(4096);
    while (s.write(chunk)) accepted += chunk.length;
    await settle();
    // What went into the session's output at once (up to a batch) plus what the stream queued.
    expect(accepted).toBeLessThan(H2_OUTPUT_BATCH_BYTES + H2_STREAM_SEND_BUFFER_BYTES);
    // A producer with an end: once the socket drains, the in-memory client credits every byte at
    // once (in microtasks), so an endless one would keep the microtask queue busy forever.
    s.onWritable = () => {
      while (accepted < 4 * 1024 * 1024 && s.write(chunk)) accepted += chunk.length;
    };
    for (let i = 0; i < 10; i++) await settle();
    // The connection window (64 KiB before the client's WINDOW_UPDATE is read) caps the rest.
    expect(accepted).toBeLessThan(4 * H2_STREAM_SEND_BUFFER_BYTES);
    expect(got.body.length).toBe(0);
    p.down.drain();
    for (let i = 0; i < 10; i++) await settle();
    expect(got.body.reduce((n, c) => n + c.length, 0)).toBeGreaterThan(0);
  });
});

describe("GOAWAY and the end of a session", () => {
  test("graceful server GOAWAY: 2^31-1 and a PING, then the real last id; in-flight stream completes; session closes with FIN", async () => {
    let srv: H2Stream | null = null;
    const codes: number[] = [];
    let closed: unknown = "open";
    const p = pair(
      {
        onStream(s) {
          srv = s;
        },
        onClose: (e) => (closed = e),
      },
      { onGoaway: (_code, last) => codes.push(last) },
    );
    const got = watch(p.client.request(GET, true)!);
    await settle();
    p.server.goaway();
    await settle();
    expect(codes).toEqual([0x7fffffff, 1]);
    expect(p.client.request(GET, true)).toBeNull();
    expect(p.server.closed).toBe(false);
    srv!.respond(200, [], true);
    await settle();
    expect(got.ended).toBe(true);
    expect(closed).toBeNull();
    expect(p.down.ended).toBe("shutdown");
  });

  test("client side: streams above the GOAWAY's last id are reset with REFUSED_STREAM (safe to retry)", async () => {
    const peer = new RawPeer("client");
    const a = watch(peer.session.request(GET, true)!);
    const b = watch(peer.session.request(GET, true)!);
    await peer.flushed();
    peer.handshake();
    const w = new Uint8Array(8);
    w[3] = 1; // last stream id 1, NO_ERROR
    peer.send(RawPeer.frame(H2_FRAME.GOAWAY, 0, 0, w));
    expect(b.reset).toBe(H2_ERROR.REFUSED_STREAM);
    expect(a.reset).toBe(-1);
    expect(peer.session.request(GET, true)).toBeNull();
    peer.send(peer.headers(1, [":status", "200"], true));
    expect(a.ended).toBe(true);
    expect(peer.session.closed).toBe(true);
  });

  test("request() returns null at the peer's MAX_CONCURRENT_STREAMS", async () => {
    const peer = new RawPeer("client");
    peer.handshake([H2_SETTING.MAX_CONCURRENT_STREAMS, 2]);
    expect(peer.session.request(GET, true)).not.toBeNull();
    expect(peer.session.request(GET, true)).not.toBeNull();
    expect(peer.session.canRequest).toBe(false);
    expect(peer.session.request(GET, true)).toBeNull();
    peer.send(peer.headers(1, [":status", "200"], true));
    expect(peer.session.request(GET, true)?.id).toBe(5);
  });

  test("idle: no open stream for idleTimeoutMs closes with GOAWAY whatever PINGs arrive", async () => {
    const peer = new RawPeer("server", { idleTimeoutMs: 5000, onStream() {} });
    peer.handshake();
    peer.send(peer.headers(1, GET, true));
    expect(peer.session.openStreams).toBe(1);
    peer.clock += 10_000;
    peer.session.tick(peer.clock);
    expect(peer.session.closed).toBe(false); // a stream is open
    peer.session.goaway(H2_ERROR.NO_ERROR, false); // reset the scenario: fresh session below
    const idle = new RawPeer("server", { idleTimeoutMs: 5000 });
    idle.handshake();
    for (let i = 0; i < 10; i++) {
      idle.clock += 1000;
      idle.send(RawPeer.ping());
      idle.session.tick(idle.clock);
    }
    idle.collect();
    expect(idle.session.closed).toBe(true);
    expect(idle.goaway()).toEqual({ lastStreamId: 0, errorCode: H2_ERROR.NO_ERROR, debug: "" });
    expect(idle.transport.ended).toBe("shutdown");
  });

  test("transport closed: open streams get onReset(CANCEL) and onClose fires once", async () => {
    let closes = 0;
    const p = pair({ onStream() {} }, { onClose: () => closes++ });
    const got = watch(p.client.request(GET, true)!);
    await settle();
    p.client.transportClosed();
    p.client.transportClosed();
    expect(got.reset).toBe(H2_ERROR.CANCEL);
    expect(closes).toBe(1);
  });
});
