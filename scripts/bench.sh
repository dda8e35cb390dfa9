#!/usr/bin/env bash
# Throughput and cost benchmark of mqblast on loopback, into the calibration sink and into
# mosquitto.
#
# Why it exists: "millions of messages per second" and "cheaper than paho" are claims; this
# script turns them into numbers that can be compared run to run. For each target (the sink,
# which measures the generator alone, and mosquitto, a real broker), QoS 0 and QoS 1, 1 and 2
# worker threads, a few user counts, the default (~200-byte) payload and no rate limit
# (--interval 0), it runs RUNS times and prints the medians of:
#   - msg/s                      publish.rps from mqblast's JSON summary
#   - mqblast CPU us / msg       user+sys CPU of the mqblast process (bash `times`, children)
#                                divided by messages (= CPU s per 1M messages)
#   - target CPU us / msg        the same for the sink or mosquitto, from /proc/PID/stat
# as a Markdown table on stdout (progress goes to stderr). mosquitto has no subscribers, so it
# only ingests; it is single-threaded, so it is usually the bottleneck, which the target
# column makes visible. On a small machine every process shares the same cores: compare rows
# of one run, and read the medians, not single runs.
#
# Environment: BENCH_MESSAGES (default 1000000), RUNS (default 3), BENCH_USERS (default
# "32"), BENCH_QOS (default "0 1"), BENCH_THREADS (mqblast workers, default "1 2"),
# BENCH_TARGETS (default "sink mosquitto"), SINK_THREADS (default 1), MQBLAST (default
# target/release/mqblast, built with `cargo build --release` if missing), BENCH_EXTRA_ARGS
# (appended to every mqblast run), FLOOR_WINDOW (default 16; set it to the --max-inflight given
# in BENCH_EXTRA_ARGS), FLOOR=off skips the floor runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MESSAGES="${BENCH_MESSAGES:-1000000}"
RUNS="${RUNS:-3}"
USERS_LIST="${BENCH_USERS:-32}"
QOS_LIST="${BENCH_QOS:-0 1}"
THREADS_LIST="${BENCH_THREADS:-1 2}"
TARGETS="${BENCH_TARGETS:-sink mosquitto}"
SINK_THREADS="${SINK_THREADS:-1}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
read -r -a EXTRA <<< "${BENCH_EXTRA_ARGS:-}"

log() { echo "bench: $*" >&2; }

install_packages() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" ||
        { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "$@"; }
}
command -v jq >/dev/null 2>&1 || install_packages jq
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { install_packages mosquitto; MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto); }

