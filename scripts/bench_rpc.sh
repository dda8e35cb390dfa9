#!/usr/bin/env bash
# RPC round trip against the tests' ThingsBoard-like platform (tests/platform/tb_platform.py):
# client-side RPC (an `rpc-call` stream) answered after a known delay, against the same with
# no delay, p50 and p99 of the rpc-call row (scheduled send -> answer).
#
# Why it exists: a request's time should read as the platform's delay plus the floor the
# path costs without it (mqblast, mosquitto and the Python platform between them); if the
# 20 ms run does not read 20 ms above the 0 ms run, something adds time that the delay does
# not explain. The two delays are interleaved run by run (0, 20, 0, 20, ...), so a noisy
# neighbour hits both alike; each row is one run, then the medians.
#
# One mosquitto per device (ThingsBoard's `me` is per connection; see the platform's doc).
# Prints a Markdown table on stdout (progress on stderr).
#
# Environment: RUNS (default 3), DEVICES (default 4), RPC_INTERVAL (default 100ms, per
# device), RUN_TIME (default 20s), DELAYS (default "0 20", milliseconds), PYTHON (default
# the tests' venv, $MQBLAST_LOCUST_VENV/bin/python or target/locust-venv/bin/python),
# MQBLAST (default target/release/mqblast, built if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-3}"
DEVICES="${DEVICES:-4}"
RPC_INTERVAL="${RPC_INTERVAL:-100ms}"
RUN_TIME="${RUN_TIME:-20s}"
DELAYS="${DELAYS:-0 20}"
VENV="${MQBLAST_LOCUST_VENV:-target/locust-venv}"
PYTHON="${PYTHON:-$VENV/bin/python}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

log() { echo "bench_rpc: $*" >&2; }
for tool in jq; do
    command -v "$tool" >/dev/null 2>&1 || { log "needs $tool (apt-get install $tool)"; exit 1; }
done
[ -x "$PYTHON" ] || { log "no Python with paho-mqtt at $PYTHON (scripts/test.sh makes the venv)"; exit 1; }
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-bench-rpc.XXXXXX")
BROKER_PIDS=()
PLATFORM_PID=""
source "$(dirname "${BASH_SOURCE[0]}")/lib/mosquitto.sh"
cleanup() {
    [ -n "$PLATFORM_PID" ] && kill "$PLATFORM_PID" 2>/dev/null || true
    for pid in "${BROKER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One broker per device; HOSTS for mqblast's -H, PORTS for the platform.
HOSTS=""
PORTS=""
for d in $(seq 1 "$DEVICES"); do
    mkdir -p "$WORK/broker$d"
    WORK_SAVED=$WORK
    WORK="$WORK/broker$d"
    start_mosquitto "bench_rpc.sh"
    WORK=$WORK_SAVED
    BROKER_PIDS+=("$MOSQUITTO_PID")
    MOSQUITTO_PID=""
    HOSTS="${HOSTS:+$HOSTS,}127.0.0.1:$PORT"
    PORTS="${PORTS:+$PORTS,}$PORT"
done
log "$DEVICES brokers: $PORTS"

# run DELAY_MS RUN: one mqblast run against a platform answering after DELAY_MS; prints
# "requests p50_ms p99_ms".
run() {
    local delay=$1 n=$2 ready="$WORK/ready.$1.$2" json="$WORK/run.$1.$2.json"
    "$PYTHON" tests/platform/tb_platform.py --ports "$PORTS" --rpc-delay-ms "$delay" \
        --ready-file "$ready" --run-for 3600 > /dev/null 2> "$WORK/platform.log" &
    PLATFORM_PID=$!
    for _ in $(seq 1 300); do [ -e "$ready" ] && break; sleep 0.1; done
    [ -e "$ready" ] || { log "platform not ready: $(tail -n 3 "$WORK/platform.log")"; exit 1; }
    "$MQBLAST" -H "$HOSTS" -u "$DEVICES" -r 1000 -t "$RUN_TIME" --only-summary \
        --stream "rpc-call,interval=$RPC_INTERVAL,qos=1" --json "$json" > /dev/null 2>&1 || true
    kill "$PLATFORM_PID" 2>/dev/null || true
    wait "$PLATFORM_PID" 2>/dev/null || true
    PLATFORM_PID=""
    jq -r '.streams[] | select(.name == "rpc-call")
           | "\(.ok) \(.failures) \(.latency_us.p50 / 1000) \(.latency_us.p99 / 1000)"' "$json"
}

declare -A P50 P99
echo "#### RPC round trip: $DEVICES devices, one rpc-call every $RPC_INTERVAL each, $RUN_TIME per run, through mosquitto and tb_platform.py"
echo
echo "| run | platform delay | answered | failed | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
for n in $(seq 1 "$RUNS"); do
    for delay in $DELAYS; do
        log "run $n, delay ${delay} ms"
        read -r ok failed p50 p99 < <(run "$delay" "$n")
        printf '| %s | %s ms | %s | %s | %.2f | %.2f |\n' "$n" "$delay" "$ok" "$failed" "$p50" "$p99"
        P50[$delay]="${P50[$delay]:-} $p50"
        P99[$delay]="${P99[$delay]:-} $p99"
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| platform delay | median p50 ms | median p99 ms |"
echo "|---|---|---|"
for delay in $DELAYS; do
    printf '| %s ms | %.2f | %.2f |\n' "$delay" \
        "$(echo "${P50[$delay]}" | median)" "$(echo "${P99[$delay]}" | median)"
done
