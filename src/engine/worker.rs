//! One worker: everything one core owns.
//!
//! A worker is a single `mio::Poll` loop over a disjoint set of clients (`conns`, indexed by
//! `Token`), a timer heap for spawn and publish schedules, one read scratch buffer, and a
//! thread-local [`Recorder`]. Nothing is shared with other workers except the [`Control`]
//! (phase, message budget, waker) and the stats channel. After start-up the loop allocates
//! nothing per message: frames are copied into fixed-capacity write buffers and patched in
//! place, the in-flight table is a fixed array, and the timer heap's capacity is reserved for
//! one entry per client.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, State, WritePool};
use super::control::{Control, ABORTING, RUNNING};
use super::dial::{self, ConnectPacer};
use crate::mqtt::{self, Packet};
use crate::payload::{self, ClientVars};
use crate::plan::Plan;
use crate::stats::{Failure, Metric, Recorder};

/// Token of the control-plane waker.
const WAKER: Token = Token(usize::MAX);
/// Size of the per-worker read scratch buffer (every socket is read through it).
const SCRATCH_BYTES: usize = 64 * 1024;
/// Timeouts, keep-alive and stats shipping are checked this often.
const HOUSEKEEPING_NS: u64 = 100_000_000;
/// Most events handled per poll.
const EVENTS: usize = 1024;
/// Most messages claimed from the global budget at a time (see `budget_chunk`).
const BUDGET_CHUNK_MAX: u64 = 32;

/// Why the loop ended, for the last flush of in-flight publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Publishing normally.
    No,
    /// Stop (run time, message limit or first Ctrl-C): no new publishes, wait for acks
    /// until the deadline (ns since run start).
    Until(u64),
}

pub struct Worker {
    id: usize,
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    plan: Arc<Plan>,
    control: Arc<Control>,
    rec: Recorder,
    /// (when_ns, conn): spawn times and publish due times. One entry per client at most.
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    /// Connections to flush at the end of this iteration.
    dirty: Vec<u32>,
    /// Connections that can publish without waiting for an event (QoS 0, no interval):
    /// `ready_next` collects them, `ready` is the spare list swapped in while serving.
    ready: Vec<u32>,
    ready_next: Vec<u32>,
    /// This iteration's events, copied out of `events`: (token, readable, writable).
    fired: Vec<(Token, bool, bool)>,
    scratch: Box<[u8]>,
    local_budget: u64,
    inflight_total: u64,
    connected: u32,
    /// Clients not yet closed (waiting, connecting or connected).
    live: u32,
    published: u64,
    drain: Drain,
    interval_ns: u64,
    timeout_ns: u64,
    /// Messages claimed at a time: small enough that a small `--messages` is spread over
    /// every user (about 8 claims per user), at most `BUDGET_CHUNK_MAX`.
    budget_chunk: u64,
    next_housekeeping_ns: u64,
    /// Write buffers lent to connections only while they have bytes queued (see `conn.rs`).
    pool: WritePool,
    /// This worker's share of `--connect-rate`.
    pacer: ConnectPacer,
}

