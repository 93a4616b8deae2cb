/**
 * A small Prometheus registry and text-format (0.0.4) writer: labelled
 * counters, gauges, callback gauges and histograms. Written here instead of
 * pulling in prom-client because we need ~200 lines of it and want the hot
 * path to be "increment a number on an object we already hold".
 *
 * Hot path: `metric.labels(...)` resolves a label set to a child once (one
 * string join + map lookup); callers keep the child and call `inc()` /
 * `observe()`, which only touch numbers. Rendering happens at scrape time.
 *
 * Cardinality: each metric holds at most `maxSeries` label sets (default
 * 10,000). Beyond that `labels()` returns a detached child whose updates go
 * nowhere, and the drop is counted in the registry's drop counter (if one is
 * configured). Never use unbounded values (client IPs) as labels.
 */
import { InvalidArgumentError } from "../errors.ts";
import { METRICS_MAX_SERIES } from "../limits.ts";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const DEFAULT_MAX_SERIES = METRICS_MAX_SERIES;

/** Prometheus' classic default buckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Escapes a label value for the text format: backslash, double quote, newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

/** Escapes HELP text: backslash and newline (quotes stay as they are). */
export function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === "\\" ? "\\\\" : "\\n"));
}

/** Formats a sample value the way Prometheus parses it (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Renders `{a="x",b="y"}` (or "" for no labels); `extra` is appended verbatim (used for `le`). */
function renderLabels(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]}="${escapeLabelValue(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

type MetricType = "counter" | "gauge" | "histogram";

/** One label set of a metric: rendered labels, raw values, and the live child. */
interface Series<C> {
  labels: string;
  values: readonly string[];
  child: C;
}

export interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** Cap on distinct label sets; defaults to the registry's cap. */
  maxSeries?: number;
}

/** Throws InvalidArgumentError for names the text format cannot carry (a programming error). */
function checkNames(name: string, labelNames: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new InvalidArgumentError("metric.name", `invalid metric name ${JSON.stringify(name)}`);
  for (const l of labelNames) {
    if (!LABEL_NAME.test(l) || l.startsWith("__")) throw new InvalidArgumentError("metric.labelNames", `invalid label name ${JSON.stringify(l)} on ${name}`);
  }
  if (new Set(labelNames).size !== labelNames.length) throw new InvalidArgumentError("metric.labelNames", `duplicate label name on ${name}`);
}

/** Common part of every metric: name checks, the label-set map and the cap. */
abstract class Metric<C> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricType;
  /** Label key (values joined by \0) → child; rendered in sorted label order. */
  protected readonly children = new Map<string, Series<C>>();
  private readonly maxSeries: number;
  /** Label sets refused because of the cap. */
  dropped = 0;

  constructor(
    opts: MetricOptions,
    private readonly onDrop: (metric: string) => void,
    defaultMax: number,
  ) {
    const labelNames = opts.labelNames ?? [];
    checkNames(opts.name, labelNames);
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = labelNames;
    this.maxSeries = opts.maxSeries ?? defaultMax;
  }

  protected abstract newChild(): C;
  abstract renderSamples(out: string[]): void;

  /** Resolves a label set (values in `labelNames` order) to its child, creating it on first use. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new InvalidArgumentError("metric.labels", `${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    }
    const key = values.join("\0");
    const hit = this.children.get(key);
    if (hit) return hit.child;
    if (this.children.size >= this.maxSeries) {
      this.dropped++;
      this.onDrop(this.name);
      return this.newChild(); // detached: updates go nowhere, never rendered
    }
    const entry = { labels: renderLabels(this.labelNames, values), values, child: this.newChild() };
    this.children.set(key, entry);
    return entry.child;
  }

  /** Every label set with its raw values and child (unsorted). */
  series(): IterableIterator<{ values: readonly string[]; child: C }> {
    return this.children.values();
  }

  /** Children sorted by their rendered label string: stable output whatever the traffic order. */
  protected sorted(): Series<C>[] {
    return [...this.children.values()].sort((a, b) => (a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0));
  }
}

export interface CounterChild {
  /** Adds `n` (default 1); negative or NaN increments are ignored (counters only go up). */
  inc(n?: number): void;
  readonly value: number;
}

class CounterValue implements CounterChild {
  value = 0;
  inc(n = 1): void {
    if (n >= 0) this.value += n; // also rejects NaN
  }
}

