//! The latency mqblast reports is the latency that happened.
//!
//! The calibration sink misbehaves in known ways (`--ack-delay`: every PUBACK exactly that
//! late; `--stall EVERY:FOR`: no reads for FOR every EVERY), and mqblast, run as the real
//! binary against it, must report exactly that: a 5 ms ack delay is a 5 ms median, and a
//! stall shows in the high percentiles because latency is measured from the *scheduled* send
//! time (coordinated omission corrected), with the generator's schedule lag reported beside.
//!
//! Bounds are tight below (the sink never acks early, so nothing may report less than the
//! delay) and generous above (the machine running the tests is shared and noisy).

mod common;

use std::time::Duration;

use mqblast::sink::{self, SinkHandle, SinkOptions, Stall};
use serde_json::Value;

fn start_sink(ack_delay: Duration, stall: Option<Stall>) -> SinkHandle {
    let opts = SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        ack_delay,
        stall,
        run_for: None,
        quiet: true,
        tls: None,
        websocket: false,
    };
    sink::start(&opts).expect("sink starts")
}

/// Run mqblast against `sink` at a fixed rate (`users` x one message per `interval`) for
/// `run_time`, QoS 1, and return its JSON summary.
fn run_at_fixed_rate(sink: &SinkHandle, users: u32, interval: &str, run_time: &str) -> Value {
    let dir = common::TempDir::new("latency-truth");
    let json = dir.file("summary.json");
    let addr = sink.addr().to_string();
    let users = users.to_string();
    let args = [
        "run",
        "-H",
        &addr,
        "-u",
        &users,
        "-r",
        "1000",
        "--interval",
        interval,
        "-t",
        run_time,
        "--qos",
        "1",
        "--max-inflight",
        "8",
        "--threads",
        "1",
        "--only-summary",
        "--json",
        &json,
    ];
    let finished = common::spawn(common::mqblast_command(&args)).wait(common::RUN_LIMIT);
    finished.assert_code(0);
    let text = std::fs::read_to_string(&json).expect("JSON summary written");
    serde_json::from_str(&text).expect("JSON summary parses")
}

fn us(summary: &Value, path: &[&str]) -> u64 {
    let mut v = summary;
    for key in path {
        v = &v[*key];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {summary:#}"))
}

/// Runs of the ack-delay test before giving up on the upper bound. Noise on a shared machine
/// only ever adds latency, so the best of a few runs is the honest one to hold to the bound;
/// the lower bound holds in every run.
const ACK_DELAY_ATTEMPTS: usize = 3;

#[test]
fn a_5ms_ack_delay_is_reported_as_a_5ms_median() {
    let sink = start_sink(Duration::from_millis(5), None);
    let mut best_p50 = u64::MAX;
    for attempt in 1..=ACK_DELAY_ATTEMPTS {
        // 20 users x 50 msg/s = 1,000 msg/s for 3 s: moderate, so the generator is never late.
        let summary = run_at_fixed_rate(&sink, 20, "20ms", "3s");
        let count = us(&summary, &["publish", "latency_us", "count"]);
        let p50 = us(&summary, &["publish", "latency_us", "p50"]);
        let min = us(&summary, &["publish", "latency_us", "min"]);
        eprintln!("ack delay 5 ms, attempt {attempt}: count {count}, min {min} us, p50 {p50} us");
        assert!(count >= 1_500, "too few publishes measured: {count}");
        assert!(
            min >= 5_000,
            "an ack came back before the 5 ms delay: min {min} us"
        );
        assert!(p50 >= 5_000, "p50 {p50} us is below the 5 ms delay");
        best_p50 = best_p50.min(p50);
        if best_p50 <= 6_500 {
            break;
        }
    }
    assert!(
        best_p50 <= 6_500,
        "p50 {best_p50} us (best of {ACK_DELAY_ATTEMPTS} runs) is not 5 ms within tolerance"
    );
}

#[test]
fn a_broker_stall_shows_in_the_high_percentiles_and_in_the_schedule_lag() {
    // Reads stop for 500 ms at 2 s and 4 s after the sink started.
    let stall = Stall {
        every: Duration::from_secs(2),
        duration: Duration::from_millis(500),
    };
    let sink = start_sink(Duration::ZERO, Some(stall));
    let summary = run_at_fixed_rate(&sink, 20, "20ms", "5s");
    let p99 = us(&summary, &["publish", "latency_us", "p99"]);
    let max = us(&summary, &["publish", "latency_us", "max"]);
    let p50 = us(&summary, &["publish", "latency_us", "p50"]);
    let lag_max = us(&summary, &["schedule_lag_us", "max"]);
    eprintln!("stall: p50 {p50} us, p99 {p99} us, max {max} us, schedule lag max {lag_max} us");
    // About 20% of the messages are scheduled during a stall; each waits for its end.
    assert!(max >= 450_000, "the 500 ms stall is hidden: max {max} us");
    assert!(p99 >= 300_000, "the stall is missing from p99: {p99} us");
    assert!(
        p50 < 100_000,
        "most messages were not stalled: p50 {p50} us"
    );
    // With 8 in flight per user at 50 msg/s the window is full 160 ms into a stall; later
    // messages wait for it (their latency still counts from the schedule) and are late.
    assert!(
        lag_max >= 200_000,
        "the schedule lag does not show the stall: {lag_max} us"
    );
}
