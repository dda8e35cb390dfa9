//! Live user changes against a real mosquitto, checked by an independent subscriber: the
//! engine's steering surface raises and lowers the user target of a running test, and every
//! message is still accounted for (published = acknowledged = received), every stepped-down
//! user disconnects cleanly and no client id is ever connected twice at once.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqblast::config::{self, Command};
use mqblast::engine::{self, steer::Steering};
use mqblast::stats::Metric;

/// How long each user count publishes before the next change.
const PHASE: Duration = Duration::from_secs(2);

fn plan_for(host: &str, users: &str) -> Arc<mqblast::plan::Plan> {
    let args = [
        "mqblast",
        "run",
        "-H",
        host,
        "-u",
        users,
        "-r",
        "100",
        "--interval",
        "100ms",
        "--qos",
        "1",
        "--threads",
        "2",
        "--only-summary",
        "--topic",
        "live/{i}",
    ];
    match config::parse_from(args, &|_: &str| None) {
        Ok(Command::Run(plan)) => Arc::new(*plan),
        _ => panic!("test arguments must parse to a run"),
    }
}

/// Wait until the running test is attached to the steering (its workers were created).
fn wait_until_running(steering: &Steering) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while steering.running().is_none() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn users_raised_from_10_to_50_then_lowered_to_5_lose_no_message_and_never_overlap() {
    let broker = common::Mosquitto::start();
    let subscriber = broker.subscribe("live/#", 1);
    let plan = plan_for(&broker.addr(), "10");
    let addr = broker.addr().parse().expect("mosquitto address");
    let steering = Steering::new();
    let run = {
        let steering = Arc::clone(&steering);
        std::thread::spawn(move || {
            engine::run_steered(plan, vec![addr], &|| 0, &steering, 64)
                .expect("run")
                .0
        })
    };
    wait_until_running(&steering);
    std::thread::sleep(PHASE);
    steering.set_users(50, 100.0).expect("raise to 50");
    std::thread::sleep(PHASE);
    steering.set_users(5, 100.0).expect("lower to 5");
    std::thread::sleep(PHASE);
    assert!(steering.stop(), "a running test stops");
    let summary = run.join().expect("the run thread ends");

    let publish = summary.metric(Metric::Publish);
    let received = subscriber.settle(Duration::from_millis(500), Duration::from_secs(10));
    assert_eq!(publish.failures, 0, "no publish failed");
    assert_eq!(summary.sent, publish.ok, "published = acknowledged");
    assert_eq!(received, publish.ok, "acknowledged = received");
    let connect = summary.metric(Metric::Connect);
    assert_eq!(
        (connect.ok, connect.failures),
        (50, 0),
        "10 + 40 added, once each"
    );
    let sessions = summary.metric(Metric::Connection);
    assert_eq!(
        (sessions.ok, sessions.failures),
        (50, 0),
        "45 stepped down and 5 stopped, each with a DISCONNECT"
    );
    assert_eq!(summary.max_connected_users, 50);
    let log = broker.log();
    assert!(
        !log.contains("already connected"),
        "a client id was connected twice at once:\n{log}"
    );
    assert_eq!(
        log.matches(" disconnected.").count(),
        50,
        "every session ended with a DISCONNECT:\n{log}"
    );
}

#[test]
fn a_user_count_beyond_the_reserve_is_refused_with_the_reason_and_the_run_goes_on() {
    let broker = common::Mosquitto::start();
    let plan = plan_for(&broker.addr(), "2");
    let addr = broker.addr().parse().expect("mosquitto address");
    let steering = Steering::new();
    let run = {
        let steering = Arc::clone(&steering);
        std::thread::spawn(move || {
            engine::run_steered(plan, vec![addr], &|| 0, &steering, 4)
                .expect("run")
                .0
        })
    };
    wait_until_running(&steering);
    let refused = steering.set_users(5, 1.0).expect_err("5 of 4 reserved");
    assert!(refused.0.contains("reserved 4"), "{}", refused.0);
    steering.set_users(4, 100.0).expect("4 fit");
    std::thread::sleep(Duration::from_secs(1));
    steering.stop();
    let summary = run.join().expect("the run thread ends");
    assert_eq!(summary.metric(Metric::Connect).ok, 4);
    assert_eq!(mqblast::report::json::exit_code(&summary), 0);
}
