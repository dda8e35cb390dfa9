//! Gateways (`--gateway`) against a real mosquitto, checked by an independent "platform": the
//! tests' raw MQTT collector (`common::Collector`, not mqblast's code) reads `v1/gateway/#`,
//! and this file parses every message as ThingsBoard would and counts, per device, its
//! connect and disconnect messages and its points.
//!
//! What must hold: every device is announced once before its first point and says goodbye
//! once after its last; every message parses in ThingsBoard's gateway form; the points the
//! platform counts equal the points and messages mqblast reports on the gateway rows (JSON and
//! CSV); each device sends its own points at its pace (counts within one of each other); in
//! `batched` mode the devices due together share messages.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::collector::{Collector, Delivery};
use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

/// The independent platform: subscribes to `v1/gateway/#` at QoS 1, acknowledging each.
fn start_platform(port: u16) -> Collector {
    Collector::with_qos(port, "v1/gateway/#", 1)
}

/// What the platform saw, per device, in arrival order.
#[derive(Debug, Default)]
struct Devices {
    /// Per device: its events in order: 'c' connect, 'p' a point, 'd' disconnect.
    events: BTreeMap<String, Vec<char>>,
    /// Point messages per topic, and the devices in each.
    messages: BTreeMap<String, Vec<usize>>,
}

impl Devices {
    fn of(received: &[Delivery]) -> Devices {
        let mut devices = Devices::default();
        for message in received {
            let body: Value = serde_json::from_slice(&message.payload).unwrap_or_else(|e| {
                panic!(
                    "{}: not JSON ({e}): {}",
                    message.topic,
                    String::from_utf8_lossy(&message.payload)
                )
            });
            match message.topic.as_str() {
                "v1/gateway/connect" | "v1/gateway/disconnect" => {
                    let name = body["device"].as_str().expect("a device name").to_string();
                    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
                    let event = if message.topic.ends_with("/connect") {
                        'c'
                    } else {
                        'd'
                    };
                    devices.events.entry(name).or_default().push(event);
                }
                "v1/gateway/telemetry" | "v1/gateway/attributes" => {
                    let map = body.as_object().expect("an object of devices");
                    assert!(!map.is_empty(), "an empty point message");
                    for (name, point) in map {
                        check_point(&message.topic, point);
                        devices.events.entry(name.clone()).or_default().push('p');
                    }
                    devices
                        .messages
                        .entry(message.topic.clone())
                        .or_default()
                        .push(map.len());
                }
                other => panic!("a message on {other}"),
            }
        }
        devices
    }

    /// Points per device (on any point topic).
    fn points(&self) -> BTreeMap<&str, usize> {
        self.events
            .iter()
            .map(|(name, events)| {
                let points = events.iter().filter(|&&e| e == 'p').count();
                (name.as_str(), points)
            })
            .collect()
    }

    /// Every device was announced once before its first point and said goodbye once after
    /// its last.
    fn assert_announced_once_around_the_points(&self) {
        for (name, events) in &self.events {
            let connects = events.iter().filter(|&&e| e == 'c').count();
            let disconnects = events.iter().filter(|&&e| e == 'd').count();
            assert_eq!((connects, disconnects), (1, 1), "{name}: {events:?}");
            assert_eq!(events.first(), Some(&'c'), "{name}: announced first");
            assert_eq!(events.last(), Some(&'d'), "{name}: goodbye last");
        }
    }
}

/// A telemetry point is `[{"ts": <ms>, "values": {...}}]`; an attributes point an object.
fn check_point(topic: &str, point: &Value) {
    if topic.ends_with("telemetry") {
        let list = point.as_array().expect("telemetry: a list of points");
        assert_eq!(list.len(), 1, "{point}");
        let ts = list[0]["ts"].as_u64().expect("a numeric ts");
        assert!(ts > 1_600_000_000_000, "ts {ts} is epoch milliseconds");
        assert!(list[0]["values"].is_object(), "{point}");
    } else {
        assert!(point.is_object() && point.get("ts").is_none(), "{point}");
    }
}

fn row<'a>(summary: &'a Summary, name: &str) -> &'a Value {
    summary
        .get("streams")
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}:\n{}", summary.text()))
}

fn count(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} of {value}"))
}

