use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::mqtt::Packet;
use crate::workload::gateway::{GatewayMode, NameTemplate};
use crate::workload::params::ParamsError;
use crate::workload::responder::{ResponsePayload, MAX_QUEUED_ANSWERS};

fn plan(template: &str, devices: u32, layout: DeviceLayout) -> GatewayPlan {
    GatewayPlan {
        devices_per_gateway: devices,
        mode: GatewayMode::PerPoint,
        device_name: NameTemplate::parse(template).unwrap(),
        device_start: 1,
        layout,
    }
}

fn echo() -> ResponderPlan {
    ResponderPlan {
        delay: Duration::ZERO,
        response: ResponsePayload::EchoParams,
    }
}

/// Gateway 1 of 2, devices DW00000002, DW00000004, DW00000006.
fn gateway_one() -> GatewayDevices {
    let interleaved = DeviceLayout::Interleaved { gateways: 2 };
    GatewayDevices::new(&plan("DW{i:08}", 3, interleaved), 1)
}

/// (topic, payload as JSON) of the oldest queued answer, which is then let go.
fn pop_answer(queue: &mut AnswerQueue, version: Version) -> (String, Value) {
    let (frame, _) = queue.due_frame(u64::MAX).expect("an answer");
    let (packet, used) = version.decode(frame).unwrap().unwrap();
    assert_eq!(used, frame.len());
    let answer = match packet {
        Packet::Publish {
            topic,
            payload,
            qos: 0,
            ..
        } => (
            String::from_utf8(topic.to_vec()).unwrap(),
            serde_json::from_slice(payload).unwrap(),
        ),
        other => panic!("{other:?}"),
    };
    queue.pop();
    answer
}

fn offer_to(queue: &mut AnswerQueue, plan: &ResponderPlan, request: &str) -> GatewayOffer {
    offer(
        queue,
        plan,
        Version::V311,
        &gateway_one(),
        request.as_bytes(),
        0,
    )
}

#[test]
fn a_request_is_answered_on_the_gateway_topic_with_its_device_id_and_params() {
    for version in [Version::V311, Version::V5] {
        let mut queue = AnswerQueue::default();
        let request =
            br#"{"device":"DW00000004","data":{"id":42,"method":"toggle_gpio","params":{"pin":1}}}"#;
        let devices = gateway_one();
        assert_eq!(
            offer(&mut queue, &echo(), version, &devices, request, 0),
            GatewayOffer::Queued
        );
        let (topic, answer) = pop_answer(&mut queue, version);
        assert_eq!(topic, "v1/gateway/rpc");
        assert_eq!(
            answer,
            json!({"device": "DW00000004", "id": 42, "data": {"pin": 1}})
        );
        assert!(queue.is_empty());
    }
}

#[test]
fn a_configured_answer_replaces_the_echo_and_no_params_answer_an_empty_object() {
    let fixed = ResponderPlan {
        delay: Duration::from_millis(5),
        response: ResponsePayload::Fixed {
            source: "inline JSON".into(),
            json: br#"{"success":true}"#.to_vec().into_boxed_slice(),
        },
    };
    let mut queue = AnswerQueue::default();
    let request = r#"{"data":{"params":[1],"id":7},"device":"DW00000002"}"#;
    assert_eq!(offer_to(&mut queue, &fixed, request), GatewayOffer::Queued);
    assert_eq!(queue.next_due_ns(), Some(5_000_000));
    let (_, answer) = pop_answer(&mut queue, Version::V311);
    assert_eq!(
        answer,
        json!({"device": "DW00000002", "id": 7, "data": {"success": true}})
    );
    let request = r#"{"device":"DW00000006","data":{"id":8,"method":"reboot"}}"#;
    assert_eq!(offer_to(&mut queue, &echo(), request), GatewayOffer::Queued);
    let (_, answer) = pop_answer(&mut queue, Version::V311);
    assert_eq!(answer, json!({"device": "DW00000006", "id": 8, "data": {}}));
}

#[test]
fn its_own_answers_coming_back_are_told_from_requests() {
    let mut queue = AnswerQueue::default();
    let own = r#"{"device":"DW00000004","id":42,"data":{"pin":1}}"#;
    assert_eq!(offer_to(&mut queue, &echo(), own), GatewayOffer::OwnAnswer);
    // Even one whose echoed data holds an id.
    let own = r#"{"device":"DW00000004","id":42,"data":{"id":1}}"#;
    assert_eq!(offer_to(&mut queue, &echo(), own), GatewayOffer::OwnAnswer);
    assert!(queue.is_empty());
}

