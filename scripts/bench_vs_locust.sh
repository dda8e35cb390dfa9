#!/usr/bin/env bash
# mqblast side by side with the old way (Locust + paho-mqtt), against one mosquitto.
#
# Why it exists: mqblast replaces a Locust + paho-mqtt script and promises at least 100x less
# CPU per message and never less throughput. This script measures both in one sitting: it
# installs Locust and paho-mqtt from PyPI into a virtualenv (target/locust-venv, reused), runs
# scripts/locust/locustfile.py (one paho client per user, QoS 1, PUBLISH -> PUBACK latency
# reported to Locust) headless for DURATION_S, then mqblast with the same users, payload
# record, QoS and one message in flight per user (as paho's wait_for_publish), for the same
# time, and prints throughput, CPU per message (user+sys of the generator process / messages),
# mosquitto's CPU per message, and the ratios.
#
# Environment: USERS (default 100; one Locust process cannot hold more than ~340 paho clients,
# select() limit), DURATION_S (default 30), RUNS (default 1, medians when more), MQBLAST
# (default target/release/mqblast), VENV (default target/locust-venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

USERS="${USERS:-100}"
DURATION_S="${DURATION_S:-30}"
RUNS="${RUNS:-1}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
VENV="${VENV:-target/locust-venv}"

log() { echo "vs-locust: $*" >&2; }
for tool in jq bc /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { log "needs $tool"; exit 1; }
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MQBLAST" ] || { log "building $MQBLAST"; cargo build --release >&2; }
if [ ! -x "$VENV/bin/locust" ]; then
    log "installing Locust and paho-mqtt into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "locust>=2.20,<3" "paho-mqtt>=1.6,<2" >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-vs-locust.XXXXXX")
MOSQUITTO_PID=""
cleanup() {
    stop_mosquitto
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$(dirname "${BASH_SOURCE[0]}")/lib/mosquitto.sh"
start_mosquitto scripts/bench_vs_locust.sh

source scripts/lib/median.sh

# Runs "$@" under /usr/bin/time; sets CPU_S (user+sys of the process) and BROKER_S.
timed() {
    local b0
    b0=$(proc_cpu_s "$MOSQUITTO_PID")
    /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" > "$WORK/out" 2> "$WORK/err" || true
    BROKER_S=$(echo "$(proc_cpu_s "$MOSQUITTO_PID") - $b0" | bc)
    read -r user sys < <(tail -n 1 "$WORK/time")
    CPU_S=$(echo "$user + $sys" | bc)
}

for name in locust mqblast; do : > "$WORK/$name.msgs"; : > "$WORK/$name.cpu"; : > "$WORK/$name.broker"; done
for run in $(seq 1 "$RUNS"); do
    log "run $run: Locust + paho, $USERS users, ${DURATION_S} s"
    MQTT_HOST=127.0.0.1 MQTT_PORT=$PORT MQTT_TOPIC=bench/locust \
        timed "$VENV/bin/locust" -f scripts/locust/locustfile.py --headless --only-summary \
        -u "$USERS" -r "$USERS" -t "${DURATION_S}s" --csv "$WORK/locust" --loglevel WARNING
    msgs=$(awk -F, '$2 == "\"Aggregated\"" || $2 == "Aggregated" { gsub(/"/, "", $3); print $3 }' "$WORK/locust_stats.csv")
    fails=$(awk -F, '$2 == "\"Aggregated\"" || $2 == "Aggregated" { gsub(/"/, "", $4); print $4 }' "$WORK/locust_stats.csv")
    log "locust: $msgs messages ($fails failed), CPU $CPU_S s, mosquitto $BROKER_S s"
    echo "$msgs" >> "$WORK/locust.msgs"; echo "$CPU_S" >> "$WORK/locust.cpu"; echo "$BROKER_S" >> "$WORK/locust.broker"

    log "run $run: mqblast, $USERS users, ${DURATION_S} s, 1 in flight per user"
    timed "$MQBLAST" run -H "127.0.0.1:$PORT" -u "$USERS" -r "$USERS" -t "${DURATION_S}s" \
        --qos 1 --interval 0 --max-inflight 1 --topic bench/mqblast --only-summary --json "$WORK/mqblast.json"
    msgs=$(jq -r '.publish.ok' "$WORK/mqblast.json")
    log "mqblast: $msgs messages ($(jq -r '.publish.failures' "$WORK/mqblast.json") failed), CPU $CPU_S s, mosquitto $BROKER_S s"
    echo "$msgs" >> "$WORK/mqblast.msgs"; echo "$CPU_S" >> "$WORK/mqblast.cpu"; echo "$BROKER_S" >> "$WORK/mqblast.broker"
done

row() {
    local name=$1 msgs cpu broker
    msgs=$(median < "$WORK/$name.msgs"); cpu=$(median < "$WORK/$name.cpu"); broker=$(median < "$WORK/$name.broker")
    RATE[$name]=$(echo "scale=1; $msgs / $DURATION_S" | bc)
    PER[$name]=$(echo "scale=3; $cpu * 1000000 / $msgs" | bc)
    echo "| $name | $USERS | $msgs | ${RATE[$name]} | $cpu | ${PER[$name]} | $(echo "scale=3; $broker * 1000000 / $msgs" | bc) |"
}
declare -A RATE PER
echo "### mqblast vs Locust + paho-mqtt, QoS 1, same mosquitto, ${DURATION_S} s, medians of $RUNS run(s)"
echo
echo "| generator | users | messages acked | msg/s | generator CPU s | generator CPU us / msg | mosquitto CPU us / msg |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row locust
row mqblast
echo
echo "throughput ratio mqblast / locust: $(echo "scale=2; ${RATE[mqblast]} / ${RATE[locust]}" | bc)x; CPU per message ratio locust / mqblast: $(echo "scale=1; ${PER[locust]} / ${PER[mqblast]}" | bc)x"
