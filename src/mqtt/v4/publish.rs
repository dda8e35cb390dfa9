//! PUBLISH (MQTT 3.1.1 section 3.3) encoder. Frames are built once per client; per message
//! only the packet identifier (at `pkid_at`) and payload fields are patched in place.

/// Where the patchable parts of an encoded PUBLISH frame are, relative to the frame start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLayout {
    /// Offset of the 2-byte big-endian packet identifier (None at QoS 0).
    pub pkid_at: Option<usize>,
    /// Offset of the first payload byte.
    pub payload_at: usize,
    /// Total frame length in bytes.
    pub len: usize,
}

/// Append a PUBLISH frame to `out`; `pkid` is ignored at QoS 0.
///
/// Fixed header (section 3.3.1): `0b0011_0000 | dup << 3 | qos << 1 | retain`, with DUP
/// always 0 here (a retransmission sets it by patching byte 0). Variable header (3.3.2): the
/// topic name, then the packet identifier only when QoS > 0. The rest is payload (3.3.3).
/// A `pkid` of 0 is written as given so templates can be patched later; on the wire it must
/// be non-zero at QoS > 0 (section 2.3.1).
///
/// # Panics
/// If `qos > 2`, the topic is longer than 65 535 bytes, or the packet would exceed the
/// 268 435 455-byte remaining-length limit.
pub fn encode(
    out: &mut Vec<u8>,
    topic: &str,
    qos: u8,
    retain: bool,
    pkid: u16,
    payload: &[u8],
) -> PublishLayout {
    assert!(qos <= 2, "PUBLISH QoS {qos} is not 0, 1 or 2");
    let pkid_bytes = if qos > 0 { 2 } else { 0 };
    let remaining_len = 2 + topic.len() + pkid_bytes + payload.len();

    let start = out.len();
    out.push(0b0011_0000 | qos << 1 | u8::from(retain));
    super::write_remaining_length(out, remaining_len);
    super::write_prefixed(out, topic.as_bytes());
    let pkid_at = if qos > 0 {
        let at = out.len() - start;
        out.extend_from_slice(&pkid.to_be_bytes());
        Some(at)
    } else {
        None
    };
    let payload_at = out.len() - start;
    out.extend_from_slice(payload);
    PublishLayout {
        pkid_at,
        payload_at,
        len: out.len() - start,
    }
}

