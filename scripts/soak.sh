#!/usr/bin/env bash
# Soak: the agent under a steady 4 connections x 16 in flight for a while, RSS sampled every
# second. Prints the RSS curve's start (after warm-up), peak and end for each runtime, and writes
# the samples to target/soak/<runtime>.csv (seconds,rss_kib).
#   scripts/soak.sh [SECONDS] [RUNTIMES]     defaults: 600 "std uring"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-600}
runtimes=${2:-std uring}
cargo build --release -q
mkdir -p target/soak
for rt in $runtimes; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    target/release/spoa --runtime "$rt" -a 127.0.0.1 -p "$port" 2>target/soak/$rt.log &
    agent=$!
    sleep 1
    target/release/spoa-loadgen --connect "127.0.0.1:$port" --agent-pid "$agent" --shapes 4x16 \
        --warmup 5 --duration "$secs" --no-canned --out "target/soak/$rt" >target/soak/$rt-load.txt 2>&1 &
    load=$!
    : >"target/soak/$rt.csv"
    t=0
    while kill -0 "$load" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent/status")
        echo "$t,$rss" >>"target/soak/$rt.csv"
        sleep 1
        t=$((t + 1))
    done
    wait "$load" || echo "loadgen failed: see target/soak/$rt-load.txt" >&2
    kill -TERM "$agent"; wait "$agent" || true
    # Start = first sample after the 5 s warm-up; peak over the rest; end = last sample.
    awk -F, -v rt="$rt" 'NR > 6 { if (!start) start = $2; if ($2 > peak) peak = $2; end = $2; n++ }
        END { printf "%s: %d samples, RSS start %d KiB, peak %d KiB, end %d KiB\n", rt, n, start, peak, end }' \
        "target/soak/$rt.csv"
done
