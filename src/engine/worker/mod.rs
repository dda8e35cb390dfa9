//! One worker: everything one core owns.
//!
//! A worker is a single `mio::Poll` loop over a disjoint set of clients (`conns`, indexed by
//! `Token`), a timer heap for spawn and publish schedules, one read scratch buffer, and a
//! thread-local [`Recorder`]. Nothing is shared with other workers except the [`Control`]
//! (phase, subscriber gate, waker) and the stats channel. After start-up the loop allocates
//! nothing per message: frames are copied into fixed-capacity write buffers and patched in
//! place, the in-flight table is a fixed array, and the timer heap's capacity is reserved for
//! one entry per client.
//!
//! Subscribers (`--sub-users`) are connections of the same loop with [`Role::Subscriber`]:
//! they connect first, and this worker's publishers are scheduled only once every subscriber
//! of the run has its SUBACK or has failed (`Control::subs`). Each subscriber acks what it
//! receives, records end-to-end latency from the payload marker and feeds its preallocated
//! [`SubscriberAudit`]. After the publishers finish, subscribers stay until they have what
//! they are owed, or deliveries stop for the quiet period, or the drain cap passes
//! (`engine::drain`).
//!
//! The loop and what it owns are here; the `impl Worker` blocks for each concern live beside
//! it: `connect` (spawn pacing, CONNECT/CONNACK), `due` (when a publisher is next due: the
//! interval or the global rate), `server` (what an MQTT 5 CONNACK says and
//! what the plan needs of it), `publish` (the schedule, message shares and write
//! path), `receive` (reading, decoding, acks), `subscribe` (subscribers and their audit),
//! `lifecycle` (timeouts, keep-alive, closing, reconnect, churn) and `clients` (building
//! each client once, at start-up).

mod answer;
mod clients;
mod connect;
mod due;
mod farewell;
mod gateway;
mod handshake;
mod lifecycle;
mod publish;
mod receive;
mod resize;
mod server;
mod subscribe;
mod wakeup;

pub use clients::{client_id_of, subscriber_id_of};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::{Poll, Token, Waker};

use super::audit::SubscriberAudit;
use super::conn::{Conn, Role, State, WritePool};
use super::control::{Control, ABORTING, RUNNING};
use super::dial::ConnectPacer;
use super::drain::DrainClock;
use crate::mqtt;
use crate::plan::Plan;
use crate::precise_poll::{Fired, PrecisePoll};
use crate::stats::{Failure, Recorder};
use crate::transport::rx_stamp::RealClock;
use crate::workload::rate::RateSchedule;
use clients::{publisher, quota_of, source_of};
use wakeup::Batching;

/// Token of the control-plane waker.
const WAKER: Token = Token(usize::MAX);
/// Size of the per-worker read scratch buffer (every socket is read through it).
const SCRATCH_BYTES: usize = 64 * 1024;
/// Stats are shipped (and the connected count sampled) on this tick; connections have
/// deadlines of their own in the timer heap.
const HOUSEKEEPING_NS: u64 = 100_000_000;
/// Heap entries reserved per client: a spawn/reconnect or publish timer (and a connect slot)
/// in `timers`; its live check and the stale checks `arm_check` may leave behind (see there)
/// in `checks`. Beyond this a heap grows once, to the run's peak, like the write pool.
const TIMERS_PER_CLIENT: usize = 2;
const CHECKS_PER_CLIENT: usize = 3;
/// Most events handled per poll.
const EVENTS: usize = 1024;
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
    /// Publishers finished: subscribers wait for what they are owed; the clock starts once
    /// every worker's publishers have finished.
    Subscribers(Option<DrainClock>),
}

