//! MQTT 3.1.1: one file per packet family, as rumqtt's `mqttbytes::v4`.

pub mod ack;
pub mod connect;
pub mod decode;
pub mod publish;
pub mod subscribe;

pub(crate) use super::{write_prefixed, write_remaining_length, MAX_PACKET_BYTES};
