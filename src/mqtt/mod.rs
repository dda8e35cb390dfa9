//! Hand-written MQTT 3.1.1 codec for the hot path.
//!
//! Encoders append to a caller-owned `Vec<u8>` (they allocate only if the caller did not
//! reserve enough capacity). The decoder borrows from the read buffer and never allocates.
//! The `mqttbytes` crate is the test oracle: our bytes must decode with it and its bytes with
//! ours. One file per packet family, spec sections cited in each.

pub mod ack;
pub mod connect;
pub mod decode;
pub mod publish;
pub mod subscribe;

pub use decode::{decode, Packet, ProtocolError};

/// Largest packet the decoder accepts (remaining length bound). Bigger is a protocol error,
/// so a misbehaving peer can never make a connection buffer grow without limit.
pub const MAX_PACKET_BYTES: usize = 1 << 20;

/// Human meaning of a CONNACK return code (MQTT 3.1.1 section 3.2.2.3).
pub fn connack_reason(code: u8) -> &'static str {
    match code {
        0 => "connection accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown return code",
    }
}
