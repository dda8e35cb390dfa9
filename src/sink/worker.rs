//! One sink worker: everything one core owns.
//!
//! A worker is a single `mio::Poll` loop over the connections the acceptor hands it through a
//! bounded channel. It owns a slab of connections indexed by `Token`, one 64 KiB read scratch
//! buffer, the delayed-ack FIFO and its own counters; it shares only the stop flag, the start
//! instant (so stalls line up across workers) and a block of atomics it publishes its
//! counters to once per wakeup. After a connection's buffers have grown to its traffic,
//! nothing is allocated per message: payloads are skipped where they lie in the scratch
//! buffer, acks are encoded into the connection's write buffer, and all acks produced in one
//! wakeup go out in one `write` per connection.
//!
//! Bounds and what happens at them:
//! - Read leftover (`Conn::rbuf`): only a partial packet is kept between reads, and the
//!   decoder rejects a remaining length above [`mqtt::MAX_PACKET_BYTES`], so it never holds
//!   more than one maximal frame. Over that, or on any malformed byte: close, count it.
//!   Together, the leftovers of every connection of every worker (their capacity) stay within
//!   `Shared::max_buffered_bytes`: a leftover is grown only after its growth is taken from
//!   that budget, and a connection whose growth does not fit is closed and counted
//!   (`over_memory`); its bytes go back to the budget when it closes.
//! - Write buffer (`Conn::wbuf`): when unsent acks reach [`WBUF_HIGH_BYTES`] (the peer is not
//!   reading), the worker first tries to write, then stops reading that connection until
//!   the socket drains. Replies are never larger than the requests that caused them, so one
//!   read adds at most one read's worth; delayed acks that fall due are always appended.
//! - Delayed-ack FIFO: fixed capacity. The worker reads a connection only while the FIFO
//!   has room for the most acks one read can produce ([`ACKS_PER_READ_MAX`]); otherwise the
//!   read waits until acks fall due and free space. No ack is ever dropped.
//! - Stall: during a window no socket is read and no delayed ack is sent; both resume after.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use mio::{Interest, Poll, Token};

use super::acks::{AckKind, AckQueue, DelayedAck};
use super::stall::Stall;
use super::SinkTotals;
use crate::mqtt::{self, Packet, ProtocolError};
use crate::precise_poll::PrecisePoll;
use crate::transport::rx_stamp::{self, RealClock};

/// Token of the waker the acceptor and the stop path use.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Per-worker read scratch buffer; every socket is read through it.
pub(crate) const SCRATCH_BYTES: usize = 64 * 1024;
/// Reads of a connection pause while this many ack bytes are unsent to it.
pub(crate) const WBUF_HIGH_BYTES: usize = 64 * 1024;
/// Write buffer reserved when a connection is adopted; it grows once if the peer lags.
const WBUF_INITIAL_BYTES: usize = 1024;
/// Buffers of a closed connection larger than this are freed rather than kept for reuse.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;
/// Most acks one read can produce: the smallest ack-producing packet is a 4-byte PUBREL (a
/// QoS 1/2 PUBLISH takes at least 7), plus one packet completed from the previous leftover.
pub(crate) const ACKS_PER_READ_MAX: usize = SCRATCH_BYTES / 4 + 1;
/// Most events handled per poll.
const EVENTS: usize = 1024;
/// With `--ack-delay`, a worker stops sleeping this long before an ack is due and polls
/// without blocking until it is. A sleep ends late by the timer slack (50 µs) plus the
/// scheduler's wakeup delay (tens to hundreds of µs on a VM), and that lateness would read as
/// the broker's; the sink is the reference the generator is calibrated against, so it spends
/// CPU instead, within a budget: at most `ACK_SPIN_BUDGET_NS` of polling per
/// `ACK_SPIN_WINDOW_NS` (a quarter of a core per worker). Past it, the worker sleeps to the due
/// time itself until the next window, as without the spin.
const ACK_SPIN_NS: u64 = 200_000;
const ACK_SPIN_WINDOW_NS: u64 = 100_000_000;
const ACK_SPIN_BUDGET_NS: u64 = 25_000_000;
/// The stop flag is checked at least this often even without a wake-up.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// What all workers and the acceptor share for the whole run.
#[derive(Debug)]
pub(crate) struct Shared {
    pub stop: AtomicBool,
    /// Stall windows are counted from here, the same instant for every worker.
    pub started: Instant,
    pub stall: Option<Stall>,
    pub ack_delay_ns: u64,
    /// `--tls-cert`/`--tls-key`: connections speak TLS.
    pub tls: Option<super::tls::SinkTls>,
    /// `--websocket`: connections speak MQTT over WebSocket.
    pub websocket: bool,
    /// Bound on the bytes of every connection's read leftover together.
    pub max_buffered_bytes: usize,
    /// Bytes of read leftovers held now (their capacity), over all workers.
    pub buffered_bytes: AtomicUsize,
}

