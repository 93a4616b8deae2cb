#!/usr/bin/env bash
# `npm test [-- <paths or bun test flags>]`: the test suite, on any Debian machine.
# First the tools some tests drive (curl, openssl, haproxy, nghttp, promtool,
# systemd-analyze, shellcheck, ss, ip, sysctl, unshare, prlimit, python3, buildah,
# h2spec):
# as root, missing ones are installed with apt-get (h2spec is built offline
# from ../shared/tools/h2spec); otherwise one line says what to install and
# the tests go on (those that need a missing tool fail or skip).
# Then `bun test --timeout 60000 "$@"`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
PATH="$PWD/node_modules/.bin:$PATH"

# command:Debian package
TOOLS="curl:curl openssl:openssl haproxy:haproxy nghttp:nghttp2-client promtool:prometheus
shellcheck:shellcheck systemd-analyze:systemd ss:iproute2 ip:iproute2 sysctl:procps
unshare:util-linux prlimit:util-linux python3:python3 buildah:buildah"
H2SPEC_BUILD=../shared/tools/h2spec/build.sh

need=()
for pair in $TOOLS; do
  pkg=${pair#*:}
  command -v "${pair%%:*}" >/dev/null 2>&1 && continue
  [[ " ${need[*]} " == *" $pkg "* ]] || need+=("$pkg")
done
want_h2spec=0
if ! command -v h2spec >/dev/null 2>&1 && [ -x "$H2SPEC_BUILD" ]; then want_h2spec=1; fi

if [ "$(id -u)" -eq 0 ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "test: installing ${need[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}"; } >"$apt_log" 2>&1; then
      tail -5 "$apt_log" >&2
      echo "test: apt-get install failed; the tests that need ${need[*]} will fail or skip" >&2
    fi
    rm -f "$apt_log"
  fi
  if [ "$want_h2spec" -eq 1 ]; then
    echo "test: building h2spec ($H2SPEC_BUILD)" >&2
    "$H2SPEC_BUILD" >/dev/null 2>&1 || echo "test: h2spec build failed (the HTTP/2 conformance tests will skip)" >&2
  fi
elif [ ${#need[@]} -gt 0 ] || [ "$want_h2spec" -eq 1 ]; then
  todo=()
  [ ${#need[@]} -gt 0 ] && todo+=("apt-get install -y --no-install-recommends ${need[*]}")
  [ "$want_h2spec" -eq 1 ] && todo+=("$H2SPEC_BUILD")
  msg=$(printf ' && %s' "${todo[@]}")
  echo "test: tools missing (the tests that need them will fail or skip); as root run: ${msg:4}" >&2
fi

exec bun test --timeout 60000 "$@"
