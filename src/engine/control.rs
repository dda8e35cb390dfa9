//! The control plane shared by main and the workers: the run phase, the global message
//! budget, and the wakers that interrupt a blocking poll. This is the only state workers
//! share besides the stats channels.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mio::Waker;

/// Publishing normally.
pub const RUNNING: u8 = 0;
/// Stop publishing, wait up to the stop timeout for outstanding acks, disconnect.
pub const STOPPING: u8 = 1;
/// Second Ctrl-C: close everything now and report what was recorded.
pub const ABORTING: u8 = 2;

/// Budget value meaning "no message limit".
const UNLIMITED: u64 = u64::MAX;

pub struct Control {
    phase: AtomicU8,
    /// Messages still allowed to be published by all workers together.
    budget: AtomicU64,
    /// Workers that have finished (sent their last interval).
    finished: AtomicUsize,
    wakers: OnceLock<Vec<Arc<Waker>>>,
    /// Monotonic origin of every `now_ns` in the run.
    pub start: Instant,
    /// Wall-clock time at `start`.
    pub start_wall: SystemTime,
    /// The same in epoch milliseconds (for `{ts}` payload fields).
    pub start_epoch_ms: u64,
}

impl Control {
    pub fn new(messages: Option<u64>) -> Arc<Control> {
        let start_wall = SystemTime::now();
        let start_epoch_ms = start_wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Arc::new(Control {
            phase: AtomicU8::new(RUNNING),
            budget: AtomicU64::new(messages.unwrap_or(UNLIMITED)),
            finished: AtomicUsize::new(0),
            wakers: OnceLock::new(),
            start: Instant::now(),
            start_wall,
            start_epoch_ms,
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

    pub fn set_wakers(&self, wakers: Vec<Arc<Waker>>) {
        let _ = self.wakers.set(wakers);
    }

    /// Take up to `want` messages from the global budget; returns how many were granted.
    /// Workers claim in small chunks so the total is exact without a per-message atomic.
    pub fn claim(&self, want: u64) -> u64 {
        let mut granted = 0;
        let _ = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                if left == UNLIMITED {
                    granted = want;
                    return None;
                }
                granted = want.min(left);
                if granted == 0 {
                    None
                } else {
                    Some(left - granted)
                }
            });
        granted
    }

    /// Return claimed but unused messages (a worker that stops early).
    pub fn give_back(&self, unused: u64) {
        if unused > 0 && self.budget.load(Ordering::Acquire) != UNLIMITED {
            self.budget.fetch_add(unused, Ordering::AcqRel);
        }
    }

    /// True once a message limit was set and every message of it has been claimed.
    pub fn budget_exhausted(&self) -> bool {
        self.budget.load(Ordering::Acquire) == 0
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
    fn claims_never_exceed_the_message_limit() {
        let c = Control::new(Some(10));
        assert_eq!(c.claim(4), 4);
        assert_eq!(c.claim(4), 4);
        assert_eq!(c.claim(4), 2);
        assert_eq!(c.claim(4), 0);
        assert!(c.budget_exhausted());
    }

    #[test]
    fn without_a_limit_every_claim_is_granted() {
        let c = Control::new(None);
        assert_eq!(c.claim(64), 64);
        assert!(!c.budget_exhausted());
    }

    #[test]
    fn phase_only_moves_forward() {
        let c = Control::new(None);
        c.advance(ABORTING);
        c.advance(STOPPING);
        assert_eq!(c.phase(), ABORTING);
    }
}
