//! Requests and answers against a ThingsBoard-like platform (tests/platform/tb_platform.py)
//! on real mosquitto brokers, one per device (see `common::platform` for why).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::platform::{device_count, Platform};
use common::{connect_packet, frame, packet, read_packet};

/// A hand-written device (3.1.1, QoS 0): connected and subscribed to `filters`.
fn raw_device(port: u16, filters: &[&str]) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(&connect_packet("raw-device", None))
        .unwrap();
    let mut buf = Vec::new();
    let (header, _) = read_packet(&mut stream, &mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(header >> 4, packet::CONNACK);
    let mut body = 1u16.to_be_bytes().to_vec();
    for filter in filters {
        body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
        body.extend_from_slice(filter.as_bytes());
        body.push(0);
    }
    stream
        .write_all(&frame(packet::SUBSCRIBE << 4 | 0b0010, &body))
        .unwrap();
    let (header, _) = read_packet(&mut stream, &mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(header >> 4, packet::SUBACK);
    (stream, buf)
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
        let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
        let topic = String::from_utf8(body[2..2 + topic_len].to_vec()).unwrap();
        let mut at = 2 + topic_len;
        if (header >> 1) & 0b11 > 0 {
            let pkid = [body[at], body[at + 1]];
            stream
                .write_all(&frame(packet::PUBACK << 4, &pkid))
                .unwrap();
            at += 2;
        }
        return Some((topic, String::from_utf8(body[at..].to_vec()).unwrap()));
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