/// Overwrite the packet identifier of an already-encoded frame.
#[inline]
pub fn patch_pkid(frame: &mut [u8], pkid_at: usize, pkid: u16) {
    frame[pkid_at..pkid_at + 2].copy_from_slice(&pkid.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{decode, oracle, Packet};
    use mqttbytes::v4::Publish;
    use mqttbytes::QoS;

    fn encoded(topic: &str, qos: u8, retain: bool, pkid: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let layout = encode(&mut out, topic, qos, retain, pkid, payload);
        assert_eq!(layout.len, out.len());
        out
    }

    fn oracle_qos(qos: u8) -> QoS {
        mqttbytes::qos(qos).unwrap()
    }

    #[test]
    fn qos0_publish_has_no_packet_id_and_is_byte_exact() {
        let mut out = Vec::new();
        let layout = encode(&mut out, "a/b", 0, false, 999, b"hi");
        assert_eq!(out, [0x30, 7, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']);
        assert_eq!(
            layout,
            PublishLayout {
                pkid_at: None,
                payload_at: 7,
                len: 9
            }
        );
    }

    #[test]
    fn qos1_retained_publish_sets_bits_and_places_packet_id_after_topic() {
        let mut out = Vec::new();
        let layout = encode(&mut out, "t", 1, true, 0x0A0B, b"xyz");
        assert_eq!(
            out,
            [
                0b0011_0011,
                8,
                0x00,
                0x01,
                b't',
                0x0A,
                0x0B,
                b'x',
                b'y',
                b'z'
            ]
        );
        assert_eq!(
            layout,
            PublishLayout {
                pkid_at: Some(5),
                payload_at: 7,
                len: 10
            }
        );
    }

    #[test]
    fn qos2_publish_sets_qos_bits_to_10() {
        let frame = encoded("t", 2, false, 1, b"");
        assert_eq!(frame[0], 0b0011_0100);
    }

    #[test]
    fn layout_offsets_are_relative_to_the_frame_not_the_buffer() {
        let mut out = vec![0xEE; 17];
        let layout = encode(&mut out, "topic", 1, false, 5, b"payload");
        let frame = &out[17..];
        assert_eq!(layout.len, frame.len());
        assert_eq!(layout.pkid_at, Some(1 + 1 + 2 + 5));
        assert_eq!(&frame[layout.pkid_at.unwrap()..][..2], [0x00, 0x05]);
        assert_eq!(&frame[layout.payload_at..], b"payload");
    }

    #[test]
    fn payload_offset_accounts_for_a_three_byte_remaining_length() {
        let payload = vec![7u8; 20_000];
        let mut out = Vec::new();
        let layout = encode(&mut out, "big", 1, false, 1, &payload);
        // 2 + 3 + 2 + 20_000 = 20_007 needs 3 varint bytes.
        assert_eq!(&out[1..4], [0xA7, 0x9C, 0x01]);
        assert_eq!(layout.pkid_at, Some(1 + 3 + 2 + 3));
        assert_eq!(layout.payload_at, 1 + 3 + 2 + 3 + 2);
        assert_eq!(layout.len, 1 + 3 + 20_007);
    }

    #[test]
    fn patch_pkid_rewrites_only_the_two_packet_id_bytes() {
        let mut frame = encoded("t", 1, false, 1, b"p");
        let before = frame.clone();
        patch_pkid(&mut frame, 5, 0xCAFE);
        assert_eq!(&frame[5..7], [0xCA, 0xFE]);
        assert_eq!(frame[..5], before[..5]);
        assert_eq!(frame[7..], before[7..]);
    }

    #[test]
    #[should_panic(expected = "QoS 3")]
    fn qos3_publish_is_refused_by_the_encoder() {
        encoded("t", 3, false, 1, b"");
    }

    #[test]
    fn our_publish_decodes_with_mqttbytes_to_the_same_fields() {
        let big = vec![0x5Au8; 20_000];
        for qos in 0..=2u8 {
            for retain in [false, true] {
                for payload in [&b""[..], b"x", &[1u8; 200], &big[..]] {
                    let frame = encoded("sensors/42/temp", qos, retain, 4242, payload);
                    let oracle::Packet::Publish(got) = oracle::read(&frame).unwrap() else {
                        panic!("mqttbytes did not see a PUBLISH");
                    };
                    assert_eq!(got.qos, oracle_qos(qos));
                    assert!(!got.dup);
                    assert_eq!(got.retain, retain);
                    assert_eq!(got.topic, "sensors/42/temp");
                    assert_eq!(got.pkid, if qos == 0 { 0 } else { 4242 });
                    assert_eq!(&got.payload[..], payload);
                }
            }
        }
    }

    #[test]
    fn mqttbytes_publish_of_every_size_class_decodes_with_ours() {
        // Remaining lengths of 1, 2 and 3 varint bytes.
        for payload_len in [0, 1, 100, 123, 124, 200, 16_000, 16_379, 16_380, 70_000] {
            for qos in 0..=2u8 {
                let payload = vec![0xA5u8; payload_len];
                let mut publish = Publish::new("a/b/c", oracle_qos(qos), payload.clone());
                publish.retain = qos == 1;
                publish.pkid = if qos == 0 { 0 } else { 31_337 };
                let frame = oracle::write(|b| publish.write(b));
                let topic_len = 2 + 5 + if qos > 0 { 2 } else { 0 };
                let remaining_len = topic_len + payload_len;
                assert_eq!(
                    frame.len(),
                    1 + crate::mqtt::remaining_length_bytes(remaining_len) + remaining_len
                );
                assert_eq!(
                    decode(&frame),
                    Ok(Some((
                        Packet::Publish {
                            dup: false,
                            qos,
                            retain: qos == 1,
                            topic: b"a/b/c",
                            pkid: publish.pkid,
                            payload: &payload,
                        },
                        frame.len()
                    ))),
                    "payload {payload_len} qos {qos}"
                );
            }
        }
    }

    #[test]
    fn our_publish_round_trips_through_our_decoder() {
        let frame = encoded("t/1", 1, false, 9, b"body");
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Publish {
                    dup: false,
                    qos: 1,
                    retain: false,
                    topic: b"t/1",
                    pkid: 9,
                    payload: b"body"
                },
                frame.len()
            )))
        );
    }
}
