#!/usr/bin/env bash
# What --metrics-address costs at 1x32 (one connection, 32 NOTIFYs in flight): interleaved rounds
# of the same agent with metrics off and on, the agent (-n 1) pinned to CPU 1, spoa-loadgen to
# CPU 0, so each round's pair sees the same background load; the pair's order alternates by round.
#   scripts/metrics-cost.sh [ROUNDS] [RUNTIMES] [SECONDS]      defaults: 5 "std uring" 3
# Prints each run, then the median ACKs/s per runtime and mode and the difference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
runtimes=${2:-std uring}
secs=${3:-3}
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (agent on CPU 1, load on CPU 0)" >&2; exit 1; }
cargo build --release -q -p spoa -p spoa-loadgen
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
    for rt in $runtimes; do
        # The second run of a pair measured 5–10 % cheaper whichever mode it was: alternate.
        modes="off on"
        [ $((round % 2)) -eq 0 ] && modes="on off"
        for mode in $modes; do
            port=$(free_port)
            extra=()
            [ "$mode" = on ] && extra=(--metrics-address "127.0.0.1:$(free_port)")
            taskset -c 1 target/release/spoa --runtime "$rt" -n 1 -a 127.0.0.1 -p "$port" \
                "${extra[@]}" 2>/dev/null &
            agent=$!
            sleep 0.5
            row=$(taskset -c 0 target/release/spoa-loadgen --connect "127.0.0.1:$port" \
                --agent-pid "$agent" --shape 1x32 --duration "$secs" --warmup 1 |
                awk -F'|' '/\| *[0-9,]+ *\|/ && NF > 5 { gsub(/[ ,]/, "", $4); gsub(/ /, "", $12); print $4, $12; exit }')
            kill -TERM "$agent"; wait "$agent" 2>/dev/null || true
            read -r acks cpu <<< "${row:-0 0}"
            echo "round $round $rt metrics-$mode: $acks ACKs/s, agent $cpu µs CPU/ACK"
            echo "$rt $mode $acks $cpu" >> "$results"
        done
    done
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for rt in $runtimes; do
    col() { awk -v rt="$rt" -v mode="$1" -v c="$2" '$1 == rt && $2 == mode {print $c}' "$results" | median; }
    awk -v rt="$rt" -v n="$rounds" -v off="$(col off 3)" -v on="$(col on 3)" \
        -v coff="$(col off 4)" -v con="$(col on 4)" 'BEGIN {
        printf "%s, median of %d rounds: metrics off %d ACKs/s (%.2f µs CPU/ACK), on %d ACKs/s (%.2f µs): %+.1f%% ACKs/s, %+.1f%% CPU/ACK\n",
            rt, n, off, coff, on, con, (on - off) * 100 / off, (con - coff) * 100 / coff }'
done
