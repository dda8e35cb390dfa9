//! PUBLISH (MQTT 3.1.1 section 3.3) encoder. Frames are built once per client; per message
//! only the packet identifier (at `pkid_at`) and payload fields are patched in place.

/// Where the patchable parts of an encoded PUBLISH frame are, relative to the frame start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLayout {
    /// Offset of the 2-byte big-endian packet identifier (None at QoS 0).
    pub pkid_at: Option<usize>,
    /// Offset of the first payload byte.
    pub payload_at: usize,
    /// Total frame length in bytes.
    pub len: usize,
}

/// Append a PUBLISH frame to `out`; `pkid` is ignored at QoS 0.
pub fn encode(
    out: &mut Vec<u8>,
    topic: &str,
    qos: u8,
    retain: bool,
    pkid: u16,
    payload: &[u8],
) -> PublishLayout {
    todo!()
}

/// Overwrite the packet identifier of an already-encoded frame.
#[inline]
pub fn patch_pkid(frame: &mut [u8], pkid_at: usize, pkid: u16) {
    frame[pkid_at..pkid_at + 2].copy_from_slice(&pkid.to_be_bytes());
}
