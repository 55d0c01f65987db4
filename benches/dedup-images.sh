#!/usr/bin/env bash
# Builds realistic disk-image "releases" from Debian bookworm packages, for the dedup
# benchmark (issue 10): what an image service actually stores is a stream of releases of
# the same distribution and snapshots of instances booted from them.
#
#   A   base release: BASE + UPGRADED packages at their oldest available version
#   B   next release: A + ADDED − REMOVED, UPGRADED at their newest version
#   U   upgrade-only release: A with UPGRADED at their newest version
#   S   snapshot of A: a copy of A.raw with NEW_MIB of new files written into it
#
# Each release is an ext4 filesystem built with `mkfs.ext4 -d` from the extracted packages
# (`apt-get download` + `dpkg-deb -x`), as raw, qcow2 and compressed qcow2 (`qemu-img
# convert [-c]`); the snapshot only as qcow2 (what Nova uploads). Outputs go to OUT (default
# $GLINT_CACHE_DIR/dedup-images) with sizes.txt; a second run with the same package lists
# reuses them.
#
# Usage: bash benches/dedup-images.sh [OUT]
set -euo pipefail
OUT=${1:-${GLINT_CACHE_DIR:-$HOME/.cache/glint}/dedup-images}
NEW_MIB=${NEW_MIB:-32}

# Packages in every release (a small server image: interpreters, libraries, tools).
BASE="libc6 libc-bin libssl3 openssl systemd libsystemd0 systemd-sysv coreutils bash dash util-linux findutils grep sed gawk tar gzip xz-utils bzip2 zstd
 diffutils procps iproute2 iputils-ping netbase ca-certificates openssh-client openssh-server
 openssh-sftp-server libpam-modules libpam0g login passwd adduser apt libapt-pkg6.0 gpgv
 debian-archive-keyring python3 python3-minimal python3.11 libpython3.11 libstdc++6 libgcc-s1
 libcrypt1 zlib1g liblzma5 libzstd1 libbz2-1.0 libsqlite3-0 libdb5.3 libgdbm6 libffi8
 libncursesw6 libtinfo6 libreadline8 readline-common libuuid1 libblkid1 libmount1
 libsmartcols1 libselinux1 libpcre2-8-0 libacl1 libattr1 libcap2 libaudit1 libgmp10
 libnettle8 libhogweed6 libgnutls30 libidn2-0 libunistring2 libp11-kit0 libtasn1-6
 libkrb5-3 libgssapi-krb5-2 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
 libssh2-1 libnghttp2-14 librtmp1 libpsl5 libbrotli1 libldap-2.5-0 libsasl2-2 libsasl2-modules-db
 perl perl-modules-5.36 libperl5.36 vim-tiny less cron rsyslog logrotate sudo
 e2fsprogs libext2fs2 libss2 libe2p2 kmod libkmod2 udev libudev1 dbus libdbus-1-3
 libexpat1 libxml2 libicu72 locales tzdata man-db groff-base libpipeline1 manpages"
# Packages with a security or point-release update in bookworm: A gets the oldest version,
# B and U the newest. The first 17 of these that have two versions are used.
UPGRADABLE="libc6 libc-bin libssl3 openssl libsystemd0 systemd systemd-sysv libpython3.11-stdlib
 libpython3.11-minimal python3.11-minimal python3.11 libpython3.11 perl-base perl libperl5.36
 perl-modules-5.36 curl libcurl4 libcurl3-gnutls git git-man libgnutls30 libxml2 libexpat1
 libicu72 tzdata sudo openssh-client openssh-server openssh-sftp-server libssh2-1 libudev1 udev
 libkrb5-3 libgssapi-krb5-2 libk5crypto3 libkrb5support0 libnghttp2-14 libtasn1-6 libgnutls30"
# What release B adds and removes.
ADDED="git git-man curl libcurl4 libcurl3-gnutls vim vim-runtime vim-common tmux
 libevent-core-2.1-7 jq libjq1 libonig5 rsync strace lsof htop libnl-3-200 libnl-genl-3-200"
REMOVED="groff-base manpages man-db cron"

command -v qemu-img >/dev/null || { echo "qemu-img is needed (qemu-utils)" >&2; exit 1; }
command -v mkfs.ext4 >/dev/null || { echo "mkfs.ext4 is needed (e2fsprogs)" >&2; exit 1; }
mkdir -p "$OUT/debs"
key=$(printf '%s\n' "$BASE" "$UPGRADABLE" "$ADDED" "$REMOVED" "$NEW_MIB" \
  "$(sed -n '/^# build-key-start/,/^# build-key-end/p' "$0")" | sha256sum | cut -c1-16)
if [ -f "$OUT/done-$key" ]; then
  echo "dedup images up to date in $OUT" >&2
  exit 0
fi
# build-key-start (changes below this line rebuild the images)
words() { tr -s ' \n' '\n\n' <<<"$1" | sed '/^$/d' | sort -u; }
versions() { apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -u -V; }
if [ -z "$(apt-cache madison libc6 2>/dev/null)" ]; then
  apt-get update -q >/dev/null
