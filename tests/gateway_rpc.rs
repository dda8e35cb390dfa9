//! Gateway RPC (`--gateway --rpc-responder`) against the ThingsBoard-like platform
//! (tests/platform/tb_platform.py) on real mosquitto brokers, one per gateway (see
//! `common::platform`): the platform sends RPC requests on `v1/gateway/rpc` for every device a
//! gateway announced, and checks each answer there (device, id, payload, answered once), plus
//! requests no gateway can answer (malformed, or for a device no gateway carries).

mod common;

use std::time::Duration;

use common::platform::{assert_flood_accounted, device_count, Platform};
use common::{load_args, run_mqblast, with, Summary, TempDir};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);
/// The end-of-run note that counts a gateway's own answers come back to it.
const OWN_ANSWERS_NOTE: &str = "Gateway RPC answers received back on v1/gateway/rpc";

/// The stream row named `name` in the JSON summary.
fn stream_row<'a>(summary: &'a Summary, name: &str) -> &'a Value {
    let rows = summary.get("streams").as_array().unwrap();
    rows.iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no stream row {name}:\n{}", summary.text()))
}

/// The platform's gateway RPC count `name` for device `device` (0 when absent).
fn rpc_count(counts: &Value, device: &str, name: &str) -> u64 {
    counts["gateway_rpc"][device][name].as_u64().unwrap_or(0)
}

/// The platform's count `name` of requests no gateway can answer (0 when absent).
fn other_count(counts: &Value, name: &str) -> u64 {
    counts["gateway_rpc_other"][name].as_u64().unwrap_or(0)
}

/// Every device the platform saw announced got `requests` requests, each answered once with
/// the payload expected; returns the answers in all.
fn assert_each_device_answered(counts: &Value, devices: usize, requests: u64) -> u64 {
    let names: Vec<&String> = counts["gateway_connects"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names.len(), devices, "{counts}");
    for name in &names {
        assert_eq!(
            rpc_count(counts, name, "sent"),
            requests,
            "{name}: {counts}"
        );
        assert_eq!(
            rpc_count(counts, name, "answered"),
            requests,
            "{name}: {counts}"
        );
        for bad in ["bad_payload", "duplicate_answers", "unanswered"] {
            assert_eq!(rpc_count(counts, name, bad), 0, "{name} {bad}: {counts}");
        }
    }
    for bad in ["unknown_answers", "bad_answers"] {
        assert_eq!(other_count(counts, bad), 0, "{bad}: {counts}");
    }
    requests * devices as u64
}

