//! Gateway frames: every message decodes as an MQTT PUBLISH whose payload parses with
//! serde_json, with the names, points and folding the gateway API expects.

use serde_json::{json, Value};

use super::*;
use crate::mqtt::Packet;

fn gateway_plan(devices: u32, layout: DeviceLayout) -> GatewayPlan {
    GatewayPlan {
        devices_per_gateway: devices,
        mode: GatewayMode::PerPoint,
        device_name: NameTemplate::parse(DEFAULT_DEVICE_NAME).unwrap(),
        device_start: 0,
        layout,
    }
}

fn plan(qos: u8) -> Plan {
    crate::config::tests::plan_with_payload(Payload::builtin(), qos, "unused")
}

/// Frames of gateway `index` with one telemetry stream of `payload_text`.
fn frames(qos: u8, gateway: &GatewayPlan, index: u64, payload_text: &str) -> GatewayFrames {
    let payload = Payload::parse("data.json", payload_text).unwrap();
    frames_of(
        &plan(qos),
        gateway,
        index,
        &[(PointKind::Telemetry, &payload, qos)],
    )
}

fn frames_of(
    plan: &Plan,
    gateway: &GatewayPlan,
    index: u64,
    streams: &[(PointKind, &Payload, u8)],
) -> GatewayFrames {
    let vars = ClientVars {
        index,
        token: "GW00000000",
        client_id: "gw-client",
    };
    GatewayFrames::build(plan, gateway, &vars, streams)
}

/// Decode one PUBLISH at the start of `bytes`: (topic, qos, pkid, payload as JSON, bytes used).
fn decode(version: Version, bytes: &[u8]) -> (String, u8, u16, Value, usize) {
    let Ok(Some((packet, used))) = version.decode(bytes) else {
        panic!("not a whole packet: {bytes:02X?}");
    };
    let Packet::Publish {
        qos,
        topic,
        pkid,
        payload,
        ..
    } = packet
    else {
        panic!("not a PUBLISH: {packet:?}");
    };
    let body: Value = serde_json::from_slice(payload).unwrap_or_else(|err| {
        panic!("{err}: {}", String::from_utf8_lossy(payload));
    });
    (
        String::from_utf8(topic.to_vec()).unwrap(),
        qos,
        pkid,
        body,
        used,
    )
}

fn due(slots: std::ops::Range<u32>, seq: u64) -> Vec<Due> {
    slots
        .map(|slot| Due {
            slot,
            object: 0,
            seq,
            due_ns: 0,
            alarm: false,
        })
        .collect()
}

#[test]
fn the_default_name_is_the_device_token_thingsboard_creates() {
    let template = NameTemplate::parse(DEFAULT_DEVICE_NAME).unwrap();
    assert_eq!(template.render(1), "DW00000001");
    assert_eq!(template.render(123_456_789), "DW123456789");
    assert_eq!(template.widest_len(99_999_999), 10);
    assert_eq!(template.widest_len(100_000_000), 11);
}

#[test]
fn name_templates_take_one_i_or_zero_padded_i() {
    let template = NameTemplate::parse("meter {i:03}/x").unwrap();
    assert_eq!(template.render(7), "meter 007/x");
    assert_eq!(template.render(12_345), "meter 12345/x");
    assert_eq!(template.widest_len(7), "meter 007/x".len());
    assert_eq!(NameTemplate::parse("{i}").unwrap().render(42), "42");
    assert_eq!(
        NameTemplate::parse("{i:020}")
            .unwrap()
            .render(u64::MAX)
            .len(),
        20
    );
}

#[test]
fn name_templates_without_the_number_or_with_other_placeholders_are_refused() {
    let no_number = NameTemplate::parse("device").unwrap_err();
    assert!(no_number.contains("same name"), "{no_number}");
    for bad in [
        "DW{i:8}",
        "DW{i:021}",
        "DW{i:00}",
        "{token}",
        "{i:x}",
        "DW{i",
    ] {
        let err = NameTemplate::parse(bad).unwrap_err();
        assert!(
            err.contains("expected text with one {i} or {i:0W}"),
            "{bad}: {err}"
        );
    }
    let two = NameTemplate::parse("{i}-{i}").unwrap_err();
    assert!(two.starts_with("only one placeholder"), "{two}");
}

