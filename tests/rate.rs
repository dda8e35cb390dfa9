//! `--rate N` against a real mosquitto, counted at the broker: N messages per second across all
//! users, whatever their number, and bad rate settings refused with exit 2.
//!
//! Why it exists: the schedule's arithmetic is unit-tested (src/workload/rate.rs); this proves
//! the engine follows it on real sockets. A subscriber that shares no code with mqblast stamps
//! each delivery as it arrives and reads the device from the topic (`rate/{i}`).
//!
//! Tolerances, stated for a loaded 2-core machine (mqblast, mosquitto, the subscriber and other
//! builds sharing the cores), every run bounded at 10 s of load:
//! - exact: the broker delivered exactly what mqblast reports as published (acked at QoS 1,
//!   written at QoS 0);
//! - the rate: each device is owed N/D messages per second it is connected (it misses the
//!   places that come before its connect), so the deliveries are within 2% of N/D x the
//!   device-seconds connected (mqblast's sessions: ended x mean length). This is counted, not
//!   timed, so late deliveries at the ends of the run do not move it. The total is at most
//!   N x the 10 s run (+2%) and at least N x 8 s (a loaded machine takes up to a second or so
//!   to connect 200 devices);
//! - every whole two-second window from the first arrival of the last device to connect (every
//!   device is in the run from then on, which must be at least half the run) holds between 50%
//!   and 150% of 2N, by arrival time: a stall of up to a second moves messages between
//!   seconds, none may starve a window or pile up twice its share;
//! - sequential order: every device sends its share of the time it was in the run (from its
//!   first arrival), give or take 3 messages and a tenth.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::collector::{Collector, Delivery};
use common::*;

const USERS: u64 = 200;
const RATE: u64 = 500;
const RUN_S: u64 = 10;
const LIMIT: Duration = Duration::from_secs(60);

/// (arrival time, device) of every delivery on `rate/{i}`; another topic fails the test.
fn arrivals_of(deliveries: &[Delivery]) -> Vec<(Instant, u64)> {
    deliveries
        .iter()
        .map(|d| {
            let device = d.topic.strip_prefix("rate/").and_then(|i| i.parse().ok());
            (
                d.at,
                device.unwrap_or_else(|| panic!("unexpected topic {:?}", d.topic)),
            )
        })
        .collect()
}

/// What one rated run published and for how long its devices were connected.
struct Ran {
    arrivals: Vec<(Instant, u64)>,
    /// mqblast's own count of published messages (acked at QoS 1, written at QoS 0).
    published: u64,
    /// Seconds the devices were connected, all sessions together (mqblast's connections
    /// section: sessions ended x their mean length).
    connected_s: f64,
    run: Finished,
}

