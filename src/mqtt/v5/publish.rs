//! PUBLISH (MQTT 5 section 3.3) encoder: as 3.1.1, with a property block between the packet
//! identifier and the payload.
//!
//! Every property mqblast sends on a PUBLISH is fixed per client (message expiry, content
//! type, payload format indicator, user properties, topic alias), so it is written once into
//! the client's pre-serialized frame; per message only the packet identifier and payload
//! fields are patched, at the offsets [`PublishLayout`] records. With `--topic-alias` a
//! client has two frames per payload: the first publish carries the topic and the alias
//! (section 3.3.2.3.4), later ones an empty topic and the alias.

use super::properties::{self as props, Prop};
pub use crate::mqtt::publish::{patch_pkid, PublishLayout};

/// The PUBLISH properties of one client's frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishProperties<'a> {
    /// Payload Format Indicator (0x01): 1 = UTF-8 text, 0 = unspecified bytes.
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval (0x02), seconds.
    pub message_expiry_s: Option<u32>,
    /// Content Type (0x03), e.g. `application/json`.
    pub content_type: Option<&'a str>,
    /// Topic Alias (0x23).
    pub topic_alias: Option<u16>,
    /// User Properties (0x26), in order.
    pub user_properties: &'a [(String, String)],
}

impl PublishProperties<'_> {
    fn list(&self) -> ([Prop<'_>; 4], usize) {
        let mut list = [Prop::Byte(0, 0); 4];
        let mut n = 0;
        let mut push = |prop| {
            list[n] = prop;
            n += 1;
        };
        if let Some(value) = self.payload_format_indicator {
            push(Prop::Byte(props::PAYLOAD_FORMAT_INDICATOR, value));
        }
        if let Some(value) = self.message_expiry_s {
            push(Prop::U32(props::MESSAGE_EXPIRY_INTERVAL, value));
        }
        if let Some(value) = self.content_type {
            push(Prop::Str(props::CONTENT_TYPE, value));
        }
        if let Some(value) = self.topic_alias {
            push(Prop::U16(props::TOPIC_ALIAS, value));
        }
        (list, n)
    }

    /// Bytes of the property block, length included.
    pub fn block_len(&self) -> usize {
        let (list, n) = self.list();
        props::block_len(&list[..n], self.user_properties)
    }
}

