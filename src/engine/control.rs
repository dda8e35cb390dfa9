//! The control plane shared by main and the workers: the run phase, the subscribers' gate
//! and audit hand-over, and the wakers that interrupt a blocking poll. This is the only state workers
//! share besides the stats channels.

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
    /// Counted publishes by global publisher index.
    pub published: Vec<u64>,
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
    pub fn new() -> Arc<Control> {
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
        })
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
