/**
 * RFC 9113 error rules, one hand-written frame sequence each, checked by the
 * frames the server (or client) session writes back.
 */

import { describe, expect, test } from "bun:test";
import { H2_ERROR } from "../../../src/l7/h2/errors.ts";
import { H2_FLAG, H2_FRAME, H2_SETTING } from "../../../src/l7/h2/frame.ts";
import type { H2Stream } from "../../../src/l7/h2/stream.ts";
import { GET, POST, RawPeer } from "./wire.ts";

/** A server session whose streams answer nothing until told; `streams` collects them. */
function server(opts: { respond?: boolean } = {}) {
  const streams: H2Stream[] = [];
  const events: string[] = [];
  const peer = new RawPeer("server", {
    onStream(s) {
      streams.push(s);
      s.onData = (c) => {
        events.push(`data ${s.id} ${c.length}`);
        s.consumed(c.length);
      };
      s.onEnd = (t) => {
        events.push(`end ${s.id}${t ? " trailers" : ""}`);
        if (opts.respond) s.respond(200, [], true);
      };
      s.onReset = (code, reason) => events.push(`reset ${s.id} ${code} ${reason}`);
    },
  });
  peer.handshake();
  return { peer, streams, events };
}

const conn = (peer: RawPeer) => peer.goaway()?.errorCode;

