#!/usr/bin/env bash
# The capacity test: USERS devices (default 10,000) each publishing one message every INTERVAL
# (default 1s) at QOS (default 1) through a local mosquitto for DURATION_S seconds, RUNS times
# (default 3), optionally with a CPU hog pinned to one core beside it (NEIGHBOUR=on:
# `taskset -c 1 stress-ng --cpu 1`). Prints one line per run and the median of each column:
#
#   cpu_us_msg   mqblast CPU (user+sys) per message over the steady part (after the ramp + 2 s
#                to 1 s before the end), from /proc/PID/stat and the timeline's sent counts
#   sys_pct      the share of that CPU spent in the kernel (on loopback this includes the
#                broker's TCP receive path, which runs in the sender's system call)
#   rss_b_conn   mqblast RSS in the steady part / users (includes the process's own base)
#   ramp_s       time until every user was connected: the seconds before the first timeline
#                second that ends with all users connected, plus that second's connects /
#                CONNECT_RATE (assumes the pacing held in that last second)
#   connect_p99  connect latency p99, ms
#   lag p50/p99/max      schedule lag, us (how late the generator sent; the truth of its clock)
#   pub p50/p99/max      publish latency (PUBLISH -> ack), us
#   worst_s      the second with the largest schedule lag, and that lag in ms
#   floor_us_msg QoS 1: CPU per message of benches/floor/floor.c (the least a client can spend
#                on this workload: one send and one ack read per message) with the same users,
#                interval and payload size over as many steady seconds, run right after
#                each mqblast run on the same broker
#   x_floor      cpu_us_msg / floor_us_msg
#
# Why it exists: "how many devices at 1 msg/s can the broker take" is the test users run most,
# and on that path the generator's own lateness must be measured, not assumed. Figures in
# docs/BENCHMARKS.md ("Capacity") come from this script.
#
# Environment: USERS, INTERVAL, QOS, DURATION_S (60), RUNS (3), NEIGHBOUR (off|on), PIN (the
# --pin rule, default mqblast's), CONNECT_RATE (2000), BIND (127.0.0.2-127.0.0.9: more source
# ports than one address has), THREADS, MQBLAST (target/release/mqblast), EXTRA (more flags),
# FLOOR (on|off, default on: the floor runs of QoS 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

USERS="${USERS:-10000}"
INTERVAL="${INTERVAL:-1s}"
QOS="${QOS:-1}"
DURATION_S="${DURATION_S:-60}"
RUNS="${RUNS:-3}"
NEIGHBOUR="${NEIGHBOUR:-off}"
PIN="${PIN:-}"
CONNECT_RATE="${CONNECT_RATE:-2000}"
BIND="${BIND-127.0.0.2-127.0.0.9}"
THREADS="${THREADS:-}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
EXTRA="${EXTRA:-}"
FLOOR="${FLOOR:-on}"
[ "$QOS" = 1 ] || FLOOR=off

log() { echo "capacity: $*" >&2; }
command -v jq >/dev/null 2>&1 || { log "needs jq"; exit 1; }
command -v bc >/dev/null 2>&1 || { log "needs bc"; exit 1; }
if [ "$NEIGHBOUR" = on ] && ! command -v stress-ng >/dev/null 2>&1; then
    log "NEIGHBOUR=on needs stress-ng (apt-get install stress-ng)"; exit 1
