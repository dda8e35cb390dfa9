#!/usr/bin/env bash
# MQTT 5 against MQTT 3.1.1, side by side: generator CPU per message into the calibration
# sink, bytes on the wire per message with and without topic aliases, and msg/s through
# mosquitto.
#
# Why it exists: MQTT 5 adds a property length to every PUBLISH and a reason code and
# property length to every ack the sink and brokers send; the goal is that this costs the
# generator at most 10% more CPU per message, and that --topic-alias saves what it promises on
# the wire. The three variants (3.1.1, 5, 5 with --topic-alias) are interleaved run by run,
# the order rotated each round (A B C, B C A, C A B, ...), so a noisy neighbour and any
# first-in-round effect hit them alike; medians of RUNS runs. CPU comes from `times` (10 ms
# ticks): runs of a million messages or more keep that rounding near 1%.
#
# Prints Markdown tables on stdout (progress on stderr):
#   1. into the sink (1 thread): msg/s, mqblast CPU us/msg, sink CPU us/msg, per QoS/variant
#   2. bytes on the wire per message (client -> sink, one user, default telemetry topic,
#      the repository's data.json), from the sink's byte count: deterministic, one run
#   3. through mosquitto: msg/s, mqblast and mosquitto CPU us/msg
#
# Environment: RUNS (default 3), BENCH_MESSAGES (default 2000000, into the sink),
# MOSQUITTO_MESSAGES (default 500000, through mosquitto), BENCH_USERS (default 32),
# BENCH_QOS (default "0 1"), BENCH_TARGETS (default "sink mosquitto"), WIRE_MESSAGES
# (default 200000), MQBLAST (default target/release/mqblast, built if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-3}"
SINK_MESSAGES="${BENCH_MESSAGES:-2000000}"
MOSQUITTO_MESSAGES="${MOSQUITTO_MESSAGES:-500000}"
MESSAGES=$SINK_MESSAGES
USERS="${BENCH_USERS:-32}"
QOS_LIST="${BENCH_QOS:-0 1}"
TARGETS="${BENCH_TARGETS:-sink mosquitto}"
WIRE_MESSAGES="${WIRE_MESSAGES:-200000}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
VARIANTS=("3.1.1" "5" "5+alias")

log() { echo "bench_mqtt5: $*" >&2; }
for tool in jq bc; do
    command -v "$tool" >/dev/null 2>&1 || { log "needs $tool (apt-get install $tool)"; exit 1; }
done
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-bench5.XXXXXX")
MOSQUITTO_PID=""
source "$(dirname "${BASH_SOURCE[0]}")/lib/mosquitto.sh"
cleanup() {
    stop_mosquitto
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The flags of one variant.
variant_args() {
    case "$1" in
        3.1.1) echo "--mqtt-version 3.1.1" ;;
        5) echo "--mqtt-version 5" ;;
        5+alias) echo "--mqtt-version 5 --topic-alias" ;;
    esac
}


to_s() { local v=${1%s}; echo "${v%%m*} * 60 + ${v#*m}"; }
children_cpu() {
    local user sys
    times > "$WORK/times"
    { read -r _; read -r user sys; } < "$WORK/times"
    CHILDREN_CPU_S=$(echo "scale=6; $(to_s "$user") + $(to_s "$sys")" | bc)
}
source scripts/lib/median.sh

