//! CONNECT, CONNACK and DISCONNECT (MQTT 5 sections 3.1, 3.2, 3.14).
//!
//! CONNECT carries the session and flow-control properties the plan asks for (session
//! expiry, receive maximum, maximum packet size, topic alias maximum, request problem
//! information, user properties resolved once per client); it is encoded straight into the
//! connection's write buffer, lengths computed first. CONNACK and DISCONNECT with a reason
//! code are the calibration sink's server side. PINGREQ/PINGRESP are the same bytes as in
//! 3.1.1 ([`crate::mqtt::connect`]).

use super::properties::{self as props, Prop};

/// What goes in one MQTT 5 CONNECT packet.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub keep_alive_s: u16,
    /// Clean Start (section 3.1.2.4): discard any session the server kept.
    pub clean_start: bool,
    /// Session Expiry Interval (0x11); 0 (the default, not sent) ends the session with the
    /// network connection.
    pub session_expiry_s: u32,
    /// Receive Maximum (0x21): QoS 1/2 publishes the server may have in flight to us.
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size (0x27) we accept.
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum (0x22) the server may use towards us.
    pub topic_alias_maximum: Option<u16>,
    /// Request Problem Information (0x17): false asks the server to leave reason strings and
    /// user properties out of everything but PUBLISH, CONNACK and DISCONNECT.
    pub request_problem_information: Option<bool>,
    /// User Properties (0x26), in order.
    pub user_properties: &'a [(String, String)],
}

/// Connect flag bits (section 3.1.2.3, figure 3-4).
const FLAG_USERNAME: u8 = 0b1000_0000;
const FLAG_PASSWORD: u8 = 0b0100_0000;
const FLAG_CLEAN_START: u8 = 0b0000_0010;
const PROTOCOL_NAME: &[u8] = b"MQTT";

impl Connect<'_> {
    fn properties(&self) -> ([Prop<'static>; 5], usize) {
        let mut list = [Prop::Byte(0, 0); 5];
        let mut n = 0;
        let mut push = |prop| {
            list[n] = prop;
            n += 1;
        };
        if self.session_expiry_s > 0 {
            push(Prop::U32(
                props::SESSION_EXPIRY_INTERVAL,
                self.session_expiry_s,
            ));
        }
        if let Some(value) = self.receive_maximum {
            push(Prop::U16(props::RECEIVE_MAXIMUM, value));
        }
        if let Some(value) = self.maximum_packet_size {
            push(Prop::U32(props::MAXIMUM_PACKET_SIZE, value));
        }
        if let Some(value) = self.topic_alias_maximum {
            push(Prop::U16(props::TOPIC_ALIAS_MAXIMUM, value));
        }
        if let Some(value) = self.request_problem_information {
            push(Prop::Byte(
                props::REQUEST_PROBLEM_INFORMATION,
                u8::from(value),
            ));
        }
        (list, n)
    }
}

/// Append an MQTT 5 CONNECT (protocol name "MQTT", level 5) to `out`. No will message.
///
/// # Panics
/// If a string is longer than 65 535 bytes (configuration refuses those).
pub fn encode(out: &mut Vec<u8>, c: &Connect<'_>) {
    let (list, n) = c.properties();
    let list = &list[..n];
    // Variable header (section 3.1.2): name (2 + 4), level, flags, keep alive (2),
    // properties. Payload (section 3.1.3): client id, user name, password.
    let mut remaining_len = 2 + PROTOCOL_NAME.len() + 1 + 1 + 2;
    remaining_len += props::block_len(list, c.user_properties) + 2 + c.client_id.len();
    let mut flags = 0u8;
    if c.clean_start {
        flags |= FLAG_CLEAN_START;
    }
    if let Some(username) = c.username {
        flags |= FLAG_USERNAME;
        remaining_len += 2 + username.len();
    }
    if let Some(password) = c.password {
        flags |= FLAG_PASSWORD;
        remaining_len += 2 + password.len();
    }
    out.push(0b0001_0000);
    crate::mqtt::write_remaining_length(out, remaining_len);
    crate::mqtt::write_prefixed(out, PROTOCOL_NAME);
    out.push(super::PROTOCOL_LEVEL);
    out.push(flags);
    out.extend_from_slice(&c.keep_alive_s.to_be_bytes());
    props::write(out, list, c.user_properties);
    crate::mqtt::write_prefixed(out, c.client_id.as_bytes());
    if let Some(username) = c.username {
        crate::mqtt::write_prefixed(out, username.as_bytes());
    }
    if let Some(password) = c.password {
        crate::mqtt::write_prefixed(out, password);
    }
}

