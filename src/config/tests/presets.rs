//! Payload presets (`--payload smart-meter`, `--datapoints`), device tokens named by a
//! template (`--tokens-template`, `--tokens-start`), and `init --from-locust` stamping a
//! numeric `ts`.

use super::TestDir;
use crate::config::*;
use crate::workload::fields::Kind;

#[test]
fn a_preset_name_selects_the_built_in_payload_and_the_effective_config_names_it() {
    let dir = TestDir::new();
    let plan = dir.plan(&["--payload", "smart-meter"], &[]).unwrap();
    assert_eq!(plan.payload.source(), "preset smart-meter");
    assert_eq!(plan.effective_config["payload"], "smart-meter");
    assert_eq!(plan.effective_config["datapoints"], serde_json::Value::Null);
    dir.write("config.toml", "payload = \"smart-tracker\"\n");
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.payload.setting(), "smart-tracker");
    let plan = dir
        .plan(&[], &[("MQBLAST_PAYLOAD", "industrial-plc")])
        .unwrap();
    assert_eq!(plan.payload.fields_of(0).len(), 61, "60 data points and ts");
}

#[test]
fn datapoints_size_the_plc_preset_within_its_bound() {
    let dir = TestDir::new();
    let plan = dir
        .plan(&["--payload", "industrial-plc", "--datapoints", "999"], &[])
        .unwrap();
    assert_eq!(plan.payload.fields_of(0).len(), 1000);
    assert_eq!(plan.effective_config["datapoints"], 999);
    assert_eq!(
        plan.payload.source(),
        "preset industrial-plc (999 data points)"
    );
    for bad in ["0", "1000", "x"] {
        let err = dir.error(&["--payload", "industrial-plc", "--datapoints", bad], &[]);
        assert_eq!(
            err,
            format!("--datapoints {bad}: must be 1 to 999 (ThingsBoard's own bound; the frame grows by 29 bytes a point)")
        );
    }
}

#[test]
fn datapoints_without_the_plc_preset_are_refused_naming_where_they_were_set() {
    let dir = TestDir::new();
    let err = dir.error(&["--payload", "smart-meter", "--datapoints", "5"], &[]);
    assert_eq!(
        err,
        "--datapoints 5: only the industrial-plc payload has data points (--payload industrial-plc)"
    );
    dir.write("config.toml", "\ndatapoints = 5\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.ends_with("config.toml line 2: datapoints = 5: only the industrial-plc payload has data points (--payload industrial-plc)"),
        "{err}"
    );
}

/// Data points of each stream's `industrial-plc`: its own, else `--datapoints`, else 60.
fn stream_points(plan: &crate::plan::Plan) -> Vec<(String, Option<u32>)> {
    plan.streams
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.payload.preset().and_then(|p| p.datapoints),
            )
        })
        .collect()
}

#[test]
fn a_stream_sizes_its_own_plc_preset_and_takes_datapoints_as_its_default() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[
                "--stream",
                "telemetry,payload=industrial-plc,datapoints=5",
                "--stream",
                "attributes,payload=industrial-plc",
                "--stream",
                "publish,topic=plc/{i},payload=smart-meter",
            ],
            &[],
        )
        .unwrap();
    assert_eq!(
        stream_points(&plan),
        [
            ("telemetry".to_string(), Some(5)),
            ("attributes".to_string(), Some(60)),
            ("plc/{i}".to_string(), None),
        ]
    );
    assert_eq!(
        plan.streams[0].payload.fields_of(0).len(),
        6,
        "5 points and ts"
    );

    // --datapoints is the default of the streams that name the preset (the run's payload
    // stays data.json), and a stream's own wins.
    let plan = dir
        .plan(
            &[
                "--datapoints",
                "7",
                "--stream",
                "telemetry,payload=industrial-plc",
                "--stream",
                "attributes,payload=industrial-plc,datapoints=2",
            ],
            &[],
        )
        .unwrap();
    assert_eq!(
        stream_points(&plan),
        [
            ("telemetry".to_string(), Some(7)),
            ("attributes".to_string(), Some(2)),
        ]
    );
    assert_eq!(plan.payload.preset(), None);

    // A stream without a payload of its own resizes the run's industrial-plc.
    let plan = dir
        .plan(
            &[
                "--payload",
                "industrial-plc",
                "--datapoints",
                "9",
                "--stream",
                "telemetry",
                "--stream",
                "attributes,datapoints=3",
            ],
            &[],
        )
        .unwrap();
    assert_eq!(
        stream_points(&plan),
        [
            ("telemetry".to_string(), Some(9)),
            ("attributes".to_string(), Some(3)),
        ]
    );
}

