//! Hand-written MQTT codec for the hot path: MQTT 3.1.1 in [`v4`] and MQTT 5 in [`v5`],
//! side by side as in rumqtt, one file per packet family, spec sections cited in each.
//!
//! Encoders append to a caller-owned `Vec<u8>` (they allocate only if the caller did not
//! reserve enough capacity). Decoders borrow from the read buffer and never allocate; both
//! produce the one [`Packet`] type, so the engine handles a PUBACK the same way whatever the
//! version. The engine asks [`Version`] (fixed by the plan) for a decoder and the client
//! builders for frames; the packets a client writes after CONNECT (PUBREL, PUBACK, PUBREC,
//! PUBCOMP, PINGREQ, DISCONNECT) have the same success form in both versions (MQTT 5
//! sections 3.4.2.1, 3.6.2.1, 3.14.2.1). The `mqttbytes` crate is the test oracle: our
//! bytes must decode with it and its bytes with ours. The 3.1.1 modules are re-exported at
//! this level (`mqtt::publish`, `mqtt::decode`...) as they always were.

pub mod packet;
pub mod reason;
pub mod v4;
pub mod v5;

pub use packet::{Packet, ProtocolError};
pub use v4::decode::decode;
pub use v4::{ack, connect, decode, publish, subscribe};

/// The protocol version of a run (`--mqtt-version`). The codec dispatches on it; nothing
/// else in the engine looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    V311,
    /// MQTT 5 (protocol level 5).
    V5,
}

