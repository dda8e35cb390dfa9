//! MQTT 5 properties (section 2.2.2): a variable-byte-integer length, then (identifier,
//! value) pairs.
//!
//! Reading: [`Properties::parse`] walks a block without allocating, rejects what section
//! 2.2.2.2 forbids (an identifier that does not exist, one not allowed in this packet, a
//! duplicate of anything but User Property and, in PUBLISH, Subscription Identifier, values
//! out of range) and keeps the values mqblast acts on; strings are borrowed. Writing:
//! [`Prop`] values are sized with [`len`] before a byte is written, so an encoder writes the
//! block straight into the caller's buffer.

use crate::mqtt::packet::{ProtocolError, Reader};

pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const AUTHENTICATION_METHOD: u8 = 0x15;
pub const AUTHENTICATION_DATA: u8 = 0x16;
pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub const WILL_DELAY_INTERVAL: u8 = 0x18;
pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub const RESPONSE_INFORMATION: u8 = 0x1A;
pub const SERVER_REFERENCE: u8 = 0x1C;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const MAXIMUM_QOS: u8 = 0x24;
pub const RETAIN_AVAILABLE: u8 = 0x25;
pub const USER_PROPERTY: u8 = 0x26;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

const fn bits(ids: &[u8]) -> u64 {
    let mut mask = 0u64;
    let mut n = 0;
    while n < ids.len() {
        mask |= 1 << ids[n];
        n += 1;
    }
    mask
}

/// Which properties a packet may carry (table in section 2.2.2.2) and which may repeat.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    allowed: u64,
    repeatable: u64,
}

const PAIRS: u64 = bits(&[USER_PROPERTY]);

pub const CONNECT: Scope = Scope {
    allowed: bits(&[
        SESSION_EXPIRY_INTERVAL,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REQUEST_PROBLEM_INFORMATION,
        REQUEST_RESPONSE_INFORMATION,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
    ]),
    repeatable: PAIRS,
};
pub const WILL: Scope = Scope {
    allowed: bits(&[
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        WILL_DELAY_INTERVAL,
        USER_PROPERTY,
    ]),
    repeatable: PAIRS,
};
pub const CONNACK: Scope = Scope {
    allowed: bits(&[
        SESSION_EXPIRY_INTERVAL,
        ASSIGNED_CLIENT_IDENTIFIER,
        SERVER_KEEP_ALIVE,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        RESPONSE_INFORMATION,
        SERVER_REFERENCE,
        REASON_STRING,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        MAXIMUM_QOS,
        RETAIN_AVAILABLE,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        SHARED_SUBSCRIPTION_AVAILABLE,
    ]),
    repeatable: PAIRS,
};
pub const PUBLISH: Scope = Scope {
    allowed: bits(&[
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        SUBSCRIPTION_IDENTIFIER,
        TOPIC_ALIAS,
        USER_PROPERTY,
    ]),
    // Section 3.3.2.3.8: one Subscription Identifier per matching subscription.
    repeatable: bits(&[USER_PROPERTY, SUBSCRIPTION_IDENTIFIER]),
};
/// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
pub const ACK: Scope = Scope {
    allowed: bits(&[REASON_STRING, USER_PROPERTY]),
    repeatable: PAIRS,
};
pub const SUBSCRIBE: Scope = Scope {
    allowed: bits(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]),
    repeatable: PAIRS,
};
pub const UNSUBSCRIBE: Scope = Scope {
    allowed: PAIRS,
    repeatable: PAIRS,
};
pub const DISCONNECT: Scope = Scope {
    allowed: bits(&[
        SESSION_EXPIRY_INTERVAL,
        SERVER_REFERENCE,
        REASON_STRING,
        USER_PROPERTY,
    ]),
    repeatable: PAIRS,
};
pub const AUTH: Scope = Scope {
    allowed: bits(&[
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REASON_STRING,
        USER_PROPERTY,
    ]),
    repeatable: PAIRS,
};

/// The values of one property block that mqblast acts on (the others are validated and
/// skipped). Strings borrow from the packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Properties<'a> {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_s: Option<u32>,
    pub content_type: Option<&'a [u8]>,
    /// The first Subscription Identifier.
    pub subscription_identifier: Option<u32>,
    pub session_expiry_s: Option<u32>,
    pub assigned_client_identifier: Option<&'a [u8]>,
    pub server_keep_alive_s: Option<u16>,
    pub authentication_method: Option<&'a [u8]>,
    pub reason_string: Option<&'a [u8]>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub request_problem_information: Option<u8>,
    pub user_properties: u16,
}

