//! Requests and answers against a ThingsBoard-like platform (tests/platform/tb_platform.py)
//! on real mosquitto brokers, one per device (see `common::platform` for why).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::platform::{assert_flood_accounted, device_count, Platform};
use common::{frame, harness_client_id, open_subscription, packet, parse_publish, read_packet};

/// A hand-written device (3.1.1, QoS 0): connected and subscribed to `filters`.
fn raw_device(port: u16, filters: &[&str]) -> (TcpStream, Vec<u8>) {
    open_subscription(port, &harness_client_id("device"), None, filters, 0)
}

fn publish(stream: &mut TcpStream, topic: &str, payload: &str) {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(payload.as_bytes());
    stream
        .write_all(&frame(packet::PUBLISH << 4, &body))
        .unwrap();
}

/// The next PUBLISH (topic, payload) within 10 s, acknowledging QoS 1 ones.
fn next_publish(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String)> {
    loop {
        let (header, body) = read_packet(stream, buf, Duration::from_secs(10)).ok()?;
        if header >> 4 != packet::PUBLISH {
            continue;
        }
        let publish = parse_publish(header, &body).unwrap();
        if let Some(pkid) = publish.pkid {
            stream
                .write_all(&frame(packet::PUBACK << 4, &pkid.to_be_bytes()))
                .unwrap();
        }
        let payload = String::from_utf8(publish.payload.to_vec()).unwrap();
        return Some((publish.topic.to_string(), payload));
    }
}

/// The platform answers each device on that device's own broker, with ThingsBoard's integer id
/// (`000000007` is answered as `7`), and sends server-side RPC to a device once it has
/// published; another device's broker sees none of it.
#[test]
fn the_platform_answers_each_device_on_its_own_broker_as_thingsboard_does() {
    let platform = Platform::start(2, &["--server-rpc", "2", "--server-rpc-interval-ms", "1"]);
    let filters = [
        "v1/devices/me/attributes/response/+",
        "v1/devices/me/rpc/request/+",
    ];
    let (mut device, mut buf) = raw_device(platform.brokers[0].port, &filters);
    let (mut other, mut other_buf) = raw_device(platform.brokers[1].port, &["#"]);
    publish(
        &mut device,
        "v1/devices/me/attributes/request/000000007",
        r#"{"sharedKeys":"fw"}"#,
    );
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let Some((topic, payload)) = next_publish(&mut device, &mut buf) else {
            break;
        };
        seen.push(topic.clone());
        if let Some(id) = topic.strip_prefix("v1/devices/me/rpc/request/") {
            // Echo the params back, as mqblast's responder does by default.
            let value: serde_json::Value = serde_json::from_str(&payload).unwrap();
            let answer = format!("v1/devices/me/rpc/response/{id}");
            publish(&mut device, &answer, &value["params"].to_string());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "v1/devices/me/attributes/response/7",
            "v1/devices/me/rpc/request/1",
            "v1/devices/me/rpc/request/2",
        ]
    );
    // Device 1 never published: nothing was sent to it, and nothing of device 0 reached it.
    other
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(read_packet(&mut other, &mut other_buf, Duration::from_millis(300)).is_err());
    let counts = platform.stop(Duration::from_millis(500));
    assert_eq!(device_count(&counts, 0, "attribute_requests"), 1);
    assert_eq!(device_count(&counts, 0, "server_rpc_sent"), 2);
    assert_eq!(device_count(&counts, 0, "server_rpc_answered"), 2);
    assert_eq!(device_count(&counts, 0, "server_rpc_bad_payload"), 0);
    assert_eq!(device_count(&counts, 0, "server_rpc_unanswered"), 0);
    assert_eq!(device_count(&counts, 1, "server_rpc_sent"), 0);
}

// ---------------------------------------------------------------------------------------------
// mqblast against the platform
// ---------------------------------------------------------------------------------------------

use common::{load_args, run_mqblast, with, Summary, TempDir};

const LIMIT: Duration = Duration::from_secs(120);

/// The stream row named `name` in the JSON summary: (ok, failures).
fn stream_row(summary: &Summary, name: &str) -> (u64, u64) {
    let rows = summary.get("streams").as_array().unwrap();
    let row = rows
        .iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no stream row {name}:\n{}", summary.text()));
    (
        row["ok"].as_u64().unwrap(),
        row["failures"].as_u64().unwrap(),
    )
}

