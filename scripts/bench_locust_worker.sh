#!/usr/bin/env bash
# One mqblast worker vs one Python Locust worker (paho-mqtt, the old script's shape:
# scripts/locust/locustfile.py) under the same Locust master and the same mosquitto, QoS 1, one
# message in flight per user. Prints a Markdown table for docs/BENCHMARKS.md: messages in the
# master's CSV, msg/s over the publishing time, worker CPU per message (user+sys of the worker
# process), medians of RUNS runs; then, with LADDER="100 300 1000 ...", the failures at each
# user count (one run each), to find the largest count each worker holds.
#
# The master quits its workers at -t; an mqblast worker stops publishing 3 s before that so
# the master's report holds every message, so its msg/s is over DURATION_S - 3 s.
#
# Env: RUNS (3), USERS (50), DURATION_S (20), LADDER (""), MQBLAST (target/release/mqblast),
# VENV (target/locust-venv, made by scripts/test.sh or here).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-3}"; USERS="${USERS:-50}"; DURATION_S="${DURATION_S:-20}"; LADDER="${LADDER:-}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
VENV="${VENV:-target/locust-venv}"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
log() { echo "bench-locust-worker: $*" >&2; }
[ -x "$MQBLAST" ] || cargo build --release >&2
if [ ! -x "$VENV/bin/locust" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "locust==2.47.0" "paho-mqtt>=1.6,<2" >&2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-locust-worker.XXXXXX")
MOSQUITTO_PID=""
cleanup() { stop_mosquitto; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$(dirname "${BASH_SOURCE[0]}")/lib/mosquitto.sh"
start_mosquitto scripts/bench_locust_worker.sh

source scripts/lib/median.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run WORKER USERS: one test under a fresh master; sets MSGS, FAILS, CPU_S.
run() {
    local kind=$1 users=$2 mport
    mport=$(free_port)
    MQTT_HOST=127.0.0.1 MQTT_PORT=$PORT MQTT_TOPIC=bench/locust \
        "$VENV/bin/locust" -f scripts/locust/locustfile.py --master --headless --only-summary \
        --master-bind-host 127.0.0.1 --master-bind-port "$mport" --expect-workers 1 \
        -u "$users" -r "$users" -t "${DURATION_S}s" --csv "$WORK/run" --loglevel WARNING \
        > "$WORK/master.out" 2>&1 &
    local master=$!
    if [ "$kind" = locust ]; then
        MQTT_HOST=127.0.0.1 MQTT_PORT=$PORT MQTT_TOPIC=bench/locust \
            /usr/bin/time -f "%U %S" -o "$WORK/time" "$VENV/bin/locust" -f scripts/locust/locustfile.py \
            --worker --master-host 127.0.0.1 --master-port "$mport" --loglevel WARNING > "$WORK/worker.out" 2>&1 || true
    else
        /usr/bin/time -f "%U %S" -o "$WORK/time" "$MQBLAST" --worker --master-host 127.0.0.1 \
            --master-port "$mport" -H "127.0.0.1:$PORT" --topic bench/mqblast --interval 0 \
            --max-inflight 1 --only-summary > "$WORK/worker.out" 2>&1 || true
    fi
    wait "$master" || true
    read -r user sys < <(tail -n 1 "$WORK/time")
    CPU_S=$(echo "$user + $sys" | bc)
    MSGS=$(awk -F, '$2 ~ /^"?publish/ { gsub(/"/, "", $3); print $3 }' "$WORK/run_stats.csv")
    FAILS=$(awk -F, '$2 ~ /^"?publish/ { gsub(/"/, "", $4); print $4 }' "$WORK/run_stats.csv")
    MSGS=${MSGS:-0}; FAILS=${FAILS:-0}
}

for kind in locust mqblast; do : > "$WORK/$kind.msgs"; : > "$WORK/$kind.cpu"; done
for i in $(seq 1 "$RUNS"); do
    for kind in locust mqblast; do
        run "$kind" "$USERS"
        log "run $i $kind: $MSGS messages ($FAILS failed), worker CPU $CPU_S s"
        echo "$MSGS" >> "$WORK/$kind.msgs"; echo "$CPU_S" >> "$WORK/$kind.cpu"
    done
done
echo "### One worker under a Locust master: Python (paho) vs mqblast, QoS 1, $USERS users, -t ${DURATION_S}s, medians of $RUNS"
echo
echo "| worker | messages in the master's CSV | msg/s | worker CPU s | worker CPU us / msg |"
echo "|---|---:|---:|---:|---:|"
for kind in locust mqblast; do
    msgs=$(median < "$WORK/$kind.msgs"); cpu=$(median < "$WORK/$kind.cpu")
    secs=$DURATION_S; [ "$kind" = mqblast ] && secs=$((DURATION_S - 3))
    echo "| $kind | $msgs | $(echo "scale=1; $msgs / $secs" | bc) | $cpu | $(echo "scale=2; $cpu * 1000000 / ($msgs + 1)" | bc) |"
done
if [ -n "$LADDER" ]; then
    echo
    echo "| users | locust: messages / failed | mqblast: messages / failed |"
    echo "|---:|---:|---:|"
    for users in $LADDER; do
        run locust "$users"; l="$MSGS / $FAILS"
        run mqblast "$users"; m="$MSGS / $FAILS"
        echo "| $users | $l | $m |"
    done
fi
