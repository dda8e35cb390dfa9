# Shared by the benchmark scripts (sourced, not run): the floor programs of benches/floor/ (the
# least CPU a client can spend per message on a workload), built once into target/floor/, and
# the payload size mqblast's default payload has on the wire, so both send the same bytes.

FLOOR_DIR="${FLOOR_DIR:-target/floor}"

# build_floors: compiles benches/floor/{floor,floor_tp}.c with cc -O2 when the binary is
# missing or older than its source.
build_floors() {
    mkdir -p "$FLOOR_DIR"
    local name
    for name in floor floor_tp; do
        if [ ! -x "$FLOOR_DIR/$name" ] || [ "benches/floor/$name.c" -nt "$FLOOR_DIR/$name" ]; then
            cc -O2 -o "$FLOOR_DIR/$name" "benches/floor/$name.c"
        fi
    done
}

# payload_bytes FILE: the size of FILE's first payload object as mqblast sends it (compact JSON,
# `{ts}` 13 digits wide, `{seq}` 10, `{i}` one digit).
payload_bytes() {
    jq -c 'if type == "array" then .[0] else . end' "$1" |
        sed 's/"{ts}"/1234567890123/g; s/"{seq}"/1234567890/g; s/{i}/0/g' | tr -d '\n' | wc -c
}

# ratio A B: A / B to two decimals, or "-" when either is missing or B is zero.
ratio() {
    case "$1:$2" in :* | *: | -:* | *:- | n/a:* | *:n/a) echo -; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f\n", a / b }'
}
