#!/usr/bin/env bash
# Boots a Debian bookworm container under systemd-nspawn (a real systemd as PID 1) with
# examples/systemd/spoa.socket and spoa.service installed, and checks socket activation there:
#   1. `systemctl start spoa.socket`: systemd listens on 127.0.0.1:12345, the agent is not running;
#   2. the first connection starts spoa.service, which logs "inherited listener" and answers
#      NOTIFYs (spoa-loadgen, every ACK checked);
#   3. `systemctl stop spoa.service`: the socket stays open, a connection made now waits and
#      starts the agent again, and is answered;
#   4. `systemctl restart spoa`: a new agent process, on the same sockets, answers.
# (Losing no request across restarts under HAProxy's load is tested by tests/haproxy.rs and
# measured by scripts/restart-under-load.sh; spoa-loadgen, unlike HAProxy, does not reconnect.)
# Not part of CI (needs root, debootstrap, systemd-nspawn, ~300 MB and network for the rootfs).
#   scripts/systemd-socket-nspawn.sh [ROOTFS]   default target/nspawn/bookworm (made if missing)
# The container shares the host's network: port 12345 on loopback must be free.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rootfs=${1:-target/nspawn/bookworm}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for tool in systemd-nspawn debootstrap; do
    command -v "$tool" >/dev/null || { echo "$tool missing: apt-get install systemd-container debootstrap" >&2; exit 1; }
done
if [ ! -x "$rootfs/lib/systemd/systemd" ]; then
    mkdir -p "$rootfs"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$rootfs" \
        http://deb.debian.org/debian >&2
fi
cargo build --release -q -p spoa --bin spoa -p spoa-loadgen --bin spoa-loadgen >&2

install -m 755 target/release/spoa target/release/spoa-loadgen "$rootfs/usr/local/bin/"
install -m 644 examples/systemd/spoa.socket examples/systemd/spoa.service "$rootfs/etc/systemd/system/"
# The check runs as a unit of its own once the system is up, writes its verdict to the console
# and powers the container off.
cat > "$rootfs/usr/local/bin/spoa-socket-check" <<'CHECK'
#!/bin/bash
say() { echo "CHECK: $*" > /dev/console; }
load() { # seconds
    /usr/local/bin/spoa-loadgen --connect 127.0.0.1:12345 --shapes 4x1 --duration "$1" --warmup 0 \
        --out /tmp/load >/tmp/load.out 2>&1
    local rc=$?
    grep '4x1' /tmp/load.out | tail -n 1 > /tmp/load.row
    echo "$rc"
}
fail=0
check() { if eval "$2"; then say "ok: $1"; else say "FAILED: $1"; fail=1; fi; }
systemctl start spoa.socket
check "spoa.socket active" '[ "$(systemctl is-active spoa.socket)" = active ]'
check "spoa.service not started before a connection" '[ "$(systemctl is-active spoa.service)" != active ]'
check "first load answered" '[ "$(load 1)" = 0 ]'; say "$(cat /tmp/load.row)"
check "spoa.service started by the socket" '[ "$(systemctl is-active spoa.service)" = active ]'
journalctl -b -u spoa --no-pager -o cat | grep -E 'inherited listener|listening on' | while read -r l; do say "log: $l"; done
check "agent logged the inherited socket" 'journalctl -b -u spoa --no-pager -o cat | grep -q "inherited listener: descriptor 3 (spoa) on 127.0.0.1:12345"'
systemctl stop spoa.service
check "socket still listening with the service stopped" '[ "$(systemctl is-active spoa.socket)" = active ]'
check "a connection made while stopped is answered" '[ "$(load 1)" = 0 ]'; say "$(cat /tmp/load.row)"
old=$(systemctl show -p MainPID --value spoa.service)
systemctl restart spoa.service
check "socket still listening after the restart" '[ "$(systemctl is-active spoa.socket)" = active ]'
check "load answered after systemctl restart" '[ "$(load 1)" = 0 ]'; say "$(cat /tmp/load.row)"
new=$(systemctl show -p MainPID --value spoa.service)
check "a new agent process (pid $old -> $new)" '[ "$old" != "$new" ] && [ "$new" != 0 ]'
systemctl --no-pager status spoa.service spoa.socket 2>&1 | head -n 20 | while read -r l; do say "$l"; done
say "RESULT: $([ $fail = 0 ] && echo PASS || echo FAIL)"
systemctl poweroff
CHECK
chmod 755 "$rootfs/usr/local/bin/spoa-socket-check"
cat > "$rootfs/etc/systemd/system/spoa-socket-check.service" <<'UNIT'
[Unit]
Description=Check spoa socket activation
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/spoa-socket-check
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$rootfs/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/spoa-socket-check.service \
    "$rootfs/etc/systemd/system/multi-user.target.wants/spoa-socket-check.service"

# systemd-nspawn keeps its propagation directories under /run/systemd/nspawn and refuses to
# remove them from a disk file system: where /run is not a tmpfs (a VM without systemd as PID 1),
# give it one.
if [ "$(stat -f -c %T /run/systemd/nspawn 2>/dev/null || echo none)" != tmpfs ]; then
    mkdir -p /run/systemd/nspawn
    mount -t tmpfs -o mode=755 tmpfs /run/systemd/nspawn
fi
out=$(mktemp)
# systemd as PID 1 prints nothing and hangs without a terminal: `script` gives it one. Without
# systemd on the host: --register=no (no machined), --keep-unit (no scope from the host's systemd).
timeout -s KILL 120 script -qfc "systemd-nspawn -q -b -D '$rootfs' --register=no --keep-unit" \
    /dev/null > "$out" 2>&1 || true
tr -d '\r' < "$out" | grep -E '^CHECK: ' | sed 's/^CHECK: //' || { echo "no check ran; the boot log:" >&2; tail -n 40 "$out" >&2; }
tr -d '\r' < "$out" | grep -q 'CHECK: RESULT: PASS'