impl Worker {
    /// Build a worker for the given client indexes of this process (`engine::clients_of`).
    /// Allocates everything the run needs. A shard's client i is client
    /// `plan.client_index_offset + i` of the whole plan (its id, topic and `{i}`); its spawn
    /// time still counts from this process's first client.
    pub fn new(
        id: usize,
        plan: Arc<Plan>,
        control: Arc<Control>,
        clients: &[u64],
        addrs: &[SocketAddr],
        rec: Recorder,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut conns = Vec::with_capacity(clients.len());
        let mut timers = BinaryHeap::with_capacity(clients.len() + 1);
        for (slot, &local) in clients.iter().enumerate() {
            let index = plan.client_index_offset + local;
            let client_id = client_id_of(&plan, index);
            let vars = ClientVars {
                index,
                token: plan.token_for(index),
                client_id: &client_id,
            };
            let frames = payload::build_frames(&plan, &vars);
            let addr = addrs[(index % addrs.len() as u64) as usize];
            let source = (!plan.bind.is_empty())
                .then(|| plan.bind[(index % plan.bind.len() as u64) as usize]);
            conns.push(Conn::new(index, addr, source, frames, plan.max_inflight));
            let spawn_ns = (local as f64 / plan.spawn_rate * 1e9) as u64;
            timers.push(Reverse((spawn_ns, slot as u32)));
        }
        let n = conns.len();
        let buffer_bytes = conns
            .iter()
            .map(|c| c.write_capacity(plan.max_inflight))
            .max()
            .unwrap_or(0);
        let threads = plan.threads.max(1);
        let worker = Worker {
            pool: WritePool::new(buffer_bytes, n),
            pacer: ConnectPacer::new(plan.connect_rate, threads),
            id,
            poll,
            events: Events::with_capacity(EVENTS),
            fired: Vec::with_capacity(EVENTS),
            live: n as u32,
            conns,
            interval_ns: plan.interval.as_nanos() as u64,
            budget_chunk: budget_chunk(&plan),
            timeout_ns: plan.timeout.as_nanos() as u64,
            plan,
            control,
            rec,
            timers,
            dirty: Vec::with_capacity(n),
            ready: Vec::with_capacity(n),
            ready_next: Vec::with_capacity(n),
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            local_budget: 0,
            inflight_total: 0,
            connected: 0,
            published: 0,
            drain: Drain::No,
            next_housekeeping_ns: 0,
        };
        Ok((worker, waker))
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// Publishes handed to sockets so far by this worker.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Run until the run is over for this worker, then report and disconnect.
    pub fn run(self) {
        self.run_observed(|_| {});
    }

    /// As `run`, calling `observe(published)` once per loop iteration on this thread (the
    /// zero-allocation test uses it to read a thread-local allocation counter).
    pub fn run_observed(mut self, mut observe: impl FnMut(u64)) {
        loop {
            let now = self.control.now_ns();
            if self.should_end(now) {
                break;
            }
            self.fire_timers(now);
            if now >= self.next_housekeeping_ns {
                self.housekeeping(now);
                self.next_housekeeping_ns = now + HOUSEKEEPING_NS;
            }
            self.serve_ready();
            self.flush_dirty();
            if let Err(e) = self.poll_once() {
                eprintln!("worker {}: poll failed: {e}", self.id);
                break;
            }
            self.flush_dirty();
            observe(self.published);
        }
        self.shutdown();
    }

    /// Decide whether to start draining or to stop the loop.
    fn should_end(&mut self, now: u64) -> bool {
        let phase = self.control.phase();
        if phase == ABORTING {
            return true;
        }
        if self.drain == Drain::No {
            let messages_done = self.control.budget_exhausted() && self.local_budget == 0;
            if phase != RUNNING || messages_done {
                self.start_drain(now);
            } else {
                return self.live == 0;
            }
        }
        match self.drain {
            Drain::Until(deadline) => {
                now >= deadline || (self.inflight_total == 0 && self.all_written())
            }
            Drain::No => false,
        }
    }

    fn all_written(&self) -> bool {
        self.conns
            .iter()
            .all(|c| c.wbuf.is_empty() || c.state != State::Connected)
    }

    /// Stop publishing: clients that have not connected yet never will.
    fn start_drain(&mut self, now: u64) {
        self.drain = Drain::Until(now + self.plan.stop_timeout.as_nanos() as u64);
        self.control.give_back(self.local_budget);
        self.local_budget = 0;
        for ci in 0..self.conns.len() {
            match self.conns[ci].state {
                State::Waiting => self.close(ci, None),
                State::Connecting | State::AwaitConnack => self.close(ci, None),
                _ => {}
            }
        }
    }

    fn poll_once(&mut self) -> io::Result<()> {
        let timeout = self.poll_timeout();
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        // Handling an event needs `&mut self`, so copy them out first (capacity reserved).
        self.fired.clear();
        for e in self.events.iter() {
            let closed = e.is_error() || e.is_read_closed() || e.is_write_closed();
            self.fired.push((
                e.token(),
                e.is_readable() || closed,
                e.is_writable() || closed,
            ));
        }
        for i in 0..self.fired.len() {
            let (token, readable, writable) = self.fired[i];
            if token != WAKER && token.0 < self.conns.len() {
                self.on_event(token.0, readable, writable);
            }
        }
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready_next.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = self.control.now_ns();
        let mut next = self.next_housekeeping_ns;
        if let Some(Reverse((when, _))) = self.timers.peek() {
            next = next.min(*when);
        }
        Some(Duration::from_nanos(next.saturating_sub(now)))
    }

    fn fire_timers(&mut self, now: u64) {
        while let Some(&Reverse((when, ci))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let ci = ci as usize;
            match self.conns[ci].state {
                State::Waiting if self.drain == Drain::No => self.spawn_due(ci, now),
                State::Connected => {
                    self.conns[ci].timer_armed = false;
                    self.pump(ci, now);
                }
                _ => {}
            }
        }
    }

    fn on_event(&mut self, ci: usize, readable: bool, writable: bool) {
        let now = self.control.now_ns();
        match self.conns[ci].state {
            State::Connecting => self.finish_connect(ci, now),
            State::AwaitConnack | State::Connected => {
                if readable {
                    self.read_ready(ci, now);
                }
                if writable && self.conns[ci].is_open() {
                    self.mark_dirty(ci);
                    self.pump(ci, now);
                }
            }
            _ => {}
        }
    }

    // ---- connecting ---------------------------------------------------------------------

    /// A client's spawn time came: connect now, or at its `--connect-rate` slot.
    fn spawn_due(&mut self, ci: usize, now: u64) {
        if !self.conns[ci].connect_slot_reserved {
            let slot_ns = self.pacer.reserve(now);
            if slot_ns > now {
                self.conns[ci].connect_slot_reserved = true;
                self.timers.push(Reverse((slot_ns, ci as u32)));
                return;
            }
        }
        self.start_connect(ci, now);
    }

    fn start_connect(&mut self, ci: usize, now: u64) {
        let (addr, source) = (self.conns[ci].addr, self.conns[ci].source);
        let mut stream = match dial::connect(addr, source) {
            Ok(s) => s,
            Err(e) => return self.close(ci, Some(Failure::ConnectFailed(errno(&e)))),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(ci), interest)
        {
            return self.close(ci, Some(Failure::ConnectFailed(errno(&e))));
        }
        let c = &mut self.conns[ci];
        c.stream = Some(stream);
        c.state = State::Connecting;
        c.connect_started_ns = now;
    }

    /// A non-blocking connect is complete only after writable + `take_error` + `peer_addr`.
    fn finish_connect(&mut self, ci: usize, now: u64) {
        let Some(stream) = self.conns[ci].stream.as_ref() else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.close(ci, Some(Failure::ConnectFailed(errno(&e)))),
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // spurious wakeup
            Err(e) => return self.close(ci, Some(Failure::ConnectFailed(errno(&e)))),
        }
        let _ = stream.set_nodelay(true);
        self.send_connect(ci, now);
    }