export class Counter extends Metric<CounterChild> {
  readonly type = "counter" as const;
  protected newChild(): CounterChild {
    return new CounterValue();
  }
  /** Shorthand for `labels(...values).inc(1)`; prefer holding the child on hot paths. */
  inc(...values: string[]): void {
    this.labels(...values).inc();
  }
  renderSamples(out: string[]): void {
    for (const { labels, child } of this.sorted()) out.push(`${this.name}${labels} ${formatValue(child.value)}`);
  }
}

export interface GaugeChild {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
  readonly value: number;
}

class GaugeValue implements GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

export class Gauge extends Metric<GaugeChild> {
  readonly type = "gauge" as const;
  protected newChild(): GaugeChild {
    return new GaugeValue();
  }
  renderSamples(out: string[]): void {
    for (const { labels, child } of this.sorted()) out.push(`${this.name}${labels} ${formatValue(child.value)}`);
  }
}

/** One sample a callback gauge reports: label values in `labelNames` order. */
export interface GaugeSample {
  labels: readonly string[];
  value: number;
}

/**
 * A gauge whose samples are produced by `collect()` at scrape time (e.g.
 * active connections read from the listener state). A throwing collector
 * yields no samples for that scrape rather than failing the whole scrape.
 */
export class CallbackGauge {
  readonly type = "gauge" as const;
  readonly labelNames: readonly string[];
  private readonly maxSeries: number;
  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    public collect: () => readonly GaugeSample[],
    maxSeries: number,
  ) {
    checkNames(name, labelNames);
    this.labelNames = labelNames;
    this.maxSeries = maxSeries;
  }
  renderSamples(out: string[]): void {
    let samples: readonly GaugeSample[];
    try {
      samples = this.collect();
    } catch {
      return; // why: one broken source must not take the whole /metrics page down
    }
    // Same label set twice would be invalid exposition: the last report wins.
    const byLabels = new Map<string, number>();
    for (const s of samples) {
      if (s.labels.length !== this.labelNames.length) continue;
      const labels = renderLabels(this.labelNames, s.labels);
      if (!byLabels.has(labels) && byLabels.size >= this.maxSeries) continue;
      byLabels.set(labels, s.value);
    }
    for (const labels of [...byLabels.keys()].sort()) out.push(`${this.name}${labels} ${formatValue(byLabels.get(labels)!)}`);
  }
}

export interface HistogramChild {
  /** Records one observation (NaN is ignored). */
  observe(v: number): void;
}

class HistogramValue implements HistogramChild {
  /** Non-cumulative per-bucket counts; the last slot is +Inf. Cumulated at render time. */
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length + 1).fill(0);
  }
  observe(v: number): void {
    if (Number.isNaN(v)) return;
    let i = 0;
    // Linear scan: bucket lists are ~15 long, faster than a binary search at that size.
    while (i < this.bounds.length && v > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, strictly increasing, finite; `+Inf` is implicit. */
  buckets?: readonly number[];
}

export class Histogram extends Metric<HistogramChild> {
  readonly type = "histogram" as const;
  readonly buckets: readonly number[];
  private readonly leLabels: string[];

  constructor(opts: HistogramOptions, onDrop: (metric: string) => void, defaultMax: number) {
    super(opts, onDrop, defaultMax);
    if (this.labelNames.includes("le")) throw new InvalidArgumentError("metric.labelNames", `histogram ${opts.name} may not use label "le"`);
    const b = opts.buckets ?? DEFAULT_BUCKETS;
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]))) {
      throw new InvalidArgumentError("metric.buckets", `buckets of ${opts.name} must be finite and strictly increasing`);
    }
    this.buckets = [...b];
    this.leLabels = [...this.buckets.map((x) => `le="${formatValue(x)}"`), `le="+Inf"`];
  }
  protected newChild(): HistogramChild {
    return new HistogramValue(this.buckets);
  }
  renderSamples(out: string[]): void {
    for (const { labels, values, child } of this.sorted()) {
      const h = child as HistogramValue;
      let cum = 0;
      for (let i = 0; i < h.counts.length; i++) {
        cum += h.counts[i];
        out.push(`${this.name}_bucket${renderLabels(this.labelNames, values, this.leLabels[i])} ${cum}`);
      }
      out.push(`${this.name}_sum${labels} ${formatValue(h.sum)}`);
      out.push(`${this.name}_count${labels} ${h.count}`);
    }
  }
}

type AnyMetric = Counter | Gauge | CallbackGauge | Histogram;

