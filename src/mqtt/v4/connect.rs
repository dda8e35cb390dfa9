//! CONNECT (MQTT 3.1.1 section 3.1) encoder and CONNECT decoder (used by the sink).
//!
//! A load generator opens thousands of sessions, so CONNECT is encoded straight into the
//! connection's write buffer. The small session-level packets live here too: DISCONNECT and
//! PINGREQ for the client, and CONNACK and PINGRESP for the calibration sink's server side.
//! Decoding CONNECT is done by [`crate::mqtt::decode()`].

/// What goes in one CONNECT packet.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub keep_alive_s: u16,
    pub clean_session: bool,
}

/// Fixed header byte of CONNECT: type 1, flags 0b0000 (section 3.1.1).
const CONNECT_HEADER: u8 = 0b0001_0000;
/// Connect flag bits (section 3.1.2.3, figure 3.4).
const FLAG_USERNAME: u8 = 0b1000_0000;
const FLAG_PASSWORD: u8 = 0b0100_0000;
const FLAG_CLEAN_SESSION: u8 = 0b0000_0010;
/// Protocol name (section 3.1.2.1) and level 4 = MQTT 3.1.1 (section 3.1.2.2).
const PROTOCOL_NAME: &[u8] = b"MQTT";
const PROTOCOL_LEVEL: u8 = 4;

/// Append a CONNECT packet (protocol name "MQTT", level 4) to `out`.
///
/// No will message is ever sent. Section 3.1.2.9 forbids a password without a user name;
/// the encoder writes what it is given, so that rule is the configuration's to enforce.
///
/// # Panics
/// If the client id, user name or password is longer than 65 535 bytes.
pub fn encode(out: &mut Vec<u8>, c: &Connect<'_>) {
    // Variable header (section 3.1.2): protocol name (2 + 4), level (1), flags (1), keep
    // alive (2). Payload (section 3.1.3): client id, then user name, then password.
    let mut remaining_len = 2 + PROTOCOL_NAME.len() + 1 + 1 + 2 + 2 + c.client_id.len();
    let mut flags = 0u8;
    if c.clean_session {
        flags |= FLAG_CLEAN_SESSION;
    }
    if let Some(username) = c.username {
        flags |= FLAG_USERNAME;
        remaining_len += 2 + username.len();
    }
    if let Some(password) = c.password {
        flags |= FLAG_PASSWORD;
        remaining_len += 2 + password.len();
    }

    out.push(CONNECT_HEADER);
    super::write_remaining_length(out, remaining_len);
    super::write_prefixed(out, PROTOCOL_NAME);
    out.push(PROTOCOL_LEVEL);
    out.push(flags);
    out.extend_from_slice(&c.keep_alive_s.to_be_bytes());
    super::write_prefixed(out, c.client_id.as_bytes());
    if let Some(username) = c.username {
        super::write_prefixed(out, username.as_bytes());
    }
    if let Some(password) = c.password {
        super::write_prefixed(out, password);
    }
}

/// Append DISCONNECT (section 3.14): `0b1110_0000 0x00`.
pub fn encode_disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0b1110_0000, 0x00]);
}

/// Append PINGREQ (section 3.12): `0b1100_0000 0x00`.
pub fn encode_pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0b1100_0000, 0x00]);
}

/// Append PINGRESP (section 3.13), the sink's answer to PINGREQ: `0b1101_0000 0x00`.
pub fn encode_pingresp(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0b1101_0000, 0x00]);
}

