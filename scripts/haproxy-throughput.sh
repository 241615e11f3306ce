#!/usr/bin/env bash
# Requests/s through HAProxy with and without the SPOE filter (keep-alive, wrk, one run each), for
# each installed HAProxy (2.6 system, 3.2 from scripts/haproxy-sid.sh) and each runtime.
#   scripts/haproxy-throughput.sh [SECONDS] [RUNTIMES]      defaults: 10 "uring std"
# Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-10}
runtimes=${2:-uring std}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for rt in $runtimes; do
    agent_port=$(free_port)
    target/release/spoa --runtime "$rt" -a 127.0.0.1 -p "$agent_port" 2>/dev/null &
    agent=$!
    sleep 1
    for hb in /usr/sbin/haproxy target/haproxy-sid/haproxy; do
        [ -x "$hb" ] || continue
        fe=$(free_port); fe2=$(free_port)
        FE_PORT=$fe FE2_PORT=$fe2 AGENT_PORT=$agent_port \
            "$hb" -db -C "$PWD/benches/haproxy" -f throughput.cfg 2>/dev/null &
        hap=$!
        sleep 1
        with=$(wrk -t2 -c32 -d"${secs}s" "http://127.0.0.1:$fe/" | awk '/Requests\/sec/ {print $2}')
        without=$(wrk -t2 -c32 -d"${secs}s" "http://127.0.0.1:$fe2/" | awk '/Requests\/sec/ {print $2}')
        kill "$hap"; wait "$hap" 2>/dev/null || true
        echo "$rt runtime, $("$hb" -v | head -1 | awk '{print "HAProxy", $3}'): with SPOE $with req/s, without $without req/s"
    done
    kill -TERM "$agent"; wait "$agent" || true
done
