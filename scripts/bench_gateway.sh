#!/usr/bin/env bash
# 10,000 devices at 1 point/s, three ways, side by side in one sitting through one local
# mosquitto: as 10,000 connections (`devices`), as 100 gateways of 100 devices sending one
# message per point (`per-point`, ThingsBoard's performance tests), and as 100 gateways folding
# the devices due together into one message (`batched`, ThingsBoard's IoT Gateway). The modes
# take turns, RUNS rounds of all three, so a busy neighbour weighs on each alike. One line per
# run, then the median of each column per mode:
#
#   cpu_us_pt   mqblast CPU (user+sys, /proc/PID/stat) per device point over the steady part
#               (after the ramp and the announcements + 2 s, to 1 s before the end); points in
#               it counted on the schedule: DEVICES x seconds / INTERVAL
#   msg_s       MQTT messages per second in the steady part (the timeline's sent counts)
#   pts_s       device points per second in the steady part, acknowledged (the timeline's
#               points of the gateway rows, or its sent messages for devices): the schedule
#               held when this is DEVICES / INTERVAL
#   mosq_us_pt  the target's (mosquitto's, or the sink's) CPU per device point over the same window
#   rss_b_dev   mqblast RSS in the steady part / DEVICES
#   lag_p99_us  schedule lag p99 (how late the generator sent)
#   pub_p99_us  publish latency p99 (to the ack at QoS 1) of the point messages' row
#   failures    failed requests
#
# Why it exists: a gateway carries many devices over one connection; what that saves the
# generator per device point is a figure users ask for (docs/BENCHMARKS.md, "Gateways").
#
# Environment: TARGET (mosquitto, or sink: `mqblast sink`, which acks and drops, so the
# generator is measured without a broker's cost on the same two cores), DEVICES (10000), GATEWAYS (100), INTERVAL (1s), QOS (1), DURATION_S (20), RUNS
# (2), MODES ("devices per-point batched"), CONNECT_RATE (2000), BIND (127.0.0.2-127.0.0.9:
# more source ports than one address has), MQBLAST (target/release/mqblast), EXTRA (more flags).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEVICES="${DEVICES:-10000}"
GATEWAYS="${GATEWAYS:-100}"
INTERVAL="${INTERVAL:-1s}"
QOS="${QOS:-1}"
DURATION_S="${DURATION_S:-20}"
RUNS="${RUNS:-2}"
MODES="${MODES:-devices per-point batched}"
CONNECT_RATE="${CONNECT_RATE:-2000}"
BIND="${BIND-127.0.0.2-127.0.0.9}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
TARGET="${TARGET:-mosquitto}"
EXTRA="${EXTRA:-}"

log() { echo "bench_gateway: $*" >&2; }
command -v jq >/dev/null 2>&1 || { log "needs jq"; exit 1; }
command -v bc >/dev/null 2>&1 || { log "needs bc"; exit 1; }
if (( DEVICES % GATEWAYS != 0 )); then
    log "DEVICES ($DEVICES) must be a multiple of GATEWAYS ($GATEWAYS)"; exit 1
fi
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi
MQBLAST=$(realpath "$MQBLAST")
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-bench-gateway.XXXXXX")
# shellcheck source=scripts/lib/mosquitto.sh
. scripts/lib/mosquitto.sh
# shellcheck source=scripts/lib/median.sh
. scripts/lib/median.sh
cleanup() { stop_mosquitto; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
interval_s=$(echo "$INTERVAL" | sed -E 's/s$//; s/^([0-9.]+)m$/\1*60/' | bc -l)

# The flags of MODE.
mode_args() {
    local per_gateway=$(( DEVICES / GATEWAYS ))
    case "$1" in
        devices) echo "-u $DEVICES" ;;
        per-point) echo "-u $GATEWAYS --gateway --devices-per-gateway $per_gateway" ;;
        batched) echo "-u $GATEWAYS --gateway --devices-per-gateway $per_gateway --gateway-mode batched" ;;
        *) log "unknown mode $1"; exit 1 ;;
    esac
}