# One measured run of variant $1 at QoS $2 against $PORT; appends to $WORK/<variant>.<metric>.
measure() {
    local variant=$1 qos=$2 json="$WORK/run.json" rc=0 before_gen before_target
    rm -f "$json"
    before_target=$(proc_cpu_s "$MOSQUITTO_PID")
    children_cpu; before_gen=$CHILDREN_CPU_S
    # shellcheck disable=SC2046
    "$MQBLAST" run -H "127.0.0.1:$PORT" --headless --only-summary -u "$USERS" -r 100000 \
        --messages "$MESSAGES" --qos "$qos" --interval 0 --threads 1 -t 30m \
        --json "$json" $(variant_args "$variant") > "$WORK/stdout" 2> "$WORK/stderr" || rc=$?
    children_cpu
    local after_target requests failures rps
    after_target=$(proc_cpu_s "$MOSQUITTO_PID")
    if { [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; } || [ ! -s "$json" ]; then
        log "$variant qos $qos: mqblast exited $rc"; tail -n 20 "$WORK/stderr" >&2; exit 1
    fi
    requests=$(jq -r '.publish.requests' "$json")
    failures=$(jq -r '.publish.failures' "$json")
    rps=$(jq -r '.publish.rps' "$json")
    [ "$requests" = "$MESSAGES" ] && [ "$failures" = 0 ] ||
        log "$variant qos $qos: requests $requests of $MESSAGES, failures $failures"
    local gen target
    gen=$(echo "scale=4; 1000000 * ($CHILDREN_CPU_S - $before_gen) / $requests" | bc)
    target=$(echo "scale=4; 1000000 * ($after_target - $before_target) / $requests" | bc)
    echo "$rps" >> "$WORK/$variant.rps"
    echo "$gen" >> "$WORK/$variant.gen"
    echo "$target" >> "$WORK/$variant.target"
    log "$variant qos $qos run: $rps msg/s, mqblast $gen us/msg, target $target us/msg"
}

# The side-by-side table of one target.
compare_table() {
    local target=$1 qos variant base
    echo "### $target: MQTT 3.1.1 vs 5, side by side ($MESSAGES messages, medians of $RUNS interleaved runs)"
    echo
    echo "| QoS | variant | msg/s | mqblast CPU us / msg | vs 3.1.1 | $target CPU us / msg |"
    echo "|----:|---|------:|------:|------:|------:|"
    for qos in $QOS_LIST; do
        rm -f "$WORK"/*.rps "$WORK"/*.gen "$WORK"/*.target
        for run in $(seq 0 $((RUNS - 1))); do
            for i in 0 1 2; do
                measure "${VARIANTS[$(((run + i) % 3))]}" "$qos"
            done
        done
        base=$(median < "$WORK/3.1.1.gen")
        for variant in "${VARIANTS[@]}"; do
            local gen
            gen=$(median < "$WORK/$variant.gen")
            echo "| $qos | $variant | $(median < "$WORK/$variant.rps" | xargs printf '%.0f') | $(printf '%.3f' "$gen") | $(echo "scale=1; 100 * $gen / $base - 100" | bc)% | $(median < "$WORK/$variant.target" | xargs printf '%.3f') |"
        done
    done
    echo
}

# Bytes client -> sink per message for each variant: one user, QoS 1, the default topic.
wire_table() {
    echo "### Bytes on the wire per message (client -> broker, one user, QoS 1, topic v1/devices/me/telemetry, data.json)"
    echo
    echo "| variant | messages | bytes received by the sink | bytes / message |"
    echo "|---|------:|------:|------:|"
    local variant bytes
    for variant in "${VARIANTS[@]}"; do
        start_sink "$WORK/sink.log"
        # shellcheck disable=SC2046
        "$MQBLAST" run -H "127.0.0.1:$PORT" --headless --only-summary -u 1 --qos 1 \
            --interval 0 --messages "$WIRE_MESSAGES" -t 30m $(variant_args "$variant") \
            > /dev/null 2>&1 || { log "$variant wire run failed"; exit 1; }
        kill -INT "$MOSQUITTO_PID"; wait "$MOSQUITTO_PID" 2>/dev/null || true; MOSQUITTO_PID=""
        bytes=$(sed -n 's/.* \([0-9]*\) bytes$/\1/p' "$WORK/sink.log" | tail -n 1)
        echo "| $variant | $WIRE_MESSAGES | $bytes | $(echo "scale=2; $bytes / $WIRE_MESSAGES" | bc) |"
    done
    echo
    echo "(The sink's count includes one CONNECT, PINGREQs and one DISCONNECT: under 100 bytes per run.)"
    echo
}

echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $("$MQBLAST" --version), $USERS users, 1 mqblast thread, $SINK_MESSAGES messages per run into the sink, $MOSQUITTO_MESSAGES through mosquitto, load average $(cut -d' ' -f1-3 /proc/loadavg) at start."
echo
wire_table
for target in $TARGETS; do
    if [ "$target" = sink ]; then
        MESSAGES=$SINK_MESSAGES
        start_sink "$WORK/sink.log"
    else
        MESSAGES=$MOSQUITTO_MESSAGES
        start_mosquitto scripts/bench_mqtt5.sh
    fi
    compare_table "$target"
    stop_mosquitto
done
