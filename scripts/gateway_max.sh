#!/usr/bin/env bash
# The largest number of gateway devices one mqblast process drives at 1 point/s each: steps
# the device count up (STEPS), each step one bench_gateway.sh run per mode into the calibration
# sink (so the generator, not a broker on the same cores, is what runs out), and says whether
# the schedule held. A step held when, over the steady part of the run,
#   - the device points acknowledged per second are at least HELD_PCT (99) % of DEVICES (what
#     the schedule asks for at 1 point/s), and
#   - the schedule lag p99 (how late points left against their due time) is under one interval
#     (HELD_LAG_MS, 1000 ms): every point left before its device's next was due. A generator
#     that cannot keep up falls further behind every second, so its lag passes that within a
#     20 s run. (A batched gateway's devices are all due at once each interval, so its lag is
#     the time to write the whole burst; per-point devices are spread over the interval.)
# Prints one line per step and mode: devices, gateways, the bench_gateway.sh columns, held.
#
# Why it exists: issue 19 asks how many gateway devices one process carries; the answer is a
# number from a run, never an estimate (docs/BENCHMARKS.md, "Gateways").
#
# Environment: STEPS (device counts, default "20000 50000 100000 200000"), MODES ("per-point
# batched"), PER_GATEWAY (1000 devices per gateway), DURATION_S (20), QOS (1), TARGET (sink),
# HELD_PCT (99), HELD_LAG_MS (1000), MQBLAST (target/release/mqblast).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STEPS="${STEPS:-20000 50000 100000 200000}"
MODES="${MODES:-per-point batched}"
PER_GATEWAY="${PER_GATEWAY:-1000}"
DURATION_S="${DURATION_S:-20}"
HELD_PCT="${HELD_PCT:-99}"
HELD_LAG_MS="${HELD_LAG_MS:-1000}"
export QOS="${QOS:-1}" TARGET="${TARGET:-sink}" MQBLAST="${MQBLAST:-target/release/mqblast}"

echo "devices gateways mode cpu_us_pt msg_s pts_s target_us_pt rss_b_dev lag_p99_us pub_p99_us failures held"
for devices in $STEPS; do
    gateways=$(( devices / PER_GATEWAY ))
    for mode in $MODES; do
        row=$(DEVICES=$devices GATEWAYS=$gateways MODES=$mode RUNS=1 DURATION_S=$DURATION_S \
            CONNECT_RATE=2000 scripts/bench_gateway.sh 2>/dev/null | awk -v m="$mode" '$1 == m && $2 == 1' || true)
        # mode run cpu_us_pt msg_s pts_s target_us_pt rss_b_dev lag_p99_us pub_p99_us failures
        set -- $row
        [ $# -ge 10 ] || { echo "$devices $gateways $mode (no result) no"; continue; }
        held=$(awk -v pts="$5" -v lag="$8" -v d="$devices" -v pct="$HELD_PCT" -v lagms="$HELD_LAG_MS" \
            'BEGIN { print (pts >= d * pct / 100 && lag <= lagms * 1000) ? "yes" : "no" }')
        echo "$devices $gateways $mode $3 $4 $5 $6 $7 $8 $9 ${10} $held"
    done
done
