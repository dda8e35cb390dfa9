//! Zero-allocation MQTT 5 decoder: the same contract as the 3.1.1 one
//! ([`crate::mqtt::v4::decode`]): never allocates, never panics, rejects garbage on its first
//! bytes, bounds every length by the packet. On top of 3.1.1 it reads reason codes (an
//! ack's reason and property block may be omitted, sections 3.4.2.1 and 3.4.2.2.1) and
//! validates every property block ([`super::properties`]): unknown identifiers, identifiers
//! not allowed in the packet, duplicates and out-of-range values are protocol errors.
//! Reason codes a packet may not carry are protocol errors too.

use super::properties::{self as props, read_block};
use crate::mqtt::packet::*;
use crate::mqtt::MAX_PACKET_BYTES;

/// Control packet type 15 (section 2.1.2): AUTH, new in MQTT 5.
const AUTH: u8 = 15;

/// Decode one MQTT 5 packet from the front of `buf`; see [`crate::mqtt::v4::decode::decode`]
/// for the contract. A CONNECT of protocol level 3 or 4 is decoded too (without
/// properties), so the sink can read a client's first packet before it knows its version.
///
/// # Errors
/// A [`ProtocolError`] naming the first rule the bytes break.
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
    check_remaining_length(packet_type, remaining_len)?;
    let header_len = 1 + varint_bytes;
    let frame_len = header_len + remaining_len;
    let Some(body) = buf.get(header_len..frame_len) else {
        return Ok(None);
    };
    let mut reader = Reader { rest: body };
    let packet = decode_body(packet_type, flags, &mut reader)?;
    if reader.rest.is_empty() {
        Ok(Some((packet, frame_len)))
    } else {
        Err(ProtocolError("trailing bytes after packet body"))
    }
}

/// Section 2.1.3, table 2-2: fixed flag nibbles; PUBLISH carries DUP, QoS and RETAIN.
fn check_type_and_flags(packet_type: u8, flags: u8) -> Result<(), ProtocolError> {
    let required_flags = match packet_type {
        0 => return Err(ProtocolError("reserved packet type 0")),
        PUBLISH => {
            let qos = (flags & 0b0110) >> 1;
            if qos == 3 {
                return Err(ProtocolError("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(ProtocolError("PUBLISH with DUP set at QoS 0"));
            }
            return Ok(());
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
        _ => 0b0000,
    };
    if flags == required_flags {
        Ok(())
    } else {
        Err(ProtocolError("invalid fixed header flags"))
    }
}

/// Lower bounds the spec fixes, checked before the body arrives.
fn check_remaining_length(packet_type: u8, remaining_len: usize) -> Result<(), ProtocolError> {
    let (ok, message) = match packet_type {
        // Flags, reason code and a property length (section 3.2.2).
        CONNACK => (remaining_len >= 3, "CONNACK remaining length below 3"),
        PUBACK | PUBREC | PUBREL | PUBCOMP => (remaining_len >= 2, "ack remaining length below 2"),
        SUBACK | UNSUBACK => (
            remaining_len >= 3,
            "SUBACK/UNSUBACK remaining length below 3",
        ),
        PINGREQ => (remaining_len == 0, "PINGREQ remaining length is not 0"),
        PINGRESP => (remaining_len == 0, "PINGRESP remaining length is not 0"),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(ProtocolError(message))
    }
}

fn decode_body<'a>(
    packet_type: u8,
    flags: u8,
    body: &mut Reader<'a>,
) -> Result<Packet<'a>, ProtocolError> {
    Ok(match packet_type {
        CONNECT => decode_connect(body)?,
        CONNACK => decode_connack(body)?,
        PUBLISH => decode_publish(flags, body)?,
        PUBACK | PUBREC => {
            let (pkid, reason) = decode_ack(body, is_publish_ack_reason)?;
            if packet_type == PUBACK {
                Packet::PubAck { pkid, reason }
            } else {
                Packet::PubRec { pkid, reason }
            }
        }
        PUBREL | PUBCOMP => {
            // Section 3.6.2.1: 0x00 or 0x92 (Packet Identifier not found).
            let (pkid, reason) = decode_ack(body, |code| matches!(code, 0x00 | 0x92))?;
            if packet_type == PUBREL {
                Packet::PubRel { pkid, reason }
            } else {
                Packet::PubComp { pkid, reason }
            }
        }
        SUBSCRIBE => decode_subscribe(body)?,
        SUBACK => {
            let pkid = body.pkid()?;
            read_block(body, props::ACK)?;
            let codes = codes(body, is_suback_reason, "SUBACK with invalid reason code")?;
            Packet::SubAck { pkid, codes }
        }
        UNSUBSCRIBE => {
            let pkid = body.pkid()?;
            read_block(body, props::UNSUBSCRIBE)?;
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
        UNSUBACK => {
            let pkid = body.pkid()?;
            read_block(body, props::ACK)?;
            codes(
                body,
                is_unsuback_reason,
                "UNSUBACK with invalid reason code",
            )?;
            Packet::UnsubAck { pkid }
        }
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect {
            reason: reason_and_properties(body, props::DISCONNECT, is_disconnect_reason)?,
        },
        AUTH => Packet::Auth {
            reason: reason_and_properties(body, props::AUTH, |code| {
                matches!(code, 0x00 | 0x18 | 0x19)
            })?,
        },
        _ => return Err(ProtocolError("reserved packet type")),
    })
}

/// CONNACK (section 3.2.2): acknowledge flags, reason code, properties.
fn decode_connack<'a>(body: &mut Reader<'a>) -> Result<Packet<'a>, ProtocolError> {
    let ack_flags = body.u8()?;
    if ack_flags & 0b1111_1110 != 0 {
        return Err(ProtocolError("CONNACK reserved flag bits set"));
    }
    let code = body.u8()?;
    if !is_connack_reason(code) {
        return Err(ProtocolError("CONNACK with invalid reason code"));
    }
    let properties = read_block(body, props::CONNACK)?;
    Ok(Packet::ConnAck {
        session_present: ack_flags & 1 != 0,
        code,
        properties,
    })
}

