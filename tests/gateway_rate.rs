//! `--gateway --rate N` against a real mosquitto: N device points per second across every
//! gateway device of the run, as ThingsBoard's performance tests send them with
//! `TEST_API=gateway` and `MESSAGES_PER_SECOND`, counted at the broker by a platform: the
//! tests' raw MQTT collector (`common::Collector`, not mqblast's code) receives every
//! `v1/gateway/telemetry` message, and this file parses each and stamps each device point with
//! its message's arrival.
//!
//! Tolerances, as tests/rate.rs states them for devices on their own connections (a loaded
//! 2-core machine, every run bounded at 10 s of load):
//! - exact: the platform counted exactly the points and messages mqblast reports on the
//!   `gateway telemetry` row (acked at QoS 1, written at QoS 0);
//! - the rate: each device is owed N/D points per second its gateway is connected, so the
//!   points are within 2% of N/D x the device-seconds connected (gateway sessions x their
//!   mean length x devices per gateway). The total is at most N x the 10 s run (+2%) and at
//!   least N x 8 s;
//! - every whole two-second window from the first point of the last device to be heard holds
//!   between 50% and 150% of 2N, by arrival time;
//! - sequential order: every device sends its share of the time it was in the run (from its
//!   first point), give or take 3 points and a tenth; and each gateway's devices take their
//!   turns in slot order, cyclically (device i on gateway i % G, the rate's order walking the
//!   devices by number), which one connection's messages keep exactly at the broker.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::collector::{Collector, Delivery};
use common::*;
use serde_json::Value;

const GATEWAYS: u64 = 4;
const DEVICES_PER_GATEWAY: u64 = 25;
const DEVICES: u64 = GATEWAYS * DEVICES_PER_GATEWAY;
const RATE: u64 = 200;
const RUN_S: u64 = 10;
const LIMIT: Duration = Duration::from_secs(60);

/// One device point as the platform received it.
#[derive(Debug, Clone)]
struct Point {
    at: Instant,
    /// The device's number (its name `DW%08d`).
    device: u64,
    /// Its smart-meter `batteryLevel`, if it has one.
    battery: Option<u64>,
    /// Its `ts` (epoch ms).
    ts_ms: u64,
}

/// What the platform saw: every point and the size of every telemetry message.
#[derive(Debug, Default)]
struct Seen {
    points: Vec<Point>,
    messages: Vec<usize>,
}

impl Seen {
    /// Every delivery parsed as ThingsBoard's gateway telemetry; anything else fails the test.
    fn of(deliveries: &[Delivery]) -> Seen {
        let mut seen = Seen::default();
        for delivery in deliveries {
            let points = parse_message(&delivery.payload, delivery.at)
                .unwrap_or_else(|e| panic!("{}: {e}", delivery.topic));
            seen.messages.push(points.len());
            seen.points.extend(points);
        }
        seen
    }
}

/// ThingsBoard's gateway telemetry: `{"DW00000001":[{"ts":..,"values":{..}}], ...}`.
fn parse_message(payload: &[u8], at: Instant) -> Result<Vec<Point>, String> {
    let text = String::from_utf8_lossy(payload);
    let body: Value = serde_json::from_slice(payload).map_err(|e| format!("{e}: {text}"))?;
    let devices = body.as_object().ok_or(format!("not an object: {text}"))?;
    if devices.is_empty() {
        return Err("an empty message".into());
    }
    let mut points = Vec::new();
    for (name, list) in devices {
        let device = name
            .strip_prefix("DW")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or(format!("device name {name:?}"))?;
        let list = list.as_array().ok_or(format!("{name}: not a list"))?;
        if list.len() != 1 {
            return Err(format!("{name}: {} points in one entry", list.len()));
        }
        let values = list[0]["values"].as_object().ok_or("no values")?;
        points.push(Point {
            at,
            device,
            battery: values.get("batteryLevel").and_then(Value::as_u64),
            ts_ms: list[0]["ts"].as_u64().ok_or("no numeric ts")?,
        });
    }
    Ok(points)
}

/// One bounded run of GATEWAYS gateways x DEVICES_PER_GATEWAY devices at `rate` points/s.
struct Ran {
    seen: Seen,
    /// mqblast's `gateway telemetry` row: messages (acked at QoS 1) and device points.
    messages: u64,
    points: u64,
    /// Device-seconds connected: gateway sessions x mean length x devices per gateway.
    device_s: f64,
    run: Finished,
}

