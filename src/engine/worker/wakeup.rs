//! When the worker sleeps and what one wakeup does: the batching that makes a scheduled run
//! cheap without moving what it reports.
//!
//! Why it exists: on a VM a wakeup (a context switch) costs about 20 µs of CPU, several times
//! a publish's own work. A worker that woke for every device's schedule, every PUBACK and
//! every connection's timeout check spent most of its CPU waking (docs/BENCHMARKS.md,
//! "Capacity"). Three rules cut the wakeups; each has a stated bound:
//!
//! - **Early window** (`early_ns`): a wakeup also sends the publishes scheduled within this
//!   much after it. 1% of `--interval`, at least 250 µs and at most 2 ms. Such a publish
//!   leaves at most that early, is not counted as late, and its latency is timed from its
//!   send, so nothing is under-reported.
//! - **Late checks** (`early_ns` again): a connection's check (ack, write and connect
//!   timeouts, keep-alive, churn) may run up to the same amount late, so it rides on a
//!   publish wakeup instead of having one of its own. A timeout of seconds is then noticed at
//!   most 2 ms late; nothing is timed by it.
//! - **Read gap** (`read_gap_ns`): with scheduled QoS 0/1 publishing, sockets are read at
//!   most once per gap (the early window, and at most a quarter of the interval). Acks are
//!   timed from the kernel's receive stamp (`transport::rx_stamp`), so reading them later
//!   changes no figure. Not used with QoS 2 (our PUBREL would leave late and lengthen the
//!   flow we time), with subscribers in the worker (the broker's window to them would fill),
//!   once a connection reads without stamps (TLS; a kernel that refuses the option), or
//!   within `CONNECT_SETTLE_NS` of a connect (its TCP part is timed at the read).
//!
//! A wakeup for a publish is aimed `WAKE_AHEAD_NS` before it, since a sleep ends late by the
//! timer slack and the scheduler's delay; the publish then leaves inside its early window
//! rather than late. A wakeup writes each publish as soon as it is made
//! (`Worker::fire_timers`), so a publish's stamp is taken just before its own write, not
//! before the other sockets of the batch.

use std::cmp::Reverse;
use std::time::Duration;

use super::Worker;
use crate::engine::conn::State;

/// Lower and upper bounds of the early window (and of a check's lateness).
const EARLY_MIN_NS: u64 = 250_000;
const EARLY_MAX_NS: u64 = 2_000_000;
/// The early window's share of the interval: 1/EARLY_DIVISOR.
const EARLY_DIVISOR: u64 = 100;
/// A wakeup for a publish is aimed this far ahead of it (less than `EARLY_MIN_NS`, so the
/// publish is then inside the early window): a sleep ends late by the timer slack (50 µs)
/// plus the scheduler's delay, and the publish should leave on time, not that much late.
const WAKE_AHEAD_NS: u64 = 150_000;
/// After a connect starts, sockets are read as soon as they are ready for this long.
const CONNECT_SETTLE_NS: u64 = 100_000_000;

/// The batching rules of one worker, fixed at start-up from the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Batching {
    /// How early a scheduled publish may leave, and how late a check may run.
    pub early_ns: u64,
    /// Least time between two reads of the sockets (0: read as soon as ready).
    pub read_gap_ns: u64,
}

impl Batching {
    /// For a run publishing every `interval` (zero: as fast as the window allows) at `qos`.
    pub fn of(interval: Duration, qos: u8, worker_has_subscribers: bool) -> Batching {
        let interval_ns = interval.as_nanos().min(u128::from(u64::MAX)) as u64;
        let early_ns = (interval_ns / EARLY_DIVISOR).clamp(EARLY_MIN_NS, EARLY_MAX_NS);
        let gap_applies = interval_ns > 0 && qos <= 1 && !worker_has_subscribers;
        let read_gap_ns = if gap_applies {
            early_ns.min(interval_ns / 4)
        } else {
            0
        };
        Batching {
            early_ns,
            read_gap_ns,
        }
    }
}

impl Worker {
    /// When the worker must next be awake (run clock): the housekeeping tick, the first
    /// timer, or the first check plus the lateness it is allowed.
    pub(super) fn next_wake_ns(&self) -> u64 {
        let mut next = self.next_housekeeping_ns;
        if let Some(&Reverse((when, ci))) = self.timers.peek() {
            // A publish may leave early, so wake ahead of it by what a wakeup is typically
            // late; spawns and connects never run early, so their wake is exact.
            let ahead_ns = match self.conns[ci as usize].state {
                State::Connected => WAKE_AHEAD_NS,
                _ => 0,
            };
            next = next.min(when.saturating_sub(ahead_ns));
        }
        if let Some(Reverse((when, _))) = self.checks.peek() {
            next = next.min(when.saturating_add(self.batching.early_ns));
        }
        next
    }

    /// The wait for readiness: none while connections are ready to publish, else until the
    /// next wake time.
    pub(super) fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready_next.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = self.control.now_ns();
        Some(Duration::from_nanos(
            self.next_wake_ns().saturating_sub(now),
        ))
    }

    /// The read gap: sleep, deaf to the sockets, until the gap since the last poll has passed
    /// or something is due, whichever is first. A burst of publishes is thus followed by one
    /// read of all their acks, not a wakeup for each. The control plane's waker is heard at the
    /// end of the sleep (at most one gap late).
    pub(super) fn hold_reads(&self) {
        let gap_ns = self.batching.read_gap_ns;
        if gap_ns == 0 || self.unstamped || !self.ready_next.is_empty() {
            return;
        }
        let now = self.control.now_ns();
        if now < self.last_connect_ns.saturating_add(CONNECT_SETTLE_NS) {
            return;
        }
        let until = self
            .last_poll_ns
            .saturating_add(gap_ns)
            .min(self.next_wake_ns());
        if until > now {
            std::thread::sleep(Duration::from_nanos(until - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(interval_ms: u64, qos: u8, subscribers: bool) -> Batching {
        Batching::of(Duration::from_millis(interval_ms), qos, subscribers)
    }

    #[test]
    fn the_early_window_is_one_percent_of_the_interval_within_its_bounds() {
        assert_eq!(of(1000, 1, false).early_ns, 2_000_000);
        assert_eq!(of(100, 1, false).early_ns, 1_000_000);
        assert_eq!(of(10, 1, false).early_ns, 250_000);
        assert_eq!(of(0, 1, false).early_ns, 250_000);
    }

    #[test]
    fn the_read_gap_applies_only_to_scheduled_qos_0_and_1_without_subscribers() {
        assert_eq!(of(1000, 1, false).read_gap_ns, 2_000_000);
        assert_eq!(of(1000, 0, false).read_gap_ns, 2_000_000);
        assert_eq!(of(1, 1, false).read_gap_ns, 250_000);
        assert_eq!(of(0, 1, false).read_gap_ns, 0);
        assert_eq!(of(1000, 2, false).read_gap_ns, 0);
        assert_eq!(of(1000, 1, true).read_gap_ns, 0);
    }
}