fi
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi
MQBLAST=$(realpath "$MQBLAST")
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-capacity.XXXXXX")
HOG_PID=""
# shellcheck source=scripts/lib/mosquitto.sh
. scripts/lib/mosquitto.sh
stop_hog() {
    if [ -n "$HOG_PID" ]; then
        kill "$HOG_PID" 2>/dev/null || true
        wait "$HOG_PID" 2>/dev/null || true
        HOG_PID=""
    fi
}
cleanup() { stop_hog; stop_mosquitto; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# One run: prints the result line's fields (see the header) separated by spaces.
one_run() {
    local json=$WORK/run.json pid ramp_s steady_from steady_to cpu0 cpu1 sys0 sys1 rss args
    args=(-H "127.0.0.1:$PORT" -u "$USERS" -r "$CONNECT_RATE" --connect-rate "$CONNECT_RATE"
        --interval "$INTERVAL" --qos "$QOS" -t "${DURATION_S}s" --only-summary --json "$json")
    [ -n "$BIND" ] && args+=(--bind "$BIND")
    [ -n "$THREADS" ] && args+=(--threads "$THREADS")
    [ -n "$PIN" ] && args+=(--pin "$PIN")
    # shellcheck disable=SC2206
    [ -n "$EXTRA" ] && args+=($EXTRA)
    # From the scratch folder, so no config.toml in the caller's folder changes the plan.
    (cd "$WORK" && exec "$MQBLAST" "${args[@]}") > "$WORK/run.log" 2>&1 &
    pid=$!
    ramp_s=$(( USERS / CONNECT_RATE + 1 ))
    steady_from=$(( ramp_s + 2 ))
    steady_to=$(( DURATION_S - 1 ))
    sleep "$steady_from"
    cpu0=$(proc_cpu_s "$pid")
    sys0=$(proc_sys_s "$pid")
    rss=$(rss_bytes "$pid")
    sleep $(( steady_to - steady_from ))
    cpu1=$(proc_cpu_s "$pid")
    sys1=$(proc_sys_s "$pid")
    wait "$pid" || true
    jq -r --argjson from "$steady_from" --argjson to "$steady_to" \
        --argjson users "$USERS" --argjson rate "$CONNECT_RATE" \
        --arg cpu "$(echo "$cpu1 - $cpu0" | bc)" --arg sys "$(echo "$sys1 - $sys0" | bc)" \
        --argjson rss "$rss" '
        def ms: . / 1000 | . * 100 | round / 100;
        (.timeline | map(select(.second > $from and .second <= $to)) | map(.sent) | add) as $sent
        | (.timeline | map(select(.connected_users >= $users)) | first) as $ramp_end
        | (.timeline | max_by(.lag_max_us)) as $worst
        | [ (($cpu | tonumber) * 1e6 / ($sent | if . == 0 then 1 else . end) | . * 100 | round / 100),
            (if ($cpu | tonumber) == 0 then 0 else ($sys | tonumber) * 100 / ($cpu | tonumber) | round end),
            ($rss / $users | round),
            (if $ramp_end == null then "never"
             else (($ramp_end.second - 1) + ($ramp_end.connect_ok / $rate)) * 100 | round / 100 end),
            (.connect.latency_us.p99 | ms),
            .schedule_lag_us.p50, .schedule_lag_us.p99, .schedule_lag_us.max,
            .publish.latency_us.p50, .publish.latency_us.p99, .publish.latency_us.max,
            "\($worst.second)s:\($worst.lag_max_us | ms)ms",
            (.errors | to_entries | map(.value) | add // 0) ]
        | map(tostring) | join(" ")' "$json"
}

source scripts/lib/median.sh
source scripts/lib/floor.sh

# INTERVAL in whole milliseconds, for the floor program ("1s", "500ms", "1.5s").
interval_ms() {
    case "$1" in
        *ms) echo "${1%ms}" ;;
        *s) awk -v s="${1%s}" 'BEGIN { printf "%d\n", s * 1000 }' ;;
        *) log "INTERVAL $1: give a unit (ms or s) for the floor run"; exit 1 ;;
    esac
}

# One floor run over as many seconds as mqblast's steady part: prints its CPU us per message
# over its steady part (all connections up), or "-".
floor_run() {
    local seconds=$(( DURATION_S - 1 - (USERS / CONNECT_RATE + 1 + 2) )) line
    [ "$seconds" -ge 3 ] || seconds=3
    line=$("$FLOOR_DIR/floor" 127.0.0.1 "$PORT" "$USERS" "$(interval_ms "$INTERVAL")" "$seconds" "$PAYLOAD_BYTES" 2>&1) || true
    log "floor: $line"
    echo "$line" | awk '{ for (i = 1; i < NF; i++) if ($i == "us/msg") { print $(i + 1); exit } }' | grep . || echo -
}

if [ "$FLOOR" = on ]; then
    build_floors
    PAYLOAD_BYTES=$(payload_bytes data.json)
fi

start_mosquitto capacity.sh
if [ "$NEIGHBOUR" = on ]; then
    taskset -c 1 stress-ng --cpu 1 --timeout $(( RUNS * (DURATION_S + 10) + 30 )) > /dev/null 2>&1 &
    HOG_PID=$!
fi
log "$USERS users x 1/$INTERVAL, QoS $QOS, ${DURATION_S}s, neighbour $NEIGHBOUR, pin ${PIN:-default}, $RUNS runs"
header="run cpu_us_msg sys_pct rss_b_conn ramp_s connect_p99_ms lag_p50_us lag_p99_us lag_max_us pub_p50_us pub_p99_us pub_max_us worst_second failures floor_us_msg x_floor"
echo "$header"
: > "$WORK/rows"
for run in $(seq 1 "$RUNS"); do
    row=$(one_run)
    floor_us=-
    if [ "$FLOOR" = on ]; then
        sleep 2
        floor_us=$(floor_run)
    fi
    echo "$run $row $floor_us $(ratio "${row%% *}" "$floor_us")" | tee -a "$WORK/rows"
    sleep 2
done
printf "median"
for col in $(seq 2 16); do
    if [ "$col" -eq 13 ]; then printf " -"; continue; fi
    if [ "$col" -eq 16 ]; then
        # The ratio of the medians, not the median of the ratios.
        printf " %s" "$(ratio "$(awk '{ print $2 }' "$WORK/rows" | median)" "$(awk '{ print $15 }' "$WORK/rows" | grep -v '^-$' | median)")"
        continue
    fi
    printf " %s" "$(awk -v c="$col" '{ print $c }' "$WORK/rows" | grep -v '^-$' | median)"
done
echo
