#!/usr/bin/env bash
# What TLS and WebSocket cost the generator, measured side by side in one run.
#
# Why it exists: "TLS adds at most 1 us per message" and "an idle TLS connection holds at most
# 16 KiB" are claims; this script turns them into numbers. It starts one mosquitto with a TCP,
# a TLS, a WebSocket and a WebSocket-over-TLS listener (certificates made here with openssl)
# and three calibration sinks (plain, `--tls-cert` and `--websocket`), then prints Markdown tables of medians:
#
#   1. through mosquitto, QoS 1, BENCH_USERS users, no rate limit: msg/s, mqblast CPU us per
#      message and mosquitto CPU us per message, over tcp, tls, ws and wss (runs interleaved
#      transport by transport, so drift on a shared machine hits all of them alike);
#   2. into the sink, QoS 1: mqblast CPU us per message over tcp, tls and ws (`--websocket`),
#      and what TLS adds;
#   3. `mqblast conn` TLS storm against mosquitto: STORM_USERS users at STORM_RATE/s, each
#      reconnecting every STORM_CHURN (--churn) so full and resumed handshakes are both timed:
#      peak CONNACKs per second, TLS handshake p50/p99 full vs resumed, and their counts;
#   4. RSS per idle connection: `mqblast conn` holding IDLE_USERS connections over tcp, tls and
#      wss; (VmRSS at the end of the hold - VmRSS of a 10-user run) / (IDLE_USERS - 10).
#
# Environment: RUNS (3), BENCH_USERS (10), BENCH_MESSAGES (200000, through mosquitto),
# SINK_MESSAGES (1000000), STORM_USERS (2000), STORM_RATE (1000), STORM_CHURN (3s),
# IDLE_USERS (10000; wss: IDLE_WSS_USERS, 4000), MQBLAST (target/release/mqblast, built if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-3}"
USERS="${BENCH_USERS:-10}"
MESSAGES="${BENCH_MESSAGES:-200000}"
SINK_MESSAGES="${SINK_MESSAGES:-1000000}"
STORM_USERS="${STORM_USERS:-2000}"
STORM_RATE="${STORM_RATE:-1000}"
STORM_CHURN="${STORM_CHURN:-3s}"
IDLE_USERS="${IDLE_USERS:-10000}"
# mosquitto 2.0.11's WebSocket listener (libwebsockets) left 1,853 of 10,000 wss upgrades
# unanswered within the timeout at 1,000 connects/s here, so wss holds fewer.
IDLE_WSS_USERS="${IDLE_WSS_USERS:-4000}"
MQBLAST="${MQBLAST:-target/release/mqblast}"

log() { echo "bench_tls: $*" >&2; }
# 10,000 idle connections need 10,000 sockets in mqblast and as many in mosquitto (each its
# own process, each under this limit): raise the soft limit to the hard one for both.
ulimit -n "$(ulimit -Hn)"

install_packages() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" ||
        { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "$@"; }
}
for tool in jq bc openssl; do command -v "$tool" >/dev/null 2>&1 || install_packages "$tool"; done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { install_packages mosquitto; MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto); }
if [ ! -x "$MQBLAST" ]; then
    log "building $MQBLAST (cargo build --release)"
    cargo build --release >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqblast-bench-tls.XXXXXX")
chmod 755 "$WORK" # mosquitto drops root privileges and must still read its certificates
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports below the kernel's ephemeral range (32768 and up by default): the idle phase leaves
# up to 10,000 client ports in TIME_WAIT there, and a run started within a minute of another
# could pick one of them and see mosquitto fail to bind ("nothing listens on").
free_port() {
    local port
    while :; do
        port=$((10000 + RANDOM % 22000))
        port_in_use "$port" || { echo "$port"; return; }
    done
}
wait_port() {
    local i
    for i in $(seq 1 200); do port_in_use "$1" && return 0; sleep 0.05; done
    log "nothing listens on $1"; exit 1
}
proc_cpu_s() {
    local stat
    stat=$(cat "/proc/$1/stat"); stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "scale=6; (${12} + ${13}) / $(getconf CLK_TCK)" | bc
}
to_s() { local v=${1%s}; echo "${v%%m*} * 60 + ${v#*m}"; }
children_cpu() {
    local user sys
    times > "$WORK/times"
    { read -r _; read -r user sys; } < "$WORK/times"
    CHILDREN_CPU_S=$(echo "scale=6; $(to_s "$user") + $(to_s "$sys")" | bc)
}
source scripts/lib/median.sh

