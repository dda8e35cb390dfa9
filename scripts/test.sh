#!/usr/bin/env bash
# Runs the whole test suite the way CI does: makes sure the broker the integration tests need
# (mosquitto, plus mosquitto_pub from mosquitto-clients for the harness self-tests) and ssh
# (openssh-server and openssh-client, for the multi-host tests) are installed, then runs
# `cargo test`. Extra arguments are passed to `cargo test`, e.g.
#   scripts/test.sh --test accounting -- --nocapture
#
# Profile: debug by default (MQBLAST_TEST_PROFILE=release to change). Measured from a cold
# target dir on the 2-core dev box (default features, so the embedded rumqttd broker and its
# tokio/axum stack are built too; `cargo test --no-run`, niced, other builds running):
#   debug                                         122 s
#   release, thin (lto=false, codegen-units=16)   228 s
#   release, shipped profile (fat LTO, 1 cgu)     222 s  (src is still mostly stubs: deps
#                                                         dominate; LTO of the real engine in
#                                                         every test binary will add to it)
# The shipped profile is for scripts/bench.sh, not tests: every test binary is linked with LTO
# once the crate has real code. The integration tests send
# at most ~20k messages per run and are mostly bounded by wall-clock timers (2 s run times,
# stop timeouts, signals), so an optimised binary would save seconds of test time and costs
# minutes of build time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

install_packages() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be stale or missing in a fresh container: update only on failure.
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" ||
        { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "$@"; }
}

missing=()
have mosquitto || missing+=(mosquitto)            # also provides mosquitto_passwd
have mosquitto_passwd || missing+=(mosquitto)
have mosquitto_pub || missing+=(mosquitto-clients)
# tests/cluster.rs runs scripts/run_cluster.sh over a private sshd on loopback.
have sshd || missing+=(openssh-server)
have ssh || missing+=(openssh-client)
have ssh-keygen || missing+=(openssh-client)
# The HTML report test opens the report in a real headless browser. chromium is a big package:
# installed only when no chromium is found.
have chromium || have chromium-browser || missing+=(chromium)
# The web UI tests: curl is their HTTP client, chromedriver drives chromium through WebDriver.
have curl || missing+=(curl)
have chromedriver || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    install_packages $(printf '%s\n' "${missing[@]}" | sort -u)
fi
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
echo "scripts/test.sh: $("$mosquitto_bin" -h 2>&1 | head -n 1 || true)" >&2

export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Here the browser is present, so the HTML report test must not skip itself.
export MQBLAST_REQUIRE_CHROMIUM=1
case "${MQBLAST_TEST_PROFILE:-debug}" in
    debug)
        exec cargo test --no-fail-fast "$@"
        ;;
    release)
        export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0
        exec cargo test --release --no-fail-fast "$@"
        ;;
    *)
        echo "scripts/test.sh: MQBLAST_TEST_PROFILE must be debug or release" >&2
        exit 2
        ;;
esac
