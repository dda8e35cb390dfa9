#!/usr/bin/env bash
# What the web UI costs and how fast it steers (docs/BENCHMARKS.md, "Web UI").
#
# 1. Generator CPU per QoS 1 message into the calibration sink, headless vs `--web
#    --autostart --autoquit 0` with the page's two requests (/ui/live, /stats/requests) made
#    every second while it runs, as an open page does. Same plan, a fixed run time (not
#    --messages, which would keep the web run from reserving users for live changes: this way
#    its reserve is in the cost); messages counted from the --json result. CPU is user+sys of
#    the mqblast process from /proc/PID/stat just before it exits (bash `times` would also count
#    curl). RUNS runs of each, alternating, median of the per-message cost reported, and the
#    median of the pair-by-pair differences (each web run against the headless run before it).
# 2. The fixed part of that cost: CPU of 1 s runs, headless vs web (the web run builds its
#    reserve of publishers for live changes, up to 10,000, at start), median of RUNS.
# 3. Time from POST /swarm (one more user) to the first new TCP connection at a stand-in
#    broker (scripts/lib/steer_latency.py), ROUNDS rounds; spawn rate 100/s, so the first new
#    user is due at once.
#
# Env: MQBLAST (default target/release/mqblast), BENCH_RUN_TIME (default 15s),
# BENCH_USERS (32), RUNS (5), ROUNDS (20).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MQBLAST="${MQBLAST:-target/release/mqblast}"
RUN_TIME="${BENCH_RUN_TIME:-15s}"
USERS="${BENCH_USERS:-32}"
RUNS="${RUNS:-5}"
ROUNDS="${ROUNDS:-20}"
log() { echo "bench_web: $*" >&2; }

[ -x "$MQBLAST" ] || { log "building $MQBLAST"; cargo build --release >&2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-bench-web.XXXXXX")
SINK_PID=""
cleanup() { [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SINK_PORT=$(free_port)
"$MQBLAST" sink --listen "127.0.0.1:$SINK_PORT" --threads 1 --quiet > "$WORK/sink.log" 2>&1 &
SINK_PID=$!
sleep 0.5

CLK_TCK=$(getconf CLK_TCK)
# CPU seconds (user+sys) of PID, from /proc/PID/stat; last value seen before it exits.
watch_cpu() {
    local pid=$1 out=$2 stat
    while stat=$(cat "/proc/$pid/stat" 2>/dev/null); do
        echo "$stat" | awk -v hz="$CLK_TCK" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' > "$out.tmp" &&
            mv "$out.tmp" "$out"
        sleep 0.05
    done
}

PLAN=(-H "127.0.0.1:$SINK_PORT" -u "$USERS" -r 100000 --qos 1 --interval 0 -t "$RUN_TIME"
      --threads 1 --only-summary --json "$WORK/result.json")

# CPU microseconds per acknowledged publish of the run that just ended.
us_per_msg() {
    local ok; ok=$(jq '.publish.ok' "$WORK/result.json")
    echo "scale=4; $(cat "$WORK/cpu") * 1000000 / $ok" | bc
}

run_headless() {
    "$MQBLAST" "${PLAN[@]}" > /dev/null 2>&1 &
    local pid=$!
    watch_cpu "$pid" "$WORK/cpu" & local watcher=$!
    wait "$pid" || true; wait "$watcher" || true
    us_per_msg
}

run_web_polled() {
    local port; port=$(free_port)
    "$MQBLAST" "${PLAN[@]}" --web --web-port "$port" --autostart --autoquit 0 > /dev/null 2>&1 &
    local pid=$!
    watch_cpu "$pid" "$WORK/cpu" & local watcher=$!
    while kill -0 "$pid" 2>/dev/null; do
        curl -s -o /dev/null "http://127.0.0.1:$port/ui/live" || true
        curl -s -o /dev/null "http://127.0.0.1:$port/stats/requests" || true
        sleep 1
    done
    wait "$pid" || true; wait "$watcher" || true
    us_per_msg
}

source scripts/lib/median.sh

: > "$WORK/headless"; : > "$WORK/web"
for run in $(seq "$RUNS"); do
    log "run $run/$RUNS: headless"; run_headless >> "$WORK/headless"
    log "run $run/$RUNS: web UI polled every second"; run_web_polled >> "$WORK/web"
done
headless_us=$(median < "$WORK/headless")
web_us=$(median < "$WORK/web")
echo "QoS 1 into the sink, $USERS users, $RUN_TIME, 1 worker thread, median of $RUNS (us CPU/msg):"
echo "  headless:                  $headless_us (runs: $(tr '\n' ' ' < "$WORK/headless"))"
echo "  web UI polled every 1 s:   $web_us (runs: $(tr '\n' ' ' < "$WORK/web"))"
echo "  difference of the medians: $(echo "scale=2; ($web_us - $headless_us) * 100 / $headless_us" | bc)%"
# Each web run against the headless run just before it (the machine drifts less within a pair).
paste "$WORK/headless" "$WORK/web" | awk '{ printf "%.2f\n", ($2 - $1) * 100 / $1 }' > "$WORK/pairs"
echo "  pair by pair:              median $(median < "$WORK/pairs")% (pairs: $(tr '\n' ' ' < "$WORK/pairs"))"

fixed_cpu() {
    local extra=("$@")
    "$MQBLAST" -H "127.0.0.1:$SINK_PORT" -u "$USERS" -r 100000 --qos 1 --interval 0 -t 1s \
        --threads 1 --only-summary "${extra[@]}" > /dev/null 2>&1 &
    local pid=$!
    watch_cpu "$pid" "$WORK/cpu" & local watcher=$!
    wait "$pid" || true; wait "$watcher" || true
    cat "$WORK/cpu"
}
: > "$WORK/fixed_headless"; : > "$WORK/fixed_web"
for run in $(seq "$RUNS"); do
    fixed_cpu >> "$WORK/fixed_headless"
    fixed_cpu --web --web-port "$(free_port)" --autostart --autoquit 0 >> "$WORK/fixed_web"
done
echo "1 s runs, CPU seconds, median of $RUNS: headless $(median < "$WORK/fixed_headless"), web $(median < "$WORK/fixed_web")"

log "steering latency: $ROUNDS rounds"
python3 scripts/lib/steer_latency.py "$MQBLAST" "$ROUNDS" > "$WORK/steer"
echo "POST /swarm (+1 user) -> first new TCP connection, $ROUNDS rounds (ms):"
echo "  median $(median < "$WORK/steer"), max $(sort -g "$WORK/steer" | tail -1), all: $(tr '\n' ' ' < "$WORK/steer")"
