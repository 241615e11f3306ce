#!/usr/bin/env bash
# Interleaved rounds of several agent variants at one shape: each run starts a fresh agent with
# one worker on CPU 1 and drives it with spoa-loadgen on CPU 0 (both at nice -15 when allowed),
# so every round's variants see the same background load. Compare within a round.
#
#   scripts/interleaved-rounds.sh ROUNDS SHAPE 'LABEL|BINARY|ARGS' ...
#   scripts/interleaved-rounds.sh 3 4x32 'uring|target/release/spoa|--runtime uring' \
#       'uring-no-wt|target/release/spoa|--runtime uring --write-timeout 0' \
#       'std|target/release/spoa|--runtime std'
#
# Prints per run: round, label, ACKs/s, p50 and p99 (µs) and the agent's CPU per ACK (µs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=$1 shape=$2
shift 2
loadgen=${LOADGEN:-target/release/spoa-loadgen}
nice=(nice -n -15)
"${nice[@]}" true 2>/dev/null || nice=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for round in $(seq "$rounds"); do
    for spec in "$@"; do
        IFS='|' read -r label binary args <<<"$spec"
        port=$(free_port)
        # shellcheck disable=SC2086 # ARGS is a list of flags
        "${nice[@]}" taskset -c 1 "$binary" -n 1 -a 127.0.0.1 -p "$port" $args >/dev/null 2>&1 &
        agent=$!
        sleep 0.4
        line=$("${nice[@]}" taskset -c 0 "$loadgen" --connect "127.0.0.1:$port" --agent-pid "$agent" \
            --shape "$shape" --duration 3 --warmup 1 --no-syscalls 2>&1 | grep -m1 'ACKs/s' || true)
        kill "$agent" 2>/dev/null || true
        wait "$agent" 2>/dev/null || true
        echo "$round $label $line" | sed -E 's/ +/ /g' |
            awk '{for (i = 1; i <= NF; i++) { if ($i == "ACKs/s") a = $(i-1); if ($i == "p50") p = $(i+1);
                 if ($i == "p99") q = $(i+1); if ($i == "µs/ACK") c = $(i-1) }
                 print $1, $2, a " ACK/s", "p50 " p, "p99 " q, "cpu " c " µs/ACK" }'
    done
done
