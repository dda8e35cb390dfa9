#!/usr/bin/env bash
# Soak test: a million QoS 1 messages through mosquitto with subscribers and the delivery
# audit, proving nothing was lost and that mqblast's memory stayed flat.
#
# Usage: scripts/soak.sh [MESSAGES] [PAYLOAD_BYTES]
#   MESSAGES       default 1000000
#   PAYLOAD_BYTES  default: the built-in data.json (~200 bytes); larger values pad the payload
#                  with a "pad" string member to about that many bytes
# Environment: SOAK_USERS (publishers, default 8), SOAK_SUBS (subscribers, default 2),
# SOAK_QOS (default 1), SOAK_INFLIGHT (default 64), MQBLAST (default target/release/mqblast,
# built with `cargo build --release` if missing), SOAK_EXTRA_ARGS (appended to mqblast).
#
# It starts mosquitto on a free loopback port with its queue limits lifted (the defaults drop
# messages for a subscriber that falls 1000 behind: that would be a broker-configuration
# finding, not a soak result), runs mqblast, samples mqblast's RSS every 0.5 s from
# /proc/PID/status, and prints the audit verdict, throughput, end-to-end percentiles and the
# RSS curve: after warm-up (the first sample 2 s in), max, and end. Exit code: mqblast's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MESSAGES="${1:-1000000}"
PAYLOAD_BYTES="${2:-}"
USERS="${SOAK_USERS:-8}"
SUBS="${SOAK_SUBS:-2}"
QOS="${SOAK_QOS:-1}"
INFLIGHT="${SOAK_INFLIGHT:-64}"
MQBLAST="${MQBLAST:-target/release/mqblast}"
read -r -a EXTRA <<< "${SOAK_EXTRA_ARGS:-}"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

log() { echo "soak: $*" >&2; }
command -v jq >/dev/null 2>&1 || { log "jq is needed (apt-get install jq)"; exit 2; }
[ -x "$MOSQUITTO" ] || { log "mosquitto is needed (apt-get install mosquitto)"; exit 2; }
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-soak.XXXXXX")
MOSQUITTO_PID=""
SAMPLER_PID=""
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    stop_mosquitto
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$(dirname "${BASH_SOURCE[0]}")/lib/mosquitto.sh"


# A payload of about PAYLOAD_BYTES: the built-in record plus a padding member.
payload_args() {
    [ -z "$PAYLOAD_BYTES" ] && return 0
    local pad=$((PAYLOAD_BYTES - 60))
    [ "$pad" -lt 1 ] && pad=1
    printf '{"ts":"{ts}","seq":"{seq}","pad":"%s"}\n' "$(head -c "$pad" /dev/zero | tr '\0' 'x')" \
        > "$WORK/payload.json"
    echo "--payload $WORK/payload.json"
}

CLK_TCK=$(getconf CLK_TCK)
# user+sys CPU clock ticks of a live process (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Every 0.5 s: "seconds_since_start RSS_kB mqblast_cpu_ticks mosquitto_cpu_ticks".
sample_rss() {
    local pid=$1 out=$2 start now rss
    start=$(date +%s.%N)
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        now=$(date +%s.%N)
        [ -n "$rss" ] && echo "$(echo "$now - $start" | bc) $rss $(cpu_ticks "$pid") $(cpu_ticks "$MOSQUITTO_PID")" >> "$out"
        sleep 0.5
    done
}

start_mosquitto scripts/soak.sh
log "mosquitto on 127.0.0.1:$PORT; $MESSAGES messages, QoS $QOS, $USERS publishers, $SUBS subscribers"
read -r -a PAYLOAD <<< "$(payload_args)"
started=$(date +%s.%N)
set +e
"$MQBLAST" -H "127.0.0.1:$PORT" -u "$USERS" -r 100000 --messages "$MESSAGES" --interval 0 \
    --qos "$QOS" --max-inflight "$INFLIGHT" --sub-users "$SUBS" --only-summary \
    --json "$WORK/soak.json" "${PAYLOAD[@]}" "${EXTRA[@]}" 2> "$WORK/mqblast.err" &
MQBLAST_PID=$!
sample_rss "$MQBLAST_PID" "$WORK/rss.txt" &
SAMPLER_PID=$!
wait "$MQBLAST_PID"
code=$?
set -e
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

if [ ! -s "$WORK/soak.json" ]; then
    cat "$WORK/mqblast.err" >&2
    log "mqblast wrote no summary (exit $code)"
    exit "$code"
fi
J="$WORK/soak.json"
ms() { jq -r "$1 / 1000" "$J"; }
payload_source=$(jq -r ".config.payload" "$J")
echo "== mqblast soak: $MESSAGES messages, QoS $QOS, $USERS publishers, $SUBS subscribers, payload $payload_source${PAYLOAD_BYTES:+ (~$PAYLOAD_BYTES bytes)}"
grep '^Delivery audit:' "$WORK/mqblast.err" || echo "Delivery audit: missing"
printf 'Throughput: %.0f msg/s published (%s s of run, %.1f s wall incl. start-up)\n' \
    "$(jq -r '.publish.ok / .duration_s' "$J")" "$(jq -r '.duration_s' "$J")" "$elapsed"
echo "Publish latency ms: p50 $(ms .publish.latency_us.p50)  p99 $(ms .publish.latency_us.p99)  max $(ms .publish.latency_us.max)"
echo "End-to-end ms:      p50 $(ms .e2e.latency_us.p50)  p90 $(ms .e2e.latency_us.p90)  p99 $(ms .e2e.latency_us.p99)  p99.9 $(ms .e2e.latency_us.p999)  max $(ms .e2e.latency_us.max)"
echo "Failures: $(jq -r '.failures' "$J")  errors: $(jq -c '.errors' "$J")"
if [ -s "$WORK/rss.txt" ]; then
    awk '
        { t[NR] = $1; r[NR] = $2; if ($2 > max) max = $2 }
        END {
            warm = 1; for (i = 1; i <= NR; i++) if (t[i] >= 2.0) { warm = i; break }
            end = NR; delta = (r[end] - r[warm]) * 100.0 / r[warm]
            printf "RSS MiB: after warm-up (%.1f s) %.1f, max %.1f, end (%.1f s) %.1f (%+.1f%% vs warm-up), %d samples\n",
                t[warm], r[warm] / 1024, max / 1024, t[end], r[end] / 1024, delta, NR
        }' "$WORK/rss.txt"
    awk -v hz="$CLK_TCK" 'END {
            printf "CPU over %.1f s: mqblast %.1f s (%.0f%% of one core), mosquitto %.1f s (%.0f%%), at the last sample\n",
                $1, $3 / hz, $3 / hz * 100 / $1, $4 / hz, $4 / hz * 100 / $1
        }' "$WORK/rss.txt"
    echo "RSS curve (s kB): $(awk '{printf "%.1f:%d ", $1, $2}' "$WORK/rss.txt")"
else
    echo "RSS: no samples (the run ended within 0.5 s)"
fi
exit "$code"