type CounterDelta = [values: readonly string[], value: number];
type HistogramDelta = [values: readonly string[], counts: number[], sum: number, count: number];
/** One metric's changes since the last Registry.takeDelta(); plain data, safe to post between threads. */
export interface MetricDelta {
  name: string;
  counter?: CounterDelta[];
  histogram?: HistogramDelta[];
}

export interface RegistryOptions {
  /** Default per-metric cap on label sets. */
  maxSeries?: number;
  /** If set, a counter `{name}{metric="…"}` counts label sets refused by the cap. */
  dropCounterName?: string;
}

/**
 * A set of metrics rendered together. Names are unique; `render()` returns the
 * whole exposition text, metrics sorted by name, series by label string.
 */
export class Registry {
  private readonly metrics = new Map<string, AnyMetric>();
  private readonly maxSeries: number;
  private readonly dropCounter: Counter | null;
  private readonly onDrop = (metric: string) => this.dropCounter?.labels(metric).inc();

  constructor(opts: RegistryOptions = {}) {
    this.maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
    this.dropCounter = opts.dropCounterName
      ? this.add(new Counter({ name: opts.dropCounterName, help: "Label sets refused because a metric reached its series cap.", labelNames: ["metric"] }, () => {}, this.maxSeries))
      : null;
  }

  private add<M extends AnyMetric>(m: M): M {
    if (this.metrics.has(m.name)) throw new InvalidArgumentError("metric.name", `metric ${m.name} registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(opts: MetricOptions): Counter {
    return this.add(new Counter(opts, this.onDrop, this.maxSeries));
  }
  gauge(opts: MetricOptions): Gauge {
    return this.add(new Gauge(opts, this.onDrop, this.maxSeries));
  }
  histogram(opts: HistogramOptions): Histogram {
    return this.add(new Histogram(opts, this.onDrop, this.maxSeries));
  }
  /** A gauge evaluated at scrape time; `collect` may be replaced later via the returned object. */
  gaugeFn(opts: MetricOptions, collect: () => readonly GaugeSample[]): CallbackGauge {
    return this.add(new CallbackGauge(opts.name, opts.help, opts.labelNames ?? [], collect, opts.maxSeries ?? this.maxSeries));
  }

  /**
   * Counter and histogram values added since the last call, and resets them
   * to zero (a worker thread's side of /metrics: the main thread absorbs the
   * deltas into its own registry, so its counters stay monotonic and hold
   * the sum of every thread). Label sets with nothing new are left out.
   */
  takeDelta(): MetricDelta[] {
    const out: MetricDelta[] = [];
    for (const m of this.metrics.values()) {
      if (m instanceof Counter) {
        const series: CounterDelta[] = [];
        for (const { values, child } of m.series()) {
          const c = child as CounterValue;
          if (c.value === 0) continue;
          series.push([values, c.value]);
          c.value = 0;
        }
        if (series.length) out.push({ name: m.name, counter: series });
      } else if (m instanceof Histogram) {
        const series: HistogramDelta[] = [];
        for (const { values, child } of m.series()) {
          const h = child as HistogramValue;
          if (h.count === 0) continue;
          series.push([values, [...h.counts], h.sum, h.count]);
          h.counts.fill(0);
          h.sum = 0;
          h.count = 0;
        }
        if (series.length) out.push({ name: m.name, histogram: series });
      }
    }
    return out;
  }

  /** Adds another registry's takeDelta() into this one (metrics it does not have are ignored). */
  absorb(deltas: readonly MetricDelta[]): void {
    for (const d of deltas) {
      const m = this.metrics.get(d.name);
      if (m instanceof Counter && d.counter) {
        for (const [values, v] of d.counter) m.labels(...values).inc(v);
      } else if (m instanceof Histogram && d.histogram) {
        for (const [values, counts, sum, count] of d.histogram) {
          const h = m.labels(...values) as HistogramValue;
          if (counts.length !== h.counts.length) continue; // another bucket layout: not ours
          for (let i = 0; i < counts.length; i++) h.counts[i]! += counts[i]!;
          h.sum += sum;
          h.count += count;
        }
      }
    }
  }

  /** The exposition text (format 0.0.4), ending with a newline. */
  render(): string {
    const out: string[] = [];
    for (const name of [...this.metrics.keys()].sort()) {
      const m = this.metrics.get(name)!;
      out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`);
      out.push(`# TYPE ${m.name} ${m.type}`);
      m.renderSamples(out);
    }
    return out.join("\n") + "\n";
  }
}

/** The Content-Type of `Registry.render()` output. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
