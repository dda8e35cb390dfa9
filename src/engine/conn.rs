//! One client's connection: its state, buffers, frames, in-flight window and schedule.
//!
//! Plain data owned by one worker; the I/O and the state transitions live in `worker.rs`.
//! Buffers are sized once at connect and never grow on the hot path.

use std::net::{IpAddr, SocketAddr};

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
    /// CONNACK accepted: publishing.
    Connected,
    /// Finished: refused, failed, lost or stopped. A closed client does not come back.
    Closed,
}

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
    /// Source address to bind before connecting (`--bind`); None: the OS chooses.
    pub source: Option<IpAddr>,
    /// A connect slot was reserved (`--connect-rate`): the next spawn timer connects at once.
    pub connect_slot_reserved: bool,
}

impl Conn {
    pub fn new(
        index: u64,
        addr: SocketAddr,
        source: Option<IpAddr>,
        frames: Vec<Frame>,
        max_inflight: u16,
    ) -> Conn {
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
            source,
            connect_slot_reserved: false,
        }
    }

    /// Write-buffer capacity: room for a full in-flight window of the largest frame (capped at
    /// 64 frames, which is plenty to keep a socket busy), plus control packets.
    pub fn write_capacity(&self, max_inflight: u16) -> usize {
        let frame_max = self.frames.iter().map(Frame::len).max().unwrap_or(0);
        frame_max * (max_inflight.clamp(1, 64) as usize) + 512
    }

    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::AwaitConnack | State::Connected
        )
    }

    #[inline]
    pub fn frame_fits(&self) -> bool {
        let need = self.frames[self.next_frame].len();
        self.wbuf.capacity() - self.wbuf.len() >= need
    }
}