#[test]
fn requests_without_a_device_data_or_id_are_malformed_and_not_answered() {
    let mut queue = AnswerQueue::default();
    let cases = [
        (r#"{"data":{"id":1}}"#, Malformed::NoDevice),
        (r#"{"device":5,"data":{"id":1}}"#, Malformed::NoDevice),
        (r#"{"device":"DW00000002"}"#, Malformed::NoData),
        (r#"{"device":"DW00000002","data":[1]}"#, Malformed::NoData),
        (
            r#"{"device":"DW00000002","data":{"method":"x"}}"#,
            Malformed::BadId,
        ),
        (
            r#"{"device":"DW00000002","data":{"id":"7"}}"#,
            Malformed::BadId,
        ),
        (
            r#"{"device":"DW00000002","data":{"id":12345678901}}"#,
            Malformed::BadId,
        ),
        (
            r#"{"device":"DW00000002","data":{"id":-1}}"#,
            Malformed::BadId,
        ),
        (
            r#"{"device":"DW00000002","data":{"id":007}}"#,
            Malformed::BadId,
        ),
        ("not json", Malformed::Params(ParamsError::NotAnObject)),
        (
            r#"{"device":"DW00000002","data":{"id":1"#,
            Malformed::Params(ParamsError::Truncated),
        ),
    ];
    for (request, why) in cases {
        assert_eq!(
            offer_to(&mut queue, &echo(), request),
            GatewayOffer::Malformed(why),
            "{request}"
        );
    }
    assert!(queue.is_empty());
    assert_eq!(
        Malformed::NoDevice.describe(),
        "its device is not a JSON string"
    );
}

#[test]
fn a_request_for_a_device_this_gateway_does_not_carry_is_an_unknown_device() {
    let mut queue = AnswerQueue::default();
    for name in [
        "DW00000001",  // gateway 0's
        "DW00000008",  // beyond its three devices
        "DW00000000",  // before the first device
        "DW000000004", // one zero more than the template writes
        "DW4",
        "dw00000004",
        "DW0000000\\u0034", // the same name, escaped otherwise
        "",
    ] {
        let request = format!(r#"{{"device":"{name}","data":{{"id":1}}}}"#);
        assert_eq!(
            offer_to(&mut queue, &echo(), &request),
            GatewayOffer::UnknownDevice,
            "{name}"
        );
    }
    assert!(queue.is_empty());
}

#[test]
fn every_device_a_gateway_carries_and_only_those_are_found_in_both_layouts() {
    let layouts = [
        DeviceLayout::Interleaved { gateways: 3 },
        DeviceLayout::Blocks,
    ];
    for layout in layouts {
        for template in ["DW{i:03}", "dev {i}", "\"quoted\\{i:02}\u{e9}"] {
            let plan = plan(template, 7, layout);
            for gateway in 0..3 {
                let devices = GatewayDevices::new(&plan, gateway);
                for other in 0..3 {
                    for slot in 0..7 {
                        let name = serde_json::to_vec(&plan.device_name(other, slot)).unwrap();
                        let found = devices.slot_of(&name);
                        let expected = (other == gateway).then_some(slot);
                        assert_eq!(
                            found, expected,
                            "{template} {layout:?} {gateway} {other} {slot}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn names_with_numbers_past_u64_are_unknown_without_overflow() {
    let devices = gateway_one();
    assert_eq!(devices.slot_of(b"\"DW99999999999999999999999\""), None);
    assert_eq!(devices.slot_of(b"\"DW18446744073709551616\""), None);
    assert_eq!(devices.slot_of(b"\""), None);
    assert_eq!(read_number(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(read_number(b"18446744073709551616"), None);
}

#[test]
fn a_flood_of_gateway_requests_is_bounded_by_the_connections_queue() {
    let mut queue = AnswerQueue::default();
    let mut dropped = 0;
    for id in 0..1_000 {
        let request = format!(r#"{{"device":"DW00000004","data":{{"id":{id}}}}}"#);
        dropped += u32::from(offer_to(&mut queue, &echo(), &request) == GatewayOffer::Dropped);
    }
    assert_eq!(queue.len(), MAX_QUEUED_ANSWERS);
    assert_eq!(dropped, 1_000 - MAX_QUEUED_ANSWERS as u32);
}

#[test]
fn the_largest_fixed_answer_for_the_longest_name_json_writes_fits_the_queue() {
    use crate::workload::gateway::MAX_DEVICE_NAME_BYTES;
    use crate::workload::gateway_rpc::MAX_GATEWAY_RESPONSE_BYTES;
    // 254 control bytes (6 bytes each as JSON) and the number: the longest name as JSON.
    let template = format!("{}{{i}}", "\u{1}".repeat(MAX_DEVICE_NAME_BYTES - 1));
    let gateway = plan(&template, 1, DeviceLayout::Blocks);
    let devices = GatewayDevices::new(&gateway, 0);
    let name = serde_json::to_string(&gateway.device_name(0, 0)).unwrap();
    assert_eq!(name.len(), 6 * (MAX_DEVICE_NAME_BYTES - 1) + 1 + 2);
    let answer = format!("\"{}\"", "a".repeat(MAX_GATEWAY_RESPONSE_BYTES - 2));
    let fixed = ResponderPlan {
        delay: Duration::ZERO,
        response: ResponsePayload::Fixed {
            source: "inline JSON".into(),
            json: answer.into_bytes().into_boxed_slice(),
        },
    };
    for version in [Version::V311, Version::V5] {
        let mut queue = AnswerQueue::default();
        let request = format!(r#"{{"device":{name},"data":{{"id":4294967295}}}}"#);
        assert_eq!(
            offer(&mut queue, &fixed, version, &devices, request.as_bytes(), 0),
            GatewayOffer::Queued
        );
        let (_, answer) = pop_answer(&mut queue, version);
        assert_eq!(answer["device"], gateway.device_name(0, 0));
        assert_eq!(answer["id"], 4_294_967_295u64);
    }
}