#[test]
fn a_stream_reads_back_with_its_data_points() {
    let dir = TestDir::new();
    let first = dir
        .plan(
            &["--stream", "telemetry,payload=industrial-plc,datapoints=4"],
            &[],
        )
        .unwrap();
    let text = crate::config::render_effective(&first);
    let line = text.lines().find(|l| l.starts_with("stream = ")).unwrap();
    dir.write("config.toml", line.split("  #").next().unwrap());
    let again = dir.plan(&[], &[]).unwrap();
    assert_eq!(stream_points(&again), stream_points(&first), "{line}");
}

#[test]
fn datapoints_on_a_stream_without_the_plc_preset_are_refused_with_the_key_and_line() {
    let dir = TestDir::new();
    let err = dir.error(
        &["--stream", "telemetry,payload=smart-meter,datapoints=5"],
        &[],
    );
    assert_eq!(
        err,
        "--stream telemetry,payload=smart-meter,datapoints=5: datapoints = 5: only the industrial-plc payload has data points (payload = \"industrial-plc\")"
    );
    let err = dir.error(&["--stream", "telemetry,datapoints=5"], &[]);
    assert!(
        err.ends_with("datapoints = 5: only the industrial-plc payload has data points (payload = \"industrial-plc\")"),
        "the run's data.json has none: {err}"
    );
    let err = dir.error(
        &[
            "--stream",
            "telemetry,payload=industrial-plc,datapoints=1000",
        ],
        &[],
    );
    assert!(
        err.ends_with("datapoints = 1000: must be 1 to 999 (ThingsBoard's own bound; the frame grows by 29 bytes a point)"),
        "{err}"
    );
    dir.write(
        "config.toml",
        "[[stream]]\nkind = \"telemetry\"\npayload = \"smart-tracker\"\n\ndatapoints = 8\n",
    );
    let err = dir.error(&[], &[]);
    assert!(
        err.ends_with("config.toml line 5: [[stream]] #1: datapoints = 8: only the industrial-plc payload has data points (payload = \"industrial-plc\")"),
        "{err}"
    );
    // --datapoints with streams none of which (nor the run) use the preset.
    let err = dir.error(
        &[
            "--datapoints",
            "5",
            "--stream",
            "telemetry,payload=smart-meter",
        ],
        &[],
    );
    assert_eq!(
        err,
        "--datapoints 5: only the industrial-plc payload has data points (--payload industrial-plc)"
    );
}