    fn send_connect(&mut self, ci: usize, now: u64) {
        let plan = Arc::clone(&self.plan);
        let c = &mut self.conns[ci];
        let client_id = client_id_of(&plan, c.index);
        c.lend_wbuf(&mut self.pool);
        let connect = mqtt::connect::Connect {
            client_id: &client_id,
            username: plan.username_for(c.index),
            password: plan.password.as_deref().map(str::as_bytes),
            keep_alive_s: plan.keep_alive_s,
            clean_session: true,
        };
        mqtt::connect::encode(&mut c.wbuf, &connect);
        c.state = State::AwaitConnack;
        c.last_write_ns = now;
        self.mark_dirty(ci);
    }

    fn on_connack(&mut self, ci: usize, code: u8, now: u64) -> Result<(), Failure> {
        if self.conns[ci].state != State::AwaitConnack {
            return Err(Failure::Protocol("unexpected CONNACK"));
        }
        if code != 0 {
            return Err(Failure::ConnackRefused(code));
        }
        let c = &mut self.conns[ci];
        c.state = State::Connected;
        c.next_due_ns = now;
        let latency_ns = now.saturating_sub(c.connect_started_ns);
        self.connected += 1;
        self.rec.ok(Metric::Connect, ns_to_us(latency_ns));
        self.pump(ci, now);
        Ok(())
    }

    // ---- publishing ---------------------------------------------------------------------

    /// Publish as many messages as the schedule, the in-flight window, the write buffer and
    /// the message budget allow. At every bound the message waits; none is dropped.
    fn pump(&mut self, ci: usize, now: u64) {
        if self.conns[ci].state != State::Connected || self.drain != Drain::No {
            return;
        }
        let qos = self.plan.qos;
        let epoch_ms = self.control.start_epoch_ms + now / 1_000_000;
        loop {
            let c = &self.conns[ci];
            if self.interval_ns > 0 && c.next_due_ns > now {
                self.arm_timer(ci);
                break;
            }
            if (qos > 0 && c.inflight.is_full()) || !c.frame_fits() || !self.take_budget() {
                break;
            }
            self.publish_one(ci, now, epoch_ms);
            if self.interval_ns == 0 && qos == 0 && !self.conns[ci].frame_fits() {
                // The write buffer is full but the socket may still take more: come back
                // after this iteration's flush instead of waiting for an edge that never comes.
                self.mark_ready(ci);
                break;
            }
        }
    }

