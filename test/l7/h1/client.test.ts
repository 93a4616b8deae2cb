/**
 * HTTP/1.1 backend client (src/l7/h1/client.ts): keep-alive reuse, response
 * framing, backpressure, request bodies, the retry rule and protocol errors,
 * against small real backends on 127.0.0.1.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { H1Pool } from "../../../src/l7/h1/client.ts";
import { H1_IDLE_PURGE_KEEP } from "../../../src/limits.ts";
import { readFileSync } from "node:fs";
import { type TestBackend, head, ok, send, startBackend, target, waitFor } from "./client-backends.ts";

const pools: H1Pool[] = [];
const backends: TestBackend[] = [];
function pool(o: Partial<ConstructorParameters<typeof H1Pool>[0]> = {}): H1Pool {
  const p = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null, ...o });
  pools.push(p);
  return p;
}
function backend(...a: Parameters<typeof startBackend>): TestBackend {
  const b = startBackend(...a);
  backends.push(b);
  return b;
}
/** Bytes the kernel holds unread on the backend's side of established connections to `port` (/proc/net/tcp rx_queue). */
function backendReceiveQueue(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let n = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === "01") n += parseInt(f[4]!.split(":")[1]!, 16);
  }
  return n;
}
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
  for (const b of backends.splice(0)) b.stop();
});

