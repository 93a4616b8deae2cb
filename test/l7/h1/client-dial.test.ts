/**
 * Dialing backends (src/l7/h1/dial.ts via H1Pool): connect_timeout on every
 * dial with the descriptor closed at once, refused and unresolvable backends.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { H1Pool } from "../../../src/l7/h1/client.ts";
import { dialCounts, fastDialsInFlight } from "../../../src/l7/h1/dial.ts";
import { type Blackhole, deadPort, ok, send, startBackend, startBlackhole, synSentTo, target, waitFor } from "./client-backends.ts";

let blackhole: Blackhole;
beforeAll(async () => {
  blackhole = await startBlackhole();
});
afterAll(() => blackhole?.close());

test("connect_timeout: a black-holed backend fails within connectTimeoutMs + 200 ms and no SYN_SENT socket is left", async () => {
  const p = new H1Pool({ connectTimeoutMs: 300, idleTimeoutMs: 10_000, proxyHeader: null });
  const before = synSentTo(blackhole.port);
  const t0 = performance.now();
  const rs = await Promise.all([send(p, target(blackhole.port), "GET").done, send(p, target(blackhole.port), "GET").done]);
  const took = performance.now() - t0;
  for (const r of rs) {
    expect(r.error).toMatchObject({ kind: "timeout_connect", code: "ETIMEDOUT", beforeResponse: true });
  }
  expect(took).toBeGreaterThanOrEqual(290);
  expect(took).toBeLessThan(300 + 200);
  expect(p.stats()).toMatchObject({ open: 0, dials: 2 });
  // Bun.connect cannot abort a connect; our dial closes the descriptor (BUN-NOTES).
  await waitFor(() => synSentTo(blackhole.port) <= before, 1000);
  p.close();
});

test("ECONNREFUSED is a connect error before the response", async () => {
  const p = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null });
  const r = await send(p, target(deadPort()), "GET").done;
  expect(r.error).toMatchObject({ kind: "connect", code: "ECONNREFUSED", beforeResponse: true });
  expect(p.stats().open).toBe(0);
  p.close();
});

test("an unresolvable backend name is a connect error", async () => {
  const p = new H1Pool({ connectTimeoutMs: 5000, idleTimeoutMs: 10_000, proxyHeader: null });
  const t = { ...target(1), host: "no-such-host.invalid", key: "no-such-host.invalid|1" };
  const r = await send(p, t, "GET").done;
  expect(r.error?.kind).toBe("connect");
  expect(r.error?.code).toBe("ENOTFOUND");
  p.close();
});

test("cancel() while dialing: the dial goes on and its connection serves the next request", async () => {
  const b = startBackend(() => ok("hi"));
  const p = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null });
  const t = target(b.port);
  let called = false;
  const s = send(p, t, "GET", "/", { onData: () => ((called = true), true) });
  s.ex.cancel();
  await waitFor(() => p.stats().idle === 1);
  expect(called).toBe(false);
  expect(b.requests.length).toBe(0);
  expect((await send(p, t, "GET").done).body.toString()).toBe("hi");
  expect(p.stats().dials).toBe(1);
  p.close();
  b.stop();
});

test("cancel() of a request waiting in the queue removes it", async () => {
  const b = startBackend(() => null);
  const p = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null });
  const t = target(b.port);
  for (let i = 0; i < 256; i++) send(p, t, "GET");
  const waiting = send(p, t, "GET");
  expect(p.stats().queued).toBe(1);
  waiting.ex.cancel();
  expect(p.stats().queued).toBe(0);
  p.close();
  b.stop();
});

test("a target that answered is dialled with Bun.connect (fast); a refused address counts as answering", async () => {
  const b = startBackend(() => ok("hi"));
  const p = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null });
  const t = target(b.port);
  const before = { ...dialCounts };
  const r1 = send(p, t, "GET");
  const r2 = send(p, t, "GET"); // a second connection: dialled before the first answered
  expect((await r1.done).body.toString()).toBe("hi");
  expect((await r2.done).body.toString()).toBe("hi");
  expect(t.dial.answered).toBe(true);
  p.close(); // the next request needs a new connection
  const p2 = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null });
  expect((await send(p2, t, "GET").done).body.toString()).toBe("hi");
  expect(dialCounts.abortable - before.abortable).toBe(2);
  expect(dialCounts.fast - before.fast).toBe(1);
  p2.close();
  b.stop();

  const refused = target(deadPort());
  const p3 = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 10_000, proxyHeader: null });
  expect((await send(p3, refused, "GET").done).error?.code).toBe("ECONNREFUSED");
  expect(refused.dial.answered).toBe(true);
  const fast = dialCounts.fast;
  expect((await send(p3, refused, "GET").done).error?.code).toBe("ECONNREFUSED"); // through connectError of the fast dial
  expect(dialCounts.fast).toBe(fast + 1);
  p3.close();
});

test("a backend that answered and then went dark: one fast dial is abandoned (its SYN_SENT stays), every later dial is abortable again", async () => {
  const p = new H1Pool({ connectTimeoutMs: 300, idleTimeoutMs: 10_000, proxyHeader: null });
  const t = target(blackhole.port);
  t.dial.answered = true; // as if it had answered before going dark
  const before = synSentTo(blackhole.port);
  const counts = { ...dialCounts };
  for (let i = 0; i < 3; i++) {
    const r = await send(p, t, "GET").done;
    expect(r.error).toMatchObject({ kind: "timeout_connect", code: "ETIMEDOUT" });
  }
  expect(t.dial.answered).toBe(false);
  expect(dialCounts.fast - counts.fast).toBe(1);
  expect(dialCounts.abortable - counts.abortable).toBe(2);
  // Only the fast dial's descriptor is left connecting (until the kernel gives up, or the blackhole closes).
  await waitFor(() => synSentTo(blackhole.port) <= before + 1, 1000);
  expect(synSentTo(blackhole.port)).toBe(before + 1);
  p.close();
});

test("a fast dial whose name no longer resolves fails as ENOTFOUND and is no longer counted in flight", async () => {
  const p = new H1Pool({ connectTimeoutMs: 5000, idleTimeoutMs: 10_000, proxyHeader: null });
  const t = { ...target(1), host: "no-such-host.invalid", key: "no-such-host.invalid|1|fast", dial: { answered: true } };
  const fast = dialCounts.fast;
  const inFlight = fastDialsInFlight();
  const r = await send(p, t, "GET").done;
  expect(dialCounts.fast).toBe(fast + 1);
  expect(fastDialsInFlight()).toBe(inFlight);
  expect(r.error?.kind).toBe("connect");
  expect(r.error?.code).toBe("ENOTFOUND");
  p.close();
});
