//! Reason codes by name, for reports: MQTT 5 section 2.4 (table 2-6) and the MQTT 3.1.1
//! CONNACK return codes (section 3.2.2.3).
//!
//! Failures carry codes as `u8` (so `stats::Failure` stays `Copy` and allocation-free); the
//! names are looked up here only when a report is written.

/// Codes at or above this are failures (MQTT 5 section 2.4).
pub const FAILURE_MIN: u8 = 0x80;
/// PUBACK/PUBREC 0x10: accepted, but no subscriber matched. A success, counted apart.
pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;

/// The name of an MQTT 5 reason code as the specification writes it.
pub fn name(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        0x18 => "Continue authentication",
        0x19 => "Re-authenticate",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription Identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "unknown reason code",
    }
}

/// The name of a CONNACK code of either version: 1-5 are MQTT 3.1.1 return codes (MQTT 5
/// never sends them in CONNACK), 0 and 0x80 and above MQTT 5 reason codes.
pub fn connack_name(code: u8) -> &'static str {
    match code {
        0 => "connection accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        FAILURE_MIN.. => name(code),
        _ => "unknown return code",
    }
}

/// `0x87 (Not authorized)` for MQTT 5 codes; `5 (not authorized)` for 3.1.1 CONNACK codes.
pub struct Named {
    pub code: u8,
    pub connack: bool,
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.connack && (1..=5).contains(&self.code) {
            write!(f, "{} ({})", self.code, connack_name(self.code))
        } else {
            write!(f, "0x{:02X} ({})", self.code, name(self.code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_the_issue_names_have_their_spec_names() {
        assert_eq!(name(0x86), "Bad User Name or Password");
        assert_eq!(name(0x87), "Not authorized");
        assert_eq!(name(0x97), "Quota exceeded");
        assert_eq!(name(0x99), "Payload format invalid");
        assert_eq!(name(0x10), "No matching subscribers");
        assert_eq!(name(0x03), "unknown reason code");
    }

    #[test]
    fn connack_names_cover_both_versions() {
        assert_eq!(connack_name(5), "not authorized");
        assert_eq!(connack_name(0x87), "Not authorized");
        assert_eq!(connack_name(6), "unknown return code");
    }

    #[test]
    fn named_codes_print_in_hex_for_mqtt_5_and_decimal_for_3_1_1_connack() {
        let v5 = Named {
            code: 0x87,
            connack: true,
        };
        assert_eq!(v5.to_string(), "0x87 (Not authorized)");
        let v4 = Named {
            code: 5,
            connack: true,
        };
        assert_eq!(v4.to_string(), "5 (not authorized)");
        let puback = Named {
            code: 0x97,
            connack: false,
        };
        assert_eq!(puback.to_string(), "0x97 (Quota exceeded)");
    }
}
