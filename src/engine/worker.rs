//! One worker: everything one core owns.
//!
//! A worker is a single `mio::Poll` loop over a disjoint set of clients (`conns`, indexed by
//! `Token`), a timer heap for spawn and publish schedules, one read scratch buffer, and a
//! thread-local [`Recorder`]. Nothing is shared with other workers except the [`Control`]
//! (phase, message budget, waker) and the stats channel. After start-up the loop allocates
//! nothing per message: frames are copied into fixed-capacity write buffers and patched in
//! place, the in-flight table is a fixed array, and the timer heap's capacity is reserved for
//! one entry per client.
//!
//! Subscribers (`--sub-users`) are connections of the same loop with [`Role::Subscriber`]:
//! they connect first, and this worker's publishers are scheduled only once every subscriber
//! of the run has its SUBACK or has failed (`Control::subs`). Each subscriber acks what it
//! receives, records end-to-end latency from the payload marker and feeds its preallocated
//! [`SubscriberAudit`]. After the publishers finish, subscribers stay until they have what
//! they are owed or the drain timeout passes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use super::audit::SubscriberAudit;
use super::conn::{Conn, Role, State, WritePool};
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
/// `--reconnect` back-off: the first wait, doubled after every failed attempt up to the cap.
const RECONNECT_FIRST_NS: u64 = 100_000_000;
const RECONNECT_MAX_NS: u64 = 5_000_000_000;
/// A subscriber reads only while its write buffer has this much room for acknowledgements.
const SUBSCRIBER_MIN_ROOM: usize = 1024;