#[test]
fn per_point_gateways_send_each_devices_points_between_its_announcements() {
    let broker = Mosquitto::start();
    let platform = start_platform(broker.port);
    let dir = TempDir::new("gateway-per-point");
    let json = dir.file("run.json");
    let csv = dir.file("run");
    let html = dir.file("run.html");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "--html",
            &html,
            "-u",
            "3",
            "--gateway",
            "--devices-per-gateway",
            "4",
            "--interval",
            "200ms",
            "-t",
            "2s",
            "--qos",
            "1",
            "--csv",
            &csv,
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    run.assert_code(0);
    let received = platform.settle(0, Duration::from_secs(20));
    let summary = Summary::read(&json, &run);
    let devices = Devices::of(&received);

    // Device i (from 0) belongs to gateway i % 3: all twelve are there, each once.
    let names: Vec<String> = (0..12).map(|i| format!("DW{i:08}")).collect();
    assert_eq!(
        devices.events.keys().cloned().collect::<Vec<_>>(),
        names,
        "{}",
        run.describe()
    );
    devices.assert_announced_once_around_the_points();

    let points = devices.points();
    let total: usize = points.values().sum();
    let telemetry = row(&summary, "gateway telemetry");
    assert_eq!(
        count(telemetry, "points"),
        total as u64,
        "{}",
        summary.text()
    );
    assert_eq!(
        count(telemetry, "ok"),
        total as u64,
        "per-point: a message per point"
    );
    assert_eq!(count(telemetry, "failures"), 0);
    assert_eq!(devices.messages["v1/gateway/telemetry"].len(), total);
    assert_eq!(count(row(&summary, "gateway connect"), "ok"), 12);
    assert_eq!(count(row(&summary, "gateway disconnect"), "ok"), 12);
    // Each device at its own pace, every 200 ms for 2 s: about 10 each, within one.
    let (least, most) = (points.values().min(), points.values().max());
    let (least, most) = (*least.unwrap(), *most.unwrap());
    assert!(
        least >= 3 && most - least <= 1,
        "points per device: {points:?}"
    );

    // The CSV has the points beside the messages.
    let stats = std::fs::read_to_string(format!("{csv}_stats.csv")).unwrap();
    let header = stats.lines().next().unwrap();
    assert!(header.ends_with(",Device Points"), "{header}");
    let line = stats
        .lines()
        .find(|l| l.starts_with("MQTT,gateway telemetry,"))
        .unwrap_or_else(|| panic!("no gateway telemetry row:\n{stats}"));
    assert!(line.ends_with(&format!(",{total}")), "{line}");

    // The history: the points of each second and so far, beside the messages; the last
    // Aggregated row's total is the run's.
    let history = std::fs::read_to_string(format!("{csv}_stats_history.csv")).unwrap();
    let mut lines = history.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[header.len() - 2..],
        ["Device Points/s", "Total Device Points"],
        "{header:?}"
    );
    let aggregated: Vec<Vec<&str>> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|cells| cells[3] == "Aggregated")
        .collect();
    let per_second: f64 = aggregated
        .iter()
        .map(|cells| cells[cells.len() - 2].parse::<f64>().unwrap())
        .sum();
    let last = aggregated.last().expect("history rows");
    assert_eq!(last[last.len() - 1], total.to_string(), "{history}");
    assert_eq!(per_second, total as f64, "the seconds add up: {history}");

    // The HTML report: a device points column, the row's and Aggregated's the JSON's.
    let report = std::fs::read_to_string(&html).unwrap();
    let table = report
        .split_once("<h2>Request statistics</h2>")
        .expect("a request statistics table")
        .1;
    assert!(
        table.contains("<th># fails</th><th># device points</th>"),
        "{table}"
    );
    let cells =
        format!("<td class=\"l\">gateway telemetry</td><td>{total}</td><td>0</td><td>{total}</td>");
    assert!(table.contains(&cells), "{cells} missing from {table}");
    let aggregated_row = table.split_once("Aggregated</td>").unwrap().1;
    let cells: Vec<&str> = aggregated_row.split("<td>").skip(1).take(3).collect();
    assert_eq!(
        cells[2].trim_end_matches("</td>"),
        total.to_string(),
        "Aggregated: {aggregated_row}"
    );
}

