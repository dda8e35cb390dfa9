//! Streams: `[[stream]]` tables, `--stream` and `MQBLAST_STREAM`, and their errors.

use super::TestDir;
use crate::workload::pace::Pace;
use crate::workload::stream::{StreamKind, MAX_STREAMS};

const SECOND_NS: u64 = 1_000_000_000;

#[test]
fn without_streams_the_single_stream_settings_are_one_telemetry_stream_with_todays_row_name() {
    let plan = TestDir::new()
        .plan(
            &["--qos", "0", "--topic", "d/{i}/t", "--interval", "250ms"],
            &[],
        )
        .unwrap();
    assert_eq!(plan.streams.len(), 1);
    let stream = &plan.streams[0];
    assert_eq!(stream.kind, StreamKind::Telemetry);
    assert_eq!(stream.name, "publish:0:d/{i}/t");
    assert_eq!((stream.topic.as_str(), stream.qos), ("d/{i}/t", 0));
    assert_eq!(
        stream.pace,
        Pace::Interval {
            interval_ns: SECOND_NS / 4
        }
    );
    assert!(!stream.declared);
    assert_eq!(plan.effective_config["stream"], serde_json::json!([]));
}

#[test]
fn stream_tables_take_kind_defaults_and_the_runs_payload_qos_and_interval() {
    let dir = TestDir::new();
    dir.write("attrs.json", r#"{"fw":"1.0.{i}"}"#);
    dir.write(
        "config.toml",
        r#"qos = 0
interval = "2s"

[[stream]]
kind = "telemetry"

[[stream]]
kind = "attributes"
payload = "attrs.json"
qos = 1
between = ["1s", "3s"]

[[stream]]
kind = "publish"
name = "gps"
topic = "v1/lptrk/{token}"
payload = { lat = 1.5, seq = "{seq}" }
constant_pacing = "500ms"
"#,
    );
    let plan = dir.plan(&[], &[]).unwrap();
    let names: Vec<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["telemetry", "attributes", "gps"]);
    let [telemetry, attributes, gps] = &plan.streams[..] else {
        panic!("three streams");
    };
    assert_eq!(telemetry.topic, "v1/devices/me/telemetry");
    assert_eq!(telemetry.qos, 0);
    assert_eq!(
        telemetry.pace,
        Pace::Interval {
            interval_ns: 2 * SECOND_NS
        }
    );
    assert_eq!(telemetry.payload.source(), plan.payload.source());
    assert_eq!(attributes.topic, "v1/devices/me/attributes");
    assert_eq!(attributes.qos, 1);
    assert_eq!(attributes.payload.source(), dir.path_of("attrs.json"));
    assert_eq!(
        attributes.pace,
        Pace::Between {
            min_ns: SECOND_NS,
            max_ns: 3 * SECOND_NS
        }
    );
    assert_eq!(gps.kind, StreamKind::Publish);
    assert_eq!(gps.topic, "v1/lptrk/{token}");
    assert_eq!(gps.payload.objects()[0]["seq"], "{seq}");
    assert_eq!(
        gps.pace,
        Pace::ConstantPacing {
            pace_ns: SECOND_NS / 2
        }
    );
    assert!(plan.streams.iter().all(|s| s.declared));
    let recorded = &plan.effective_config["stream"];
    assert_eq!(recorded[1]["between"], serde_json::json!(["1s", "3s"]));
    assert_eq!(recorded[2]["name"], "gps");
}

#[test]
fn the_stream_flag_repeats_and_keeps_the_commas_of_inline_json() {
    let plan = TestDir::new()
        .plan(
            &[
                "--stream",
                "attributes,interval=5s,name=attrs",
                "--stream",
                r#"publish,topic=a/{i},payload={"x":1,"y":[1,2]},qos=2,between=1s..2s"#,
            ],
            &[],
        )
        .unwrap();
    assert_eq!(plan.streams.len(), 2);
    assert_eq!(plan.streams[0].name, "attrs");
    assert_eq!(
        plan.streams[0].pace,
        Pace::Interval {
            interval_ns: 5 * SECOND_NS
        }
    );
    assert_eq!(plan.streams[1].name, "a/{i}");
    assert_eq!(plan.streams[1].qos, 2);
    assert_eq!(plan.streams[1].payload.objects()[0]["y"][1], 2);
}

#[test]
fn the_environment_separates_definitions_with_semicolons_and_flags_win() {
    let dir = TestDir::new();
    let env = [("MQBLAST_STREAM", "telemetry ; attributes,interval=30s")];
    let plan = dir.plan(&[], &env).unwrap();
    assert_eq!(plan.streams.len(), 2);
    let plan = dir.plan(&["--stream", "attributes"], &env).unwrap();
    assert_eq!(plan.streams.len(), 1);
    assert_eq!(plan.streams[0].kind, StreamKind::Attributes);
}

