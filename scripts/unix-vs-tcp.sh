#!/usr/bin/env bash
# TCP on loopback against a Unix socket: the same agent binary (-n 1, pinned to CPU 1) loaded by
# spoa-loadgen (pinned to CPU 0) over 127.0.0.1 and over unix:/PATH, in interleaved rounds (a
# fresh agent per run; which transport goes first alternates), so each round's pair sees the same
# background load.
#   scripts/unix-vs-tcp.sh [ROUNDS] [RUNTIMES] [SHAPES] [SECONDS]
#   defaults: 5 "std uring" "1x1 1x32" 3
# Prints each run, then per runtime and shape the medians: ACKs/s, p50 and p99 latency, agent and
# load generator CPU per ACK, and the agent's system calls per ACK (strace -c, when installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
runtimes=${2:-std uring}
shapes=${3:-1x1 1x32}
secs=${4:-3}
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (agent on CPU 1, load on CPU 0)" >&2; exit 1; }
cargo build --release -q -p spoa -p spoa-loadgen
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
results="$dir/results"
trap 'rm -rf "$dir"' EXIT
syscalls=(--no-syscalls)
command -v strace >/dev/null && syscalls=()
# As root, agent and load run at nice -10: background jobs (compilers) then delay them less.
nice=()
[ "$(id -u)" -eq 0 ] && nice=(nice -n -10)
for round in $(seq "$rounds"); do
    order="tcp unix"
    [ $((round % 2)) -eq 0 ] && order="unix tcp"
    for rt in $runtimes; do
        for shape in $shapes; do
            for transport in $order; do
                port=$(free_port)
                sock="$dir/spoa.sock"
                "${nice[@]}" taskset -c 1 target/release/spoa --runtime "$rt" -n 1 -a 127.0.0.1 -p "$port" \
                    -a "unix:$sock" 2>/dev/null &
                agent=$!
                sleep 0.5
                target="127.0.0.1:$port"
                [ "$transport" = unix ] && target="unix:$sock"
                row=$("${nice[@]}" taskset -c 0 target/release/spoa-loadgen --connect "$target" \
                    --agent-pid "$agent" --shape "$shape" --duration "$secs" --warmup 1 "${syscalls[@]}" |
                    awk -F'|' '/\| *[0-9,]+ *\|/ && NF > 5 {
                        for (i = 4; i <= 15; i++) gsub(/[ ,]/, "", $i);
                        print $4, $6, $8, $11, $12, $13, $15; exit }')
                kill -TERM "$agent"; wait "$agent" 2>/dev/null || true
                read -r acks p50 p99 errors cpu sys lcpu <<< "${row:-0 0 0 0 0 0 0}"
                echo "round $round $rt $shape $transport: $acks ACKs/s, p50 $p50 µs, p99 $p99 µs, errors $errors, agent $cpu µs CPU/ACK, $sys syscalls/ACK, loadgen $lcpu µs CPU/ACK"
                echo "$rt $shape $transport $acks $p50 $p99 $cpu $sys $lcpu $round" >> "$results"
            done
        done
    done
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| runtime | shape | transport | ACKs/s | p50 µs | p99 µs | agent CPU µs/ACK | agent syscalls/ACK | loadgen CPU µs/ACK |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for rt in $runtimes; do
    for shape in $shapes; do
        for transport in tcp unix; do
            col() { awk -v rt="$rt" -v s="$shape" -v t="$transport" -v c="$1" \
                '$1 == rt && $2 == s && $3 == t {print $c}' "$results" | median; }
            echo "| $rt | $shape | $transport | $(col 4) | $(col 5) | $(col 6) | $(col 7) | $(col 8) | $(col 9) |"
        done
    done
done
echo "(median of $rounds interleaved rounds, $secs s windows)"
echo
# Each round's pair saw the same background load: the ratio within a round is the steadier measure.
for rt in $runtimes; do
    for shape in $shapes; do
        awk -v rt="$rt" -v s="$shape" '$1 == rt && $2 == s { v[$10, $3] = $4; p[$10, $3] = $5; c[$10, $3] = $7; r[$10] = 1 }
            function median(a, n,   i, j, t) {
                for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                return a[int((n + 1) / 2)] }
            END {
                n = 0; ahead = 0
                for (k in r) if (v[k, "tcp"] > 0 && p[k, "tcp"] > 0 && c[k, "tcp"] > 0) {
                    n++; acks[n] = v[k, "unix"] / v[k, "tcp"]; p50[n] = p[k, "unix"] / p[k, "tcp"]
                    cpu[n] = c[k, "unix"] / c[k, "tcp"]; if (v[k, "unix"] > v[k, "tcp"]) ahead++ }
                if (n > 0) printf "%s %s, unix/tcp within each round (median of %d): ACKs/s x%.2f (unix ahead in %d of %d), p50 x%.2f, agent CPU/ACK x%.2f\n",
                    rt, s, n, median(acks, n), ahead, n, median(p50, n), median(cpu, n) }' "$results"
    done
done
