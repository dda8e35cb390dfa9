//! Live snapshots for the faces that watch a run (the web UI, `/metrics`): the merger
//! publishes one whole-run [`Summary`] so far, with the current rates, once per
//! [`SNAPSHOT_INTERVAL_MS`], and takes reset requests. Faces read the latest snapshot and never
//! reach into the merger; without a board the merger publishes nothing and pays nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Summary, N_METRICS};

/// How often the merger publishes a snapshot (the UI polls every 1-2 s).
pub const SNAPSHOT_INTERVAL_MS: u64 = 1000;

/// A worker's delivery-audit counts since the audit's latest cut (the run's start, or the
/// instant of the latest stats reset), as `engine::audit` classifies each message by its own
/// send stamp. Workers keep them as they go (a few additions per message, no lock) and ship
/// a copy with each interval: per worker, one fixed 40-byte value per second crosses threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveAudit {
    /// The cut these counts start at (ns since the run start; 0: the whole run).
    pub cut_ns: u64,
    /// Acknowledged (QoS 1/2) or written (QoS 0) publishes whose topic the subscribers match.
    pub published: u64,
    /// First arrivals at this worker's subscribers.
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl LiveAudit {
    #[cfg(test)]
    fn with_delivered(self, delivered: u64) -> LiveAudit {
        LiveAudit { delivered, ..self }
    }

    /// Start the counts over at `cut_ns` when the cut moved (a stats reset).
    #[inline]
    pub fn at_cut(&mut self, cut_ns: u64) -> &mut LiveAudit {
        if self.cut_ns != cut_ns {
            *self = LiveAudit {
                cut_ns,
                ..LiveAudit::default()
            };
        }
        self
    }

    /// The counts of every worker at the latest cut any of them has seen. A worker still at
    /// an older cut has counted nothing since the latest one (no message is stamped at or
    /// after a cut before every worker can see it), so its counts are left out.
    pub fn sum(workers: &[LiveAudit]) -> LiveAudit {
        let cut_ns = workers.iter().map(|w| w.cut_ns).max().unwrap_or(0);
        let mut total = LiveAudit {
            cut_ns,
            ..LiveAudit::default()
        };
        for w in workers.iter().filter(|w| w.cut_ns == cut_ns) {
            total.published += w.published;
            total.delivered += w.delivered;
            total.duplicated += w.duplicated;
            total.reordered += w.reordered;
        }
        total
    }
}

/// One published view of a run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Everything so far, as the reports render it (the timeline holds closed seconds).
    pub summary: Summary,
    /// Current (requests/s, failures/s) per metric, Locust's 10 s window.
    pub current: [(f64, f64); N_METRICS],
    /// The same per stream row (`summary.streams`).
    pub current_streams: Vec<(f64, f64)>,
    /// Clients connected now, summed over the workers' latest intervals.
    pub connected_users: u32,
    /// False once the run is over: `summary` is then the final result (audit included).
    pub running: bool,
}

/// Where the merger leaves its snapshots and faces leave reset requests. One per process,
/// shared by every run it starts.
#[derive(Default)]
pub struct LiveBoard {
    latest: Mutex<Option<Arc<Snapshot>>>,
    reset_requested: AtomicBool,
}

impl LiveBoard {
    pub fn new() -> Arc<LiveBoard> {
        Arc::new(LiveBoard::default())
    }

    /// The latest snapshot (None before the first run's first second).
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        match self.latest.lock() {
            Ok(latest) => latest.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn publish(&self, snapshot: Snapshot) {
        let snapshot = Some(Arc::new(snapshot));
        match self.latest.lock() {
            Ok(mut latest) => *latest = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Ask the merger to start the statistics over (Locust's "Reset stats").
    pub fn request_reset(&self) {
        self.reset_requested.store(true, Ordering::Release);
    }

    /// Whether a reset was asked for since the last call (the merger's side).
    pub fn take_reset(&self) -> bool {
        self.reset_requested.swap(false, Ordering::AcqRel)
    }

    /// Forget the previous run (a new test starts from nothing).
    pub fn clear(&self) {
        self.reset_requested.store(false, Ordering::Release);
        match self.latest.lock() {
            Ok(mut latest) => *latest = None,
            Err(poisoned) => *poisoned.into_inner() = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_audit_counts_add_up_at_the_latest_cut_and_restart_when_it_moves() {
        let at = |cut_ns, published| LiveAudit {
            cut_ns,
            published,
            delivered: 2 * published,
            ..LiveAudit::default()
        };
        let total = LiveAudit::sum(&[at(0, 5), at(0, 7)]);
        assert_eq!((total.published, total.delivered), (12, 24));
        // The second worker has not seen the cut at 90 yet: nothing of it counts there.
        let total = LiveAudit::sum(&[at(90, 1), at(0, 7)]);
        assert_eq!((total.cut_ns, total.published), (90, 1));
        let mut counts = at(0, 7);
        counts.at_cut(90).published += 1;
        assert_eq!(counts, at(90, 1).with_delivered(0));
    }
}
