import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import { escapeLabelValue, formatValue, Registry } from "../../src/obs/prom.ts";

describe("Prometheus text writer (format 0.0.4)", () => {
  test("counter renders HELP, TYPE and one line per label set, sorted by labels", () => {
    const r = new Registry();
    const c = r.counter({ name: "x_requests_total", help: "Requests.", labelNames: ["route", "code"] });
    c.labels("b.example", "2xx").inc(3);
    c.labels("a.example", "5xx").inc();
    c.labels("a.example", "2xx").inc(2.5);
    expect(r.render()).toBe(
      [
        "# HELP x_requests_total Requests.",
        "# TYPE x_requests_total counter",
        'x_requests_total{route="a.example",code="2xx"} 2.5',
        'x_requests_total{route="a.example",code="5xx"} 1',
        'x_requests_total{route="b.example",code="2xx"} 3',
        "",
      ].join("\n"),
    );
  });

  test("a counter never goes down: negative and NaN increments are ignored", () => {
    const r = new Registry();
    const c = r.counter({ name: "x_total", help: "h" }).labels();
    c.inc(2);
    c.inc(-5);
    c.inc(NaN);
    expect(c.value).toBe(2);
    expect(r.render()).toBe("# HELP x_total h\n# TYPE x_total counter\nx_total 2\n");
  });

  test("gauge set/inc/dec and a label-less gauge", () => {
    const r = new Registry();
    const g = r.gauge({ name: "x_temp", help: "Temp." });
    const child = g.labels();
    child.set(10);
    child.inc(5);
    child.dec(2);
    expect(r.render()).toBe("# HELP x_temp Temp.\n# TYPE x_temp gauge\nx_temp 13\n");
  });

  test("histogram buckets are cumulative, end with +Inf, then _sum and _count", () => {
    const r = new Registry();
    const h = r.histogram({ name: "x_seconds", help: "Latency.", labelNames: ["route"], buckets: [0.1, 1, 5] });
    const a = h.labels("a");
    for (const v of [0.05, 0.1, 0.5, 2, 100]) a.observe(v); // 0.1 lands in le=0.1 (upper bound inclusive)
    a.observe(NaN); // ignored
    expect(r.render()).toBe(
      [
        "# HELP x_seconds Latency.",
        "# TYPE x_seconds histogram",
        'x_seconds_bucket{route="a",le="0.1"} 2',
        'x_seconds_bucket{route="a",le="1"} 3',
        'x_seconds_bucket{route="a",le="5"} 4',
        'x_seconds_bucket{route="a",le="+Inf"} 5',
        'x_seconds_sum{route="a"} 102.65',
        'x_seconds_count{route="a"} 5',
        "",
      ].join("\n"),
    );
  });

  test("histogram without labels renders le as the only label", () => {
    const r = new Registry();
    r.histogram({ name: "x_h", help: "h", buckets: [1] }).labels().observe(3);
    expect(r.render()).toBe('# HELP x_h h\n# TYPE x_h histogram\nx_h_bucket{le="1"} 0\nx_h_bucket{le="+Inf"} 1\nx_h_sum 3\nx_h_count 1\n');
  });

  test("label values escape backslash, double quote and newline; HELP escapes backslash and newline", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const r = new Registry();
    r.counter({ name: "x_total", help: 'line1\nback\\slash "q"', labelNames: ["v"] }).inc('C:\\dir "x"\nnext');
    expect(r.render()).toBe('# HELP x_total line1\\nback\\\\slash "q"\n# TYPE x_total counter\nx_total{v="C:\\\\dir \\"x\\"\\nnext"} 1\n');
  });

  test("special values render as +Inf, -Inf, NaN", () => {
    expect([Infinity, -Infinity, NaN, 1e21, 0.25].map(formatValue)).toEqual(["+Inf", "-Inf", "NaN", "1e+21", "0.25"]);
  });

  test("metrics render sorted by name whatever the registration order", () => {
    const r = new Registry();
    r.counter({ name: "b_total", help: "b" });
    r.gauge({ name: "a_gauge", help: "a" });
    expect(r.render()).toBe("# HELP a_gauge a\n# TYPE a_gauge gauge\n# HELP b_total b\n# TYPE b_total counter\n");
  });

  test("callback gauge is evaluated at scrape time; duplicate label sets keep the last value; a throwing source yields no samples", () => {
    const r = new Registry();
    let n = 1;
    const cg = r.gaugeFn({ name: "x_active", help: "Active.", labelNames: ["listener"] }, () => [
      { labels: ["b"], value: n },
      { labels: ["a"], value: 7 },
      { labels: ["a"], value: 8 },
    ]);
    expect(r.render()).toBe('# HELP x_active Active.\n# TYPE x_active gauge\nx_active{listener="a"} 8\nx_active{listener="b"} 1\n');
    n = 42;
    expect(r.render()).toContain('x_active{listener="b"} 42\n');
    cg.collect = () => {
      throw new Error("state gone");
    };
    expect(r.render()).toBe("# HELP x_active Active.\n# TYPE x_active gauge\n");
  });

  test("cardinality cap: label sets beyond maxSeries are refused and counted as drops", () => {
    const r = new Registry({ maxSeries: 3, dropCounterName: "x_series_dropped_total" });
    const c = r.counter({ name: "x_total", help: "h", labelNames: ["k"] });
    for (let i = 0; i < 10; i++) c.labels(`v${i}`).inc();
    c.labels("v0").inc(); // an existing series still counts after the cap is hit
    const text = r.render();
    expect(text.match(/^x_total\{/gm)?.length).toBe(3);
    expect(text).toContain('x_total{k="v0"} 2\n');
    expect(text).not.toContain('k="v3"');
    expect(c.dropped).toBe(7);
    expect(text).toContain('x_series_dropped_total{metric="x_total"} 7\n');
  });

  test("default cap is 10,000 label sets per metric", () => {
    const r = new Registry();
    const c = r.counter({ name: "x_total", help: "h", labelNames: ["k"] });
    for (let i = 0; i < 10_050; i++) c.labels(String(i)).inc();
    expect(c.dropped).toBe(50);
  });

  test("callback gauge output is capped too", () => {
    const r = new Registry({ maxSeries: 2 });
    r.gaugeFn({ name: "x_g", help: "h", labelNames: ["k"] }, () => ["a", "b", "c"].map((k) => ({ labels: [k], value: 1 })));
    expect(r.render().match(/^x_g\{/gm)?.length).toBe(2);
  });

  test("invalid names, reserved labels, wrong label count, duplicates and bad buckets are refused", () => {
    const r = new Registry();
    expect(() => r.counter({ name: "1bad", help: "h" })).toThrow(InvalidArgumentError);
    expect(() => r.counter({ name: "x-y", help: "h" })).toThrow(InvalidArgumentError);
    expect(() => r.counter({ name: "ok_total", help: "h", labelNames: ["__name"] })).toThrow(InvalidArgumentError);
    expect(() => r.counter({ name: "ok_total", help: "h", labelNames: ["a", "a"] })).toThrow(InvalidArgumentError);
    expect(() => r.histogram({ name: "h1", help: "h", labelNames: ["le"] })).toThrow(InvalidArgumentError);
    expect(() => r.histogram({ name: "h2", help: "h", buckets: [1, 1] })).toThrow(InvalidArgumentError);
    expect(() => r.histogram({ name: "h3", help: "h", buckets: [1, Infinity] })).toThrow(InvalidArgumentError);
    const c = r.counter({ name: "dup_total", help: "h", labelNames: ["a"] });
    expect(() => r.counter({ name: "dup_total", help: "h" })).toThrow(InvalidArgumentError);
    expect(() => c.labels()).toThrow(InvalidArgumentError);
    expect(() => c.labels("x", "y")).toThrow(InvalidArgumentError);
  });

  test("labels() returns the same child for the same values (hot path holds it)", () => {
    const r = new Registry();
    const c = r.counter({ name: "x_total", help: "h", labelNames: ["a", "b"] });
    expect(c.labels("p", "q")).toBe(c.labels("p", "q"));
    // The \0 join cannot be confused by values containing the separator used in output.
    c.labels("a,b", "c").inc();
    c.labels("a", "b,c").inc();
    expect(r.render().match(/^x_total\{/gm)?.length).toBe(3);
  });
});