impl<'a> Properties<'a> {
    /// Validate and read one property block (`raw`: without its length prefix).
    ///
    /// # Errors
    /// A [`ProtocolError`] for an unknown identifier, one `scope` does not allow, a duplicate,
    /// a value out of range or a value that overruns the block.
    pub fn parse(raw: &'a [u8], scope: Scope) -> Result<Properties<'a>, ProtocolError> {
        let mut r = Reader { rest: raw };
        let mut seen = 0u64;
        let mut p = Properties::default();
        while !r.rest.is_empty() {
            let id = r.varint()?;
            let id = u8::try_from(id)
                .ok()
                .filter(|&id| id <= SHARED_SUBSCRIPTION_AVAILABLE && KNOWN & (1 << id) != 0)
                .ok_or(ProtocolError("unknown property identifier"))?;
            let bit = 1u64 << id;
            if scope.allowed & bit == 0 {
                return Err(ProtocolError("property not allowed in this packet"));
            }
            if seen & bit != 0 && scope.repeatable & bit == 0 {
                return Err(ProtocolError("duplicate property"));
            }
            seen |= bit;
            p.read_value(id, &mut r)?;
        }
        Ok(p)
    }

    fn read_value(&mut self, id: u8, r: &mut Reader<'a>) -> Result<(), ProtocolError> {
        match id {
            PAYLOAD_FORMAT_INDICATOR => self.payload_format_indicator = Some(flag(r)?),
            MESSAGE_EXPIRY_INTERVAL => self.message_expiry_s = Some(r.u32()?),
            CONTENT_TYPE => self.content_type = Some(r.prefixed()?),
            RESPONSE_TOPIC
            | ASSIGNED_CLIENT_IDENTIFIER
            | AUTHENTICATION_METHOD
            | RESPONSE_INFORMATION
            | SERVER_REFERENCE
            | REASON_STRING => {
                let text = r.prefixed()?;
                match id {
                    ASSIGNED_CLIENT_IDENTIFIER => self.assigned_client_identifier = Some(text),
                    AUTHENTICATION_METHOD => self.authentication_method = Some(text),
                    REASON_STRING => self.reason_string = Some(text),
                    _ => {}
                }
            }
            CORRELATION_DATA | AUTHENTICATION_DATA => {
                r.prefixed()?;
            }
            SUBSCRIPTION_IDENTIFIER => {
                let value = r.varint()?;
                if value == 0 {
                    return Err(ProtocolError("subscription identifier 0"));
                }
                self.subscription_identifier.get_or_insert(value as u32);
            }
            SESSION_EXPIRY_INTERVAL => self.session_expiry_s = Some(r.u32()?),
            WILL_DELAY_INTERVAL => {
                r.u32()?;
            }
            SERVER_KEEP_ALIVE => self.server_keep_alive_s = Some(r.u16()?),
            REQUEST_PROBLEM_INFORMATION => self.request_problem_information = Some(flag(r)?),
            REQUEST_RESPONSE_INFORMATION => {
                flag(r)?;
            }
            RECEIVE_MAXIMUM => match r.u16()? {
                0 => return Err(ProtocolError("receive maximum 0")),
                value => self.receive_maximum = Some(value),
            },
            TOPIC_ALIAS_MAXIMUM => self.topic_alias_maximum = Some(r.u16()?),
            TOPIC_ALIAS => match r.u16()? {
                0 => return Err(ProtocolError("topic alias 0")),
                value => self.topic_alias = Some(value),
            },
            MAXIMUM_QOS => self.maximum_qos = Some(flag(r)?),
            RETAIN_AVAILABLE => self.retain_available = Some(flag(r)? == 1),
            USER_PROPERTY => {
                r.prefixed()?;
                r.prefixed()?;
                self.user_properties = self.user_properties.saturating_add(1);
            }
            MAXIMUM_PACKET_SIZE => match r.u32()? {
                0 => return Err(ProtocolError("maximum packet size 0")),
                value => self.maximum_packet_size = Some(value),
            },
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                self.wildcard_subscription_available = Some(flag(r)? == 1)
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                self.subscription_identifiers_available = Some(flag(r)? == 1)
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                self.shared_subscription_available = Some(flag(r)? == 1)
            }
            _ => return Err(ProtocolError("unknown property identifier")),
        }
        Ok(())
    }
}

