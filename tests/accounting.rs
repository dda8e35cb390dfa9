//! mqblast's counts agree with what a broker actually delivered.
//!
//! Why it exists: a load generator that miscounts is worse than none. Each test runs N users
//! to a total message limit against a real mosquitto and compares the JSON summary with an
//! independent subscriber's count: exactly equal at QoS 1 and 2 (every acknowledged publish was
//! delivered once), never more at QoS 0.

mod common;

use std::time::Duration;

use common::*;

/// Run `users` clients to `messages` total publishes at `qos` with no rate limit and check the
/// summary and the subscriber's count.
fn publishes_exactly(qos: u8, users: u32, messages: u64) {
    let broker = Mosquitto::start();
    let dir = TempDir::new("accounting");
    let topic = format!("mqblast/accounting/q{qos}");
    let sub = broker.subscribe(&topic, qos);
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            &users.to_string(),
            "--messages",
            &messages.to_string(),
            "--qos",
            &qos.to_string(),
            "--topic",
            &topic,
            "--interval",
            "0",
            // A bound, not the stop condition: the message limit must be reached long before.
            "-t",
            "60s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(
        summary.u64("publish.requests"),
        messages,
        "publish.requests must equal --messages\n{}",
        summary.text()
    );
    assert_eq!(summary.u64("publish.failures"), 0, "{}", summary.text());
    assert_eq!(summary.u64("connect.failures"), 0, "{}", summary.text());
    assert!(
        summary.errors().is_empty(),
        "no errors expected: {:?}",
        summary.errors()
    );
    assert_eq!(
        summary.u64("connect.requests"),
        users as u64,
        "one connect per user\n{}",
        summary.text()
    );

    if qos == 0 {
        // Loopback rarely loses anything, but QoS 0 promises nothing: only "never more".
        let got = sub.settle(Duration::from_millis(500), Duration::from_secs(10));
        assert!(
            got <= messages,
            "subscriber got {got} > {messages} published"
        );
    } else {
        assert!(
            sub.wait_for(messages, Duration::from_secs(30)),
            "QoS {qos}: subscriber got {} of {messages} ({:?})\n{}",
            sub.count(),
            sub.error(),
            run.describe()
        );
        let got = sub.settle(Duration::from_millis(500), Duration::from_secs(10));
        assert_eq!(got, messages, "QoS {qos}: subscriber got duplicates");
    }
    assert_eq!(
        sub.not_json(),
        0,
        "every payload the broker delivered must be valid JSON"
    );
    assert_eq!(sub.error(), None);
}

#[test]
fn qos0_run_publishes_exactly_the_message_limit_and_the_subscriber_gets_no_more() {
    publishes_exactly(0, 4, 20_000);
}

#[test]
fn qos1_run_delivers_every_message_exactly_once() {
    publishes_exactly(1, 4, 10_000);
}

#[test]
fn qos2_run_delivers_every_message_exactly_once() {
    publishes_exactly(2, 4, 5_000);
}

#[test]
fn many_users_share_a_message_limit_that_does_not_divide_evenly() {
    publishes_exactly(1, 32, 10_007);
}

/// Regression: a QoS 0 connection whose write buffer was full when its writable event came
/// was never pumped again (edge-triggered: no new event), so QoS 0 runs crawled at a few
/// thousand messages per second. Healthy, 200,000 take about a second even in a debug build;
/// stalled, they cannot finish inside the 20 s bound.
#[test]
fn qos0_without_an_interval_keeps_publishing_after_the_socket_buffer_fills() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("accounting-qos0-stall");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "4",
            "--threads",
            "1",
            "--qos",
            "0",
            "--interval",
            "0",
            "--messages",
            "200000",
            "-t",
            "20s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(
        summary.u64("publish.requests"),
        200_000,
        "{}",
        summary.text()
    );
}

#[test]
fn every_user_publishes_its_share_of_the_message_limit() {
    // At QoS 0 the first users to connect could publish everything before the others
    // connected; each user now has its own share, so every user connects and publishes.
    publishes_exactly(0, 8, 8_003);
}

#[test]
fn one_user_with_a_window_of_one_still_delivers_everything() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("accounting-window");
    let sub = broker.subscribe("mqblast/window", 1);
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "1",
            "--messages",
            "500",
            "--qos",
            "1",
            "--topic",
            "mqblast/window",
            "--interval",
            "0",
            "--max-inflight",
            "1",
            "-t",
            "60s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("publish.requests"), 500);
    assert!(
        sub.wait_for(500, Duration::from_secs(10)),
        "got {}",
        sub.count()
    );
    assert_eq!(
        sub.settle(Duration::from_millis(300), Duration::from_secs(5)),
        500
    );
}

#[test]
fn summary_latencies_are_ordered_and_rps_is_positive() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("accounting-latency");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--messages",
            "2000",
            "--qos",
            "1",
            "--topic",
            "mqblast/latency",
            "--interval",
            "0",
            "-t",
            "60s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let s = Summary::read(&json, &run);
    for metric in ["publish", "connect"] {
        let at = |p: &str| s.f64(&format!("{metric}.latency_us.{p}"));
        let (min, p50, p90, p99, p999, max) = (
            at("min"),
            at("p50"),
            at("p90"),
            at("p99"),
            at("p999"),
            at("max"),
        );
        assert!(
            min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
            "{metric}: {}",
            s.text()
        );
        let mean = at("mean");
        assert!(
            min <= mean && mean <= max,
            "{metric}: mean outside [min, max]: {}",
            s.text()
        );
    }
    assert!(s.f64("publish.rps") > 0.0);
    assert!(s.f64("duration_s") > 0.0);
    assert!(
        s.get("config").is_object(),
        "the effective config is part of the summary"
    );
}

#[cfg(feature = "embedded-broker")]
#[test]
fn run_without_a_host_uses_the_embedded_broker_and_says_so() {
    let dir = TempDir::new("accounting-embedded");
    let json = dir.file("summary.json");
    let args = [
        "--headless",
        "--only-summary",
        "-r",
        "1000",
        "--json",
        &json,
        "-u",
        "2",
        "--messages",
        "1000",
        "--qos",
        "1",
        "--interval",
        "0",
        "-t",
        "60s",
    ];
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    assert!(
        run.first_line().to_lowercase().contains("embedded"),
        "the first output line must say the embedded broker was started:\n{}",
        run.describe()
    );
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("publish.requests"), 1000);
    assert_eq!(summary.u64("publish.failures"), 0);
}