if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-bench.XXXXXX")
MOSQUITTO_PID=""
cleanup() {
    stop_mosquitto
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$(dirname "${BASH_SOURCE[0]}")/lib/mosquitto.sh"



# user+sys CPU seconds of a live process (fields 14 and 15 of /proc/PID/stat, after the
# parenthesised command name).

# Sets CHILDREN_CPU_S to the user+sys CPU seconds of this shell's waited-for children (second
# line of `times`). `times` must run in this shell, never inside $(...): a subshell's children
# start at zero. So this function is called directly and returns through a global.
to_s() { local v=${1%s}; echo "${v%%m*} * 60 + ${v#*m}"; }
children_cpu() {
    local user sys
    times > "$WORK/times"
    { read -r _; read -r user sys; } < "$WORK/times"
    CHILDREN_CPU_S=$(echo "scale=6; $(to_s "$user") + $(to_s "$sys")" | bc)
}

source scripts/lib/median.sh
source scripts/lib/floor.sh
FLOOR="${FLOOR:-on}"
FLOOR_WINDOW="${FLOOR_WINDOW:-16}"
if [ "$FLOOR" = on ]; then
    build_floors
    PAYLOAD_BYTES=$(payload_bytes data.json)
fi

command -v bc >/dev/null 2>&1 || install_packages bc

ROWS=()
for target in $TARGETS; do
    if [ "$target" = sink ]; then
        start_sink "$WORK/sink.log" "$SINK_THREADS"
        log "sink on 127.0.0.1:$PORT (pid $MOSQUITTO_PID, $SINK_THREADS threads)"
    else
        start_mosquitto scripts/bench.sh
        log "mosquitto $("$MOSQUITTO" -h 2>&1 | head -n 1 | awk '{print $3}') on 127.0.0.1:$PORT (pid $MOSQUITTO_PID)"
    fi
for qos in $QOS_LIST; do
  for threads in $THREADS_LIST; do
    for users in $USERS_LIST; do
        : > "$WORK/rps"; : > "$WORK/gen"; : > "$WORK/broker"; : > "$WORK/wall"; : > "$WORK/floor"
        for run in $(seq 1 "$RUNS"); do
            json="$WORK/run.json"
            rm -f "$json"
            broker_before=$(proc_cpu_s "$MOSQUITTO_PID")
            children_cpu; gen_before=$CHILDREN_CPU_S
            t0=$(date +%s.%N)
            rc=0
            "$MQBLAST" run -H "127.0.0.1:$PORT" --headless --only-summary \
                -u "$users" -r 100000 --messages "$MESSAGES" --qos "$qos" --interval 0 \
                --threads "$threads" --topic "bench/q$qos" -t 30m --json "$json" "${EXTRA[@]}" \
                > "$WORK/stdout" 2> "$WORK/stderr" || rc=$?
            t1=$(date +%s.%N)
            children_cpu; gen_after=$CHILDREN_CPU_S
            broker_after=$(proc_cpu_s "$MOSQUITTO_PID")
            # Exit 1 means failures were recorded: the numbers are still reported (with a warning
            # below); anything else, or no JSON, means the run itself went wrong.
            if { [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; } || [ ! -s "$json" ]; then
                log "$target qos $qos threads $threads users $users run $run: mqblast exited $rc"
                tail -n 20 "$WORK/stderr" >&2
                exit 1
            fi
            requests=$(jq -r '.publish.requests' "$json")
            failures=$(jq -r '.publish.failures' "$json")
            rps=$(jq -r '.publish.rps' "$json")
            if [ "$requests" != "$MESSAGES" ] || [ "$failures" != "0" ]; then
                log "$target qos $qos threads $threads users $users run $run: requests $requests (expected $MESSAGES), failures $failures"
            fi
            per_m="scale=4; 1000000 / $requests"
            gen=$(echo "$per_m * ($gen_after - $gen_before)" | bc)
            broker=$(echo "$per_m * ($broker_after - $broker_before)" | bc)
            wall=$(echo "scale=3; ($t1 - $t0) / 1" | bc)
            echo "$rps" >> "$WORK/rps"; echo "$gen" >> "$WORK/gen"
            echo "$broker" >> "$WORK/broker"; echo "$wall" >> "$WORK/wall"
            log "$target qos $qos threads $threads users $users run $run: $rps msg/s, mqblast ${gen} us/msg, $target ${broker} us/msg, wall ${wall} s"
            if [ "$FLOOR" = on ] && [ "$qos" = 1 ]; then
                floor_line=$("$FLOOR_DIR/floor_tp" 127.0.0.1 "$PORT" "$users" "$FLOOR_WINDOW" "$MESSAGES" "$PAYLOAD_BYTES")
                floor_us=$(echo "$floor_line" | awk '{ for (i = 1; i < NF; i++) if ($i == "cpu_us_per_msg") print $(i + 1) }')
                echo "$floor_us" >> "$WORK/floor"
                log "$target qos $qos users $users run $run: floor_tp $floor_line"
            fi
        done
        floor_med=-; x_floor=-
        if [ -s "$WORK/floor" ]; then
            floor_med=$(median < "$WORK/floor" | xargs printf '%.3f')
            x_floor=$(ratio "$(median < "$WORK/gen")" "$floor_med")
        fi
        ROWS+=("| $target | $qos | $threads | $users | $MESSAGES | $RUNS | $(median < "$WORK/rps" | xargs printf '%.0f') | $(median < "$WORK/gen" | xargs printf '%.3f') | $(median < "$WORK/broker" | xargs printf '%.3f') | $(median < "$WORK/wall" | xargs printf '%.2f') | $floor_med | $x_floor |")
    done
  done
done
    stop_mosquitto
done

echo "### mqblast into the sink and into mosquitto on loopback"
echo
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $("$MQBLAST" --version 2>/dev/null || echo mqblast), sink with $SINK_THREADS thread(s), mosquitto without subscribers; medians of $RUNS runs."
echo
echo "| target | QoS | mqblast threads | users | messages | runs | msg/s | mqblast CPU us / msg | target CPU us / msg | wall s | floor CPU us / msg | x floor |"
echo "|---|----:|----:|------:|---------:|-----:|------:|------------------------:|--------------------------:|-------:|------:|-----:|"
printf '%s\n' "${ROWS[@]}"
