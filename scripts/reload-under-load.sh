#!/usr/bin/env bash
# Reload under load: the latency benchmark's closed loop (spoa-loadgen, 4 connections x 16
# pipelined NOTIFYs, every ACK checked) against the release agent serving a 1,000,000-prefix
# score table, with and without ten SIGHUP reloads during the measured window (the file swapped
# between two different tables by rename), on each runtime. Runs are interleaved (std, uring;
# reload and no-reload alternating first) so that a change in the machine's background load
# hits both alike; the agent runs on CPU 1 with one worker, the load generator on CPU 0.
#
# Usage: [SPOA=agent-binary] scripts/reload-under-load.sh [ROUNDS] [ENTRIES]   (defaults: 3, 1000000)
# Output: one line per run, the median per runtime and mode, and the p99 ratio (with reloads /
# without) of each round, whose two runs were back to back; logs in target/reload-under-load/.
# The files the reloads read are copied before each run, so a swap during the window is a rename.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# This script, and every process it starts but the agent, on CPU 0 with the load generator: its
# own work during the window (mv, kill, sleep) must not take the agent's CPU from it.
taskset -cp 0 $$ >/dev/null

rounds=${1:-3}
entries=${2:-1000000}
duration=10
warmup=1
out=target/reload-under-load
mkdir -p "$out"

cargo build --release --bin spoa -p spoa --bin spoa-loadgen -p spoa-loadgen --example synthetic_scores >&2
# SPOA=path measures another build of the agent (say, the previous commit's) with the same load.
spoa=${SPOA:-target/release/spoa}
loadgen=target/release/spoa-loadgen

# Two tables that differ everywhere, plus nested networks over the load generator's addresses
# (10.<connection>.x.y) so that the measured lookups hit lists.
for t in a b; do
    seed=$([ "$t" = a ] && echo 1 || echo 2)
    target/release/examples/synthetic_scores "$entries" "$seed" "$out/table-$t.txt"
    {
        echo "10.0.0.0/14 $((seed * 30))"
        for i in 0 1 2 3; do
            for j in $(seq 0 255); do echo "10.$i.$j.0/24 $(((i * 256 + j + seed) % 101))"; done
        done
    } >>"$out/table-$t.txt"
done

can_uring() { "$spoa" --runtime uring -n 1 --check-runtime >/dev/null 2>&1; }
runtimes=std
if can_uring; then runtimes="std uring"; else echo "uring runtime unavailable here: std only" >&2; fi

