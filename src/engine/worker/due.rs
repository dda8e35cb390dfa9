//! When a publisher is next due: the one seam between the worker's publish timers and the
//! schedule they follow. The connect sets a connection's first due time, each publish asks for
//! the next one; nothing else in the worker knows how they are chosen.
//!
//! Without a global rate a user publishes every `--interval` from its connect. Under `--rate`
//! each device publishes at its places in the rate's schedule ([`crate::workload::rate`]),
//! counted from the publishers' start: its device is its client index (less the schedule's
//! first index), so a reconnect, a `--churn` or a user parked and re-added live keeps its
//! device and takes the schedule up at its next place after the connect. Latency still starts
//! at the scheduled time (`publish_one`), so a late send is measured as late.
//!
//! The random order may answer "nothing before T, ask again" (`Due::NotBefore`, a device
//! rarely due): `Conn::rate_recheck` marks such a due time, and the pump asks again when it
//! comes instead of publishing.

use super::Worker;
use crate::workload::rate::Due;

impl Worker {
    /// The connection was accepted at `now` (run clock): when it first publishes.
    pub(super) fn set_first_due(&mut self, ci: usize, now: u64) {
        if self.rate.is_some() {
            self.ask_rate(ci, now);
        } else {
            let c = &mut self.conns[ci];
            c.next_due_ns = now;
            c.rate_recheck = false;
        }
    }

    /// The publish scheduled at `scheduled_ns` went out: when the next one is due.
    pub(super) fn set_next_due(&mut self, ci: usize, scheduled_ns: u64) {
        if self.rate.is_some() {
            self.ask_rate(ci, scheduled_ns.saturating_add(1));
        } else {
            let c = &mut self.conns[ci];
            c.next_due_ns = c.next_due_ns.saturating_add(self.interval_ns);
        }
    }

    /// The rate's look-ahead ended at the connection's due time with nothing due: ask again
    /// from there.
    pub(super) fn recheck_due(&mut self, ci: usize) {
        let from_ns = self.conns[ci].next_due_ns;
        self.ask_rate(ci, from_ns);
    }

    /// Set the connection's next due time from the rate's schedule: its device's first place
    /// at or after `from_ns` (run clock). `u64::MAX`: never (not one of the schedule's devices,
    /// or past the clock's range), and no timer is armed for it.
    fn ask_rate(&mut self, ci: usize, from_ns: u64) {
        let Some(rate) = &self.rate else {
            return;
        };
        // The publishers' start: every device's schedule counts from it.
        let origin_ns = self.control.subs.publish_start_ns().unwrap_or(0);
        let c = &mut self.conns[ci];
        let due = match rate.device_of(c.index) {
            Some(device) => rate.due_at_or_after(device, from_ns.saturating_sub(origin_ns)),
            None => Due::Never,
        };
        (c.next_due_ns, c.rate_recheck) = match due {
            Due::At(t_ns) => (origin_ns.saturating_add(t_ns), false),
            Due::NotBefore(t_ns) => (origin_ns.saturating_add(t_ns), true),
            Due::Never => (u64::MAX, false),
        };
    }
}