/// Every identifier section 2.2.2.2 defines.
const KNOWN: u64 = CONNECT.allowed
    | WILL.allowed
    | CONNACK.allowed
    | PUBLISH.allowed
    | SUBSCRIBE.allowed
    | DISCONNECT.allowed
    | AUTH.allowed;

/// A byte property that may only be 0 or 1 (payload format, maximum QoS, the availability
/// flags, request problem/response information).
fn flag(r: &mut Reader<'_>) -> Result<u8, ProtocolError> {
    match r.u8()? {
        value @ (0 | 1) => Ok(value),
        _ => Err(ProtocolError("property value other than 0 or 1")),
    }
}

/// Read a property block: its variable-byte-integer length, then the block, validated for
/// `scope`. Returns the raw block.
#[inline]
pub(crate) fn read_block<'a>(r: &mut Reader<'a>, scope: Scope) -> Result<&'a [u8], ProtocolError> {
    // The common case on the hot path (an ack or a PUBLISH without properties): one 0x00.
    if let Some((&0, rest)) = r.rest.split_first() {
        r.rest = rest;
        return Ok(&[]);
    }
    let len = r.varint()?;
    let raw = r.bytes(len)?;
    Properties::parse(raw, scope)?;
    Ok(raw)
}

/// One property to write.
#[derive(Debug, Clone, Copy)]
pub enum Prop<'a> {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    /// A variable byte integer value (Subscription Identifier).
    Varint(u8, u32),
    Str(u8, &'a str),
    /// User Property (0x26): a name and a value.
    Pair(&'a str, &'a str),
}

impl Prop<'_> {
    fn len(&self) -> usize {
        1 + match *self {
            Prop::Byte(..) => 1,
            Prop::U16(..) => 2,
            Prop::U32(..) => 4,
            Prop::Varint(_, value) => crate::mqtt::remaining_length_bytes(value as usize),
            Prop::Str(_, text) => 2 + text.len(),
            Prop::Pair(name, value) => 4 + name.len() + value.len(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Prop::Byte(id, value) => out.extend_from_slice(&[id, value]),
            Prop::U16(id, value) => {
                out.push(id);
                out.extend_from_slice(&value.to_be_bytes());
            }
            Prop::U32(id, value) => {
                out.push(id);
                out.extend_from_slice(&value.to_be_bytes());
            }
            Prop::Varint(id, value) => {
                out.push(id);
                crate::mqtt::write_remaining_length(out, value as usize);
            }
            Prop::Str(id, text) => {
                out.push(id);
                crate::mqtt::write_prefixed(out, text.as_bytes());
            }
            Prop::Pair(name, value) => {
                out.push(USER_PROPERTY);
                crate::mqtt::write_prefixed(out, name.as_bytes());
                crate::mqtt::write_prefixed(out, value.as_bytes());
            }
        }
    }
}