run() { # runtime mode round
    local rt=$1 mode=$2 round=$3 log="$out/agent-$1-$2-$3.log"
    cp "$out/table-a.txt" "$out/scores.txt"
    # The ten files the reloads will read, copied now (in both modes, alike): copying 24 MiB
    # during the window would take CPU time that is not the agent's.
    for n in $(seq 1 10); do
        cp "$out/table-$([ $((n % 2)) = 1 ] && echo b || echo a).txt" "$out/swap-$n.txt"
    done
    taskset -c 1 "$spoa" --runtime "$rt" -n 1 -a 127.0.0.1 -p 0 --scores "$out/scores.txt" 2>"$log" &
    local pid=$!
    local addr=""
    for _ in $(seq 1 600); do
        addr=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | sed 's/listening on //' || true)
        [ -n "$addr" ] && break
        sleep 0.05
    done
    [ -n "$addr" ] || { echo "agent did not start: $(cat "$log")" >&2; kill "$pid"; return 1; }
    taskset -c 0 "$loadgen" --connect "$addr" --shape 4x16 --duration "$duration" --warmup "$warmup" \
        --agent-pid "$pid" >"$out/load-$rt-$mode-$round.md" 2>/dev/null &
    local lg=$!
    local reloads=0
    if [ "$mode" = reload ]; then
        # The agent's log lines as they are written (tail follows the file by inotify, so
        # waiting for a line costs no polling; this script and its children run on CPU 0).
        local lines tail_pid
        exec {lines}< <(exec tail -n 0 -F "$log" 2>/dev/null)
        tail_pid=$!
        sleep "$warmup"
        # Ten swaps spread over the measured window; each waits for the agent to say it is done
        # (or that it failed, or 10 s).
        for n in $(seq 1 10); do
            sleep 0.5
            mv "$out/swap-$n.txt" "$out/scores.txt"
            kill -HUP "$pid"
            local line
            while IFS= read -r -t 10 line <&"$lines"; do
                case $line in *"scores reloaded"* | *"scores reload ("*) break ;; esac
            done
        done
        kill "$tail_pid" 2>/dev/null || true
        exec {lines}<&-
    fi
    wait "$lg" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    reloads=$(grep -c 'scores reloaded' "$log" || true)
    local row; row=$(grep "| 4x16 |" "$out/load-$rt-$mode-$round.md" || echo "| $addr | 4x16 | – | – | – | – | – | – | – | ? | – | – |")
    local took; took=$( (grep -o 'in [0-9]* ms, [0-9.]* MiB[^;]*; lookups' "$log" || true) | awk '{s+=$2} END {if (NR) printf "%.0f", s/NR; else printf "-"}')
    # Columns: runtime shape ACKs/s %canned p50 p90 p99 p99.9 max errors ...
    echo "$row" | awk -F'|' -v rt="$rt" -v mode="$mode" -v round="$round" -v reloads="$reloads" -v took="$took" \
        '{gsub(/ /, "", $4); gsub(/ /, "", $6); gsub(/ /, "", $8); gsub(/ /, "", $9); gsub(/ /, "", $10); gsub(/ /, "", $11);
          printf "%s %s %s %s %s %s %s %s %s %s\n", rt, mode, round, $4, $6, $8, $9, $10, $11, reloads " " took}'
}

echo "# runtime mode round ACKs/s p50_us p99_us p99.9_us max_us errors reloads mean_reload_ms" | tee "$out/runs.txt"
for round in $(seq 1 "$rounds"); do
    for rt in $runtimes; do
        if [ $((round % 2)) = 1 ]; then modes="noreload reload"; else modes="reload noreload"; fi
        for mode in $modes; do
            run "$rt" "$mode" "$round" | tee -a "$out/runs.txt"
        done
    done
done

echo
echo "| runtime | mode | runs | ACKs/s (median) | p50 µs | p99 µs (median) | p99 µs (worst) | p99.9 µs | errors (sum) | reloads per run | reload ms (mean) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rt in $runtimes; do
    for mode in noreload reload; do
        grep "^$rt $mode " "$out/runs.txt" | awk -v rt="$rt" -v mode="$mode" '
            function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
            { gsub(/,/, "", $4); n++; rate[n] = $4; p50[n] = $5; p99[n] = $6; p999[n] = $7; err += $9; rel = rel " " $10; if ($6 + 0 > worst + 0) worst = $6; if ($11 != "-") { ms += $11; msn++ } }
            END { printf "| %s | %s | %d | %d | %s | %s | %s | %s | %d |%s | %s |\n", rt, mode, n, med(rate, n), med(p50, n), med(p99, n), worst, med(p999, n), err, rel, (msn ? sprintf("%.0f", ms / msn) : "–") }'
    done
done

# Each round ran both modes back to back: their p99 ratio is the least noisy comparison.
echo
echo "| runtime | p99 with reloads / without, each round (sorted) | median |"
echo "|---|---|---:|"
for rt in $runtimes; do
    awk -v rt="$rt" '
        $1 == rt && $2 == "noreload" { base[$3] = $6 }
        $1 == rt && $2 == "reload" { with[$3] = $6 }
        END {
            n = 0
            for (r in base) if (r in with && base[r] > 0) { n++; ratio[n] = with[r] / base[r] }
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (ratio[j] < ratio[i]) { t = ratio[i]; ratio[i] = ratio[j]; ratio[j] = t }
            list = ""; for (i = 1; i <= n; i++) list = list sprintf("%s%.2f", (i > 1 ? ", " : ""), ratio[i])
            printf "| %s | %s | %.2f |\n", rt, list, (n ? ratio[int((n + 1) / 2)] : 0)
        }' "$out/runs.txt"
done
