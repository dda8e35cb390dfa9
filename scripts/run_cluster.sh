#!/bin/sh
# run_cluster.sh: one mqblast test across many hosts, one exact merged report.
#
#   scripts/run_cluster.sh HOSTS_FILE [--out DIR] [--lead SECONDS] -- <mqblast run arguments>
#
# Why it exists: one process tops out at its open-files limit, ephemeral ports and cores. This
# runs the same plan on every host of HOSTS_FILE, each with `--shard K/N` (its exact, disjoint
# part: users, messages and spawn rate divided, client ids offset, tokens split) and a common
# `--start-at`, then merges the hosts' JSON results (histograms, not averages) with
# `mqblast merge` and renders one report with `mqblast report`. It needs nothing on the hosts
# but sshd and a POSIX shell: mqblast is copied there when missing or of another version.
#
# HOSTS_FILE: one `[user@]host[:port]` per line; blank lines and `#` comments are skipped.
#
# Environment:
#   MQBLAST_SSH_OPTS     extra ssh options for every connection (split on blanks), e.g.
#                        "-i ~/.ssh/loadtest -o StrictHostKeyChecking=accept-new"
#   MQBLAST_BIN          local mqblast (default: mqblast on PATH); copied to hosts that need it
#   MQBLAST_REMOTE_BIN   mqblast path on the hosts (default: mqblast on the remote PATH)
#   MQBLAST_CLUSTER_KEEP_REMOTE=1  keep each host's work directory (default: removed)
#   Other MQBLAST_* variables are NOT forwarded to the hosts: use flags or a config file.
#
# Files: the config file (-f/--config, or ./config.toml), the payload (--payload, or
# ./data.json) and the tokens file (--tokens-file, or the config's payload/tokens_file) are
# copied to every host; every host gets the whole tokens file and `--shard` gives each host
# its own slice. Files travel through ssh itself (cat), so MQBLAST_SSH_OPTS applies to them too.
#
# Output folder (default cluster-YYYYmmdd-HHMMSS): merged.json, report.html, report_*.csv,
# and per host HOST/result.json, HOST/run.log (+ HOST/result*.csv with --csv). When a host
# produced no result the others are still merged, MISSING names the missing hosts and shards,
# and the report is partial.
#
# Exit status: 0 every host ran cleanly; 1 every host reported and some recorded failures;
# 2 usage error; 3 a host produced no result (named on stderr; the report is partial);
# 4 merging or reporting failed; 130 interrupted (what existed was still collected).
#
# Ctrl-C (or SIGTERM) sends SIGINT to every remote mqblast, which stops publishing, waits for
# outstanding acknowledgements and writes its result; the results are collected and merged.
# A second Ctrl-C makes the remote runs stop at once.

set -u

prog=run_cluster

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 2
}

usage() {
    cat >&2 <<'EOF'
usage: scripts/run_cluster.sh HOSTS_FILE [--out DIR] [--lead SECONDS] -- <mqblast run arguments>

  HOSTS_FILE      one [user@]host[:port] per line, # comments and blank lines allowed
  --out DIR       output folder (default: cluster-YYYYmmdd-HHMMSS)
  --lead SECONDS  start this long after every host is ready (default: 5)

Example:
  MQBLAST_SSH_OPTS="-i ~/.ssh/loadtest" scripts/run_cluster.sh hosts.txt -- \
      -H tb.example:1883 --tokens-file tokens.txt -u 40000 -r 400 -t 10m
EOF
    exit "${1:-2}"
}

# One argument, single-quoted for a POSIX shell (the remote one).
quote() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# ---------------------------------------------------------------------------------------------
# Command line

[ $# -ge 1 ] || usage
case $1 in -h | --help) usage 0 ;; esac
hosts_file=$1
shift
out=""
lead_s=5
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || die "--out needs a folder"; out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --lead) [ $# -ge 2 ] || die "--lead needs seconds"; lead_s=$2; shift 2 ;;
        --lead=*) lead_s=${1#--lead=}; shift ;;
        --) shift; break ;;
        -h | --help) usage 0 ;;
        *) die "unknown option $1 (mqblast run arguments go after --)" ;;
    esac