    fn publish_one(&mut self, ci: usize, now: u64, epoch_ms: u64) {
        let qos = self.plan.qos;
        let c = &mut self.conns[ci];
        let scheduled_ns = if self.interval_ns > 0 {
            c.next_due_ns
        } else {
            now
        };
        let pkid = if qos > 0 {
            self.inflight_total += 1;
            c.inflight.insert(scheduled_ns, now).unwrap_or(0)
        } else {
            0
        };
        c.seq += 1;
        c.lend_wbuf(&mut self.pool);
        c.frames[c.next_frame].write_into(&mut c.wbuf, pkid, c.seq, epoch_ms);
        c.next_frame = (c.next_frame + 1) % c.frames.len();
        c.next_due_ns += self.interval_ns;
        c.last_write_ns = now;
        let lag_us = ns_to_us(now - scheduled_ns);
        self.rec.lag(lag_us);
        self.rec.sent();
        if qos == 0 {
            // No acknowledgement at QoS 0: the "response time" is scheduled -> written.
            self.rec.ok(Metric::Publish, lag_us);
        }
        self.published += 1;
        self.mark_dirty(ci);
    }

    fn take_budget(&mut self) -> bool {
        if self.local_budget == 0 {
            self.local_budget = self.control.claim(self.budget_chunk);
            if self.local_budget == 0 {
                return false;
            }
        }
        self.local_budget -= 1;
        true
    }

    fn arm_timer(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.timer_armed {
            c.timer_armed = true;
            self.timers.push(Reverse((c.next_due_ns, ci as u32)));
        }
    }

    fn mark_dirty(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
    }

    fn mark_ready(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.ready {
            c.ready = true;
            self.ready_next.push(ci as u32);
        }
    }

    /// Give ready connections (QoS 0, no interval) a turn: flush, then fill the buffer again.
    fn serve_ready(&mut self) {
        if self.ready_next.is_empty() {
            return;
        }
        let mut ready = std::mem::take(&mut self.ready_next);
        self.ready_next = std::mem::take(&mut self.ready);
        for &ci in &ready {
            let ci = ci as usize;
            self.conns[ci].ready = false;
            let now = self.control.now_ns();
            // If the socket is full, its writable event brings the connection back.
            if self.flush(ci, now) {
                self.pump(ci, now);
            }
        }
        ready.clear();
        self.ready = ready;
    }