#[test]
fn a_file_named_like_a_preset_is_reachable_with_a_path() {
    let dir = TestDir::new();
    dir.write("smart-meter", r#"{"mine":"{seq}"}"#);
    let plan = dir.plan(&["--payload", "./smart-meter"], &[]).unwrap();
    assert_eq!(plan.payload.objects()[0]["mine"], "{seq}");
    assert_eq!(plan.payload.preset(), None);
    let plan = dir.plan(&["--payload", "smart-meter"], &[]).unwrap();
    assert!(
        plan.payload.preset().is_some(),
        "the bare name is the preset"
    );
}

#[test]
fn a_malformed_value_field_in_data_json_names_the_file_and_the_member() {
    let dir = TestDir::new();
    dir.write("data.json", r#"{"values":{"t":"{float:30..20:1}"}}"#);
    let err = dir.error(&[], &[]);
    assert_eq!(
        err,
        format!(
            "{}: $.values.t: \"{{float:30..20:1}}\": MIN 30 is greater than MAX 20",
            dir.path_of("data.json")
        )
    );
    dir.write("data.json", r#"{"id":"dev-{int:1..9}"}"#);
    let err = dir.error(&[], &[]);
    assert!(
        err.contains("$.id: \"dev-{int:1..9}\": per-message fields"),
        "{err}"
    );
}

#[test]
fn a_tokens_template_names_each_user_by_its_index_from_the_start() {
    let dir = TestDir::new();
    let plan = dir
        .plan(&["-u", "3", "--tokens-template", "DW{i:08}"], &[])
        .unwrap();
    assert!(plan.tokens.is_empty(), "nothing materialised");
    assert_eq!(plan.token_for(0), "DW00000000");
    assert_eq!(plan.username_for(2).as_deref(), Some("DW00000002"));
    assert_eq!(plan.token_index_of(2), Some(2));
    let plan = dir
        .plan(
            &["--tokens-template", "DW{i:08}", "--tokens-start", "1"],
            &[],
        )
        .unwrap();
    assert_eq!(plan.token_for(0), "DW00000001");
    assert_eq!(
        plan.token_index_of(0),
        Some(0),
        "positions count from the start"
    );
    assert_eq!(plan.effective_config["tokens_template"], "DW{i:08}");
    assert_eq!(plan.effective_config["tokens_start"], 1);
    assert_eq!(plan.effective_config["tokens"], serde_json::json!([]));
}

#[test]
fn a_tokens_template_in_config_toml_or_the_environment_works_alike() {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        "tokens_template = \"GW{i:08}\"\ntokens_start = 7\n",
    );
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.token_for(1), "GW00000008");
    let plan = dir
        .plan(&[], &[("MQBLAST_TOKENS_TEMPLATE", "x-{i}")])
        .unwrap();
    assert_eq!(
        plan.token_for(1),
        "x-8",
        "the environment's template, the file's start"
    );
}

#[test]
fn each_shard_uses_the_devices_of_its_own_client_indexes() {
    let dir = TestDir::new();
    let plan = |shard: &str| {
        dir.plan(
            &[
                "-u",
                "10",
                "--tokens-template",
                "DW{i:08}",
                "--tokens-start",
                "1",
                "--shard",
                shard,
            ],
            &[],
        )
        .unwrap()
    };
    let (first, second) = (plan("1/2"), plan("2/2"));
    assert_eq!(first.token_for(4), "DW00000005");
    assert_eq!(second.client_index_offset, 5);
    assert_eq!(second.token_for(5), "DW00000006");
    assert_eq!(second.token_for(9), "DW00000010");
    assert_eq!(second.token_index_of(9), Some(9));
}

#[test]
fn a_tokens_template_and_a_token_list_on_one_layer_are_refused_naming_both() {
    let dir = TestDir::new();
    let err = dir.error(&["--tokens", "a,b", "--tokens-template", "DW{i:08}"], &[]);
    assert_eq!(
        err,
        "--tokens-template DW{i:08} and --tokens: give a tokens template or a token list, not both"
    );
    dir.write("tokens.txt", "t1\n");
    let err = dir.error(
        &[
            "--tokens-file",
            "tokens.txt",
            "--tokens-template",
            "DW{i:08}",
        ],
        &[],
    );
    assert!(
        err.contains("and --tokens-file tokens.txt: give a tokens template"),
        "{err}"
    );
}

#[test]
fn between_layers_the_higher_of_template_and_list_wins() {
    let dir = TestDir::new();
    dir.write("config.toml", "tokens_file = \"missing.txt\"\n");
    let plan = dir.plan(&["--tokens-template", "DW{i:08}"], &[]).unwrap();
    assert_eq!(plan.token_for(0), "DW00000000", "the file is not even read");
    dir.write("config.toml", "tokens_template = \"DW{i:08}\"\n");
    let plan = dir.plan(&["--tokens", "a"], &[]).unwrap();
    assert_eq!(plan.token_for(0), "a");
    assert!(plan.token_template.is_none());
}

#[test]
fn bad_templates_and_starts_are_refused_naming_the_setting() {
    let dir = TestDir::new();
    let err = dir.error(&["--tokens-template", "DW"], &[]);
    assert!(
        err.starts_with("--tokens-template DW: has no {i}: expected"),
        "{err}"
    );
    let err = dir.error(&["--tokens-template", "DW{i:8}"], &[]);
    assert!(
        err.starts_with("--tokens-template DW{i:8}: {i:8}: expected"),
        "{err}"
    );
    let err = dir.error(&["--tokens-start", "1"], &[]);
    assert!(
        err.starts_with("--tokens-start 1: needs a tokens template"),
        "{err}"
    );
    let err = dir.error(
        &[
            "--tokens-template",
            "{i}",
            "--tokens-start",
            "1000000000000001",
        ],
        &[],
    );
    assert_eq!(
        err,
        "--tokens-start 1000000000000001: at most 1000000000000000"
    );
    let err = dir.error(
        &["--tokens-template", "a+{i}", "--topic", "d/{token}/t"],
        &[],
    );
    assert!(err.contains("the tokens template contains + or #"), "{err}");
}

#[test]
fn a_template_gives_every_user_its_own_token_so_token_client_ids_are_unique() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[
                "-u",
                "5",
                "--tokens-template",
                "DW{i:08}",
                "--client-id",
                "c-{token}",
            ],
            &[],
        )
        .unwrap();
    assert_eq!(plan.client_id, "c-{token}");
    let err = dir.error(
        &["-u", "5", "--tokens", "a,b", "--client-id", "c-{token}"],
        &[],
    );
    assert!(err.contains("add {i}"), "{err}");
}

