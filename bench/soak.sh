#!/usr/bin/env bash
# Soak under faults (not in CI): L4 and L7 traffic through the compiled binary
# while backends are SIGKILLed and restarted, routes and firewall rules change
# through the admin API, SIGHUP arrives every 3 s, one client trickles and a
# group floods; then SIGTERM, a restart on the same database, and a check that
# every acknowledged admin write is there. Loopback only, bounded by --duration.
#
#   bench/soak.sh                  180 s
#   bench/soak.sh --duration 60    any bench/soak.ts option passes through
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
[ -x dist/mc-proxy ] || "$BUN" scripts/build.ts mc-proxy
out="${TMPDIR:-/tmp}/mc-proxy-soak-$(date -u +%Y%m%dT%H%M%SZ).json"
rc=0
"$BUN" bench/soak.ts --json "$out" "$@" >/dev/null || rc=$?
if [ -s "$out" ]; then
  # shellcheck disable=SC2016 # JavaScript, not shell
  "$BUN" -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const r = s.requests, v = s.verify_after_restart;
    const rows = [
      ["duration (s)", s.duration_s],
      ["requests ok while backend up / errors while backend up", `${r.up_ok} / ${s.client_errors_while_backend_up}`],
      ["requests while a backend was down: ok / failed", `${r.down_ok} / ${r.down_err}`],
      ["backend kills (L4 / L7)", Object.values(s.backend_kills).join(" / ")],
      ["SIGHUPs", s.sighups],
      ["admin writes acknowledged (route add / remove, rule add / remove)", `${s.admin.acked} (${s.admin.route_add} / ${s.admin.route_remove}, ${s.admin.fw_add} / ${s.admin.fw_remove})`],
      ["admin calls with unknown outcome", s.admin.uncertain],
      ["after restart: routes / rules as acknowledged", `${v.routes_ok}/${v.routes_checked} / ${v.rules_ok}/${v.rules_checked}`],
      ["exit code on SIGTERM (run, after restart)", `${s.exit_code_sigterm}, ${s.exit_code_sigterm_after_restart}`],
      ["RSS MiB start / peak / end of load / settled", `${s.rss_mib.start_idle} / ${s.rss_mib.peak} / ${s.rss_mib.end_of_load} / ${s.rss_mib.settled_3s}`],
      ["fds start / peak / end of load / settled", `${s.fds.start_idle} / ${s.fds.peak} / ${s.fds.end_of_load} / ${s.fds.settled_3s}`],
      ["RSS MiB every 30 s", s.rss_mib_per_30s.join(", ")],
    ];
    for (const [k, x] of rows) console.log(`| ${k} | ${x} |`);
    if (s.up_error_examples.length) console.log("errors while backend up:\n  " + s.up_error_examples.join("\n  "));
  ' "$out"
  echo "full report: $out"
fi
exit "$rc"
