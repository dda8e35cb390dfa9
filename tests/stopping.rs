//! Every way a run stops: run time, message limit, SIGINT/SIGTERM, a second SIGINT.
//!
//! Why it exists: a load test people cannot stop cleanly loses its report, and one that stops
//! late skews the numbers. Each stop must end the run promptly, wait at most `--stop-timeout`
//! for outstanding acknowledgements, and still write the summary and the JSON.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn run_time_stops_the_run_close_to_the_requested_duration() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-time");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--qos",
            "1",
            "--interval",
            "20ms",
            "-t",
            "2s",
            "--stop-timeout",
            "2s",
        ],
    );
    let run = run_mqblast(&args, Duration::from_secs(60));
    run.assert_code(0);
    assert!(
        run.elapsed >= Duration::from_millis(1900),
        "stopped early at {:?}:\n{}",
        run.elapsed,
        run.describe()
    );
    assert!(
        run.elapsed < Duration::from_secs(8),
        "stopped late at {:?}:\n{}",
        run.elapsed,
        run.describe()
    );
    let summary = Summary::read(&json, &run);
    let duration_s = summary.f64("duration_s");
    assert!(
        (1.8..5.0).contains(&duration_s),
        "duration_s {duration_s} for -t 2s"
    );
    // 2 users at one message per 20 ms for ~2 s: about 200, allow a wide margin.
    let requests = summary.u64("publish.requests");
    assert!(
        (50..=260).contains(&requests),
        "requests {requests} for 2 users x 50/s x 2 s"
    );
    run.assert_printed_summary();
}

#[test]
fn message_limit_stops_the_run_at_exactly_that_many_publishes() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-limit");
    let sub = broker.subscribe("mqblast/limit", 1);
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "3",
            "--messages",
            "777",
            "--qos",
            "1",
            "--topic",
            "mqblast/limit",
            "--interval",
            "0",
            "-t",
            "60s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    assert!(
        run.elapsed < Duration::from_secs(30),
        "the limit, not -t 60s, must stop it:\n{}",
        run.describe()
    );
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("publish.requests"), 777);
    assert!(
        sub.wait_for(777, Duration::from_secs(10)),
        "got {}",
        sub.count()
    );
    assert_eq!(
        sub.settle(Duration::from_millis(300), Duration::from_secs(5)),
        777,
        "no publish after the limit"
    );
}

#[test]
fn message_limit_with_an_interval_stops_as_soon_as_it_is_reached() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-limit-interval");
    let json = dir.file("summary.json");
    // 5 users x 10 ms: 50 messages take about 100 ms once everyone is connected.
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "5",
            "--messages",
            "50",
            "--qos",
            "0",
            "--interval",
            "10ms",
            "-t",
            "60s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}:\n{}",
        run.elapsed,
        run.describe()
    );
    assert_eq!(Summary::read(&json, &run).u64("publish.requests"), 50);
}

/// Start a long run against mosquitto, send `sig` once messages flow, and check the clean stop.
fn signal_stops_the_run_and_writes_the_summary(sig: libc::c_int) {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-signal");
    let sub = broker.subscribe("mqblast/signal", 1);
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--qos",
            "1",
            "--topic",
            "mqblast/signal",
            "--interval",
            "10ms",
            "-t",
            "60s",
            "--stop-timeout",
            "5s",
        ],
    );
    let running = spawn(mqblast_command(&args));
    assert!(
        sub.wait_for(20, Duration::from_secs(30)),
        "no messages before the signal (got {})",
        sub.count()
    );
    let signalled = Instant::now();
    running.signal(sig);
    let run = running.wait(Duration::from_secs(90));
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?} to stop after the signal",
        signalled.elapsed()
    );
    assert!(
        run.elapsed < Duration::from_secs(50),
        "ran to its -t instead of stopping:\n{}",
        run.describe()
    );

    let summary = Summary::read(&json, &run);
    let failures = summary.u64("failures");
    run.assert_code(if failures > 0 { 1 } else { 0 });
    let requests = summary.u64("publish.requests");
    assert!(requests > 0, "{}", summary.text());
    run.assert_printed_summary();
    assert!(
        sub.wait_for(
            requests.saturating_sub(summary.u64("publish.failures")),
            Duration::from_secs(10)
        ),
        "acknowledged publishes reached the subscriber"
    );
}

#[test]
fn sigint_mid_run_stops_cleanly_and_still_writes_the_json() {
    signal_stops_the_run_and_writes_the_summary(libc::SIGINT);
}

#[test]
fn sigterm_mid_run_stops_cleanly_and_still_writes_the_json() {
    signal_stops_the_run_and_writes_the_summary(libc::SIGTERM);
}

/// A run against a broker that never acknowledges, so its QoS 1 window fills and stays full.
fn stuck_run(dir: &TempDir, broker: &SilentBroker, stop_timeout: &str) -> (Running, String) {
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--qos",
            "1",
            "--interval",
            "0",
            "--max-inflight",
            "10",
            "--timeout",
            "120s",
            "--stop-timeout",
            stop_timeout,
            "-t",
            "120s",
        ],
    );
    let running = spawn(mqblast_command(&args));
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.publishes() < 10 {
        assert!(
            Instant::now() < deadline,
            "the silent broker saw only {} publishes",
            broker.publishes()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (running, json)
}

#[test]
fn unacknowledged_publishes_become_failures_when_the_stop_timeout_ends() {
    let broker = SilentBroker::start();
    let dir = TempDir::new("stop-timeout");
    let (running, json) = stuck_run(&dir, &broker, "2s");
    let signalled = Instant::now();
    running.signal(libc::SIGINT);
    let run = running.wait(Duration::from_secs(90));
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "did not wait for acks: stopped after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "waited {waited:?} with --stop-timeout 2s"
    );
    run.assert_code(1);
    let summary = Summary::read(&json, &run);
    assert!(
        summary.u64("publish.failures") >= 1,
        "the never-acked publishes are failures: {}",
        summary.text()
    );
    assert!(summary.u64("publish.requests") >= 10);
}

#[test]
fn second_sigint_stops_at_once_and_still_prints_the_summary() {
    let broker = SilentBroker::start();
    let dir = TempDir::new("stop-twice");
    let (mut running, json) = stuck_run(&dir, &broker, "60s");
    running.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        running.is_running(),
        "with acks outstanding and --stop-timeout 60s the first SIGINT waits"
    );
    let second = Instant::now();
    running.signal(libc::SIGINT);
    let run = running.wait(Duration::from_secs(60));
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "took {:?} after the second SIGINT",
        second.elapsed()
    );
    assert!(
        matches!(run.code, Some(0) | Some(1)),
        "exit code 0 or 1, not a signal death:\n{}",
        run.describe()
    );
    run.assert_printed_summary();
    let summary = Summary::read(&json, &run);
    assert!(summary.u64("publish.requests") >= 10, "{}", summary.text());
}
