//! data.json -> pre-serialized PUBLISH frames with patch offsets.
//!
//! Each client gets one frame per payload object (data.json may be an array used in rotation),
//! built once when the client is created. Per message the engine copies the frame into the
//! connection's write buffer and patches the packet identifier and the per-message fields
//! (sequence number, timestamp) in place, at fixed width, so the JSON stays valid and nothing
//! is allocated.

use crate::plan::Plan;

/// The parsed payload file: one or more JSON objects used in rotation.
#[derive(Debug, Clone)]
pub struct Payload {
    _todo: (),
}

/// Per-client values that templates may use.
#[derive(Debug, Clone, Copy)]
pub struct ClientVars<'a> {
    /// Global client index (0-based).
    pub index: u64,
    /// Device token ("" when none).
    pub token: &'a str,
    /// Resolved client id ("" while resolving the client id template itself).
    pub client_id: &'a str,
}

/// One client's PUBLISH frame for one payload object.
#[derive(Debug, Clone)]
pub struct Frame {
    _todo: (),
}

impl Frame {
    /// Append this frame to `out` with its packet id, sequence number and timestamp patched.
    /// Allocation-free when `out` has capacity for `self.len()` more bytes.
    pub fn write_into(&self, out: &mut Vec<u8>, pkid: u16, seq: u64, now_epoch_ms: u64) {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
}

/// Resolve per-client placeholders (`{i}`, `{token}`, `{client_id}`) in a template.
pub fn render(template: &str, vars: &ClientVars<'_>) -> String {
    todo!()
}

/// Build a client's frames (one per payload object, in rotation order).
pub fn build_frames(plan: &Plan, vars: &ClientVars<'_>) -> Vec<Frame> {
    todo!()
}