impl Version {
    /// Decode one packet of this version from the front of `buf` (see [`v4::decode::decode`]).
    ///
    /// # Errors
    /// A [`ProtocolError`] naming the first rule the bytes break.
    #[inline]
    pub fn decode(self, buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, ProtocolError> {
        match self {
            Version::V311 => v4::decode::decode(buf),
            Version::V5 => v5::decode::decode(buf),
        }
    }

    /// Append this version's CONNECT. `c` is the MQTT 5 description; 3.1.1 sends its
    /// subset (Clean Start is Clean Session there, properties are left out).
    pub fn encode_connect(self, out: &mut Vec<u8>, c: &v5::connect::Connect<'_>) {
        match self {
            Version::V311 => v4::connect::encode(
                out,
                &v4::connect::Connect {
                    client_id: c.client_id,
                    username: c.username,
                    password: c.password,
                    keep_alive_s: c.keep_alive_s,
                    clean_session: c.clean_start,
                },
            ),
            Version::V5 => v5::connect::encode(out, c),
        }
    }

    /// Append this version's SUBSCRIBE for one filter; 3.1.1 sends only the QoS of
    /// `options` and no subscription identifier.
    pub fn encode_subscribe(
        self,
        out: &mut Vec<u8>,
        pkid: u16,
        filter: &str,
        options: v5::subscribe::SubscribeOptions,
        subscription_identifier: Option<u32>,
    ) {
        match self {
            Version::V311 => v4::subscribe::encode(out, pkid, &[(filter, options.qos)]),
            Version::V5 => {
                v5::subscribe::encode(out, pkid, subscription_identifier, &[(filter, options)])
            }
        }
    }

    /// Bytes of [`Version::encode_answer`]'s frame for a topic of `topic_len` bytes and a
    /// payload of `payload_len` bytes.
    pub fn answer_len(self, topic_len: usize, payload_len: usize) -> usize {
        let remaining_len = self.answer_remaining_len(topic_len, payload_len);
        1 + remaining_length_bytes(remaining_len) + remaining_len
    }

    fn answer_remaining_len(self, topic_len: usize, payload_len: usize) -> usize {
        // Topic length prefix, topic, (MQTT 5) an empty property block, payload.
        2 + topic_len + usize::from(self == Version::V5) + payload_len
    }

    /// Append a QoS 0 PUBLISH without properties whose topic is `topic_head` followed by
    /// `topic_tail` (an answer: its response topic's prefix and the request's id), written
    /// piece by piece so no topic string is built. Allocates only if `out` lacks the room
    /// ([`Version::answer_len`]). Section 3.3 of either version; MQTT 5 adds the property
    /// length 0 after the topic (QoS 0: no packet identifier).
    ///
    /// # Panics
    /// If the topic exceeds 65 535 bytes or the packet the remaining-length limit.
    pub fn encode_answer(
        self,
        out: &mut Vec<u8>,
        topic_head: &[u8],
        topic_tail: &[u8],
        payload: &[u8],
    ) {
        self.encode_answer_parts(out, [topic_head, topic_tail], &[payload]);
    }

    /// [`Version::encode_answer`] with the payload given in pieces, written one after the
    /// other (a gateway's answer: the device name and the request id between fixed text), so
    /// no payload is built either.
    ///
    /// # Panics
    /// As [`Version::encode_answer`].
    pub fn encode_answer_parts(self, out: &mut Vec<u8>, topic: [&[u8]; 2], payload: &[&[u8]]) {
        let topic_len = topic[0].len() + topic[1].len();
        let topic_len_prefix = u16::try_from(topic_len)
            .unwrap_or_else(|_| panic!("MQTT topic of {topic_len} bytes exceeds 65535"));
        let payload_len = payload.iter().map(|part| part.len()).sum();
        out.push(0b0011_0000);
        write_remaining_length(out, self.answer_remaining_len(topic_len, payload_len));
        out.extend_from_slice(&topic_len_prefix.to_be_bytes());
        out.extend_from_slice(topic[0]);
        out.extend_from_slice(topic[1]);
        if self == Version::V5 {
            out.push(0);
        }
        for part in payload {
            out.extend_from_slice(part);
        }
    }

    /// `3.1.1` or `5`, as `--mqtt-version` takes it.
    pub fn label(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }

    /// Parse `3.1.1`, `3`, `4` (its protocol level) or `5`.
    pub fn parse(text: &str) -> Option<Version> {
        match text.trim() {
            "3.1.1" | "3" | "4" | "311" => Some(Version::V311),
            "5" | "5.0" => Some(Version::V5),
            _ => None,
        }
    }
}

/// Largest packet the decoder accepts (remaining length bound). Bigger is a protocol error,
/// so a misbehaving peer can never make a connection buffer grow without limit.
pub const MAX_PACKET_BYTES: usize = 1 << 20;

/// The whole length of the packet whose first bytes are `head` (fixed header: type byte and
/// remaining length), once they are enough to tell; `None` while they are not, or when the
/// remaining length is malformed or above [`MAX_PACKET_BYTES`] (the decoder names those).
pub fn packet_len(head: &[u8]) -> Option<usize> {
    match packet::read_remaining_length(head.get(1..)?) {
        Ok(Some((remaining, varint_bytes))) if remaining <= MAX_PACKET_BYTES => {
            Some(1 + varint_bytes + remaining)
        }
        _ => None,
    }
}

/// Largest value the 1-4 byte remaining-length varint can carry (section 2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The fixed header (and packet id) of a PUBLISH at the front of a buffer, read before the
/// whole packet is there: [`peek_publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeekedPublish {
    /// The whole packet: fixed header and remaining length.
    pub total_bytes: usize,
    pub qos: u8,
    /// The packet identifier (QoS 1 and 2), when the buffer reaches it.
    pub pkid: Option<u16>,
}

