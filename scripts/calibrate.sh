#!/usr/bin/env bash
# Calibration against the sink: does mqblast report the latency the peer really added?
#   delay5   sink --ack-delay 5ms, 10 users x 100 msg/s QoS 1: publish p50 should read 5.0 ms
#   delay1   sink --ack-delay 1ms, the same: p50 should read 1.0 ms
#   floor    sink without delay, 100 users x 100 msg/s QoS 1: the generator's own floor (p99)
# Each case runs RUNS times (default 3) for RUN_S seconds (default 15); prints publish p50,
# p99, max and schedule lag p50/p99/max in microseconds per run, then the medians.
#
# Why it exists: the sink's delay is known exactly, so any difference between it and the
# reported latency is the generator's own error. Figures in docs/BENCHMARKS.md come from here.
#
# Environment: RUNS, RUN_S, CASES ("delay5 delay1 floor"), MQBLAST (target/release/mqblast).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-3}"
RUN_S="${RUN_S:-15}"
CASES="${CASES:-delay5 delay1 floor}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
log() { echo "calibrate: $*" >&2; }
command -v jq >/dev/null 2>&1 || { log "needs jq"; exit 1; }
[ -x "$MQBLAST" ] || { log "building $MQBLAST"; cargo build --release >&2; }
MQBLAST=$(realpath "$MQBLAST")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-calibrate.XXXXXX")
SINK_PID=""
stop_sink() {
    if [ -n "$SINK_PID" ]; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
        SINK_PID=""
    fi
}
cleanup() { stop_sink; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_sink ACK_DELAY: a one-thread sink on a free port; sets PORT.
start_sink() {
    local i
    PORT=$((20000 + RANDOM % 40000))
    while port_in_use "$PORT"; do PORT=$((20000 + RANDOM % 40000)); done
    (cd "$WORK" && exec "$MQBLAST" sink --listen "127.0.0.1:$PORT" --threads 1 --quiet \
        --ack-delay "$1") > "$WORK/sink.log" 2>&1 &
    SINK_PID=$!
    for i in $(seq 1 100); do port_in_use "$PORT" && return 0; sleep 0.05; done
    log "the sink did not start: $(cat "$WORK/sink.log")"; exit 1
}

source scripts/lib/median.sh

for case in $CASES; do
    case "$case" in
        delay5) delay=5ms users=10 ;;
        delay1) delay=1ms users=10 ;;
        floor) delay=0s users=100 ;;
        *) log "unknown case $case"; exit 1 ;;
    esac
    : > "$WORK/rows"
    echo "$case: sink --ack-delay $delay, $users users x 100 msg/s, QoS 1, ${RUN_S}s"
    echo "run pub_p50_us pub_p99_us pub_max_us lag_p50_us lag_p99_us lag_max_us"
    for run in $(seq 1 "$RUNS"); do
        start_sink "$delay"
        (cd "$WORK" && exec "$MQBLAST" -H "127.0.0.1:$PORT" -u "$users" -r 1000 --interval 10ms \
            --qos 1 -t "${RUN_S}s" --threads 2 --only-summary --json "$WORK/run.json") \
            > "$WORK/run.log" 2>&1 || true
        stop_sink
        jq -r '[.publish.latency_us.p50, .publish.latency_us.p99, .publish.latency_us.max,
                .schedule_lag_us.p50, .schedule_lag_us.p99, .schedule_lag_us.max]
               | map(tostring) | join(" ")' "$WORK/run.json" | tee -a "$WORK/rows" | sed "s/^/$run /"
    done
    printf "median"
    for col in 1 2 3 4 5 6; do
        printf " %s" "$(awk -v c="$col" '{ print $c }' "$WORK/rows" | median)"
    done
    echo
done