#[test]
fn interleaved_devices_belong_to_gateway_i_mod_g_and_each_to_exactly_one() {
    let gateways = 3u64;
    let plan = gateway_plan(4, DeviceLayout::Interleaved { gateways });
    let mut seen = Vec::new();
    for gateway in 0..gateways {
        for slot in 0..4 {
            let index = plan.device_index(gateway, slot);
            assert_eq!(index % gateways, gateway, "device {index}");
            seen.push(index);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..12).collect::<Vec<_>>());
    assert_eq!(plan.device_name(1, 2), "DW00000007");
}

#[test]
fn block_layout_gives_each_gateway_its_own_run_of_devices() {
    let mut plan = gateway_plan(5, DeviceLayout::Blocks);
    plan.device_start = 100;
    assert_eq!(plan.device_index(0, 4), 4);
    assert_eq!(plan.device_index(3, 0), 15);
    assert_eq!(plan.device_name(3, 1), "DW00000116");
}

#[test]
fn a_gateways_device_numbering_is_the_device_index_of_each_of_its_slots() {
    // The global rate numbers a gateway's devices by (first, step): it must agree with the
    // index the device's name is made from, in both layouts.
    for layout in [
        DeviceLayout::Interleaved { gateways: 7 },
        DeviceLayout::Blocks,
    ] {
        let plan = gateway_plan(5, layout);
        for gateway in 0..7 {
            let (first, step) = plan.device_numbering(gateway);
            for slot in 0..5 {
                assert_eq!(
                    first + u64::from(slot) * step,
                    plan.device_index(gateway, slot),
                    "{layout:?} gateway {gateway} slot {slot}"
                );
            }
        }
    }
}

#[test]
fn point_values_take_the_values_of_the_ts_shape_or_the_object_less_its_ts() {
    let shaped = json!({"ts": "{ts}", "values": {"a": 1}});
    assert_eq!(point_values(&shaped), json!({"a": 1}));
    let flat = json!({"b": 2, "ts": "{ts}", "a": 1});
    assert_eq!(point_values(&flat), json!({"b": 2, "a": 1}));
    let with_more = json!({"ts": 1, "values": {"a": 1}, "x": 2});
    assert_eq!(
        point_values(&with_more),
        json!({"values": {"a": 1}, "x": 2})
    );
    assert_eq!(
        point_field_count(PointKind::Telemetry, &json!({"s": "{seq}"})),
        2
    );
    assert_eq!(
        point_field_count(PointKind::Attributes, &json!({"s": "{seq}", "ts": "{ts}"})),
        1
    );
}