# ---- certificates: a CA and a v3 server certificate for localhost / 127.0.0.1 ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/server.pem" 2>/dev/null
chmod 644 "$WORK"/*.key

# ---- targets ----
declare -A PORT
for t in tcp tls ws wss; do PORT[$t]=$(free_port); done
cert_lines="cafile $WORK/ca.pem
certfile $WORK/server.pem
keyfile $WORK/server.key"
cat > "$WORK/mosquitto.conf" <<CONF
# generated by scripts/bench_tls.sh
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
max_queued_bytes 0
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
listener ${PORT[tcp]} 127.0.0.1
listener ${PORT[tls]} 127.0.0.1
$cert_lines
listener ${PORT[ws]} 127.0.0.1
protocol websockets
listener ${PORT[wss]} 127.0.0.1
protocol websockets
$cert_lines
CONF
"$MOSQUITTO" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
MOSQUITTO_PID=$!
PIDS+=("$MOSQUITTO_PID")
for t in tcp tls ws wss; do wait_port "${PORT[$t]}"; done
SINK_PORT=$(free_port)
"$MQBLAST" sink --listen "127.0.0.1:$SINK_PORT" --threads 1 --quiet > "$WORK/sink.log" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
SINK_TLS_PORT=$(free_port)
"$MQBLAST" sink --listen "127.0.0.1:$SINK_TLS_PORT" --threads 1 --quiet \
    --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key" > "$WORK/sink-tls.log" 2>&1 &
SINK_TLS_PID=$!
PIDS+=("$SINK_TLS_PID")
SINK_WS_PORT=$(free_port)
"$MQBLAST" sink --listen "127.0.0.1:$SINK_WS_PORT" --threads 1 --quiet --websocket \
    > "$WORK/sink-ws.log" 2>&1 &
SINK_WS_PID=$!
PIDS+=("$SINK_WS_PID")
wait_port "$SINK_PORT"; wait_port "$SINK_TLS_PORT"; wait_port "$SINK_WS_PORT"
log "mosquitto pid $MOSQUITTO_PID (tcp ${PORT[tcp]}, tls ${PORT[tls]}, ws ${PORT[ws]}, wss ${PORT[wss]}), sinks $SINK_PORT and $SINK_TLS_PORT (tls)"

# --cafile for TLS URLs only (a TLS flag without a TLS host is refused).
tls_args() {
    case "$1" in mqtts://*|wss://*) echo "--cafile $WORK/ca.pem" ;; esac
}

url_of() {
    case "$1" in
        tcp) echo "mqtt://127.0.0.1:$2" ;;
        tls) echo "mqtts://localhost:$2" ;;
        ws) echo "ws://127.0.0.1:$2/mqtt" ;;
        wss) echo "wss://localhost:$2/mqtt" ;;
    esac
}

# One publish run; appends msg/s, mqblast us/msg, target us/msg to $WORK/<key>.{rps,gen,target}.
publish_run() {
    local key=$1 url=$2 target_pid=$3 messages=$4 json="$WORK/run.json" rc=0
    rm -f "$json"
    local target_before gen_before
    target_before=$(proc_cpu_s "$target_pid")
    children_cpu; gen_before=$CHILDREN_CPU_S
    # shellcheck disable=SC2046
    "$MQBLAST" run -H "$url" $(tls_args "$url") --headless --only-summary -u "$USERS" \
        -r 100000 --messages "$messages" --qos 1 --interval 0 --topic bench/tls -t 30m \
        --json "$json" > "$WORK/stdout" 2> "$WORK/stderr" || rc=$?
    children_cpu
    if [ "$rc" -gt 1 ] || [ ! -s "$json" ]; then
        log "$key: mqblast exited $rc"; tail -n 20 "$WORK/stderr" >&2; exit 1
    fi
    local requests failures
    requests=$(jq -r '.publish.requests' "$json"); failures=$(jq -r '.publish.failures' "$json")
    [ "$failures" = 0 ] || log "$key: $failures failures"
    jq -r '.publish.rps' "$json" >> "$WORK/$key.rps"
    echo "scale=4; 1000000 * ($CHILDREN_CPU_S - $gen_before) / $requests" | bc >> "$WORK/$key.gen"
    echo "scale=4; 1000000 * ($(proc_cpu_s "$target_pid") - $target_before) / $requests" | bc >> "$WORK/$key.target"
    log "$key: $(tail -n1 "$WORK/$key.rps") msg/s, mqblast $(tail -n1 "$WORK/$key.gen") us/msg"
}

# ---- 1. through mosquitto ----
for run in $(seq 1 "$RUNS"); do
    for t in tcp tls ws wss; do
        publish_run "mosq-$t" "$(url_of "$t" "${PORT[$t]}")" "$MOSQUITTO_PID" "$MESSAGES"
    done
done
# ---- 2. into the sink ----
for run in $(seq 1 "$RUNS"); do
    publish_run sink-tcp "$(url_of tcp "$SINK_PORT")" "$SINK_PID" "$SINK_MESSAGES"
    publish_run sink-tls "$(url_of tls "$SINK_TLS_PORT")" "$SINK_TLS_PID" "$SINK_MESSAGES"
    publish_run sink-ws "$(url_of ws "$SINK_WS_PORT")" "$SINK_WS_PID" "$SINK_MESSAGES"
done

# ---- 3. TLS storm ----
for run in $(seq 1 "$RUNS"); do
    json="$WORK/storm.json"; rm -f "$json"
    "$MQBLAST" conn -H "$(url_of tls "${PORT[tls]}")" --cafile "$WORK/ca.pem" --headless \
        --only-summary -u "$STORM_USERS" -r "$STORM_RATE" --hold 5s --churn "$STORM_CHURN" \
        --json "$json" > "$WORK/stdout" 2> "$WORK/stderr" || true
    [ -s "$json" ] || { log "storm: no JSON"; tail -n 20 "$WORK/stderr" >&2; exit 1; }
    jq -r '[.timeline[].connect_ok] | max' "$json" >> "$WORK/storm.peak"
    for kind in full resumed; do
        jq -r ".connect_tls_$kind.latency_us.p50 // \"n/a\"" "$json" >> "$WORK/storm.$kind.p50"
        jq -r ".connect_tls_$kind.latency_us.p99 // \"n/a\"" "$json" >> "$WORK/storm.$kind.p99"
        jq -r ".connect_tls_$kind.ok // 0" "$json" >> "$WORK/storm.$kind.count"
    done
    jq -r '.connect.failures' "$json" >> "$WORK/storm.failures"
    log "storm run $run: peak $(tail -n1 "$WORK/storm.peak") CONNACK/s, full p50 $(tail -n1 "$WORK/storm.full.p50") us, resumed p50 $(tail -n1 "$WORK/storm.resumed.p50") us"
done

# ---- 4. RSS per idle connection ----
# Hold `users` connections over transport $1; print VmRSS (KiB) once every connection is up
# (as many sockets open as users) and has been idle for 2 s. The hold is long enough for a
# slow machine to finish the handshakes; the sample does not wait for its end.
idle_rss_kib() {
    local t=$1 users=$2 pid rss i
    local hold_s=$(( 10 + users / 100 ))
    local url
    url=$(url_of "$t" "${PORT[$t]}")
    # shellcheck disable=SC2046
    "$MQBLAST" conn -H "$url" $(tls_args "$url") --headless \
        --only-summary -u "$users" -r 1000 --hold "${hold_s}s" --threads 1 \
        > "$WORK/idle.out" 2>&1 &
    pid=$!
    for i in $(seq 1 $(( 10 * hold_s ))); do
        [ "$(find "/proc/$pid/fd" -type l 2>/dev/null | wc -l)" -ge "$users" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    grep -q "no client ever connected" "$WORK/idle.out" && { log "idle $t: no connection"; exit 1; }
    echo "$rss"
}
for run in $(seq 1 "$RUNS"); do
    for t in tcp tls wss; do
        users=$IDLE_USERS
        [ "$t" = wss ] && users=$IDLE_WSS_USERS
        base=$(idle_rss_kib "$t" 10)
        full=$(idle_rss_kib "$t" "$users")
        echo "scale=2; 1024 * ($full - $base) / ($users - 10)" | bc >> "$WORK/idle-$t"
        log "idle $t run $run: $base KiB at 10 users, $full KiB at $users: $(tail -n1 "$WORK/idle-$t") bytes per connection"
    done
done

fmt() { median < "$1" | xargs printf "%.${2}f"; }
echo "### TLS and WebSocket cost, $(date -u +%Y-%m-%d), $(nproc) cores, $("$MQBLAST" --version 2>/dev/null || echo mqblast); medians of $RUNS runs"
echo
echo "Through mosquitto ($("$MOSQUITTO" -h 2>&1 | head -n 1 | awk '{print $3}')), QoS 1, $USERS users, $MESSAGES messages, --interval 0:"
echo
echo "| transport | msg/s | mqblast CPU us / msg | mosquitto CPU us / msg |"
echo "|---|---:|---:|---:|"
for t in tcp tls ws wss; do
    echo "| $t | $(fmt "$WORK/mosq-$t.rps" 0) | $(fmt "$WORK/mosq-$t.gen" 3) | $(fmt "$WORK/mosq-$t.target" 3) |"
done
echo
echo "Into the sink (1 thread), QoS 1, $USERS users, $SINK_MESSAGES messages:"
echo
echo "| transport | msg/s | mqblast CPU us / msg | sink CPU us / msg |"
echo "|---|---:|---:|---:|"
for t in tcp tls ws; do
    echo "| $t | $(fmt "$WORK/sink-$t.rps" 0) | $(fmt "$WORK/sink-$t.gen" 3) | $(fmt "$WORK/sink-$t.target" 3) |"
done
tls_extra=$(echo "$(median < "$WORK/sink-tls.gen") - $(median < "$WORK/sink-tcp.gen")" | bc)
echo
echo "TLS adds $tls_extra us of generator CPU per message over plain TCP (goal: <= 1 us)."
echo
echo "TLS storm: mqblast conn, $STORM_USERS users at $STORM_RATE/s, --churn $STORM_CHURN, hold 5 s:"
echo
echo "| peak CONNACK/s | full handshakes | full p50 us | full p99 us | resumed handshakes | resumed p50 us | resumed p99 us | failures |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| $(fmt "$WORK/storm.peak" 0) | $(fmt "$WORK/storm.full.count" 0) | $(fmt "$WORK/storm.full.p50" 0) | $(fmt "$WORK/storm.full.p99" 0) | $(fmt "$WORK/storm.resumed.count" 0) | $(fmt "$WORK/storm.resumed.p50" 0) | $(fmt "$WORK/storm.resumed.p99" 0) | $(fmt "$WORK/storm.failures" 0) |"
echo
echo "RSS per idle connection, mqblast conn holding $IDLE_USERS connections (wss: $IDLE_WSS_USERS; 1 thread), minus a 10-connection run:"
echo
echo "| transport | bytes per idle connection |"
echo "|---|---:|"
for t in tcp tls wss; do echo "| $t | $(fmt "$WORK/idle-$t" 0) |"; done
