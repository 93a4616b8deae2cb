/**
 * Test helper: scrape a running `/metrics` endpoint with a real HTTP client
 * and read samples back by name and labels.
 *
 *   const s = await scrape(port);                 // { text, samples }
 *   value(s, "mcproxy_connections_accepted_total", { listener: "127.0.0.1:0" })  // 0 when absent
 */

export interface Scrape {
  text: string;
  /** `name{a="x",b="y"}` (exactly as rendered) → value. */
  samples: Map<string, number>;
}

/** GETs http://127.0.0.1:port/metrics and parses every sample line; throws on a non-200 answer. */
export async function scrape(port: number, host = "127.0.0.1"): Promise<Scrape> {
  const res = await fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const text = await res.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    samples.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return { text, samples };
}

/** The series key as the registry renders it: labels in the given order, values escaped. */
export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`);
  return parts.length ? `${name}{${parts.join(",")}}` : name;
}

/** A sample's value, 0 when the series does not exist (yet). Pass labels in the metric's label order. */
export function value(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return s.samples.get(seriesKey(name, labels)) ?? 0;
}

/** `after - before` for one series. */
export function delta(before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}): number {
  return value(after, name, labels) - value(before, name, labels);
}
