//! Payload presets and device tokens named by index, against a real mosquitto: what an
//! independent subscriber receives from `--payload smart-meter` / `industrial-plc` parses as
//! JSON with every value in its range and `ts` stamped per message, and the users of
//! `--tokens-template 'DW{i:08}'` log in to the broker as ThingsBoard's devices.
//!
//! Why it exists: values are patched into pre-serialised frames at fixed widths; one byte off
//! and every message is invalid JSON that ThingsBoard drops. And a token template that names
//! the wrong devices makes every connection a CONNACK 5. Both are only proven by what the
//! broker and a separate client see.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::collector::{Collector, Delivery};
use common::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn parse(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(payload)))
}

fn in_range(value: &serde_json::Value, lo: f64, hi: f64, what: &str) -> f64 {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {value} is not a number"));
    assert!(
        (lo..=hi).contains(&number),
        "{what}: {number} outside {lo}..{hi}"
    );
    number
}

/// Per device (topic), the `ts` of its messages in arrival order: never decreasing, and not
/// one time for all (they were sent over seconds), all within the run's wall-clock window.
fn assert_ts_stamped_per_message(messages: &[(String, serde_json::Value)], window_ms: (u64, u64)) {
    let mut by_device: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (topic, body) in messages {
        let ts = body["ts"]
            .as_u64()
            .unwrap_or_else(|| panic!("ts: {}", body["ts"]));
        assert!(
            (window_ms.0..=window_ms.1).contains(&ts),
            "ts {ts} outside the run {window_ms:?}"
        );
        by_device.entry(topic).or_default().push(ts);
    }
    for (device, stamps) in by_device {
        assert!(
            stamps.windows(2).all(|pair| pair[0] <= pair[1]),
            "{device}: ts went back: {stamps:?}"
        );
        assert!(
            stamps.last() > stamps.first(),
            "{device}: one ts for every message: {stamps:?}"
        );
    }
}

#[test]
fn every_smart_meter_message_is_json_with_values_in_range_and_its_own_ts() {
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port, "presets/+/meter");
    let dir = TempDir::new("presets-meter");
    let json = dir.file("summary.json");
    let (users, messages) = (4, 80);
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            &users.to_string(),
            "--messages",
            &messages.to_string(),
            "--interval",
            "100ms",
            "--qos",
            "1",
            "--topic",
            "presets/{i}/meter",
            "--payload",
            "smart-meter",
        ],
    );
    let started_ms = now_ms();
    let run = run_mqblast(&args, RUN_LIMIT);
    let ended_ms = now_ms();
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("payload preset smart-meter (--payload)"),
        "the banner names the preset:\n{}",
        run.describe()
    );
    let summary = Summary::read(&json, &run);
    assert_eq!(
        summary.u64("publish.requests"),
        messages,
        "{}",
        summary.text()
    );
    assert_eq!(summary.get("config")["payload"], "smart-meter");

    let got = collector.settle(messages as usize, Duration::from_secs(30));
    assert_eq!(got.len(), messages as usize, "every message, once");
    let mut parsed = Vec::new();
    let mut leaks = 0;
    for Delivery { topic, payload, .. } in &got {
        let body = parse(payload);
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ts", "values"], "{body}");
        let values = &body["values"];
        let pulses = in_range(&values["pulseCounter"], 0.0, 999_999.0, "pulseCounter");
        assert_eq!(pulses.fract(), 0.0, "an integer");
        in_range(&values["batteryLevel"], 50.0, 99.0, "batteryLevel");
        let leakage = values["leakage"]
            .as_bool()
            .unwrap_or_else(|| panic!("leakage: {}", values["leakage"]));
        leaks += usize::from(leakage);
        parsed.push((topic.clone(), body));
    }
    let devices: BTreeSet<&str> = got.iter().map(|d| d.topic.as_str()).collect();
    assert_eq!(devices.len(), users, "{devices:?}");
    assert!(leaks > 0, "true 98% of the time: {leaks} of {messages}");
    assert_ts_stamped_per_message(&parsed, (started_ms.saturating_sub(1000), ended_ms + 1000));
}

