//! One client's connection: its state, buffers, streams (frames and schedule) and in-flight
//! window.
//!
//! Plain data owned by one worker; the I/O and the state transitions live in `worker.rs`.
//!
//! Memory per connection is what bounds how many devices one host can simulate, so an idle
//! connection owns no write buffer: it borrows one from its worker's [`WritePool`] when it
//! queues bytes and gives it back as soon as a flush empties it. A connection publishing once
//! every 10 s holds a buffer for microseconds per message; the pool holds only as many buffers
//! as were ever queued-to at the same time. Buffers never grow on the hot path.

use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;

use super::inflight::Inflight;
use crate::stats::ClientRef;
use crate::transport::Transport;
use crate::workload::answers::DeviceAnswers;
use crate::workload::gateway::{GatewayMode, GatewaySession};
use crate::workload::responder::QUEUE_BYTES;
use crate::workload::stream::Streams;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its spawn time has not come yet.
    Waiting,
    /// Non-blocking TCP connect in progress.
    Connecting,
    /// TCP is up; the TLS handshake and/or the WebSocket upgrade are in progress.
    Handshaking,
    /// CONNECT written, waiting for CONNACK.
    AwaitConnack,
    /// Subscriber: SUBSCRIBE written, waiting for SUBACK.
    AwaitSuback,
    /// CONNACK accepted (publisher) or SUBACK granted (subscriber): publishing / receiving.
    Connected,
    /// Finished: refused, failed, lost or stopped. A closed client does not come back.
    Closed,
}

/// What a connection does in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes; `matches` when the subscribers' filter matches its topic (it is owed).
    Publisher { matches: bool },
    /// Subscribes and receives; `slot` indexes the worker's per-subscriber audit.
    Subscriber { slot: u32 },
}

/// Write-buffer capacity of a subscriber: its acknowledgements (4 bytes per received
/// PUBLISH of at least 7 bytes) must fit whatever one read brings, see `Worker::read_room`.
pub const SUBSCRIBER_WBUF_BYTES: usize = 64 * 1024;

