//! The gateway settings: defaults, the device layout per kind of run, bounds, and the
//! settings a gateway run cannot have, refused naming both.

use super::*;
use crate::workload::gateway::{DeviceLayout, GatewayMode, MAX_DEVICES_PER_GATEWAY};

#[test]
fn without_gateway_each_user_is_one_device() {
    let plan = TestDir::new().plan(&[], &[]).unwrap();
    assert_eq!(plan.gateway, None);
    assert_eq!(plan.effective_config["gateway"], false);
    assert!(plan.effective_config["devices_per_gateway"].is_null());
}

#[test]
fn gateway_defaults_are_ten_devices_per_point_named_as_thingsboards_tool_names_them() {
    let plan = TestDir::new().plan(&["--gateway", "-u", "3"], &[]).unwrap();
    let gateway = plan.gateway.unwrap();
    assert_eq!(gateway.devices_per_gateway, 10);
    assert_eq!(gateway.mode, GatewayMode::PerPoint);
    assert_eq!(gateway.device_name.as_str(), "DW{i:08}");
    assert_eq!(gateway.device_start, 0);
    assert_eq!(gateway.layout, DeviceLayout::Interleaved { gateways: 3 });
    assert_eq!(gateway.device_name(2, 1), "DW00000005");
    assert_eq!(plan.effective_config["gateway_mode"], "per-point");
    assert_eq!(plan.effective_config["device_name"], "DW{i:08}");
}

#[test]
fn every_gateway_setting_comes_from_flags_env_and_config_toml() {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        "gateway = true\ndevices_per_gateway = 100\ngateway_mode = \"batched\"\n",
    );
    let env = [
        ("MQBLAST_DEVICE_NAME", "meter-{i:04}"),
        ("MQBLAST_DEVICE_START", "7"),
    ];
    let gateway = dir.plan(&[], &env).unwrap().gateway.unwrap();
    assert_eq!(gateway.devices_per_gateway, 100);
    assert_eq!(gateway.mode, GatewayMode::Batched);
    assert_eq!(gateway.device_name(0, 0), "meter-0007");
    let flags = ["--devices-per-gateway", "2", "--gateway-mode", "per-point"];
    let gateway = dir.plan(&flags, &env).unwrap().gateway.unwrap();
    assert_eq!(gateway.devices_per_gateway, 2);
    assert_eq!(gateway.mode, GatewayMode::PerPoint);
}

#[test]
fn shards_deal_devices_over_the_whole_runs_gateways() {
    let dir = TestDir::new();
    let args = ["--gateway", "-u", "4", "--shard", "2/2"];
    let plan = dir.plan(&args, &[]).unwrap();
    let gateway = plan.gateway.unwrap();
    assert_eq!(gateway.layout, DeviceLayout::Interleaved { gateways: 4 });
    // This shard's first gateway is client 2 of the whole plan: devices 2, 6, 10, ...
    assert_eq!(plan.client_index_offset, 2);
    assert_eq!(gateway.device_index(plan.client_index_offset, 1), 6);
}

#[test]
fn live_runs_give_each_gateway_a_block_of_devices() {
    let dir = TestDir::new();
    let plan = dir.plan(&["--gateway", "--web"], &[]).unwrap();
    assert_eq!(plan.gateway.unwrap().layout, DeviceLayout::Blocks);
}

#[test]
fn zero_or_too_many_devices_per_gateway_are_refused() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--gateway", "--devices-per-gateway", "0"], &[]),
        "--devices-per-gateway 0: a gateway needs at least 1 device"
    );
    let too_many = (MAX_DEVICES_PER_GATEWAY + 1).to_string();
    let err = dir.error(&["--gateway", "--devices-per-gateway", &too_many], &[]);
    assert!(
        err.starts_with("--devices-per-gateway 10001: at most 10000 devices per gateway"),
        "{err}"
    );
}

#[test]
fn too_many_devices_in_one_process_names_users_and_devices() {
    let dir = TestDir::new();
    let args = ["--gateway", "-u", "501", "--devices-per-gateway", "10000"];
    let err = dir.error(&args, &[]);
    assert!(
        err.starts_with("--users 501 with --devices-per-gateway 10000: 5010000 gateway devices in one process, more than 5000000"),
        "{err}"
    );
}

#[test]
fn a_bad_mode_or_name_template_is_refused_naming_the_setting() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--gateway", "--gateway-mode", "bulk"], &[]),
        "--gateway-mode bulk: expected per-point or batched"
    );
    let err = dir.error(&["--gateway", "--device-name", "sensor"], &[]);
    assert!(err.starts_with("--device-name sensor: has no {i}"), "{err}");
    dir.write("config.toml", "gateway = true\ndevice_name = \"DW{i:8}\"\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.starts_with(&format!(
            "{} line 2: device_name = \"DW{{i:8}}\": {{i:8}}: expected text with one {{i}}",
            dir.path_of("config.toml")
        )),
        "{err}"
    );
}

