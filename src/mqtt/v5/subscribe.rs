//! SUBSCRIBE (MQTT 5 section 3.8) with subscription options and a Subscription Identifier,
//! and the sink's SUBACK/UNSUBACK (sections 3.9, 3.11). SUBACK is decoded in `decode`.

use super::properties::{self as props, Prop};

/// Subscription options byte (section 3.8.3.1, figure 3-12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Maximum QoS, 0-2 (bits 1-0).
    pub qos: u8,
    /// No Local (bit 2): never receive our own publishes.
    pub no_local: bool,
    /// Retain As Published (bit 3): keep the RETAIN flag the publisher set.
    pub retain_as_published: bool,
    /// Retain Handling (bits 5-4): 0 send retained messages at subscribe, 1 only for a new
    /// subscription, 2 never.
    pub retain_handling: u8,
}

impl SubscribeOptions {
    /// The options byte; bits 7-6 reserved zero.
    pub fn byte(self) -> u8 {
        (self.qos & 0b11)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling & 0b11) << 4)
    }
}

/// Append a SUBSCRIBE with an optional Subscription Identifier (0x0B, 1..=268,435,455).
///
/// # Panics
/// If a QoS or retain handling is out of range or a filter exceeds 65 535 bytes.
pub fn encode(
    out: &mut Vec<u8>,
    pkid: u16,
    subscription_identifier: Option<u32>,
    filters: &[(&str, SubscribeOptions)],
) {
    let id = subscription_identifier.map(|id| Prop::Varint(props::SUBSCRIPTION_IDENTIFIER, id));
    let list = id.as_slice();
    let remaining_len = 2
        + props::block_len(list, &[])
        + filters
            .iter()
            .map(|(filter, _)| 2 + filter.len() + 1)
            .sum::<usize>();
    out.push(0b1000_0010);
    crate::mqtt::write_remaining_length(out, remaining_len);
    out.extend_from_slice(&pkid.to_be_bytes());
    props::write(out, list, &[]);
    for &(filter, options) in filters {
        assert!(
            options.qos <= 2 && options.retain_handling <= 2,
            "SUBSCRIBE options {options:?} for {filter:?}"
        );
        crate::mqtt::write_prefixed(out, filter.as_bytes());
        out.push(options.byte());
    }
}

/// Append SUBACK (section 3.9): packet identifier, empty properties, one reason per filter.
pub fn encode_suback(out: &mut Vec<u8>, pkid: u16, codes: &[u8]) {
    out.push(0b1001_0000);
    crate::mqtt::write_remaining_length(out, 3 + codes.len());
    out.extend_from_slice(&pkid.to_be_bytes());
    out.push(0x00);
    out.extend_from_slice(codes);
}

/// Append UNSUBACK (section 3.11): packet identifier, empty properties, `filters` times
/// 0x00 (success).
pub fn encode_unsuback(out: &mut Vec<u8>, pkid: u16, filters: u16) {
    out.push(0b1011_0000);
    crate::mqtt::write_remaining_length(out, 3 + usize::from(filters));
    out.extend_from_slice(&pkid.to_be_bytes());
    out.push(0x00);
    out.extend(std::iter::repeat_n(0x00, usize::from(filters)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{oracle, subscribe::filters, Packet, Version};
    use mqttbytes::v5::{RetainForwardRule, SubAck, SubscribeReasonCode};
    use mqttbytes::QoS;

    #[test]
    fn options_byte_packs_every_field() {
        let options = SubscribeOptions {
            qos: 2,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
        };
        assert_eq!(options.byte(), 0b0010_1110);
    }

    #[test]
    fn our_subscribe_decodes_with_mqttbytes_v5_and_with_ours() {
        let options = SubscribeOptions {
            qos: 1,
            no_local: true,
            retain_as_published: false,
            retain_handling: 1,
        };
        let mut out = Vec::new();
        encode(&mut out, 5, Some(300), &[("$share/g/a/+", options)]);
        let oracle::v5::Packet::Subscribe(got) = oracle::v5::read(&out).unwrap() else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!(got.pkid, 5);
        assert_eq!(got.properties.unwrap().id, Some(300));
        let f = &got.filters[0];
        assert_eq!(
            (f.path.as_str(), f.qos, f.nolocal),
            ("$share/g/a/+", QoS::AtLeastOnce, true)
        );
        assert!(!f.preserve_retain);
        assert_eq!(f.retain_forward_rule, RetainForwardRule::OnNewSubscribe);
        let Ok(Some((Packet::Subscribe { pkid, filters: raw }, n))) = Version::V5.decode(&out)
        else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!((pkid, n), (5, out.len()));
        assert_eq!(
            filters(raw).collect::<Vec<_>>(),
            [(&b"$share/g/a/+"[..], 1)]
        );
    }

    #[test]
    fn suback_reason_codes_decode_both_ways() {
        let mut out = Vec::new();
        encode_suback(&mut out, 3, &[0x01, 0x87]);
        let oracle::v5::Packet::SubAck(got) = oracle::v5::read(&out).unwrap() else {
            panic!("not a SUBACK");
        };
        assert_eq!(
            got.return_codes,
            [
                SubscribeReasonCode::QoS1,
                SubscribeReasonCode::NotAuthorized
            ]
        );
        let theirs = SubAck::new(
            4,
            vec![SubscribeReasonCode::SharedSubscriptionsNotSupported],
        );
        let frame = oracle::write(|b| theirs.write(b));
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::SubAck {
                    pkid: 4,
                    codes: &[0x9E]
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn unsuback_has_one_success_code_per_filter() {
        let mut out = Vec::new();
        encode_unsuback(&mut out, 6, 2);
        assert_eq!(out, [0xB0, 0x05, 0x00, 0x06, 0x00, 0x00, 0x00]);
        assert_eq!(
            Version::V5.decode(&out),
            Ok(Some((Packet::UnsubAck { pkid: 6 }, 7)))
        );
    }
}
