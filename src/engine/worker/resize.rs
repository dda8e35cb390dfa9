//! Following the live user target (`Control::users`): the clients of this worker whose
//! process-local index is below the target take part, the others are parked. Raising the
//! target unparks clients at the ramp's spawn pacing, through the same spawn timers start-up
//! uses; lowering it steps clients down the way `--churn` recycles them: no new publishes,
//! the in-flight window drains (bounded by `--stop-timeout`; what is left counts as timed
//! out), DISCONNECT, and the connection's session is recorded. Parked clients keep their
//! index, id, token, topic, frames and sequence numbers, so a re-added user is the same user.
//!
//! Runs only when the target's generation moved: one atomic load per loop iteration.

use std::cmp::Reverse;

use super::{Drain, Worker};
use crate::engine::conn::State;
use crate::engine::control::Ramp;
use crate::mqtt;
use crate::stats::{Failure, Metric};

impl Worker {
    /// Apply a changed user target to this worker's publishers.
    pub(super) fn follow_user_target(&mut self, now: u64) {
        let generation = self.control.users.generation();
        if generation == self.users_seen || !self.publishers_scheduled || self.drain != Drain::No {
            return;
        }
        self.users_seen = generation;
        let ramp = self.control.users.ramp();
        let publish_start_ns = self.control.subs.publish_start_ns().unwrap_or(now);
        for ci in 0..self.conns.len() {
            if self.conns[ci].is_subscriber() || self.conns[ci].state == State::Closed {
                continue;
            }
            let local = self.conns[ci].index - self.plan.client_index_offset;
            if local < u64::from(ramp.target) {
                self.take_part(ci, &ramp, publish_start_ns, now);
            } else {
                self.step_down_from(ci, now);
            }
        }
    }

    /// A client below the target: cancel a step-down in progress, or unpark it at its place
    /// in the ramp; a waiting client is re-paced (a stale earlier timer is ignored because it
    /// fires before `reconnect_at_ns`).
    fn take_part(&mut self, ci: usize, ramp: &Ramp, publish_start_ns: u64, now: u64) {
        let c = &mut self.conns[ci];
        if c.retiring {
            c.retiring = false;
            c.churn_due = false;
            self.pump(ci, now);
            return;
        }
        // A lost client backing off (`--reconnect`) keeps its reconnect time.
        if c.state != State::Waiting || (!c.parked && c.lost_at_ns.is_some()) {
            return;
        }
        let local = c.index - self.plan.client_index_offset;
        c.parked = false;
        c.reconnect_at_ns = ramp.spawn_ns(local, publish_start_ns).max(now);
        self.timers.push(Reverse((c.reconnect_at_ns, ci as u32)));
    }

    /// A client at or above the target: a waiting one parks at once, a connecting one steps
    /// down once connected, a connected one starts stepping down.
    fn step_down_from(&mut self, ci: usize, now: u64) {
        let c = &mut self.conns[ci];
        match c.state {
            State::Waiting => c.parked = true,
            State::Closed => {}
            _ if c.retiring => {}
            _ => {
                c.retiring = true;
                c.churn_due = true;
                c.retire_deadline_ns = now + self.plan.stop_timeout.as_nanos() as u64;
                if c.state == State::Connected {
                    self.step_down(ci, now);
                }
                self.rearm_check(ci);
            }
        }
    }

    /// A retiring connection whose window is empty, or whose stop timeout passed (what is
    /// still in flight counts as timed out): DISCONNECT, record its session, park it.
    pub(super) fn step_down(&mut self, ci: usize, now: u64) {
        let c = &self.conns[ci];
        if c.state != State::Connected {
            return;
        }
        if c.inflight.outstanding() > 0 && now < c.retire_deadline_ns {
            return;
        }
        let client = self.conns[ci].client();
        let rec = &mut self.rec;
        let expired = self.conns[ci].inflight.clear(|stream| {
            rec.publish_fail_by(Failure::AckTimeout, stream, client);
        });
        self.inflight_total -= expired as u64;
        self.reply(ci, mqtt::connect::encode_disconnect);
        self.flush(ci, now);
        self.send_ws_close(ci, now);
        let connected_at_ns = self.conns[ci].connected_at_ns;
        self.rec.ok(
            Metric::Connection,
            super::ns_to_us(now.saturating_sub(connected_at_ns)),
        );
        self.park(ci);
    }
}