done
case $lead_s in '' | *[!0-9]*) die "--lead $lead_s: expected whole seconds" ;; esac
[ -r "$hosts_file" ] || die "hosts file $hosts_file: cannot read it"
[ "${1:-}" = run ] && shift

local_bin=${MQBLAST_BIN:-$(command -v mqblast || true)}
if [ -z "$local_bin" ] || [ ! -x "$local_bin" ]; then
    die "no local mqblast: put it on PATH or set MQBLAST_BIN (it merges the results and is copied to hosts that lack it)"
fi
local_version=$("$local_bin" --version 2>/dev/null) || die "$local_bin --version failed"

work=$(mktemp -d "${TMPDIR:-/tmp}/run_cluster.XXXXXX") || die "cannot create a temporary folder"
stage=$work/stage
mkdir "$stage"
trap 'rm -rf "$work"' EXIT

leftover=$(env | sed -n 's/^\(MQBLAST_[A-Z_]*\)=.*/\1/p' |
    grep -v -x -e MQBLAST_SSH_OPTS -e MQBLAST_BIN -e MQBLAST_REMOTE_BIN \
        -e MQBLAST_CLUSTER_KEEP_REMOTE | tr '\n' ' ')
[ -z "$leftover" ] || say "note: not forwarded to the hosts: $leftover(use flags or a config file)"

# ---------------------------------------------------------------------------------------------
# The mqblast arguments: files are staged for copying and renamed; what this script sets
# itself (--shard, --start-at, --json, --csv) is taken out.

args=""
want_csv=0
config_given=0
payload_given=0

add_arg() { args="$args $(quote "$1")"; }

# stage_file LOCAL NAME: copy LOCAL into the stage as NAME.
stage_file() {
    [ -r "$1" ] || die "$1: cannot read it"
    cp "$1" "$stage/$2" || die "cannot copy $1"
}