#[test]
fn the_effective_configuration_prints_streams_that_read_back_as_the_same_plan() {
    let dir = TestDir::new();
    let first = dir
        .plan(
            &[
                "--stream",
                "telemetry,between=1s..3s",
                "--stream",
                r#"publish,topic=x/{i},qos=0,payload={"a":[1,"{seq}"]}"#,
            ],
            &[],
        )
        .unwrap();
    let text = crate::config::render_effective(&first);
    let line = text.lines().find(|l| l.starts_with("stream = ")).unwrap();
    let toml_line = line.split("  #").next().unwrap();
    dir.write("config.toml", toml_line);
    let again = dir.plan(&[], &[]).unwrap();
    let shape = |plan: &crate::plan::Plan| {
        plan.streams
            .iter()
            .map(|s| {
                let objects = s.payload.objects().to_vec();
                (s.name.clone(), s.topic.clone(), s.qos, s.pace, objects)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&again), shape(&first));
}

/// The error for config.toml `text`.
fn file_error(text: &str) -> (TestDir, String) {
    let dir = TestDir::new();
    dir.write("config.toml", text);
    let err = dir.error(&[], &[]);
    (dir, err)
}

#[test]
fn an_unknown_kind_is_named_with_its_file_and_line() {
    let (dir, err) = file_error("users = 2\n\n[[stream]]\nkind = \"telemtry\"\n");
    assert_eq!(
        err,
        format!(
            "{} line 4: [[stream]] #1: kind = \"telemtry\": unknown kind (kinds: telemetry, attributes, attribute-request, rpc-call, publish)",
            dir.path_of("config.toml")
        )
    );
}

#[test]
fn between_with_its_minimum_above_its_maximum_names_the_key_and_line() {
    let (dir, err) = file_error(
        "[[stream]]\nkind = \"telemetry\"\n\n[[stream]]\nkind = \"attributes\"\nbetween = [\"5s\", \"1s\"]\n",
    );
    assert_eq!(
        err,
        format!(
            "{} line 6: [[stream]] #2: between = [\"5s\", \"1s\"]: the minimum (5s) is above the maximum (1s)",
            dir.path_of("config.toml")
        )
    );
}

#[test]
fn a_publish_stream_without_a_topic_names_its_table() {
    let (dir, err) =
        file_error("[[stream]]\nkind = \"telemetry\"\n\n[[stream]]\nkind = \"publish\"\n");
    assert_eq!(
        err,
        format!(
            "{} line 4: [[stream]] #2: kind = \"publish\" needs a topic (topic = ...): it has no default",
            dir.path_of("config.toml")
        )
    );
}

#[test]
fn two_paces_a_weight_a_bad_qos_and_an_unknown_key_are_refused_by_name() {
    let dir = TestDir::new();
    let err = dir.error(&["--stream", "telemetry,interval=1s,between=1s..2s"], &[]);
    assert_eq!(
        err,
        "--stream telemetry,interval=1s,between=1s..2s: interval and between: one pace per stream (interval, between, constant_pacing, weight)"
    );
    let err = dir.error(&["--stream", "telemetry,weight=3"], &[]);
    assert!(
        err.starts_with(
            "--stream telemetry,weight=3: weight = 3: a weight is a share of the global rate"
        ),
        "{err}"
    );
    let err = dir.error(&["--stream", "attributes,qos=3"], &[]);
    assert_eq!(err, "--stream attributes,qos=3: qos = 3: must be 0, 1 or 2");
    let err = dir.error(&["--stream", "attributes,intervall=1s"], &[]);
    assert!(
        err.starts_with(
            "--stream attributes,intervall=1s: unknown stream key \"intervall\" (keys: kind, name"
        ),
        "{err}"
    );
    let (_, err) = file_error("[[stream]]\nkind = \"telemetry\"\nqos = 7\n");
    assert!(
        err.ends_with("line 3: [[stream]] #1: qos = 7: must be 0, 1 or 2"),
        "{err}"
    );
}

#[test]
fn streams_whose_rows_would_share_a_name_are_refused() {
    let err = TestDir::new().error(
        &["--stream", "telemetry", "--stream", "telemetry,interval=5s"],
        &[],
    );
    assert_eq!(
        err,
        "--stream telemetry,interval=5s: its row name \"telemetry\" is also stream 1's: give one a name (name = ...)"
    );
    let err = TestDir::new().error(&["--stream", "telemetry,name=connect"], &[]);
    assert!(
        err.contains("name = connect: is the name of one of mqblast's own rows"),
        "{err}"
    );
}

#[test]
fn request_kinds_take_thingsboards_topics_and_a_topic_of_their_own_must_carry_the_id() {
    let plan = TestDir::new()
        .plan(
            &["--stream", "attribute-request", "--stream", "rpc-call"],
            &[],
        )
        .unwrap();
    let topics: Vec<&str> = plan.streams.iter().map(|s| s.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "v1/devices/me/attributes/request/{id}",
            "v1/devices/me/rpc/request/{id}"
        ]
    );
    let ok = TestDir::new().plan(
        &["--stream", "rpc-call,topic=dev/{token}/request/{id}"],
        &[],
    );
    assert!(ok.is_ok());
    let err = TestDir::new().error(&["--stream", "rpc-call,topic=v1/x/request"], &[]);
    assert!(err.contains("has no {id}"), "{err}");
    let err = TestDir::new().error(&["--stream", "rpc-call,topic=v1/x/{id}/y"], &[]);
    assert!(err.contains("must end in /request/{id}"), "{err}");
    let err = TestDir::new().error(&["--stream", "telemetry,topic=v1/{id}"], &[]);
    assert!(err.contains("unknown placeholder {id}"), "{err}");
    let err = TestDir::new().error(
        &[
            "--stream",
            "rpc-call",
            "--mqtt-version",
            "5",
            "--topic-alias",
        ],
        &[],
    );
    assert!(
        err.starts_with("--topic-alias true: a request stream's topic carries its request id"),
        "{err}"
    );
}