fn rated_gateways(run_s: u64, more: &[&str]) -> Ran {
    let broker = Mosquitto::start();
    // The platform: `v1/gateway/telemetry` at QoS 1, each message acknowledged.
    let platform = Collector::with_qos(broker.port, "v1/gateway/telemetry", 1);
    let dir = TempDir::new("gateway-rate");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            &GATEWAYS.to_string(),
            "-r",
            "100000",
            "--gateway",
            "--devices-per-gateway",
            &DEVICES_PER_GATEWAY.to_string(),
            "-t",
            &format!("{run_s}s"),
            "--qos",
            "1",
        ],
    );
    let run = run_mqblast(&with(args, more), LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    let row = summary
        .get("streams")
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "gateway telemetry")
        .unwrap_or_else(|| panic!("no gateway telemetry row:\n{}", summary.text()))
        .clone();
    let messages = row["ok"].as_u64().unwrap();
    let points = row["points"].as_u64().unwrap();
    assert_eq!(row["failures"].as_u64(), Some(0), "{row}");
    let seen = Seen::of(&platform.settle(messages as usize, Duration::from_secs(15)));
    let device_s = summary.u64("connections.ended") as f64
        * summary.f64("connections.session_s.mean")
        * DEVICES_PER_GATEWAY as f64;
    Ran {
        seen,
        messages,
        points,
        device_s,
        run,
    }
}

/// The exact counts and the rate's tolerances of the module comment.
fn assert_the_rate_held(ran: &Ran) {
    let (points, run) = (&ran.seen.points, &ran.run);
    let total = points.len() as u64;
    assert_eq!(
        (ran.seen.messages.len() as u64, total),
        (ran.messages, ran.points),
        "the platform counted the messages and points mqblast reports, exactly:\n{}",
        run.describe()
    );
    assert!(
        (RATE * (RUN_S - 2)..=RATE * RUN_S * 102 / 100).contains(&total),
        "{total} points in a {RUN_S} s run at {RATE}/s:\n{}",
        run.describe()
    );
    let owed = RATE as f64 / DEVICES as f64 * ran.device_s;
    assert!(
        (total as f64 - owed).abs() <= 0.02 * owed,
        "{total} points, while {:.1} device-seconds connected at {RATE}/s over {DEVICES} devices owe {owed:.0}: not within 2%:\n{}",
        ran.device_s,
        run.describe()
    );
    let mut first_of: BTreeMap<u64, Instant> = BTreeMap::new();
    for point in points {
        first_of.entry(point.device).or_insert(point.at);
    }
    assert_eq!(
        first_of.keys().copied().collect::<Vec<_>>(),
        (0..DEVICES).collect::<Vec<_>>(),
        "every device DW00000000..DW{:08} sent its part",
        DEVICES - 1
    );
    let all_in = *first_of.values().max().unwrap();
    let last = points.iter().map(|p| p.at).max().unwrap();
    assert!(
        last - all_in >= Duration::from_secs(RUN_S / 2),
        "the devices took {:?} of the {RUN_S} s run to be heard:\n{}",
        Duration::from_secs(RUN_S).saturating_sub(last - all_in),
        run.describe()
    );
    let mut per_window: BTreeMap<u64, u64> = BTreeMap::new();
    for point in points.iter().filter(|p| p.at >= all_in) {
        *per_window
            .entry((point.at - all_in).as_secs() / 2)
            .or_default() += 1;
    }
    let last_window = (last - all_in).as_secs() / 2;
    for (&window, &count) in per_window.range(..last_window) {
        assert!(
            (RATE..=RATE * 3).contains(&count),
            "seconds {}..{} (from when every device was heard) held {count} points, not within 50%..150% of {}: {per_window:?}\n{}",
            window * 2,
            window * 2 + 2,
            2 * RATE,
            run.describe()
        );
    }
}

/// Sequential order: each device sent its share of its time in the run (from its first point
/// to the last of all), give or take 3 points and a tenth.
fn assert_every_device_sent_its_share(points: &[Point]) {
    let mut per_device: BTreeMap<u64, (Instant, u64)> = BTreeMap::new();
    for point in points {
        per_device.entry(point.device).or_insert((point.at, 0)).1 += 1;
    }
    let last = points.iter().map(|p| p.at).max().unwrap();
    for (device, (first, count)) in &per_device {
        let owed = (last - *first).as_secs_f64() * RATE as f64 / DEVICES as f64 + 1.0;
        assert!(
            (*count as f64 - owed).abs() <= 3.0 + owed / 10.0,
            "device {device} sent {count}, its share of its {:?} in the run is {owed:.1}",
            last - *first
        );
    }
}