/// Append an MQTT 5 PUBLISH to `out` and return where its patchable fields are, relative to
/// the frame start. `topic` may be empty only with a topic alias (section 3.3.2.1).
///
/// # Panics
/// If `qos` is above 2, or the topic or a property string exceeds 65 535 bytes.
pub fn encode(
    out: &mut Vec<u8>,
    topic: &str,
    qos: u8,
    retain: bool,
    pkid: u16,
    properties: &PublishProperties<'_>,
    payload: &[u8],
) -> PublishLayout {
    assert!(qos <= 2, "PUBLISH with QoS {qos}");
    let start = out.len();
    let (list, n) = properties.list();
    let list = &list[..n];
    let pkid_len = if qos > 0 { 2 } else { 0 };
    let remaining_len = 2
        + topic.len()
        + pkid_len
        + props::block_len(list, properties.user_properties)
        + payload.len();
    // Fixed header (section 3.3.1): type 3, DUP 0, QoS bits 2-1, RETAIN bit 0.
    out.push(0b0011_0000 | (qos << 1) | u8::from(retain));
    crate::mqtt::write_remaining_length(out, remaining_len);
    crate::mqtt::write_prefixed(out, topic.as_bytes());
    let pkid_at = (qos > 0).then(|| {
        let at = out.len() - start;
        out.extend_from_slice(&pkid.to_be_bytes());
        at
    });
    props::write(out, list, properties.user_properties);
    let payload_at = out.len() - start;
    out.extend_from_slice(payload);
    PublishLayout {
        pkid_at,
        payload_at,
        len: out.len() - start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{oracle, Packet, Version};
    use mqttbytes::v5::{Publish, PublishProperties as TheirProperties};
    use mqttbytes::QoS;

    fn encoded(topic: &str, qos: u8, p: &PublishProperties<'_>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let layout = encode(&mut out, topic, qos, false, 77, p, payload);
        assert_eq!(layout.len, out.len());
        assert_eq!(&out[layout.payload_at..], payload);
        out
    }

    #[test]
    fn publish_without_properties_has_a_zero_property_length_before_the_payload() {
        let frame = encoded("a/b", 1, &PublishProperties::default(), b"hi");
        assert_eq!(
            frame,
            [0x32, 10, 0x00, 0x03, b'a', b'/', b'b', 0x00, 77, 0x00, b'h', b'i']
        );
    }

    #[test]
    fn our_publish_with_every_property_decodes_with_mqttbytes_v5() {
        let pairs = vec![("unit".to_string(), "C".to_string())];
        let p = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_s: Some(60),
            content_type: Some("application/json"),
            topic_alias: Some(1),
            user_properties: &pairs,
        };
        let big = vec![b'x'; 20_000];
        for qos in 0..=2u8 {
            for payload in [&b"{}"[..], &big[..]] {
                let frame = encoded("v1/devices/me/telemetry", qos, &p, payload);
                let oracle::v5::Packet::Publish(got) = oracle::v5::read(&frame).unwrap() else {
                    panic!("not a PUBLISH");
                };
                assert_eq!(got.topic, "v1/devices/me/telemetry");
                assert_eq!(got.pkid, if qos == 0 { 0 } else { 77 });
                assert_eq!(&got.payload[..], payload);
                let theirs = got.properties.unwrap();
                assert_eq!(theirs.payload_format_indicator, Some(1));
                assert_eq!(theirs.message_expiry_interval, Some(60));
                assert_eq!(theirs.content_type.as_deref(), Some("application/json"));
                assert_eq!(theirs.topic_alias, Some(1));
                assert_eq!(theirs.user_properties, pairs);
            }
        }
    }

    #[test]
    fn an_aliased_publish_has_an_empty_topic_and_still_decodes_with_both() {
        let p = PublishProperties {
            topic_alias: Some(3),
            ..PublishProperties::default()
        };
        let frame = encoded("", 1, &p, b"{}");
        let oracle::v5::Packet::Publish(got) = oracle::v5::read(&frame).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_eq!(
            (got.topic.as_str(), got.properties.unwrap().topic_alias),
            ("", Some(3))
        );
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::Publish {
                    dup: false,
                    qos: 1,
                    retain: false,
                    topic: b"",
                    pkid: 77,
                    payload: b"{}"
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn mqttbytes_v5_publish_decodes_with_ours() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let mut theirs = Publish::new("t/1", qos, vec![1u8; 300]);
            theirs.pkid = if qos == QoS::AtMostOnce { 0 } else { 9 };
            theirs.properties = Some(TheirProperties {
                payload_format_indicator: None,
                message_expiry_interval: Some(5),
                topic_alias: None,
                response_topic: None,
                correlation_data: None,
                user_properties: vec![("a".into(), "b".into())],
                subscription_identifiers: Vec::new(),
                content_type: None,
            });
            let frame = oracle::write(|b| theirs.write(b));
            let Ok(Some((
                Packet::Publish {
                    topic,
                    pkid,
                    payload,
                    ..
                },
                n,
            ))) = Version::V5.decode(&frame)
            else {
                panic!("not a PUBLISH: {:?}", Version::V5.decode(&frame));
            };
            assert_eq!(
                (topic, pkid, payload.len(), n),
                (&b"t/1"[..], theirs.pkid, 300, frame.len())
            );
        }
    }

    #[test]
    fn patching_the_packet_id_of_a_v5_frame_leaves_the_properties_alone() {
        let p = PublishProperties {
            message_expiry_s: Some(0x0102_0304),
            ..PublishProperties::default()
        };
        let mut out = Vec::new();
        let layout = encode(&mut out, "t", 1, false, 0, &p, b"x");
        let before = out.clone();
        patch_pkid(&mut out, layout.pkid_at.unwrap(), 0xBEEF);
        let at = layout.pkid_at.unwrap();
        assert_eq!(&out[at..at + 2], [0xBE, 0xEF]);
        assert_eq!(out[at + 2..], before[at + 2..]);
    }
}
