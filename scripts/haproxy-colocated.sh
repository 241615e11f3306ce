#!/usr/bin/env bash
# HAProxy, wrk and the agent on one box, as on an edge box where the agent runs beside HAProxy:
# requests/s through the SPOE filter and without it, for agent placements:
#   std           the std runtime, placed by the scheduler
#   uring         the uring runtime (-n 1), its executor pinned where it chooses (the first CPU)
#   uring-cpus=N  the uring runtime pinned with --cpus N (away from HAProxy's cpu-map)
#   uring-spin=U  the uring runtime (-n 1) busy-polling U µs before it sleeps (--spin-us U)
# HAProxy runs `nbthread 1` pinned to CPU 0 (`taskset`, as a `cpu-map` would), wrk -t1 -c32
# unpinned. Variants are interleaved over ROUNDS rounds; each cell lists every round.
#   scripts/haproxy-colocated.sh [SECONDS] [ROUNDS] [VARIANTS]
#   defaults: 5 3 "std uring uring-cpus=1"
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-5}
rounds=${2:-3}
variants=${3:-std uring uring-cpus=1}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x target/release/spoa ] || { echo "cargo build --release first" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rps() { wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print int($2)}'; }
declare -A with without
for round in $(seq "$rounds"); do
    for hb in /usr/sbin/haproxy target/haproxy-sid/haproxy; do
        [ -x "$hb" ] || continue
        version=$("$hb" -v | awk 'NR == 1 {print $3}')
        for v in $variants; do
            agent_port=$(free_port)
            case $v in
                std) args=(--runtime std) ;;
                uring) args=(--runtime uring -n 1) ;;
                uring-cpus=*) args=(--runtime uring --cpus "${v#uring-cpus=}") ;;
                uring-spin=*) args=(--runtime uring -n 1 --spin-us "${v#uring-spin=}") ;;
                *) echo "unknown variant $v" >&2; exit 1 ;;
            esac
            target/release/spoa "${args[@]}" -a 127.0.0.1 -p "$agent_port" 2>/dev/null &
            agent=$!
            fe=$(free_port); fe2=$(free_port)
            NBTHREAD=1 FE_PORT=$fe FE2_PORT=$fe2 AGENT_PORT=$agent_port \
                taskset -c 0 "$hb" -db -C "$PWD/benches/haproxy" -f throughput.cfg 2>/dev/null &
            hap=$!
            sleep 1
            wrk -t1 -c32 -d1s "http://127.0.0.1:$fe/" >/dev/null 2>&1 || true
            key="$version $v"
            with[$key]="${with[$key]:-}${with[$key]:+ / }$(rps "$fe")"
            without[$key]="${without[$key]:-}${without[$key]:+ / }$(rps "$fe2")"
            kill "$hap"; wait "$hap" 2>/dev/null || true
            kill -TERM "$agent"; wait "$agent" 2>/dev/null || true
        done
    done
done
echo "| HAProxy | agent | with SPOE req/s | without SPOE req/s |"
echo "|---|---|---:|---:|"
for key in $(printf '%s\n' "${!with[@]}" | sort | tr ' ' '_'); do
    k=${key//_/ }
    echo "| ${k%% *} | ${k#* } | ${with[$k]} | ${without[$k]} |"
done