/// Sequential order over interleaved gateways: device i is on gateway i % G, and the rate
/// walks the devices by number, so each gateway's points come from its devices in slot order,
/// cyclically (its connection keeps them in order to the platform).
fn assert_each_gateway_takes_its_devices_in_turn(points: &[Point]) {
    for gateway in 0..GATEWAYS {
        let slots: Vec<u64> = points
            .iter()
            .filter(|p| p.device % GATEWAYS == gateway)
            .map(|p| p.device / GATEWAYS)
            .collect();
        for pair in slots.windows(2) {
            assert_eq!(
                pair[1],
                (pair[0] + 1) % DEVICES_PER_GATEWAY,
                "gateway {gateway}'s devices out of turn (slots {slots:?})"
            );
        }
    }
}

#[test]
fn a_ten_second_rate_over_per_point_gateway_devices_lands_n_points_per_second_from_every_device() {
    let ran = rated_gateways(RUN_S, &["--rate", &RATE.to_string()]);
    assert!(
        ran.run
            .stderr
            .contains("rate 200 device points/s over 100 gateway devices (sequential)"),
        "the banner names the rate over the gateway devices:\n{}",
        ran.run.describe()
    );
    assert_eq!(ran.messages, ran.points, "per-point: a message per point");
    assert_the_rate_held(&ran);
    assert_every_device_sent_its_share(&ran.seen.points);
    assert_each_gateway_takes_its_devices_in_turn(&ran.seen.points);
}

#[test]
fn a_ten_second_rate_over_batched_gateways_counts_device_points_not_messages() {
    // Batched: the points due together (within the worker's early window) fold into one
    // message; the rate spreads a gateway's points 20 ms apart here, so most go alone. What
    // must hold is the count: the rate is of device points, whatever the messages carry.
    let ran = rated_gateways(
        RUN_S,
        &[
            "--rate",
            &RATE.to_string(),
            "--gateway-mode",
            "batched",
            "--rate-order",
            "random",
            "--seed",
            "11",
        ],
    );
    assert!(
        ran.messages <= ran.points,
        "{} > {}",
        ran.messages,
        ran.points
    );
    assert_the_rate_held(&ran);
}

/// Alarms of the rate on gateway devices: under `--alarms-per-second K --alarm-storm
/// START..END` with the smart-meter preset the first K points of each second of the storm
/// carry `batteryLevel` 10, every other point a value in 50..99: exactly K x (END - START)
/// alarms in all, grouped by their `ts` (whole seconds from the first alarm's, rounded) K a
/// second, and only on the devices whose turns open the second (sequential: devices 0..K, as
/// N is a multiple of D).
#[test]
fn the_rates_alarms_on_gateway_devices_are_k_per_second_of_the_storm_and_none_outside_it() {
    let (rate, alarms_per_s, storm) = (DEVICES, 3u64, (2u64, 5u64));
    let ran = rated_gateways(
        7,
        &[
            "--rate",
            &rate.to_string(),
            "--alarms-per-second",
            &alarms_per_s.to_string(),
            "--alarm-storm",
            &format!("{}..{}", storm.0, storm.1),
            "--payload",
            "smart-meter",
        ],
    );
    let points = &ran.seen.points;
    assert_eq!(points.len() as u64, ran.points, "{}", ran.run.describe());
    assert!(ran.points >= rate * 5, "{}", ran.run.describe());
    let mut alarms = Vec::new();
    for point in points {
        match point.battery {
            Some(10) => alarms.push((point.ts_ms, point.device)),
            Some(level) => assert!((50..=99).contains(&level), "batteryLevel {level}"),
            None => panic!("a smart-meter point without batteryLevel"),
        }
    }
    let seconds = storm.1 - storm.0;
    assert_eq!(
        alarms.len() as u64,
        alarms_per_s * seconds,
        "{alarms_per_s} alarms in each of the storm's {seconds} s: {alarms:?}\n{}",
        ran.run.describe()
    );
    assert!(
        alarms.iter().all(|&(_, device)| device < alarms_per_s),
        "{alarms:?}"
    );
    alarms.sort_unstable();
    let first_ms = alarms[0].0;
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for (ts_ms, _) in &alarms {
        *per_second
            .entry((ts_ms - first_ms + 500) / 1000)
            .or_default() += 1;
    }
    let expected: BTreeMap<u64, u64> = (0..seconds).map(|s| (s, alarms_per_s)).collect();
    assert_eq!(per_second, expected, "alarms by ts: {alarms:?}");
}