pub struct Conn {
    /// Global client index (0-based, unique across workers).
    pub index: u64,
    pub addr: SocketAddr,
    pub state: State,
    pub stream: Option<TcpStream>,
    /// What speaks over `stream`: TCP, TLS, WebSocket or both (a new one per connect).
    pub transport: Transport,
    /// TLS: this client's config and session cache, kept across its connections so a
    /// reconnect resumes its own session (made at its first connect).
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Bytes waiting to be written, in a buffer lent by the worker's [`WritePool`] while any
    /// are queued (capacity 0 = none lent). A lent buffer has the pool's fixed capacity: when a
    /// frame does not fit, the message waits for the socket to drain; nothing is dropped.
    pub wbuf: Vec<u8>,
    /// The head of the one packet the last read split (never more than that packet). A
    /// publisher's has 32 bytes from its CONNECT (an ack fits); a subscriber's is sized for
    /// a read at its SUBSCRIBE.
    pub rbuf: Vec<u8>,
    /// The streams this client publishes: per stream its pre-serialized frames (used in
    /// rotation), its pace and its next due time (`workload::stream`).
    pub streams: Streams,
    /// `--gateway`: the gateway's frames and device schedule (its streams' slots then carry
    /// only their paces, and their due times mirror the device clocks). None: one device.
    pub gateway: Option<Box<GatewaySession>>,
    /// The QoS flows of its streams: bit q set when one publishes at QoS q (acks are routed
    /// by it when no publish in flight names the QoS).
    pub qos_mask: u8,
    pub inflight: Inflight,
    /// A device with request streams or `--rpc-responder`: what it subscribes to at connect,
    /// its pending requests and its queued RPC answers (`workload::answers`). None otherwise.
    pub answers: Option<Box<DeviceAnswers>>,
    /// Bytes still to drop of an incoming packet too large for the read buffer (a device
    /// skips it, counted, and keeps its framing).
    pub skip_bytes: usize,
    /// Sequence number of the last message published (the first is 1).
    pub seq: u64,
    /// Messages this client may still publish: its share of `--messages` (`u64::MAX` without
    /// a limit). At zero it stops publishing; the others are not affected.
    pub quota: u64,
    pub connect_started_ns: u64,
    pub last_write_ns: u64,
    /// Since when queued bytes have been waiting for a socket that takes none (ns since run
    /// start); None while writes make progress or nothing is queued. Past `--timeout` the
    /// connection is closed (`Failure::WriteTimeout`), so a peer that stops reading cannot
    /// hold a run forever.
    pub write_blocked_since_ns: Option<u64>,
    /// When the outstanding PINGREQ was sent, if one is outstanding.
    pub ping_sent_ns: Option<u64>,
    /// When this connection's check is armed in the worker's timer heap (ns since run start;
    /// `u64::MAX`: none). Entries with another time are stale.
    pub check_at_ns: u64,
    /// When this client's live publish timer is due (`u64::MAX`: none armed). Other publish
    /// entries for it in the worker's heap (left by a reconnect, or by a publish sent early)
    /// carry another time and are skipped when they come up.
    pub timer_at_ns: u64,
    /// In the worker's flush list.
    pub dirty: bool,
    /// In the worker's ready list (can publish without waiting for an event).
    pub ready: bool,
    /// Source address to bind before connecting (`--bind`); None: the OS chooses.
    pub source: Option<IpAddr>,
    /// A connect slot was reserved (`--connect-rate`): the next spawn timer connects at once.
    pub connect_slot_reserved: bool,
    pub role: Role,
    /// Publisher: publishes that count for the audit (acknowledged at QoS 1/2, written at
    /// QoS 0). Subscriber: marked messages received (duplicates included).
    pub counted: u64,
    /// Publisher: of those, the ones stamped at or after the audit's cut `audit_cut_ns`
    /// (see `engine::audit`); all of them until a stats reset moves the cut.
    pub audit_counted: u64,
    pub audit_cut_ns: u64,
    /// Subscriber: SUBACK received or failed (the publisher gate was told).
    pub sub_settled: bool,
    /// An event said the peer closed or the socket failed: reads go on to the end of stream
    /// (a short read no longer means "empty"). Reset when the client connects again.
    pub peer_closed: bool,
    /// Subscriber: reading stopped because the write buffer had no room for more acks;
    /// resumed on the next writable event.
    pub read_paused: bool,
    /// `--reconnect`: a Waiting client connects no earlier than this (ns since start).
    pub reconnect_at_ns: u64,
    /// Current back-off (0: none since the last successful connect).
    pub backoff_ns: u64,
    /// When the connection was lost, until it is back (the reconnect time starts here).
    pub lost_at_ns: Option<u64>,
    /// When the current connection was accepted (CONNACK), for `--churn`.
    pub connected_at_ns: u64,
    /// `--churn`: this connection is due to be recycled; it publishes nothing more and is
    /// recycled once its in-flight window is empty.
    pub churn_due: bool,
    /// When the current connect phase began (TCP up, TLS done, upgrade done), for the
    /// connect row's parts.
    pub phase_started_ns: u64,
    /// Most QoS 1/2 publishes in flight on this connection: `--max-inflight`, or the broker's
    /// Receive Maximum (MQTT 5 CONNACK) when that is smaller. Set at each CONNACK.
    pub send_window: usize,
    /// Keep-alive of this connection: `--keep-alive`, or the broker's Server Keep Alive
    /// (MQTT 5 CONNACK), which overrides it [MQTT-3.2.2-21].
    pub keep_alive_s: u16,
    /// `--topic-alias`: the alias was set on this connection (its first publish carried the
    /// topic and the alias); later publishes send the aliased frame. Reset at each connect.
    pub alias_set: bool,
    /// MQTT 5 Assigned Client Identifier from the last CONNACK (the client sent an empty
    /// id): its reconnects send it, so a kept session (`--clean-start false`) is resumed.
    pub assigned_client_id: Option<Box<str>>,
    /// Above the live user target: not in the run now (Waiting, no timer honoured) until the
    /// target is raised past it again.
    pub parked: bool,
    /// Stepping down after the user target was lowered: publishes nothing more; once its
    /// in-flight window is empty, or at `retire_deadline_ns` (the stop timeout), it sends
    /// DISCONNECT and parks.
    pub retiring: bool,
    pub retire_deadline_ns: u64,
}