/// A PUBLISH's size, QoS and (if present in `buf`) packet id, from its first bytes; None when
/// `buf` does not start with a PUBLISH whose remaining length is complete and well formed.
/// Either version: the packet id follows the topic in both (sections 3.3.2).
pub fn peek_publish(buf: &[u8]) -> Option<PeekedPublish> {
    let header = *buf.first()?;
    if header >> 4 != 3 {
        return None;
    }
    let mut remaining = 0usize;
    let mut at = 1;
    loop {
        let byte = *buf.get(at)?;
        remaining |= usize::from(byte & 0b0111_1111) << (7 * (at - 1));
        at += 1;
        if byte & 0b1000_0000 == 0 {
            break;
        }
        if at == 5 {
            return None; // a fifth length byte: malformed, the decoder says so
        }
    }
    let qos = (header >> 1) & 0b11;
    let pkid = match qos {
        0 => None,
        _ => buf.get(at..at + 2).and_then(|len| {
            let topic_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let id_at = at + 2 + topic_len;
            let id = buf.get(id_at..id_at + 2)?;
            Some(u16::from_be_bytes([id[0], id[1]]))
        }),
    };
    Some(PeekedPublish {
        total_bytes: at + remaining,
        qos,
        pkid,
    })
}

/// Human meaning of a CONNACK code: MQTT 3.1.1 return codes (section 3.2.2.3) and MQTT 5
/// reason codes (section 3.2.2.2), see [`reason::connack_name`].
pub fn connack_reason(code: u8) -> &'static str {
    reason::connack_name(code)
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
        let mut stream = filled(frame);
        let packet = mqttbytes::v4::read(&mut stream, super::MAX_PACKET_BYTES);
        if packet.is_ok() {
            assert!(stream.as_ref().is_empty(), "mqttbytes left bytes unread");
        }
        packet
    }

    /// A stream of the crate's (inferred) buffer type holding `bytes`.
    fn filled<T: Default + Extend<u8> + AsRef<[u8]>>(bytes: &[u8]) -> T {
        let mut stream = T::default();
        stream.extend(bytes.iter().copied());
        stream
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

    /// The MQTT 5 side: `mqttbytes::v5::read`, insisting it consumes the whole frame.
    pub mod v5 {
        pub use mqttbytes::v5::Packet;

        pub fn read(frame: &[u8]) -> Result<Packet, mqttbytes::Error> {
            let mut stream = super::filled(frame);
            let packet = mqttbytes::v5::read(&mut stream, crate::mqtt::MAX_PACKET_BYTES);
            if packet.is_ok() {
                assert!(stream.as_ref().is_empty(), "mqttbytes left bytes unread");
            }
            packet
        }
    }
}

