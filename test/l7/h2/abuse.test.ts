/**
 * SPEC §5 abuse limits: each flood ends in GOAWAY ENHANCE_YOUR_CALM (or the
 * matching code) with memory bounded, and none of it reaches the application
 * as load.
 */

import { describe, expect, test } from "bun:test";
import { ByteWriter } from "../../../src/l7/h2/bytes.ts";
import { H2_ERROR } from "../../../src/l7/h2/errors.ts";
import { H2_FLAG, H2_FRAME, H2_MAX_CONTINUATION_FRAMES, H2_SETTING } from "../../../src/l7/h2/frame.ts";
import { H2_GLITCH_BURST, H2_MAX_CONCURRENT_STREAMS, H2_MAX_REFUSED_STREAMS, H2_MAX_QUEUED_CONTROL_FRAMES, H2_RAPID_RESET_BURST, H2_SEND_STALL_TIMEOUT_MS } from "../../../src/limits.ts";
import type { H2Stream } from "../../../src/l7/h2/stream.ts";
import { GET, POST, RawPeer } from "./wire.ts";

function server() {
  const streams: H2Stream[] = [];
  const peer = new RawPeer("server", {
    onStream(s) {
      streams.push(s);
      s.onData = () => {}; // holds everything, never consumes
    },
  });
  peer.handshake();
  return { peer, streams };
}

const calm = (peer: RawPeer) => peer.goaway();

/** Sends `n` copies of `frame` in one chunk (a flood arrives in big reads). */
function flood(peer: RawPeer, frame: Uint8Array, n: number): void {
  const w = new ByteWriter();
  for (let i = 0; i < n; i++) w.bytes(frame);
  peer.send(w.toBytes());
}

