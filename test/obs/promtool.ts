/**
 * Test helper: validates exposition text with Prometheus' own `promtool check
 * metrics` (Debian package `prometheus`), which parses the text format and
 * lints naming (e.g. counters must end in `_total`). Also checks what promtool
 * does not: no series appears twice.
 */
import { existsSync } from "node:fs";

export const PROMTOOL = "/usr/bin/promtool";

/** Returns promtool's complaints (empty string when the text is clean). */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} missing: apt-get install -y --no-install-recommends prometheus`);
  const p = Bun.spawn([PROMTOOL, "check", "metrics"], { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(), 20_000);
  try {
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, output: (out + err).trim() };
  } finally {
    clearTimeout(timer);
  }
}

/** Sample lines whose name+labels occur more than once (invalid exposition). */
export function duplicateSeries(text: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const series = line.slice(0, line.lastIndexOf(" "));
    if (seen.has(series)) dups.push(series);
    seen.add(series);
  }
  return dups;
}