/// Test-only fuzzing shared by both decoders: random and mutated buffers must never panic
/// and never report more bytes consumed than were given.
#[cfg(test)]
pub(crate) mod fuzz {
    /// Deterministic xorshift64 so the fuzz loop needs no extra crate and always replays.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// 200,000 rounds: half pure noise (short buffers), half a valid frame from `frames`
    /// (truncated to 64 bytes) with a few bytes flipped. `consumed` decodes one buffer and
    /// returns the bytes a decoded packet used, if any.
    pub fn never_overconsumes(
        seed: u64,
        frames: &[Vec<u8>],
        consumed: impl Fn(&[u8]) -> Option<usize>,
    ) {
        let mut rng = XorShift(seed);
        let mut buf = Vec::with_capacity(64);
        for round in 0..200_000 {
            buf.clear();
            if round % 2 == 0 {
                let len = (rng.next() % 40) as usize;
                buf.extend((0..len).map(|_| rng.next() as u8));
            } else {
                let frame = &frames[(rng.next() as usize) % frames.len()];
                buf.extend_from_slice(&frame[..frame.len().min(64)]);
                for _ in 0..=(rng.next() % 3) {
                    let at = (rng.next() as usize) % buf.len();
                    buf[at] ^= rng.next() as u8;
                }
            }
            if let Some(used) = consumed(&buf) {
                assert!(used <= buf.len());
            }
        }
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
    fn packet_len_reads_the_fixed_header_once_it_is_complete() {
        assert_eq!(packet_len(&[]), None);
        assert_eq!(packet_len(&[0x40]), None);
        assert_eq!(packet_len(&[0x40, 0x02]), Some(4));
        assert_eq!(packet_len(&[0xd0, 0x00]), Some(2));
        assert_eq!(packet_len(&[0x30, 0x80]), None);
        assert_eq!(packet_len(&[0x30, 0x80, 0x01]), Some(131));
        assert_eq!(packet_len(&[0x30, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            packet_len(&[0x30, 0xff, 0xff, 0x7f]),
            None,
            "above MAX_PACKET_BYTES"
        );
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
    fn an_answer_is_a_qos_0_publish_that_both_codecs_read_in_both_versions() {
        let payload = vec![b'x'; 200];
        for version in [Version::V311, Version::V5] {
            let mut out = Vec::new();
            version.encode_answer(&mut out, b"v1/devices/me/rpc/response/", b"42", &payload);
            assert_eq!(out.len(), version.answer_len(29, payload.len()));
            let (packet, used) = version.decode(&out).unwrap().unwrap();
            assert_eq!(used, out.len());
            match packet {
                Packet::Publish {
                    qos,
                    topic,
                    payload: p,
                    ..
                } => {
                    assert_eq!(qos, 0);
                    assert_eq!(topic, b"v1/devices/me/rpc/response/42");
                    assert_eq!(p, &payload[..]);
                }
                other => panic!("{other:?}"),
            }
            let theirs_topic_payload = match version {
                Version::V311 => match oracle::read(&out).unwrap() {
                    oracle::Packet::Publish(p) => (p.topic, p.payload.to_vec()),
                    other => panic!("{other:?}"),
                },
                Version::V5 => match oracle::v5::read(&out).unwrap() {
                    oracle::v5::Packet::Publish(p) => (p.topic, p.payload.to_vec()),
                    other => panic!("{other:?}"),
                },
            };
            assert_eq!(theirs_topic_payload.0, "v1/devices/me/rpc/response/42");
            assert_eq!(theirs_topic_payload.1, payload);
        }
    }

    #[test]
    fn an_answer_written_in_pieces_is_the_same_frame_as_one_written_whole() {
        for version in [Version::V311, Version::V5] {
            let mut whole = Vec::new();
            version.encode_answer(&mut whole, b"v1/gateway/rpc", b"", br#"{"id":7,"data":1}"#);
            let mut parts = Vec::new();
            let payload: [&[u8]; 3] = [br#"{"id":"#, b"7", br#","data":1}"#];
            version.encode_answer_parts(&mut parts, [b"v1/gateway", b"/rpc"], &payload);
            assert_eq!(parts, whole);
            assert_eq!(parts.len(), version.answer_len(14, 17));
        }
    }

    #[test]
    fn a_publish_is_sized_from_its_first_bytes_with_its_id_when_they_reach_it() {
        let payload = vec![0u8; 70_000];
        let mut frame = Vec::new();
        publish::encode(&mut frame, "a/b", 1, false, 513, &payload);
        let whole = peek_publish(&frame).unwrap();
        assert_eq!(
            whole,
            PeekedPublish {
                total_bytes: frame.len(),
                qos: 1,
                pkid: Some(513)
            }
        );
        assert_eq!(peek_publish(&frame[..6]).unwrap().pkid, None);
        assert_eq!(peek_publish(&frame[..6]).unwrap().total_bytes, frame.len());
        assert_eq!(peek_publish(&frame[..2]), None, "length incomplete");
        let mut qos0 = Vec::new();
        publish::encode(&mut qos0, "t", 0, false, 0, b"x");
        assert_eq!(peek_publish(&qos0).unwrap().pkid, None);
        assert_eq!(peek_publish(&[0x40, 2, 0, 1]), None, "a PUBACK");
        assert_eq!(peek_publish(&[0x30, 0xff, 0xff, 0xff, 0xff, 1]), None);
        assert_eq!(peek_publish(&[]), None);
    }

    #[test]
    fn connack_reason_names_every_code_and_flags_unknown_ones() {
        assert_eq!(connack_reason(0), "connection accepted");
        assert_eq!(connack_reason(5), "not authorized");
        assert_eq!(connack_reason(6), "unknown return code");
        assert_eq!(connack_reason(0x86), "Bad User Name or Password");
    }
}