#[test]
fn a_name_longer_than_thingsboard_takes_is_refused() {
    let dir = TestDir::new();
    let long = format!("{}{{i}}", "n".repeat(255));
    let args = ["--gateway", "-u", "1", "--devices-per-gateway", "1"];
    let err = dir.error(&[&args[..], &["--device-name", &long]].concat(), &[]);
    assert!(
        err.ends_with("device 0's name would be 256 bytes, more than 255 (ThingsBoard's limit)"),
        "{err}"
    );
    let plan = dir.plan(&[&args[..], &["--device-name", &long[1..]]].concat(), &[]);
    assert!(plan.unwrap().gateway.is_some(), "255 bytes are taken");
}

#[test]
fn device_settings_without_gateway_are_refused() {
    let dir = TestDir::new();
    let err = dir.error(&["--devices-per-gateway", "5"], &[]);
    assert!(
        err.starts_with("--devices-per-gateway 5: only applies to gateways: add --gateway"),
        "{err}"
    );
    let err = dir.error(&[], &[("MQBLAST_GATEWAY_MODE", "batched")]);
    assert!(
        err.starts_with("MQBLAST_GATEWAY_MODE=batched: only applies"),
        "{err}"
    );
    // The defaults written out (as in a copy of the shipped config.toml) change nothing.
    dir.write(
        "config.toml",
        "devices_per_gateway = 10\ndevice_name = \"DW{i:08}\"\n",
    );
    assert_eq!(dir.plan(&[], &[]).unwrap().gateway, None);
}

#[test]
fn a_topic_subscribers_e2e_or_topic_alias_with_gateway_are_refused_naming_both() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--gateway", "--topic", "a/b"], &[]),
        "--gateway true with --topic a/b: a gateway publishes on v1/gateway/telemetry (and v1/gateway/connect, v1/gateway/disconnect); leave the topic unset"
    );
    let err = dir.error(&["--gateway", "--sub-users", "1"], &[]);
    assert!(
        err.starts_with(
            "--gateway true with --sub-users 1: gateway messages carry no end-to-end marker"
        ),
        "{err}"
    );
    let err = dir.error(&["--gateway", "--e2e"], &[]);
    assert!(err.starts_with("--gateway true with --e2e true: "), "{err}");
    let args = ["--gateway", "--mqtt-version", "5", "--topic-alias"];
    let err = dir.error(&args, &[]);
    assert!(
        err.starts_with("--gateway true with --topic-alias true: "),
        "{err}"
    );
    // The default topic written out is no conflict.
    let args = ["--gateway", "--topic", "v1/devices/me/telemetry"];
    assert!(dir.plan(&args, &[]).unwrap().gateway.is_some());
}

#[test]
fn a_payload_whose_gateway_point_has_too_many_fields_is_refused() {
    let dir = TestDir::new();
    // As many fields as a payload object may hold: a gateway point adds its `ts`.
    let most = crate::payload::MAX_FIELDS_PER_OBJECT;
    let fields: Vec<String> = (0..most).map(|n| format!("\"f{n}\":\"{{seq}}\"")).collect();
    dir.write("p.json", &format!("{{{}}}", fields.join(",")));
    assert!(dir.plan(&["--payload", "p.json"], &[]).is_ok());
    let err = dir.error(&["--gateway", "--payload", "p.json"], &[]);
    let needle = format!("as a gateway point it has {}", most + 1);
    assert!(err.contains(&needle), "{err}");
}

#[test]
fn a_connection_storm_with_gateway_is_refused() {
    let dir = TestDir::new();
    let err = dir.error(&["conn", "--gateway"], &[]);
    assert!(err.starts_with("mqblast conn with --gateway: "), "{err}");
}

#[test]
fn gateway_streams_are_its_telemetry_and_attributes_on_its_topics_and_rows() {
    let dir = TestDir::new();
    let plan = dir.plan(&["--gateway"], &[]).unwrap();
    assert_eq!(plan.streams.len(), 1);
    assert_eq!(plan.streams[0].name, "gateway telemetry");
    assert_eq!(plan.streams[0].topic, "v1/gateway/telemetry");
    assert_eq!(
        plan.row_names(),
        ["gateway telemetry", "gateway connect", "gateway disconnect"]
    );
    assert_eq!(plan.gateway_rows(), Some((1, 2)));
    let args = [
        "--gateway",
        "--stream",
        "telemetry,interval=1s",
        "--stream",
        "attributes,name=firmware,interval=30s",
    ];
    let plan = dir.plan(&args, &[]).unwrap();
    let rows: Vec<(&str, &str)> = plan
        .streams
        .iter()
        .map(|s| (s.name.as_str(), s.topic.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("gateway telemetry", "v1/gateway/telemetry"),
            ("firmware", "v1/gateway/attributes")
        ]
    );
    assert_eq!(TestDir::new().plan(&[], &[]).unwrap().gateway_rows(), None);
}

#[test]
fn a_gateway_stream_of_another_kind_or_topic_is_refused_naming_it() {
    let dir = TestDir::new();
    let err = dir.error(&["--gateway", "--stream", "publish,topic=a/b"], &[]);
    assert!(
        err.starts_with("--gateway true with stream 1 (a/b): kind publish: a gateway sends telemetry and attributes"),
        "{err}"
    );
    let err = dir.error(&["--gateway", "--stream", "telemetry,topic=t/{i}"], &[]);
    assert!(
        err.contains(
            "stream 1 (telemetry): topic t/{i}: a gateway publishes on v1/gateway/telemetry"
        ),
        "{err}"
    );
}
