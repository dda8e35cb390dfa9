//! Streams per user against a real mosquitto: each stream is its own row, and what each row
//! counts is what the broker delivered on that stream's topic, in the JSON result and the CSV
//! files alike; `--messages` counts every stream's publishes; bad stream definitions exit 2
//! naming the key. Counts and structure only, never timings: every run is bounded in time
//! or messages and stops itself.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{free_port, load_args, run_mqblast, with, Finished, Mosquitto, TempDir};

const LIMIT: Duration = Duration::from_secs(90);

/// `(name, requests, failures)` of each stream row of a JSON result, in plan order.
fn json_streams(doc: &serde_json::Value) -> Vec<(String, u64, u64)> {
    doc["streams"]
        .as_array()
        .expect("a streams list")
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap().to_string(),
                row["requests"].as_u64().unwrap(),
                row["failures"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Name -> Request Count of a Locust stats CSV (our names hold no commas).
fn csv_counts(path: &str) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[1].to_string(), cells[2].parse().unwrap())
        })
        .collect()
}

fn load(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn assert_ok(run: &Finished) {
    run.assert_code(0);
}

#[test]
fn each_stream_row_counts_what_the_broker_delivered_on_its_topic() {
    let broker = Mosquitto::start();
    // Independent subscribers, one per stream's topic, at QoS 1 so the broker keeps every
    // message for them (a QoS 2 stream is delivered at QoS 1, a QoS 0 one at QoS 0).
    let telemetry = broker.subscribe("v1/devices/me/telemetry", 1);
    let attributes = broker.subscribe("v1/devices/me/attributes", 1);
    let gps = broker.subscribe("site/+/gps", 1);
    let dir = TempDir::new("streams-rows");
    let json = dir.file("result.json");
    let csv = dir.file("run");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "3",
            "-t",
            "4s",
            "--csv",
            &csv,
            "--stream",
            "telemetry,interval=200ms",
            "--stream",
            r#"attributes,between=100ms..400ms,qos=0,payload={"fw":"1.{i}","n":"{seq}"}"#,
            "--stream",
            "publish,name=gps,topic=site/{i}/gps,constant_pacing=500ms,qos=2",
        ],
    );
    let run = run_mqblast(&args, LIMIT);
    assert_ok(&run);
    let doc = load(&json);
    let rows = json_streams(&doc);
    let names: Vec<&str> = rows.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["telemetry", "attributes", "gps"]);
    assert!(
        rows.iter()
            .all(|(_, requests, failures)| *requests > 0 && *failures == 0),
        "every stream published, nothing failed: {rows:?}"
    );
    // What each subscriber received once the broker has delivered everything.
    let quiet = Duration::from_secs(1);
    let received = [&telemetry, &attributes, &gps].map(|sub| sub.settle(quiet, LIMIT));
    for ((name, requests, _), received) in rows.iter().zip(received) {
        assert_eq!(
            *requests, received,
            "stream {name}: the row counts {requests}, the broker delivered {received}"
        );
    }
    // The publish row is their sum; the stream rows are the request rows of every output.
    let total: u64 = rows.iter().map(|(_, requests, _)| requests).sum();
    assert_eq!(doc["publish"]["requests"].as_u64(), Some(total));
    let connects = doc["connect"]["requests"].as_u64().unwrap();
    assert_eq!(doc["requests"].as_u64(), Some(total + connects));
    let stats = csv_counts(&format!("{csv}_stats.csv"));
    for (name, requests, _) in &rows {
        assert_eq!(stats.get(name), Some(requests), "CSV row {name}: {stats:?}");
    }
    assert_eq!(stats.get("Aggregated"), Some(&(total + connects)));
    assert!(
        !stats.keys().any(|name| name.starts_with("publish")),
        "no publish row beside the stream rows: {stats:?}"
    );
    // The paces set the shares: 5/s, about 4/s and 2/s per user.
    let count = |n: usize| rows[n].1;
    assert!(count(0) > count(2) && count(1) > count(2), "{rows:?}");
    // The history holds each second's stream counts, adding up to the row.
    let history_ok: u64 = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|second| second["streams"][2]["ok"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(history_ok, count(2));
    for sub in [&telemetry, &attributes, &gps] {
        assert_eq!(sub.error(), None);
        assert_eq!(sub.not_json(), 0);
    }
}

#[test]
fn a_saved_result_with_streams_renders_the_same_rows_again() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("streams-report");
    let json = dir.file("result.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--messages",
            "40",
            "--stream",
            "telemetry,interval=50ms",
            "--stream",
            "attributes,interval=100ms,qos=0",
        ],
    );
    assert_ok(&run_mqblast(&args, LIMIT));
    let again = dir.file("again");
    let report = run_mqblast(
        &[
            "report".to_string(),
            json.clone(),
            "--csv".into(),
            again.clone(),
        ],
        LIMIT,
    );
    assert_ok(&report);
    let stats = csv_counts(&format!("{again}_stats.csv"));
    let rows = json_streams(&load(&json));
    for (name, requests, _) in &rows {
        assert_eq!(stats.get(name), Some(requests), "{stats:?}");
    }
    // --messages counts every stream's publishes.
    let total: u64 = rows.iter().map(|(_, requests, _)| requests).sum();
    assert_eq!(total, 40, "{rows:?}");
    // Merging the result with itself doubles every stream row, by name.
    let merged = dir.file("merged.json");
    let merge = run_mqblast(
        &[
            "merge".to_string(),
            json.clone(),
            json.clone(),
            "-o".into(),
            merged.clone(),
        ],
        LIMIT,
    );
    assert_ok(&merge);
    let doubled: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|(name, requests, failures)| (name.clone(), 2 * requests, 2 * failures))
        .collect();
    assert_eq!(json_streams(&load(&merged)), doubled);
}

/// A run of `args` against a dead port with a short run time: a definition that is wrongly
/// accepted ends quickly with exit 1, and the test fails with the output.
fn refused(args: &[&str], needles: &[&str]) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend([
        "-H".to_string(),
        format!("127.0.0.1:{}", free_port()),
        "-t".into(),
        "1s".into(),
        "--headless".into(),
    ]);
    run_mqblast(&all, LIMIT).assert_usage_error(needles);
}

#[test]
fn bad_stream_definitions_exit_2_naming_the_key_and_where() {
    refused(
        &["--stream", "telemtry"],
        &["--stream telemtry", "unknown kind"],
    );
    refused(
        &["--stream", "attributes,between=3s..1s"],
        &["between = 3s..1s", "minimum (3s) is above the maximum (1s)"],
    );
    refused(&["--stream", "publish,qos=1"], &["needs a topic"]);
    refused(
        &["--stream", "telemetry,interval=1s,constant_pacing=2s"],
        &["interval and constant_pacing: one pace per stream"],
    );
    refused(
        &["--stream", "telemetry,weight=2"],
        &["weight = 2", "global rate"],
    );
    refused(
        &["--stream", "telemetry,qos=3"],
        &["qos = 3", "must be 0, 1 or 2"],
    );
    let dir = TempDir::new("streams-bad-file");
    let config = dir.write(
        "config.toml",
        "users = 1\n\n[[stream]]\nkind = \"telemetry\"\n\n[[stream]]\nkind = \"attributes\"\nbetween = [\"5s\", \"1s\"]\n",
    );
    refused(
        &["-f", &config],
        &[
            "config.toml line 8: [[stream]] #2: between",
            "above the maximum",
        ],
    );
}
