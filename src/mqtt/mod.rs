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

/// Largest value the 1-4 byte remaining-length varint can carry (section 2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

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

/// Number of bytes (1-4) the remaining-length varint of `remaining_len` takes (section 2.2.3).
#[inline]
pub fn remaining_length_bytes(remaining_len: usize) -> usize {
    match remaining_len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Append the remaining-length varint (section 2.2.3): seven value bits per byte, least
/// significant group first, bit 7 (`0b1000_0000`) set on every byte but the last.
///
/// # Panics
/// If `remaining_len` exceeds [`MAX_REMAINING_LENGTH`]; no MQTT packet can be that big.
#[inline]
pub fn write_remaining_length(out: &mut Vec<u8>, remaining_len: usize) {
    assert!(
        remaining_len <= MAX_REMAINING_LENGTH,
        "MQTT remaining length {remaining_len} exceeds {MAX_REMAINING_LENGTH}"
    );
    let mut rest = remaining_len;
    loop {
        let low_seven_bits = (rest & 0b0111_1111) as u8;
        rest >>= 7;
        if rest == 0 {
            out.push(low_seven_bits);
            return;
        }
        out.push(low_seven_bits | 0b1000_0000);
    }
}

/// Append a length-prefixed byte string (section 1.5.3: 2-byte big-endian length, then bytes).
///
/// # Panics
/// If `bytes` is longer than 65 535 bytes, which the 2-byte prefix cannot express.
#[inline]
pub(crate) fn write_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len())
        .unwrap_or_else(|_| panic!("MQTT string of {} bytes exceeds 65535", bytes.len()));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Test-only bridge to the `mqttbytes` oracle. That crate speaks `bytes::BytesMut`, which this
/// crate does not depend on directly, so the type is only ever reached through inference.
#[cfg(test)]
pub(crate) mod oracle {
    pub use mqttbytes::v4::Packet;

    /// Decode `frame` with `mqttbytes::v4::read`, insisting it consumes the whole frame.
    pub fn read(frame: &[u8]) -> Result<Packet, mqttbytes::Error> {
        fn filled<T: Default + Extend<u8> + AsRef<[u8]>>(bytes: &[u8]) -> T {
            let mut stream = T::default();
            stream.extend(bytes.iter().copied());
            stream
        }
        let mut stream = filled(frame);
        let packet = mqttbytes::v4::read(&mut stream, super::MAX_PACKET_BYTES);
        if packet.is_ok() {
            assert!(stream.as_ref().is_empty(), "mqttbytes left bytes unread");
        }
        packet
    }

    /// Bytes an `mqttbytes` writer produces, e.g. `write(|b| PubAck::new(7).write(b))`.
    pub fn write<T, R, E>(writer: impl FnOnce(&mut T) -> Result<R, E>) -> Vec<u8>
    where
        T: Default + AsRef<[u8]>,
        E: std::fmt::Debug,
    {
        let mut stream = T::default();
        writer(&mut stream).expect("mqttbytes failed to encode");
        stream.as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(remaining_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_remaining_length(&mut out, remaining_len);
        out
    }

    #[test]
    fn remaining_length_uses_one_to_four_bytes_at_the_spec_boundaries() {
        // Table 2.4 of section 2.2.3.
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(127), [0x7F]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(16_383), [0xFF, 0x7F]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(2_097_151), [0xFF, 0xFF, 0x7F]);
        assert_eq!(varint(2_097_152), [0x80, 0x80, 0x80, 0x01]);
        assert_eq!(varint(MAX_REMAINING_LENGTH), [0xFF, 0xFF, 0xFF, 0x7F]);
    }

    #[test]
    fn remaining_length_bytes_matches_what_is_written() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152] {
            assert_eq!(remaining_length_bytes(len), varint(len).len(), "len {len}");
        }
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn remaining_length_beyond_the_varint_range_panics() {
        varint(MAX_REMAINING_LENGTH + 1);
    }

    #[test]
    fn prefixed_string_is_big_endian_length_then_bytes() {
        let mut out = Vec::new();
        write_prefixed(&mut out, b"MQTT");
        assert_eq!(out, [0x00, 0x04, b'M', b'Q', b'T', b'T']);
    }

    #[test]
    fn connack_reason_names_every_code_and_flags_unknown_ones() {
        assert_eq!(connack_reason(0), "connection accepted");
        assert_eq!(connack_reason(5), "not authorized");
        assert_eq!(connack_reason(6), "unknown return code");
    }
}
