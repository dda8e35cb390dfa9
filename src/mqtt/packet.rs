//! What the decoders of both protocol versions hand the engine and the sink: one [`Packet`]
//! type, borrowing from the read buffer, so the engine handles acknowledgements the same way
//! whatever the version. MQTT 3.1.1 leaves the version-5-only fields at their success values
//! (reason code 0, no properties). Also the pieces both decoders share: packet type numbers,
//! the remaining-length varint and the bounds-checked `Reader`.

/// One decoded packet, borrowing from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `code`: MQTT 3.1.1 return code (0-5) or MQTT 5 reason code (0 or >= 0x80); the two
    /// ranges do not overlap, so [`crate::mqtt::reason::connack_name`] names either.
    /// `properties`: the raw, already validated MQTT 5 property block (empty for 3.1.1),
    /// read with [`crate::mqtt::v5::properties::Properties::parse`].
    ConnAck {
        session_present: bool,
        code: u8,
        properties: &'a [u8],
    },
    /// `reason`: MQTT 5 reason code (0 = success, 0x10 = no matching subscribers, >= 0x80
    /// failure); always 0 for 3.1.1.
    PubAck {
        pkid: u16,
        reason: u8,
    },
    PubRec {
        pkid: u16,
        reason: u8,
    },
    PubRel {
        pkid: u16,
        reason: u8,
    },
    PubComp {
        pkid: u16,
        reason: u8,
    },
    /// One return/reason code per filter (granted QoS 0-2, or >= 0x80 refused).
    SubAck {
        pkid: u16,
        codes: &'a [u8],
    },
    UnsubAck {
        pkid: u16,
    },
    /// MQTT 5: `topic` is empty when the sender uses a topic alias (the alias is validated,
    /// not resolved: nothing in mqblast needs the topic of a received message).
    Publish {
        dup: bool,
        qos: u8,
        retain: bool,
        topic: &'a [u8],
        pkid: u16,
        payload: &'a [u8],
    },
    PingReq,
    PingResp,
    /// `reason`: MQTT 5 reason code of a DISCONNECT (0 for 3.1.1).
    Disconnect {
        reason: u8,
    },
    /// MQTT 5 AUTH (enhanced authentication), which mqblast does not speak.
    Auth {
        reason: u8,
    },
    /// Client-to-server packets, decoded so the calibration sink can answer them.
    /// `protocol_level`: 3 (MQTT 3.1), 4 (3.1.1) or 5.
    Connect {
        client_id: &'a [u8],
        username: Option<&'a [u8]>,
        keep_alive_s: u16,
        protocol_level: u8,
    },
    /// `filters`: the raw (filter, options) list, walked by
    /// [`crate::mqtt::subscribe::filters`] (the QoS bits are the same in both versions).
    Subscribe {
        pkid: u16,
        filters: &'a [u8],
    },
    /// `filters`: how many topic filters it lists (an MQTT 5 UNSUBACK has a code for each).
    Unsubscribe {
        pkid: u16,
        filters: u16,
    },
}

/// Bytes that are not valid MQTT. Static text so reporting it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Control packet types (section 2.2.1, table 2.1): the high nibble of the first byte.
pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;

/// Parse the remaining-length varint (section 2.2.3) at the front of `bytes`.
/// Returns the value and how many bytes (1-4) it took, or `None` if it is not complete yet.
pub(crate) fn read_remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut value = 0usize;
    for (index, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0b0111_1111) << (7 * index);
        if byte & 0b1000_0000 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(ProtocolError("remaining length longer than 4 bytes"))
    } else {
        Ok(None)
    }
}

/// Bounds-checked cursor over one packet body; every read fails instead of panicking.
pub(crate) struct Reader<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        let (&byte, rest) = self
            .rest
            .split_first()
            .ok_or(ProtocolError("packet body too short"))?;
        self.rest = rest;
        Ok(byte)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        let (pair, rest) = self
            .rest
            .split_first_chunk::<2>()
            .ok_or(ProtocolError("packet body too short"))?;
        self.rest = rest;
        Ok(u16::from_be_bytes(*pair))
    }

    /// Everything left in the body (a PUBLISH payload, SUBACK codes).
    pub(crate) fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// A packet identifier, which section 2.3.1 requires to be non-zero.
    pub(crate) fn pkid(&mut self) -> Result<u16, ProtocolError> {
        match self.u16()? {
            0 => Err(ProtocolError("packet identifier 0")),
            pkid => Ok(pkid),
        }
    }

    /// A 2-byte length prefix and that many bytes (section 1.5.3).
    pub(crate) fn prefixed(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = usize::from(self.u16()?);
        let (bytes, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(ProtocolError("string length overruns packet"))?;
        self.rest = rest;
        Ok(bytes)
    }

    /// A big-endian u32 (MQTT 5 four-byte integer, section 1.5.3).
    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        let (quad, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(ProtocolError("packet body too short"))?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*quad))
    }

    /// A variable byte integer (MQTT 5 section 1.5.5): 1-4 bytes, 7 bits each.
    pub(crate) fn varint(&mut self) -> Result<usize, ProtocolError> {
        match read_remaining_length(self.rest)? {
            Some((value, used)) => {
                self.rest = &self.rest[used..];
                Ok(value)
            }
            None => Err(ProtocolError("variable byte integer overruns packet")),
        }
    }

    /// `len` bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], ProtocolError> {
        let (bytes, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(ProtocolError("length overruns packet"))?;
        self.rest = rest;
        Ok(bytes)
    }
}