#[test]
fn a_topic_setting_beside_streams_is_a_usage_error_naming_both() {
    let err = TestDir::new().error(&["--topic", "x/y", "--stream", "telemetry"], &[]);
    assert!(
        err.starts_with("--topic x/y with --stream: the topic setting is the single stream's"),
        "{err}"
    );
    // The shipped config.toml repeats the default topic: that is no conflict.
    let dir = TestDir::new();
    dir.write("config.toml", "topic = \"v1/devices/me/telemetry\"\n");
    assert!(dir.plan(&["--stream", "attributes"], &[]).is_ok());
}

#[test]
fn topics_are_checked_as_the_single_topic_is() {
    let err = TestDir::new().error(&["--stream", "publish,topic=a/+/b"], &[]);
    assert!(
        err.ends_with(
            "topic = a/+/b: must not contain the wildcards + or # (a PUBLISH names one topic)"
        ),
        "{err}"
    );
    let err = TestDir::new().error(&["--stream", "publish,topic=a/{idx}"], &[]);
    assert!(
        err.ends_with("unknown placeholder {idx} (known: {i}, {token}, {client_id})"),
        "{err}"
    );
}

#[test]
fn more_streams_than_a_user_may_have_are_refused() {
    let specs: Vec<String> = (0..=MAX_STREAMS)
        .map(|n| format!("publish,topic=t/{n}"))
        .collect();
    let mut args = Vec::new();
    for spec in &specs {
        args.extend(["--stream", spec.as_str()]);
    }
    let err = TestDir::new().error(&args, &[]);
    assert_eq!(err, "--stream: 33 streams, at most 32 per user");
}

#[test]
fn topic_alias_needs_a_single_stream() {
    let err = TestDir::new().error(
        &[
            "--mqtt-version",
            "5",
            "--topic-alias",
            "--stream",
            "telemetry",
            "--stream",
            "attributes",
        ],
        &[],
    );
    assert!(
        err.starts_with("--topic-alias true: one topic alias per connection, and 2 streams"),
        "{err}"
    );
}

#[test]
fn under_a_rate_weights_are_shares_and_a_stream_without_a_pace_takes_one() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[
                "--rate",
                "10",
                "--stream",
                "telemetry,weight=3",
                "--stream",
                "attributes",
                "--stream",
                "publish,topic=t/{i},between=1s..3s",
            ],
            &[],
        )
        .unwrap();
    let paces: Vec<Pace> = plan.streams.iter().map(|s| s.pace).collect();
    assert_eq!(
        paces,
        [
            Pace::Weight { weight: 3 },
            Pace::Weight { weight: 1 },
            Pace::Between {
                min_ns: 1_000_000_000,
                max_ns: 3_000_000_000
            }
        ]
    );
    // The single stream of a rated run is one weighted stream.
    let single = dir.plan(&["--rate", "10"], &[]).unwrap();
    assert_eq!(single.streams[0].pace, Pace::Weight { weight: 1 });
    let err = dir.error(&["--rate", "10", "--stream", "telemetry,weight=0"], &[]);
    assert_eq!(
        err,
        "--stream telemetry,weight=0: weight = 0: must be 1 to 1000000"
    );
    let err = dir.error(&["--rate", "10", "--stream", "telemetry,interval=2s"], &[]);
    assert!(
        err.starts_with("--rate 10 with --stream: every stream has a pace of its own"),
        "{err}"
    );
}