pub struct Worker {
    id: usize,
    poll: Poll,
    /// Waits with a nanosecond deadline; this iteration's events.
    waiter: PrecisePoll,
    conns: Vec<Conn>,
    plan: Arc<Plan>,
    control: Arc<Control>,
    rec: Recorder,
    /// (when_ns, connection): spawn, connect-slot, reconnect and publish due times.
    /// Deadlines, not scans: a worker touches a connection when something about it is due,
    /// never on a fixed period.
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    /// (when_ns, connection): each connection's next check (its timeouts, keep-alive,
    /// churn), which may run late by the early window (`wakeup`). See [`Worker::arm_check`]
    /// for the bound on entries.
    checks: BinaryHeap<Reverse<(u64, u32)>>,
    /// The wakeup rules of this worker (`wakeup`).
    batching: Batching,
    /// When a poll last returned (with events or not: a wakeup for a timer reads the sockets
    /// too), and when a connect last started (run clock): the read gap counts from the first
    /// and waits for the second to settle.
    last_poll_ns: u64,
    last_connect_ns: u64,
    /// A connection of this worker reads without kernel stamps (TLS, or the option was
    /// refused): reads are no longer held (`wakeup`).
    unstamped: bool,
    /// Connections to flush at the end of this iteration.
    dirty: Vec<u32>,
    /// Connections that can publish without waiting for an event (QoS 0, no interval):
    /// `ready_next` collects them, `ready` is the spare list swapped in while serving.
    ready: Vec<u32>,
    ready_next: Vec<u32>,
    scratch: Box<[u8]>,
    inflight_total: u64,
    connected: u32,
    /// Clients not yet closed (waiting, connecting or connected).
    live: u32,
    published: u64,
    drain: Drain,
    /// `--rate`: the schedule whose turns each device's weighted streams share (`due`);
    /// None: every stream follows its own pace.
    rate: Option<RateSchedule>,
    timeout_ns: u64,
    /// With `--messages`: publishers of this worker that still have a share to publish and
    /// are not closed. At zero this worker's part of the limit is done.
    quota_holders: u32,
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
    /// The run has a delivery audit (`--verify` with subscribers): publishers count for it.
    audited: bool,
    subscribers: u32,
    /// This worker's last contributions to `Control::subs` (settled subscribers, arrivals).
    settled_reported: u64,
    delivered_reported: u64,
    /// When the last poll returned (ns since run start): arrivals up to then have been read,
    /// so the drain's quiet period is judged at this time.
    polled_ns: u64,
    /// MQTT 5 publishes acknowledged with 0x10 (No matching subscribers): successes, counted
    /// apart and handed to `Control` once, at shutdown.
    unrouted: u64,
    /// Gateway RPC answers of this worker's gateways that a broker sent back to them (MQTT
    /// 3.1.1 has no No Local): not requests, counted apart and handed to `Control` at
    /// shutdown.
    own_gateway_answers: u64,
    /// The `Control::users` generation this worker last applied.
    users_seen: u64,
    /// Maps the kernel's receive stamps onto the run clock; sampled at every wakeup.
    real_clock: RealClock,
    /// When the bytes of the current read reached this host (run clock; the read's own time
    /// where the kernel gave no stamp): acks and deliveries are timed to it.
    arrived_ns: u64,
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
        mut rec: Recorder,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        // A request stream's row is timed by its answers, not by its publishes' acks.
        let answered_streams = plan
            .streams
            .iter()
            .take(32)
            .enumerate()
            .filter(|(_, s)| s.kind.expects_answer())
            .fold(0u32, |mask, (index, _)| mask | 1 << index);
        rec.set_answered_streams(answered_streams);
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let sub_clients = super::clients_of(plan.sub_users, plan.threads.max(1), id);
        let mut conns = Vec::with_capacity(clients.len() + sub_clients.len());
        let clients_here = clients.len() + sub_clients.len();
        let mut timers = BinaryHeap::with_capacity(TIMERS_PER_CLIENT * clients_here + 1);
        let checks = BinaryHeap::with_capacity(CHECKS_PER_CLIENT * clients_here + 1);
        let mut quota_holders = 0;
        // With live user changes, `clients` covers the reserved capacity: those at or above
        // the starting target wait parked (`resize`).
        let resizable = control.users.capacity() > 0;
        let target = u64::from(control.users.ramp().target);
        let audit_streams = control.users.capacity().max(plan.users);
        for &local in clients {
            let index = plan.client_index_offset + local;
            let mut conn = publisher(&plan, index, addrs);
            conn.parked = resizable && local >= target;
            conn.quota = quota_of(&plan, index);
            quota_holders += u32::from(plan.messages.is_some() && conn.quota > 0);
            conns.push(conn);
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
                audits.push(SubscriberAudit::new(audit_streams));
            }
        }
        control.subs.register_worker(sub_clients.len() as u64);
        let n = conns.len();
        assert!(
            n < u32::MAX as usize,
            "connection indexes fit the timer tag"
        );
        let buffer_bytes = conns
            .iter()
            .filter(|c| !c.is_subscriber())
            .map(|c| c.write_capacity(plan.max_inflight))
            .max()
            .unwrap_or(0);
        let threads = plan.threads.max(1);
        let audited = plan.verify && plan.sub_users > 0;
        let (pace, qos) = fastest_pace(&plan);
        let batching = Batching::of(pace, qos, !sub_clients.is_empty());
        let rate = plan
            .rate
            .as_ref()
            .map(RateSchedule::new)
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--rate: {e}")))?;
        let worker = Worker {
            pool: WritePool::new(buffer_bytes, n),
            pacer: ConnectPacer::new(plan.connect_rate, threads),
            id,
            poll,
            waiter: PrecisePoll::new(EVENTS),
            live: n as u32,
            conns,
            rate,
            quota_holders,
            timeout_ns: plan.timeout.as_nanos() as u64,
            plan,
            control,
            rec,
            timers,
            checks,
            batching,
            last_poll_ns: 0,
            last_connect_ns: 0,
            unstamped: false,
            dirty: Vec::with_capacity(n),
            ready: Vec::with_capacity(n),
            ready_next: Vec::with_capacity(n),
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            inflight_total: 0,
            connected: 0,
            published: 0,
            drain: Drain::No,
            next_housekeeping_ns: 0,
            live_publishers: clients.len() as u32,
            publishers_scheduled: false,
            audits,
            audited,
            subscribers: sub_clients.len() as u32,
            settled_reported: 0,
            delivered_reported: 0,
            polled_ns: 0,
            unrouted: 0,
            own_gateway_answers: 0,
            users_seen: 0,
            real_clock: RealClock::default(),
            arrived_ns: 0,
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
            self.follow_user_target(now);
            self.fire_timers(now);
            if now >= self.next_housekeeping_ns {
                self.housekeeping();
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
            let messages_done = self.plan.messages.is_some() && self.quota_holders == 0;
            let publishers_gone = self.publishers_scheduled && self.live_publishers == 0;
            if phase != RUNNING || messages_done || publishers_gone {
                self.start_drain(now);
            } else {
                return false;
            }
        }
        match self.drain {
            Drain::Until(deadline) => {
                if now >= deadline || (self.inflight_total == 0 && self.all_settled()) {
                    self.finish_publishers();
                }
                false
            }
            Drain::Subscribers(_) => self.subscribers_done(now),
            Drain::No => false,
        }
    }

    /// Every publisher's bytes are written, the broker has finished with every packet id
    /// (a timed-out publish's late ack is still awaited, so a late PUBREC gets its PUBREL
    /// before the DISCONNECT) and every request has its answer, or the connection is gone.
    fn all_settled(&self) -> bool {
        (0..self.conns.len()).all(|ci| {
            let c = &self.conns[ci];
            c.state != State::Connected
                || c.is_subscriber()
                || (c.wbuf.is_empty()
                    && c.inflight.is_empty()
                    && gateway_gone(c)
                    && self.requests_settled(ci))
        })
    }

    /// Stop publishing: publishers that have not connected yet never will. Subscribers stay.
    fn start_drain(&mut self, now: u64) {
        self.drain = Drain::Until(now + self.plan.stop_timeout.as_nanos() as u64);
        for ci in 0..self.conns.len() {
            if self.conns[ci].is_subscriber() {
                continue;
            }
            match self.conns[ci].state {
                State::Waiting => self.close(ci, None),
                // A connect that was started is counted: it ends here as aborted.
                State::Connecting | State::Handshaking | State::AwaitConnack => {
                    self.close(ci, Some(Failure::ConnectAborted))
                }
                // A gateway's devices say goodbye before its DISCONNECT (`gateway`).
                State::Connected if self.conns[ci].gateway.is_some() => self.pump(ci, now),
                _ => {}
            }
        }
    }

    /// The publishers are done (acked, or out of time: what is still in flight now counts as
    /// timed out): tell the other workers what the subscribers are owed, then drain them.
    fn finish_publishers(&mut self) {
        let mut owed = 0;
        for ci in 0..self.conns.len() {
            // Their ids stay held: a late PUBREC still gets its PUBREL while subscribers drain.
            let client = self.conns[ci].client();
            let rec = &mut self.rec;
            let expired = self.conns[ci].inflight.expire_all(|stream| {
                rec.publish_fail_by(Failure::AckTimeout, stream, client);
            });
            self.inflight_total -= expired as u64;
            self.expire_all_requests(ci);
            if let Role::Publisher { matches: true } = self.conns[ci].role {
                owed += self.conns[ci].counted;
            }
        }
        self.control.subs.publishers_finished(owed);
        self.control.wake_all();
        self.drain = Drain::Subscribers(None);
    }

    fn poll_once(&mut self) -> io::Result<()> {
        self.hold_reads();
        let timeout = self.poll_timeout();
        let fired = self.waiter.wait(&self.poll, timeout)?;
        let control = &self.control;
        self.polled_ns = self.real_clock.sample(|| control.now_ns());
        self.last_poll_ns = self.polled_ns;
        for i in 0..fired {
            let event = self.waiter.fired(i);
            if event.token != WAKER && event.token.0 < self.conns.len() {
                self.on_event(event);
            }
        }
        Ok(())
    }

    /// Run the checks that are due, then the timers: spawns, and publishes due by `now` or
    /// within the early window (`wakeup`). Which entries fire is decided against `now`, so one
    /// call ends even when publishing takes longer than the interval; each publish takes a
    /// fresh clock reading and writes at once, so it is stamped just before its own write.
    fn fire_timers(&mut self, now: u64) {
        while let Some(&Reverse((when, ci))) = self.checks.peek() {
            if when > now {
                break;
            }
            self.checks.pop();
            self.fire_check(ci as usize, when, now);
        }
        while let Some(&Reverse((when, ci))) = self.timers.peek() {
            let ci = ci as usize;
            if when > now && !self.publishes_early(when, ci, now) {
                break;
            }
            self.timers.pop();
            match self.conns[ci].state {
                State::Waiting
                    if self.drain == Drain::No
                        && !self.conns[ci].parked
                        && now >= self.conns[ci].reconnect_at_ns =>
                {
                    self.spawn_due(ci, now)
                }
                State::Connected if self.conns[ci].timer_at_ns == when => {
                    self.conns[ci].timer_at_ns = u64::MAX;
                    let sent_ns = self.control.now_ns();
                    self.pump(ci, sent_ns);
                    if self.conns[ci].dirty {
                        self.flush(ci, sent_ns);
                    }
                }
                _ => {}
            }
        }
    }

    /// A publish timer within the early window of now may fire with this wakeup.
    fn publishes_early(&self, when: u64, ci: usize, now: u64) -> bool {
        when <= now + self.batching.early_ns && self.conns[ci].state == State::Connected
    }

    fn on_event(&mut self, event: Fired) {
        let ci = event.token.0;
        let now = self.control.now_ns();
        match self.conns[ci].state {
            State::Connecting => {
                self.finish_connect(ci, now);
                // The broker may have answered already (a first flight written with the
                // connect); this event is the only edge that announces those bytes.
                if event.readable {
                    match self.conns[ci].state {
                        State::Handshaking => self.advance_handshake(ci, true, now),
                        State::AwaitConnack => self.read_ready(ci, now),
                        _ => {}
                    }
                }
            }
            State::Handshaking => self.advance_handshake(ci, event.readable, now),
            State::AwaitConnack | State::AwaitSuback | State::Connected => {
                if event.closed {
                    self.conns[ci].peer_closed = true;
                }
                if event.readable {
                    self.read_ready(ci, now);
                }
                if event.writable && self.conns[ci].is_open() {
                    // Flush first, so the pump sees the room the socket just made.
                    self.flush(ci, now);
                    self.pump(ci, now);
                    self.write_due_answers(ci, now);
                    self.resume_reading(ci, now);
                }
            }
            _ => {}
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
        // WebSocket connections that sent their close frame: closed after the broker's.
        let mut closing = Vec::new();
        for ci in 0..self.conns.len() {
            let client = self.conns[ci].client();
            let rec = &mut self.rec;
            let expired = self.conns[ci].inflight.clear(|stream| {
                rec.publish_fail_by(unacked, stream, client);
            });
            self.inflight_total -= expired as u64;
            if self.conns[ci].state == State::Connected && !aborted {
                // Appended after whatever is still unwritten, so a half-written frame is
                // never cut: the DISCONNECT goes out only if the socket takes it all now.
                self.reply(ci, mqtt::connect::encode_disconnect);
                self.flush(ci, now);
                if self.send_ws_close(ci, now) {
                    closing.push(ci);
                    continue;
                }
            }
            let aborted_connect = matches!(
                self.conns[ci].state,
                State::Connecting | State::Handshaking | State::AwaitConnack
            );
            self.close(ci, aborted_connect.then_some(Failure::ConnectAborted));
        }
        self.await_ws_closes(&closing);
        for ci in closing {
            self.close(ci, None);
        }
        if !matches!(self.drain, Drain::Subscribers(_)) {
            // Aborted before the publishers finished: still count this worker as done.
            self.control.subs.publishers_finished(0);
        }
        self.hand_over_audit();
        self.control.add_unrouted(self.unrouted);
        self.control
            .add_own_gateway_answers(self.own_gateway_answers);
        self.rec.set_connected(0);
        self.rec.finish(Instant::now());
        self.control.worker_finished();
    }
}