#[test]
fn batched_gateways_fold_the_devices_due_together_into_few_messages() {
    let broker = Mosquitto::start();
    let platform = start_platform(broker.port);
    let dir = TempDir::new("gateway-batched");
    let json = dir.file("run.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--gateway",
            "--devices-per-gateway",
            "50",
            "--gateway-mode",
            "batched",
            "--device-start",
            "100",
            "--stream",
            "telemetry,interval=500ms",
            "--stream",
            r#"attributes,interval=1s,payload={"fw":"1.{i}","n":"{seq}"}"#,
            "-t",
            "2s",
            "--qos",
            "0",
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    run.assert_code(0);
    let received = platform.settle(0, Duration::from_secs(20));
    let summary = Summary::read(&json, &run);
    let devices = Devices::of(&received);
    assert_eq!(devices.events.len(), 100, "{}", run.describe());
    assert!(devices.events.contains_key("DW00000100"));
    assert!(devices.events.contains_key("DW00000199"));
    devices.assert_announced_once_around_the_points();

    for (topic, name) in [
        ("v1/gateway/telemetry", "gateway telemetry"),
        ("v1/gateway/attributes", "gateway attributes"),
    ] {
        let sizes = &devices.messages[topic];
        let points: usize = sizes.iter().sum();
        let reported = row(&summary, name);
        assert_eq!(
            count(reported, "ok"),
            sizes.len() as u64,
            "{topic} messages"
        );
        assert_eq!(count(reported, "points"), points as u64, "{topic} points");
        // 50 devices due together per gateway: folded, several devices a message.
        assert!(
            points >= 5 * sizes.len(),
            "{topic}: {points} points in {} messages",
            sizes.len()
        );
    }
    let points = devices.points();
    let (least, most) = (points.values().min(), points.values().max());
    assert!(
        *most.unwrap() - *least.unwrap() <= 2,
        "each device at its pace: {points:?}"
    );
}

#[test]
fn gateways_stepped_down_live_say_goodbye_for_their_devices_before_they_disconnect() {
    use mqblast::config::{self, Command};
    use mqblast::engine::{self, steer::Steering};
    use std::sync::Arc;

    let broker = Mosquitto::start();
    let platform = start_platform(broker.port);
    let host = broker.addr();
    let args = [
        "mqblast",
        "run",
        "-H",
        &host,
        "-u",
        "4",
        "-r",
        "100",
        "--gateway",
        "--devices-per-gateway",
        "5",
        "--interval",
        "100ms",
        "--qos",
        "1",
        "--threads",
        "2",
        "--only-summary",
    ];
    let plan = match config::parse_from(args, &|_: &str| None) {
        Ok(Command::Run(plan)) => Arc::new(*plan),
        _ => panic!("test arguments must parse to a run"),
    };
    let addr = host.parse().expect("mosquitto address");
    let steering = Steering::new();
    let run = {
        let steering = Arc::clone(&steering);
        std::thread::spawn(move || {
            engine::run_steered(plan, vec![addr], &|| 0, &steering, 8)
                .expect("run")
                .0
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while steering.running().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(2));
    steering.set_users(2, 100.0).expect("lower to 2 gateways");
    std::thread::sleep(Duration::from_secs(2));
    assert!(steering.stop(), "a running test stops");
    let summary = run.join().expect("the run thread ends");
    let received = platform.settle(0, Duration::from_secs(20));
    let devices = Devices::of(&received);

    // 4 gateways x 5 devices, device i on gateway i % 4: the two stepped down said goodbye for
    // theirs when they left, the others at the stop; nobody sent a point after its goodbye.
    assert_eq!(devices.events.len(), 20);
    devices.assert_announced_once_around_the_points();
    let rows = &summary.streams;
    let ok_of = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.ok);
    assert_eq!(ok_of("gateway connect"), Some(20));
    assert_eq!(ok_of("gateway disconnect"), Some(20));
    let telemetry = rows.iter().find(|r| r.name == "gateway telemetry").unwrap();
    let points: usize = devices.points().values().sum();
    assert_eq!(telemetry.points, Some(points as u64));
    assert_eq!(telemetry.failures, 0);
    // The stepped-down gateways' devices (2 and 3 mod 4) sent for about half the run.
    let of_gateway = |g: usize| -> usize {
        (0..5)
            .map(|k| devices.points()[format!("DW{:08}", k * 4 + g).as_str()])
            .sum()
    };
    assert!(
        of_gateway(3) < of_gateway(0),
        "{} points before the step-down, {} to the end",
        of_gateway(3),
        of_gateway(0)
    );
}