/// One bounded `--rate` run of USERS users at RATE/s for RUN_S seconds.
fn rated_run(qos: &str, more: &[&str]) -> Ran {
    let broker = Mosquitto::start();
    // At QoS 1: the QoS 1 runs' messages come to it at QoS 1, each acknowledged.
    let collector = Collector::with_qos(broker.port, "rate/#", 1);
    let dir = TempDir::new("rate");
    let json = dir.file("summary.json");
    let users = USERS.to_string();
    let rate = RATE.to_string();
    let run_time = format!("{RUN_S}s");
    let mut args = load_args(&broker.addr(), &json);
    args.extend(
        [
            "-u",
            users.as_str(),
            "-r",
            "100000",
            "--rate",
            rate.as_str(),
            "-t",
            run_time.as_str(),
            "--qos",
            qos,
            "--topic",
            "rate/{i}",
        ]
        .map(String::from),
    );
    args.extend(more.iter().map(|s| s.to_string()));
    let run = run_mqblast(&args, LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    let published = match qos {
        "0" => summary.u64("publish.sent"),
        _ => summary.u64("publish.ok"),
    };
    let arrivals = arrivals_of(&collector.settle(published as usize, Duration::from_secs(15)));
    assert!(
        arrivals.len() as u64 >= published,
        "the broker delivered {} of the {published} messages mqblast published:\n{}",
        arrivals.len(),
        run.describe()
    );
    let connected_s =
        summary.u64("connections.ended") as f64 * summary.f64("connections.session_s.mean");
    Ran {
        arrivals,
        published,
        connected_s,
        run,
    }
}

/// The tolerances of the module comment, for any order.
fn assert_the_rate_held(ran: &Ran) {
    let (arrivals, run) = (&ran.arrivals, &ran.run);
    let total = arrivals.len() as u64;
    assert_eq!(
        total,
        ran.published,
        "the broker delivered what mqblast reports, exactly:\n{}",
        run.describe()
    );
    assert!(
        (RATE * (RUN_S - 2)..=RATE * RUN_S * 102 / 100).contains(&total),
        "{total} messages in a {RUN_S} s run at {RATE}/s:\n{}",
        run.describe()
    );
    // Each device is owed N/D messages per second it is connected.
    let owed = RATE as f64 / USERS as f64 * ran.connected_s;
    assert!(
        (total as f64 - owed).abs() <= 0.02 * owed,
        "{total} messages, while {:.1} device-seconds connected at {RATE}/s over {USERS} devices owe {owed:.0}: not within 2%:\n{}",
        ran.connected_s,
        run.describe()
    );
    let mut first_of: BTreeMap<u64, Instant> = BTreeMap::new();
    for &(at, device) in arrivals {
        first_of.entry(device).or_insert(at);
    }
    assert_eq!(first_of.len() as u64, USERS, "every device sent its part");
    // From the first message of the last device to connect, every device is in the run.
    let all_in = *first_of.values().max().unwrap();
    let last = arrivals.iter().map(|a| a.0).max().unwrap();
    assert!(
        last - all_in >= Duration::from_secs(RUN_S / 2),
        "the devices took {:?} of the {RUN_S} s run to connect:\n{}",
        Duration::from_secs(RUN_S).saturating_sub(last - all_in),
        run.describe()
    );
    // Two-second windows: a stall of up to a second on a loaded machine moves messages
    // between seconds, but cannot starve a window or pile twice its share into one.
    let mut per_window: BTreeMap<u64, u64> = BTreeMap::new();
    for (at, _) in arrivals.iter().filter(|a| a.0 >= all_in) {
        *per_window.entry((*at - all_in).as_secs() / 2).or_default() += 1;
    }
    let last_window = (last - all_in).as_secs() / 2;
    for (&window, &count) in per_window.range(..last_window) {
        assert!(
            (RATE..=RATE * 3).contains(&count),
            "seconds {}..{} (from when every device was in) held {count} messages, not within 50%..150% of {}: {per_window:?}\n{}",
            window * 2,
            window * 2 + 2,
            2 * RATE,
            run.describe()
        );
    }
}

/// Sequential order: each device sent its share of the time it was in the run (from its first
/// arrival to the last of all: a device that connected late missed the turns before), give or
/// take 3 messages and a tenth (arrival times move by the stalls of a loaded machine).
fn assert_every_device_sent_its_share(arrivals: &[(Instant, u64)]) {
    let mut per_device: BTreeMap<u64, (Instant, u64)> = BTreeMap::new();
    for &(at, device) in arrivals {
        per_device.entry(device).or_insert((at, 0)).1 += 1;
    }
    let last = arrivals.iter().map(|a| a.0).max().unwrap();
    for (device, (first, count)) in &per_device {
        let owed = (last - *first).as_secs_f64() * RATE as f64 / USERS as f64 + 1.0;
        assert!(
            (*count as f64 - owed).abs() <= 3.0 + owed / 10.0,
            "device {device} sent {count}, its share of its {:?} in the run is {owed:.1}",
            last - *first
        );
    }
}

#[test]
fn a_ten_second_rate_at_qos_1_lands_n_per_second_at_the_broker_from_every_device() {
    let ran = rated_run("1", &[]);
    assert!(
        ran.run
            .stderr
            .contains("rate 500 msg/s over 200 devices (sequential)"),
        "the banner names the rate:\n{}",
        ran.run.describe()
    );
    assert_the_rate_held(&ran);
    assert_every_device_sent_its_share(&ran.arrivals);
}

#[test]
fn a_ten_second_rate_at_qos_0_lands_n_per_second_at_the_broker_from_every_device() {
    let ran = rated_run("0", &[]);
    assert_the_rate_held(&ran);
    assert_every_device_sent_its_share(&ran.arrivals);
}

#[test]
fn a_ten_second_rate_in_random_order_lands_n_per_second_at_the_broker() {
    let ran = rated_run("1", &["--rate-order", "random", "--seed", "7"]);
    assert!(
        ran.run.stderr.contains("(random, seed 7)"),
        "the banner names the order and seed:\n{}",
        ran.run.describe()
    );
    assert_the_rate_held(&ran);
}

#[test]
fn devices_that_reconnect_keep_their_places_in_the_rate() {
    // Every connection is recycled 4 s after it connected (DISCONNECT, connect again at once),
    // twice in the run and not near its end (a reconnect cut by the stop would count as an
    // aborted connect): each device comes back as the same device and takes its schedule up
    // again, so the rate holds over the time the devices were connected and the sequential
    // shares stay even, less the places that fell into reconnects.
    let ran = rated_run("1", &["--churn", "4s"]);
    assert_the_rate_held(&ran);
    // Each of its two reconnects may cost a device a place, within the share's tolerance.
    assert_every_device_sent_its_share(&ran.arrivals);
}

// ---------------------------------------------------------------------------------------------
// Bad settings: exit 2, naming the keys (a dead broker and a 1 s run bound a wrong acceptance)
// ---------------------------------------------------------------------------------------------

fn refused(args: &[&str], needles: &[&str]) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend([
        "-H".to_string(),
        format!("127.0.0.1:{}", free_port()),
        "-t".into(),
        "1s".into(),
        "--headless".into(),
    ]);
    run_mqblast(&all, Duration::from_secs(30)).assert_usage_error(needles);
}

#[test]
fn a_rate_with_an_explicit_interval_exits_2_naming_both() {
    refused(
        &["--rate", "100", "--interval", "2s"],
        &["--rate 100", "--interval 2s"],
    );
}

#[test]
fn a_rate_of_zero_or_below_exits_2_naming_it() {
    refused(&["--rate", "0"], &["--rate 0", "1 to 1000000000"]);
    refused(&["--rate=-5"], &["--rate -5", "whole number"]);
}

#[test]
fn alarms_without_a_rate_or_above_it_exit_2_naming_the_keys() {
    refused(
        &["--alarms-per-second", "5"],
        &["--alarms-per-second 5", "rate"],
    );
    refused(
        &["--rate", "10", "--alarms-per-second", "11"],
        &["--alarms-per-second 11", "--rate 10"],
    );
}

#[test]
fn a_storm_that_ends_before_it_starts_exits_2_naming_it() {
    refused(
        &[
            "--rate",
            "10",
            "--alarms-per-second",
            "1",
            "--alarm-storm",
            "120..60",
        ],
        &["--alarm-storm 120..60", "ends before it starts"],
    );
}

#[test]
fn bad_rate_settings_in_config_toml_exit_2_with_the_line() {
    let dir = TempDir::new("rate-config");
    let config = dir.write(
        "config.toml",
        "users = 5\nrate = 50\nrate_order = \"shuffled\"\n",
    );
    refused(
        &["-f", &config],
        &["line 3", "rate_order", "sequential or random"],
    );
}