#[test]
fn connect_and_disconnect_messages_name_each_device_once() {
    let gateway = gateway_plan(3, DeviceLayout::Interleaved { gateways: 2 });
    let frames = frames(1, &gateway, 1, r#"{"a":1}"#);
    let mut out = Vec::new();
    for slot in 0..3 {
        let before = out.len();
        frames.write_connect(&mut out, 10 + slot as u16, slot);
        assert_eq!(out.len() - before, frames.connect_len(slot));
    }
    frames.write_disconnect(&mut out, 20, 2);
    let mut at = 0;
    let mut seen = Vec::new();
    while at < out.len() {
        let (topic, qos, pkid, body, used) = decode(Version::V311, &out[at..]);
        seen.push((topic, pkid, body));
        assert_eq!(qos, 1);
        at += used;
    }
    assert_eq!(
        seen,
        vec![
            (
                "v1/gateway/connect".into(),
                10,
                json!({"device": "DW00000001"})
            ),
            (
                "v1/gateway/connect".into(),
                11,
                json!({"device": "DW00000003"})
            ),
            (
                "v1/gateway/connect".into(),
                12,
                json!({"device": "DW00000005"})
            ),
            (
                "v1/gateway/disconnect".into(),
                20,
                json!({"device": "DW00000005"})
            ),
        ]
    );
}

#[test]
fn a_per_point_telemetry_message_is_thingsboards_gateway_form() {
    let gateway = gateway_plan(2, DeviceLayout::Interleaved { gateways: 1 });
    let text = r#"{"ts":"{ts}","values":{"n":"{seq}","dev":"d-{i}","who":"{token}","t":20.5}}"#;
    let frames = frames(0, &gateway, 0, text);
    let mut out = Vec::new();
    let one = [Due {
        slot: 1,
        object: 0,
        seq: 42,
        due_ns: 0,
        alarm: false,
    }];
    let folded = frames.write_points(&mut out, 0, 0, &one, 1_733_450_000_123, 0);
    assert_eq!(folded, 1);
    assert_eq!(out.len(), frames.points_len(0, &one, 0));
    let (topic, qos, _, body, used) = decode(Version::V311, &out);
    assert_eq!(
        (topic.as_str(), qos, used),
        ("v1/gateway/telemetry", 0, out.len())
    );
    assert_eq!(
        body,
        json!({"DW00000001": [{"ts": 1_733_450_000_123u64,
            "values": {"n": 42, "dev": "d-1", "who": "DW00000001", "t": 20.5}}]})
    );
}

#[test]
fn many_messages_of_every_device_parse_with_their_own_seq_and_ts() {
    let gateway = gateway_plan(50, DeviceLayout::Interleaved { gateways: 7 });
    let frames = frames(1, &gateway, 3, crate::payload::DEFAULT_DATA_JSON);
    let mut out = Vec::with_capacity(1 << 20);
    let mut expected = Vec::new();
    for round in 0..20u64 {
        for slot in 0..50 {
            let seq = round * 1_000 + u64::from(slot) + 1;
            let ts = 1_700_000_000_000 + seq;
            let point = [Due {
                slot,
                object: 0,
                seq,
                due_ns: 0,
                alarm: false,
            }];
            frames.write_points(&mut out, (seq % 65_535 + 1) as u16, 0, &point, ts, 0);
            expected.push((gateway.device_name(3, slot), seq, ts));
        }
    }
    let mut at = 0;
    for (name, seq, ts) in expected {
        let (_, _, pkid, body, used) = decode(Version::V311, &out[at..]);
        at += used;
        assert_eq!(pkid, (seq % 65_535 + 1) as u16);
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 1);
        let point = &body[&name][0];
        assert_eq!(point["ts"], ts, "{body}");
        assert_eq!(point["values"]["seq"], seq, "{body}");
        let number: u64 = name[2..].parse().unwrap();
        assert_eq!(point["values"]["device"], format!("tracker-{number}"));
    }
    assert_eq!(at, out.len());
}

#[test]
fn batched_folds_k_due_devices_into_one_message() {
    let gateway = gateway_plan(10, DeviceLayout::Interleaved { gateways: 1 });
    let frames = frames(1, &gateway, 0, r#"{"ts":"{ts}","values":{"v":"{seq}"}}"#);
    for k in [1u32, 2, 7, 10] {
        let points = due(0..k, 5);
        let mut out = Vec::new();
        let folded = frames.write_points(&mut out, 9, 0, &points, 77, MAX_BATCH_PAYLOAD_BYTES);
        assert_eq!(folded, k as usize);
        let (topic, _, pkid, body, used) = decode(Version::V311, &out);
        assert_eq!(
            (topic.as_str(), pkid, used),
            ("v1/gateway/telemetry", 9, out.len())
        );
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), k as usize, "{body}");
        for slot in 0..k {
            let name = format!("DW{slot:08}");
            assert_eq!(body[&name], json!([{"ts": 77, "values": {"v": 5}}]));
        }
    }
}

#[test]
fn a_batch_stops_at_the_payload_bound_and_the_rest_go_in_the_next_messages() {
    let gateway = gateway_plan(100, DeviceLayout::Interleaved { gateways: 1 });
    let frames = frames(
        0,
        &gateway,
        0,
        r#"{"values":{"x":"0123456789"},"ts":"{ts}"}"#,
    );
    let points = due(0..100, 1);
    let bound = 500;
    let mut out = Vec::new();
    let mut rest = &points[..];
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let before = out.len();
        let expected_len = frames.points_len(0, rest, bound);
        let (count, payload_len) = frames.fold(0, rest, bound);
        assert!(payload_len <= bound, "payload {payload_len} > {bound}");
        let folded = frames.write_points(&mut out, 0, 0, rest, 1, bound);
        assert_eq!(folded, count);
        assert!(folded >= 1);
        assert_eq!(out.len() - before, expected_len);
        let (_, _, _, body, used) = decode(Version::V311, &out[before..]);
        assert_eq!(used, out.len() - before);
        seen.extend(body.as_object().unwrap().keys().cloned());
        rest = &rest[folded..];
    }
    let expected: Vec<String> = (0..100).map(|n| format!("DW{n:08}")).collect();
    assert_eq!(seen, expected, "every device once, in order");
    assert!(out.len() > 3 * bound, "several messages were needed");
}

