//! SUBSCRIBE (MQTT 3.1.1 section 3.8) encoder; SUBACK is decoded in `decode`.
//!
//! Subscriber clients send one SUBSCRIBE after CONNACK. The calibration sink answers it with
//! SUBACK (and UNSUBSCRIBE with UNSUBACK), so those server-side encoders live here too, along
//! with [`filters`], which walks the raw filter list that `decode` hands out without
//! allocating.

/// Fixed header byte of SUBSCRIBE: type 8, reserved flags 0b0010 (section 3.8.1).
const SUBSCRIBE_HEADER: u8 = 0b1000_0010;
/// Fixed header byte of SUBACK: type 9, flags 0b0000 (section 3.9.1).
const SUBACK_HEADER: u8 = 0b1001_0000;
/// Fixed header byte of UNSUBACK: type 11, flags 0b0000 (section 3.11.1).
const UNSUBACK_HEADER: u8 = 0b1011_0000;

/// Append a SUBSCRIBE with the given (filter, requested QoS) pairs.
///
/// Payload (section 3.8.3): each filter as a length-prefixed string followed by one options
/// byte whose bits 1-0 are the requested QoS and bits 7-2 are reserved zero.
///
/// # Panics
/// If a requested QoS is above 2 or a filter is longer than 65 535 bytes.
pub fn encode(out: &mut Vec<u8>, pkid: u16, filters: &[(&str, u8)]) {
    let remaining_len = 2 + filters
        .iter()
        .map(|(filter, _)| 2 + filter.len() + 1)
        .sum::<usize>();
    out.push(SUBSCRIBE_HEADER);
    super::write_remaining_length(out, remaining_len);
    out.extend_from_slice(&pkid.to_be_bytes());
    for &(filter, qos) in filters {
        assert!(
            qos <= 2,
            "SUBSCRIBE QoS {qos} for {filter:?} is not 0, 1 or 2"
        );
        super::write_prefixed(out, filter.as_bytes());
        out.push(qos & 0b0000_0011);
    }
}

/// Append SUBACK (section 3.9): packet identifier, then one return code per requested filter
/// (`0x00`, `0x01`, `0x02` = granted QoS, `0x80` = failure; section 3.9.3).
pub fn encode_suback(out: &mut Vec<u8>, pkid: u16, codes: &[u8]) {
    out.push(SUBACK_HEADER);
    super::write_remaining_length(out, 2 + codes.len());
    out.extend_from_slice(&pkid.to_be_bytes());
    out.extend_from_slice(codes);
}

/// Append UNSUBACK (section 3.11): `0b1011_0000 0x02` and the packet identifier.
pub fn encode_unsuback(out: &mut Vec<u8>, pkid: u16) {
    let [pkid_hi, pkid_lo] = pkid.to_be_bytes();
    out.extend_from_slice(&[UNSUBACK_HEADER, 0x02, pkid_hi, pkid_lo]);
}

/// Iterate the `(filter, requested QoS)` pairs of the raw `filters` bytes of a decoded
/// [`crate::mqtt::Packet::Subscribe`]. The decoder has already validated them; on bytes
/// that do not parse the iteration simply stops.
pub fn filters(raw: &[u8]) -> Filters<'_> {
    Filters { rest: raw }
}

/// Iterator returned by [`filters`].
#[derive(Debug, Clone)]
pub struct Filters<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Filters<'a> {
    type Item = (&'a [u8], u8);

    fn next(&mut self) -> Option<Self::Item> {
        let (&len_hi, rest) = self.rest.split_first()?;
        let (&len_lo, rest) = rest.split_first()?;
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let filter = rest.get(..len)?;
        let (&options, rest) = rest.get(len..)?.split_first()?;
        self.rest = rest;
        Some((filter, options & 0b0000_0011))
    }
}