    fn flush_dirty(&mut self) {
        let now = self.control.now_ns();
        let mut dirty = std::mem::take(&mut self.dirty);
        for &ci in &dirty {
            let ci = ci as usize;
            self.conns[ci].dirty = false;
            self.flush(ci, now);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Write the buffer until it is empty or the socket would block. Returns true when the
    /// buffer was emptied.
    fn flush(&mut self, ci: usize, now: u64) -> bool {
        loop {
            let c = &mut self.conns[ci];
            let Some(stream) = c.stream.as_mut() else {
                return false;
            };
            if c.wbuf.is_empty() {
                c.return_wbuf(&mut self.pool);
                return true;
            }
            match stream.write(&c.wbuf) {
                Ok(0) => {
                    self.lose(ci, 0);
                    return false;
                }
                Ok(n) => {
                    c.wbuf.copy_within(n.., 0);
                    c.wbuf.truncate(c.wbuf.len() - n);
                    c.last_write_ns = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lose(ci, errno(&e));
                    return false;
                }
            }
        }
    }

    // ---- reading ------------------------------------------------------------------------

    /// Drain the socket until `WouldBlock`, decoding every whole packet.
    fn read_ready(&mut self, ci: usize, now: u64) {
        let mut scratch = std::mem::take(&mut self.scratch);
        loop {
            let Some(stream) = self.conns[ci].stream.as_mut() else {
                break;
            };
            match stream.read(&mut scratch) {
                Ok(0) => {
                    self.lose(ci, 0);
                    break;
                }
                Ok(n) => {
                    if let Err(f) = self.consume(ci, &scratch[..n], now) {
                        self.close(ci, Some(f));
                        break;
                    }
                    // A short read emptied the socket: bytes arriving later raise a new edge,
                    // so the read that would only say WouldBlock is skipped (as tokio does).
                    // Against a broker that acks one PUBLISH per write this is one syscall
                    // less per message.
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lose(ci, errno(&e));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Decode the bytes just read, after any partial packet kept from the last read.
    fn consume(&mut self, ci: usize, fresh: &[u8], now: u64) -> Result<(), Failure> {
        let mut partial = std::mem::take(&mut self.conns[ci].rbuf);
        let result = if partial.is_empty() {
            let used = self.decode_all(ci, fresh, now)?;
            partial.extend_from_slice(&fresh[used..]);
            Ok(())
        } else {
            partial.extend_from_slice(fresh);
            let used = self.decode_all(ci, &partial, now)?;
            partial.drain(..used);
            Ok(())
        };
        if let Some(c) = self.conns.get_mut(ci) {
            c.rbuf = partial;
        }
        result
    }

    /// Handle every whole packet at the front of `buf`; returns the bytes used.
    fn decode_all(&mut self, ci: usize, buf: &[u8], now: u64) -> Result<usize, Failure> {
        let mut used = 0;
        while used < buf.len() {
            match mqtt::decode(&buf[used..]) {
                Ok(Some((packet, n))) => {
                    used += n;
                    self.on_packet(ci, packet, now)?;
                    if !self.conns[ci].is_open() {
                        return Ok(buf.len());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::Protocol(e.0)),
            }
        }
        Ok(used)
    }

    fn on_packet(&mut self, ci: usize, packet: Packet<'_>, now: u64) -> Result<(), Failure> {
        match packet {
            Packet::ConnAck { code, .. } => self.on_connack(ci, code, now),
            Packet::PubAck { pkid } if self.plan.qos == 1 => Ok(self.complete(ci, pkid, now)),
            Packet::PubRec { pkid } if self.plan.qos == 2 => Ok(self.on_pubrec(ci, pkid)),
            Packet::PubComp { pkid } if self.plan.qos == 2 => Ok(self.complete(ci, pkid, now)),
            Packet::PingResp => {
                self.conns[ci].ping_sent_ns = None;
                Ok(())
            }
            Packet::Publish { qos, pkid, .. } => Ok(self.ack_incoming(ci, qos, pkid)),
            Packet::PubRel { pkid } => {
                Ok(self.reply(ci, |out| mqtt::ack::encode_pubcomp(out, pkid)))
            }
            Packet::SubAck { .. } | Packet::UnsubAck { .. } => Ok(()),
            _ => Err(Failure::Protocol("unexpected packet from the broker")),
        }
    }

    fn complete(&mut self, ci: usize, pkid: u16, now: u64) {
        // An unknown or stale id is a late ack for a publish already counted as timed out.
        if let Some(scheduled_ns) = self.conns[ci].inflight.complete(pkid) {
            self.inflight_total -= 1;
            self.rec
                .ok(Metric::Publish, ns_to_us(now.saturating_sub(scheduled_ns)));
            self.pump(ci, now);
        }
    }

    fn on_pubrec(&mut self, ci: usize, pkid: u16) {
        if self.conns[ci].inflight.mark_released(pkid) {
            self.reply(ci, |out| mqtt::ack::encode_pubrel(out, pkid));
        }
    }

    /// Broker-to-client publishes (not subscribed by v0.1 clients, but possible): ack them.
    fn ack_incoming(&mut self, ci: usize, qos: u8, pkid: u16) {
        match qos {
            1 => self.reply(ci, |out| mqtt::ack::encode_puback(out, pkid)),
            2 => self.reply(ci, |out| mqtt::ack::encode_pubrec(out, pkid)),
            _ => {}
        }
    }

    /// Queue a small control packet. The write buffer always keeps 512 bytes beyond the
    /// publish frames for these; if even that is full the reply waits for the next drain.
    fn reply(&mut self, ci: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        let c = &mut self.conns[ci];
        c.lend_wbuf(&mut self.pool);
        if c.wbuf.capacity() - c.wbuf.len() >= 8 {
            encode(&mut c.wbuf);
            self.mark_dirty(ci);
        }
    }

    // ---- housekeeping and closing -------------------------------------------------------

    /// Connect and ack timeouts, keep-alive pings, and shipping stats.
    fn housekeeping(&mut self, now: u64) {
        for ci in 0..self.conns.len() {
            match self.conns[ci].state {
                State::Connecting | State::AwaitConnack => self.check_connect_timeout(ci, now),
                State::Connected => {
                    self.expire_acks(ci, now);
                    self.keep_alive(ci, now);
                }
                _ => {}
            }
        }
        self.rec.set_connected(self.connected);
        self.rec.maybe_flush(Instant::now());
    }

    fn check_connect_timeout(&mut self, ci: usize, now: u64) {
        if now.saturating_sub(self.conns[ci].connect_started_ns) > self.timeout_ns {
            self.close(ci, Some(Failure::ConnectTimeout));
        }
    }

    fn expire_acks(&mut self, ci: usize, now: u64) {
        if self.conns[ci].inflight.is_empty() || now < self.timeout_ns {
            return;
        }
        let expired = self.conns[ci]
            .inflight
            .expire_sent_before(now - self.timeout_ns);
        for _ in 0..expired {
            self.rec.fail(Failure::AckTimeout);
        }
        if expired > 0 {
            self.inflight_total -= expired as u64;
            self.pump(ci, now);
        }
    }

    fn keep_alive(&mut self, ci: usize, now: u64) {
        let keep_alive_ns = self.plan.keep_alive_s as u64 * 1_000_000_000;
        if keep_alive_ns == 0 {
            return;
        }
        let c = &self.conns[ci];
        match c.ping_sent_ns {
            Some(sent) if now.saturating_sub(sent) > self.timeout_ns.max(keep_alive_ns) => {
                self.close(ci, Some(Failure::ConnectionLost(libc::ETIMEDOUT)));
            }
            None if now.saturating_sub(c.last_write_ns) >= keep_alive_ns => {
                self.conns[ci].ping_sent_ns = Some(now);
                self.conns[ci].last_write_ns = now;
                self.reply(ci, mqtt::connect::encode_pingreq);
            }
            _ => {}
        }
    }

    /// The connection broke: errno 0 means the broker closed it.
    fn lose(&mut self, ci: usize, errno: i32) {
        let failure = match self.conns[ci].state {
            State::Connecting => Failure::ConnectFailed(errno),
            _ => Failure::ConnectionLost(errno),
        };
        self.close(ci, Some(failure));
    }

    /// Close a client for good, recording why (None: a normal stop).
    fn close(&mut self, ci: usize, failure: Option<Failure>) {
        let c = &mut self.conns[ci];
        if c.state == State::Closed {
            return;
        }
        let lost = c.inflight.clear();
        if c.state == State::Connected {
            self.connected -= 1;
        }
        c.state = State::Closed;
        if let Some(mut stream) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        c.return_wbuf(&mut self.pool);
        c.rbuf = Vec::new();
        self.live -= 1;
        self.inflight_total -= lost as u64;
        if let Some(f) = failure {
            self.rec.fail(f);
            for _ in 0..lost {
                self.rec.fail(Failure::InflightLost);
            }
        }
    }

    /// End of the run for this worker: unacknowledged publishes become timeouts (or, after a
    /// second Ctrl-C, lost), connected clients get a DISCONNECT, the last interval is shipped.
    fn shutdown(mut self) {
        let aborted = self.control.phase() == ABORTING;
        let unacked = if aborted {
            Failure::InflightLost
        } else {
            Failure::AckTimeout
        };
        let now = self.control.now_ns();
        for ci in 0..self.conns.len() {
            let expired = self.conns[ci].inflight.clear();
            self.inflight_total -= expired as u64;
            for _ in 0..expired {
                self.rec.fail(unacked);
            }
            if self.conns[ci].state == State::Connected && !aborted {
                // Appended after whatever is still unwritten, so a half-written frame is
                // never cut: the DISCONNECT goes out only if the socket takes it all now.
                self.reply(ci, mqtt::connect::encode_disconnect);
                self.flush(ci, now);
            }
            self.close(ci, None);
        }
        self.control.give_back(self.local_budget);
        self.rec.set_connected(0);
        self.rec.finish(Instant::now());
        self.control.worker_finished();
    }
}

/// Resolve the client id template for client `index`.
pub fn client_id_of(plan: &Plan, index: u64) -> String {
    let vars = ClientVars {
        index,
        token: plan.token_for(index),
        client_id: "",
    };
    payload::render(&plan.client_id, &vars)
}

fn budget_chunk(plan: &Plan) -> u64 {
    let per_user = plan.messages.unwrap_or(u64::MAX) / (plan.users as u64 * 8).max(1);
    per_user.clamp(1, BUDGET_CHUNK_MAX)
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[inline]
fn ns_to_us(ns: u64) -> u64 {
    ns / 1_000
}
