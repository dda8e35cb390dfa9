//! PUBACK, PUBREC, PUBREL, PUBCOMP (MQTT 5 sections 3.4-3.7): packet identifier, reason code
//! and an empty property block.
//!
//! A client's success acks are the 4-byte MQTT 3.1.1 form, which MQTT 5 allows when the
//! reason is 0x00 and there are no properties (section 3.4.2.1), so the engine writes those
//! with [`crate::mqtt::ack`]. The long form here is what the calibration sink answers with,
//! so a generator's decoder meets reason codes and property lengths as a broker sends them.

use crate::mqtt::ack::{PUBACK_HEADER, PUBCOMP_HEADER, PUBREC_HEADER, PUBREL_HEADER};

/// Header, remaining length 4, packet identifier, reason code, property length 0.
#[inline]
fn encode_ack(out: &mut Vec<u8>, header: u8, pkid: u16, reason: u8) {
    let [pkid_hi, pkid_lo] = pkid.to_be_bytes();
    out.extend_from_slice(&[header, 0x04, pkid_hi, pkid_lo, reason, 0x00]);
}

/// Append PUBACK with `reason` (section 3.4.2.1).
pub fn encode_puback(out: &mut Vec<u8>, pkid: u16, reason: u8) {
    encode_ack(out, PUBACK_HEADER, pkid, reason);
}
/// Append PUBREC with `reason` (section 3.5.2.1).
pub fn encode_pubrec(out: &mut Vec<u8>, pkid: u16, reason: u8) {
    encode_ack(out, PUBREC_HEADER, pkid, reason);
}
/// Append PUBREL with `reason` (section 3.6.2.1).
pub fn encode_pubrel(out: &mut Vec<u8>, pkid: u16, reason: u8) {
    encode_ack(out, PUBREL_HEADER, pkid, reason);
}
/// Append PUBCOMP with `reason` (section 3.7.2.1).
pub fn encode_pubcomp(out: &mut Vec<u8>, pkid: u16, reason: u8) {
    encode_ack(out, PUBCOMP_HEADER, pkid, reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{oracle, Packet, Version};
    use mqttbytes::v5::{PubAck, PubAckReason, PubComp, PubRec, PubRecReason, PubRel};

    fn encoded(encoder: fn(&mut Vec<u8>, u16, u8), pkid: u16, reason: u8) -> Vec<u8> {
        let mut out = Vec::new();
        encoder(&mut out, pkid, reason);
        out
    }

    #[test]
    fn puback_is_six_bytes_with_reason_and_empty_properties() {
        assert_eq!(
            encoded(encode_puback, 0x1234, 0x10),
            [0x40, 0x04, 0x12, 0x34, 0x10, 0x00]
        );
    }

    #[test]
    fn our_acks_decode_with_mqttbytes_v5() {
        let frame = encoded(encode_puback, 7, 0x00);
        let oracle::v5::Packet::PubAck(got) = oracle::v5::read(&frame).unwrap() else {
            panic!("not a PUBACK");
        };
        assert_eq!((got.pkid, got.reason), (7, PubAckReason::Success));
        let frame = encoded(encode_puback, 8, 0x87);
        let oracle::v5::Packet::PubAck(got) = oracle::v5::read(&frame).unwrap() else {
            panic!("not a PUBACK");
        };
        assert_eq!((got.pkid, got.reason), (8, PubAckReason::NotAuthorized));
        let frame = encoded(encode_pubrec, 9, 0x10);
        let oracle::v5::Packet::PubRec(got) = oracle::v5::read(&frame).unwrap() else {
            panic!("not a PUBREC");
        };
        assert_eq!(
            (got.pkid, got.reason),
            (9, PubRecReason::NoMatchingSubscribers)
        );
        assert!(matches!(
            oracle::v5::read(&encoded(encode_pubrel, 10, 0)).unwrap(),
            oracle::v5::Packet::PubRel(_)
        ));
        assert!(matches!(
            oracle::v5::read(&encoded(encode_pubcomp, 11, 0)).unwrap(),
            oracle::v5::Packet::PubComp(_)
        ));
    }

    #[test]
    fn mqttbytes_v5_acks_decode_with_ours_with_their_reasons() {
        let mut theirs = PubAck::new(300);
        theirs.reason = PubAckReason::QuotaExceeded;
        let frame = oracle::write(|b| theirs.write(b));
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::PubAck {
                    pkid: 300,
                    reason: 0x97
                },
                frame.len()
            )))
        );
        let frame = oracle::write(|b| PubAck::new(301).write(b));
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::PubAck {
                    pkid: 301,
                    reason: 0
                },
                4
            )))
        );
        let mut rec = PubRec::new(302);
        rec.reason = PubRecReason::PayloadFormatInvalid;
        let frame = oracle::write(|b| rec.write(b));
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::PubRec {
                    pkid: 302,
                    reason: 0x99
                },
                frame.len()
            )))
        );
        let frame = oracle::write(|b| PubComp::new(303).write(b));
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::PubComp {
                    pkid: 303,
                    reason: 0
                },
                frame.len()
            )))
        );
        let frame = oracle::write(|b| PubRel::new(304).write(b));
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::PubRel {
                    pkid: 304,
                    reason: 0
                },
                frame.len()
            )))
        );
    }
}