/// Whether `topic` matches `filter` (section 4.7: `+` one level, `#` the rest, including
/// the parent level). A `$share/group/` prefix is ignored; topics starting with `$` match
/// only filters that name that first level.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, f)| f),
        None => filter,
    };
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match (part, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (p, Some(level)) if p == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{decode, oracle, Packet};
    use mqttbytes::v4::{SubAck, Subscribe, SubscribeFilter, SubscribeReasonCode};
    use mqttbytes::QoS;

    #[test]
    fn subscribe_has_0010_flags_and_is_byte_exact() {
        let mut out = Vec::new();
        encode(&mut out, 0x0102, &[("a/#", 1), ("b", 2)]);
        assert_eq!(
            out,
            [
                0x82, 12, // SUBSCRIBE, remaining length 12
                0x01, 0x02, // packet id
                0x00, 0x03, b'a', b'/', b'#', 0x01, //
                0x00, 0x01, b'b', 0x02,
            ]
        );
    }

    #[test]
    fn our_subscribe_decodes_with_mqttbytes_to_the_same_filters() {
        let mut out = Vec::new();
        encode(&mut out, 7, &[("x/+/y", 0), ("z", 1), ("#", 2)]);
        let oracle::Packet::Subscribe(got) = oracle::read(&out).unwrap() else {
            panic!("mqttbytes did not see a SUBSCRIBE");
        };
        let mut want = Subscribe::new("x/+/y", QoS::AtMostOnce);
        want.pkid = 7;
        want.filters
            .push(SubscribeFilter::new("z".into(), QoS::AtLeastOnce));
        want.filters
            .push(SubscribeFilter::new("#".into(), QoS::ExactlyOnce));
        assert_eq!(got, want);
    }

    #[test]
    fn our_subscribe_decodes_with_ours_and_its_filters_iterate_back() {
        let mut out = Vec::new();
        encode(&mut out, 9, &[("x/+/y", 0), ("z", 1)]);
        let Ok(Some((Packet::Subscribe { pkid, filters: raw }, consumed))) = decode(&out) else {
            panic!("not a SUBSCRIBE: {:?}", decode(&out));
        };
        assert_eq!((pkid, consumed), (9, out.len()));
        let got: Vec<_> = filters(raw).collect();
        assert_eq!(got, [(&b"x/+/y"[..], 0), (&b"z"[..], 1)]);
    }

    #[test]
    fn filters_match_topics_with_plus_hash_and_shared_prefixes() {
        assert!(filter_matches("a/b", "a/b"));
        assert!(!filter_matches("a/b", "a/c"));
        assert!(filter_matches("a/+/c", "a/x/c"));
        assert!(!filter_matches("a/+", "a/x/c"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("a/#", "a/x/y"));
        assert!(filter_matches("#", "v1/devices/me/telemetry"));
        assert!(filter_matches("$share/g/a/+", "a/1"));
        assert!(!filter_matches("#", "$SYS/x"));
    }

    #[test]
    fn filters_iteration_stops_on_truncated_bytes() {
        assert_eq!(filters(&[0x00, 0x05, b'a']).count(), 0);
        assert_eq!(filters(&[0x00, 0x01, b'a']).count(), 0);
        assert_eq!(filters(&[0x00]).count(), 0);
    }

    #[test]
    fn suback_matches_mqttbytes_byte_for_byte() {
        let mut out = Vec::new();
        encode_suback(&mut out, 0x0203, &[0x00, 0x01, 0x02, 0x80]);
        let theirs = SubAck::new(
            0x0203,
            vec![
                SubscribeReasonCode::Success(QoS::AtMostOnce),
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::ExactlyOnce),
                SubscribeReasonCode::Failure,
            ],
        );
        assert_eq!(out, oracle::write(|b| theirs.write(b)));
        assert_eq!(out, [0x90, 0x06, 0x02, 0x03, 0x00, 0x01, 0x02, 0x80]);
    }

    #[test]
    fn mqttbytes_suback_decodes_with_ours_to_the_same_codes() {
        let theirs = SubAck::new(
            44,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Failure,
            ],
        );
        let frame = oracle::write(|b| theirs.write(b));
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::SubAck {
                    pkid: 44,
                    codes: &[0x01, 0x80]
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn unsuback_is_four_bytes_and_decodes_with_mqttbytes() {
        let mut out = Vec::new();
        encode_unsuback(&mut out, 0x0304);
        assert_eq!(out, [0xB0, 0x02, 0x03, 0x04]);
        assert_eq!(
            oracle::read(&out).unwrap(),
            oracle::Packet::UnsubAck(mqttbytes::v4::UnsubAck::new(0x0304))
        );
    }
}
