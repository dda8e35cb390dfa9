//! A broker that is not there: failures are counted and the run still ends on time.
//!
//! Why it exists: a typo in the host or a broker that is down must not hang the generator, spin
//! a core, or lose the report. Connect failures are counted by reason, the run stops at its
//! run time, the JSON summary is written, and the exit code says something failed.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn refused_connections_are_counted_and_the_run_ends_on_time() {
    let port = free_port(); // nothing listens here
    let dir = TempDir::new("unreachable");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&format!("127.0.0.1:{port}"), &json),
        &["-u", "3", "--qos", "1", "-t", "2s", "--stop-timeout", "2s"],
    );
    let run = run_mqblast(&args, Duration::from_secs(60));
    run.assert_code(1);
    // Every client failed and v0.1 clients do not reconnect, so the run may end as soon as
    // the last one has failed: what matters is that it never outlives its run time.
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?} for a 2 s run:\n{}",
        run.elapsed,
        run.describe()
    );

    let summary = Summary::read(&json, &run);
    let refused = summary.errors_starting_with("connect failed: Connection refused");
    assert!(
        refused >= 1,
        "expected `connect failed: Connection refused ...`: {:?}",
        summary.errors()
    );
    assert!(summary.u64("connect.failures") >= 1, "{}", summary.text());
    assert_eq!(
        summary.u64("publish.requests"),
        0,
        "nothing can be published without a connection"
    );
    assert!(
        run.stderr.contains("connect failed: Connection refused"),
        "error report on stderr:\n{}",
        run.describe()
    );
}

#[test]
fn a_message_limit_that_can_never_be_reached_still_stops_at_the_run_time() {
    let port = free_port();
    let dir = TempDir::new("unreachable-limit");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&format!("127.0.0.1:{port}"), &json),
        &[
            "-u",
            "2",
            "--messages",
            "1000",
            "-t",
            "2s",
            "--stop-timeout",
            "1s",
        ],
    );
    let run = run_mqblast(&args, Duration::from_secs(60));
    run.assert_code(1);
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?}:\n{}",
        run.elapsed,
        run.describe()
    );
    Summary::read(&json, &run);
}
