//! Live snapshots for the faces that watch a run (the web UI, `/metrics`): the merger
//! publishes one whole-run [`Summary`] so far, with the current rates, once per
//! [`SNAPSHOT_INTERVAL_MS`], and takes reset requests. Faces read the latest snapshot and never
//! reach into the merger; without a board the merger publishes nothing and pays nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Summary, N_METRICS};

/// How often the merger publishes a snapshot (the UI polls every 1-2 s).
pub const SNAPSHOT_INTERVAL_MS: u64 = 1000;

/// One published view of a run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Everything so far, as the reports render it (the timeline holds closed seconds).
    pub summary: Summary,
    /// Current (requests/s, failures/s) per metric, Locust's 10 s window.
    pub current: [(f64, f64); N_METRICS],
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
