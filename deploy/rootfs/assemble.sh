#!/bin/sh
# Assemble the container's final root filesystem into a directory.
#
# Usage: assemble.sh DEST MC_PROXY_BINARY
#
# This script is the ONE definition of what ships in the image: the
# Containerfile's build stage runs it and the final stage (FROM scratch) copies
# DEST verbatim; scripts/image.sh (`npm run image`) runs it on the host and
# builds the same final stage from DEST with buildah, then runs the image.
# Contents:
#   /mc-proxy                                  the compiled binary
#   /mcproxyctl -> mc-proxy                    the admin client: the same binary
#                                              started under that name
#   the ELF loader + shared libraries          exactly what `ldd` lists for it
#   /etc/passwd, /etc/group                    root + mc-proxy (65532:65532)
#   /etc/nsswitch.conf, /etc/hosts             so "localhost" backends resolve
#   /etc/ssl/certs/ca-certificates.crt         system roots (backend_tls_verify)
#   /srv/mc-proxy (0700, 65532:65532)          the data volume
#   /tmp (1777)                                SQLite temp files (VACUUM, large sorts);
#                                              the runtime itself runs on a read-only root
#   /proc, /dev                                empty mount points
# ROOTFS_OMIT="name ..." leaves out libraries with those basenames; it exists only
# so test/deploy/image.test.ts can prove that image.sh detects a missing library.
set -eu

UID_GID=65532
omit=${ROOTFS_OMIT:-}

die() { echo "assemble.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: assemble.sh DEST MC_PROXY_BINARY (one binary: mcproxyctl is a link to it)"
dest=$1
proxy_bin=$2
[ -x "$proxy_bin" ] || die "binary $proxy_bin not found or not executable"
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then die "destination $dest exists and is not empty"; fi

mkdir -p "$dest"
install -m 0755 "$proxy_bin" "$dest/mc-proxy"
ln -s mc-proxy "$dest/mcproxyctl"

# Shared libraries: every absolute path ldd prints ("libc.so.6 => /lib/.../libc.so.6"
# and the loader "/lib64/ld-linux-x86-64.so.2"), copied dereferenced to the same path.
# ldd fails on a static binary ("not a dynamic executable"): then there is nothing to copy.
libs=$({ ldd "$proxy_bin" 2>/dev/null || true; } \
  | sed -n 's/.*[[:space:]]\(\/[^[:space:]]*\)[[:space:]](0x.*/\1/p' | sort -u)
for lib in $libs; do
  name=$(basename "$lib")
  case " $omit " in *" $name "*) echo "assemble.sh: omitting $name (ROOTFS_OMIT)" >&2; continue ;; esac
  mkdir -p "$dest$(dirname "$lib")"
  cp -L "$lib" "$dest$lib"
  chmod 0755 "$dest$lib"
done

mkdir -p "$dest/etc/ssl/certs"
cat > "$dest/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
mc-proxy:x:$UID_GID:$UID_GID:mc-proxy:/srv/mc-proxy:/sbin/nologin
PASSWD
cat > "$dest/etc/group" <<GROUP
root:x:0:
mc-proxy:x:$UID_GID:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dest/etc/nsswitch.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$dest/etc/hosts"
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/nsswitch.conf" "$dest/etc/hosts"

ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || die "$ca missing on the build host (install ca-certificates)"
install -m 0644 "$ca" "$dest$ca"

mkdir -p "$dest/srv/mc-proxy" "$dest/tmp" "$dest/proc" "$dest/dev"
chown "$UID_GID:$UID_GID" "$dest/srv/mc-proxy"
chmod 0700 "$dest/srv/mc-proxy"
chmod 1777 "$dest/tmp"
chmod 0755 "$dest" "$dest/proc" "$dest/dev"
echo "assemble.sh: rootfs in $dest ($(echo "$libs" | wc -w) libraries)" >&2
