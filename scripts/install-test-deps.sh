#!/usr/bin/env bash
# Install what the end-to-end tests need; idempotent, run as root on Debian bookworm.
#   - haproxy 2.6 (Debian bookworm's package) as /usr/sbin/haproxy; the package's
#     own service is kept from starting (or stopped and disabled), tests start
#     their own instances
#   - curl
#   - qemu-system-arm (the appliance firmware's Cortex-M4 board, scripts/appliance.sh)
#   - man (packages man-db and groff-base: scripts/check-operator-files.sh renders the man page)
#   - systemd-analyze (package systemd: scripts/check-operator-files.sh verifies the unit)
#   - promtool (package prometheus: the metrics test lints a scrape with it; its service is
#     kept from starting like haproxy's)
#   - HAProxy 3.2 from Debian sid in a private prefix (scripts/haproxy-sid.sh,
#     default target/haproxy-sid); arguments are passed on to that script
# Prints the versions found.
set -euo pipefail

say() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { printf 'install-test-deps: ERROR: %s\n' "$*" >&2; exit 1; }
first_line() { "$@" 2>&1 | awk 'NR == 1'; }   # no SIGPIPE under pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

missing=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v man >/dev/null 2>&1 || missing+=(man-db)
command -v groff >/dev/null 2>&1 || command -v nroff >/dev/null 2>&1 || missing+=(groff-base)
# needed by haproxy-sid.sh (normally present on Debian)
command -v gpgv >/dev/null 2>&1 || missing+=(gpgv)
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)

if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
    say "installing: ${missing[*]}"
    # Keep the haproxy package's init script / unit from starting a daemon:
    # Debian's maintainer scripts ask policy-rc.d; 101 = "action forbidden".
    # (Docker images usually ship such a policy-rc.d already; then it is kept.)
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
        trap '[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; made_policy=0; fi
fi

# Whatever happened above (or in an earlier run), make sure no system haproxy
# service is running or will start at boot: tests own their haproxy processes.
if [ -e /lib/systemd/system/haproxy.service ] || [ -e /etc/init.d/haproxy ]; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet haproxy || systemctl is-enabled --quiet haproxy 2>/dev/null; then
            say "stopping and disabling the system haproxy service"
            systemctl disable --now haproxy >/dev/null 2>&1 || true
        fi
    elif [ -s /run/haproxy.pid ]; then
        # sysvinit-style daemon started by the package (no systemd here)
        for pid in $(cat /run/haproxy.pid); do
            if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q '/etc/haproxy/haproxy.cfg'; then
                say "stopping the system haproxy daemon (pid $pid)"
                kill "$pid" 2>/dev/null || true
            fi
        done
        rm -f /run/haproxy.pid
    fi
fi

haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
say "system haproxy: $haproxy_bin"
first_line "$haproxy_bin" -v
first_line curl --version
first_line qemu-system-arm --version
first_line promtool --version
first_line systemd-analyze --version

bash "$repo_root/scripts/haproxy-sid.sh" "$@"
