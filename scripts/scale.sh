#!/usr/bin/env bash
# Scale run: USERS (default 19,000) connections from one mqblast process, each publishing one
# QoS 1 message every 10 s, held for HOLD_S seconds (default 120), against the calibration sink
# and against mosquitto, on loopback. Prints, per target: failures (connect, publish, by
# reason), the most connections held at once, mqblast's RSS and RSS per connection, and CPU.
#
# Why it exists: "19,000 devices from one process, under 2 KiB each" is a claim; this script
# is how it is checked and how the figures in docs/BENCHMARKS.md were taken.
#
# RSS per connection = (RSS of the USERS run - RSS of a BASE_USERS run) / (USERS - BASE_USERS),
# both sampled from /proc/PID/status (VmRSS) once every connection is up. It counts everything
# mqblast keeps per client (frames, in-flight table, buffers); socket buffers live in the
# kernel and are not in RSS.
#
# Limits: every connection is one descriptor in mqblast and one in the target (the hard
# open-files limit here is 20,000 per process, so 19,000 fits in each). With the embedded
# broker (no -H) both ends are in one process, which halves the budget: ~9,900 users.
# mosquitto is started with `max_connections -1` and its own raised limit (prlimit/ulimit).
# One (source, destination) pair has ~28,000 ephemeral ports, so BIND (default
# 127.0.0.2-127.0.0.9) spreads the connections over several loopback source addresses.
#
# Environment: USERS, BASE_USERS (100), HOLD_S (120), CONNECT_RATE (2000/s), INTERVAL (10s),
# TARGETS ("sink mosquitto"), BIND ("" to let the OS choose), THREADS (mqblast workers, default
# all cores), MQBLAST (default target/release/mqblast).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

USERS="${USERS:-19000}"
BASE_USERS="${BASE_USERS:-100}"
HOLD_S="${HOLD_S:-120}"
CONNECT_RATE="${CONNECT_RATE:-2000}"
INTERVAL="${INTERVAL:-10s}"
TARGETS="${TARGETS:-sink mosquitto}"
BIND="${BIND-127.0.0.2-127.0.0.9}"
THREADS="${THREADS:-}"
MQBLAST="${MQBLAST:-target/release/mqblast}"

log() { echo "scale: $*" >&2; }
command -v jq >/dev/null 2>&1 || { log "needs jq"; exit 1; }
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-scale.XXXXXX")
TARGET_PID=""
stop_target() {
    if [ -n "$TARGET_PID" ]; then
        kill "$TARGET_PID" 2>/dev/null || true
        wait "$TARGET_PID" 2>/dev/null || true
        TARGET_PID=""
    fi
}
cleanup() { stop_target; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" || { echo "$port"; return; }
    done
}
wait_port() {
    local i
    for i in $(seq 1 100); do
        port_in_use "$1" && return 0
        sleep 0.05
    done
    log "nothing listens on port $1"; exit 1
}

CLK_TCK=$(getconf CLK_TCK)
# user+sys CPU seconds of a live process (fields 14 and 15 of /proc/PID/stat).
proc_cpu_s() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo ""; return; }
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "scale=2; (${12} + ${13}) / $CLK_TCK" | bc
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo ""; }

start_target() {
    PORT=$(free_port)
    case "$1" in
        sink)
            "$MQBLAST" sink --listen "127.0.0.1:$PORT" --quiet > "$WORK/target.log" 2>&1 &
            TARGET_PID=$! ;;
        mosquitto)
            cat > "$WORK/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
max_inflight_messages 0
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
CONF
            # mosquitto does not raise its own soft limit: give it the hard one.
            (ulimit -n "$(ulimit -Hn)"; exec "$MOSQUITTO" -c "$WORK/mosquitto.conf") \
                > "$WORK/target.log" 2>&1 &
            TARGET_PID=$! ;;
        *) log "unknown target $1"; exit 1 ;;
    esac
    wait_port "$PORT"
}

# One mqblast run of $1 users against the running target, held HOLD_S seconds once every
# connection is up. Sets RSS_KIB, CPU_S, JSON, UP_S (seconds until all were connected).
run_mqblast() {
    local users=$1 ramp_s run_s pid t0 connected
    ramp_s=$(( users / CONNECT_RATE + 5 ))
    run_s=$(( ramp_s + HOLD_S ))
    JSON="$WORK/run-$users.json"
    local args=(run -H "127.0.0.1:$PORT" -u "$users" -r "$CONNECT_RATE" --connect-rate "$CONNECT_RATE"
        --interval "$INTERVAL" --qos 1 -t "${run_s}s" --only-summary --json "$JSON")
    [ -n "$BIND" ] && args+=(--bind "$BIND")
    [ -n "$THREADS" ] && args+=(--threads "$THREADS")
    t0=$(date +%s)
    "$MQBLAST" "${args[@]}" > "$WORK/mqblast.out" 2> "$WORK/mqblast.err" &
    pid=$!
    # Sample RSS once the ramp is over, half-way through the hold, and keep the largest.
    RSS_KIB=0; CPU_S=0
    local sample_at=$(( ramp_s + HOLD_S / 2 ))
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        local now=$(( $(date +%s) - t0 )) rss cpu
        rss=$(rss_kib "$pid"); cpu=$(proc_cpu_s "$pid")
        [ -n "$cpu" ] && CPU_S=$cpu
        if [ -n "$rss" ] && [ "$now" -ge "$ramp_s" ] && [ "$now" -le "$sample_at" ] && [ "$rss" -gt "$RSS_KIB" ]; then
            RSS_KIB=$rss
        fi
    done
    wait "$pid" || true
}

echo "### $USERS connections, one QoS 1 message every $INTERVAL each, held ${HOLD_S} s"
echo
echo "$(nproc) cores, $("$MQBLAST" --version 2>/dev/null || echo mqblast), connect rate ${CONNECT_RATE}/s, bind '${BIND:-OS choice}', $(date -u +%Y-%m-%d)"
echo
echo "| target | users | max connected | connect failures | publish ok | publish failures | errors | mqblast RSS MiB | RSS per connection (bytes) | mqblast CPU s | CPU us per msg | target CPU s |"
echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
for target in $TARGETS; do
    log "$target: baseline run of $BASE_USERS users"
    start_target "$target"
    HOLD_SAVE=$HOLD_S; HOLD_S=10
    run_mqblast "$BASE_USERS"
    HOLD_S=$HOLD_SAVE
    base_rss=$RSS_KIB
    stop_target
    log "$target: $USERS users, hold ${HOLD_S} s"
    start_target "$target"
    target_cpu0=$(proc_cpu_s "$TARGET_PID")
    run_mqblast "$USERS"
    target_cpu1=$(proc_cpu_s "$TARGET_PID")
    stop_target
    if [ ! -s "$JSON" ]; then
        log "$target: no JSON summary"; tail -n 20 "$WORK/mqblast.err" >&2; continue
    fi
    ok=$(jq -r '.publish.ok' "$JSON")
    per_conn=$(( (RSS_KIB - base_rss) * 1024 / (USERS - BASE_USERS) ))
    cpu_per_msg=$(echo "scale=1; $CPU_S * 1000000 / ($ok + ($ok == 0))" | bc)
    echo "| $target | $USERS | $(jq -r '.max_connected_users' "$JSON") | $(jq -r '.connect.failures' "$JSON") | $ok | $(jq -r '.publish.failures' "$JSON") | $(jq -c '.errors' "$JSON") | $(( RSS_KIB / 1024 )) | $per_conn | $CPU_S | $cpu_per_msg | $(echo "$target_cpu1 - $target_cpu0" | bc) |"
done