# One run of MODE: prints its result fields separated by spaces.
one_run() {
    local mode=$1 json=$WORK/run.json pid steady_from steady_to cpu0 cpu1 m0 m1 rss args
    args=(-H "127.0.0.1:$PORT" -r "$CONNECT_RATE" --connect-rate "$CONNECT_RATE"
        --interval "$INTERVAL" --qos "$QOS" -t "${DURATION_S}s" --only-summary --json "$json")
    [ -n "$BIND" ] && args+=(--bind "$BIND")
    # shellcheck disable=SC2206
    args+=($(mode_args "$mode"))
    # shellcheck disable=SC2206
    [ -n "$EXTRA" ] && args+=($EXTRA)
    (cd "$WORK" && exec "$MQBLAST" "${args[@]}") > "$WORK/run.log" 2>&1 &
    pid=$!
    # Ramp (the connections: one per device, or one per gateway) plus the announcements, then
    # 2 s to settle.
    local connections=$GATEWAYS
    [ "$mode" = devices ] && connections=$DEVICES
    steady_from=$(( connections / CONNECT_RATE + 3 ))
    if (( steady_from + 2 > DURATION_S - 1 )); then
        log "DURATION_S ($DURATION_S) leaves no steady part after a ${steady_from}s ramp"; exit 1
    fi
    steady_to=$(( DURATION_S - 1 ))
    sleep "$steady_from"
    cpu0=$(proc_cpu_s "$pid"); m0=$(proc_cpu_s "$MOSQUITTO_PID"); rss=$(rss_bytes "$pid")
    sleep $(( steady_to - steady_from ))
    cpu1=$(proc_cpu_s "$pid"); m1=$(proc_cpu_s "$MOSQUITTO_PID")
    wait "$pid" || true
    local points
    points=$(echo "$DEVICES * ($steady_to - $steady_from) / $interval_s" | bc -l)
    jq -r --argjson from "$steady_from" --argjson to "$steady_to" \
        --argjson devices "$DEVICES" --argjson rss "$rss" --argjson points "$points" \
        --arg cpu "$(echo "$cpu1 - $cpu0" | bc)" --arg mosq "$(echo "$m1 - $m0" | bc)" '
        (.timeline | map(select(.second > $from and .second <= $to))) as $steady
        | ($steady | map(.sent) | add) as $sent
        | ($steady | map((.streams // []) | map(.points // 0) | add // 0) | add) as $gw_points
        | (if $gw_points == 0 then $sent else $gw_points end) as $steady_points
        | [ (($cpu | tonumber) * 1e6 / $points | . * 100 | round / 100),
            ($sent / ($to - $from) | round),
            ($steady_points / ($to - $from) | round),
            (($mosq | tonumber) * 1e6 / $points | . * 100 | round / 100),
            ($rss / $devices | round),
            .schedule_lag_us.p99,
            (((.streams // []) | first | .latency_us.p99) // .publish.latency_us.p99),
            (.errors | to_entries | map(.value) | add // 0) ]
        | map(tostring) | join(" ")' "$json"
}

case "$TARGET" in
    mosquitto) start_mosquitto bench_gateway.sh ;;
    sink) start_sink "$WORK/sink.log" ;;
    *) log "TARGET is mosquitto or sink, not $TARGET"; exit 1 ;;
esac
log "into $TARGET: $DEVICES devices x 1/$INTERVAL, QoS $QOS, gateways of $(( DEVICES / GATEWAYS )), ${DURATION_S}s, $RUNS rounds of: $MODES"
header="mode run cpu_us_pt msg_s pts_s mosq_us_pt rss_b_dev lag_p99_us pub_p99_us failures"
echo "$header"
: > "$WORK/rows"
for run in $(seq 1 "$RUNS"); do
    for mode in $MODES; do
        row=$(one_run "$mode")
        echo "$mode $run $row" | tee -a "$WORK/rows"
        sleep 2
    done
done
for mode in $MODES; do
    printf "median %s" "$mode"
    for col in $(seq 3 10); do
        printf " %s" "$(awk -v m="$mode" -v c="$col" '$1 == m { print $c }' "$WORK/rows" | median)"
    done
    echo
done
