#!/usr/bin/env bash
# Restarts the agent under load through a real HAProxy, and counts the requests that failed:
# the agent binding its port itself (SIGTERM, wait for the exit, start again), a listening
# socket kept across restarts and passed to each agent (as systemd's spoa.socket does), and the
# same socket with the stopping agent handing its open connections to the next one through a
# descriptor store (--hand-over-connections, as spoa.service with FileDescriptorStoreMax=
# does; the script plays systemd's store). HAProxy 2.6 and 3.2 (tests/haproxy.rs finds them), both runtimes, a
# request-per-connection load of about 400 requests/s (4 clients, 10 ms apart) through
# tests/haproxy/haproxy-test.cfg (SPOE timeout processing 500 ms), one restart every ~0.4 s.
#   scripts/restart-under-load.sh [RESTARTS]        default 20 per HAProxy version and runtime
# A failed request is one without the agent's score: HAProxy's SPOE error and its time are
# listed. Everything (test, HAProxy, agents) shares the machine's CPUs: the counts, not the
# times, are the result. Output: one line per case, then the failures; logs in
# target/restart-under-load/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

restarts=${1:-20}
out=target/restart-under-load
mkdir -p "$out"
cargo build --release -q -p spoa --bin spoa --test haproxy >&2

for mode in bind kept handover; do
    SPOA_RESTART=$mode SPOA_RESTARTS=$restarts \
        cargo test --release -q -p spoa --test haproxy measure_restarts_under_load -- \
        --ignored --nocapture --test-threads 1 >"$out/$mode.log" 2>&1 || {
        echo "the $mode run failed: $out/$mode.log" >&2
        exit 1
    }
done

echo "| HAProxy | runtime | restart | restarts | connections handed over | requests scored | scored while restarting | failed | of which drain race | restart ms (median, max) |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---|"
for mode in bind kept handover; do
    grep '^RESULT ' "$out/$mode.log" | sed 's/^RESULT //' | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        how = (v["restart"] == "Bind") ? "binds its port" : (v["restart"] == "KeptSocket") ? "kept socket (systemd)" : "kept socket, connections handed over"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s |\n", v["haproxy"], v["runtime"], how,
            v["restarts"], v["handed_over"], v["scored"], v["scored_during_restarts"], v["failed"], v["drain_race"],
            v["restart_ms_median"], v["restart_ms_max"]
    }'
done
echo
echo "Failures (SPOE error 1: processing timeout; 2 (2.6) / 257 (3.2): no agent reachable or an"
echo "I/O error; 256 + N: the agent's DISCONNECT with status N):"
for mode in bind kept handover; do
    grep '^FAILURE ' "$out/$mode.log" | sed 's/^FAILURE //' |
        sed -E 's/request sent at [0-9]+ ms: //' | sort | uniq -c | sort -rn || true
done
