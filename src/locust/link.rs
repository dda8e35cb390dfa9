//! The ZeroMQ side of a Locust worker: one DEALER socket, owned by one thread (libzmq sockets
//! are not thread-safe), whose ZeroMQ identity is the node id every message carries. It
//! sends and receives whole [`Message`]s and recreates itself on the master's `reconnect`.
//!
//! Bounds: libzmq queues at most [`SEND_QUEUE_MESSAGES`] unsent messages for a connected master
//! that is slow to read, and none for one that is not connected; a send it refuses is dropped
//! and said on stderr (the first and every 100th), never blocks the protocol. A frame from the
//! master larger than [`MAX_FRAME_BYTES`] is refused by libzmq (it drops that connection and
//! connects again). The bound is on what the frame
//! decodes into too: every msgpack value takes at least one byte, so a frame holds at most
//! [`MAX_FRAME_BYTES`] values (see `msg::tests`).

use super::msg::Message;

/// Unsent messages libzmq holds for the master (its high-water mark).
pub const SEND_QUEUE_MESSAGES: i32 = 1000;
/// Between closing the old socket and opening the new one on `reconnect`.
pub const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);
/// Largest frame accepted from the master (spawn messages carry every option: a few KiB).
/// A frame of one-byte values decodes to 40 bytes per byte (one `rmpv::Value` each): 1 MiB
/// keeps that near 40 MiB.
pub const MAX_FRAME_BYTES: i64 = 1 << 20;

pub struct Link {
    context: zmq::Context,
    /// None only when reopening failed (sends then fail until the next `reconnect`).
    socket: Option<zmq::Socket>,
    endpoint: String,
    pub node_id: String,
    dropped: u64,
}

impl Link {
    /// A DEALER connected (asynchronously, as libzmq does) to `tcp://host:port`.
    pub fn connect(host: &str, port: u16, node_id: String) -> Result<Link, String> {
        let context = zmq::Context::new();
        let endpoint = format!("tcp://{}:{port}", bracket_ipv6(host));
        let socket = open(&context, &endpoint, &node_id)?;
        Ok(Link {
            context,
            socket: Some(socket),
            endpoint,
            node_id,
            dropped: 0,
        })
    }

    /// Close and reopen the socket with the same identity (the master's `reconnect`).
    /// The old socket is closed first, as Locust's workers do, and the new one opened a
    /// moment later: a master's ROUTER that still holds our identity parks the new
    /// connection, and libzmq looks at a parked connection again only when a new message
    /// arrives on it, which may be never.
    pub fn reconnect(&mut self) -> Result<(), String> {
        if let Some(old) = self.socket.take() {
            let _ = old.set_linger(0);
        }
        std::thread::sleep(RECONNECT_PAUSE);
        self.socket = Some(open(&self.context, &self.endpoint, &self.node_id)?);
        Ok(())
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queue a message if the master is connected, quietly; false when it is not.
    pub fn try_send(&mut self, message: &Message) -> bool {
        let Some(socket) = &self.socket else {
            return false;
        };
        socket.send(message.encode(), zmq::DONTWAIT).is_ok()
    }

    /// Queue a message for the master. False when libzmq's queue is full (it is dropped).
    pub fn send(&mut self, message: &Message) -> bool {
        let sent = match &self.socket {
            Some(socket) => socket.send(message.encode(), zmq::DONTWAIT),
            None => Err(zmq::Error::ENOTSOCK),
        };
        match sent {
            Ok(()) => true,
            Err(e) => {
                self.dropped += 1;
                if self.dropped % 100 != 1 {
                    return false;
                }
                eprintln!(
                    "mqblast: locust: could not send `{}` to the master at {} ({e}); {} message(s) dropped so far",
                    message.kind, self.endpoint, self.dropped
                );
                false
            }
        }
    }

    /// The next frame from the master, waiting at most `timeout_ms`. Extra frames of a
    /// multipart message are read and ignored, as Locust's own peers do.
    pub fn recv(&mut self, timeout_ms: i64) -> Option<Vec<u8>> {
        let Some(socket) = &self.socket else {
            std::thread::sleep(std::time::Duration::from_millis(timeout_ms.max(0) as u64));
            return None;
        };
        match socket.poll(zmq::POLLIN, timeout_ms) {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
        let frame = socket.recv_bytes(zmq::DONTWAIT).ok()?;
        while socket.get_rcvmore().unwrap_or(false) {
            if socket.recv_bytes(zmq::DONTWAIT).is_err() {
                break;
            }
        }
        Some(frame)
    }
}

fn open(context: &zmq::Context, endpoint: &str, node_id: &str) -> Result<zmq::Socket, String> {
    let fail = |what: &str, e: zmq::Error| format!("ZeroMQ {what} for {endpoint}: {e}");
    let socket = context.socket(zmq::DEALER).map_err(|e| fail("socket", e))?;
    socket
        .set_identity(node_id.as_bytes())
        .map_err(|e| fail("identity", e))?;
    // Unsent messages are given 500 ms at close (a final report), not forever.
    socket.set_linger(500).map_err(|e| fail("linger", e))?;
    // Nothing is queued for a master that is not connected: a restarted master must not
    // receive reports and heartbeats meant for the one before it.
    socket
        .set_immediate(true)
        .map_err(|e| fail("immediate", e))?;
    socket
        .set_sndhwm(SEND_QUEUE_MESSAGES)
        .map_err(|e| fail("high-water mark", e))?;
    socket
        .set_maxmsgsize(MAX_FRAME_BYTES)
        .map_err(|e| fail("max message size", e))?;
    socket
        .set_tcp_keepalive(1)
        .map_err(|e| fail("keepalive", e))?;
    socket
        .set_tcp_keepalive_idle(30)
        .map_err(|e| fail("keepalive idle", e))?;
    socket.connect(endpoint).map_err(|e| fail("connect", e))?;
    Ok(socket)
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `hostname_<32 hex digits>`, as Locust's workers name themselves: the master groups workers
/// by the part before the first `_`, so the host name's own underscores become dashes.
pub fn node_id() -> String {
    let host = crate::stats::merger::host_name().replace('_', "-");
    let host = if host.is_empty() {
        "mqblast".to_string()
    } else {
        host
    };
    let mut random = [0u8; 16];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut random).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        random = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}_{hex}")
}