/// A count summed over the platform's devices.
fn total(counts: &serde_json::Value, name: &str, devices: usize) -> u64 {
    (0..devices).map(|d| device_count(counts, d, name)).sum()
}

/// Two devices, each sending telemetry, attribute requests and client-side RPC calls and
/// answering the platform's server-side RPC. MQTT 5, so the devices subscribe with No Local:
/// mosquitto would otherwise send a device its own RPC answers on the topic where its calls
/// are answered (ThingsBoard does not). Every request the platform answered is one success of
/// its row, every server-side request is answered once with its params, and nothing else is
/// counted.
#[test]
fn every_request_and_server_side_rpc_is_answered_once_and_each_row_counts_what_the_platform_saw() {
    let platform = Platform::start(
        2,
        &[
            "--server-rpc",
            "10",
            "--server-rpc-interval-ms",
            "20",
            "--rpc-delay-ms",
            "20",
        ],
    );
    let dir = TempDir::new("answers");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "2",
            "-t",
            "3s",
            "--stream",
            "telemetry,interval=100ms",
            "--stream",
            "attribute-request,interval=150ms",
            "--stream",
            "rpc-call,interval=100ms,qos=0",
            "--rpc-responder",
            "--mqtt-version",
            "5",
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    let counts = platform.stop(Duration::from_millis(500));
    let (telemetry, telemetry_failed) = stream_row(&summary, "telemetry");
    let (attributes, attributes_failed) = stream_row(&summary, "attribute-request");
    let (calls, calls_failed) = stream_row(&summary, "rpc-call");
    assert!(
        telemetry > 0 && attributes > 0 && calls > 0,
        "{}",
        summary.text()
    );
    assert_eq!(telemetry, total(&counts, "telemetry", 2), "{counts}");
    assert_eq!(
        attributes,
        total(&counts, "attribute_requests", 2),
        "{counts}"
    );
    assert_eq!(calls, total(&counts, "rpc_calls", 2), "{counts}");
    assert_eq!(
        attributes + calls,
        total(&counts, "answers_sent", 2),
        "{counts}"
    );
    assert_eq!(
        (telemetry_failed, attributes_failed, calls_failed),
        (0, 0, 0)
    );
    // Server-side RPC: 10 per device, each answered once with its params.
    for device in 0..2 {
        assert_eq!(
            device_count(&counts, device, "server_rpc_sent"),
            10,
            "{counts}"
        );
        assert_eq!(
            device_count(&counts, device, "server_rpc_answered"),
            10,
            "{counts}"
        );
    }
    for bad in [
        "server_rpc_bad_payload",
        "server_rpc_duplicate_answers",
        "server_rpc_unknown_answers",
        "server_rpc_unanswered",
        "not_understood",
        "other",
    ] {
        assert_eq!(total(&counts, bad, 2), 0, "{bad}: {counts}");
    }
    assert_eq!(summary.u64("rpc_responder.ok"), 20, "{}", summary.text());
    assert_eq!(summary.u64("rpc_responder.failures"), 0);
    assert!(summary.errors().is_empty(), "{:?}", summary.errors());
}

/// The platform answers some attribute requests twice, some late (after mqblast's timeout),
/// and adds answers for ids never used: each is counted by name, none as a success, and the
/// late ones' requests fail once, as timed out.
#[test]
fn late_duplicate_and_unknown_answers_are_counted_by_name_and_never_as_successes() {
    let platform = Platform::start(
        1,
        &[
            "--duplicate-every",
            "3",
            "--unknown-every",
            "4",
            "--late-every",
            "5",
            "--late-ms",
            "800",
            "--misbehave-until",
            "12",
        ],
    );
    let dir = TempDir::new("answers");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "1",
            "--messages",
            "30",
            "--timeout",
            "400ms",
            "--stream",
            "attribute-request,interval=100ms",
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    run.assert_code(1);
    let summary = Summary::read(&json, &run);
    let counts = platform.stop(Duration::from_millis(200));
    let sent = |name| device_count(&counts, 0, name);
    assert_eq!(sent("attribute_requests"), 30, "{counts}");
    // Requests 5 and 10 late; 3, 6, 9, 12 answered twice; 4, 8, 12 with an unknown answer.
    assert_eq!(
        (
            sent("late_sent"),
            sent("duplicates_sent"),
            sent("unknown_sent")
        ),
        (2, 4, 3),
        "{counts}"
    );
    let (ok, failed) = stream_row(&summary, "attribute-request");
    assert_eq!((ok, failed), (28, 2), "{}", summary.text());
    let errors = summary.errors();
    let count = |prefix: &str| summary.errors_starting_with(prefix);
    assert_eq!(count("request timed out: no answer"), 2, "{errors:?}");
    assert_eq!(
        count("late answer to a attribute-request request"),
        2,
        "{errors:?}"
    );
    assert_eq!(
        count("duplicate answer to a attribute-request request"),
        4,
        "{errors:?}"
    );
    assert_eq!(
        count("answer on the attribute-request response topic for an id this device did not use"),
        3,
        "{errors:?}"
    );
    assert_eq!(errors.len(), 4, "nothing else: {errors:?}");
}