impl Conn {
    pub fn new(
        index: u64,
        addr: SocketAddr,
        source: Option<IpAddr>,
        streams: Streams,
        max_inflight: u16,
    ) -> Conn {
        let qos_mask = streams.qos_mask();
        Conn {
            index,
            addr,
            state: State::Waiting,
            stream: None,
            transport: Transport::Tcp,
            tls_config: None,
            wbuf: Vec::new(),
            rbuf: Vec::new(),
            streams,
            gateway: None,
            qos_mask,
            inflight: Inflight::new(max_inflight),
            answers: None,
            skip_bytes: 0,
            seq: 0,
            quota: u64::MAX,
            connect_started_ns: 0,
            last_write_ns: 0,
            write_blocked_since_ns: None,
            ping_sent_ns: None,
            check_at_ns: u64::MAX,
            timer_at_ns: u64::MAX,
            dirty: false,
            ready: false,
            source,
            connect_slot_reserved: false,
            role: Role::Publisher { matches: false },
            counted: 0,
            audit_counted: 0,
            audit_cut_ns: 0,
            sub_settled: false,
            read_paused: false,
            peer_closed: false,
            reconnect_at_ns: 0,
            backoff_ns: 0,
            lost_at_ns: None,
            connected_at_ns: 0,
            churn_due: false,
            phase_started_ns: 0,
            send_window: usize::from(max_inflight.max(1)),
            keep_alive_s: 0,
            alias_set: false,
            assigned_client_id: None,
            parked: false,
            retiring: false,
            retire_deadline_ns: 0,
        }
    }

    /// A subscriber connection (no publish frames).
    pub fn subscriber(index: u64, addr: SocketAddr, source: Option<IpAddr>, slot: u32) -> Conn {
        let mut conn = Conn::new(index, addr, source, Streams::none(), 1);
        conn.role = Role::Subscriber { slot };
        conn
    }

    pub fn is_subscriber(&self) -> bool {
        matches!(self.role, Role::Subscriber { .. })
    }

    /// This client as failure reports name it (index and role; the id is rendered later).
    pub fn client(&self) -> ClientRef {
        ClientRef {
            subscriber: self.is_subscriber(),
            index: self.index,
        }
    }

    /// Not yet accepted by a CONNACK: a loss now is a failed connect attempt, not a lost
    /// connection.
    pub fn before_connack(&self) -> bool {
        matches!(
            self.state,
            State::Waiting | State::Connecting | State::Handshaking | State::AwaitConnack
        )
    }

    /// Write-buffer capacity: room for a full in-flight window of the largest frame (capped at
    /// 64 frames, which is plenty to keep a socket busy), plus the control reserve.
    pub fn write_capacity(&self, max_inflight: u16) -> usize {
        if self.is_subscriber() {
            return SUBSCRIBER_WBUF_BYTES + 512;
        }
        if let Some(gateway) = &self.gateway {
            return self.gateway_capacity(gateway, max_inflight);
        }
        let frame_max = self.streams.largest_frame_bytes();
        frame_max * (max_inflight.clamp(1, 64) as usize)
            + self.control_reserve()
            + self.answer_room()
    }

    /// Room a responder's answers may take in the write buffer beside the publishes: the
    /// largest answer queue, plus a frame, so an answer never leaves a publish without room.
    pub fn answer_room(&self) -> usize {
        match &self.answers {
            Some(answers) if answers.responds() => QUEUE_BYTES + self.largest_publish_bytes(),
            _ => 0,
        }
    }

    /// The largest message this connection publishes on its own: a stream's frame, or a
    /// gateway's largest single-point or connect message (what the pump needs room for).
    pub fn largest_publish_bytes(&self) -> usize {
        match &self.gateway {
            Some(gateway) => gateway.largest_single_len(),
            None => self.streams.largest_frame_bytes(),
        }
    }

