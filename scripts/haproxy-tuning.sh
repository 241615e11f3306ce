#!/usr/bin/env bash
# What HAProxy's side of the SPOE setup costs: requests/s through HAProxy with the SPOE filter,
# for each installed HAProxy (2.6 system, 3.2 from scripts/haproxy-sid.sh), per variant:
#   seed          server maxconn 5,  timeout processing 15ms, agent announces pipelining
#   no-maxconn    server maxconn 0 (no limit), 15ms, pipelining
#   no-pipelining no limit, 15ms, agent with -c none (one NOTIFY per connection at a time)
#   maxconn5-500ms  maxconn 5, timeout processing 500ms (the queue waits instead of failing open)
# plus the same frontend without SPOE. HAProxy runs THREADS threads (default 1, pinned to CPU 0;
# THREADS=2: on CPUs 0 and 1, as the README's nbthread 2), the agent (-n 1) and wrk (one thread)
# share CPU 1. Rounds are interleaved; a wrk Lua script counts the
# responses without x-ip-score (the agent's answer did not arrive in time: HAProxy failed open).
#   scripts/haproxy-tuning.sh [SECONDS] [ROUNDS] [CONNECTIONS]     defaults: 5 2 32
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-5}
rounds=${2:-2}
conns=${3:-32}
threads=${THREADS:-1}
hap_cpus=0
[ "$threads" -gt 1 ] && hap_cpus=0,1
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p spoa
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT
cat > "$tmp/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) missing = 0 end
function response(status, headers, body)
    local score = headers["x-ip-score"] or headers["X-Ip-Score"]
    if score == nil or score == "" then missing = missing + 1 end
end
function done(summary, latency, requests)
    local m = 0
    for _, t in ipairs(threads) do m = m + t:get("missing") end
    io.write(string.format("RESULT %.0f %d %d %.0f\n", summary.requests / (summary.duration / 1e6),
        summary.requests, m, latency:percentile(99) ))
end
LUA
haproxies=()
for hb in /usr/sbin/haproxy target/haproxy-sid/haproxy; do [ -x "$hb" ] && haproxies+=("$hb"); done
variants="seed no-maxconn no-pipelining maxconn5-500ms without-spoe"
for round in $(seq "$rounds"); do
    for hb in "${haproxies[@]}"; do
        version=$("$hb" -v | awk 'NR == 1 {print $3}')
        for variant in $variants; do
            maxconn=5 timeout=15ms caps=pipelining fe=with
            case $variant in
                no-maxconn) maxconn=0 ;;
                no-pipelining) maxconn=0 caps=none ;;
                maxconn5-500ms) timeout=500ms ;;
                without-spoe) fe=without ;;
            esac
            agent_port=$(free_port); fe_port=$(free_port); fe2_port=$(free_port)
            taskset -c 1 target/release/spoa -n 1 -a 127.0.0.1 -p "$agent_port" -c "$caps" \
                2>/dev/null &
            agent=$!
            FE_PORT=$fe_port FE2_PORT=$fe2_port AGENT_PORT=$agent_port NBTHREAD=$threads \
                AGENT_MAXCONN=$maxconn SPOE_PROCESSING_TIMEOUT=$timeout \
                taskset -c "$hap_cpus" "$hb" -db -C "$PWD/benches/haproxy" -f throughput.cfg 2>/dev/null &
            hap=$!
            sleep 1
            port=$fe_port
            [ "$fe" = without ] && port=$fe2_port
            # Warm-up: HAProxy opens its agent connections.
            taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
            read -r _ rps requests missing p99 < <(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" \
                --latency -s "$tmp/count.lua" "http://127.0.0.1:$port/" | grep '^RESULT')
            agent_conns=$(ss -tn state established "( sport = :$agent_port )" | tail -n +2 | wc -l)
            kill "$hap" 2>/dev/null; wait "$hap" 2>/dev/null || true
            kill -TERM "$agent" 2>/dev/null; wait "$agent" 2>/dev/null || true
            printf 'threads %s round %s HAProxy %-8s %-15s %8s req/s  p99 %6s ms  without score %5.1f%%  agent connections %s\n' \
                "$threads" "$round" "$version" "$variant" "$rps" "$(awk -v u="$p99" 'BEGIN {printf "%.1f", u / 1000}')" \
                "$(awk -v m="$missing" -v r="$requests" 'BEGIN {print (r > 0 ? m * 100 / r : 0)}')" "$agent_conns"
        done
    done
done
