//! When subscribers stop waiting, once the publishers have finished.
//!
//! Why it exists: a broker (or a busy machine) can deliver the last messages long after they
//! were acknowledged to the publishers. A fixed wait reported such late messages as lost: on
//! a loaded 2-core box a 200,000-message soak "lost" up to 316,000 of 400,000 deliveries that a
//! longer wait saw arrive. So the drain ends when deliveries have *stopped*: no first arrival
//! for the quiet period (`--drain-timeout`), or every owed message arrived, or the cap
//! (`--drain-max`) passed, and only the cap says "still arriving" rather than "lost".
//!
//! The clock is free of I/O (the worker feeds it the run's first-arrival total from
//! `Control::subs` once per loop iteration), so it is tested with made-up times. Quiet is
//! judged at the time of the worker's last poll, not "now": a worker that was not scheduled
//! for a while has unread bytes, and only after a poll and the reads that follow it can it
//! tell that nothing arrived.

/// Why a worker's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Every subscriber (or the shared group) has what it is owed, or can receive no more.
    AllArrived,
    /// No first arrival in the run for the quiet period: what is missing is lost.
    Quiet,
    /// The cap passed while messages could still be arriving: what is missing is late or
    /// lost, the audit cannot tell which.
    Cap,
}

/// A worker's view of the drain, started when it sees every publisher of the run finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainClock {
    quiet_ns: u64,
    cap_at_ns: u64,
    /// The run's first arrivals when last observed, and when that total last changed (or
    /// the drain started).
    delivered: u64,
    changed_at_ns: u64,
}

impl DrainClock {
    /// A drain starting at `now_ns` with `delivered` first arrivals so far.
    pub fn start(now_ns: u64, quiet_ns: u64, max_ns: u64, delivered: u64) -> DrainClock {
        DrainClock {
            quiet_ns,
            cap_at_ns: now_ns.saturating_add(max_ns),
            delivered,
            changed_at_ns: now_ns,
        }
    }

    /// Observe the run's first arrivals at `now_ns`; a change restarts the quiet period.
    pub fn observe(&mut self, delivered: u64, now_ns: u64) {
        if delivered != self.delivered {
            self.delivered = delivered;
            self.changed_at_ns = now_ns;
        }
    }

    /// Whether the drain is over. `polled_ns`: when the worker's last poll returned (its
    /// sockets were read after it), so quiet counts only time in which arrivals were seen.
    pub fn end(&self, all_arrived: bool, polled_ns: u64, now_ns: u64) -> Option<DrainEnd> {
        if all_arrived {
            Some(DrainEnd::AllArrived)
        } else if polled_ns >= self.changed_at_ns.saturating_add(self.quiet_ns) {
            Some(DrainEnd::Quiet)
        } else if now_ns >= self.cap_at_ns {
            Some(DrainEnd::Cap)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn deliveries_that_keep_arriving_hold_the_drain_open_past_the_quiet_period() {
        let mut clock = DrainClock::start(0, 2 * S, 60 * S, 10);
        for second in 1..=10 {
            clock.observe(10 + second, second * S);
            assert_eq!(clock.end(false, second * S, second * S), None);
        }
        assert_eq!(clock.end(false, 11 * S, 11 * S), None);
        assert_eq!(clock.end(false, 12 * S, 12 * S), Some(DrainEnd::Quiet));
    }

    #[test]
    fn quiet_counts_from_the_last_poll_not_from_now() {
        let clock = DrainClock::start(0, 2 * S, 60 * S, 0);
        // The worker slept through 5 s without polling: its sockets may hold arrivals.
        assert_eq!(clock.end(false, S, 5 * S), None);
        assert_eq!(clock.end(false, 2 * S, 5 * S), Some(DrainEnd::Quiet));
    }

    #[test]
    fn the_cap_ends_a_drain_whose_deliveries_never_stop() {
        let mut clock = DrainClock::start(S, 2 * S, 3 * S, 0);
        clock.observe(5, 3 * S);
        assert_eq!(clock.end(false, 3 * S, 3 * S + 1), None);
        clock.observe(9, 4 * S);
        assert_eq!(clock.end(false, 4 * S, 4 * S), Some(DrainEnd::Cap));
    }

    #[test]
    fn everything_arrived_ends_the_drain_at_once_whatever_the_clock() {
        let clock = DrainClock::start(0, 2 * S, 60 * S, 0);
        assert_eq!(clock.end(true, 0, 0), Some(DrainEnd::AllArrived));
    }
}
