#!/usr/bin/env bash
# Install Debian sid's HAProxy (3.2.x) into a private prefix, for end-to-end tests.
#
# The system's dpkg/apt state is NOT touched: apt runs against a throw-away state
# directory (own sources.list, empty dpkg status, none of /etc/apt's config), only
# downloads the .debs of haproxy and of its shared-library closure, and
# `dpkg-deb -x` unpacks them into the prefix. A wrapper script `<prefix>/haproxy`
# then runs `<prefix>/usr/sbin/haproxy` through sid's own dynamic loader with the
# prefix's library directories, so nothing from the host's (bookworm) libc is used.
#
# Usage:  scripts/haproxy-sid.sh [--force] [PREFIX]
#   PREFIX   default: $HAPROXY_SID_PREFIX, else <repo>/target/haproxy-sid
#   --force  reinstall even if a working install is present
# Environment (optional):
#   HAPROXY_SID_PREFIX   install prefix (an argument wins)
#   HAPROXY_SID_MIRROR   Debian mirror     [http://deb.debian.org/debian]
#   HAPROXY_SID_SUITE    suite             [sid]
#   HAPROXY_SID_KEYRING  archive keyring   [/usr/share/keyrings/debian-archive-keyring.gpg]
# Needs: bash, apt-get, apt-cache, dpkg-deb, gpgv (all present on Debian bookworm).
# Afterwards run HAProxy 3.2 as `<prefix>/haproxy -db -f ...`.
set -euo pipefail

start_s=$(date +%s.%N)
say() { printf 'haproxy-sid: [%5.1fs] %s\n' "$(awk -v a="$start_s" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }
die() { printf 'haproxy-sid: ERROR: %s\n' "$*" >&2; exit 1; }

force=0
prefix_arg=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) die "unknown option: $1" ;;
        *) [ -z "$prefix_arg" ] || die "only one PREFIX may be given"; prefix_arg="$1" ;;
    esac
    shift
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${prefix_arg:-${HAPROXY_SID_PREFIX:-$repo_root/target/haproxy-sid}}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd -P)

