//! The control plane shared by main and the workers: the run phase, the live user target,
//! the subscribers' gate and audit hand-over, and the wakers that interrupt a blocking poll.
//! This is the only state workers share besides the stats channels.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mio::Waker;

/// Publishing normally.
pub const RUNNING: u8 = 0;
/// Stop publishing, wait up to the stop timeout for outstanding acks, disconnect.
pub const STOPPING: u8 = 1;
/// Second Ctrl-C: close everything now and report what was recorded.
pub const ABORTING: u8 = 2;

pub struct Control {
    phase: AtomicU8,
    /// Workers that have finished (sent their last interval).
    finished: AtomicUsize,
    wakers: OnceLock<Vec<Arc<Waker>>>,
    /// Monotonic origin of every `now_ns` in the run.
    pub start: Instant,
    /// Wall-clock time at `start`.
    pub start_wall: SystemTime,
    /// The same in epoch milliseconds (for `{ts}` payload fields).
    pub start_epoch_ms: u64,
    /// The same in epoch nanoseconds: the base of the end-to-end marker's clock.
    pub start_epoch_ns: u64,
    /// Subscriber hand-off between workers (see [`Subscribers`]).
    pub subs: Subscribers,
    /// The smallest Receive Maximum any broker sent in a CONNACK (MQTT 5); `u32::MAX` when
    /// none did. Written once per CONNACK, read for the end-of-run note.
    pub server_receive_maximum: AtomicU32,
    /// MQTT 5 publishes acknowledged with 0x10 (No matching subscribers), summed by the
    /// workers at shutdown.
    pub unrouted: AtomicU64,
    /// Gateway RPC answers that came back to the gateways that wrote them (a plain broker
    /// under MQTT 3.1.1), summed by the workers at shutdown: not requests (`gateway_rpc`).
    pub own_gateway_answers: AtomicU64,
    /// How many publishers should be in the run now, and how fast to get there.
    pub users: UserTarget,
    /// Where the delivery audit's counts start (ns since `start`; 0: the whole run), moved
    /// by a stats reset (see `engine::audit`). Read once per audited message (one atomic
    /// load of a line written only at a reset).
    audit_cut_ns: AtomicU64,
}

/// How far ahead of "now" a stats reset places the audit's cut: the cut is stored before
/// the clock reaches it (checked, and placed again if the resetting thread was held up that
/// long), so no message is stamped at or after a cut that a worker cannot see yet.
pub const AUDIT_CUT_LEAD_NS: u64 = 20_000_000;

/// The live user target: how many publishers of the reserved capacity take part now and the
/// spawn pacing of the latest change. Workers compare `generation` once per loop iteration
/// (one atomic load) and read the rest under the lock only when it moved: a change is a
/// control-plane event, never a per-message one.
pub struct UserTarget {
    generation: AtomicU64,
    /// Clients reserved for this run per process; the target never exceeds it.
    capacity: u32,
    ramp: Mutex<Ramp>,
    /// Why this run's user count cannot change (set once, before workers start).
    locked: OnceLock<String>,
    /// Why the capacity is what it is, when not the open-files limit (set once, before
    /// workers start): said when a change beyond it is refused.
    capacity_reason: OnceLock<String>,
}

/// One change of the user target: clients `from..target` (process-local indexes) connect at
/// `spawn_rate` per second counted from `start_ns` (None: from the publishers' start, the
/// ramp-up at start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    pub target: u32,
    pub from: u32,
    pub spawn_rate: f64,
    pub start_ns: Option<u64>,
}

/// The slowest spawn rate the command line, the config and the web API accept: one user
/// every 1,000 s. Slower rates are refused there with the value named; the pacing below
/// stays correct for any positive rate anyway (a Locust master or a shard's share of the
/// rate can be slower), because its arithmetic saturates.
pub const MIN_SPAWN_RATE_PER_S: f64 = 0.001;

/// How long after its ramp's start the client of `rank` connects at `spawn_rate` per
/// second. A time beyond `u64` nanoseconds (584 years) saturates to `u64::MAX`, "never in
/// this run": the float-to-integer cast saturates, and callers add with `saturating_add`.
pub fn paced_ns(rank: u64, spawn_rate: f64) -> u64 {
    (rank as f64 / spawn_rate * 1e9) as u64
}