#[test]
fn a_password_with_a_tokens_template_is_sent_with_each_token() {
    let plan = TestDir::new()
        .plan(&["--tokens-template", "DW{i:08}", "--password", "p"], &[])
        .unwrap();
    assert_eq!(plan.password.as_deref(), Some("p"));
}

#[test]
fn init_from_locust_stamps_a_numeric_ts_and_says_so() {
    let dir = TestDir::new();
    let config_py = dir.write("config.py", "tb_address = 'tb'\n");
    dir.write(
        "data.json",
        "{\"ts\": 1700000000000, \"values\": {\"t\": 1, \"ts\": 5}}",
    );
    let done = import_locust(&[], config_py.parent().unwrap()).unwrap();
    let written = done.payload_file.clone().unwrap();
    assert!(written.ends_with("data.mqblast.json"));
    assert_eq!(done.notes.len(), 1);
    assert!(
        done.notes[0].starts_with("data.json: \"ts\" is a number: the old script replaced it"),
        "{}",
        done.notes[0]
    );
    let text = std::fs::read_to_string(&written).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"ts": "{ts}", "values": {"t": 1, "ts": 5}}),
        "only the top-level ts, the rest as it was"
    );
    let config = std::fs::read_to_string(&done.config_toml).unwrap();
    assert!(
        config.contains("payload = \"data.mqblast.json\""),
        "{config}"
    );
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.payload.fields_of(0)[0].kind, Kind::Ts);
}

#[test]
fn init_from_locust_leaves_a_data_json_without_a_numeric_ts_as_it_is() {
    let dir = TestDir::new();
    let config_py = dir.write("config.py", "tb_address = 'tb'\n");
    dir.write("data.json", "[{\"ts\": \"{ts}\"}, {\"v\": 1}]");
    let done = import_locust(&[], config_py.parent().unwrap()).unwrap();
    assert_eq!(done.payload_file, None);
    assert!(done.notes.is_empty());
    let config = std::fs::read_to_string(&done.config_toml).unwrap();
    assert!(config.contains("payload = \"data.json\""), "{config}");
}

#[test]
fn init_from_locust_stamps_each_object_of_an_array_and_never_overwrites() {
    let dir = TestDir::new();
    let config_py = dir.write("config.py", "tb_address = 'tb'\n");
    dir.write("data.json", "[{\"ts\": 1}, {\"ts\": 2.5, \"v\": 1}]");
    dir.write("data.mqblast.json", "mine");
    let err = import_locust(&[], config_py.parent().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("data.mqblast.json already exists"), "{err}");
    assert!(!config_py.with_file_name("config.toml").exists());
    std::fs::remove_file(config_py.with_file_name("data.mqblast.json")).unwrap();
    let done = import_locust(&[], config_py.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(done.payload_file.unwrap()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!([{"ts": "{ts}"}, {"ts": "{ts}", "v": 1}])
    );
}
