//! `mqblast conn`: a connection storm that connects, holds with keep-alive pings, and reports
//! CONNACK latency, against a real mosquitto.

mod common;

use std::time::Duration;

use common::{run_mqblast, Mosquitto, Summary, TempDir};

#[test]
fn conn_holds_every_connection_for_the_hold_time_and_reports_connack_latency() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("conn-hold");
    let json = dir.file("out.json");
    let host = broker.addr();
    let args = [
        "conn",
        "-H",
        &host,
        "-u",
        "50",
        "--connect-rate",
        "500",
        "--hold",
        "1500ms",
        "--keep-alive",
        "1",
        "--only-summary",
        "--json",
        &json,
    ];
    let run = run_mqblast(&args, Duration::from_secs(30));
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("connect.ok"), 50);
    assert_eq!(summary.u64("connect.failures"), 0);
    assert!(summary.u64("connect.latency_us.p99") > 0);
    assert_eq!(summary.u64("publish.sent"), 0, "conn never publishes");
    assert_eq!(summary.u64("max_connected_users"), 50);
    // 50 users at 500/s is a 0.1 s ramp, then the 1.5 s hold.
    assert!(
        run.elapsed >= Duration::from_millis(1500),
        "held for {:?}",
        run.elapsed
    );
    assert_eq!(summary.get("config.command"), "conn");
}

#[test]
fn conn_reports_refused_connections_as_connect_failures() {
    let broker = Mosquitto::start_with_auth(&["good"], "pw");
    let dir = TempDir::new("conn-refused");
    let json = dir.file("out.json");
    let host = broker.addr();
    let args = [
        "conn",
        "-H",
        &host,
        "-u",
        "5",
        "--hold",
        "200ms",
        "--username",
        "bad",
        "--password",
        "pw",
        "--only-summary",
        "--json",
        &json,
    ];
    let run = run_mqblast(&args, Duration::from_secs(30));
    run.assert_code(1);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("connect.failures"), 5);
    assert_eq!(summary.errors_starting_with("CONNACK refused"), 5);
}
