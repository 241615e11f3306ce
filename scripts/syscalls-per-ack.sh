#!/usr/bin/env bash
# Syscalls, context switches and agent CPU per ACK, for one runtime and one shape: counts that
# do not depend on how busy the machine is (unlike timings).
#
#   scripts/syscalls-per-ack.sh [RUNTIME] [SHAPE] [NOTIFYS] [AGENT ARGS...]
#   scripts/syscalls-per-ack.sh std 4x16                    # defaults: uring 1x1 20000
#   scripts/syscalls-per-ack.sh uring 1x1 20000 --spin-us 50
#
# The agent runs with one worker pinned on CPU 1 (AGENT_CPU), the load generator on CPU 0
# (LOADGEN_CPU). Up to three runs of exactly NOTIFYS NOTIFYs each (`spoa-loadgen --notifies`):
#   1. under `perf stat -e raw_syscalls:sys_enter` (a tracepoint: the agent runs at full speed):
#      syscalls of all the agent's threads, in all and for the usual suspects by number; plus
#      voluntary + involuntary context switches of its threads and its CPU per ACK (read by the
#      load generator from /proc/PID);
#   2. under `strace -c -f`: every syscall, by name. ptrace makes each syscall ~20 µs slower,
#      so an agent that sleeps between frames sleeps less under strace: its wake-up syscalls
#      are undercounted (uring 1x1 at 044bae7: 6.1 per ACK under strace, 9.5 under perf).
#      The perf figures are the ones to compare; strace's names tell which calls they are.
#   3. (KERNEL=1) where the wake-ups go in the kernel: io_uring submissions (in all and by
#      opcode), completions, polls armed, task-work runs and waits, context switches, wake-ups
#      of other threads, reschedule IPIs and socket receives per ACK, and the agent's user and
#      system CPU per ACK (/proc/PID/stat, 10 ms ticks). Needs raw tracepoint data: root, or
#      kernel.perf_event_paranoid = -1 and a readable tracefs.
# All include the handshake of each connection (a few syscalls, nothing per ACK).
# Needs perf (kernel.perf_event_paranoid <= 1 or root), strace (STRACE=0 to skip it) and a
# release build (cargo build --release -p spoa -p spoa-loadgen; or set AGENT / LOADGEN).
set -euo pipefail