impl Ramp {
    /// When process-local client `local` of this ramp connects (ns since the run start);
    /// `publish_start_ns` is where the ramp-up at start counts from.
    pub fn spawn_ns(&self, local: u64, publish_start_ns: u64) -> u64 {
        let start_ns = self.start_ns.unwrap_or(publish_start_ns);
        let rank = local.saturating_sub(u64::from(self.from));
        start_ns.saturating_add(paced_ns(rank, self.spawn_rate))
    }
}

/// Why a change of the user target was refused (shown as is in the UI and the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl UserTarget {
    fn new(users: u32, capacity: u32, spawn_rate: f64) -> UserTarget {
        UserTarget {
            generation: AtomicU64::new(0),
            capacity: capacity.max(users),
            ramp: Mutex::new(Ramp {
                target: users,
                from: 0,
                spawn_rate,
                start_ns: None,
            }),
            locked: OnceLock::new(),
            capacity_reason: OnceLock::new(),
        }
    }

    /// Refuse every later change with `reason`.
    pub fn lock(&self, reason: String) {
        let _ = self.locked.set(reason);
    }

    /// Say `reason` when a change beyond the capacity is refused (instead of the open-files
    /// limit).
    pub fn bound_by(&self, reason: String) {
        let _ = self.capacity_reason.set(reason);
    }

    /// Bumped on every change; workers follow when it differs from what they saw.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The current ramp (target, pacing).
    pub fn ramp(&self) -> Ramp {
        match self.ramp.lock() {
            Ok(ramp) => *ramp,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Change the target to `users` at `spawn_rate` per second from `now_ns`. Raising it adds
    /// the clients above the old target at the spawn rate; lowering it steps the clients at
    /// and above the new target down. Beyond the reserved capacity it is refused.
    /// `publish_start_ns` is where the ramp-up at start counts from (`Subscribers`).
    pub fn set(
        &self,
        users: u32,
        spawn_rate: f64,
        now_ns: u64,
        publish_start_ns: u64,
    ) -> Result<(), Refused> {
        if let Some(reason) = self.locked.get() {
            return Err(Refused(reason.clone()));
        }
        if users > self.capacity {
            return Err(Refused(match self.capacity_reason.get() {
                Some(reason) => format!("{users} users do not fit: {reason}"),
                None => format!(
                    "{users} users do not fit: this run reserved {} (the open-files limit bounds it; raise `ulimit -n` and start again)",
                    self.capacity
                ),
            }));
        }
        if !(spawn_rate.is_finite() && spawn_rate > 0.0) {
            return Err(Refused(format!(
                "spawn rate {spawn_rate} is not a positive number of users per second"
            )));
        }
        let mut ramp = match self.ramp.lock() {
            Ok(ramp) => ramp,
            Err(poisoned) => poisoned.into_inner(),
        };
        let old = *ramp;
        *ramp = match users > old.target {
            // Clients of the old ramp not yet due continue it, at the new rate, from now.
            true => Ramp {
                target: users,
                from: old.due_by(now_ns, publish_start_ns),
                spawn_rate,
                start_ns: Some(now_ns),
            },
            // Lowering, or only the rate: clients still waiting keep their rank in the ramp
            // they belong to, paced from now at the new rate.
            false => Ramp {
                target: users,
                spawn_rate,
                ..old.repaced(spawn_rate, now_ns)
            },
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl Ramp {
    /// How many clients of the ramp are due by `now_ns` (all below `from`, then the rate's).
    fn due_by(&self, now_ns: u64, publish_start_ns: u64) -> u32 {
        let start_ns = self.start_ns.unwrap_or(publish_start_ns);
        let paced = now_ns.saturating_sub(start_ns) as f64 * self.spawn_rate / 1e9;
        let due = u64::from(self.from)
            .saturating_add(paced as u64)
            .saturating_add(1);
        due.min(u64::from(self.target)) as u32
    }

    /// The same ramp at `spawn_rate` from `now_ns`: the client due now stays due now.
    fn repaced(self, spawn_rate: f64, now_ns: u64) -> Ramp {
        let Some(start_ns) = self.start_ns else {
            return Ramp { spawn_rate, ..self };
        };
        let done = now_ns.saturating_sub(start_ns) as f64 * self.spawn_rate / 1e9;
        let start_ns = now_ns.saturating_sub((done / spawn_rate * 1e9) as u64);
        Ramp {
            spawn_rate,
            start_ns: Some(start_ns),
            ..self
        }
    }
}

/// What workers share about subscribers: the publisher gate, the drain's progress and the
/// end-of-run audit inputs. Updated per subscriber event or per worker phase, never per
/// message.
#[derive(Default)]
pub struct Subscribers {
    /// Subscribers without a SUBACK or a failure yet; publishers wait while it is not 0.
    pending: AtomicU64,
    /// Some worker has subscribers: publishers wait for `go`.
    has_subscribers: AtomicBool,
    /// True when publishers may start; `publish_start_ns` is valid then.
    go: AtomicBool,
    /// When the last subscriber settled (ns since start): publishers' spawn times count
    /// from here.
    publish_start_ns: AtomicU64,
    /// Workers in the run, and workers whose publishers have all finished.
    workers: AtomicUsize,
    publishers_done: AtomicUsize,
    /// Deliveries each (non-shared) subscriber is owed, or the shared group is owed:
    /// publishes of matching publishers, added by each worker when its publishers finish.
    owed: AtomicU64,
    /// Subscribers that have everything they are owed, or can receive nothing more.
    settled: AtomicU64,
    /// First arrivals of all subscribers together (shared subscriptions).
    delivered: AtomicU64,
    /// Per publisher: messages that count (acked at QoS 1/2, written at QoS 0); and every
    /// subscriber's audit, handed over at worker shutdown.
    pub board: Mutex<Board>,
}

/// The audit inputs workers hand over when they finish (allocated once per run).
#[derive(Default)]
pub struct Board {
    /// Counted publishes by global publisher index, since the audit's cut given beside them
    /// (the one the publisher last saw: a publisher that saw no later cut has published
    /// nothing since one).
    pub published: Vec<(u64, u64)>,
    /// Whether each publisher's topic matches the subscribers' filter.
    pub matching: Vec<bool>,
    pub audits: Vec<super::audit::SubscriberAudit>,
}

impl Subscribers {
    /// A worker joins the run with `subscribers` subscribers (called before workers start).
    pub fn register_worker(&self, subscribers: u64) {
        self.workers.fetch_add(1, Ordering::AcqRel);
        if subscribers > 0 {
            self.pending.fetch_add(subscribers, Ordering::AcqRel);
            self.has_subscribers.store(true, Ordering::Release);
        }
    }

    /// Whether publishers may start, and from when (ns since the run start).
    pub fn publish_start_ns(&self) -> Option<u64> {
        if !self.has_subscribers.load(Ordering::Acquire) {
            Some(0)
        } else if self.go.load(Ordering::Acquire) {
            Some(self.publish_start_ns.load(Ordering::Acquire))
        } else {
            None
        }
    }

    /// A subscriber got its SUBACK or failed. Returns true when it was the last one.
    pub fn subscriber_settled(&self, now_ns: u64) -> bool {
        let last = self.pending.fetch_sub(1, Ordering::AcqRel) == 1;
        if last {
            self.publish_start_ns.store(now_ns, Ordering::Release);
            self.go.store(true, Ordering::Release);
        }
        last
    }

    /// A worker's publishers are finished; `owed` are its matching publishes.
    pub fn publishers_finished(&self, owed: u64) {
        self.owed.fetch_add(owed, Ordering::AcqRel);
        self.publishers_done.fetch_add(1, Ordering::AcqRel);
    }

    /// Every worker's publishers are finished: `owed` is final.
    pub fn all_publishers_finished(&self) -> bool {
        self.publishers_done.load(Ordering::Acquire) >= self.workers.load(Ordering::Acquire)
    }

    pub fn owed(&self) -> u64 {
        self.owed.load(Ordering::Acquire)
    }

    /// A worker's contribution changed from `before` to `after` (settled subscribers).
    pub fn update_settled(&self, before: u64, after: u64) {
        update(&self.settled, before, after);
    }

    /// A worker's first arrivals changed from `before` to `after`.
    pub fn update_delivered(&self, before: u64, after: u64) {
        update(&self.delivered, before, after);
    }

    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }
}

fn update(total: &AtomicU64, before: u64, after: u64) {
    if after >= before {
        total.fetch_add(after - before, Ordering::AcqRel);
    } else {
        total.fetch_sub(before - after, Ordering::AcqRel);
    }
}

impl Control {
    /// A control plane for a run without live user changes (capacity 0: the plan's users).
    pub fn new() -> Arc<Control> {
        Control::with_users(0, 0, 1.0)
    }

    /// A control plane whose user target starts at `users` paced at `spawn_rate`, and may be
    /// changed live up to `capacity` clients.
    pub fn with_users(users: u32, capacity: u32, spawn_rate: f64) -> Arc<Control> {
        let start_wall = SystemTime::now();
        let since_epoch = start_wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let start_epoch_ms = since_epoch.as_millis() as u64;
        let start_epoch_ns = since_epoch.as_nanos() as u64;
        Arc::new(Control {
            phase: AtomicU8::new(RUNNING),
            finished: AtomicUsize::new(0),
            wakers: OnceLock::new(),
            start: Instant::now(),
            start_wall,
            start_epoch_ms,
            start_epoch_ns,
            subs: Subscribers::default(),
            server_receive_maximum: AtomicU32::new(u32::MAX),
            unrouted: AtomicU64::new(0),
            own_gateway_answers: AtomicU64::new(0),
            users: UserTarget::new(users, capacity, spawn_rate),
            audit_cut_ns: AtomicU64::new(0),
        })
    }

    /// Move the delivery audit's cut to [`AUDIT_CUT_LEAD_NS`] from now (a stats reset);
    /// returns the cut (ns since the start).
    pub fn cut_audit(&self) -> u64 {
        loop {
            let cut_ns = self.now_ns() + AUDIT_CUT_LEAD_NS;
            self.audit_cut_ns.store(cut_ns, Ordering::SeqCst);
            if self.now_ns() < cut_ns {
                return cut_ns;
            }
        }
    }

    /// Where the delivery audit's counts start (ns since the start; 0: the whole run).
    #[inline]
    pub fn audit_cut_ns(&self) -> u64 {
        self.audit_cut_ns.load(Ordering::SeqCst)
    }

    /// Nanoseconds since the start of the run.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    #[inline]
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    /// Move to a later phase (never back) and wake every worker.
    pub fn advance(&self, phase: u8) {
        self.phase.fetch_max(phase, Ordering::AcqRel);
        if let Some(wakers) = self.wakers.get() {
            for w in wakers {
                let _ = w.wake();
            }
        }
    }

    /// Wake every worker (a phase change of the subscriber hand-off).
    /// Note a broker's Receive Maximum (MQTT 5 CONNACK).
    pub fn note_receive_maximum(&self, receive_maximum: u16) {
        self.server_receive_maximum
            .fetch_min(u32::from(receive_maximum), Ordering::Relaxed);
    }

    /// A worker's count of 0x10 (No matching subscribers) acks, once at shutdown.
    pub fn add_unrouted(&self, publishes: u64) {
        self.unrouted.fetch_add(publishes, Ordering::Relaxed);
    }

    /// A worker's count of its gateways' own RPC answers received back, once at shutdown.
    pub fn add_own_gateway_answers(&self, answers: u64) {
        self.own_gateway_answers
            .fetch_add(answers, Ordering::Relaxed);
    }

    /// The smallest Receive Maximum a broker sent, if any did.
    pub fn receive_maximum(&self) -> Option<u16> {
        u16::try_from(self.server_receive_maximum.load(Ordering::Relaxed)).ok()
    }

    pub fn wake_all(&self) {
        if let Some(wakers) = self.wakers.get() {
            for w in wakers {
                let _ = w.wake();
            }
        }
    }

    pub fn set_wakers(&self, wakers: Vec<Arc<Waker>>) {
        let _ = self.wakers.set(wakers);
    }

    pub fn worker_finished(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
    }

    pub fn finished_workers(&self) -> usize {
        self.finished.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_target_beyond_the_reserved_capacity_is_refused_with_the_reason() {
        let c = Control::with_users(5, 20, 2.0);
        let refused = c.users.set(21, 2.0, 0, 0).unwrap_err();
        assert!(refused.0.contains("reserved 20"), "{}", refused.0);
        assert_eq!(c.users.generation(), 0);
        assert!(
            c.users.set(20, 0.0, 0, 0).is_err(),
            "a zero spawn rate is refused"
        );
        assert!(c.users.set(20, 4.0, 0, 0).is_ok());
        assert_eq!(c.users.generation(), 1);
    }

    #[test]
    fn raising_users_at_a_tiny_spawn_rate_paces_them_to_never_instead_of_overflowing_to_now() {
        // At start, 1e300 users/s: every client is due at once (the count due saturates).
        let c = Control::with_users(1, 50, 1e300);
        c.users.set(10, 1e-10, 2_000_000_000, 0).unwrap();
        let ramp = c.users.ramp();
        assert_eq!(ramp.from, 1, "the one client of the first ramp is due");
        // At 1e-10 users/s, rank 0 is due now, rank 1 about 1e19 ns later, and from rank 2
        // on beyond u64 nanoseconds: never in this run, not wrapped round to now.
        assert_eq!(ramp.spawn_ns(1, 0), 2_000_000_000);
        assert!(ramp.spawn_ns(2, 0) > 9_000_000_000_000_000_000);
        for local in 3..10 {
            assert_eq!(ramp.spawn_ns(local, 0), u64::MAX, "client {local}");
        }
    }

    #[test]
    fn raised_users_connect_from_the_old_target_at_the_spawn_rate() {
        // 5 users at 10/s: all due by 0.4 s, so at 3 s the new ones start the ramp.
        let c = Control::with_users(5, 50, 10.0);
        c.users.set(10, 10.0, 3_000_000_000, 0).unwrap();
        let ramp = c.users.ramp();
        assert_eq!((ramp.from, ramp.target), (5, 10));
        assert_eq!(ramp.spawn_ns(5, 0), 3_000_000_000);
        assert_eq!(ramp.spawn_ns(7, 0), 3_200_000_000);
    }

    #[test]
    fn a_new_spawn_rate_keeps_the_client_due_now_due_now() {
        let c = Control::with_users(0, 50, 1.0);
        c.users.set(40, 10.0, 0, 0).unwrap();
        c.users.set(40, 20.0, 1_000_000_000, 0).unwrap();
        let ramp = c.users.ramp();
        // Ten were due by 1 s at 10/s; at 20/s client 10 is due at 1 s, client 30 at 2 s.
        assert_eq!(ramp.spawn_ns(10, 0), 1_000_000_000);
        assert_eq!(ramp.spawn_ns(30, 0), 2_000_000_000);
    }

    #[test]
    fn raising_users_during_the_first_ramp_continues_it_instead_of_connecting_all_at_once() {
        let c = Control::with_users(10, 50, 1.0);
        // 2.5 s into a 1/s ramp: clients 0, 1 and 2 are due; 3..10 are still waiting.
        c.users.set(20, 1.0, 2_500_000_000, 0).unwrap();
        let ramp = c.users.ramp();
        assert_eq!(ramp.from, 3);
        assert_eq!(ramp.spawn_ns(3, 0), 2_500_000_000);
        assert_eq!(ramp.spawn_ns(4, 0), 3_500_000_000);
    }

    #[test]
    fn phase_only_moves_forward() {
        let c = Control::new();
        c.advance(ABORTING);
        c.advance(STOPPING);
        assert_eq!(c.phase(), ABORTING);
    }

    #[test]
    fn publishers_wait_until_the_last_subscriber_settles() {
        let c = Control::new();
        assert_eq!(
            c.subs.publish_start_ns(),
            Some(0),
            "no subscribers: no wait"
        );
        c.subs.register_worker(2);
        c.subs.register_worker(0);
        assert_eq!(c.subs.publish_start_ns(), None);
        assert!(!c.subs.subscriber_settled(5));
        assert_eq!(c.subs.publish_start_ns(), None);
        assert!(c.subs.subscriber_settled(9));
        assert_eq!(c.subs.publish_start_ns(), Some(9));
    }
}