/// Alarms of the global rate, as ThingsBoard's performance tests make them: under `--rate N
/// --alarms-per-second K --alarm-storm START..END` the first K messages of each second of the
/// storm carry the preset's alarm value (smart-meter: `batteryLevel` 10), every other message
/// a value in 50..99. Counted by the independent collector: exactly K x (END - START) alarms
/// in all, none outside the storm; and per second, the alarms grouped by their `ts` (whole
/// seconds from the first alarm's, rounded, so a send up to half a second late on a loaded
/// machine stays in its second) hold exactly K each.
#[test]
fn the_rates_alarms_are_k_per_second_of_the_storm_and_none_outside_it() {
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port, "alarms/+/meter");
    let dir = TempDir::new("presets-alarms");
    let json = dir.file("summary.json");
    // 20 devices at 40 msg/s: each second's first messages go to devices 0, 1, 2 (sequential
    // order), connected long before the storm starts at second 2.
    let (rate, alarms_per_s, storm) = (40u64, 3usize, (2u64, 5u64));
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "20",
            "-r",
            "100000",
            "--rate",
            &rate.to_string(),
            "--alarms-per-second",
            &alarms_per_s.to_string(),
            "--alarm-storm",
            &format!("{}..{}", storm.0, storm.1),
            "-t",
            "7s",
            "--qos",
            "1",
            "--topic",
            "alarms/{i}/meter",
            "--payload",
            "smart-meter",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    let published = summary.u64("publish.ok");
    assert!(
        published >= rate * 5,
        "a 7 s run at {rate}/s published {published}:\n{}",
        run.describe()
    );
    let got = collector.settle(published as usize, Duration::from_secs(30));
    assert_eq!(got.len() as u64, published, "every message, once");
    let mut alarm_ts = Vec::new();
    for Delivery { payload, .. } in &got {
        let body = parse(payload);
        let battery = &body["values"]["batteryLevel"];
        if battery.as_u64() == Some(10) {
            alarm_ts.push(body["ts"].as_u64().expect("ts"));
        } else {
            in_range(battery, 50.0, 99.0, "batteryLevel");
        }
    }
    let seconds = (storm.1 - storm.0) as usize;
    assert_eq!(
        alarm_ts.len(),
        alarms_per_s * seconds,
        "{alarms_per_s} alarms in each of the storm's {seconds} s: {alarm_ts:?}\n{}",
        run.describe()
    );
    alarm_ts.sort_unstable();
    let first = alarm_ts[0];
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for ts in &alarm_ts {
        *per_second.entry((ts - first + 500) / 1000).or_default() += 1;
    }
    let expected: BTreeMap<u64, usize> = (0..seconds as u64).map(|s| (s, alarms_per_s)).collect();
    assert_eq!(per_second, expected, "alarms by ts: {alarm_ts:?}");
}

#[test]
fn every_industrial_plc_message_carries_its_data_points_in_range() {
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port, "presets/+/plc");
    let dir = TempDir::new("presets-plc");
    let json = dir.file("summary.json");
    let (points, messages) = (250, 30);
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "3",
            "--messages",
            &messages.to_string(),
            "--interval",
            "100ms",
            "--qos",
            "0",
            "--topic",
            "presets/{i}/plc",
            "--payload",
            "industrial-plc",
            "--datapoints",
            &points.to_string(),
        ],
    );
    let started_ms = now_ms();
    let run = run_mqblast(&args, RUN_LIMIT);
    let ended_ms = now_ms();
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.get("config")["datapoints"], points);

    let got = collector.settle(messages, Duration::from_secs(30));
    assert_eq!(got.len(), messages, "every QoS 0 message on loopback");
    let mut parsed = Vec::new();
    for Delivery { topic, payload, .. } in &got {
        let body = parse(payload);
        let values = body["values"].as_object().unwrap();
        assert_eq!(values.len(), points);
        for n in 0..points {
            let key = format!("line{n:03}");
            in_range(&values[&key], 0.0, 100.0, &key);
        }
        parsed.push((topic.clone(), body));
    }
    assert_ts_stamped_per_message(&parsed, (started_ms.saturating_sub(1000), ended_ms + 1000));
}