/// PUBLISH (section 3.3.2): topic, packet identifier at QoS 1/2, properties, payload. An
/// empty topic needs a Topic Alias (section 3.3.2.3.4).
fn decode_publish<'a>(flags: u8, body: &mut Reader<'a>) -> Result<Packet<'a>, ProtocolError> {
    let qos = (flags & 0b0110) >> 1;
    let topic = body.prefixed()?;
    let pkid = if qos > 0 { body.pkid()? } else { 0 };
    let raw = read_block(body, props::PUBLISH)?;
    if topic.is_empty()
        && props::Properties::parse(raw, props::PUBLISH)?
            .topic_alias
            .is_none()
    {
        return Err(ProtocolError("PUBLISH with empty topic and no topic alias"));
    }
    Ok(Packet::Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        pkid,
        payload: body.take_rest(),
    })
}

/// PUBACK/PUBREC/PUBREL/PUBCOMP (section 3.4.2): a reason code and properties may be left
/// out (remaining length 2: success; 3: no properties).
fn decode_ack(body: &mut Reader<'_>, valid: fn(u8) -> bool) -> Result<(u16, u8), ProtocolError> {
    let pkid = body.pkid()?;
    let reason = reason_and_properties(body, props::ACK, valid)?;
    Ok((pkid, reason))
}

/// An optional reason code (absent: 0x00) and optional properties (absent: none).
fn reason_and_properties(
    body: &mut Reader<'_>,
    scope: props::Scope,
    valid: fn(u8) -> bool,
) -> Result<u8, ProtocolError> {
    if body.rest.is_empty() {
        return Ok(0);
    }
    let reason = body.u8()?;
    if !valid(reason) {
        return Err(ProtocolError("reason code not allowed in this packet"));
    }
    if !body.rest.is_empty() {
        read_block(body, scope)?;
    }
    Ok(reason)
}

/// One or more reason codes, each `valid`.
fn codes<'a>(
    body: &mut Reader<'a>,
    valid: fn(u8) -> bool,
    message: &'static str,
) -> Result<&'a [u8], ProtocolError> {
    let codes = body.take_rest();
    if codes.is_empty() {
        return Err(ProtocolError("SUBACK/UNSUBACK without reason codes"));
    }
    if codes.iter().all(|&code| valid(code)) {
        Ok(codes)
    } else {
        Err(ProtocolError(message))
    }
}

