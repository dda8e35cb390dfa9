//! Zero-allocation MQTT 3.1.1 decoder for packets read from the socket.
//!
//! Every connection's read buffer is fed through [`decode`] in a loop, so it must be cheap,
//! must never allocate, and must never panic whatever a peer sends: every read goes through
//! a bounds-checked `Reader` (`packet.rs`). The fixed header is validated before waiting for
//! the body, so garbage is rejected on its first bytes instead of after buffering up to
//! [`MAX_PACKET_BYTES`]. Topic names and filters are handed out as raw bytes; their UTF-8
//! well-formedness (section 1.5.3) is not checked on the hot path.

use super::MAX_PACKET_BYTES;
use crate::mqtt::packet::{read_remaining_length, Reader, *};
pub use crate::mqtt::packet::{Packet, ProtocolError};

/// Decode one packet from the front of `buf`.
/// `Ok(None)`: not enough bytes yet. `Ok(Some((packet, consumed)))`: a whole packet.
/// `Err`: malformed (bad type/flags, bad lengths, remaining length > MAX_PACKET_BYTES).
///
/// # Errors
/// A [`ProtocolError`] naming the first rule the bytes break; the connection should be
/// dropped, since the stream can no longer be framed.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, ProtocolError> {
    let Some((&first_byte, after_first)) = buf.split_first() else {
        return Ok(None);
    };
    let packet_type = first_byte >> 4;
    let flags = first_byte & 0b0000_1111;
    check_type_and_flags(packet_type, flags)?;

    let Some((remaining_len, varint_bytes)) = read_remaining_length(after_first)? else {
        return Ok(None);
    };
    if remaining_len > MAX_PACKET_BYTES {
        return Err(ProtocolError("remaining length exceeds MAX_PACKET_BYTES"));
    }
    check_fixed_remaining_length(packet_type, remaining_len)?;

    let header_len = 1 + varint_bytes;
    let frame_len = header_len + remaining_len;
    let Some(body) = buf.get(header_len..frame_len) else {
        return Ok(None);
    };
    let packet = decode_body(packet_type, flags, Reader { rest: body })?;
    Ok(Some((packet, frame_len)))
}