# stage_config LOCAL: copy the config file, and the payload and tokens file it names
# (relative to the config's folder, as mqblast reads them) under fixed names.
stage_config() {
    stage_file "$1" config.toml
    config_dir=$(dirname "$1")
    for key in payload tokens_file; do
        value=$(sed -n "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*[\"']\([^\"']*\)[\"'].*/\1/p" "$1" | head -n 1)
        [ -n "$value" ] || continue
        case $value in /*) path=$value ;; *) path=$config_dir/$value ;; esac
        name=config-$key
        stage_file "$path" "$name"
        sed "s|^\([[:space:]]*${key}[[:space:]]*=[[:space:]]*\).*|\1\"$name\"|" "$stage/config.toml" >"$stage/config.tmp" &&
            mv "$stage/config.tmp" "$stage/config.toml"
        [ "$key" = payload ] && payload_given=1
    done
}

while [ $# -gt 0 ]; do
    flag=$1
    case $flag in
        --*=*) value=${flag#*=}; flag=${flag%%=*}; shift ;;
        -f | --config | --payload | --tokens-file | --json | --csv | --shard | --start-at)
            [ $# -ge 2 ] || die "$flag needs a value"
            value=$2
            shift 2
            ;;
        *) add_arg "$flag"; shift; continue ;;
    esac
    case $flag in
        -f | --config) config_given=1; stage_config "$value"; add_arg -f; add_arg config.toml ;;
        --payload) payload_given=1; stage_file "$value" payload-arg; add_arg --payload; add_arg payload-arg ;;
        --tokens-file) stage_file "$value" tokens-arg; add_arg --tokens-file; add_arg tokens-arg ;;
        --json) say "note: --json $value ignored: the merged result is written to the output folder" ;;
        --csv) want_csv=1 ;;
        --shard | --start-at) say "note: $flag $value ignored: this script sets it for every host" ;;
        *) add_arg "$flag"; add_arg "$value" ;;
    esac
done
if [ "$config_given" = 0 ] && [ -f config.toml ]; then stage_config config.toml; fi
if [ "$payload_given" = 0 ] && [ -f data.json ]; then stage_file data.json data.json; fi

# ---------------------------------------------------------------------------------------------
# Hosts

hosts=$work/hosts
sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$hosts_file" | grep -v '^$' >"$hosts"
n=$(wc -l <"$hosts" | tr -d ' ')
[ "$n" -gt 0 ] || die "hosts file $hosts_file lists no hosts"

# ssh_to LINE COMMAND...: run COMMAND on the host of hosts-file LINE ([user@]host[:port]).
ssh_to() {
    ssh_target=$1
    shift
    ssh_port=""
    case $ssh_target in
        *:*:*) ;; # IPv6 literal without a port
        *:*) ssh_port=${ssh_target##*:}; ssh_target=${ssh_target%:*} ;;
    esac
    # shellcheck disable=SC2086 # MQBLAST_SSH_OPTS is a list of options, split on purpose
    # ssh takes the first value given for an option: the host's own port, then the user's
    # options, then our defaults.
    ssh ${ssh_port:+-p "$ssh_port"} ${MQBLAST_SSH_OPTS:-} \
        -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15 "$ssh_target" "$@"
}

# host_dir K HOST: the folder of shard K's own files (a host may be listed twice, to run two
# processes there).
host_dir() { printf '%s/shard%s-%s' "$out" "$1" "$(printf '%s' "$2" | tr -c 'A-Za-z0-9._@-' '_')"; }

[ -n "$out" ] || out=cluster-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out" || die "cannot create the output folder $out"

remote_bin=""
[ -z "${MQBLAST_REMOTE_BIN:-}" ] || remote_bin=$(quote "$MQBLAST_REMOTE_BIN")

# prepare K HOST: make a work folder on HOST, make sure it has this mqblast (copy it when
# missing or of another version), upload the staged files. Writes $work/K.dir and $work/K.bin,
# or $work/K.failed with the reason.
prepare() {
    k=$1
    host=$2
    if ! probe=$(ssh_to "$host" "d=\$(mktemp -d \"\${TMPDIR:-/tmp}/mqblast-cluster.XXXXXX\") || exit 1
        echo \"dir=\$d\"
        b=$remote_bin
        [ -n \"\$b\" ] || b=\$(command -v mqblast)
        [ -n \"\$b\" ] && [ -x \"\$b\" ] && echo \"bin=\$b\" && echo \"version=\$(\"\$b\" --version 2>/dev/null)\"
        exit 0" </dev/null 2>"$work/$k.err"); then
        echo "ssh failed: $(tail -n 1 "$work/$k.err")" >"$work/$k.failed"
        return
    fi
    dir=$(printf '%s\n' "$probe" | sed -n 's/^dir=//p')
    bin=$(printf '%s\n' "$probe" | sed -n 's/^bin=//p')
    version=$(printf '%s\n' "$probe" | sed -n 's/^version=//p')
    if [ -z "$bin" ] || [ "$version" != "$local_version" ]; then
        bin=$dir/mqblast
        if ! ssh_to "$host" "cat > $(quote "$bin") && chmod +x $(quote "$bin")" <"$local_bin" 2>>"$work/$k.err"; then
            echo "cannot copy mqblast there: $(tail -n 1 "$work/$k.err")" >"$work/$k.failed"
            return
        fi
        say "$host: copied $local_version to $bin${version:+ (it had $version)}"
    fi
    for file in "$stage"/*; do
        [ -e "$file" ] || continue
        name=$(basename "$file")
        if ! ssh_to "$host" "cat > $(quote "$dir/$name")" <"$file" 2>>"$work/$k.err"; then
            echo "cannot copy $name there: $(tail -n 1 "$work/$k.err")" >"$work/$k.failed"
            return
        fi
    done
    printf '%s\n' "$dir" >"$work/$k.dir"
    printf '%s\n' "$bin" >"$work/$k.bin"
}

# ---------------------------------------------------------------------------------------------
# Ctrl-C: ask every remote mqblast to stop (SIGINT: graceful the first time, at once the
# second), then carry on collecting.

interrupted=0
running=0

# A trap can run between any two commands of the main loops, so it uses its own variable
# names, and it does not wait for its ssh commands (a `wait` here would reap the run jobs).
# shellcheck disable=SC2317 # invoked by the trap
stop_remotes() {
    interrupted=$((interrupted + 1))
    say "interrupted: stopping every remote run (Ctrl-C again to stop at once)"
    [ "$running" = 1 ] || return 0
    stop_k=0
    while IFS= read -r stop_host; do
        stop_k=$((stop_k + 1))
        [ -f "$work/$stop_k.dir" ] || continue
        stop_dir=$(cat "$work/$stop_k.dir")
        # The remote run may not have written its pid yet (its ssh session is still starting):
        # wait for it, up to 20 s, rather than miss it and leave that run going.
        ssh_to "$stop_host" "i=0; while [ ! -s $(quote "$stop_dir/pid") ] && [ \$i -lt 100 ]; do sleep 0.2; i=\$((i + 1)); done; kill -INT \$(cat $(quote "$stop_dir/pid")) 2>/dev/null" </dev/null >/dev/null 2>&1 &
    done <"$hosts"
}
trap stop_remotes INT TERM

# wait_for_pids "PID ...": wait for each, also across traps (a trap interrupts `wait`).
wait_for_pids() {
    for pid in $1; do
        while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
    done
}

say "$n hosts; checking them ($local_version)"
pids=""
k=0
while IFS= read -r host; do
    k=$((k + 1))
    prepare "$k" "$host" &
    pids="$pids $!"
done <"$hosts"
wait_for_pids "$pids"
ready=0
k=0
while IFS= read -r host; do
    k=$((k + 1))
    if [ -f "$work/$k.failed" ]; then
        say "$host: NOT READY: $(cat "$work/$k.failed")"
    else
        ready=$((ready + 1))
    fi
done <"$hosts"

# ---------------------------------------------------------------------------------------------
# Run: every shard starts at the same wall-clock moment.

# prefix LABEL LOG: copy lines to stdout prefixed with [LABEL], and unprefixed to LOG.
prefix() {
    while IFS= read -r line; do
        printf '[%s] %s\n' "$1" "$line"
        printf '%s\n' "$line" >>"$2"
    done
}

# The script each host runs: mqblast in the background writing run.log (so it survives a
# dropped ssh connection and its pid can be signalled), the log streamed back while it runs.
remote_script() {
    cat <<EOF
#!/bin/sh
cd $(quote "$1") || exit 97
: > run.log
$(quote "$2") run$args --shard $3/$n --start-at $4 --json result.json${csv_arg} > run.log 2>&1 &
echo \$! > pid
tail -f run.log &
tail_pid=\$!
wait \$(cat pid)
rc=\$?
sleep 1
kill \$tail_pid 2>/dev/null
exit \$rc
EOF
}

csv_arg=""
[ "$want_csv" = 1 ] && csv_arg=" --csv result"
start_at_ms=$(($(date +%s) + lead_s))000
if [ "$interrupted" = 0 ] && [ "$ready" -gt 0 ]; then
    say "$ready of $n hosts ready; all start at $start_at_ms (epoch ms, in ${lead_s} s)"
    running=1
    pids=""
    k=0
    while IFS= read -r host; do
        k=$((k + 1))
        [ -f "$work/$k.dir" ] || continue
        dir=$(cat "$work/$k.dir")
        local_dir=$(host_dir "$k" "$host")
        mkdir -p "$local_dir"
        : >"$local_dir/run.log"
        remote_script "$dir" "$(cat "$work/$k.bin")" "$k" "$start_at_ms" >"$work/$k.sh"
        {
            ssh_to "$host" "sh -s" <"$work/$k.sh" 2>&1
            echo $? >"$work/$k.rc"
        } | prefix "$host" "$local_dir/run.log" &
        pids="$pids $!"
    done <"$hosts"
    wait_for_pids "$pids"
    running=0
fi

# ---------------------------------------------------------------------------------------------
# Collect every result that exists, then clean up the hosts.

k=0
while IFS= read -r host; do
    k=$((k + 1))
    [ -f "$work/$k.dir" ] || continue
    dir=$(cat "$work/$k.dir")
    local_dir=$(host_dir "$k" "$host")
    mkdir -p "$local_dir"
    if ssh_to "$host" "cat $(quote "$dir/result.json")" </dev/null >"$local_dir/result.json" 2>>"$work/$k.err" &&
        [ -s "$local_dir/result.json" ]; then
        :
    else
        rm -f "$local_dir/result.json"
    fi
    if [ "$want_csv" = 1 ]; then
        for csv in $(ssh_to "$host" "cd $(quote "$dir") && ls result*.csv 2>/dev/null" </dev/null); do
            ssh_to "$host" "cat $(quote "$dir/$csv")" </dev/null >"$local_dir/$csv"
        done
    fi
    if [ -z "${MQBLAST_CLUSTER_KEEP_REMOTE:-}" ]; then
        ssh_to "$host" "rm -rf $(quote "$dir")" </dev/null >/dev/null 2>&1
    fi
done <"$hosts"

# ---------------------------------------------------------------------------------------------
# Merge and report

missing=""
failures=0
results=""
k=0
while IFS= read -r host; do
    k=$((k + 1))
    local_dir=$(host_dir "$k" "$host")
    rc=$(cat "$work/$k.rc" 2>/dev/null || echo none)
    if [ -f "$local_dir/result.json" ]; then
        results="$results $k"
        [ "$rc" = 0 ] || failures=1
        [ "$rc" = 0 ] || [ "$rc" = 1 ] || say "$host: mqblast exited with status $rc"
    else
        if [ -f "$work/$k.failed" ]; then
            why=$(cat "$work/$k.failed")
        else
            why="no result (mqblast exit status $rc; see $local_dir/run.log)"
        fi
        missing="$missing$host: shard $k/$n: $why
"
    fi
done <"$hosts"

status=0
[ "$failures" = 1 ] && status=1
if [ -n "$missing" ]; then
    printf '%s' "$missing" >"$out/MISSING"
    printf '%s' "$missing" | while IFS= read -r line; do say "MISSING $line"; done
    status=3
fi

# finish STATUS: exit with STATUS, or 130 after a Ctrl-C (what existed was still collected).
finish() {
    [ "$interrupted" -gt 0 ] && exit 130
    exit "$1"
}

if [ -z "$results" ]; then
    say "no host produced a result: nothing to merge"
    finish 3
fi

# A missing host (3) says more than a failed merge (4): it was named above.
merge_failed=""
[ "$status" = 3 ] || merge_failed=4
merge_help=$("$local_bin" merge --help 2>&1) || {
    say "this mqblast ($local_bin) has no \`merge\` subcommand: the hosts' results are in $out/*/result.json, not merged"
    finish "${merge_failed:-3}"
}
set --
for k in $results; do
    host=$(sed -n "${k}p" "$hosts")
    set -- "$@" "$(host_dir "$k" "$host")/result.json"
done
if [ -n "$missing" ] && printf '%s' "$merge_help" | grep -q -e '--partial-missing'; then
    while IFS= read -r line; do
        [ -n "$line" ] && set -- "$@" --partial-missing "${line%%: *}"
    done <"$out/MISSING"
fi
if ! "$local_bin" merge "$@" -o "$out/merged.json"; then
    say "mqblast merge failed"
    finish "${merge_failed:-3}"
fi
if ! "$local_bin" report "$out/merged.json" --html "$out/report.html" --csv "$out/report"; then
    say "mqblast report failed (the merged result is $out/merged.json)"
    finish "${merge_failed:-3}"
fi

if [ -n "$missing" ]; then
    say "PARTIAL report in $out: $(printf '%s' "$missing" | sed 's/: shard .*//' | tr '\n' ' ')produced no result (see $out/MISSING)"
else
    say "report in $out: merged.json, report.html, report_*.csv"
fi
finish "$status"