/// CONNECT (section 3.1): level 5 with properties; levels 3 ("MQIsdp") and 4 without.
fn decode_connect<'a>(body: &mut Reader<'a>) -> Result<Packet<'a>, ProtocolError> {
    let protocol_name = body.prefixed()?;
    let protocol_level = body.u8()?;
    match (protocol_name, protocol_level) {
        (b"MQTT", 4 | 5) | (b"MQIsdp", 3) => {}
        (b"MQTT" | b"MQIsdp", _) => return Err(ProtocolError("unsupported protocol level")),
        _ => return Err(ProtocolError("unknown protocol name")),
    }
    let v5 = protocol_level == super::PROTOCOL_LEVEL;
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
    if v5 {
        read_block(body, props::CONNECT)?;
    }
    let client_id = body.prefixed()?;
    if will_flag {
        if v5 {
            read_block(body, props::WILL)?;
        }
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

/// SUBSCRIBE (section 3.8): properties, then (filter, options) pairs; options bits 7-6 are
/// reserved zero, QoS and Retain Handling at most 2 (section 3.8.3.1).
fn decode_subscribe<'a>(body: &mut Reader<'a>) -> Result<Packet<'a>, ProtocolError> {
    let pkid = body.pkid()?;
    read_block(body, props::SUBSCRIBE)?;
    let filters = body.rest;
    if filters.is_empty() {
        return Err(ProtocolError("SUBSCRIBE without topic filters"));
    }
    while !body.rest.is_empty() {
        body.prefixed()?;
        let options = body.u8()?;
        if options & 0b1100_0000 != 0 || options & 0b11 == 3 || (options >> 4) & 0b11 == 3 {
            return Err(ProtocolError("SUBSCRIBE with invalid subscription options"));
        }
    }
    Ok(Packet::Subscribe { pkid, filters })
}

fn is_connack_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
    )
}

fn is_publish_ack_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
    )
}

fn is_suback_reason(code: u8) -> bool {
    matches!(
        code,
        0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
    )
}

fn is_unsuback_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
}