    /// A gateway's write buffer: a window of its largest single messages (capped at 64, as
    /// for a device), and in `batched` mode room for two whole batches, so a batch can be
    /// written while the previous one drains. A batch folds what fits in what is left. With
    /// `--rpc-responder`, the answers' room beside it, as for a device.
    fn gateway_capacity(&self, gateway: &GatewaySession, max_inflight: u16) -> usize {
        let single = gateway.largest_single_len();
        let window = single * (max_inflight.clamp(1, 64) as usize);
        let batches = match gateway.mode {
            GatewayMode::PerPoint => 0,
            GatewayMode::Batched => 2 * gateway.frames.largest_message_len(gateway.mode),
        };
        window.max(batches) + self.control_reserve() + self.answer_room()
    }

    /// Bytes publishes never use, so control packets always fit: a PUBREL (4 bytes) for every
    /// publish of the window, plus PINGREQ, DISCONNECT and slack.
    pub fn control_reserve(&self) -> usize {
        64 + 4 * self.inflight.window()
    }

    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Connecting
                | State::Handshaking
                | State::AwaitConnack
                | State::AwaitSuback
                | State::Connected
        )
    }

    /// Whether the next frame of stream slot `slot` fits. With no buffer lent it does: a
    /// pool buffer is at least `write_capacity` bytes, which holds any of this connection's
    /// frames.
    #[inline]
    pub fn frame_fits(&self, slot: usize) -> bool {
        let Some(slot) = self.streams.slots().get(slot) else {
            return false;
        };
        let need = slot.frame().len() + self.control_reserve();
        self.wbuf.capacity() == 0 || self.wbuf.capacity() - self.wbuf.len() >= need
    }

    /// Borrow a write buffer from `pool` unless one is lent already.
    #[inline]
    pub fn lend_wbuf(&mut self, pool: &mut WritePool) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool.take();
        }
    }

    /// Give the write buffer back to `pool` once everything in it was written (or dropped,
    /// when the connection closes).
    #[inline]
    pub fn return_wbuf(&mut self, pool: &mut WritePool) {
        // A subscriber keeps its own buffer while connected (`close` drops it).
        if self.wbuf.capacity() != 0 && !self.is_subscriber() {
            pool.give(std::mem::take(&mut self.wbuf));
        }
    }
}

/// One worker's spare write buffers.
///
/// Bounds: each connection holds at most one buffer, so at most `connections` buffers of
/// `buffer_bytes` exist; the free list's capacity is reserved for all of them at start, so
/// giving a buffer back never allocates. A buffer is allocated only when more connections
/// have bytes queued at once than ever before in the run (the peak is kept for reuse, so
/// the steady state allocates nothing).
pub struct WritePool {
    free: Vec<Vec<u8>>,
    buffer_bytes: usize,
}

impl WritePool {
    /// A pool of `buffer_bytes` buffers for up to `connections` connections.
    pub fn new(buffer_bytes: usize, connections: usize) -> WritePool {
        WritePool {
            free: Vec::with_capacity(connections),
            buffer_bytes: buffer_bytes.max(1),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_bytes))
    }

    fn give(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        // Full only if a buffer came from outside the pool; then it is simply freed.
        if self.free.len() < self.free.capacity() {
            self.free.push(buf);
        }
    }

    /// Buffers waiting in the pool (not lent).
    pub fn spare(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_lent_again_without_allocating_a_new_one() {
        let mut pool = WritePool::new(1024, 2);
        let a = pool.take();
        let ptr = a.as_ptr();
        assert_eq!(a.capacity(), 1024);
        pool.give(a);
        assert_eq!(pool.spare(), 1);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr);
    }

    #[test]
    fn a_returned_buffer_comes_back_empty() {
        let mut pool = WritePool::new(16, 1);
        let mut a = pool.take();
        a.extend_from_slice(b"abc");
        pool.give(a);
        assert!(pool.take().is_empty());
    }
}
