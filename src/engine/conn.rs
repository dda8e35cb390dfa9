//! One client's connection: its state, buffers, frames, in-flight window and schedule.
//!
//! Plain data owned by one worker; the I/O and the state transitions live in `worker.rs`.
//! Buffers are sized once at connect and never grow on the hot path.

use std::net::SocketAddr;

use mio::net::TcpStream;

use super::inflight::Inflight;
use crate::payload::Frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its spawn time has not come yet.
    Waiting,
    /// Non-blocking TCP connect in progress.
    Connecting,
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
    /// Bytes waiting to be written. Capacity fixed at connect (`write_capacity`): when a frame
    /// does not fit, the message waits for the socket to drain; nothing is dropped.
    pub wbuf: Vec<u8>,
    /// The tail of a packet that arrived incompletely; empty (unallocated) almost always.
    pub rbuf: Vec<u8>,
    /// Pre-serialized PUBLISH frames, used in rotation.
    pub frames: Vec<Frame>,
    pub next_frame: usize,
    pub inflight: Inflight,
    /// Sequence number of the last message published (the first is 1).
    pub seq: u64,
    /// Scheduled time of the next publish (ns since run start); latency starts there.
    pub next_due_ns: u64,
    pub connect_started_ns: u64,
    pub last_write_ns: u64,
    /// When the outstanding PINGREQ was sent, if one is outstanding.
    pub ping_sent_ns: Option<u64>,
    /// A publish timer for this client is in the worker's heap.
    pub timer_armed: bool,
    /// In the worker's flush list.
    pub dirty: bool,
    /// In the worker's ready list (can publish without waiting for an event).
    pub ready: bool,
    pub role: Role,
    /// Publisher: publishes that count for the audit (acknowledged at QoS 1/2, written at
    /// QoS 0). Subscriber: marked messages received (duplicates included).
    pub counted: u64,
    /// Subscriber: SUBACK received or failed (the publisher gate was told).
    pub sub_settled: bool,
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
}

impl Conn {
    pub fn new(index: u64, addr: SocketAddr, frames: Vec<Frame>, max_inflight: u16) -> Conn {
        Conn {
            index,
            addr,
            state: State::Waiting,
            stream: None,
            wbuf: Vec::new(),
            rbuf: Vec::new(),
            frames,
            next_frame: 0,
            inflight: Inflight::new(max_inflight),
            seq: 0,
            next_due_ns: 0,
            connect_started_ns: 0,
            last_write_ns: 0,
            ping_sent_ns: None,
            timer_armed: false,
            dirty: false,
            ready: false,
            role: Role::Publisher { matches: false },
            counted: 0,
            sub_settled: false,
            read_paused: false,
            reconnect_at_ns: 0,
            backoff_ns: 0,
            lost_at_ns: None,
            connected_at_ns: 0,
            churn_due: false,
        }
    }

    /// A subscriber connection (no publish frames).
    pub fn subscriber(index: u64, addr: SocketAddr, slot: u32) -> Conn {
        let mut conn = Conn::new(index, addr, Vec::new(), 1);
        conn.role = Role::Subscriber { slot };
        conn
    }

    pub fn is_subscriber(&self) -> bool {
        matches!(self.role, Role::Subscriber { .. })
    }

    /// Write-buffer capacity: room for a full in-flight window of the largest frame (capped at
    /// 64 frames, which is plenty to keep a socket busy), plus control packets.
    pub fn write_capacity(&self, max_inflight: u16) -> usize {
        if self.is_subscriber() {
            return SUBSCRIBER_WBUF_BYTES + 512;
        }
        let frame_max = self.frames.iter().map(Frame::len).max().unwrap_or(0);
        frame_max * (max_inflight.clamp(1, 64) as usize) + 512
    }

    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::AwaitConnack | State::AwaitSuback | State::Connected
        )
    }

    #[inline]
    pub fn frame_fits(&self) -> bool {
        let Some(frame) = self.frames.get(self.next_frame) else {
            return false;
        };
        let need = frame.len();
        self.wbuf.capacity() - self.wbuf.len() >= need
    }
}