describe("keep-alive", () => {
  test("100 sequential GETs share one TCP connection", async () => {
    const b = backend((r) => ok(`hello ${r.head.target}`));
    const p = pool();
    const t = target(b.port);
    for (let i = 0; i < 100; i++) {
      const r = await send(p, t, "GET", `/r${i}`).done;
      expect(r.error).toBeNull();
      expect(r.head?.status).toBe(200);
      expect(r.body.toString()).toBe(`hello /r${i}`);
    }
    expect(b.conns.length).toBe(1);
    expect(b.requests.length).toBe(100);
    expect(p.stats()).toMatchObject({ open: 1, idle: 1, dials: 1, queued: 0 });
  });

  test("request heads sent in one event-loop turn reach the kernel together at its end (a backend on our core is woken once)", async () => {
    const b = backend((r) => ok(`hello ${r.head.target}`));
    const p = pool();
    const t = target(b.port);
    await Promise.all([send(p, t, "GET").done, send(p, t, "GET").done, send(p, t, "GET").done]);
    expect(p.stats()).toMatchObject({ open: 3, idle: 3 });
    const before = backendReceiveQueue(b.port);
    const rs = ["/a", "/b", "/c"].map((path) => send(p, t, "GET", path));
    expect(backendReceiveQueue(b.port)).toBe(before); // still this turn: nothing written yet
    await new Promise((r) => setImmediate(r));
    // Written at the turn's end, all three, before the backend's next read.
    expect(backendReceiveQueue(b.port) - before).toBe(3 * head("GET", "/a").length);
    for (const [i, r] of rs.entries()) expect((await r.done).body.toString()).toBe(`hello /${"abc"[i]}`);
  });

  test("the next request can be sent from inside onEnd and reuses the connection", async () => {
    const b = backend(() => ok("x"));
    const p = pool();
    const t = target(b.port);
    let left = 20;
    await new Promise<void>((resolve, reject) => {
      const next = () => {
        p.request(t, "GET", new TextEncoder().encode("GET / HTTP/1.1\r\nhost: b.test\r\n\r\n"), { kind: "none" }, {
          onHead() {},
          onData: () => true,
          onEnd() {
            if (--left === 0) resolve();
            else next();
          },
          onError: (e) => reject(new Error(e.code)),
        }, true);
      };
      next();
    });
    expect(b.conns.length).toBe(1);
  });

  test("Connection: close from the backend is honoured: the next request dials again", async () => {
    const b = backend(() => ok("bye", "connection: close\r\n"));
    const p = pool();
    const t = target(b.port);
    for (let i = 0; i < 3; i++) expect((await send(p, t, "GET").done).body.toString()).toBe("bye");
    expect(b.conns.length).toBe(3);
    await waitFor(() => p.stats().open === 0);
  });

  test("idle connections are closed after idleTimeoutMs", async () => {
    const b = backend(() => ok("x"));
    const p = pool({ idleTimeoutMs: 300 });
    const t = target(b.port);
    await Promise.all([send(p, t, "GET").done, send(p, t, "GET").done, send(p, t, "GET").done]);
    expect(p.stats()).toMatchObject({ open: 3, idle: 3 });
    const t0 = performance.now();
    await waitFor(() => b.conns.every((c) => c.closed), 2000);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(300 + 300);
    expect(p.stats()).toMatchObject({ open: 0, idle: 0 });
  });

  test("surplus idle connections are closed progressively (half of those idle a whole purge period, past H1_IDLE_PURGE_KEEP); ones in use are kept", async () => {
    const b = backend(() => ok("x"));
    const p = pool({ idlePurgeMs: 300 });
    const t = target(b.port);
    // A burst of 40 concurrent requests: 40 connections, all idle afterwards.
    await Promise.all(Array.from({ length: 40 }, () => send(p, t, "GET").done));
    expect(p.stats()).toMatchObject({ open: 40, idle: 40 });
    // One request every 50 ms keeps using the newest connection: it is never cold.
    let busy = true;
    const keepBusy = (async () => {
      while (busy) {
        await send(p, t, "GET").done;
        await Bun.sleep(50);
      }
    })();
    const seen: number[] = [];
    const until = performance.now() + 4000;
    while (performance.now() < until && p.stats().open > H1_IDLE_PURGE_KEEP + 1) {
      await Bun.sleep(20);
      const open = p.stats().open;
      if (open !== seen[seen.length - 1]) seen.push(open);
    }
    busy = false;
    await keepBusy;
    // Each period closes half (rounded up) of the cold connections past the 4 kept — on time, 40 → 22 → 13 → 9 → 7 → 6 → 5 —
    // never more than that at once (a slow machine may see a period's closes split across samples).
    expect(seen[0]).toBe(40);
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < seen.length; i++) {
      const cold = seen[i - 1]! - 1; // one connection stays in use
      expect(seen[i - 1]! - seen[i]!).toBeLessThanOrEqual(Math.ceil((cold - H1_IDLE_PURGE_KEEP) / 2));
    }
    expect(p.stats().open).toBe(H1_IDLE_PURGE_KEEP + 1);
    expect(b.conns.filter((c) => c.closed).length).toBe(40 - H1_IDLE_PURGE_KEEP - 1);
    // The connection in use was never closed under it: every request succeeded on it.
    expect(b.conns.filter((c) => !c.closed).length).toBe(H1_IDLE_PURGE_KEEP + 1);
  });

  test("an idle connection the backend closes leaves the pool", async () => {
    const b = backend(() => ok("x"));
    const p = pool();
    const t = target(b.port);
    await send(p, t, "GET").done;
    expect(p.stats().idle).toBe(1);
    b.conns[0].socket.end();
    await waitFor(() => p.stats().open === 0);
    expect((await send(p, t, "GET").done).head?.status).toBe(200);
    expect(b.conns.length).toBe(2);
  });
});

