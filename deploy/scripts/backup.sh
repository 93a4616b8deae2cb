#!/bin/sh
# Snapshot the mc-proxy database and keep only the newest N snapshots.
# Installed as /usr/local/lib/mc-proxy/backup.sh; run by mc-proxy-backup.service.
#
# Usage: backup.sh               snapshot, then prune
#        backup.sh --prune-only  prune only
# Env:   MC_PROXY_BACKUP_KEEP  snapshots to keep (default 7, at least 1)
#        MC_PROXY_BACKUP_DIR   default /srv/mc-proxy/backups
#        MC_PROXY_CONFIG       default /srv/mc-proxy/mc-proxy.toml
#        MC_PROXY_BIN          default /usr/local/bin/mc-proxy
#
# Snapshots are named mc-proxy-YYYYMMDDTHHMMSSZ.db (UTC), so name order is time
# order. Pruning deletes only regular files matching exactly that pattern;
# anything else in the directory is never touched. A failed snapshot exits
# non-zero WITHOUT pruning, so old backups survive a broken run.
set -eu
# C collation: globs sort byte-wise, which for snapshot names is time order.
LC_ALL=C
export LC_ALL

keep=${MC_PROXY_BACKUP_KEEP:-7}
dir=${MC_PROXY_BACKUP_DIR:-/srv/mc-proxy/backups}
config=${MC_PROXY_CONFIG:-/srv/mc-proxy/mc-proxy.toml}
bin=${MC_PROXY_BIN:-/usr/local/bin/mc-proxy}

die() { echo "backup.sh: $*" >&2; exit 1; }

case $keep in
  '' | *[!0-9]*) die "MC_PROXY_BACKUP_KEEP must be a positive integer, got '$keep'" ;;
esac
[ "$keep" -ge 1 ] || die "MC_PROXY_BACKUP_KEEP must be at least 1, got '$keep'"

# prune DIR KEEP: delete all but the KEEP newest snapshot files in DIR.
prune() {
  count=0
  for f in "$1"/mc-proxy-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.db; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then count=$((count + 1)); fi
  done
  excess=$((count - $2))
  for f in "$1"/mc-proxy-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.db; do
    if [ "$excess" -le 0 ]; then break; fi
    if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
    rm -f -- "$f"
    echo "backup.sh: pruned $f"
    excess=$((excess - 1))
  done
}

case ${1:-} in
  --prune-only)
    [ -d "$dir" ] || die "backup directory $dir does not exist"
    prune "$dir" "$keep"
    exit 0
    ;;
  '') ;;
  *) die "usage: backup.sh [--prune-only]" ;;
esac

mkdir -p "$dir"
out="$dir/mc-proxy-$(date -u +%Y%m%dT%H%M%SZ).db"
"$bin" snapshot -c "$config" -o "$out" || die "snapshot failed; nothing pruned"
[ -s "$out" ] || die "snapshot reported success but $out is missing or empty; nothing pruned"
echo "backup.sh: wrote $out"
prune "$dir" "$keep"