describe("connection preface and SETTINGS (§3.4, §6.5)", () => {
  test("the server's first frame is SETTINGS with MAX_CONCURRENT_STREAMS and our windows", () => {
    const { peer } = server();
    const s = peer.frames[0];
    expect(s.type).toBe(H2_FRAME.SETTINGS);
    expect(peer.frames[1].type).toBe(H2_FRAME.WINDOW_UPDATE);
    expect(peer.frames.some((f) => f.type === H2_FRAME.SETTINGS && f.flags === H2_FLAG.ACK)).toBe(true);
  });
  test("a client preface not followed by SETTINGS: PROTOCOL_ERROR", () => {
    const peer = new RawPeer("server");
    const pre = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    peer.send(Buffer.concat([pre, RawPeer.ping()]));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
    expect(peer.transport.ended).toBe("shutdown");
  });
  test("a bad preface: PROTOCOL_ERROR", () => {
    const peer = new RawPeer("server");
    peer.send(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("a client session sends the preface, ENABLE_PUSH=0, and treats a server's ENABLE_PUSH=1 as PROTOCOL_ERROR", async () => {
    const peer = new RawPeer("client");
    await peer.flushed();
    expect(peer.frames[0].type).toBe(H2_FRAME.SETTINGS);
    expect([...peer.frames[0].payload.subarray(0, 6)]).toEqual([0, 2, 0, 0, 0, 0]);
    peer.send(RawPeer.settings([H2_SETTING.ENABLE_PUSH, 1]));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("SETTINGS not acknowledged within the timeout: SETTINGS_TIMEOUT", () => {
    const peer = new RawPeer("server");
    peer.send(Buffer.concat([new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), RawPeer.settings([])]));
    peer.clock += 11_000;
    peer.session.tick(peer.clock);
    peer.collect();
    expect(conn(peer)).toBe(H2_ERROR.SETTINGS_TIMEOUT);
  });
});

describe("stream identifiers and states (§5.1)", () => {
  test("even stream id from a client: PROTOCOL_ERROR", () => {
    const { peer } = server();
    peer.send(peer.headers(2, GET, true));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("a stream id lower than one already used: PROTOCOL_ERROR", () => {
    const { peer } = server();
    peer.send(peer.headers(5, GET, false));
    peer.send(peer.headers(3, GET, false));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("DATA, WINDOW_UPDATE or RST_STREAM on an idle stream: PROTOCOL_ERROR", () => {
    for (const frame of [RawPeer.data(1, "x", true), RawPeer.windowUpdate(1, 100), RawPeer.rst(1, 8)]) {
      const { peer } = server();
      peer.send(frame);
      expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
    }
  });
  test("DATA on a half-closed (remote) stream: stream STREAM_CLOSED, the application hears onReset", () => {
    const { peer, events } = server();
    peer.send(peer.headers(1, GET, true));
    peer.send(RawPeer.data(1, "x", false));
    expect(peer.resets(1)).toEqual([H2_ERROR.STREAM_CLOSED]);
    expect(events).toContain(`reset 1 ${H2_ERROR.STREAM_CLOSED} data_after_end_stream`);
    expect(conn(peer)).toBeUndefined();
  });
  test("DATA or HEADERS after both END_STREAMs: connection STREAM_CLOSED", () => {
    for (const late of ["data", "headers"]) {
      const { peer } = server({ respond: true });
      peer.send(peer.headers(1, GET, true));
      peer.send(late === "data" ? RawPeer.data(1, "x", true) : peer.headers(1, GET, true));
      expect(conn(peer)).toBe(H2_ERROR.STREAM_CLOSED);
    }
  });
  test("DATA after the client's RST_STREAM: stream STREAM_CLOSED", () => {
    const { peer } = server();
    peer.send(peer.headers(1, POST, false));
    peer.send(RawPeer.rst(1, H2_ERROR.CANCEL));
    peer.send(RawPeer.data(1, "x", true));
    expect(peer.resets(1)).toEqual([H2_ERROR.STREAM_CLOSED]);
    expect(conn(peer)).toBeUndefined();
  });
  test("DATA in flight after our RST_STREAM is dropped quietly, and its bytes return to the connection window", () => {
    const { peer, streams } = server();
    peer.send(peer.headers(1, POST, false));
    streams[0].reset(H2_ERROR.CANCEL);
    peer.send(RawPeer.data(1, new Uint8Array(16384), false));
    for (let i = 0; i < 70; i++) peer.send(RawPeer.data(1, new Uint8Array(16384), false));
    expect(conn(peer)).toBeUndefined(); // 70 × 16 KiB > 1 MiB connection window: credit came back
    expect(peer.resets(1)).toEqual([H2_ERROR.CANCEL]);
  });
  test("PUSH_PROMISE from a client: PROTOCOL_ERROR", () => {
    const { peer } = server();
    peer.send(RawPeer.frame(H2_FRAME.PUSH_PROMISE, H2_FLAG.END_HEADERS, 1, [0, 0, 0, 2, 0x82]));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("a client session: a server HEADERS on an even (pushed) stream is PROTOCOL_ERROR", () => {
    const peer = new RawPeer("client");
    peer.handshake();
    peer.send(peer.headers(2, [":status", "200"], true));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
});

describe("HEADERS, CONTINUATION, PRIORITY (§6.2, §6.3, §6.10)", () => {
  test("HEADERS depending on itself: stream PROTOCOL_ERROR, and the HPACK table stays in sync", () => {
    const { peer, streams } = server();
    const fields = [...GET, "x-custom", "indexed-value"];
    const block = peer.headers(1, fields, true, { flags: H2_FLAG.END_HEADERS | H2_FLAG.END_STREAM });
    // Rebuild with a PRIORITY section naming stream 1 itself.
    const payload = block.subarray(9);
    const withPrio = RawPeer.frame(H2_FRAME.HEADERS, H2_FLAG.END_HEADERS | H2_FLAG.END_STREAM | H2_FLAG.PRIORITY, 1, [0, 0, 0, 1, 15, ...payload]);
    peer.send(withPrio);
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    // The encoder indexed x-custom: the next block refers to the dynamic table.
    peer.send(peer.headers(3, fields, true));
    expect(streams.map((s) => s.id)).toEqual([3]);
    expect(streams[0].fields).toContain("indexed-value");
  });
  test("PRIORITY depending on itself on an open stream: stream PROTOCOL_ERROR; on an idle stream: connection error", () => {
    const { peer } = server();
    peer.send(peer.headers(1, POST, false));
    peer.send(RawPeer.frame(H2_FRAME.PRIORITY, 0, 1, [0, 0, 0, 1, 0]));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    peer.send(RawPeer.frame(H2_FRAME.PRIORITY, 0, 9, [0, 0, 0, 9, 0]));
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("PRIORITY on an idle stream does not open it (a lower HEADERS id still works)", () => {
    const { peer, streams } = server();
    peer.send(RawPeer.frame(H2_FRAME.PRIORITY, 0, 7, [0, 0, 0, 0, 0]));
    peer.send(peer.headers(1, GET, true));
    expect(streams.map((s) => s.id)).toEqual([1]);
  });
  test("a frame other than CONTINUATION inside a header block: PROTOCOL_ERROR", () => {
    const { peer } = server();
    peer.send(peer.headers(1, GET, true, { endHeaders: false }));
    peer.send(RawPeer.ping());
    expect(conn(peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("CONTINUATION on another stream, or with no header block open: PROTOCOL_ERROR", () => {
    const a = server();
    a.peer.send(a.peer.headers(1, GET, true, { endHeaders: false }));
    a.peer.send(RawPeer.frame(H2_FRAME.CONTINUATION, H2_FLAG.END_HEADERS, 3, []));
    expect(conn(a.peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
    const b = server();
    b.peer.send(RawPeer.frame(H2_FRAME.CONTINUATION, H2_FLAG.END_HEADERS, 1, []));
    expect(conn(b.peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
  test("a header block split over CONTINUATIONs opens the stream", () => {
    const { peer, streams } = server();
    const full = peer.headers(1, GET, true).subarray(9);
    peer.send(RawPeer.frame(H2_FRAME.HEADERS, H2_FLAG.END_STREAM, 1, full.subarray(0, 3)));
    peer.send(RawPeer.frame(H2_FRAME.CONTINUATION, 0, 1, full.subarray(3, 6)));
    peer.send(RawPeer.frame(H2_FRAME.CONTINUATION, H2_FLAG.END_HEADERS, 1, full.subarray(6)));
    expect(streams.length).toBe(1);
    expect(streams[0].head?.path).toBe("/");
  });
  test("a malformed request (uppercase name) is refused with stream PROTOCOL_ERROR and never reaches the application", () => {
    const { peer, streams } = server();
    peer.send(peer.headers(1, [...GET, "X-Upper", "1"], true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(streams.length).toBe(0);
  });
  test("a bad value the peer put in the HPACK table is refused again when only its index is sent", () => {
    // The decoder checks characters as literals arrive and trusts table entries only while none was bad.
    const { peer, streams } = server();
    peer.send(peer.headers(1, [...GET, "x-bad", "a\u0000b"], true)); // literal, indexed by the encoder
    peer.send(peer.headers(3, [...GET, "x-bad", "a\u0000b"], true)); // now a bare index into the dynamic table
    peer.send(peer.headers(5, [...GET, "x-good", "1"], true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(peer.resets(3)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(streams.map((s) => s.id)).toEqual([5]);
  });
  test("trailers without END_STREAM: stream PROTOCOL_ERROR; trailers with a pseudo-header: PROTOCOL_ERROR", () => {
    const a = server();
    a.peer.send(a.peer.headers(1, POST, false));
    a.peer.send(a.peer.headers(1, ["x-t", "1"], false));
    expect(a.peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    const b = server();
    b.peer.send(b.peer.headers(1, POST, false));
    b.peer.send(b.peer.headers(1, [":path", "/"], true));
    expect(b.peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
  });
  test("request trailers reach onEnd", () => {
    const { peer, events } = server();
    peer.send(peer.headers(1, POST, false));
    peer.send(RawPeer.data(1, "abc", false));
    peer.send(peer.headers(1, ["grpc-status", "0"], true));
    expect(events).toEqual(["data 1 3", "end 1 trailers"]);
  });
});

describe("content-length (§8.1.1)", () => {
  test("more DATA than content-length: stream PROTOCOL_ERROR", () => {
    const { peer, events } = server();
    peer.send(peer.headers(1, [...POST, "content-length", "2"], false));
    peer.send(RawPeer.data(1, "abc", true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(events).toEqual([`reset 1 ${H2_ERROR.PROTOCOL_ERROR} content_length_mismatch`]);
  });
  test("less DATA than content-length at END_STREAM: stream PROTOCOL_ERROR", () => {
    const { peer } = server();
    peer.send(peer.headers(1, [...POST, "content-length", "10"], false));
    peer.send(RawPeer.data(1, "abc", false));
    peer.send(RawPeer.data(1, "de", true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
  });
  test("content-length on a request with END_STREAM on HEADERS: stream PROTOCOL_ERROR", () => {
    const { peer, streams } = server();
    peer.send(peer.headers(1, [...POST, "content-length", "5"], true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(streams.length).toBe(0);
  });
});

describe("flow control (§6.9)", () => {
  test("DATA beyond the stream window: stream FLOW_CONTROL_ERROR", () => {
    // onData set but never consumed: the window is not reopened.
    const peer = new RawPeer("server", { streamWindow: 65535, onStream: (s) => (s.onData = () => {}) });
    peer.handshake();
    peer.send(peer.headers(1, POST, false));
    for (let i = 0; i < 4; i++) peer.send(RawPeer.data(1, new Uint8Array(16384), false));
    expect(peer.resets(1)).toEqual([H2_ERROR.FLOW_CONTROL_ERROR]);
    expect(conn(peer)).toBeUndefined();
  });
  test("DATA beyond the connection window: connection FLOW_CONTROL_ERROR", () => {
    const peer = new RawPeer("server", { streamWindow: 1 << 20, connectionWindow: 65535, onStream: (s) => (s.onData = () => {}) });
    peer.handshake();
    peer.send(peer.headers(1, POST, false));
    peer.send(peer.headers(3, POST, false));
    for (let i = 0; i < 2; i++) peer.send(RawPeer.data(1, new Uint8Array(16384), false));
    for (let i = 0; i < 2; i++) peer.send(RawPeer.data(3, new Uint8Array(16384), false));
    expect(conn(peer)).toBe(H2_ERROR.FLOW_CONTROL_ERROR);
  });
  test("WINDOW_UPDATE past 2^31-1: connection FLOW_CONTROL_ERROR on stream 0, stream FLOW_CONTROL_ERROR on a stream", () => {
    const a = server();
    a.peer.send(RawPeer.windowUpdate(0, 0x7fffffff));
    expect(conn(a.peer)).toBe(H2_ERROR.FLOW_CONTROL_ERROR);
    const b = server();
    b.peer.send(b.peer.headers(1, POST, false));
    b.peer.send(RawPeer.windowUpdate(1, 0x7fffffff));
    expect(b.peer.resets(1)).toEqual([H2_ERROR.FLOW_CONTROL_ERROR]);
    expect(conn(b.peer)).toBeUndefined();
  });
  test("WINDOW_UPDATE of 0: connection PROTOCOL_ERROR on stream 0, stream PROTOCOL_ERROR on an open stream", () => {
    const a = server();
    a.peer.send(RawPeer.frame(H2_FRAME.WINDOW_UPDATE, 0, 0, [0, 0, 0, 0]));
    expect(conn(a.peer)).toBe(H2_ERROR.PROTOCOL_ERROR);
    const b = server();
    b.peer.send(b.peer.headers(1, POST, false));
    b.peer.send(RawPeer.frame(H2_FRAME.WINDOW_UPDATE, 0, 1, [0, 0, 0, 0]));
    expect(b.peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
  });
  test("padding is credited back at once; consumed bytes come back in batches of half the window", () => {
    const peer = new RawPeer("server", {
      streamWindow: 65536,
      connectionWindow: 65536,
      onStream(s) {
        s.onData = (c) => s.consumed(c.length);
      },
    });
    peer.handshake();
    peer.send(peer.headers(1, POST, false));
    const before = peer.frames.length;
    // 1000 bytes of data + 255 padding + 1 pad-length octet.
    const padded = RawPeer.frame(H2_FRAME.DATA, H2_FLAG.PADDED, 1, [255, ...new Uint8Array(1000), ...new Uint8Array(255)]);
    peer.send(padded);
    expect(peer.frames.length).toBe(before); // 1256 < 32 KiB: batching
    for (let i = 0; i < 31; i++) peer.send(RawPeer.data(1, new Uint8Array(1000), false));
    expect(peer.frames.length).toBe(before); // 32256 < 32768
    peer.send(RawPeer.data(1, new Uint8Array(1000), false));
    const wu = peer.frames.slice(before).filter((f) => f.type === H2_FRAME.WINDOW_UPDATE);
    expect(wu.map((f) => f.streamId).sort()).toEqual([0, 1]);
  });
});

describe("PING and GOAWAY (§6.7, §6.8)", () => {
  test("PING is answered with the same payload; a PING ACK is not answered", () => {
    const { peer } = server();
    const before = peer.frames.length;
    peer.send(RawPeer.ping(false, [9, 8, 7, 6, 5, 4, 3, 2]));
    peer.send(RawPeer.ping(true));
    const pings = peer.frames.slice(before).filter((f) => f.type === H2_FRAME.PING);
    expect(pings.length).toBe(1);
    expect(pings[0].flags).toBe(H2_FLAG.ACK);
    expect([...pings[0].payload]).toEqual([9, 8, 7, 6, 5, 4, 3, 2]);
  });
  test("a connection error's GOAWAY names the last stream processed and a reason", () => {
    const { peer } = server();
    peer.send(peer.headers(1, GET, false));
    peer.send(peer.headers(3, GET, false));
    peer.send(RawPeer.frame(H2_FRAME.PING, 0, 0, [1, 2, 3]));
    expect(peer.goaway()).toEqual({ lastStreamId: 3, errorCode: H2_ERROR.FRAME_SIZE_ERROR, debug: "ping_length" });
  });
  test("after our final GOAWAY, new streams are ignored (§6.8)", () => {
    const { peer, streams } = server();
    peer.send(peer.headers(1, POST, false));
    peer.session.goaway(H2_ERROR.NO_ERROR, false);
    peer.send(peer.headers(3, GET, true));
    peer.send(RawPeer.data(3, "x", true));
    expect(streams.map((s) => s.id)).toEqual([1]);
    expect(conn(peer)).toBe(H2_ERROR.NO_ERROR);
    expect(peer.session.closed).toBe(false); // stream 1 still open
  });
});

describe("client role: responses (§8.1, §8.3.2)", () => {
  function client() {
    const peer = new RawPeer("client");
    peer.handshake();
    const events: string[] = [];
    const s = peer.session.request(GET, true)!;
    s.onResponse = (status) => events.push(`response ${status}`);
    s.onData = (c) => {
      events.push(`data ${c.length}`);
      s.consumed(c.length);
    };
    s.onEnd = (t) => events.push(t ? `end ${t.join(",")}` : "end");
    s.onReset = (code, reason) => events.push(`reset ${code} ${reason}`);
    peer.collect();
    return { peer, events };
  }
  test("DATA before the response head: stream PROTOCOL_ERROR", () => {
    const { peer, events } = client();
    peer.send(RawPeer.data(1, "x", true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(events).toEqual([`reset ${H2_ERROR.PROTOCOL_ERROR} data_before_response`]);
  });
  test("a body longer than the response content-length: stream PROTOCOL_ERROR", () => {
    const { peer, events } = client();
    peer.send(peer.headers(1, [":status", "200", "content-length", "2"], false));
    peer.send(RawPeer.data(1, "abc", true));
    expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    expect(events).toEqual(["response 200", `reset ${H2_ERROR.PROTOCOL_ERROR} content_length_mismatch`]);
  });
  test("a 1xx head with END_STREAM, or a response without :status: stream PROTOCOL_ERROR", () => {
    for (const head of [[":status", "103"], ["content-type", "text/plain"]]) {
      const { peer } = client();
      peer.send(peer.headers(1, head, true));
      expect(peer.resets(1)).toEqual([H2_ERROR.PROTOCOL_ERROR]);
    }
  });
  test("100-continue is skipped; response, body and trailers follow in order", () => {
    const { peer, events } = client();
    peer.send(peer.headers(1, [":status", "100"], false));
    peer.send(peer.headers(1, [":status", "200"], false));
    peer.send(RawPeer.data(1, "ab", false));
    peer.send(peer.headers(1, ["grpc-status", "0"], true));
    expect(events).toEqual(["response 200", "data 2", "end grpc-status,0"]);
    expect(peer.session.openStreams).toBe(0);
  });
  test("the server's RST_STREAM reaches onReset; later frames on that stream are STREAM_CLOSED", () => {
    const { peer, events } = client();
    peer.send(peer.headers(1, [":status", "200"], false));
    peer.send(RawPeer.rst(1, H2_ERROR.INTERNAL_ERROR));
    expect(events).toEqual(["response 200", `reset ${H2_ERROR.INTERNAL_ERROR} peer_reset`]);
    peer.send(RawPeer.data(1, "x", true));
    expect(peer.resets(1)).toEqual([H2_ERROR.STREAM_CLOSED]);
  });
});