/// User names of the clients mosquitto saw connect: `... as mqblast-3 (p2, c1, k60, u'DW..').`
fn connected_usernames(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|line| line.contains("New client connected"))
        .filter_map(|line| line.split("u'").nth(1))
        .filter_map(|rest| rest.split('\'').next())
        .map(String::from)
        .collect()
}

/// A run of `users` users (`more` flags added) with tokens from `DW{i:08}` from 1 against a
/// broker that knows only DW00000001..=DW00000006; returns the user names it saw.
fn templated_run(users: &str, more: &[&str]) -> BTreeSet<String> {
    let devices: Vec<String> = (1..=6).map(|n| format!("DW{n:08}")).collect();
    let listed: Vec<&str> = devices.iter().map(String::as_str).collect();
    let broker = Mosquitto::start_with_auth(&listed, SHARED_PASSWORD);
    let dir = TempDir::new("presets-tokens");
    let json = dir.file("summary.json");
    let mut flags = vec![
        "-u",
        users,
        "--tokens-template",
        "DW{i:08}",
        "--tokens-start",
        "1",
        "--password",
        SHARED_PASSWORD,
        "--messages",
        "6",
        "--interval",
        "50ms",
    ];
    flags.extend_from_slice(more);
    let run = run_mqblast(&with(load_args(&broker.addr(), &json), &flags), RUN_LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("connect.failures"), 0, "{}", summary.text());
    assert_eq!(summary.get("config")["tokens_template"], "DW{i:08}");
    connected_usernames(&broker.log())
}

#[test]
fn tokens_template_users_log_in_as_thingsboards_devices_and_shards_take_their_own() {
    let names = |range: std::ops::RangeInclusive<u32>| -> BTreeSet<String> {
        range.map(|n| format!("DW{n:08}")).collect()
    };
    assert_eq!(templated_run("3", &[]), names(1..=3));
    // The second of two shards of six users: client indexes 3..6, devices 4..=6.
    assert_eq!(templated_run("6", &["--shard", "2/2"]), names(4..=6));
}

/// Each stream's `industrial-plc` has its own data points: a stream's `datapoints`, else the
/// run's `--datapoints` (which no longer sizes only the top-level payload).
#[test]
fn each_streams_industrial_plc_carries_its_own_number_of_data_points() {
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port, "streams/+/+");
    let dir = TempDir::new("presets-plc-streams");
    let json = dir.file("summary.json");
    let messages = 24;
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--messages",
            &messages.to_string(),
            "--qos",
            "0",
            "--datapoints",
            "7",
            "--stream",
            "publish,name=own,topic=streams/{i}/own,interval=100ms,payload=industrial-plc,datapoints=3",
            "--stream",
            "publish,name=run,topic=streams/{i}/run,interval=100ms,payload=industrial-plc",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let got = collector.settle(messages, Duration::from_secs(30));
    assert_eq!(got.len(), messages, "every QoS 0 message on loopback");
    let mut per_stream: BTreeMap<String, usize> = BTreeMap::new();
    for Delivery { topic, payload, .. } in &got {
        let stream = topic.rsplit('/').next().unwrap().to_string();
        let body = parse(payload);
        let values = body["values"].as_object().unwrap();
        let expected = if stream == "own" { 3 } else { 7 };
        assert_eq!(values.len(), expected, "{topic}: {body}");
        for n in 0..expected {
            let key = format!("line{n:03}");
            in_range(&values[&key], 0.0, 100.0, &key);
        }
        *per_stream.entry(stream).or_default() += 1;
    }
    assert_eq!(
        per_stream.keys().collect::<Vec<_>>(),
        ["own", "run"],
        "both streams sent"
    );
}
