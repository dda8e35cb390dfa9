//! MQTT over WebSocket for the sink (`--websocket`): the server side of the upgrade and of the
//! framing, from the same code as the client's (`transport::ws`), so the generator's WebSocket
//! cost can be measured without a broker in the way.

use crate::transport::{Ws, WsError};

/// The MQTT bytes of what was just read into `buf`: the upgrade request is answered first
/// (bytes after it are frames), frames are unmasked and decoded in place. Returns how many
/// MQTT bytes are now at the front of `buf`.
pub fn unwrap(ws: &mut Ws, buf: &mut [u8]) -> Result<usize, WsError> {
    let mut start = 0;
    if ws.awaits_request() {
        start = ws.on_upgrade_bytes(buf)?;
        if ws.awaits_request() {
            return Ok(0);
        }
    }
    let n = buf.len();
    buf.copy_within(start..n, 0);
    ws.decode(&mut buf[..n - start])
}
