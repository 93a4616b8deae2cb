#!/usr/bin/env bash
# Socket fuzzing of the compiled binary (not in CI). Loopback only; bounded
# by --inputs and --max-seconds; the binary it starts is SIGTERMed at the end.
#
#   bench/fuzz.sh                  1,000,000 inputs, 200 concurrent sockets, 30 min cap
#   bench/fuzz.sh --inputs 50000   any bench/fuzz.ts option passes through
#   bench/fuzz.sh --in-process     the parsers only, no sockets (fast)
#
# Exit 0 only with 0 hangs, 0 crashes, 0 bytes forwarded from invalid input,
# 0 bytes written to rejected clients, 0 fuzz requests at the L7 backend.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
[ -x dist/mc-proxy ] || "$BUN" scripts/build.ts mc-proxy
case " $* " in *" --in-process "*) exec "$BUN" bench/fuzz.ts "$@" ;; esac
out="${TMPDIR:-/tmp}/mc-proxy-fuzz-$(date -u +%Y%m%dT%H%M%SZ).json"
rc=0
"$BUN" bench/fuzz.ts --json "$out" "$@" >/dev/null || rc=$?
if [ -s "$out" ]; then
  # shellcheck disable=SC2016 # JavaScript, not shell
  "$BUN" -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const rows = [
      ["inputs", s.inputs], ["seconds", s.seconds], ["inputs/s", s.rate_per_s],
      ["verdicts l4 / l7 / drop", `${s.verdict_l4} / ${s.verdict_l7} / ${s.verdict_drop}`],
      ["client: FIN / answered / reset", `${s.client_fin} / ${s.client_answered} / ${s.client_reset}`],
      ["crashes (not alive after a batch)", s.dead], ["hangs (> hello_timeout + 2 s)", s.hangs],
      ["forwarded exactly (valid L4 hellos)", s.forwarded_exact], ["forwarded from invalid input", s.forwarded_invalid],
      ["forwarded bytes not sent", s.forwarded_not_sent], ["valid L4 inputs not forwarded", s.l4_missed],
      ["bytes written to rejected clients", s.drop_but_bytes_written], ["fuzz requests at the L7 backend", s.l7_backend_requests],
      ["RSS MiB idle / peak / end", `${s.rss_mib.idle} / ${s.rss_mib.peak} / ${s.rss_mib.end}`],
      ["RSS MiB max 1st half / 2nd half", `${s.rss_mib.max_first_half} / ${s.rss_mib.max_second_half}`],
      ["fds idle / peak / end", `${s.fds.idle} / ${s.fds.peak} / ${s.fds.end}`],
      ["probes after (L7, L4)", `${s.l7_probe_after}; ${s.l4_probe_after}`],
      ["exit code on SIGTERM", s.exit_code_on_sigterm], ["stderr error/non-JSON lines", s.stderr_error_or_non_json.length],
    ];
    for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
  ' "$out"
  echo "full report: $out"
fi
exit "$rc"