runtime=${1:-uring}
shape=${2:-1x1}
notifies=${3:-20000}
shift $(($# < 3 ? $# : 3))
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
agent=${AGENT:-$target/release/spoa}
loadgen=${LOADGEN:-$target/release/spoa-loadgen}
port=${PORT:-12399}
agent_cpu=${AGENT_CPU:-1}
loadgen_cpu=${LOADGEN_CPU:-0}

for bin in "$agent" "$loadgen"; do
    [[ -x $bin ]] || { echo "missing $bin: cargo build --release -p spoa -p spoa-loadgen" >&2; exit 2; }
done
command -v perf >/dev/null || { echo "perf is needed" >&2; exit 2; }
strace=${STRACE:-1}
[[ $strace == 0 ]] || command -v strace >/dev/null || { echo "strace is needed (or STRACE=0)" >&2; exit 2; }

work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

start_agent() {
    taskset -c "$agent_cpu" "$agent" -a 127.0.0.1 -p "$port" -n 1 --runtime "$runtime" "$@" \
        >"$work/agent.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        ss -ltnH "sport = :$port" | grep -q . && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "the agent did not start:" >&2
    cat "$work/agent.log" >&2
    exit 1
}

stop_agent() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}

load() {
    taskset -c "$loadgen_cpu" "$loadgen" --connect "127.0.0.1:$port" --shape "$shape" \
        --notifies "$notifies" --warmup 0 --duration 3600 --agent-pid "$pid" >"$work/$1" 2>&1 || {
        echo "load generator failed:" >&2
        cat "$work/$1" >&2
        exit 1
    }
}

# 1. Syscalls under perf; context switches and CPU (the load generator reads /proc/PID and
#    prints "counts: ..." with them; it keeps its connections open until it has read them).
#    x86-64 numbers: io_uring_enter 426, recvfrom 45, sendto 44, read 0, write 1,
#    setsockopt 54, membarrier 324, futex 202, epoll_wait 232, poll 7.
names=(io_uring_enter recvfrom sendto read write setsockopt membarrier futex epoll_wait poll)
ids=(426 45 44 0 1 54 324 202 232 7)
events=(-e raw_syscalls:sys_enter)
for id in "${ids[@]}"; do
    events+=(-e raw_syscalls:sys_enter --filter "id == $id")
done
start_agent "$@"
perf stat -x, "${events[@]}" -p "$pid" -o "$work/perf.txt" 2>"$work/perf.err" &
counter=$!
sleep 0.5
load plain.txt
kill -INT "$counter"
wait "$counter" 2>/dev/null || true
stop_agent
mapfile -t perf_counts < <(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$work/perf.txt")
[[ ${#perf_counts[@]} -eq $((${#ids[@]} + 1)) ]] || {
    echo "perf stat failed:" >&2
    cat "$work/perf.err" "$work/perf.txt" >&2
    exit 1
}
counts=$(grep '^counts:' "$work/plain.txt")
switches_per_ack=$(sed -n 's/.*(\([0-9.]*\) per ACK).*/\1/p' <<<"$counts")
cpu_per_ack=$(sed -n 's/.*agent CPU \([0-9.]*\) µs.*/\1/p' <<<"$counts")
acks=$(sed -n 's/.* \([0-9]*\) ACKs.*/\1/p' <<<"$counts")
row=$(grep '^| 127' "$work/plain.txt" | head -1)
errors=$(awk -F'|' '{ gsub(/ /, "", $11); print $11 }' <<<"$row")

echo "runtime $runtime, shape $shape, $notifies NOTIFYs ($acks ACKs, errors: ${errors:-?}), agent args: ${*:-none}"
awk -v n="$notifies" -v total="${perf_counts[0]}" -v cs="$switches_per_ack" -v cpu="$cpu_per_ack" 'BEGIN {
    printf "  syscalls per ACK:          %.3f (perf)\n", total / n
    printf "  context switches per ACK:  %s\n", cs
    printf "  agent CPU per ACK (µs):    %s (10 ms ticks; timing: noisy on a shared machine)\n", cpu
}'
for i in "${!names[@]}"; do
    awk -v n="$notifies" -v c="${perf_counts[$((i + 1))]}" -v name="${names[$i]}" \
        'BEGIN { if (c / n >= 0.001) printf "    %-20s %8.3f per ACK\n", name, c / n }'
done

# 2. Syscalls, under strace.
if [[ $strace != 0 ]]; then
    start_agent "$@"
    strace -c -f -p "$pid" -o "$work/strace.txt" 2>"$work/strace.err" &
    tracer=$!
    # strace says it attached on stderr, once per thread.
    for _ in $(seq 100); do
        grep -q attached "$work/strace.err" 2>/dev/null && break
        sleep 0.05
    done
    sleep 0.2
    load traced.txt
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    stop_agent

    calls=$(awk '$NF == "total" { print ($4 ~ /^[0-9]+$/) ? $4 : $3 }' "$work/strace.txt")
    awk -v n="$notifies" -v calls="$calls" 'BEGIN {
        printf "  under strace -c -f (slowed agent, fewer sleeps): %.3f syscalls per ACK\n", calls / n
    }'
    # Per syscall: calls per ACK (strace -c: % time, seconds, usecs/call, calls, [errors,] name).
    awk -v n="$notifies" '
        /^-/ || /^%/ || $NF == "total" || NF < 5 { next }
        { calls = $4; if (NF == 6) errs = $5; else errs = 0
          if (calls / n >= 0.001) printf "    %-20s %8.3f per ACK%s\n", $NF, calls / n, (errs > 0 ? sprintf(" (%d errors)", errs) : "") }
    ' "$work/strace.txt"
fi
[[ ${KERNEL:-0} == 1 ]] || exit 0

# 3. Kernel events per ACK, and user/system CPU.
events=io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_poll_arm
events+=,io_uring:io_uring_task_add,io_uring:io_uring_local_work_run,io_uring:io_uring_task_work_run
events+=,io_uring:io_uring_cqring_wait,sched:sched_switch,sched:sched_wakeup
events+=,irq_vectors:reschedule_entry,sock:sock_recv_length
start_agent "$@"
perf stat -x, -e "$events" -p "$pid" -o "$work/kernel.txt" 2>"$work/kernel.err" &
counter=$!
perf record -q -e io_uring:io_uring_submit_req -p "$pid" -o "$work/submit.data" >/dev/null 2>&1 &
recorder=$!
sleep 0.5
ticks() { awk '{ print $14, $15 }' "/proc/$pid/stat"; }
read -r user0 sys0 < <(ticks)
load kernel-load.txt
read -r user1 sys1 < <(ticks)
kill -INT "$counter" "$recorder"
wait "$counter" "$recorder" 2>/dev/null || true
stop_agent
echo "  kernel events (perf tracepoints):"
awk -v n="$notifies" -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
    printf "    CPU per ACK: user %.2f µs, system %.2f µs (%d + %d ticks)\n", u * 1e6 / hz / n, s * 1e6 / hz / n, u, s }'
awk -F, -v n="$notifies" '$3 != "" { printf "    %-34s %9.3f per ACK\n", $3, $1 / n }' "$work/kernel.txt"
perf script -i "$work/submit.data" -F trace 2>/dev/null | grep -o 'opcode [A-Z_0-9]*' | sort | uniq -c |
    awk -v n="$notifies" '{ printf "    submitted %-24s %9.3f per ACK\n", $3, $1 / n }'