/// Append CONNACK (section 3.2), the sink's answer: acknowledge flags, reason code and an
/// empty property block: `0b0010_0000 0x03 flags code 0x00`.
pub fn encode_connack(out: &mut Vec<u8>, session_present: bool, code: u8) {
    out.extend_from_slice(&[0b0010_0000, 0x03, u8::from(session_present), code, 0x00]);
}

/// Append CONNACK with one property, Topic Alias Maximum (0x22): what the sink sends, so a
/// client may use topic aliases towards it (the sink discards topics, so any alias will do).
pub fn encode_connack_with_topic_aliases(
    out: &mut Vec<u8>,
    session_present: bool,
    code: u8,
    topic_alias_maximum: u16,
) {
    let [max_hi, max_lo] = topic_alias_maximum.to_be_bytes();
    out.extend_from_slice(&[0b0010_0000, 0x06, u8::from(session_present), code, 0x03]);
    out.extend_from_slice(&[props::TOPIC_ALIAS_MAXIMUM, max_hi, max_lo]);
}

/// Append DISCONNECT (section 3.14) with `reason` and no properties. Reason 0x00 (normal
/// disconnection) is the 2-byte form section 3.14.2.1 allows.
pub fn encode_disconnect(out: &mut Vec<u8>, reason: u8) {
    if reason == 0 {
        out.extend_from_slice(&[0b1110_0000, 0x00]);
    } else {
        out.extend_from_slice(&[0b1110_0000, 0x02, reason, 0x00]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{oracle, Packet, Version};
    use mqttbytes::v5::{ConnAck, ConnAckProperties, ConnectReturnCode};

    fn encoded(c: &Connect<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, c);
        out
    }

    const BARE: Connect<'static> = Connect {
        client_id: "c1",
        username: None,
        password: None,
        keep_alive_s: 60,
        clean_start: true,
        session_expiry_s: 0,
        receive_maximum: None,
        maximum_packet_size: None,
        topic_alias_maximum: None,
        request_problem_information: None,
        user_properties: &[],
    };

    #[test]
    fn bare_connect_is_byte_exact_with_an_empty_property_block() {
        assert_eq!(
            encoded(&BARE),
            [
                0x10,
                15,
                0x00,
                0x04,
                b'M',
                b'Q',
                b'T',
                b'T',
                5,
                0b0000_0010,
                0x00,
                60,
                0x00,
                0x00,
                0x02,
                b'c',
                b'1'
            ]
        );
    }

    #[test]
    fn our_connect_decodes_with_mqttbytes_v5_to_the_same_fields() {
        let pairs = vec![
            ("site".to_string(), "lab-7".to_string()),
            ("run".to_string(), "42".to_string()),
        ];
        let connect = Connect {
            client_id: "dev-7",
            username: Some("alice"),
            password: Some(b"pw"),
            keep_alive_s: 30,
            clean_start: false,
            session_expiry_s: 3600,
            receive_maximum: Some(20),
            maximum_packet_size: Some(65_536),
            topic_alias_maximum: Some(8),
            request_problem_information: Some(true),
            user_properties: &pairs,
        };
        let frame = encoded(&connect);
        let oracle::v5::Packet::Connect(got) = oracle::v5::read(&frame).unwrap() else {
            panic!("not a CONNECT");
        };
        assert_eq!(got.client_id, "dev-7");
        assert_eq!(got.keep_alive, 30);
        assert!(!got.clean_session);
        let login = got.login.unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "pw")
        );
        let p = got.properties.unwrap();
        assert_eq!(p.session_expiry_interval, Some(3600));
        assert_eq!(p.receive_maximum, Some(20));
        assert_eq!(p.max_packet_size, Some(65_536));
        assert_eq!(p.topic_alias_max, Some(8));
        assert_eq!(p.request_problem_info, Some(1));
        assert_eq!(p.user_properties, pairs);
        // And with ours.
        assert_eq!(
            Version::V5.decode(&frame),
            Ok(Some((
                Packet::Connect {
                    client_id: b"dev-7",
                    username: Some(b"alice"),
                    keep_alive_s: 30,
                    protocol_level: 5
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn mqttbytes_v5_connack_with_properties_decodes_with_ours() {
        let mut theirs = ConnAck::new(ConnectReturnCode::Success, false);
        let mut p = ConnAckProperties::new();
        p.receive_max = Some(5);
        p.max_packet_size = Some(1000);
        p.topic_alias_max = Some(10);
        p.assigned_client_identifier = Some("auto-1".into());
        p.server_keep_alive = Some(20);
        p.retain_available = Some(0);
        theirs.properties = Some(p);
        let frame = oracle::write(|b| theirs.write(b));
        let Ok(Some((
            Packet::ConnAck {
                code, properties, ..
            },
            n,
        ))) = Version::V5.decode(&frame)
        else {
            panic!("not a CONNACK: {:?}", Version::V5.decode(&frame));
        };
        assert_eq!((code, n), (0, frame.len()));
        let p = super::props::Properties::parse(properties, super::props::CONNACK).unwrap();
        assert_eq!(p.receive_maximum, Some(5));
        assert_eq!(p.maximum_packet_size, Some(1000));
        assert_eq!(p.topic_alias_maximum, Some(10));
        assert_eq!(p.assigned_client_identifier, Some(&b"auto-1"[..]));
        assert_eq!(p.server_keep_alive_s, Some(20));
        assert_eq!(p.retain_available, Some(false));
    }

    #[test]
    fn refusing_connack_codes_decode_with_ours() {
        for (theirs, code) in [
            (ConnectReturnCode::BadUserNamePassword, 0x86),
            (ConnectReturnCode::NotAuthorized, 0x87),
            (ConnectReturnCode::QuotaExceeded, 0x97),
        ] {
            let mut connack = ConnAck::new(theirs, false);
            connack.properties = Some(ConnAckProperties::new());
            let frame = oracle::write(|b| connack.write(b));
            assert_eq!(
                Version::V5.decode(&frame),
                Ok(Some((
                    Packet::ConnAck {
                        session_present: false,
                        code,
                        properties: &[]
                    },
                    frame.len()
                )))
            );
        }
    }

    #[test]
    fn the_sinks_connack_offers_topic_aliases_and_decodes_with_both() {
        let mut out = Vec::new();
        encode_connack_with_topic_aliases(&mut out, false, 0, 65_535);
        assert_eq!(out, [0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0xFF, 0xFF]);
        let oracle::v5::Packet::ConnAck(got) = oracle::v5::read(&out).unwrap() else {
            panic!("not a CONNACK");
        };
        assert_eq!(got.properties.unwrap().topic_alias_max, Some(65_535));
        let Ok(Some((Packet::ConnAck { properties, .. }, 8))) = Version::V5.decode(&out) else {
            panic!("not a CONNACK");
        };
        let p = super::props::Properties::parse(properties, super::props::CONNACK).unwrap();
        assert_eq!(p.topic_alias_maximum, Some(65_535));
    }

    #[test]
    fn our_connack_and_disconnect_decode_with_mqttbytes_v5() {
        let mut out = Vec::new();
        encode_connack(&mut out, false, 0x87);
        let oracle::v5::Packet::ConnAck(got) = oracle::v5::read(&out).unwrap() else {
            panic!("not a CONNACK");
        };
        assert_eq!(got.code, ConnectReturnCode::NotAuthorized);
        out.clear();
        encode_disconnect(&mut out, 0x8E);
        assert_eq!(out, [0xE0, 0x02, 0x8E, 0x00]);
        assert!(matches!(
            oracle::v5::read(&out).unwrap(),
            oracle::v5::Packet::Disconnect(_)
        ));
        assert_eq!(
            Version::V5.decode(&out),
            Ok(Some((Packet::Disconnect { reason: 0x8E }, 4)))
        );
    }
}