describe("response framing", () => {
  test("Content-Length, chunked with trailers, and until-close bodies", async () => {
    const b = backend((r) => {
      if (r.head.target === "/cl") return ok("0123456789");
      if (r.head.target === "/chunked")
        return "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: grpc-status\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\ngrpc-status: 0\r\nx-t: a b\r\n\r\n";
      return "HTTP/1.1 200 OK\r\n\r\nuntil close";
    });
    const p = pool();
    const t = target(b.port);
    const cl = await send(p, t, "GET", "/cl").done;
    expect(cl.body.toString()).toBe("0123456789");
    expect(cl.trailers).toEqual([]);
    const ch = await send(p, t, "GET", "/chunked").done;
    expect(ch.body.toString()).toBe("hello world");
    expect(ch.trailers).toEqual(["grpc-status", "0", "x-t", "a b"]);
    expect(b.conns.length).toBe(1);
    // Until close: the backend must close for the body to end.
    const uc = send(p, t, "GET", "/close");
    await waitFor(() => b.requests.length === 3);
    b.conns[0].socket.end();
    const r = await uc.done;
    expect(r.error).toBeNull();
    expect(r.body.toString()).toBe("until close");
    expect(r.head?.keepAlive).toBe(false);
  });

  test("HEAD, 204 and 304 end without a body and keep the connection", async () => {
    const b = backend((r) => {
      if (r.head.method === "HEAD") return "HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n";
      if (r.head.target === "/204") return "HTTP/1.1 204 No Content\r\n\r\n";
      return "HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\netag: x\r\n\r\n";
    });
    const p = pool();
    const t = target(b.port);
    const h = await send(p, t, "HEAD", "/").done;
    expect(h.head?.status).toBe(200);
    expect(h.head?.contentLength).toBe(1234);
    expect(h.body.length).toBe(0);
    expect(h.events).toEqual(["head 200", "end"]);
    expect((await send(p, t, "GET", "/204").done).events).toEqual(["head 204", "end"]);
    expect((await send(p, t, "GET", "/304").done).events).toEqual(["head 304", "end"]);
    expect(b.conns.length).toBe(1);
  });

  test("a head with exactly the bytes of the connection's previous one reuses its parse; any other byte, or HEAD, parses anew", async () => {
    const same = "HTTP/1.1 200 OK\r\nserver: t/1\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n";
    const b = backend((r) => {
      if (r.head.target === "/other") return same.replace("t/1", "t/2") + "hello";
      return r.head.method === "HEAD" ? same : same + "hello";
    });
    const p = pool();
    const t = target(b.port);
    const r1 = await send(p, t, "GET", "/a").done;
    const r2 = await send(p, t, "GET", "/b").done;
    expect(r1.body.toString()).toBe("hello");
    expect(r2.body.toString()).toBe("hello");
    expect(r2.head).toBe(r1.head); // the same parse (and the same strings for the HPACK encoder)
    const r3 = await send(p, t, "GET", "/other").done;
    expect(r3.head).not.toBe(r1.head);
    expect(r3.head?.headers).toEqual(["server", "t/2", "content-type", "text/plain", "content-length", "5"]);
    expect(r3.body.toString()).toBe("hello");
    // The same bytes answering HEAD frame no body; the GET after it still reads its 5 bytes.
    const h = await send(p, t, "HEAD", "/a").done;
    expect(h.head?.framing).toBe("none");
    expect(h.events).toEqual(["head 200", "end"]);
    const r4 = await send(p, t, "GET", "/a").done;
    expect(r4.head?.framing).toBe("length");
    expect(r4.body.toString()).toBe("hello");
    expect(b.conns.length).toBe(1);
    expect(r1.head?.headers).toEqual(["server", "t/1", "content-type", "text/plain", "content-length", "5"]);
  });

  test("1xx informational heads before the final one go to onInformational with their fields, in order", async () => {
    const b = backend(() => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok("done"));
    const p = pool();
    const r = await send(p, target(b.port), "GET").done;
    expect(r.events).toEqual(["info 100 ", "info 103 link </a>", "head 200", "end"]);
    expect(r.body.toString()).toBe("done");
  });

  test("the connections of one backend share the parse: the same head on another connection is the same ResponseHead, with the same strings", async () => {
    const same = "HTTP/1.1 200 OK\r\nserver: t/1\r\ndate: Mon, 07 Dec 2026 07:00:00 GMT\r\ncontent-length: 5\r\n\r\nhello";
    const b = backend(() => same);
    const p = pool();
    const t = target(b.port);
    // Two at once: two connections.
    const [r1, r2] = await Promise.all([send(p, t, "GET", "/a").done, send(p, t, "GET", "/b").done]);
    expect(b.conns.length).toBe(2);
    expect(r2.head).toBe(r1.head);
    expect(r1.body.toString() + r2.body.toString()).toBe("hellohello");
    // Another backend (its own memo) parses its own.
    const b2 = backend(() => same);
    const r3 = await send(p, target(b2.port), "GET", "/c").done;
    expect(r3.head).not.toBe(r1.head);
    expect(r3.head?.headers).toEqual(r1.head?.headers);
  });

  test("a response split at every byte offset parses the same", async () => {
    const resp = Buffer.from(
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\nx-trailer: yes\r\n\r\n",
      "latin1",
    );
    let split = 1;
    const b = backend((_r, c) => {
      const at = split++;
      c.socket.write(resp.subarray(0, at));
      setTimeout(() => c.socket.write(resp.subarray(at)), 3);
      return null;
    });
    const p = pool();
    const t = target(b.port);
    for (let i = 1; i < resp.length; i++) {
      const r = await send(p, t, "GET", `/${i}`).done;
      expect(r.error).toBeNull();
      expect(r.body.toString()).toBe("abcdefg");
      expect(r.trailers).toEqual(["x-trailer", "yes"]);
    }
    expect(b.conns.length).toBe(1);
  });

  test("a response written one byte at a time", async () => {
    const resp = Buffer.from(ok("byte by byte", "x-b: 2\r\n"), "latin1");
    const b = backend((_r, c) => {
      let i = 0;
      const tick = () => {
        if (i < resp.length) {
          c.socket.write(resp.subarray(i, ++i));
          setTimeout(tick, 1);
        }
      };
      tick();
      return null;
    });
    const p = pool();
    const r = await send(p, target(b.port), "GET").done;
    expect(r.body.toString()).toBe("byte by byte");
    expect(r.head?.headers).toContain("x-b");
  });

  test("garbage from the backend is a protocol error before the response", async () => {
    const b = backend(() => "SSH-2.0-OpenSSH_9.6\r\n\r\n");
    const p = pool();
    const r = await send(p, target(b.port), "GET").done;
    expect(r.error?.kind).toBe("protocol");
    expect(r.error?.code).toBe("invalid_version");
    expect(r.error?.beforeResponse).toBe(false);
    await waitFor(() => p.stats().open === 0);
  });

  test("a bad chunk mid-body is a protocol error after the head", async () => {
    const b = backend(() => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n");
    const p = pool();
    const r = await send(p, target(b.port), "GET").done;
    expect(r.events).toEqual(["head 200", "error protocol"]);
    expect(r.error?.code).toBe("invalid_chunk");
  });

  test("bytes after a complete response close the connection instead of reusing it", async () => {
    const b = backend(() => ok("one") + "HTTP/1.1 200 OK\r\n");
    const p = pool();
    const t = target(b.port);
    const r = await send(p, t, "GET").done;
    expect(r.body.toString()).toBe("one");
    await waitFor(() => p.stats().open === 0);
    expect((await send(p, t, "GET").done).body.toString()).toBe("one");
    expect(b.conns.length).toBe(2);
  });

  test("the backend closing mid-body fails the exchange after the head", async () => {
    const b = backend((_r, c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
      setTimeout(() => c.socket.end(), 10);
      return null;
    });
    const p = pool();
    const r = await send(p, target(b.port), "GET").done;
    expect(r.events).toEqual(["head 200", "error closed"]);
    expect(r.error?.beforeResponse).toBe(false);
    expect(r.body.toString()).toBe("partial");
  });
});

describe("backpressure", () => {
  test("onData returning false pauses the backend until resume(); 10 MiB arrive intact", async () => {
    const total = 10 * 1024 * 1024;
    const payload = Buffer.alloc(total);
    for (let i = 0; i < total; i++) payload[i] = (i * 7 + (i >> 13)) & 0xff;
    let accepted = 0;
    let pumpFn: (() => void) | null = null;
    const b = startBackend((_r, c) => {
      c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${total}\r\n\r\n`);
      const pump = () => {
        while (accepted < total) {
          const n = c.socket.write(payload.subarray(accepted, Math.min(total, accepted + 256 * 1024)));
          if (n <= 0) return;
          accepted += n;
        }
      };
      pumpFn = pump;
      pump();
      return null;
    });
    backends.push(b);
    // The test backend has no drain hook: retry the pump from a timer instead.
    const pumpTimer = setInterval(() => pumpFn?.(), 2);
    const p = pool();
    let paused = false;
    let callsWhilePaused = 0;
    let pauses = 0;
    let ex: ReturnType<typeof send>["ex"] | null = null;
    let acceptedAtFirstPause = -1;
    let acceptedAfterWait = -1;
    const s = send(p, target(b.port), "GET", "/big", {
      onData: () => {
        if (paused) callsWhilePaused++;
        pauses++;
        paused = true;
        if (pauses === 1) {
          acceptedAtFirstPause = accepted;
          setTimeout(() => {
            acceptedAfterWait = accepted;
            paused = false;
            ex?.resume();
          }, 300);
        } else
          setTimeout(() => {
            paused = false;
            ex?.resume();
          }, 0);
        return false;
      },
    });
    ex = s.ex;
    const r = await s.done;
    clearInterval(pumpTimer);
    expect(r.error).toBeNull();
    expect(callsWhilePaused).toBe(0);
    expect(r.body.length).toBe(total);
    expect(r.body.equals(payload)).toBe(true);
    // While we held the first chunk for 300 ms the backend could only fill the kernel buffers.
    expect(acceptedAfterWait).toBeLessThan(total);
    expect(acceptedAfterWait - acceptedAtFirstPause).toBeLessThan(8 * 1024 * 1024);
  });

  test("a chunked response paused mid-buffer delivers the rest in order after resume", async () => {
    let body = "";
    let wire = "";
    for (let i = 0; i < 50; i++) {
      const piece = `piece-${i};`;
      body += piece;
      wire += `${piece.length.toString(16)}\r\n${piece}\r\n`;
    }
    const b = backend(() => `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${wire}0\r\nx-end: 1\r\n\r\n`);
    const p = pool();
    const t = target(b.port);
    let paused = false;
    let violations = 0;
    let ex: ReturnType<typeof send>["ex"] | null = null;
    const s = send(p, t, "GET", "/", {
      onData: () => {
        if (paused) violations++;
        paused = true;
        setTimeout(() => {
          paused = false;
          ex?.resume();
        }, 1);
        return false;
      },
    });
    ex = s.ex;
    const r = await s.done;
    expect(violations).toBe(0);
    expect(r.body.toString()).toBe(body);
    expect(r.trailers).toEqual(["x-end", "1"]);
    expect(r.events).toEqual(["head 200", "end"]);
    // Still reusable.
    expect((await send(p, t, "GET").done).error).toBeNull();
    expect(b.conns.length).toBe(1);
  });
});

describe("request bodies", () => {
  test("a Content-Length body written in pieces reaches the backend", async () => {
    const b = backend((r) => ok(`got ${r.body.length}`));
    const p = pool();
    const t = target(b.port);
    const s = send(p, t, "POST", "/up", { fields: ["content-length", "11"], body: { kind: "length", length: 11 } });
    s.ex.write(Buffer.from("hello"));
    s.ex.write(Buffer.from(" "));
    s.ex.write(Buffer.from("world"));
    s.ex.end();
    const r = await s.done;
    expect(r.body.toString()).toBe("got 11");
    expect(b.requests[0].body.toString()).toBe("hello world");
    // Reused afterwards.
    await send(p, t, "GET").done;
    expect(b.conns.length).toBe(1);
  });

  test("a chunked body with trailers is re-encoded for the backend", async () => {
    const b = backend(() => ok("ok"));
    const p = pool();
    const s = send(p, target(b.port), "POST", "/up", { fields: ["transfer-encoding", "chunked"], body: { kind: "chunked" } });
    s.ex.write(Buffer.from("abc"));
    s.ex.write(new Uint8Array(0));
    s.ex.write(Buffer.from("defgh"));
    s.ex.end(["x-checksum", "42"]);
    expect((await s.done).error).toBeNull();
    expect(b.requests[0].body.toString()).toBe("abcdefgh");
    expect(b.requests[0].trailers).toEqual(["x-checksum", "42"]);
  });

  test("a large body honours write() === false and onWritable", async () => {
    const size = 8 * 1024 * 1024;
    const b = backend((r) => ok(`got ${r.body.length}`));
    const p = pool();
    const s = send(p, target(b.port), "PUT", "/big", {
      fields: ["content-length", String(size)],
      body: { kind: "length", length: size },
      onWritable: () => {
        if (sent < size) pump();
        else s.ex.end();
      },
    });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    let blocked = 0;
    const pump = () => {
      while (sent < size) {
        sent += chunk.length;
        if (!s.ex.write(chunk)) {
          blocked++;
          return;
        }
      }
      s.ex.end();
    };
    pump();
    const r = await s.done;
    expect(r.body.toString()).toBe(`got ${size}`);
    expect(blocked).toBeGreaterThan(0);
  });

  test("a Content-Length body shorter than declared fails at end() and closes the connection", async () => {
    const b = backend(() => ok("never"));
    const p = pool();
    const s = send(p, target(b.port), "POST", "/", { fields: ["content-length", "10"], body: { kind: "length", length: 10 } });
    s.ex.write(Buffer.from("short"));
    s.ex.end();
    const r = await s.done;
    expect(r.error?.kind).toBe("protocol");
    expect(r.error?.code).toBe("EREQBODYLENGTH");
    await waitFor(() => p.stats().open === 0);
  });
});

describe("retry", () => {
  // The backend answers the first request on each connection, then closes the
  // connection as soon as the next request arrives: the keep-alive race.
  const racy = () =>
    backend((_r, c) => {
      if (c.served === 1) return ok("first");
      c.socket.terminate();
      return null;
    });

  test("a GET on a reused connection that closes before any response byte is retried once on a fresh one", async () => {
    const b = racy();
    const p = pool();
    const t = target(b.port);
    expect((await send(p, t, "GET", "/1").done).body.toString()).toBe("first");
    const r = await send(p, t, "GET", "/2").done;
    expect(r.error).toBeNull();
    expect(r.body.toString()).toBe("first");
    expect(b.conns.length).toBe(2);
    expect(p.stats().dials).toBe(2);
  });

  test("a POST with a body on the same race is not retried and fails before the response", async () => {
    const b = racy();
    const p = pool();
    const t = target(b.port);
    await send(p, t, "GET", "/1").done;
    const s = send(p, t, "POST", "/2", { fields: ["content-length", "4"], body: { kind: "length", length: 4 }, idempotent: false });
    s.ex.write(Buffer.from("data"));
    s.ex.end();
    const r = await s.done;
    expect(r.error?.kind).toBe("closed");
    expect(r.error?.beforeResponse).toBe(true);
    expect(b.conns.length).toBe(1);
  });

  test("a GET the caller marks non-idempotent is not retried", async () => {
    const b = racy();
    const p = pool();
    const t = target(b.port);
    await send(p, t, "GET", "/1").done;
    const r = await send(p, t, "GET", "/2", { idempotent: false }).done;
    expect(r.error?.kind).toBe("closed");
    expect(b.conns.length).toBe(1);
  });

  test("a GET on a fresh connection is never retried", async () => {
    const b = backend((_r, c) => {
      c.socket.terminate();
      return null;
    });
    const p = pool();
    const r = await send(p, target(b.port), "GET").done;
    expect(r.error?.kind).toBe("closed");
    expect(r.error?.beforeResponse).toBe(true);
    expect(p.stats().dials).toBe(1);
  });
});

describe("pool limits and lifecycle", () => {
  test("beyond 256 connections requests queue in FIFO order, beyond the queue they fail with EPOOLFULL", async () => {
    const held: { c: import("./client-backends.ts").ConnState; target: string }[] = [];
    const b = backend((r, c) => {
      held.push({ c, target: r.head.target });
      return null;
    });
    const p = pool();
    const t = target(b.port);
    const all: ReturnType<typeof send>[] = [];
    for (let i = 0; i < 256 + 1024 + 1; i++) all.push(send(p, t, "GET", `/${i}`));
    const last = await all[all.length - 1].done;
    expect(last.error?.code).toBe("EPOOLFULL");
    expect(last.error?.kind).toBe("connect");
    expect(p.stats()).toMatchObject({ open: 256, queued: 1024 });
    await waitFor(() => held.length === 256, 10_000);
    // Answer one: its connection takes the oldest waiting request.
    held[0].c.socket.write(ok("a"));
    expect((await all[Number(held[0].target.slice(1))].done).error).toBeNull();
    await waitFor(() => held.length === 257);
    expect(held[256].target).toBe("/256");
    p.close();
    const r = await all[300].done;
    expect(r.error?.code).toBe("EPOOLCLOSED");
  });

  test("cancel() mid-response closes the connection and no callback follows", async () => {
    const b = backend((_r, c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nsome");
      return null;
    });
    const p = pool();
    const t = target(b.port);
    let calls = 0;
    const s = send(p, t, "GET", "/", {
      onData: () => {
        calls++;
        s.ex.cancel();
        return true;
      },
    });
    await waitFor(() => calls === 1);
    await waitFor(() => b.conns[0].closed);
    await Bun.sleep(20);
    expect(calls).toBe(1);
    expect(p.stats().open).toBe(0);
  });

  test("close() fails exchanges in flight", async () => {
    const b = backend(() => null);
    const p = pool();
    const s = send(p, target(b.port), "GET");
    await waitFor(() => b.requests.length === 1);
    p.close();
    const r = await s.done;
    expect(r.error?.code).toBe("EPOOLCLOSED");
    expect(r.error?.beforeResponse).toBe(true);
    await waitFor(() => b.conns[0].closed);
  });
});

describe("upgrade", () => {
  test("after a 101 the exchange is a raw tunnel: write() sends raw bytes, onData gets them, onEnd at close", async () => {
    const server = Bun.listen<{ upgraded: boolean }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          s.data = { upgraded: false };
        },
        data(s, d) {
          if (!s.data.upgraded) {
            s.data.upgraded = true;
            s.write("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n");
            return;
          }
          if (d.toString() === "bye") s.end();
          else s.write(`echo:${d}`);
        },
      },
    });
    const p = pool();
    let ex: ReturnType<typeof send>["ex"] | null = null;
    const s = send(p, target(server.port), "GET", "/ws", {
      fields: ["connection", "upgrade", "upgrade", "websocket"],
      onData: (c) => {
        if (Buffer.from(c).toString() === "echo:ping") ex?.write(Buffer.from("bye"));
        return true;
      },
    });
    ex = s.ex;
    await waitFor(() => s.result.head !== null);
    s.ex.write(Buffer.from("ping"));
    const r = await s.done;
    server.stop(true);
    expect(r.events).toEqual(["head 101", "end"]);
    expect(r.body.toString()).toBe("echo:ping");
    expect(p.stats().open).toBe(0);
  });
});
