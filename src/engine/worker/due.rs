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
//! Which of a connection's streams take the rate's turns, and in what proportion, is the
//! streams' own (`workload::stream`: the `weight`ed streams, by a weighted round-robin);
//! streams with their own pace never ask here. Without a rate no stream is weighted and this
//! seam does nothing: each stream follows its pace from the connect.
//!
//! The random order may answer "nothing before T, ask again" (`Due::NotBefore`, a device
//! rarely due): the streams mark such a turn (`Streams::is_rate_recheck`), and the pump asks
//! again when it comes instead of publishing.

use super::Worker;
use crate::workload::rate::Due;

impl Worker {
    /// The connection was accepted at `now` (run clock), its streams started: when its first
    /// rate turn comes.
    pub(super) fn set_first_due(&mut self, ci: usize, now: u64) {
        self.ask_rate(ci, now);
    }

    /// A rate turn scheduled at `scheduled_ns` was sent: when the next one comes.
    pub(super) fn set_next_due(&mut self, ci: usize, scheduled_ns: u64) {
        self.ask_rate(ci, scheduled_ns.saturating_add(1));
    }

    /// The rate's look-ahead ended at the connection's turn with nothing due: ask again
    /// from there.
    pub(super) fn recheck_due(&mut self, ci: usize) {
        let from_ns = self.conns[ci].streams.rate_due_ns();
        self.ask_rate(ci, from_ns);
    }

    /// Whether the rate turn scheduled at `scheduled_ns` (run clock) of connection `ci` is
    /// one of the schedule's alarms (`--alarms-per-second`).
    pub(super) fn is_alarm(&self, ci: usize, scheduled_ns: u64) -> bool {
        let Some(rate) = &self.rate else {
            return false;
        };
        let origin_ns = self.control.subs.publish_start_ns().unwrap_or(0);
        rate.device_of(self.conns[ci].index)
            .is_some_and(|device| rate.is_alarm(device, scheduled_ns.saturating_sub(origin_ns)))
    }

    /// Set the connection's next rate turn from the schedule: its device's first place at or
    /// after `from_ns` (run clock). `u64::MAX`: never (not one of the schedule's devices, or
    /// past the clock's range), and no timer is armed for it.
    fn ask_rate(&mut self, ci: usize, from_ns: u64) {
        let Some(rate) = &self.rate else {
            return;
        };
        if !self.conns[ci].streams.has_weighted() {
            return;
        }
        // The publishers' start: every device's schedule counts from it.
        let origin_ns = self.control.subs.publish_start_ns().unwrap_or(0);
        let c = &mut self.conns[ci];
        let due = match rate.device_of(c.index) {
            Some(device) => rate.due_at_or_after(device, from_ns.saturating_sub(origin_ns)),
            None => Due::Never,
        };
        let (due_ns, recheck) = match due {
            Due::At(t_ns) => (origin_ns.saturating_add(t_ns), false),
            Due::NotBefore(t_ns) => (origin_ns.saturating_add(t_ns), true),
            Due::Never => (u64::MAX, false),
        };
        c.streams.set_rate_due(due_ns, recheck);
    }
}