mirror=${HAPROXY_SID_MIRROR:-http://deb.debian.org/debian}
suite=${HAPROXY_SID_SUITE:-sid}
keyring=${HAPROXY_SID_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
arch=$(dpkg --print-architecture)
marker="$prefix/.haproxy-sid"

# Find sid's dynamic loader inside the prefix. Symlinks are only accepted if they
# resolve inside the prefix (an absolute link would point at the host's loader).
find_loader() {
    local c real
    for c in "$prefix"/lib64/ld-linux-*.so.* "$prefix"/usr/lib64/ld-linux-*.so.* \
             "$prefix"/usr/lib/*-linux-gnu*/ld-linux-*.so.* "$prefix"/lib/*-linux-gnu*/ld-linux-*.so.*; do
        [ -e "$c" ] || continue
        real=$(readlink -f "$c") || continue
        case "$real" in "$prefix"/*) [ -f "$real" ] && { echo "$real"; return 0; } ;; esac
    done
    return 1
}

# Library directories of the prefix: Debian's multiarch dirs (sid ships
# everything under usr/lib/<triplet>; lib/<triplet> only on older layouts).
lib_path() {
    local d out=""
    for d in "$prefix"/usr/lib/*-linux-gnu* "$prefix"/lib/*-linux-gnu*; do
        [ -d "$d" ] && [ ! -L "$d" ] && out="${out:+$out:}$d"
    done
    echo "$out"
}

# Every library haproxy needs must resolve inside the prefix.
check_install() {
    local loader libs list bad
    [ -x "$prefix/usr/sbin/haproxy" ] || { say "no $prefix/usr/sbin/haproxy"; return 1; }
    [ -x "$prefix/haproxy" ] || { say "no wrapper $prefix/haproxy"; return 1; }
    loader=$(find_loader) || { say "no dynamic loader inside $prefix"; return 1; }
    libs=$(lib_path)
    list=$("$loader" --library-path "$libs" --list "$prefix/usr/sbin/haproxy" 2>&1) \
        || { say "loader --list failed:"; printf '%s\n' "$list" >&2; return 1; }
    # Lines look like "libfoo.so.1 => /path/libfoo.so.1 (0x...)" or "/path/ld-linux... (0x...)".
    bad=$(printf '%s\n' "$list" | awk -v p="$prefix/" '
        /linux-vdso|linux-gate/ { next }
        /=>/ { path = $3 } !/=>/ { path = $1 }
        index(path, p) != 1 { print }')
    if [ -n "$bad" ]; then
        say "libraries resolving outside $prefix (or not found):"
        printf '%s\n' "$bad" >&2
        return 1
    fi
    "$prefix/haproxy" -v >/dev/null 2>&1 || { say "$prefix/haproxy -v failed"; return 1; }
}

print_version() {
    # (awk reads all input: `head -1` would SIGPIPE haproxy under pipefail)
    "$prefix/haproxy" -vv 2>&1 | awk 'NR == 1'
}

if [ "$force" = 0 ] && [ -f "$marker" ]; then
    if why=$(check_install 2>&1); then
        say "already installed in $prefix"
        print_version
        exit 0
    fi
    say "existing install in $prefix is broken, reinstalling: $why"
fi

# Never rm -rf a directory we did not create.
if [ -n "$(ls -A "$prefix")" ] && [ ! -f "$marker" ]; then
    die "$prefix is not empty and was not created by this script; refusing to overwrite"
fi

for tool in apt-get apt-cache dpkg-deb gpgv; do
    command -v "$tool" >/dev/null || die "$tool not found (this script needs Debian's apt tools)"
done
[ -r "$keyring" ] || die "keyring $keyring missing (apt-get install debian-archive-keyring)"

t0=$(date +%s.%N)
work=$(mktemp -d "${TMPDIR:-/tmp}/haproxy-sid.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/parts" \
         "$work/prefparts" "$work/debs"
: > "$work/status"
echo "deb [signed-by=$keyring] $mirror $suite main" > "$work/sources.list"
# APT_CONFIG replaces /etc/apt/apt.conf and, by pointing Dir::Etc::Parts at an empty
# dir, skips /etc/apt/apt.conf.d (whose hooks, e.g. appstream, must not run here).
cat > "$work/apt.conf" <<EOF
Dir::Etc::Parts "$work/parts";
Dir::Etc::Main "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$work/prefparts";
Dir::Etc::SourceList "$work/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State "$work/state";
Dir::State::Lists "$work/state/lists";
Dir::State::status "$work/status";
Dir::Cache "$work/cache";
Dir::Cache::archives "$work/cache/archives";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Acquire::Languages "none";
Dir::Cache::srcpkgcache "";
// The mirror may serve a frozen snapshot whose Release is past Valid-Until;
// the signature is still checked.
Acquire::Check-Valid-Until "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
EOF
export APT_CONFIG="$work/apt.conf"
export DEBIAN_FRONTEND=noninteractive

say "apt-get update ($mirror $suite main, $arch) in $work"
apt-get -q update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update failed"; }
if grep -qE '^(E|W):' "$work/update.log"; then grep -E '^(E|W):' "$work/update.log" >&2; fi
apt-cache show haproxy >/dev/null 2>&1 || { cat "$work/update.log" >&2; die "haproxy not found in $suite"; }

# Library closure: haproxy plus, recursively, its Depends/Pre-Depends whose
# package name contains "lib" (libc6, libssl3t64, zlib1g, ...). Non-library deps
# (adduser, lsb-base, debconf, ...) are not needed to run the binary. The loader
# check below proves the closure is complete.
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances haproxy | awk '
    /^[^ ]/ { cur = $1; next }
    /^ *\|?(Pre)?Depends: / { dep = $NF; if (dep !~ /^</) edge[cur] = edge[cur] " " dep }
    END {
        queue[1] = "haproxy"; seen["haproxy"] = 1; n = 1
        for (i = 1; i <= n; i++) {
            k = split(edge[queue[i]], ds, " ")
            for (j = 1; j <= k; j++) {
                d = ds[j]
                if (d ~ /lib/ && !(d in seen)) { seen[d] = 1; queue[++n] = d }
            }
        }
        for (i = 1; i <= n; i++) print queue[i]
    }')
[ -n "$pkgs" ] || die "could not compute the dependency closure of haproxy"
say "downloading: $(echo $pkgs)"
(cd "$work/debs" && apt-get -q download $pkgs >"$work/download.log" 2>&1) \
    || { cat "$work/download.log" >&2; die "apt-get download failed"; }

say "extracting into $prefix"
# Fresh prefix (only ever removes a prefix this script created, see the marker check).
find "$prefix" -mindepth 1 -delete
# (in parallel: the packages hold disjoint files)
printf '%s\0' "$work"/debs/*.deb | xargs -0 -P"$(nproc)" -I{} dpkg-deb -x {} "$prefix"
# Documentation is not needed to run haproxy.
rm -rf "$prefix/usr/share/doc" "$prefix/usr/share/man" "$prefix/usr/share/locale" \
       "$prefix/usr/share/lintian" "$prefix/usr/share/bug"

loader=$(find_loader) || die "no dynamic loader (ld-linux) found in $prefix after extraction"
libs=$(lib_path)
loader_rel=${loader#"$prefix"/}
libs_rel=$(printf '%s' "$libs" | sed "s|$prefix/|\$P/|g")

# The wrapper finds its prefix from its own location, so the prefix can be moved.
# --argv0 makes haproxy see the wrapper as argv[0]: the master process of
# master-worker mode re-executes argv[0] on reload, which must be the wrapper.
cat > "$prefix/haproxy" <<EOF
#!/bin/sh
# Generated by scripts/haproxy-sid.sh: run Debian sid's HAProxy with sid's own
# dynamic loader and libraries from this directory.
self=\$(readlink -f "\$0")
P=\$(dirname "\$self")
exec "\$P/$loader_rel" --library-path "$libs_rel" --argv0 "\$self" "\$P/usr/sbin/haproxy" "\$@"
EOF
chmod 755 "$prefix/haproxy"
printf 'installed by scripts/haproxy-sid.sh from %s %s on %s\n%s\n' "$mirror" "$suite" \
    "$(date -u +%FT%TZ)" "$(cd "$work/debs" && ls *.deb)" > "$marker"

check_install || die "installation in $prefix is not self-contained (see above)"
t1=$(date +%s.%N)
say "installed in $prefix ($(du -sh "$prefix" | cut -f1), $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"
print_version
