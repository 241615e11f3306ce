#!/usr/bin/env bash
# Boots a Debian bookworm container under systemd-nspawn (a real systemd as PID 1) with
# examples/systemd/spoa.socket and spoa.service installed, and checks socket activation there:
#   1. `systemctl start spoa.socket`: systemd listens on 127.0.0.1:12345, the agent is not running;
#   2. the first connection starts spoa.service, which logs "inherited listener" and answers
#      NOTIFYs (spoa-loadgen, every ACK checked);
#   3. `systemctl stop spoa.service`: the socket stays open, a connection made now waits and
#      starts the agent again, and is answered;
#   4. `systemctl restart spoa`: a new agent process, on the same sockets, answers;
#   5. the hand-over (spoa.service: SPOA_HAND_OVER_CONNECTIONS=true, FileDescriptorStoreMax=):
#      a connection open across `systemctl restart spoa` (HAProxy's frames written by bash
#      from spop-core's test vectors) gets the ACK of a NOTIFY sent during the restart from
#      the new process, without AGENT-DISCONNECT: systemd 252 keeps the descriptor store
#      while the restart job runs.
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
# HAProxy's HELLO and a NOTIFY, as bytes, for the hand-over check.
mkdir -p "$rootfs/usr/local/share/spoa-check"
for frame in haproxy-hello notify-ipv4; do
    grep -v '^#' "spop-core/tests/vectors/$frame.hex" | tr -d ' \n' | xxd -r -p \
        > "$rootfs/usr/local/share/spoa-check/$frame.bin"
done
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
# The hand-over: one connection, kept open across a restart.
frames=/usr/local/share/spoa-check
frame_type() { # reads one frame from descriptor 3; prints its type (101 AGENT-HELLO, 102
    # AGENT-DISCONNECT, 103 ACK) or nothing at end of input
    local len body
    len=$(timeout 5 head -c 4 <&3 | od -An -tu1 | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    [ -n "$len" ] && [ "$len" -gt 0 ] || return 0
    body=$(timeout 5 head -c "$len" <&3 | od -An -tu1 -N1 | tr -d ' ')
    echo "$body"
}
exec 3<>/dev/tcp/127.0.0.1/12345
cat "$frames/haproxy-hello.bin" >&3
check "hand-over: the handshake answered" '[ "$(frame_type)" = 101 ]'
cat "$frames/notify-ipv4.bin" >&3
check "hand-over: a NOTIFY answered before the restart" '[ "$(frame_type)" = 103 ]'
old=$(systemctl show -p MainPID --value spoa.service)
systemctl restart --no-block spoa.service
# The old agent is stopping or gone, the new one not yet serving: this NOTIFY waits in the socket.
cat "$frames/notify-ipv4.bin" >&3
answer=$(frame_type)
check "hand-over: the NOTIFY sent during the restart is ACKed (frame type $answer, 103 = ACK)" '[ "$answer" = 103 ]'
sleep 1
new=$(systemctl show -p MainPID --value spoa.service)
check "hand-over: by a new agent process (pid $old -> $new)" '[ "$old" != "$new" ] && [ "$new" != 0 ]'
cat "$frames/notify-ipv4.bin" >&3
check "hand-over: the connection keeps being served" '[ "$(frame_type)" = 103 ]'
exec 3<&-
journalctl -b -u spoa --no-pager -o cat | grep -E 'handed over|handed-over' | while read -r l; do say "log: $l"; done
check "hand-over: the old agent handed the connection over" 'journalctl -b -u spoa --no-pager -o cat | grep -q "stop: 1 connections handed over to the next agent"'
check "hand-over: the new agent adopted it" 'journalctl -b -u spoa --no-pager -o cat | grep -q "1 connections handed over by the previous agent"'
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