/// Bytes of the property block of `props` and `pairs` (user properties), without its length.
pub fn len(props: &[Prop<'_>], pairs: &[(String, String)]) -> usize {
    props.iter().map(Prop::len).sum::<usize>()
        + pairs
            .iter()
            .map(|(name, value)| Prop::Pair(name, value).len())
            .sum::<usize>()
}

/// Bytes of the block with its variable-byte-integer length.
pub fn block_len(props: &[Prop<'_>], pairs: &[(String, String)]) -> usize {
    let body = len(props, pairs);
    crate::mqtt::remaining_length_bytes(body) + body
}

/// Append the length and the block.
///
/// # Panics
/// If a string is longer than 65 535 bytes (configuration refuses those).
pub fn write(out: &mut Vec<u8>, props: &[Prop<'_>], pairs: &[(String, String)]) {
    crate::mqtt::write_remaining_length(out, len(props, pairs));
    for prop in props {
        prop.write(out);
    }
    for (name, value) in pairs {
        Prop::Pair(name, value).write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &[u8], scope: Scope) -> Result<Properties<'_>, ProtocolError> {
        Properties::parse(raw, scope)
    }

    #[test]
    fn written_properties_parse_back_to_the_same_values() {
        let pairs = vec![("k".to_string(), "v".to_string())];
        let mut out = Vec::new();
        let props = [
            Prop::U32(SESSION_EXPIRY_INTERVAL, 300),
            Prop::U16(RECEIVE_MAXIMUM, 5),
            Prop::U16(TOPIC_ALIAS_MAXIMUM, 10),
            Prop::U32(MAXIMUM_PACKET_SIZE, 4096),
            Prop::Byte(REQUEST_PROBLEM_INFORMATION, 1),
        ];
        write(&mut out, &props, &pairs);
        assert_eq!(out.len(), block_len(&props, &pairs));
        let p = parsed(&out[1..], CONNECT).unwrap();
        assert_eq!(p.session_expiry_s, Some(300));
        assert_eq!(p.receive_maximum, Some(5));
        assert_eq!(p.topic_alias_maximum, Some(10));
        assert_eq!(p.maximum_packet_size, Some(4096));
        assert_eq!(p.request_problem_information, Some(1));
        assert_eq!(p.user_properties, 1);
    }

    #[test]
    fn unknown_identifiers_are_protocol_errors() {
        for id in [0x00, 0x04, 0x0A, 0x14, 0x2B, 0x7F] {
            assert_eq!(
                parsed(&[id, 0], CONNACK),
                Err(ProtocolError("unknown property identifier")),
                "id {id:#x}"
            );
        }
        // A two-byte varint identifier is never a property.
        assert_eq!(
            parsed(&[0x81, 0x01, 0], CONNACK),
            Err(ProtocolError("unknown property identifier"))
        );
    }

    #[test]
    fn duplicates_are_errors_except_user_properties_and_publish_subscription_ids() {
        assert_eq!(
            parsed(&[0x21, 0, 5, 0x21, 0, 6], CONNACK),
            Err(ProtocolError("duplicate property"))
        );
        let pair = [0x26, 0, 1, b'a', 0, 1, b'b'];
        let twice: Vec<u8> = pair.iter().chain(pair.iter()).copied().collect();
        assert_eq!(parsed(&twice, ACK).unwrap().user_properties, 2);
        let p = parsed(&[0x0B, 3, 0x0B, 4], PUBLISH).unwrap();
        assert_eq!(p.subscription_identifier, Some(3));
        assert_eq!(
            parsed(&[0x0B, 3, 0x0B, 4], SUBSCRIBE),
            Err(ProtocolError("duplicate property"))
        );
    }

    #[test]
    fn a_property_outside_its_packet_is_an_error() {
        assert_eq!(
            parsed(&[TOPIC_ALIAS, 0, 1], CONNACK),
            Err(ProtocolError("property not allowed in this packet"))
        );
        assert_eq!(
            parsed(&[RECEIVE_MAXIMUM, 0, 1], ACK),
            Err(ProtocolError("property not allowed in this packet"))
        );
    }

    #[test]
    fn out_of_range_values_are_errors() {
        assert_eq!(
            parsed(&[RECEIVE_MAXIMUM, 0, 0], CONNACK),
            Err(ProtocolError("receive maximum 0"))
        );
        assert_eq!(
            parsed(&[MAXIMUM_PACKET_SIZE, 0, 0, 0, 0], CONNACK),
            Err(ProtocolError("maximum packet size 0"))
        );
        assert_eq!(
            parsed(&[TOPIC_ALIAS, 0, 0], PUBLISH),
            Err(ProtocolError("topic alias 0"))
        );
        assert_eq!(
            parsed(&[RETAIN_AVAILABLE, 2], CONNACK),
            Err(ProtocolError("property value other than 0 or 1"))
        );
    }

    #[test]
    fn values_overrunning_the_block_are_errors() {
        assert!(parsed(&[RECEIVE_MAXIMUM, 0], CONNACK).is_err());
        assert!(parsed(&[REASON_STRING, 0, 9, b'x'], ACK).is_err());
        assert!(parsed(&[MAXIMUM_PACKET_SIZE, 0, 0, 1], CONNACK).is_err());
        assert!(parsed(&[SUBSCRIPTION_IDENTIFIER, 0x80], PUBLISH).is_err());
    }
}