/// What the batching rules are sized from: the shortest wait any stream puts between two
/// of its messages, and the highest QoS a stream publishes at (a plan without streams, as
/// `mqblast conn`'s: its interval and QoS settings).
///
/// A gateway's devices each keep their stream's pace, so the rules are the same: a point
/// may leave 1% of its own interval early, however many devices share the connection.
fn fastest_pace(plan: &Plan) -> (std::time::Duration, u8) {
    // A weighted stream's gaps are the global rate's: its mean time between a device's turns.
    let rate_gap_ns = u64::try_from(plan.publish_pace().as_nanos()).unwrap_or(u64::MAX);
    let gap_ns = plan
        .streams
        .iter()
        .map(|s| s.pace.shortest_gap_ns().unwrap_or(rate_gap_ns))
        .min();
    let qos = plan.streams.iter().map(|s| s.qos).max();
    match (gap_ns, qos) {
        (Some(gap_ns), Some(qos)) => (std::time::Duration::from_nanos(gap_ns), qos),
        _ => (plan.interval, plan.qos),
    }
}

/// A gateway connection has said goodbye for every device it announced (true for any other
/// connection).
fn gateway_gone(c: &Conn) -> bool {
    c.gateway.as_ref().is_none_or(|g| g.farewell_done())
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[inline]
fn ns_to_us(ns: u64) -> u64 {
    ns / 1_000
}