/// Append CONNACK (section 3.2), the sink's answer to CONNECT: `0b0010_0000 0x02`, then the
/// acknowledge flags (bit 0 = session present, section 3.2.2.2) and the return code
/// (section 3.2.2.3, see [`crate::mqtt::connack_reason`]).
///
/// The spec requires session present to be 0 whenever `code` is non-zero; that is the
/// caller's business.
pub fn encode_connack(out: &mut Vec<u8>, session_present: bool, code: u8) {
    out.extend_from_slice(&[0b0010_0000, 0x02, u8::from(session_present), code]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{decode, oracle, Packet};
    use mqttbytes::v4::{ConnAck, ConnectReturnCode, Login, PingResp};

    fn encoded(c: &Connect<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, c);
        out
    }

    const ANONYMOUS: Connect<'static> = Connect {
        client_id: "c1",
        username: None,
        password: None,
        keep_alive_s: 60,
        clean_session: true,
    };

    #[test]
    fn anonymous_clean_connect_is_byte_exact() {
        assert_eq!(
            encoded(&ANONYMOUS),
            [
                0x10,
                14, // CONNECT, remaining length 14
                0x00,
                0x04,
                b'M',
                b'Q',
                b'T',
                b'T',        // protocol name
                0x04,        // level 4
                0b0000_0010, // clean session
                0x00,
                60, // keep alive 60 s
                0x00,
                0x02,
                b'c',
                b'1', // client id
            ]
        );
    }

    #[test]
    fn connect_with_credentials_sets_both_flags_and_appends_them_in_order() {
        let frame = encoded(&Connect {
            client_id: "id",
            username: Some("u"),
            password: Some(b"pw"),
            keep_alive_s: 0x0102,
            clean_session: false,
        });
        assert_eq!(
            frame,
            [
                0x10,
                21, //
                0x00,
                0x04,
                b'M',
                b'Q',
                b'T',
                b'T',
                0x04,        //
                0b1100_0000, // user name + password, no clean session
                0x01,
                0x02, //
                0x00,
                0x02,
                b'i',
                b'd', //
                0x00,
                0x01,
                b'u', //
                0x00,
                0x02,
                b'p',
                b'w',
            ]
        );
    }

    #[test]
    fn long_client_id_gets_a_two_byte_remaining_length() {
        let client_id = "x".repeat(200);
        let frame = encoded(&Connect {
            client_id: &client_id,
            ..ANONYMOUS
        });
        // 10 bytes of variable header + 2 + 200 = 212 = 0b1_1010100 -> 0xD4 0x01.
        assert_eq!(&frame[..3], [0x10, 0xD4, 0x01]);
        assert_eq!(frame.len(), 3 + 212);
    }

    #[test]
    fn our_connect_decodes_with_mqttbytes_to_the_same_fields() {
        let cases = [
            (ANONYMOUS, None),
            (
                Connect {
                    username: Some("user"),
                    password: Some(b"secret"),
                    ..ANONYMOUS
                },
                Some(Login::new("user", "secret")),
            ),
            (
                Connect {
                    username: Some("user"),
                    ..ANONYMOUS
                },
                Some(Login::new("user", "")),
            ),
            (
                Connect {
                    keep_alive_s: 65_535,
                    clean_session: false,
                    ..ANONYMOUS
                },
                None,
            ),
        ];
        for (c, login) in cases {
            let oracle::Packet::Connect(got) = oracle::read(&encoded(&c)).unwrap() else {
                panic!("mqttbytes did not see a CONNECT");
            };
            assert_eq!(got.protocol, mqttbytes::Protocol::V4);
            assert_eq!(got.client_id, c.client_id);
            assert_eq!(got.keep_alive, c.keep_alive_s);
            assert_eq!(got.clean_session, c.clean_session);
            assert_eq!(got.last_will, None);
            assert_eq!(got.login, login);
        }
    }

    #[test]
    fn our_connect_decodes_with_ours_to_client_id_username_and_keep_alive() {
        let c = Connect {
            username: Some("user"),
            password: Some(b"pw"),
            ..ANONYMOUS
        };
        let frame = encoded(&c);
        assert_eq!(
            decode(&frame),
            Ok(Some((
                Packet::Connect {
                    client_id: b"c1",
                    username: Some(b"user"),
                    keep_alive_s: 60,
                    protocol_level: 4
                },
                frame.len()
            )))
        );
    }

    #[test]
    fn disconnect_is_e0_00() {
        let mut out = Vec::new();
        encode_disconnect(&mut out);
        assert_eq!(out, [0xE0, 0x00]);
        assert_eq!(oracle::read(&out).unwrap(), oracle::Packet::Disconnect);
    }

    #[test]
    fn pingreq_is_c0_00() {
        let mut out = Vec::new();
        encode_pingreq(&mut out);
        assert_eq!(out, [0xC0, 0x00]);
        assert_eq!(oracle::read(&out).unwrap(), oracle::Packet::PingReq);
    }

    #[test]
    fn pingresp_is_d0_00_like_mqttbytes_writes_it() {
        let mut out = Vec::new();
        encode_pingresp(&mut out);
        assert_eq!(out, [0xD0, 0x00]);
        assert_eq!(out, oracle::write(|b| PingResp.write(b)));
    }

    #[test]
    fn connack_matches_mqttbytes_for_every_return_code() {
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
                let mut out = Vec::new();
                encode_connack(&mut out, session_present, code as u8);
                let theirs = oracle::write(|b| ConnAck::new(code, session_present).write(b));
                assert_eq!(out, theirs);
                assert_eq!(out, [0x20, 0x02, u8::from(session_present), code as u8]);
            }
        }
    }
}
