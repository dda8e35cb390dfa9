//! Zero-allocation decoder for packets read from the socket.

/// One decoded packet, borrowing from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    ConnAck { session_present: bool, code: u8 },
    PubAck { pkid: u16 },
    PubRec { pkid: u16 },
    PubRel { pkid: u16 },
    PubComp { pkid: u16 },
    SubAck { pkid: u16, codes: &'a [u8] },
    UnsubAck { pkid: u16 },
    Publish { dup: bool, qos: u8, retain: bool, topic: &'a [u8], pkid: u16, payload: &'a [u8] },
    PingReq,
    PingResp,
    Disconnect,
    /// Client-to-server packets, decoded so the calibration sink can answer them.
    Connect { client_id: &'a [u8], username: Option<&'a [u8]>, keep_alive_s: u16 },
    Subscribe { pkid: u16, filters: &'a [u8] },
    Unsubscribe { pkid: u16 },
}

/// Bytes that are not valid MQTT 3.1.1. Static text so reporting it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Decode one packet from the front of `buf`.
/// `Ok(None)`: not enough bytes yet. `Ok(Some((packet, consumed)))`: a whole packet.
/// `Err`: malformed (bad type/flags, bad lengths, remaining length > MAX_PACKET_BYTES).
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, ProtocolError> {
    todo!()
}