fi

# Upgrade set: packages with at least two versions.
upgraded=()
for p in $(comm -12 <(words "$UPGRADABLE") <(comm -23 <(words "$BASE") <(words "$ADDED"))); do
  [ "$(versions "$p" | wc -l)" -ge 2 ] && upgraded+=("$p")
  [ ${#upgraded[@]} -ge 17 ] && break
done
echo "upgraded: ${upgraded[*]}" >&2

# name=version for each release.
spec() { # release
  local r=$1 p v
  local set=
  case $r in
    A|U) set=$(comm -23 <(words "$BASE") <(words "$ADDED")) ;;
    B) set=$(comm -23 <(words "$BASE $ADDED") <(words "$REMOVED")) ;;
  esac
  for p in $set; do
    if printf '%s\n' "${upgraded[@]}" | grep -qx "$p"; then
      if [ "$r" = A ]; then v=$(versions "$p" | head -1); else v=$(versions "$p" | tail -1); fi
    else
      v=$(versions "$p" | tail -1)
    fi
    [ -n "$v" ] && echo "$p=$v"
  done
}

fetch() { # name=version → path of the .deb
  local want=$1 name=${1%%=*} ver=${1#*=}
  local file="$OUT/debs/${name}_${ver//:/%3a}.deb"
  if [ ! -s "$file" ]; then
    (cd "$OUT/debs" && apt-get download -q "$want" >/dev/null 2>&1) || {
      echo "apt-get download $want failed" >&2; return 1; }
    local got
    got=$(ls "$OUT/debs/${name}_${ver#*:}"_*.deb "$OUT/debs/${name}_${ver//:/%3a}"_*.deb 2>/dev/null | head -1)
    [ -n "$got" ] && mv "$got" "$file"
  fi
  echo "$file"
}

build_tree() { # release → directory with the extracted packages
  local r=$1 dir="$OUT/tree-$1"
  rm -rf "$dir"; mkdir -p "$dir"
  spec "$r" >"$OUT/$r.packages"
  while read -r pv; do
    dpkg-deb -x "$(fetch "$pv")" "$dir"
  done <"$OUT/$r.packages"
  echo "$dir"
}

for r in A B U; do build_tree "$r" >/dev/null; done
# One image size for all releases (a cloud image's virtual size is fixed), with room to grow.
max_kib=$(du -sk "$OUT"/tree-A "$OUT"/tree-B "$OUT"/tree-U | awk '{print $1}' | sort -n | tail -1)
size_mib=$(( ( (max_kib / 1024) * 14 / 10 + 128 + 255) / 256 * 256 ))
n=0
for r in A B U; do
  n=$((n + 1))
  rm -f "$OUT/$r.raw"
  # A fixed UUID and hash seed per release: rebuilding gives the same image.
  uuid=$(printf '%08x-0000-4000-8000-%012x' "$n" "$n")
  mkfs.ext4 -q -F -b 4096 -U "$uuid" -E "hash_seed=$uuid,root_owner=0:0" -d "$OUT/tree-$r" \
    "$OUT/$r.raw" "${size_mib}M"
  qemu-img convert -f raw -O qcow2 "$OUT/$r.raw" "$OUT/$r.qcow2"
  qemu-img convert -c -f raw -O qcow2 "$OUT/$r.raw" "$OUT/$r.c.qcow2"
done

# Snapshot: an instance booted from A wrote NEW_MIB of new files (incompressible, so what a
# store keeps of them is plain), then Nova uploaded its disk as qcow2.
cp --sparse=always "$OUT/A.raw" "$OUT/S.raw"
head -c $((NEW_MIB << 20)) /dev/urandom >"$OUT/new-data"
debugfs -w -R "mkdir /var/lib/app" "$OUT/S.raw" >/dev/null 2>&1
for i in 1 2 3 4; do
  head -c $((NEW_MIB << 18)) <(tail -c +$(( (i - 1) * (NEW_MIB << 18) + 1 )) "$OUT/new-data") \
    >"$OUT/new-$i"
  debugfs -w -R "write $OUT/new-$i /var/lib/app/data-$i" "$OUT/S.raw" >/dev/null 2>&1
  rm -f "$OUT/new-$i"
done
rm -f "$OUT/new-data"
qemu-img convert -f raw -O qcow2 "$OUT/S.raw" "$OUT/S.qcow2"
rm -f "$OUT/S.raw"
# build-key-end
rm -rf "$OUT"/tree-*
{
  echo "image_size_mib $size_mib"
  echo "snapshot_new_mib $NEW_MIB"
  echo "upgraded ${upgraded[*]}"
  for f in "$OUT"/*.raw "$OUT"/*.qcow2; do
    echo "$(basename "$f") $(stat -c %s "$f") $(du -k "$f" | cut -f1)"
  done
} >"$OUT/sizes.txt"
rm -f "$OUT"/done-*
touch "$OUT/done-$key"
cat "$OUT/sizes.txt" >&2