impl Shared {
    /// Takes `bytes` from the leftover budget; false (nothing taken) when they do not fit.
    fn take_buffered(&self, bytes: usize) -> bool {
        let mut held = self.buffered_bytes.load(Ordering::Relaxed);
        loop {
            let Some(after) = held
                .checked_add(bytes)
                .filter(|&after| after <= self.max_buffered_bytes)
            else {
                return false;
            };
            match self.buffered_bytes.compare_exchange_weak(
                held,
                after,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => held = now,
            }
        }
    }

    fn give_back_buffered(&self, bytes: usize) {
        self.buffered_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A read leftover would grow past the bytes all connections may hold together.
struct OverMemory;

/// Why the bytes just read closed the connection.
enum ConsumeError {
    Protocol,
    OverMemory,
}

impl From<ProtocolError> for ConsumeError {
    fn from(_: ProtocolError) -> ConsumeError {
        ConsumeError::Protocol
    }
}

impl From<OverMemory> for ConsumeError {
    fn from(_: OverMemory) -> ConsumeError {
        ConsumeError::OverMemory
    }
}

impl Shared {
    pub fn elapsed_ns(&self) -> u64 {
        super::stall::duration_ns(self.started.elapsed())
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One worker's counters as seen from other threads. Stored (not added) once per wakeup from
/// the worker's local [`SinkTotals`]; aligned to its own cache lines so workers never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerCounters {
    connections: AtomicU64,
    open_connections: AtomicU64,
    connects: AtomicU64,
    publishes: [AtomicU64; 3],
    bytes: AtomicU64,
    subscribes: AtomicU64,
    malformed: AtomicU64,
    over_memory: AtomicU64,
}

impl WorkerCounters {
    fn store(&self, t: &SinkTotals) {
        let relaxed = Ordering::Relaxed;
        self.connections.store(t.connections, relaxed);
        self.open_connections.store(t.open_connections, relaxed);
        self.connects.store(t.connects, relaxed);
        for (atomic, &count) in self.publishes.iter().zip(&t.publishes) {
            atomic.store(count, relaxed);
        }
        self.bytes.store(t.bytes, relaxed);
        self.subscribes.store(t.subscribes, relaxed);
        self.over_memory.store(t.over_memory, relaxed);
        // Release: a reader that sees this count sees everything stored above.
        self.malformed.store(t.malformed, Ordering::Release);
    }

    /// Add this worker's counters into `sum`.
    pub fn add_to(&self, sum: &mut SinkTotals) {
        let relaxed = Ordering::Relaxed;
        sum.malformed += self.malformed.load(Ordering::Acquire);
        sum.connections += self.connections.load(relaxed);
        sum.open_connections += self.open_connections.load(relaxed);
        sum.connects += self.connects.load(relaxed);
        for (total, atomic) in sum.publishes.iter_mut().zip(&self.publishes) {
            *total += atomic.load(relaxed);
        }
        sum.bytes += self.bytes.load(relaxed);
        sum.subscribes += self.subscribes.load(relaxed);
        sum.over_memory += self.over_memory.load(relaxed);
    }
}

/// One client connection. A slot outlives its connections: when one closes, the next adopted
/// stream reuses the slot and its buffers, and `generation` moves on.
#[derive(Debug, Default)]
struct Conn {
    stream: Option<TcpStream>,
    /// `--tls-cert`: the TLS session of this connection.
    tls: Option<Box<rustls::ServerConnection>>,
    /// `--websocket`: the WebSocket state of this connection.
    ws: Option<Box<crate::transport::Ws>>,
    generation: u32,
    /// Bytes of a packet not yet complete, kept between reads. Its capacity is taken from
    /// the budget of all connections (`Shared::take_buffered`) before it grows.
    rbuf: Vec<u8>,
    /// Acks not yet written to the socket.
    wbuf: Vec<u8>,
    /// CONNECT seen: anything else before it is a protocol error (section 3.1).
    connected: bool,
    /// The protocol version of the CONNECT: every answer is in that version (MQTT 5: reason
    /// codes and property length 0). Until CONNECT, the MQTT 5 decoder reads the first
    /// packet, since it decodes a CONNECT of any level.
    version: mqtt::Version,
    /// Reading stopped before `WouldBlock` (backpressure or stall): no edge will come for the
    /// bytes still in the socket, so the worker must come back by itself.
    read_blocked: bool,
    /// The slot is in `Worker::blocked` (an entry per slot at most).
    in_blocked_list: bool,
    /// The slot is in `Worker::dirty` (an entry per slot at most).
    in_dirty_list: bool,
}

pub(crate) struct Worker {
    id: usize,
    poll: Poll,
    /// Waits to the nanosecond (delayed acks are due at exact times); this wakeup's events.
    waiter: PrecisePoll,
    inbox: Receiver<TcpStream>,
    shared: Arc<Shared>,
    counters: Arc<[WorkerCounters]>,
    conns: Vec<Conn>,
    /// Slots of closed connections, reused first.
    free: Vec<u32>,
    /// Slots with acks to write at the end of this wakeup.
    dirty: Vec<u32>,
    /// Slots whose reading is paused (see `Conn::read_blocked`), and the spare list swapped in
    /// while they are retried. One entry per slot at most, so bounded by the slab.
    blocked: Vec<u32>,
    blocked_spare: Vec<u32>,
    scratch: Box<[u8]>,
    /// Granted QoS codes of the SUBSCRIBE being answered (grows to the largest one, once).
    suback_codes: Vec<u8>,
    /// Delayed acks; allocated only when `--ack-delay` is set.
    acks: AckQueue,
    /// Maps the kernel's receive stamps onto `Shared::elapsed_ns`; sampled at every wakeup.
    real_clock: RealClock,
    /// The CPU budget of polling for due acks (`ACK_SPIN_NS`).
    spin: SpinBudget,
    stalled: bool,
    totals: SinkTotals,
}

impl Worker {
    /// Build a worker; allocates its scratch buffer and its share of the ack FIFO.
    pub fn new(
        id: usize,
        poll: Poll,
        inbox: Receiver<TcpStream>,
        shared: Arc<Shared>,
        counters: Arc<[WorkerCounters]>,
        ack_queue_capacity: usize,
    ) -> Worker {
        Worker {
            id,
            poll,
            waiter: PrecisePoll::new(EVENTS),
            inbox,
            shared,
            counters,
            conns: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            blocked: Vec::new(),
            blocked_spare: Vec::new(),
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            suback_codes: Vec::new(),
            acks: AckQueue::with_capacity(ack_queue_capacity),
            real_clock: RealClock::default(),
            spin: SpinBudget::default(),
            stalled: false,
            totals: SinkTotals::default(),
        }
    }

    /// Serve connections until the stop flag is raised, then close them all.
    pub fn run(mut self) {
        while !self.shared.stopping() {
            let now_ns = self.shared.elapsed_ns();
            self.stalled = self.is_stalled(now_ns);
            self.adopt_new_connections();
            if !self.stalled {
                self.emit_due_acks(now_ns);
                self.resume_blocked();
            }
            self.publish_and_flush();
            if let Err(e) = self.poll_once() {
                eprintln!("sink worker {}: poll failed: {e}", self.id);
                break;
            }
            self.publish_and_flush();
        }
        self.close_all();
    }

    fn is_stalled(&self, now_ns: u64) -> bool {
        self.shared
            .stall
            .is_some_and(|stall| stall.is_stalled_at(now_ns))
    }

    /// Counters are published before the acks of the same wakeup are written, so a client
    /// that has received an ack sees its PUBLISH counted in `SinkHandle::totals`.
    fn publish_and_flush(&mut self) {
        self.counters[self.id].store(&self.totals);
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let slot = slot as usize;
            self.conns[slot].in_dirty_list = false;
            self.flush(slot);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn poll_once(&mut self) -> io::Result<()> {
        let (timeout, spinning) = self.poll_timeout();
        let polled_from_ns = self.shared.elapsed_ns();
        let fired = self.waiter.wait(&self.poll, Some(timeout))?;
        if spinning {
            self.spin.spent(self.shared.elapsed_ns() - polled_from_ns);
        }
        if self.shared.ack_delay_ns > 0 {
            let shared = &self.shared;
            self.real_clock.sample(|| shared.elapsed_ns());
        }
        self.stalled = self.is_stalled(self.shared.elapsed_ns());
        for i in 0..fired {
            let event = self.waiter.fired(i);
            if event.token != WAKER {
                self.on_event(event.token.0, event.readable, event.writable);
            }
        }
        Ok(())
    }

    /// Sleep until the next housekeeping tick, delayed ack or stall edge, whichever is first;
    /// true when the wait is cut short to poll for a due ack (`ACK_SPIN_NS`).
    fn poll_timeout(&mut self) -> (Duration, bool) {
        let now_ns = self.shared.elapsed_ns();
        let mut spinning = false;
        let mut wait_ns = super::stall::duration_ns(HOUSEKEEPING);
        if let Some(stall) = self.shared.stall {
            wait_ns = wait_ns.min(stall.next_change_in_ns(now_ns));
        }
        if !self.stalled {
            if let Some(due_ns) = self.acks.next_due_ns() {
                // Wake a little ahead and poll without sleeping for the rest (see
                // ACK_SPIN_NS): the ack leaves at its due time, not a wakeup later.
                let ahead_ns = if self.spin.allowed(now_ns) {
                    ACK_SPIN_NS
                } else {
                    0
                };
                let sleep_until = due_ns.saturating_sub(ahead_ns);
                if sleep_until <= now_ns && due_ns > now_ns {
                    spinning = true;
                }
                wait_ns = wait_ns.min(sleep_until.saturating_sub(now_ns));
            }
        }
        // An ack is sent only once it is due (`emit_due_acks`), never early.
        (Duration::from_nanos(wait_ns), spinning)
    }

    // ---- connections --------------------------------------------------------------------

    /// Register every stream the acceptor has queued for this worker.
    fn adopt_new_connections(&mut self) {
        while let Ok(mut stream) = self.inbox.try_recv() {
            let slot = self
                .free
                .pop()
                .map_or(self.conns.len(), |slot| slot as usize);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .register(&mut stream, Token(slot), interest)
                .is_err()
            {
                // Dropping the stream closes it; the client sees a reset, as from a full broker.
                if slot < self.conns.len() {
                    self.free.push(slot as u32);
                }
                continue;
            }
            if slot == self.conns.len() {
                self.conns.push(Conn::default());
            }
            let tls = self.shared.tls.as_ref().and_then(|tls| tls.accept());
            let conn = &mut self.conns[slot];
            conn.stream = Some(stream);
            conn.tls = tls;
            conn.ws = self
                .shared
                .websocket
                .then(|| Box::new(crate::transport::Ws::server()));
            conn.connected = false;
            conn.read_blocked = false;
            conn.wbuf.reserve(WBUF_INITIAL_BYTES);
            self.totals.connections += 1;
            self.totals.open_connections += 1;
        }
    }

    /// Close a connection; owed delayed acks are skipped when they fall due.
    fn close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let Some(mut stream) = conn.stream.take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut stream);
        conn.tls = None;
        conn.ws = None;
        conn.generation = conn.generation.wrapping_add(1);
        conn.connected = false;
        conn.read_blocked = false;
        let held = conn.rbuf.capacity();
        conn.rbuf = Vec::new();
        self.shared.give_back_buffered(held);
        reset_buffer(&mut conn.wbuf);
        self.totals.open_connections -= 1;
        self.free.push(slot as u32);
    }

    fn close_all(&mut self) {
        for slot in 0..self.conns.len() {
            self.close(slot);
        }
        self.counters[self.id].store(&self.totals);
    }

    fn on_event(&mut self, slot: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if conn.stream.is_none() {
            return; // A spurious or stale event for a closed slot.
        }
        if writable {
            self.flush(slot);
        }
        if readable || self.conns[slot].read_blocked {
            self.read_ready(slot);
        }
    }

    // ---- reading ------------------------------------------------------------------------

    /// Whether `slot` may be read now; tries to write first if its buffer is full.
    fn can_read(&mut self, slot: usize) -> bool {
        if self.stalled {
            return false;
        }
        if self.shared.ack_delay_ns > 0 && self.acks.free() < ACKS_PER_READ_MAX {
            return false;
        }
        if self.conns[slot].wbuf.len() >= WBUF_HIGH_BYTES {
            self.flush(slot);
            return self.conns[slot].wbuf.len() < WBUF_HIGH_BYTES;
        }
        true
    }

    fn block(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        conn.read_blocked = true;
        if !conn.in_blocked_list {
            conn.in_blocked_list = true;
            self.blocked.push(slot as u32);
        }
    }

    /// Retry the connections whose reads were paused; those still held up stay listed.
    fn resume_blocked(&mut self) {
        if self.blocked.is_empty() {
            return;
        }
        let mut retry = std::mem::take(&mut self.blocked);
        self.blocked = std::mem::take(&mut self.blocked_spare);
        for &slot in &retry {
            let slot = slot as usize;
            self.conns[slot].in_blocked_list = false;
            if self.conns[slot].read_blocked && self.conns[slot].stream.is_some() {
                self.read_ready(slot);
            }
        }
        retry.clear();
        self.blocked_spare = retry;
    }

    /// Read until `WouldBlock`, or until backpressure or a stall says stop.
    fn read_ready(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        loop {
            if !self.can_read(slot) {
                self.block(slot);
                break;
            }
            let conn = &mut self.conns[slot];
            let Some(stream) = conn.stream.as_mut() else {
                break;
            };
            let got = match conn.tls.as_mut() {
                Some(tls) => super::tls::read(tls, stream, &mut scratch).map(|n| (n, None)),
                None => rx_stamp::recv(stream.as_raw_fd(), &mut scratch),
            };
            if conn.tls.as_ref().is_some_and(|tls| tls.wants_write()) {
                self.mark_dirty(slot);
            }
            match got {
                Ok((0, _)) => {
                    self.close(slot);
                    break;
                }
                Ok((n, stamp)) => {
                    // `--ack-delay` counts from when the packet arrived, not from this read
                    // (without a delay no ack is timed: no clock is read).
                    let arrived_ns = match self.shared.ack_delay_ns {
                        0 => 0,
                        _ => self.real_clock.arrival_ns(stamp, self.shared.elapsed_ns()),
                    };
                    self.totals.bytes += n as u64;
                    let Some((n, closing)) = self.unwrap_ws(slot, &mut scratch[..n]) else {
                        self.close(slot);
                        break;
                    };
                    match self.consume(slot, &scratch[..n], arrived_ns) {
                        Ok(()) => {}
                        Err(ConsumeError::Protocol) => {
                            self.totals.malformed += 1;
                            self.close(slot);
                        }
                        Err(ConsumeError::OverMemory) => {
                            self.totals.over_memory += 1;
                            self.close(slot);
                        }
                    }
                    if closing && self.conns[slot].stream.is_some() {
                        self.flush(slot);
                        self.close(slot);
                    }
                    if self.conns[slot].stream.is_none() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conns[slot].read_blocked = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(slot);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// `--websocket`: the upgrade request, then frames decoded in place; returns how many MQTT
    /// bytes are at the front of `buf` and whether the client's close frame came after them
    /// (the connection closes once they are handled and the close is echoed), or None when
    /// the connection must close at once (a bad request or frame).
    fn unwrap_ws(&mut self, slot: usize, buf: &mut [u8]) -> Option<(usize, bool)> {
        let conn = &mut self.conns[slot];
        let Some(ws) = conn.ws.as_mut() else {
            return Some((buf.len(), false));
        };
        let result = super::ws::unwrap(ws, buf);
        let closing = ws.close_received.is_some();
        if ws.wants_write() {
            self.mark_dirty(slot);
        }
        match result {
            Ok(n) => Some((n, closing)),
            Err(_) => {
                self.totals.malformed += 1;
                None
            }
        }
    }

    /// Handle the bytes just read, after any partial packet kept from the previous read.
    fn consume(&mut self, slot: usize, fresh: &[u8], now_ns: u64) -> Result<(), ConsumeError> {
        let mut leftover = std::mem::take(&mut self.conns[slot].rbuf);
        let result = if leftover.is_empty() {
            self.handle_packets(slot, fresh, now_ns)
                .map_err(ConsumeError::from)
                .and_then(|used| {
                    self.grow_leftover(&mut leftover, fresh.len() - used)?;
                    leftover.extend_from_slice(&fresh[used..]);
                    Ok(())
                })
        } else {
            match self.grow_leftover(&mut leftover, fresh.len()) {
                Ok(()) => {
                    leftover.extend_from_slice(fresh);
                    self.handle_packets(slot, &leftover, now_ns)
                        .map(|used| drop(leftover.drain(..used)))
                        .map_err(ConsumeError::from)
                }
                Err(over) => Err(over.into()),
            }
        };
        let conn = &mut self.conns[slot];
        if conn.stream.is_some() {
            conn.rbuf = leftover;
        } else {
            // Closed while handling (DISCONNECT): its leftover goes back to the budget here.
            self.shared.give_back_buffered(leftover.capacity());
        }
        result
    }

    /// Makes room for `more` bytes in `leftover`, its growth taken from the budget of all
    /// connections first. `reserve_exact` makes the capacity exactly what was taken.
    fn grow_leftover(&self, leftover: &mut Vec<u8>, more: usize) -> Result<(), OverMemory> {
        let needed = leftover.len() + more;
        let before = leftover.capacity();
        if needed <= before {
            return Ok(());
        }
        if !self.shared.take_buffered(needed - before) {
            return Err(OverMemory);
        }
        leftover.reserve_exact(more);
        debug_assert_eq!(leftover.capacity(), needed);
        Ok(())
    }

    /// Handle every whole packet at the front of `buf`; returns the bytes used.
    fn handle_packets(
        &mut self,
        slot: usize,
        buf: &[u8],
        now_ns: u64,
    ) -> Result<usize, ProtocolError> {
        let mut used = 0;
        while used < buf.len() {
            let conn = &self.conns[slot];
            let version = if conn.connected {
                conn.version
            } else {
                mqtt::Version::V5
            };
            let Some((packet, n)) = version.decode(&buf[used..])? else {
                break;
            };
            used += n;
            self.on_packet(slot, packet, now_ns)?;
            if self.conns[slot].stream.is_none() {
                return Ok(buf.len());
            }
        }
        Ok(used)
    }

    // ---- answering ----------------------------------------------------------------------

    fn on_packet(
        &mut self,
        slot: usize,
        packet: Packet<'_>,
        now_ns: u64,
    ) -> Result<(), ProtocolError> {
        let conn = &mut self.conns[slot];
        match packet {
            Packet::Connect { .. } if conn.connected => {
                // Section 3.1.0-2: a second CONNECT is a protocol violation.
                return Err(ProtocolError("second CONNECT on one connection"));
            }
            Packet::Connect { protocol_level, .. } => {
                conn.connected = true;
                self.totals.connects += 1;
                if protocol_level == mqtt::v5::PROTOCOL_LEVEL {
                    conn.version = mqtt::Version::V5;
                    // Topic Alias Maximum 65535: the sink discards topics, so it accepts any
                    // alias, and `--topic-alias` can be measured against it.
                    mqtt::v5::connect::encode_connack_with_topic_aliases(
                        &mut conn.wbuf,
                        false,
                        0,
                        u16::MAX,
                    );
                } else {
                    conn.version = mqtt::Version::V311;
                    mqtt::connect::encode_connack(&mut conn.wbuf, false, 0);
                }
            }
            _ if !conn.connected => {
                // Section 3.1.0-1: the first packet from a client must be CONNECT.
                return Err(ProtocolError("packet before CONNECT"));
            }
            Packet::Publish { qos, pkid, .. } => {
                self.totals.publishes[usize::from(qos.min(2))] += 1;
                match qos {
                    1 => self.acknowledge(slot, AckKind::PubAck, pkid, now_ns),
                    2 => self.acknowledge(slot, AckKind::PubRec, pkid, now_ns),
                    _ => return Ok(()),
                }
            }
            Packet::PubRel { pkid, .. } => self.acknowledge(slot, AckKind::PubComp, pkid, now_ns),
            Packet::Subscribe { pkid, filters } => {
                self.totals.subscribes += 1;
                // Grant every filter the QoS it asked for (section 3.9.3).
                self.suback_codes.clear();
                self.suback_codes
                    .extend(mqtt::subscribe::filters(filters).map(|(_, qos)| qos));
                match conn.version {
                    mqtt::Version::V311 => {
                        mqtt::subscribe::encode_suback(&mut conn.wbuf, pkid, &self.suback_codes)
                    }
                    mqtt::Version::V5 => {
                        mqtt::v5::subscribe::encode_suback(&mut conn.wbuf, pkid, &self.suback_codes)
                    }
                }
            }
            Packet::Unsubscribe { pkid, filters } => match conn.version {
                mqtt::Version::V311 => mqtt::subscribe::encode_unsuback(&mut conn.wbuf, pkid),
                mqtt::Version::V5 => {
                    mqtt::v5::subscribe::encode_unsuback(&mut conn.wbuf, pkid, filters)
                }
            },
            Packet::PingReq => mqtt::connect::encode_pingresp(&mut conn.wbuf),
            Packet::Disconnect { .. } => {
                // Section 3.14.4: the server closes the connection. Acks still owed are moot.
                self.flush(slot);
                self.close(slot);
                return Ok(());
            }
            _ => return Err(ProtocolError("server-to-client packet sent by a client")),
        }
        self.mark_dirty(slot);
        Ok(())
    }

    /// Send an ack now, or queue it to be sent `ack_delay` after `now_ns`.
    fn acknowledge(&mut self, slot: usize, kind: AckKind, pkid: u16, now_ns: u64) {
        if self.shared.ack_delay_ns > 0 {
            let ack = DelayedAck {
                due_ns: now_ns.saturating_add(self.shared.ack_delay_ns),
                slot: slot as u32,
                generation: self.conns[slot].generation,
                pkid,
                kind,
            };
            // `can_read` keeps room for every ack one read can produce, so this cannot fail;
            // if it ever did, an early ack is better than a lost one.
            if self.acks.push(ack).is_ok() {
                return;
            }
            debug_assert!(
                false,
                "delayed-ack FIFO overflowed despite the read reservation"
            );
        }
        let conn = &mut self.conns[slot];
        encode_ack(&mut conn.wbuf, conn.version, kind, pkid);
    }

    /// Move every delayed ack that is due into its connection's write buffer.
    fn emit_due_acks(&mut self, now_ns: u64) {
        while let Some(ack) = self.acks.pop_due(now_ns) {
            let slot = ack.slot as usize;
            let conn = &mut self.conns[slot];
            if conn.generation != ack.generation || conn.stream.is_none() {
                continue; // Owed to a connection that has closed since.
            }
            encode_ack(&mut conn.wbuf, conn.version, ack.kind, ack.pkid);
            self.mark_dirty(slot);
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if !conn.in_dirty_list {
            conn.in_dirty_list = true;
            self.dirty.push(slot as u32);
        }
    }

    /// Write the buffer until it is empty or the socket would block.
    fn flush(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        if let Some(tls) = conn.tls.as_mut() {
            return match super::tls::flush(tls, conn.ws.as_deref_mut(), stream, &mut conn.wbuf) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => self.close(slot),
                _ => {}
            };
        }
        if let Some(ws) = conn.ws.as_mut() {
            if crate::transport::flush_ws(ws, stream, &mut conn.wbuf).is_err() {
                self.close(slot);
            }
            return;
        }
        loop {
            let conn = &mut self.conns[slot];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            if conn.wbuf.is_empty() {
                return;
            }
            match stream.write(&conn.wbuf) {
                Ok(0) => return self.close(slot),
                Ok(n) => drop(conn.wbuf.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(slot),
            }
        }
    }
}

/// An ack in the connection's version: MQTT 5 with reason 0x00 and property length 0, as a
/// broker sends it, so a generator's MQTT 5 decoder is measured on the long form.
fn encode_ack(out: &mut Vec<u8>, version: mqtt::Version, kind: AckKind, pkid: u16) {
    match (version, kind) {
        (mqtt::Version::V311, AckKind::PubAck) => mqtt::ack::encode_puback(out, pkid),
        (mqtt::Version::V311, AckKind::PubRec) => mqtt::ack::encode_pubrec(out, pkid),
        (mqtt::Version::V311, AckKind::PubComp) => mqtt::ack::encode_pubcomp(out, pkid),
        (mqtt::Version::V5, AckKind::PubAck) => mqtt::v5::ack::encode_puback(out, pkid, 0),
        (mqtt::Version::V5, AckKind::PubRec) => mqtt::v5::ack::encode_pubrec(out, pkid, 0),
        (mqtt::Version::V5, AckKind::PubComp) => mqtt::v5::ack::encode_pubcomp(out, pkid, 0),
    }
}

/// Empty a buffer for the slot's next connection, freeing it if it grew unusually large.
fn reset_buffer(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > KEEP_BUFFER_BYTES {
        *buf = Vec::new();
    }
}

/// How much of the current `ACK_SPIN_WINDOW_NS` went to polling for due acks.
#[derive(Debug, Default)]
struct SpinBudget {
    window_start_ns: u64,
    spent_ns: u64,
}

impl SpinBudget {
    /// Whether polling ahead of a due ack is still within this window's budget at `now_ns`.
    fn allowed(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.window_start_ns) >= ACK_SPIN_WINDOW_NS {
            self.window_start_ns = now_ns;
            self.spent_ns = 0;
        }
        self.spent_ns < ACK_SPIN_BUDGET_NS
    }

    fn spent(&mut self, ns: u64) {
        self.spent_ns += ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_for_due_acks_stops_at_its_budget_until_the_next_window() {
        let mut spin = SpinBudget::default();
        assert!(spin.allowed(1_000));
        spin.spent(ACK_SPIN_BUDGET_NS);
        assert!(!spin.allowed(ACK_SPIN_WINDOW_NS - 1));
        assert!(spin.allowed(ACK_SPIN_WINDOW_NS));
        spin.spent(ACK_SPIN_BUDGET_NS - 1);
        assert!(spin.allowed(ACK_SPIN_WINDOW_NS + 1));
    }
}