/// Why the loop ended, for the last flush of in-flight publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Publishing normally.
    No,
    /// Stop (run time, message limit or first Ctrl-C): no new publishes, wait for acks
    /// until the deadline (ns since run start).
    Until(u64),
    /// Publishers finished: subscribers wait for what they are owed until the deadline,
    /// which is set once every worker's publishers have finished.
    Subscribers(Option<u64>),
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
    /// Publishers not yet closed, and whether their spawn timers have been set (they wait
    /// for the subscribers).
    live_publishers: u32,
    publishers_scheduled: bool,
    /// One audit per subscriber of this worker (`Role::Subscriber::slot`); empty without
    /// `--verify`.
    audits: Vec<SubscriberAudit>,
    subscribers: u32,
    /// This worker's last contributions to `Control::subs` (settled subscribers, arrivals).
    settled_reported: u64,
    delivered_reported: u64,
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
        let sub_clients = super::clients_of(plan.sub_users, plan.threads.max(1), id);
        let mut conns = Vec::with_capacity(clients.len() + sub_clients.len());
        // Two entries per client at most: a stale publish timer and a reconnect timer.
        let mut timers = BinaryHeap::with_capacity(2 * (clients.len() + sub_clients.len()) + 1);
        for &local in clients {
            conns.push(publisher(&plan, plan.client_index_offset + local, addrs));
        }
        let mut audits = Vec::new();
        for (slot, &local) in sub_clients.iter().enumerate() {
            let index = plan.client_index_offset + local;
            let addr = addrs[(index % addrs.len() as u64) as usize];
            timers.push(Reverse((0, conns.len() as u32)));
            conns.push(Conn::subscriber(
                index,
                addr,
                source_of(&plan, index),
                slot as u32,
            ));
            if plan.verify {
                audits.push(SubscriberAudit::new(plan.users));
            }
        }
        control.subs.register_worker(sub_clients.len() as u64);
        let n = conns.len();
        let buffer_bytes = conns
            .iter()
            .filter(|c| !c.is_subscriber())
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
            live_publishers: clients.len() as u32,
            publishers_scheduled: false,
            audits,
            subscribers: sub_clients.len() as u32,
            settled_reported: 0,
            delivered_reported: 0,
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
            self.schedule_publishers();
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
            let publishers_gone = self.publishers_scheduled && self.live_publishers == 0;
            if phase != RUNNING || messages_done || publishers_gone {
                self.start_drain(now);
            } else {
                return false;
            }
        }
        match self.drain {
            Drain::Until(deadline) => {
                if now >= deadline || (self.inflight_total == 0 && self.all_written()) {
                    self.finish_publishers(now);
                }
                false
            }
            Drain::Subscribers(_) => self.subscribers_done(now),
            Drain::No => false,
        }
    }

    fn all_written(&self) -> bool {
        self.conns
            .iter()
            .all(|c| c.wbuf.is_empty() || c.state != State::Connected || c.is_subscriber())
    }

    /// Stop publishing: publishers that have not connected yet never will. Subscribers stay.
    fn start_drain(&mut self, now: u64) {
        self.drain = Drain::Until(now + self.plan.stop_timeout.as_nanos() as u64);
        self.control.give_back(self.local_budget);
        self.local_budget = 0;
        for ci in 0..self.conns.len() {
            if self.conns[ci].is_subscriber() {
                continue;
            }
            match self.conns[ci].state {
                State::Waiting => self.close(ci, None),
                State::Connecting | State::AwaitConnack => self.close(ci, None),
                _ => {}
            }
        }
    }

    /// The publishers are done (acked, or out of time: what is still in flight now counts as
    /// timed out): tell the other workers what the subscribers are owed, then drain them.
    fn finish_publishers(&mut self, _now: u64) {
        let mut owed = 0;
        for ci in 0..self.conns.len() {
            let expired = self.conns[ci].inflight.clear();
            self.inflight_total -= expired as u64;
            for _ in 0..expired {
                self.rec.fail(Failure::AckTimeout);
            }
            if let Role::Publisher { matches: true } = self.conns[ci].role {
                owed += self.conns[ci].counted;
            }
        }
        self.control.subs.publishers_finished(owed);
        self.control.wake_all();
        self.drain = Drain::Subscribers(None);
    }

    /// After the publishers: true once every subscriber (or the shared group) has what it is
    /// owed, or the drain timeout has passed since all publishers finished.
    fn subscribers_done(&mut self, now: u64) -> bool {
        if self.subscribers == 0 {
            return true;
        }
        let subs = &self.control.subs;
        if !subs.all_publishers_finished() {
            return false;
        }
        let deadline = match self.drain {
            Drain::Subscribers(Some(deadline)) => deadline,
            _ => {
                let deadline = now + self.plan.drain_timeout.as_nanos() as u64;
                self.drain = Drain::Subscribers(Some(deadline));
                deadline
            }
        };
        let owed = subs.owed();
        let (settled, delivered) = self.subscriber_progress(owed);
        subs.update_settled(self.settled_reported, settled);
        subs.update_delivered(self.delivered_reported, delivered);
        (self.settled_reported, self.delivered_reported) = (settled, delivered);
        let all_arrived = if self.plan.shared_subscription() {
            subs.delivered() >= owed || subs.settled() >= u64::from(self.plan.sub_users)
        } else {
            subs.settled() >= u64::from(self.plan.sub_users)
        };
        all_arrived || now >= deadline
    }

    /// (subscribers that have `owed` first arrivals or can receive nothing more, first
    /// arrivals of all of this worker's subscribers). A shared group's subscriber is settled
    /// only when closed: the group's total decides.
    fn subscriber_progress(&self, owed: u64) -> (u64, u64) {
        let (mut settled, mut delivered) = (0, 0);
        for c in &self.conns {
            let Role::Subscriber { slot } = c.role else {
                continue;
            };
            let unique = self
                .audits
                .get(slot as usize)
                .map_or(c.counted, |a| a.unique_total);
            delivered += unique;
            let has_all = unique >= owed && !self.plan.shared_subscription();
            if has_all || !c.is_open() {
                settled += 1;
            }
        }
        (settled, delivered)
    }

    /// Set the publishers' spawn timers once every subscriber of the run has settled.
    fn schedule_publishers(&mut self) {
        if self.publishers_scheduled {
            return;
        }
        let Some(start_ns) = self.control.subs.publish_start_ns() else {
            return;
        };
        self.publishers_scheduled = true;
        for ci in 0..self.conns.len() {
            let c = &self.conns[ci];
            if c.is_subscriber() || c.state != State::Waiting {
                continue;
            }
            // Spawn times are local to this process (its shard), as in an unsharded run.
            let local = c.index - self.plan.client_index_offset;
            let spawn_ns = start_ns + (local as f64 / self.plan.spawn_rate * 1e9) as u64;
            self.timers.push(Reverse((spawn_ns, ci as u32)));
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
                State::Waiting
                    if self.drain == Drain::No && now >= self.conns[ci].reconnect_at_ns =>
                {
                    self.spawn_due(ci, now)
                }
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
            State::AwaitConnack | State::AwaitSuback | State::Connected => {
                if readable {
                    self.read_ready(ci, now);
                }
                if writable && self.conns[ci].is_open() {
                    self.mark_dirty(ci);
                    self.pump(ci, now);
                    self.resume_reading(ci, now);
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
        c.connect_slot_reserved = false; // a reconnect is paced again
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
        let client_id = match c.role {
            Role::Subscriber { .. } => subscriber_id_of(&plan, c.index),
            Role::Publisher { .. } => client_id_of(&plan, c.index),
        };
        if c.is_subscriber() {
            // Subscribers own their (larger) buffer for the life of the connection.
            c.wbuf = Vec::with_capacity(c.write_capacity(plan.max_inflight));
        } else {
            c.lend_wbuf(&mut self.pool);
        }
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
        c.backoff_ns = 0;
        c.connected_at_ns = now;
        let reconnected_after_ns = c.lost_at_ns.take().map(|lost| now.saturating_sub(lost));
        self.connected += 1;
        self.rec.ok(Metric::Connect, ns_to_us(latency_ns));
        if let Some(after_ns) = reconnected_after_ns {
            self.rec.ok(Metric::Reconnect, ns_to_us(after_ns));
        }
        if self.conns[ci].is_subscriber() {
            self.send_subscribe(ci, now);
        } else {
            self.pump(ci, now);
        }
        Ok(())
    }

    // ---- subscribing and receiving ------------------------------------------------------

    fn send_subscribe(&mut self, ci: usize, now: u64) {
        let filter = [(self.plan.sub_topic.as_str(), self.plan.sub_qos)];
        let c = &mut self.conns[ci];
        c.state = State::AwaitSuback;
        c.connect_started_ns = now; // the subscribe timeout and latency start here
                                    // A read (at most SCRATCH_BYTES) after a partial packet lands in `rbuf`: size it once
                                    // for a read plus a partial packet of up to SCRATCH_BYTES, so it does not grow while
                                    // receiving (larger packets, up to MAX_PACKET_BYTES, grow it once).
        c.rbuf.reserve(2 * SCRATCH_BYTES);
        mqtt::subscribe::encode(&mut c.wbuf, 1, &filter);
        c.last_write_ns = now;
        self.mark_dirty(ci);
    }

    /// SUBACK: granted (0, 1, 2) or refused (0x80, section 3.9.3). A refused subscriber is
    /// closed: it could never receive anything.
    fn on_suback(&mut self, ci: usize, codes: &[u8], now: u64) -> Result<(), Failure> {
        if self.conns[ci].state != State::AwaitSuback {
            return Err(Failure::Protocol("unexpected SUBACK"));
        }
        match codes.first() {
            Some(&code @ 0..=2) => {
                let latency_ns = now.saturating_sub(self.conns[ci].connect_started_ns);
                self.rec.ok(Metric::Subscribe, ns_to_us(latency_ns));
                let _ = code;
                self.conns[ci].state = State::Connected;
                self.settle_subscriber(ci, None, now);
            }
            Some(&code) => {
                self.settle_subscriber(ci, Some(Failure::SubackRefused(code)), now);
                self.close(ci, None);
            }
            None => return Err(Failure::Protocol("SUBACK without a return code")),
        }
        Ok(())
    }

    /// The subscriber got its SUBACK or failed; the last one lets publishers start.
    fn settle_subscriber(&mut self, ci: usize, failure: Option<Failure>, now: u64) {
        let c = &mut self.conns[ci];
        if !c.is_subscriber() || c.sub_settled {
            return;
        }
        c.sub_settled = true;
        if let Some(f) = failure {
            self.rec.fail(f);
        }
        if self.control.subs.subscriber_settled(now) {
            self.control.wake_all();
        }
    }

    /// A PUBLISH from the broker: ack it; on a subscriber, time it and audit it.
    fn on_incoming(&mut self, ci: usize, qos: u8, pkid: u16, payload: &[u8], now: u64) {
        self.ack_incoming(ci, qos, pkid);
        let Role::Subscriber { slot } = self.conns[ci].role else {
            return;
        };
        let Some(marker) = payload::find_marker(payload) else {
            return;
        };
        let now_e2e_ns = payload::e2e_now_ns(self.control.start_epoch_ns, now);
        let latency_ns = now_e2e_ns.saturating_sub(marker.sent_ns);
        self.rec.ok(Metric::EndToEnd, ns_to_us(latency_ns));
        self.conns[ci].counted += 1;
        if let Some(audit) = self.audits.get_mut(slot as usize) {
            audit.record(marker.publisher, marker.seq, payload::E2E_SEQ_MODULUS);
        }
    }

    /// Bytes a subscriber may read now: every PUBLISH read (7 bytes or more) may add a 4-byte
    /// acknowledgement, so reading at most the free room of the write buffer keeps every ack.
    /// 0 when even a flush leaves too little room: reading pauses until writable.
    fn read_room(&mut self, ci: usize, now: u64) -> usize {
        if !self.conns[ci].is_subscriber() {
            return SCRATCH_BYTES;
        }
        let free = |c: &Conn| c.wbuf.capacity() - c.wbuf.len();
        if free(&self.conns[ci]) < SUBSCRIBER_MIN_ROOM {
            self.flush(ci, now);
        }
        let room = free(&self.conns[ci]);
        if room < SUBSCRIBER_MIN_ROOM {
            self.conns[ci].read_paused = true;
            return 0;
        }
        (room - 64).min(SCRATCH_BYTES)
    }

    fn resume_reading(&mut self, ci: usize, now: u64) {
        if self.conns[ci].read_paused {
            self.conns[ci].read_paused = false;
            self.read_ready(ci, now);
        }
    }

    // ---- publishing ---------------------------------------------------------------------

    /// Publish as many messages as the schedule, the in-flight window, the write buffer and
    /// the message budget allow. At every bound the message waits; none is dropped.
    fn pump(&mut self, ci: usize, now: u64) {
        if self.conns[ci].state != State::Connected
            || self.drain != Drain::No
            || self.plan.connect_only
            || self.conns[ci].is_subscriber()
            || self.conns[ci].churn_due
        {
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
        let sent_ns = payload::e2e_now_ns(self.control.start_epoch_ns, scheduled_ns);
        c.frames[c.next_frame].write_message(&mut c.wbuf, pkid, c.seq, epoch_ms, sent_ns);
        if qos == 0 {
            c.counted += 1;
        }
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
            let room = self.read_room(ci, now);
            if room == 0 {
                break;
            }
            let Some(stream) = self.conns[ci].stream.as_mut() else {
                break;
            };
            match stream.read(&mut scratch[..room]) {
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
            Packet::Publish {
                qos, pkid, payload, ..
            } => {
                self.on_incoming(ci, qos, pkid, payload, now);
                Ok(())
            }
            Packet::PubRel { pkid } => {
                Ok(self.reply(ci, |out| mqtt::ack::encode_pubcomp(out, pkid)))
            }
            Packet::SubAck { codes, .. } => self.on_suback(ci, codes, now),
            Packet::UnsubAck { .. } => Ok(()),
            _ => Err(Failure::Protocol("unexpected packet from the broker")),
        }
    }

    fn complete(&mut self, ci: usize, pkid: u16, now: u64) {
        // An unknown or stale id is a late ack for a publish already counted as timed out.
        if let Some(scheduled_ns) = self.conns[ci].inflight.complete(pkid) {
            self.inflight_total -= 1;
            self.conns[ci].counted += 1;
            self.rec
                .ok(Metric::Publish, ns_to_us(now.saturating_sub(scheduled_ns)));
            if self.conns[ci].churn_due {
                return self.churn(ci, now);
            }
            self.pump(ci, now);
        }
    }

    fn on_pubrec(&mut self, ci: usize, pkid: u16) {
        if self.conns[ci].inflight.mark_released(pkid) {
            self.reply(ci, |out| mqtt::ack::encode_pubrel(out, pkid));
        }
    }

    /// Broker-to-client publishes: ack them (QoS 2: PUBREC now, PUBCOMP on PUBREL).
    fn ack_incoming(&mut self, ci: usize, qos: u8, pkid: u16) {
        match qos {
            1 => self.reply(ci, |out| mqtt::ack::encode_puback(out, pkid)),
            2 => self.reply(ci, |out| mqtt::ack::encode_pubrec(out, pkid)),
            _ => {}
        }
    }

    /// Queue a small control packet. Publishes leave `Conn::control_reserve` bytes free for
    /// these (a PUBREL for the whole window, a PINGREQ, a DISCONNECT), so they fit; were it
    /// ever full, the packet is not queued and its timeout (ack or ping) reports the failure.
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
                State::AwaitSuback => self.check_subscribe_timeout(ci, now),
                State::Connected => {
                    self.expire_acks(ci, now);
                    self.keep_alive(ci, now);
                    self.churn(ci, now);
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

    fn check_subscribe_timeout(&mut self, ci: usize, now: u64) {
        if now.saturating_sub(self.conns[ci].connect_started_ns) > self.timeout_ns {
            self.settle_subscriber(ci, Some(Failure::SubscribeTimeout), now);
            self.close(ci, None);
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
        if self.conns[ci].state == State::Closed {
            return;
        }
        let now = self.control.now_ns();
        if let Some(f) = failure.filter(|&f| self.retries(f)) {
            return self.retry_later(ci, f, now);
        }
        let lost_subscriber = failure.map(|_| Failure::SubscriberLost);
        self.settle_subscriber(ci, lost_subscriber, now);
        let c = &mut self.conns[ci];
        let lost = c.inflight.clear();
        if matches!(c.state, State::Connected | State::AwaitSuback) {
            self.connected -= 1;
        }
        if !c.is_subscriber() {
            self.live_publishers -= 1;
        }
        c.state = State::Closed;
        if let Some(mut stream) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        c.return_wbuf(&mut self.pool);
        if c.is_subscriber() {
            c.wbuf = Vec::new();
        }
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

    /// `--reconnect` retries a lost or failed connection, not a refusal that would repeat
    /// (bad credentials) nor a protocol error; never once the run is stopping.
    fn retries(&self, failure: Failure) -> bool {
        let transient = matches!(
            failure,
            Failure::ConnectionLost(_)
                | Failure::ConnectFailed(_)
                | Failure::ConnectTimeout
                | Failure::ConnackRefused(3)
        );
        self.plan.reconnect && transient && self.drain == Drain::No
    }

    /// `--churn`: once a publisher has been connected for the churn time, stop publishing on
    /// it; when its in-flight window is empty, DISCONNECT and connect again at once.
    fn churn(&mut self, ci: usize, now: u64) {
        let Some(churn) = self.plan.churn else {
            return;
        };
        let c = &mut self.conns[ci];
        if c.is_subscriber() || self.drain != Drain::No || c.state != State::Connected {
            return;
        }
        if now.saturating_sub(c.connected_at_ns) < churn.as_nanos() as u64 {
            return;
        }
        c.churn_due = true;
        if !c.inflight.is_empty() {
            return;
        }
        self.reply(ci, mqtt::connect::encode_disconnect);
        self.flush(ci, now);
        self.detach(ci);
        let c = &mut self.conns[ci];
        c.churn_due = false;
        c.reconnect_at_ns = now;
        self.timers.push(Reverse((now, ci as u32)));
    }

    /// Drop the socket and buffers and make the client wait for its next connect.
    fn detach(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if matches!(c.state, State::Connected | State::AwaitSuback) {
            self.connected -= 1;
        }
        if let Some(mut stream) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        c.wbuf = Vec::new();
        c.rbuf = Vec::new();
        c.state = State::Waiting;
        c.ping_sent_ns = None;
        c.timer_armed = false;
        c.read_paused = false;
    }

    /// Record the failure, drop the connection and come back after the back-off: the client
    /// keeps its sequence numbers; what was in flight is lost (clean session).
    fn retry_later(&mut self, ci: usize, failure: Failure, now: u64) {
        let lost_subscriber = Some(Failure::SubscriberLost);
        self.settle_subscriber(ci, lost_subscriber, now);
        let lost = self.conns[ci].inflight.clear();
        self.detach(ci);
        let c = &mut self.conns[ci];
        c.churn_due = false;
        c.lost_at_ns.get_or_insert(now);
        c.backoff_ns = (c.backoff_ns * 2).clamp(RECONNECT_FIRST_NS, RECONNECT_MAX_NS);
        c.reconnect_at_ns = now + c.backoff_ns;
        self.timers.push(Reverse((c.reconnect_at_ns, ci as u32)));
        self.inflight_total -= lost as u64;
        self.rec.fail(failure);
        for _ in 0..lost {
            self.rec.fail(Failure::InflightLost);
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
        if !matches!(self.drain, Drain::Subscribers(_)) {
            // Aborted before the publishers finished: still count this worker as done.
            self.control.subs.publishers_finished(0);
        }
        self.hand_over_audit();
        self.control.give_back(self.local_budget);
        self.rec.set_connected(0);
        self.rec.finish(Instant::now());
        self.control.worker_finished();
    }

    /// Give the engine what the audit needs: each publisher's counted publishes and whether
    /// the filter matches it, and every subscriber's streams.
    fn hand_over_audit(&mut self) {
        let Ok(mut board) = self.control.subs.board.lock() else {
            return;
        };
        let users = self.plan.users as usize;
        if board.published.len() < users {
            board.published.resize(users, 0);
            board.matching.resize(users, false);
        }
        for c in &self.conns {
            if let Role::Publisher { matches } = c.role {
                if let Some(slot) = board.published.get_mut(c.index as usize) {
                    *slot = c.counted;
                }
                if let Some(slot) = board.matching.get_mut(c.index as usize) {
                    *slot = matches;
                }
            }
        }
        board.audits.append(&mut self.audits);
    }
}

/// A publisher connection with its frames, built once.
fn publisher(plan: &Plan, index: u64, addrs: &[SocketAddr]) -> Conn {
    let client_id = client_id_of(plan, index);
    let vars = ClientVars {
        index,
        token: plan.token_for(index),
        client_id: &client_id,
    };
    let frames = payload::build_frames(plan, &vars);
    let addr = addrs[(index % addrs.len() as u64) as usize];
    let mut conn = Conn::new(
        index,
        addr,
        source_of(plan, index),
        frames,
        plan.max_inflight,
    );
    let matches =
        plan.sub_users > 0 && plan.subscribers_receive(&payload::render(&plan.topic, &vars));
    conn.role = Role::Publisher { matches };
    conn
}

/// `--bind`: the source address of client `index` (None: the OS chooses).
fn source_of(plan: &Plan, index: u64) -> Option<std::net::IpAddr> {
    (!plan.bind.is_empty()).then(|| plan.bind[(index % plan.bind.len() as u64) as usize])
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

/// Client id of subscriber `index`: the client id template's id for that index with a
/// `-sub` suffix, so it never collides with a publisher's.
pub fn subscriber_id_of(plan: &Plan, index: u64) -> String {
    format!("{}-sub", client_id_of(plan, index))
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[inline]
fn ns_to_us(ns: u64) -> u64 {
    ns / 1_000
}