/// 10,000 server-side requests in a second to one device whose answers wait 20 ms: its queue
/// holds 64, so most are dropped, each counted; every request received is answered or
/// dropped, the answers reach the platform once each, and the device's own telemetry is
/// exactly what it was told to send.
#[test]
fn a_flood_of_rpc_requests_is_bounded_and_counted_and_the_devices_telemetry_stays_exact() {
    let platform = Platform::start(
        1,
        &[
            "--flood-rps",
            "10000",
            "--flood-seconds",
            "1",
            "--flood-qos",
            "0",
        ],
    );
    let dir = TempDir::new("answers");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "1",
            "--messages",
            "400",
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
    let flood = device_count(&counts, 0, "server_rpc_sent");
    assert_eq!(flood, 10_000, "{counts}");
    let answered = assert_flood_accounted(&summary, flood);
    assert_eq!(
        device_count(&counts, 0, "server_rpc_answered"),
        answered,
        "{counts}"
    );
    assert_eq!(
        device_count(&counts, 0, "server_rpc_bad_payload"),
        0,
        "{counts}"
    );
    assert_eq!(device_count(&counts, 0, "server_rpc_duplicate_answers"), 0);
    // The device's own messages: all 400, every one acknowledged.
    let publish = summary.u64("publish.ok");
    assert_eq!(publish, 400, "{}", summary.text());
    assert_eq!(summary.u64("publish.failures"), 0);
    assert_eq!(device_count(&counts, 0, "telemetry"), 400, "{counts}");
    run.assert_code(1); // the drops are failures of the rpc-responder row
}

/// A PUBLISH to a device larger than its read buffer (64 KiB), on the very topics it listens
/// to, is counted and skipped as it arrives: the packets after it are read as before, so every
/// request is still answered and counted once.
#[test]
fn a_publish_larger_than_the_read_buffer_is_skipped_and_counted_without_losing_framing() {
    let platform = Platform::start(1, &[]);
    let port = platform.brokers[0].port;
    let dir = TempDir::new("answers");
    let json = dir.file("run.json");
    let args = with(
        load_args(&platform.hosts(), &json),
        &[
            "-u",
            "1",
            "-t",
            "3s",
            "--stream",
            "attribute-request,interval=50ms,qos=0",
            "--rpc-responder",
        ],
    );
    let run = common::spawn(common::mqblast_command(&args));
    // While it runs: three 100 KiB messages on its answer and request topics.
    std::thread::sleep(Duration::from_millis(1000));
    let (mut sender, _) = raw_device(port, &["unused/+"]);
    let big = "x".repeat(100 * 1024);
    for topic in [
        "v1/devices/me/attributes/response/1",
        "v1/devices/me/rpc/request/5",
        "v1/devices/me/attributes/response/2",
    ] {
        publish(&mut sender, topic, &big);
    }
    let run = run.wait(LIMIT);
    let summary = Summary::read(&json, &run);
    let counts = platform.stop(Duration::from_millis(300));
    let skipped = summary.errors_starting_with("PUBLISH of ");
    assert_eq!(skipped, 3, "{:?}", summary.errors());
    let (ok, failed) = stream_row(&summary, "attribute-request");
    assert_eq!(
        ok,
        device_count(&counts, 0, "attribute_requests"),
        "{counts}"
    );
    assert_eq!(failed, 0, "{}", summary.text());
    let errors = summary.errors();
    assert!(
        errors
            .iter()
            .all(|(reason, _)| reason.starts_with("PUBLISH of ")),
        "nothing else: {errors:?}"
    );
}