#[test]
fn a_batch_never_folds_more_points_than_the_schedule_takes_for_it() {
    // 10,000 devices with names of two lengths (DW0..DW9999 without padding) and a small
    // point: the most one message folds is at most what `batch_points_max` lets the schedule
    // take, so taking only that many changes no message.
    let mut gateway = gateway_plan(10_000, DeviceLayout::Interleaved { gateways: 1 });
    gateway.device_name = NameTemplate::parse("D{i}").unwrap();
    let frames = frames(0, &gateway, 0, r#"{"a":1}"#);
    let points = due(0..10_000, 1);
    let (folded, _) = frames.fold(0, &points, MAX_BATCH_PAYLOAD_BYTES);
    let most = frames.batch_points_max(0);
    assert!(folded < points.len(), "the bound cuts the batch: {folded}");
    assert!(folded <= most, "folded {folded} > the schedule's {most}");
    assert!(
        most < 2 * folded,
        "the bound is close to what fits: {most} vs {folded}"
    );
}

#[test]
fn a_point_bigger_than_the_bound_goes_alone() {
    let gateway = gateway_plan(3, DeviceLayout::Interleaved { gateways: 1 });
    let frames = frames(0, &gateway, 0, r#"{"a":1}"#);
    let mut out = Vec::new();
    assert_eq!(frames.write_points(&mut out, 0, 0, &due(0..3, 1), 1, 5), 1);
    assert_eq!(frames.write_points(&mut out, 0, 0, &[], 1, 5), 0);
    let (_, _, _, body, used) = decode(Version::V311, &out);
    assert_eq!(used, out.len());
    assert_eq!(body, json!({"DW00000000": [{"ts": 1, "values": {"a": 1}}]}));
}

#[test]
fn attributes_are_the_values_object_per_device_without_ts() {
    let gateway = gateway_plan(2, DeviceLayout::Interleaved { gateways: 1 });
    let payload = Payload::parse("a.json", r#"{"fw":"1.{i}","n":"{seq}","ts":"{ts}"}"#).unwrap();
    let frames = frames_of(
        &plan(0),
        &gateway,
        0,
        &[(PointKind::Attributes, &payload, 0)],
    );
    assert_eq!(frames.stream_kind(0), PointKind::Attributes);
    let mut out = Vec::new();
    frames.write_points(&mut out, 0, 0, &due(0..2, 3), 5, MAX_BATCH_PAYLOAD_BYTES);
    let (topic, _, _, body, _) = decode(Version::V311, &out);
    assert_eq!(topic, "v1/gateway/attributes");
    assert_eq!(
        body,
        json!({"DW00000000": {"fw": "1.0", "n": 3}, "DW00000001": {"fw": "1.1", "n": 3}})
    );
}

#[test]
fn a_payload_rotation_gives_each_device_the_object_asked_for() {
    let gateway = gateway_plan(2, DeviceLayout::Interleaved { gateways: 1 });
    let frames = frames(0, &gateway, 0, r#"[{"k":0},{"k":1},{"k":2}]"#);
    for object in 0..6u32 {
        let point = [Due {
            slot: 1,
            object,
            seq: 1,
            due_ns: 0,
            alarm: false,
        }];
        let mut out = Vec::new();
        frames.write_points(&mut out, 0, 0, &point, 1, 0);
        let (_, _, _, body, _) = decode(Version::V311, &out);
        assert_eq!(body["DW00000001"][0]["values"]["k"], object % 3);
    }
}

#[test]
fn names_that_need_escaping_stay_valid_json() {
    let mut gateway = gateway_plan(2, DeviceLayout::Interleaved { gateways: 1 });
    gateway.device_name = NameTemplate::parse("dev \"{i}\" \\ é").unwrap();
    let frames = frames(0, &gateway, 0, r#"{"a":1}"#);
    let mut out = Vec::new();
    frames.write_connect(&mut out, 0, 1);
    let (_, _, _, body, used) = decode(Version::V311, &out);
    assert_eq!(body, json!({"device": "dev \"1\" \\ é"}));
    frames.write_points(&mut out, 0, 0, &due(0..2, 1), 1, MAX_BATCH_PAYLOAD_BYTES);
    let (_, _, _, body, _) = decode(Version::V311, &out[used..]);
    assert_eq!(body["dev \"0\" \\ é"][0]["values"]["a"], 1);
}

#[test]
fn mqtt_5_messages_carry_the_plans_publish_properties() {
    let mut plan = plan(1);
    plan.mqtt_version = Version::V5;
    plan.v5.content_type = Some("application/json".into());
    plan.v5.user_properties = vec![("gw".into(), "{client_id}".into())];
    let gateway = gateway_plan(2, DeviceLayout::Interleaved { gateways: 1 });
    let payload = Payload::parse("d", r#"{"a":"{seq}"}"#).unwrap();
    let frames = frames_of(&plan, &gateway, 0, &[(PointKind::Telemetry, &payload, 1)]);
    let mut out = Vec::new();
    frames.write_connect(&mut out, 3, 0);
    frames.write_points(&mut out, 4, 0, &due(0..2, 8), 9, MAX_BATCH_PAYLOAD_BYTES);
    let (topic, _, pkid, body, used) = decode(Version::V5, &out);
    assert_eq!((topic.as_str(), pkid), ("v1/gateway/connect", 3));
    assert_eq!(body, json!({"device": "DW00000000"}));
    let (topic, _, pkid, body, rest) = decode(Version::V5, &out[used..]);
    assert_eq!(
        (topic.as_str(), pkid, used + rest),
        ("v1/gateway/telemetry", 4, out.len())
    );
    assert_eq!(body["DW00000001"][0]["values"]["a"], 8);
    let Ok(crate::mqtt::oracle::v5::Packet::Publish(publish)) =
        crate::mqtt::oracle::v5::read(&out[used..])
    else {
        panic!("the oracle does not read it as a PUBLISH");
    };
    assert_eq!(
        (publish.topic.as_str(), publish.pkid),
        ("v1/gateway/telemetry", 4)
    );
    let properties = publish.properties.expect("properties");
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        properties.user_properties,
        vec![("gw".to_string(), "gw-client".to_string())]
    );
}

#[test]
fn writing_into_a_buffer_with_room_never_reallocates() {
    let gateway = gateway_plan(20, DeviceLayout::Interleaved { gateways: 1 });
    let frames = frames(1, &gateway, 0, crate::payload::DEFAULT_DATA_JSON);
    let points = due(0..20, 1);
    let need =
        frames.points_len(0, &points, MAX_BATCH_PAYLOAD_BYTES) + frames.largest_single_len() * 21;
    let mut out = Vec::with_capacity(need);
    let pointer = out.as_ptr();
    frames.write_points(&mut out, 1, 0, &points, 1, MAX_BATCH_PAYLOAD_BYTES);
    for slot in 0..20 {
        frames.write_connect(&mut out, 2, slot);
    }
    frames.write_points(&mut out, 3, 0, &points[..1], 1, 0);
    assert_eq!(out.as_ptr(), pointer);
    assert!(out.len() <= need);
}

#[test]
fn devices_share_one_fragment_when_the_payload_has_no_client_placeholders() {
    let gateway = gateway_plan(1_000, DeviceLayout::Interleaved { gateways: 1 });
    let shared = frames(0, &gateway, 0, r#"{"a":"{seq}"}"#);
    assert_eq!(shared.streams[0].fragments.len(), 1);
    let own = frames(0, &gateway, 0, r#"{"a":"{i}"}"#);
    assert_eq!(own.streams[0].fragments.len(), 1_000);
}
