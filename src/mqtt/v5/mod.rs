//! MQTT 5: one file per packet family, as rumqtt's `mqttbytes::v5`. Properties (section
//! 2.2.2) are their own file; reason codes by name are in [`crate::mqtt::reason`].

pub mod ack;
pub mod connect;
pub mod decode;
pub mod properties;
pub mod publish;
pub mod subscribe;

/// Protocol level of MQTT 5 in CONNECT (section 3.1.2.2).
pub const PROTOCOL_LEVEL: u8 = 5;