describe("rapid reset (CVE-2023-44487)", () => {
  test("streams opened and reset before any response: GOAWAY ENHANCE_YOUR_CALM past the burst", () => {
    const { peer, streams } = server();
    const w = new ByteWriter();
    for (let i = 0; i < H2_RAPID_RESET_BURST + 10; i++) {
      const id = 1 + 2 * i;
      w.bytes(peer.headers(id, GET, false));
      w.bytes(RawPeer.rst(id, H2_ERROR.CANCEL));
    }
    peer.send(w.toBytes());
    expect(calm(peer)?.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(calm(peer)?.debug).toBe("rapid_reset");
    expect(peer.session.stats.rapidResets).toBe(H2_RAPID_RESET_BURST + 1);
    expect(streams.length).toBe(H2_RAPID_RESET_BURST + 1);
  });
  test("resets after the response head do not count; a slow steady rate is allowed", () => {
    const streams: H2Stream[] = [];
    const peer = new RawPeer("server", {
      onStream(s) {
        streams.push(s);
        s.respond(200, []);
      },
    });
    peer.handshake();
    for (let i = 0; i < 2 * H2_RAPID_RESET_BURST; i++) {
      const id = 1 + 2 * i;
      peer.send(peer.headers(id, GET, false));
      peer.send(RawPeer.rst(id, H2_ERROR.CANCEL));
    }
    expect(calm(peer)).toBeNull();
    expect(peer.session.stats.rapidResets).toBe(0);
  });
});

describe("frame floods spend the glitch budget", () => {
  const cases: Array<[string, (peer: RawPeer) => Uint8Array]> = [
    ["ping", () => RawPeer.ping()],
    ["settings", () => RawPeer.settings([H2_SETTING.HEADER_TABLE_SIZE, 4096])],
    ["priority", () => RawPeer.frame(H2_FRAME.PRIORITY, 0, 3, [0, 0, 0, 0, 16])],
    ["empty_data", () => RawPeer.data(1, "", false)],
    ["unknown_frame", () => RawPeer.frame(0xfa, 0, 0, [1, 2, 3])],
  ];
  for (const [name, make] of cases) {
    test(`${name} flood: GOAWAY ENHANCE_YOUR_CALM "${name}_flood"`, () => {
      const { peer } = server();
      peer.send(peer.headers(1, POST, false));
      flood(peer, make(peer), H2_GLITCH_BURST + 10);
      expect(calm(peer)?.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
      expect(calm(peer)?.debug).toBe(`${name}_flood`);
      expect(peer.transport.ended).toBe("shutdown");
    });
  }
  test("small WINDOW_UPDATEs are counted, never a glitch: a peer crediting back small DATA frames one by one keeps its connection", () => {
    const { peer } = server();
    peer.send(peer.headers(1, POST, false));
    flood(peer, RawPeer.windowUpdate(0, 1), 10 * H2_GLITCH_BURST);
    flood(peer, RawPeer.windowUpdate(1, 100), 10 * H2_GLITCH_BURST);
    expect(calm(peer)).toBeNull();
    expect(peer.session.stats.smallWindowUpdates).toBe(20 * H2_GLITCH_BURST);
    expect(peer.session.stats.glitches).toBe(0);
    expect(peer.transport.ended).toBe("");
  });
  test("a browser-like amount of PINGs, SETTINGS and PRIORITY over time never trips it", () => {
    const { peer } = server();
    for (let s = 0; s < 600; s++) {
      peer.clock += 1000;
      flood(peer, RawPeer.ping(), 5);
      flood(peer, RawPeer.frame(H2_FRAME.PRIORITY, 0, 3, [0, 0, 0, 0, 16]), 5);
    }
    expect(calm(peer)).toBeNull();
  });
});

describe("control frames owed to a peer that does not read", () => {
  test("PING ACKs piling up behind a blocked socket: ENHANCE_YOUR_CALM and a reset connection", () => {
    const { peer } = server();
    peer.transport.budget = 0;
    for (let i = 0; i < H2_MAX_QUEUED_CONTROL_FRAMES + 10; i++) {
      peer.clock += 100; // slow enough for the glitch budget to refill
      peer.send(RawPeer.ping());
    }
    expect(peer.session.closed).toBe(true);
    expect(peer.session.stats.error?.reason).toBe("control_frame_flood");
    expect(peer.transport.ended).toBe("terminate");
  });
});

describe("stream concurrency", () => {
  test("the 101st concurrent stream is refused with REFUSED_STREAM; repeated refusals end in GOAWAY", () => {
    const { peer, streams } = server();
    const w = new ByteWriter();
    for (let i = 0; i < H2_MAX_CONCURRENT_STREAMS + 1; i++) w.bytes(peer.headers(1 + 2 * i, POST, false));
    peer.send(w.toBytes());
    expect(streams.length).toBe(H2_MAX_CONCURRENT_STREAMS);
    expect(peer.resets(1 + 2 * H2_MAX_CONCURRENT_STREAMS)).toEqual([H2_ERROR.REFUSED_STREAM]);
    expect(calm(peer)).toBeNull();
    const more = new ByteWriter();
    for (let i = 0; i < H2_MAX_REFUSED_STREAMS + 10; i++) more.bytes(peer.headers(1 + 2 * (H2_MAX_CONCURRENT_STREAMS + 1 + i), POST, false));
    peer.send(more.toBytes());
    expect(calm(peer)?.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(peer.session.stats.streamsRefused).toBeGreaterThan(H2_MAX_REFUSED_STREAMS);
  });
  test("refused and reset streams free their slots", () => {
    const { peer, streams } = server();
    for (let i = 0; i < H2_MAX_CONCURRENT_STREAMS; i++) peer.send(peer.headers(1 + 2 * i, POST, false));
    peer.send(RawPeer.rst(1, H2_ERROR.CANCEL));
    peer.send(peer.headers(1001, POST, false));
    expect(streams.at(-1)?.id).toBe(1001);
    expect(peer.session.openStreams).toBe(H2_MAX_CONCURRENT_STREAMS);
  });
});

describe("header floods", () => {
  test("HPACK bomb: a small block that decodes past 16 KiB is answered 431; the connection lives", () => {
    const { peer, streams } = server();
    // One 4 KiB entry in the dynamic table, then thousands of one-octet references to it.
    const big = "x".repeat(4000);
    const first = new ByteWriter();
    peer.encoder.encode([...GET, "x-big", big], first);
    const w = new ByteWriter();
    w.bytes(first.view());
    // Index 62 is the newest dynamic entry (x-big): 0x80 | 62 = 0xbe.
    for (let i = 0; i < 10000; i++) w.u8(0xbe);
    const frame = RawPeer.frame(H2_FRAME.HEADERS, H2_FLAG.END_HEADERS | H2_FLAG.END_STREAM, 1, w.view());
    peer.send(frame);
    expect(streams.length).toBe(0);
    expect(peer.headerLists(1)).toEqual([[":status", "431"]]);
    expect(peer.session.stats.headerListOverflows).toBe(1);
    peer.send(peer.headers(3, GET, true));
    expect(streams.map((s) => s.id)).toEqual([3]);
    expect(calm(peer)).toBeNull();
  });
  test("CONTINUATION flood: past the frame cap, GOAWAY ENHANCE_YOUR_CALM before anything is decoded", () => {
    const { peer, streams } = server();
    peer.send(RawPeer.frame(H2_FRAME.HEADERS, 0, 1, [0x82]));
    const w = new ByteWriter();
    for (let i = 0; i < H2_MAX_CONTINUATION_FRAMES + 1; i++) w.bytes(RawPeer.frame(H2_FRAME.CONTINUATION, 0, 1, [0x84]));
    peer.send(w.toBytes());
    expect(calm(peer)?.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(streams.length).toBe(0);
  });
});

describe("memory stays bounded", () => {
  test("streams that the application never reads hold at most the connection window in total", () => {
    const { peer } = server();
    let sent = 0;
    for (let id = 1; id < 40; id += 2) {
      peer.send(peer.headers(id, POST, false));
      for (let i = 0; i < 4; i++) {
        if (peer.session.closed) break;
        peer.send(RawPeer.data(id, new Uint8Array(16384), false));
        sent += 16384;
      }
    }
    // 1 MiB connection window: the 65th 16 KiB frame overflows it.
    expect(calm(peer)?.errorCode).toBe(H2_ERROR.FLOW_CONTROL_ERROR);
    expect(sent).toBeLessThanOrEqual(1024 * 1024 + 16384);
  });
  test("a request head that the application has not answered costs one stream object, nothing more", () => {
    const { peer } = server();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < H2_MAX_CONCURRENT_STREAMS; i++) peer.send(peer.headers(1 + 2 * i, GET, false));
    const after = process.memoryUsage().heapUsed;
    expect(after - before).toBeLessThan(4 * 1024 * 1024);
    expect(peer.session.openStreams).toBe(H2_MAX_CONCURRENT_STREAMS);
  });
});

describe("streams whose windows the client never opens (SPEC §5)", () => {
  function serving(settings: number[] = []) {
    const streams: H2Stream[] = [];
    const peer = new RawPeer("server", {
      onStream(s) {
        streams.push(s);
        s.onData = () => {};
        s.respond(200, []);
        s.write(new Uint8Array(100_000)); // more than any default window
      },
    });
    peer.handshake(settings);
    return { peer, streams };
  }
  const tickFor = (peer: RawPeer, ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      peer.clock += 1000;
      peer.session.tick(peer.clock);
    }
  };

  // The server session flushes after the event-loop turn (setImmediate).
  const turn = () => new Promise<void>((r) => setImmediate(r));

  test(`connection window opened, stream windows never: GOAWAY ENHANCE_YOUR_CALM "send_stalled" after H2_SEND_STALL_TIMEOUT_MS (${H2_SEND_STALL_TIMEOUT_MS} ms) without progress`, async () => {
    const { peer } = serving();
    peer.send(RawPeer.windowUpdate(0, 1 << 30));
    for (let i = 0; i < 5; i++) peer.send(peer.headers(1 + 2 * i, GET, true));
    await turn();
    expect(peer.dataOn(1).length).toBe(65535);
    tickFor(peer, H2_SEND_STALL_TIMEOUT_MS - 1000);
    await peer.flushed();
    expect(calm(peer)).toBeNull();
    // Detected within two sweeps past the limit.
    tickFor(peer, 4000);
    await peer.flushed();
    expect(calm(peer)?.errorCode).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(calm(peer)?.debug).toBe("send_stalled");
  });

  test("SETTINGS_INITIAL_WINDOW_SIZE 0 and no WINDOW_UPDATE: the same", async () => {
    const { peer } = serving([H2_SETTING.INITIAL_WINDOW_SIZE, 0]);
    peer.send(peer.headers(1, GET, true));
    await turn();
    tickFor(peer, H2_SEND_STALL_TIMEOUT_MS + 2000);
    await peer.flushed();
    expect(calm(peer)?.debug).toBe("send_stalled");
  });

  test("one stream paused while another keeps moving is left alone (a paused video beside page loads)", async () => {
    const { peer } = serving();
    peer.send(RawPeer.windowUpdate(0, 1 << 30));
    peer.send(peer.headers(1, GET, true)); // never opened again
    peer.send(peer.headers(3, GET, true));
    await turn();
    for (let t = 0; t < H2_SEND_STALL_TIMEOUT_MS * 2; t += 1000) {
      // Stream 3 gets credit every second and sends.
      peer.send(RawPeer.windowUpdate(3, 1000));
      await turn();
      peer.clock += 1000;
      peer.session.tick(peer.clock);
    }
    await peer.flushed();
    expect(calm(peer)).toBeNull();
    expect(peer.session.closed).toBe(false);
  });
});
