//! PUBACK, PUBREC, PUBREL, PUBCOMP (MQTT 3.1.1 sections 3.4-3.7): four bytes each.
//!
//! These are the per-message acknowledgements of the QoS 1 and QoS 2 flows, so they are
//! written straight into the output buffer with no intermediate state. The same encoders
//! serve the client (PUBACK/PUBREC/PUBREL/PUBCOMP for inbound publishes) and the
//! calibration sink acting as a server.

/// Fixed header byte of PUBACK: type 4, flags 0b0000 (section 3.4.1).
pub(crate) const PUBACK_HEADER: u8 = 0b0100_0000;
/// Fixed header byte of PUBREC: type 5, flags 0b0000 (section 3.5.1).
pub(crate) const PUBREC_HEADER: u8 = 0b0101_0000;
/// Fixed header byte of PUBREL: type 6, flags 0b0010 (section 3.6.1).
pub(crate) const PUBREL_HEADER: u8 = 0b0110_0010;
/// Fixed header byte of PUBCOMP: type 7, flags 0b0000 (section 3.7.1).
pub(crate) const PUBCOMP_HEADER: u8 = 0b0111_0000;

/// Header byte, remaining length 2, then the packet identifier big-endian (section 2.3.1).
#[inline]
fn encode_ack(out: &mut Vec<u8>, header: u8, pkid: u16) {
    let [pkid_hi, pkid_lo] = pkid.to_be_bytes();
    out.extend_from_slice(&[header, 0x02, pkid_hi, pkid_lo]);
}

/// Append PUBACK (section 3.4): `0b0100_0000 0x02` and the packet identifier.
pub fn encode_puback(out: &mut Vec<u8>, pkid: u16) {
    encode_ack(out, PUBACK_HEADER, pkid);
}
/// Append PUBREC (section 3.5): `0b0101_0000 0x02` and the packet identifier.
pub fn encode_pubrec(out: &mut Vec<u8>, pkid: u16) {
    encode_ack(out, PUBREC_HEADER, pkid);
}
/// PUBREL has fixed-header flags 0b0010 (section 3.6.1).
pub fn encode_pubrel(out: &mut Vec<u8>, pkid: u16) {
    encode_ack(out, PUBREL_HEADER, pkid);
}
/// Append PUBCOMP (section 3.7): `0b0111_0000 0x02` and the packet identifier.
pub fn encode_pubcomp(out: &mut Vec<u8>, pkid: u16) {
    encode_ack(out, PUBCOMP_HEADER, pkid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{decode, oracle, Packet};
    use mqttbytes::v4::{PubAck, PubComp, PubRec, PubRel};

    fn encoded(encoder: fn(&mut Vec<u8>, u16), pkid: u16) -> Vec<u8> {
        let mut out = Vec::new();
        encoder(&mut out, pkid);
        out
    }

    #[test]
    fn puback_is_four_bytes_with_packet_id_big_endian() {
        assert_eq!(encoded(encode_puback, 0x1234), [0x40, 0x02, 0x12, 0x34]);
    }

    #[test]
    fn pubrec_is_four_bytes_with_packet_id_big_endian() {
        assert_eq!(encoded(encode_pubrec, 0xBEEF), [0x50, 0x02, 0xBE, 0xEF]);
    }

    #[test]
    fn pubrel_carries_the_mandatory_0010_flags() {
        assert_eq!(encoded(encode_pubrel, 1), [0x62, 0x02, 0x00, 0x01]);
    }

    #[test]
    fn pubcomp_is_four_bytes_with_packet_id_big_endian() {
        assert_eq!(encoded(encode_pubcomp, 0xFFFF), [0x70, 0x02, 0xFF, 0xFF]);
    }

    #[test]
    fn acks_append_after_existing_bytes_without_touching_them() {
        let mut out = vec![0xAA];
        encode_puback(&mut out, 2);
        encode_pubcomp(&mut out, 3);
        assert_eq!(out, [0xAA, 0x40, 0x02, 0x00, 0x02, 0x70, 0x02, 0x00, 0x03]);
    }

    #[test]
    fn our_acks_decode_with_mqttbytes_to_the_same_packet_id() {
        for pkid in [1, 2, 255, 256, 0x7FFF, 0xFFFF] {
            assert_eq!(
                oracle::read(&encoded(encode_puback, pkid)).unwrap(),
                oracle::Packet::PubAck(PubAck::new(pkid))
            );
            assert_eq!(
                oracle::read(&encoded(encode_pubrec, pkid)).unwrap(),
                oracle::Packet::PubRec(PubRec::new(pkid))
            );
            assert_eq!(
                oracle::read(&encoded(encode_pubrel, pkid)).unwrap(),
                oracle::Packet::PubRel(PubRel::new(pkid))
            );
            assert_eq!(
                oracle::read(&encoded(encode_pubcomp, pkid)).unwrap(),
                oracle::Packet::PubComp(PubComp::new(pkid))
            );
        }
    }

    #[test]
    fn mqttbytes_acks_decode_with_ours_to_the_same_packet_id() {
        for pkid in [1, 2, 255, 256, 0x7FFF, 0xFFFF] {
            let frame = oracle::write(|b| PubAck::new(pkid).write(b));
            assert_eq!(
                decode(&frame),
                Ok(Some((Packet::PubAck { pkid, reason: 0 }, 4)))
            );
            let frame = oracle::write(|b| PubRec::new(pkid).write(b));
            assert_eq!(
                decode(&frame),
                Ok(Some((Packet::PubRec { pkid, reason: 0 }, 4)))
            );
            let frame = oracle::write(|b| PubRel::new(pkid).write(b));
            assert_eq!(
                decode(&frame),
                Ok(Some((Packet::PubRel { pkid, reason: 0 }, 4)))
            );
            let frame = oracle::write(|b| PubComp::new(pkid).write(b));
            assert_eq!(
                decode(&frame),
                Ok(Some((Packet::PubComp { pkid, reason: 0 }, 4)))
            );
        }
    }

    #[test]
    fn our_acks_round_trip_through_our_decoder() {
        assert_eq!(
            decode(&encoded(encode_pubrel, 77)),
            Ok(Some((
                Packet::PubRel {
                    pkid: 77,
                    reason: 0
                },
                4
            )))
        );
    }
}