/// Two gateways of three devices under MQTT 5 (No Local: a gateway never receives its own
/// answers): every request for each of its devices is answered once on `v1/gateway/rpc`
/// with its device, id and params; malformed requests and requests for an unknown device are
/// counted by name and not answered; the `rpc-responder` row counts exactly what the platform
/// sent, and the gateways' points go on as counted.
#[test]
fn gateways_answer_their_devices_rpc_once_each_and_count_what_they_cannot_answer() {
    let platform = Platform::start(
        2,
        &[
            "--gateway-rpc",
            "5",
            "--gateway-rpc-interval-ms",
            "20",
            "--gateway-rpc-malformed",
            "3",
            "--gateway-rpc-unknown",
            "2",
        ],
    );
    let dir = TempDir::new("gateway-rpc");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "2",
            "-t",
            "3s",
            "--gateway",
            "--devices-per-gateway",
            "3",
            "--interval",
            "200ms",
            "--rpc-responder",
            "--mqtt-version",
            "5",
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    let summary = Summary::read(&json, &run);
    let counts = platform.stop(Duration::from_millis(500));
    let answered = assert_each_device_answered(&counts, 6, 5);
    // Per gateway broker: 3 malformed (no id, not JSON, no device), 2 for an unknown device.
    assert_eq!(other_count(&counts, "malformed_sent"), 6, "{counts}");
    assert_eq!(other_count(&counts, "unknown_device_sent"), 4, "{counts}");
    assert_eq!(
        summary.u64("rpc_responder.ok"),
        answered,
        "{}",
        summary.text()
    );
    assert_eq!(summary.u64("rpc_responder.requests"), answered + 6 + 4);
    let errors = summary.errors();
    let count = |prefix: &str| summary.errors_starting_with(prefix);
    assert_eq!(
        count("RPC request not answered: its id is not"),
        2,
        "{errors:?}"
    );
    assert_eq!(
        count("RPC request not answered: payload is not"),
        2,
        "{errors:?}"
    );
    assert_eq!(
        count("RPC request not answered: its device is not"),
        2,
        "{errors:?}"
    );
    assert_eq!(
        count("gateway RPC request not answered: unknown device"),
        4,
        "{errors:?}"
    );
    assert_eq!(errors.len(), 4, "nothing else: {errors:?}");
    assert!(!run.stderr.contains(OWN_ANSWERS_NOTE), "{}", run.stderr);
    // The points went on: the row counts what the platform parsed.
    let telemetry = stream_row(&summary, "gateway telemetry");
    let messages: u64 = (0..2)
        .map(|d| device_count(&counts, d, "gateway_messages"))
        .sum();
    let points: u64 = counts["gateway_points"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(messages > 0, "{counts}");
    assert_eq!(
        telemetry["ok"].as_u64(),
        Some(messages),
        "{}",
        summary.text()
    );
    assert_eq!(telemetry["failures"].as_u64(), Some(0));
    assert_eq!(telemetry["points"].as_u64(), Some(points), "{counts}");
    run.assert_code(1); // the malformed and unknown-device requests are failures of the row
}

/// MQTT 3.1.1, a batched gateway of four devices and a fixed answer: every request is answered
/// once with that answer, and the gateway's own answers, which mosquitto sends back to it
/// (3.1.1 has no No Local), are counted apart in a note, never as requests.
#[test]
fn under_3_1_1_a_gateways_own_answers_coming_back_are_counted_apart_not_as_requests() {
    let answer = r#"{"success":true}"#;
    let platform = Platform::start(
        1,
        &[
            "--gateway-rpc",
            "4",
            "--gateway-rpc-interval-ms",
            "20",
            "--expect-answer",
            answer,
        ],
    );
    let dir = TempDir::new("gateway-rpc");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "1",
            "-t",
            "3s",
            "--gateway",
            "--devices-per-gateway",
            "4",
            "--gateway-mode",
            "batched",
            "--interval",
            "200ms",
            "--rpc-responder",
            "--rpc-response",
            answer,
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    let counts = platform.stop(Duration::from_millis(500));
    let answered = assert_each_device_answered(&counts, 4, 4);
    assert_eq!(
        summary.u64("rpc_responder.ok"),
        answered,
        "{}",
        summary.text()
    );
    assert_eq!(summary.u64("rpc_responder.requests"), answered);
    assert!(summary.errors().is_empty(), "{:?}", summary.errors());
    let line = run
        .stderr
        .lines()
        .find(|line| line.starts_with(OWN_ANSWERS_NOTE))
        .unwrap_or_else(|| panic!("no note of own answers:\n{}", run.stderr));
    assert!(
        line.ends_with(&format!(": {answered}, ignored, not requests")),
        "{line}"
    );
}

/// 10,000 gateway requests in a second for one device of a gateway whose answers wait 20 ms:
/// the gateway's queue holds 64, so most are dropped, each counted; every request received is
/// answered or dropped, each answer reaches the platform once, and the gateway's points are
/// exactly what it was told to send.
#[test]
fn a_flood_of_gateway_rpc_is_bounded_and_counted_and_the_gateways_points_stay_exact() {
    let platform = Platform::start(
        1,
        &[
            "--gateway-flood-rps",
            "10000",
            "--flood-seconds",
            "1",
            "--flood-qos",
            "0",
        ],
    );
    let dir = TempDir::new("gateway-rpc");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "1",
            "--messages",
            "800",
            "--gateway",
            "--devices-per-gateway",
            "2",
            "--interval",
            "10ms",
            "--rpc-responder",
            "--rpc-response-delay",
            "20ms",
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    let summary = Summary::read(&json, &run);
    let counts = platform.stop(Duration::from_millis(500));
    let flooded = counts["gateway_rpc"].as_object().unwrap();
    assert_eq!(flooded.len(), 1, "{counts}");
    let name = flooded.keys().next().unwrap();
    let flood = rpc_count(&counts, name, "flood_sent");
    assert_eq!(flood, 10_000, "{counts}");
    let answered = assert_flood_accounted(&summary, flood);
    assert_eq!(rpc_count(&counts, name, "answered"), answered, "{counts}");
    for bad in ["bad_payload", "duplicate_answers"] {
        assert_eq!(rpc_count(&counts, name, bad), 0, "{bad}: {counts}");
    }
    assert_eq!(other_count(&counts, "unknown_answers"), 0, "{counts}");
    // The gateway's own messages: all 800 points, every one acknowledged, 400 per device.
    let telemetry = stream_row(&summary, "gateway telemetry");
    assert_eq!(telemetry["ok"].as_u64(), Some(800), "{}", summary.text());
    assert_eq!(telemetry["failures"].as_u64(), Some(0));
    assert_eq!(
        device_count(&counts, 0, "gateway_messages"),
        800,
        "{counts}"
    );
    let points = counts["gateway_points"].as_object().unwrap();
    assert!(
        points.len() == 2 && points.values().all(|n| n.as_u64() == Some(400)),
        "{counts}"
    );
    run.assert_code(1); // the drops are failures of the rpc-responder row
}