fn is_disconnect_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x8F)
        || matches!(code, 0x90 | 0x93..=0xA2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(buf: &[u8]) -> &'static str {
        match decode(buf) {
            Err(ProtocolError(message)) => message,
            other => panic!("expected an error for {buf:02X?}, got {other:?}"),
        }
    }

    /// One valid frame of every packet kind the decoder knows.
    fn valid_frames() -> Vec<Vec<u8>> {
        use crate::mqtt::v5::{ack, connect, publish, subscribe};
        let pairs = vec![("k".to_string(), "v".to_string())];
        let mut frames = Vec::new();
        let mut out = Vec::new();
        connect::encode(
            &mut out,
            &connect::Connect {
                client_id: "c",
                username: Some("u"),
                password: Some(b"p"),
                keep_alive_s: 5,
                clean_start: true,
                session_expiry_s: 10,
                receive_maximum: Some(3),
                maximum_packet_size: Some(1000),
                topic_alias_maximum: Some(2),
                request_problem_information: Some(false),
                user_properties: &pairs,
            },
        );
        frames.push(std::mem::take(&mut out));
        connect::encode_connack(&mut out, false, 0x86);
        frames.push(std::mem::take(&mut out));
        let p = publish::PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_s: Some(9),
            content_type: Some("a/b"),
            topic_alias: Some(1),
            user_properties: &pairs,
        };
        publish::encode(&mut out, "t", 1, false, 3, &p, b"{}");
        frames.push(std::mem::take(&mut out));
        publish::encode(&mut out, "", 2, true, 4, &p, &[7; 300]);
        frames.push(std::mem::take(&mut out));
        ack::encode_puback(&mut out, 1, 0x10);
        frames.push(std::mem::take(&mut out));
        ack::encode_pubrec(&mut out, 2, 0x87);
        frames.push(std::mem::take(&mut out));
        ack::encode_pubcomp(&mut out, 3, 0);
        frames.push(std::mem::take(&mut out));
        subscribe::encode(
            &mut out,
            9,
            Some(7),
            &[("a/#", subscribe::SubscribeOptions::default())],
        );
        frames.push(std::mem::take(&mut out));
        subscribe::encode_suback(&mut out, 9, &[1, 0x87]);
        frames.push(std::mem::take(&mut out));
        subscribe::encode_unsuback(&mut out, 9, 1);
        frames.push(std::mem::take(&mut out));
        connect::encode_disconnect(&mut out, 0x8B);
        frames.push(std::mem::take(&mut out));
        frames.push(vec![0xF0, 0x02, 0x18, 0x00]); // AUTH, continue authentication
        frames
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
                    "prefix {cut} of {frame:02X?}"
                );
            }
        }
    }

    #[test]
    fn acks_may_omit_reason_and_properties() {
        assert_eq!(
            decode(&[0x40, 0x02, 0x00, 0x01]),
            Ok(Some((Packet::PubAck { pkid: 1, reason: 0 }, 4)))
        );
        assert_eq!(
            decode(&[0x40, 0x03, 0x00, 0x01, 0x97]),
            Ok(Some((
                Packet::PubAck {
                    pkid: 1,
                    reason: 0x97
                },
                5
            )))
        );
        let with_reason_string = [0x50, 0x08, 0x00, 0x02, 0x87, 0x04, 0x1F, 0x00, 0x01, b'!'];
        assert_eq!(
            decode(&with_reason_string),
            Ok(Some((
                Packet::PubRec {
                    pkid: 2,
                    reason: 0x87
                },
                10
            )))
        );
    }

    #[test]
    fn reason_codes_a_packet_may_not_carry_are_errors() {
        assert_eq!(
            err(&[0x40, 0x03, 0x00, 0x01, 0x86]),
            "reason code not allowed in this packet"
        );
        assert_eq!(
            err(&[0x70, 0x03, 0x00, 0x01, 0x10]),
            "reason code not allowed in this packet"
        );
        assert_eq!(
            err(&[0x20, 0x03, 0x00, 0x05, 0x00]),
            "CONNACK with invalid reason code"
        );
        assert_eq!(
            err(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x03]),
            "SUBACK with invalid reason code"
        );
    }

    #[test]
    fn bad_property_blocks_are_errors() {
        // Duplicate Receive Maximum in CONNACK.
        assert_eq!(
            err(&[0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x05, 0x21, 0x00, 0x06]),
            "duplicate property"
        );
        // Unknown identifier 0x05 in PUBACK.
        assert_eq!(
            err(&[0x40, 0x06, 0x00, 0x01, 0x00, 0x02, 0x05, 0x00]),
            "unknown property identifier"
        );
        // Property length overrunning the packet.
        assert_eq!(
            err(&[0x40, 0x05, 0x00, 0x01, 0x00, 0x09, 0x1F]),
            "length overruns packet"
        );
        // Topic Alias in CONNACK.
        assert_eq!(
            err(&[0x20, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01]),
            "property not allowed in this packet"
        );
    }

    #[test]
    fn publish_with_an_empty_topic_needs_an_alias() {
        assert_eq!(
            err(&[0x30, 0x03, 0x00, 0x00, 0x00]),
            "PUBLISH with empty topic and no topic alias"
        );
    }

    #[test]
    fn connack_without_properties_and_pings_with_a_body_are_errors() {
        assert_eq!(
            err(&[0x20, 0x02, 0x00, 0x00]),
            "CONNACK remaining length below 3"
        );
        assert_eq!(err(&[0xD0, 0x01]), "PINGRESP remaining length is not 0");
    }

    #[test]
    fn server_disconnect_and_auth_carry_their_reasons() {
        assert_eq!(
            decode(&[0xE0, 0x00]),
            Ok(Some((Packet::Disconnect { reason: 0 }, 2)))
        );
        assert_eq!(
            decode(&[0xE0, 0x01, 0x8E]),
            Ok(Some((Packet::Disconnect { reason: 0x8E }, 3)))
        );
        assert_eq!(
            decode(&[0xF0, 0x02, 0x18, 0x00]),
            Ok(Some((Packet::Auth { reason: 0x18 }, 4)))
        );
        assert_eq!(err(&[0xF1, 0x00]), "invalid fixed header flags");
    }

    #[test]
    fn random_and_mutated_buffers_never_panic_and_never_overconsume() {
        crate::mqtt::fuzz::never_overconsumes(0x2545_F491_4F6C_DD1D, &valid_frames(), |buf| {
            decode(buf).ok().flatten().map(|(_, used)| used)
        });
    }
}
