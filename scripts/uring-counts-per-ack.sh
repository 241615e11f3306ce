#!/usr/bin/env bash
# Kernel-side counts per ACK for one runtime and one shape: io_uring submissions (in all and by
# opcode), completions, polls armed, task-work runs, waits, syscalls, context switches, wake-ups
# of other threads, reschedule IPIs and socket receives; and the agent's user and system CPU per
# ACK (from /proc/PID/stat, 10 ms ticks). Counts, unlike timings, do not depend on how busy the
# machine is: use them to see where a runtime spends its wake-ups.
#
#   scripts/uring-counts-per-ack.sh [RUNTIME] [SHAPE] [NOTIFYS] [AGENT ARGS...]
#   scripts/uring-counts-per-ack.sh uring 1x1 20000
#   scripts/uring-counts-per-ack.sh uring 1x1 20000 --spin-us 50
#   scripts/uring-counts-per-ack.sh std 1x32 320000
#
# The agent runs with one worker on CPU 1 (AGENT_CPU), spoa-loadgen on CPU 0 (LOADGEN_CPU),
# for exactly NOTIFYS NOTIFYs. Needs perf with tracepoints and their raw data (root, or
# kernel.perf_event_paranoid = -1 and a readable tracefs) and a release build (cargo build
# --release -p spoa -p spoa-loadgen).
set -euo pipefail
runtime=${1:-uring}
shape=${2:-1x1}
notifies=${3:-20000}
shift $(($# < 3 ? $# : 3))
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
agent=${AGENT:-$target/release/spoa}
loadgen=${LOADGEN:-$target/release/spoa-loadgen}
agent_cpu=${AGENT_CPU:-1}
loadgen_cpu=${LOADGEN_CPU:-0}
for bin in "$agent" "$loadgen"; do
    [[ -x $bin ]] || { echo "missing $bin: cargo build --release -p spoa -p spoa-loadgen" >&2; exit 2; }
done
command -v perf >/dev/null || { echo "perf is needed" >&2; exit 2; }

work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c "$agent_cpu" "$agent" -n 1 -a 127.0.0.1 -p "$port" --runtime "$runtime" "$@" \
    >"$work/agent.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    ss -ltnH "sport = :$port" | grep -q . && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
    sleep 0.05
done

events=io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_poll_arm
events+=,io_uring:io_uring_task_add,io_uring:io_uring_local_work_run,io_uring:io_uring_task_work_run
events+=,io_uring:io_uring_cqring_wait,raw_syscalls:sys_enter,sched:sched_switch,sched:sched_wakeup
events+=,irq_vectors:reschedule_entry,sock:sock_recv_length
perf stat -x, -e "$events" -p "$pid" -o "$work/stat.txt" 2>"$work/stat.err" &
counter=$!
perf record -q -e io_uring:io_uring_submit_req -p "$pid" -o "$work/submit.data" >/dev/null 2>&1 &
recorder=$!
sleep 0.5
ticks() { awk '{ print $14, $15 }' "/proc/$pid/stat"; }
read -r user0 sys0 < <(ticks)
taskset -c "$loadgen_cpu" "$loadgen" --connect "127.0.0.1:$port" --shape "$shape" \
    --notifies "$notifies" --warmup 0 --duration 3600 --agent-pid "$pid" >"$work/load.txt" 2>&1 || {
    cat "$work/load.txt" >&2
    exit 1
}
read -r user1 sys1 < <(ticks)
kill -INT "$counter" "$recorder"
wait "$counter" "$recorder" 2>/dev/null || true

echo "runtime $runtime, shape $shape, $notifies NOTIFYs, agent args: ${*:-none} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
grep '^counts:' "$work/load.txt" || true
hz=$(getconf CLK_TCK)
awk -v n="$notifies" -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v hz="$hz" 'BEGIN {
    printf "  CPU per ACK: user %.2f µs, system %.2f µs (%d + %d ticks)\n", u * 1e6 / hz / n, s * 1e6 / hz / n, u, s }'
awk -F, -v n="$notifies" '$3 != "" { printf "  %-34s %9.3f per ACK\n", $3, $1 / n }' "$work/stat.txt"
perf script -i "$work/submit.data" -F trace 2>/dev/null | grep -o 'opcode [A-Z_0-9]*' | sort | uniq -c |
    awk -v n="$notifies" '{ printf "  submitted %-24s %9.3f per ACK\n", $3, $1 / n }'