/// Reject reserved packet types and, where the spec fixes the flag nibble (section 2.2.2,
/// table 2.2), any other value. PUBLISH flags are DUP, QoS and RETAIN (section 3.3.1).
fn check_type_and_flags(packet_type: u8, flags: u8) -> Result<(), ProtocolError> {
    let required_flags = match packet_type {
        0 => return Err(ProtocolError("reserved packet type 0")),
        15 => return Err(ProtocolError("reserved packet type 15")),
        PUBLISH => {
            let qos = (flags & 0b0110) >> 1;
            if qos == 3 {
                return Err(ProtocolError("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                // Section 3.3.1.1: DUP MUST be 0 for QoS 0 messages.
                return Err(ProtocolError("PUBLISH with DUP set at QoS 0"));
            }
            return Ok(());
        }
        // PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010 (sections 3.6.1, 3.8.1, 3.10.1).
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
        _ => 0b0000,
    };
    if flags == required_flags {
        Ok(())
    } else {
        Err(ProtocolError("invalid fixed header flags"))
    }
}

/// Packets whose size the spec fixes: the acks carry exactly a packet identifier, the
/// pings and DISCONNECT nothing at all.
fn check_fixed_remaining_length(
    packet_type: u8,
    remaining_len: usize,
) -> Result<(), ProtocolError> {
    let (expected, message) = match packet_type {
        CONNACK => (2, "CONNACK remaining length is not 2"),
        PUBACK => (2, "PUBACK remaining length is not 2"),
        PUBREC => (2, "PUBREC remaining length is not 2"),
        PUBREL => (2, "PUBREL remaining length is not 2"),
        PUBCOMP => (2, "PUBCOMP remaining length is not 2"),
        UNSUBACK => (2, "UNSUBACK remaining length is not 2"),
        PINGREQ => (0, "PINGREQ remaining length is not 0"),
        PINGRESP => (0, "PINGRESP remaining length is not 0"),
        DISCONNECT => (0, "DISCONNECT remaining length is not 0"),
        _ => return Ok(()),
    };
    if remaining_len == expected {
        Ok(())
    } else {
        Err(ProtocolError(message))
    }
}

fn decode_body(
    packet_type: u8,
    flags: u8,
    mut body: Reader<'_>,
) -> Result<Packet<'_>, ProtocolError> {
    let packet = match packet_type {
        CONNECT => decode_connect(&mut body)?,
        CONNACK => {
            // Section 3.2.2.1: bits 7-1 of the acknowledge flags are reserved zero.
            let ack_flags = body.u8()?;
            if ack_flags & 0b1111_1110 != 0 {
                return Err(ProtocolError("CONNACK reserved flag bits set"));
            }
            let code = body.u8()?;
            if code > 5 {
                return Err(ProtocolError("CONNACK return code above 5"));
            }
            Packet::ConnAck {
                session_present: ack_flags & 0b0000_0001 != 0,
                code,
                properties: &[],
            }
        }
        PUBLISH => {
            let qos = (flags & 0b0110) >> 1;
            let topic = body.prefixed()?;
            if topic.is_empty() {
                // Section 4.7.3: topic names are at least one character long.
                return Err(ProtocolError("PUBLISH with empty topic"));
            }
            let pkid = if qos > 0 { body.pkid()? } else { 0 };
            Packet::Publish {
                dup: flags & 0b1000 != 0,
                qos,
                retain: flags & 0b0001 != 0,
                topic,
                pkid,
                payload: body.take_rest(),
            }
        }
        PUBACK => Packet::PubAck {
            pkid: body.pkid()?,
            reason: 0,
        },
        PUBREC => Packet::PubRec {
            pkid: body.pkid()?,
            reason: 0,
        },
        PUBREL => Packet::PubRel {
            pkid: body.pkid()?,
            reason: 0,
        },
        PUBCOMP => Packet::PubComp {
            pkid: body.pkid()?,
            reason: 0,
        },
        UNSUBACK => Packet::UnsubAck { pkid: body.pkid()? },
        SUBSCRIBE => {
            let pkid = body.pkid()?;
            let filters = body.rest;
            // Section 3.8.3: at least one (filter, options) pair, options bits 7-2 zero.
            if filters.is_empty() {
                return Err(ProtocolError("SUBSCRIBE without topic filters"));
            }
            while !body.rest.is_empty() {
                body.prefixed()?;
                let options = body.u8()?;
                if options > 2 {
                    return Err(ProtocolError("SUBSCRIBE with invalid requested QoS"));
                }
            }
            Packet::Subscribe { pkid, filters }
        }
        SUBACK => {
            let pkid = body.pkid()?;
            let codes = body.take_rest();
            // Section 3.9.3: one code per filter, each 0x00, 0x01, 0x02 or 0x80.
            if codes.is_empty() {
                return Err(ProtocolError("SUBACK without return codes"));
            }
            if codes
                .iter()
                .any(|&code| !matches!(code, 0x00 | 0x01 | 0x02 | 0x80))
            {
                return Err(ProtocolError("SUBACK with invalid return code"));
            }
            Packet::SubAck { pkid, codes }
        }
        UNSUBSCRIBE => {
            let pkid = body.pkid()?;
            // Section 3.10.3: at least one topic filter.
            if body.rest.is_empty() {
                return Err(ProtocolError("UNSUBSCRIBE without topic filters"));
            }
            let mut filters = 0u16;
            while !body.rest.is_empty() {
                body.prefixed()?;
                filters = filters.saturating_add(1);
            }
            Packet::Unsubscribe { pkid, filters }
        }
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect { reason: 0 },
        _ => return Err(ProtocolError("reserved packet type")),
    };
    if body.rest.is_empty() {
        Ok(packet)
    } else {
        Err(ProtocolError("trailing bytes after packet body"))
    }
}

/// CONNECT (section 3.1): accepts "MQTT" level 4 and, loosely, "MQIsdp" level 3 (3.1).
fn decode_connect<'a>(body: &mut Reader<'a>) -> Result<Packet<'a>, ProtocolError> {
    let protocol_name = body.prefixed()?;
    let protocol_level = body.u8()?;
    match (protocol_name, protocol_level) {
        (b"MQTT", 4) | (b"MQIsdp", 3) => {}
        (b"MQTT" | b"MQIsdp", _) => return Err(ProtocolError("unsupported protocol level")),
        _ => return Err(ProtocolError("unknown protocol name")),
    }
    // Connect flags (section 3.1.2.3, figure 3.4).
    let connect_flags = body.u8()?;
    if connect_flags & 0b0000_0001 != 0 {
        return Err(ProtocolError("CONNECT reserved flag bit set"));
    }
    let will_flag = connect_flags & 0b0000_0100 != 0;
    let will_qos = (connect_flags & 0b0001_1000) >> 3;
    let will_retain = connect_flags & 0b0010_0000 != 0;
    if will_qos == 3 || (!will_flag && (will_qos != 0 || will_retain)) {
        return Err(ProtocolError("CONNECT with invalid will flags"));
    }
    let keep_alive_s = body.u16()?;
    // Payload (section 3.1.3): client id, will topic, will message, user name, password.
    let client_id = body.prefixed()?;
    if will_flag {
        body.prefixed()?;
        body.prefixed()?;
    }
    let username = if connect_flags & 0b1000_0000 != 0 {
        Some(body.prefixed()?)
    } else {
        None
    };
    if connect_flags & 0b0100_0000 != 0 {
        body.prefixed()?;
    }
    Ok(Packet::Connect {
        client_id,
        username,
        keep_alive_s,
        protocol_level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{ack, connect, oracle, publish, subscribe};
    use mqttbytes::v4::{ConnAck, ConnectReturnCode, PingReq, PingResp, Unsubscribe};

    fn err(buf: &[u8]) -> &'static str {
        match decode(buf) {
            Err(ProtocolError(message)) => message,
            other => panic!("expected an error for {buf:02X?}, got {other:?}"),
        }
    }

    /// One valid frame of every packet kind the decoder knows.
    fn valid_frames() -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut push = |encode: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            encode(&mut out);
            frames.push(out);
        };
        push(&|out| {
            connect::encode(
                out,
                &connect::Connect {
                    client_id: "client",
                    username: Some("user"),
                    password: Some(b"pass"),
                    keep_alive_s: 30,
                    clean_session: true,
                },
            )
        });
        push(&|out| connect::encode_connack(out, true, 0));
        push(&|out| {
            publish::encode(out, "t/x", 0, false, 0, b"zero");
        });
        push(&|out| {
            publish::encode(out, "t/x", 1, true, 7, &[9; 300]);
        });
        push(&|out| {
            publish::encode(out, "t/x", 2, false, 8, &[3; 20_000]);
        });
        push(&|out| ack::encode_puback(out, 1));
        push(&|out| ack::encode_pubrec(out, 2));
        push(&|out| ack::encode_pubrel(out, 3));
        push(&|out| ack::encode_pubcomp(out, 4));
        push(&|out| subscribe::encode(out, 5, &[("a/#", 1), ("b", 0)]));
        push(&|out| subscribe::encode_suback(out, 5, &[1, 0x80]));
        push(&|out| subscribe::encode_unsuback(out, 6));
        push(&|out| out.extend_from_slice(&[0xA2, 0x05, 0x00, 0x06, 0x00, 0x01, b'a']));
        push(&connect::encode_pingreq);
        push(&connect::encode_pingresp);
        push(&connect::encode_disconnect);
        frames
    }

    #[test]
    fn empty_buffer_is_incomplete() {
        assert_eq!(decode(&[]), Ok(None));
    }

    #[test]
    fn every_proper_prefix_of_a_valid_packet_is_incomplete() {
        for frame in valid_frames() {
            let (_, consumed) = decode(&frame).unwrap().unwrap();
            assert_eq!(consumed, frame.len(), "{:02X?}", &frame[..2]);
            for cut in 0..frame.len() {
                assert_eq!(
                    decode(&frame[..cut]),
                    Ok(None),
                    "prefix {cut} of {:02X?}",
                    &frame[..2]
                );
            }
        }
    }

    #[test]
    fn bytes_after_a_packet_are_left_for_the_next_call() {
        let mut buf = Vec::new();
        ack::encode_puback(&mut buf, 1);
        connect::encode_pingresp(&mut buf);
        buf.push(0x40); // start of another PUBACK
        assert_eq!(
            decode(&buf),
            Ok(Some((Packet::PubAck { pkid: 1, reason: 0 }, 4)))
        );
        assert_eq!(decode(&buf[4..]), Ok(Some((Packet::PingResp, 2))));
        assert_eq!(decode(&buf[6..]), Ok(None));
    }

    #[test]
    fn a_stream_of_a_thousand_pubacks_decodes_back_to_back() {
        let mut buf = Vec::new();
        for pkid in 1..=1000u16 {
            ack::encode_puback(&mut buf, pkid);
        }
        let mut at = 0;
        let mut expected_pkid = 1;
        while let Some((packet, consumed)) = decode(&buf[at..]).unwrap() {
            assert_eq!(
                packet,
                Packet::PubAck {
                    pkid: expected_pkid,
                    reason: 0
                }
            );
            expected_pkid += 1;
            at += consumed;
        }
        assert_eq!((at, expected_pkid), (buf.len(), 1001));
    }

    #[test]
    fn mqttbytes_connack_of_every_code_decodes_with_ours() {
        let codes = [
            ConnectReturnCode::Success,
            ConnectReturnCode::RefusedProtocolVersion,
            ConnectReturnCode::BadClientId,
            ConnectReturnCode::ServiceUnavailable,
            ConnectReturnCode::BadUserNamePassword,
            ConnectReturnCode::NotAuthorized,
        ];
        for code in codes {
            for session_present in [false, true] {
                let frame = oracle::write(|b| ConnAck::new(code, session_present).write(b));
                assert_eq!(
                    decode(&frame),
                    Ok(Some((
                        Packet::ConnAck {
                            session_present,
                            code: code as u8,
                            properties: &[]
                        },
                        4
                    )))
                );
            }
        }
    }

    #[test]
    fn mqttbytes_pings_decode_with_ours() {
        assert_eq!(
            decode(&oracle::write(|b| PingResp.write(b))),
            Ok(Some((Packet::PingResp, 2)))
        );
        assert_eq!(
            decode(&oracle::write(|b| PingReq.write(b))),
            Ok(Some((Packet::PingReq, 2)))
        );
    }

    #[test]
    fn mqttbytes_connect_decodes_with_ours() {
        let mut theirs = mqttbytes::v4::Connect::new("their-client");
        theirs.keep_alive = 45;
        theirs.set_login("alice", "pw");
        let frame = oracle::write(|b| theirs.write(b));
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Connect {
                    client_id: b"their-client",
                    username: Some(b"alice"),
                    keep_alive_s: 45,
                    protocol_level: 4
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn mqttbytes_unsubscribe_decodes_with_ours() {
        let mut theirs = Unsubscribe::new("a/b");
        theirs.pkid = 12;
        theirs.topics.push("c".into());
        let frame = oracle::write(|b| theirs.write(b));
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Unsubscribe {
                    pkid: 12,
                    filters: 2
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn mqtt_3_1_connect_with_mqisdp_level_3_is_accepted() {
        let mut frame = vec![0x10, 16, 0x00, 0x06];
        frame.extend_from_slice(b"MQIsdp");
        frame.extend_from_slice(&[0x03, 0b0000_0010, 0x00, 0x0A, 0x00, 0x02, b'i', b'd']);
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Connect {
                    client_id: b"id",
                    username: None,
                    keep_alive_s: 10,
                    protocol_level: 3
                },
                18
            )))
        );
    }

    #[test]
    fn connect_with_a_will_skips_it_and_still_finds_the_username() {
        let mut frame = vec![0x10, 23, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04];
        frame.push(0b1000_1110); // user name, will QoS 1, will flag, clean session
        frame.extend_from_slice(&[0x00, 0x05, 0x00, 0x01, b'c']);
        frame.extend_from_slice(&[0x00, 0x01, b'w', 0x00, 0x02, b'b', b'y']);
        frame.extend_from_slice(&[0x00, 0x01, b'u']);
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Connect {
                    client_id: b"c",
                    username: Some(b"u"),
                    keep_alive_s: 5,
                    protocol_level: 4
                },
                25
            )))
        );
    }

    #[test]
    fn reserved_packet_types_0_and_15_are_errors() {
        assert_eq!(err(&[0x00, 0x00]), "reserved packet type 0");
        assert_eq!(err(&[0xF0, 0x00]), "reserved packet type 15");
        // Rejected on the first byte, before any length arrives.
        assert_eq!(err(&[0x00]), "reserved packet type 0");
    }

    #[test]
    fn wrong_fixed_header_flags_are_errors() {
        for first_byte in [
            0x41, 0x48, 0x60, 0x63, 0x80, 0xA0, 0x22, 0x52, 0x72, 0x92, 0xB2,
        ] {
            assert_eq!(
                err(&[first_byte, 0x02, 0x00, 0x01]),
                "invalid fixed header flags"
            );
        }
        for first_byte in [0x11, 0xC1, 0xD8, 0xE2] {
            assert_eq!(err(&[first_byte, 0x00]), "invalid fixed header flags");
        }
    }

    #[test]
    fn publish_with_qos_3_or_dup_at_qos_0_is_an_error() {
        assert_eq!(
            err(&[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01]),
            "PUBLISH with QoS 3"
        );
        assert_eq!(
            err(&[0x38, 0x03, 0x00, 0x01, b't']),
            "PUBLISH with DUP set at QoS 0"
        );
    }

    #[test]
    fn dup_publish_at_qos_1_is_accepted() {
        let frame = [0x3A, 0x05, 0x00, 0x01, b't', 0x00, 0x09];
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Publish {
                    dup: true,
                    qos: 1,
                    retain: false,
                    topic: b"t",
                    pkid: 9,
                    payload: b""
                },
                7
            )))
        );
    }

    #[test]
    fn remaining_length_of_five_bytes_is_an_error() {
        assert_eq!(
            err(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            "remaining length longer than 4 bytes"
        );
        assert_eq!(
            err(&[0x30, 0x80, 0x80, 0x80, 0x80]),
            "remaining length longer than 4 bytes"
        );
    }

    #[test]
    fn partial_remaining_length_is_incomplete() {
        assert_eq!(decode(&[0x30]), Ok(None));
        assert_eq!(decode(&[0x30, 0x80]), Ok(None));
        assert_eq!(decode(&[0x30, 0x80, 0x80, 0x80]), Ok(None));
    }

    #[test]
    fn remaining_length_above_max_packet_bytes_is_an_error_before_the_body_arrives() {
        let mut header = vec![0x30];
        crate::mqtt::write_remaining_length(&mut header, MAX_PACKET_BYTES + 1);
        assert_eq!(err(&header), "remaining length exceeds MAX_PACKET_BYTES");
        let mut header = vec![0x30];
        crate::mqtt::write_remaining_length(&mut header, MAX_PACKET_BYTES);
        assert_eq!(decode(&header), Ok(None));
    }

    #[test]
    fn fixed_size_packets_with_another_remaining_length_are_errors() {
        assert_eq!(err(&[0x20, 0x03]), "CONNACK remaining length is not 2");
        assert_eq!(err(&[0x40, 0x01]), "PUBACK remaining length is not 2");
        assert_eq!(
            err(&[0x40, 0x03, 0x00, 0x01, 0x00]),
            "PUBACK remaining length is not 2"
        );
        assert_eq!(err(&[0x50, 0x00]), "PUBREC remaining length is not 2");
        assert_eq!(err(&[0x62, 0x04]), "PUBREL remaining length is not 2");
        assert_eq!(err(&[0x70, 0x7F]), "PUBCOMP remaining length is not 2");
        assert_eq!(err(&[0xB0, 0x00]), "UNSUBACK remaining length is not 2");
        assert_eq!(err(&[0xC0, 0x01]), "PINGREQ remaining length is not 0");
        assert_eq!(err(&[0xD0, 0x02]), "PINGRESP remaining length is not 0");
        assert_eq!(err(&[0xE0, 0x01]), "DISCONNECT remaining length is not 0");
    }

    #[test]
    fn connack_with_code_above_5_or_reserved_bits_is_an_error() {
        assert_eq!(
            err(&[0x20, 0x02, 0x00, 0x06]),
            "CONNACK return code above 5"
        );
        assert_eq!(
            err(&[0x20, 0x02, 0x02, 0x00]),
            "CONNACK reserved flag bits set"
        );
    }

    #[test]
    fn topic_length_overrunning_the_packet_is_an_error() {
        assert_eq!(
            err(&[0x30, 0x03, 0x00, 0x05, b't']),
            "string length overruns packet"
        );
        assert_eq!(err(&[0x30, 0x01, 0x00]), "packet body too short");
        // QoS 1 with the packet identifier missing.
        assert_eq!(
            err(&[0x32, 0x03, 0x00, 0x01, b't']),
            "packet body too short"
        );
    }

    #[test]
    fn publish_with_empty_topic_or_zero_packet_id_is_an_error() {
        assert_eq!(err(&[0x30, 0x02, 0x00, 0x00]), "PUBLISH with empty topic");
        assert_eq!(
            err(&[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00]),
            "packet identifier 0"
        );
        assert_eq!(err(&[0x40, 0x02, 0x00, 0x00]), "packet identifier 0");
    }

    #[test]
    fn malformed_subscribe_and_suback_are_errors() {
        assert_eq!(
            err(&[0x82, 0x02, 0x00, 0x01]),
            "SUBSCRIBE without topic filters"
        );
        assert_eq!(
            err(&[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a']),
            "packet body too short"
        );
        assert_eq!(
            err(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03]),
            "SUBSCRIBE with invalid requested QoS"
        );
        assert_eq!(
            err(&[0x90, 0x02, 0x00, 0x01]),
            "SUBACK without return codes"
        );
        assert_eq!(
            err(&[0x90, 0x03, 0x00, 0x01, 0x03]),
            "SUBACK with invalid return code"
        );
        assert_eq!(
            err(&[0xA2, 0x02, 0x00, 0x01]),
            "UNSUBSCRIBE without topic filters"
        );
    }

    #[test]
    fn malformed_connect_is_an_error() {
        let valid = {
            let mut out = Vec::new();
            connect::encode(
                &mut out,
                &connect::Connect {
                    client_id: "c",
                    username: None,
                    password: None,
                    keep_alive_s: 1,
                    clean_session: true,
                },
            );
            out
        };
        let patched = |at: usize, byte: u8| {
            let mut frame = valid.clone();
            frame[at] = byte;
            frame
        };
        assert_eq!(err(&patched(4, b'X')), "unknown protocol name");
        assert_eq!(err(&patched(8, 5)), "unsupported protocol level");
        assert_eq!(
            err(&patched(9, 0b0000_0011)),
            "CONNECT reserved flag bit set"
        );
        assert_eq!(
            err(&patched(9, 0b0001_1110)),
            "CONNECT with invalid will flags"
        );
        assert_eq!(
            err(&patched(9, 0b0010_0010)),
            "CONNECT with invalid will flags"
        );
        assert_eq!(err(&patched(9, 0b1000_0010)), "packet body too short");
        let mut trailing = valid.clone();
        trailing[1] += 1;
        trailing.push(0);
        assert_eq!(err(&trailing), "trailing bytes after packet body");
    }

    #[test]
    fn random_and_mutated_buffers_never_panic_and_never_overconsume() {
        crate::mqtt::fuzz::never_overconsumes(0x9E37_79B9_7F4A_7C15, &valid_frames(), |buf| {
            decode(buf).ok().flatten().map(|(_, used)| used)
        });
    }
}
