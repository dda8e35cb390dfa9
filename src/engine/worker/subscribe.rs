//! Subscribers: SUBSCRIBE and SUBACK, settling (the last settled subscriber of the run lets
//! the publishers start), timing and auditing what they receive, keeping room to ack it,
//! deciding when they have what they are owed, and handing their audits to the engine.

use std::cmp::Reverse;

use super::{ns_to_us, Drain, Worker, SCRATCH_BYTES, SUBSCRIBER_MIN_ROOM};
use crate::engine::audit::{Arrival, Cut};
use crate::engine::conn::{Conn, Role, State};
use crate::engine::control::paced_ns;
use crate::engine::drain::{DrainClock, DrainEnd};
use crate::mqtt;
use crate::payload::{self, E2E_SEQ_MODULUS};
use crate::stats::{Failure, Metric};

impl Worker {
    pub(super) fn send_subscribe(&mut self, ci: usize, now: u64) {
        let plan = &self.plan;
        let options = mqtt::v5::subscribe::SubscribeOptions {
            qos: plan.sub_qos,
            no_local: plan.v5.no_local,
            retain_as_published: plan.v5.retain_as_published,
            retain_handling: plan.v5.retain_handling,
        };
        let c = &mut self.conns[ci];
        c.state = State::AwaitSuback;
        // The subscribe timeout and latency start here.
        c.connect_started_ns = now;
        // A read (at most SCRATCH_BYTES) after a partial packet lands in `rbuf`: size it once
        // for a read plus a partial packet of up to SCRATCH_BYTES, so it does not grow while
        // receiving (larger packets, up to MAX_PACKET_BYTES, grow it once).
        c.rbuf.reserve(2 * SCRATCH_BYTES);
        let id = plan.v5.subscription_identifier;
        let filter = plan.sub_topic.as_str();
        plan.mqtt_version
            .encode_subscribe(&mut c.wbuf, 1, filter, options, id);
        c.last_write_ns = now;
        self.mark_dirty(ci);
    }

    /// SUBACK: granted (0, 1, 2) or refused (3.1.1: 0x80, section 3.9.3; MQTT 5: a reason
    /// code >= 0x80, reported by name). A refused subscriber is closed: it could never
    /// receive anything.
    pub(super) fn on_suback(&mut self, ci: usize, codes: &[u8], now: u64) -> Result<(), Failure> {
        if self.conns[ci].state != State::AwaitSuback {
            return Err(Failure::Protocol("unexpected SUBACK"));
        }
        match codes.first() {
            Some(0..=2) => {
                let latency_ns = now.saturating_sub(self.conns[ci].connect_started_ns);
                self.rec.ok(Metric::Subscribe, ns_to_us(latency_ns));
                self.conns[ci].state = State::Connected;
                self.rearm_check(ci);
                self.settle_subscriber(ci, None, now);
            }
            Some(&code) => {
                self.settle_subscriber(ci, Some(Failure::SubackRefused(code)), now);
                self.close(ci, None);
            }
            None => return Err(Failure::Protocol("SUBACK without a return code")),
        }
        Ok(())
    }

    /// The subscriber got its SUBACK or failed; the last one lets publishers start.
    pub(super) fn settle_subscriber(&mut self, ci: usize, failure: Option<Failure>, now: u64) {
        let c = &mut self.conns[ci];
        if !c.is_subscriber() || c.sub_settled {
            return;
        }
        c.sub_settled = true;
        if let Some(f) = failure {
            self.rec.fail_by(f, self.conns[ci].client());
        }
        if self.control.subs.subscriber_settled(now) {
            self.control.wake_all();
        }
    }

    /// A PUBLISH from the broker: ack it; on a subscriber, time it and audit it; on a device,
    /// it is an answer or a request (`answer`).
    pub(super) fn on_incoming(
        &mut self,
        ci: usize,
        qos: u8,
        pkid: u16,
        topic: &[u8],
        payload: &[u8],
        now: u64,
    ) {
        self.ack_incoming(ci, qos, pkid);
        let Role::Subscriber { slot } = self.conns[ci].role else {
            return self.on_device_publish(ci, topic, payload, now);
        };
        let Some(marker) = payload::find_marker(payload) else {
            return;
        };
        // Timed to the delivery's arrival stamp, unless that is before the send (not trusted).
        let epoch_ns = self.control.start_epoch_ns;
        let mut now_e2e_ns = payload::e2e_now_ns(epoch_ns, self.arrived_ns.min(now));
        if now_e2e_ns < marker.sent_ns {
            now_e2e_ns = payload::e2e_now_ns(epoch_ns, now);
        }
        let latency_ns = now_e2e_ns.saturating_sub(marker.sent_ns);
        self.rec.ok(Metric::EndToEnd, ns_to_us(latency_ns));
        self.conns[ci].counted += 1;
        let Some(audit) = self.audits.get_mut(slot as usize) else {
            return;
        };
        let cut_ns = self.control.audit_cut_ns();
        // Back to the publisher's stamp (ns since the start): exact within this process.
        let stamp_ns = marker.sent_ns.wrapping_sub(self.control.start_epoch_ns);
        let cut = Cut::of(cut_ns, stamp_ns);
        let arrival = audit.record(marker.publisher, marker.seq, E2E_SEQ_MODULUS, cut);
        let (Some(arrival), true) = (arrival, cut.counted) else {
            return;
        };
        let live = self.rec.audit(cut_ns);
        match arrival {
            Arrival::First { reordered } => {
                live.delivered += 1;
                live.reordered += u64::from(reordered);
            }
            Arrival::Duplicate => live.duplicated += 1,
        }
    }

    /// A publish of `ci` stamped `stamp_ns` counts (acknowledged at QoS 1/2, written at
    /// QoS 0): for the drain always, for the audit when stamped at or after its cut.
    /// `matches`: the publish's stream is one the subscribers' filter matches (only those
    /// are owed to them).
    pub(super) fn count_publish(&mut self, ci: usize, stamp_ns: u64, matches: bool) {
        if !matches {
            return;
        }
        let c = &mut self.conns[ci];
        c.counted += 1;
        let (true, Role::Publisher { matches: true }) = (self.audited, c.role) else {
            return;
        };
        let cut = Cut::of(self.control.audit_cut_ns(), stamp_ns);
        if c.audit_cut_ns != cut.cut_ns {
            (c.audit_cut_ns, c.audit_counted) = (cut.cut_ns, 0);
        }
        if cut.counted {
            c.audit_counted += 1;
            self.rec.audit(cut.cut_ns).published += 1;
        }
    }

    /// Bytes a subscriber may read now: every PUBLISH read (7 bytes or more) may add a 4-byte
    /// acknowledgement, so reading at most the free room of the write buffer keeps every ack.
    /// 0 when even a flush leaves too little room: reading pauses until writable.
    pub(super) fn read_room(&mut self, ci: usize, now: u64) -> usize {
        if !self.conns[ci].is_subscriber() {
            return SCRATCH_BYTES;
        }
        let free = |c: &Conn| c.wbuf.capacity() - c.wbuf.len();
        if free(&self.conns[ci]) < SUBSCRIBER_MIN_ROOM {
            self.flush(ci, now);
        }
        let room = free(&self.conns[ci]);
        if room < SUBSCRIBER_MIN_ROOM {
            self.conns[ci].read_paused = true;
            return 0;
        }
        (room - 64).min(SCRATCH_BYTES)
    }

    pub(super) fn resume_reading(&mut self, ci: usize, now: u64) {
        if self.conns[ci].read_paused {
            self.conns[ci].read_paused = false;
            self.read_ready(ci, now);
        }
    }

    /// After the publishers (checked once per loop iteration): true once every subscriber
    /// (or the shared group) has what it is owed, or no message has arrived anywhere in the
    /// run for the quiet period, or the cap has passed since all publishers finished (see
    /// `engine::drain`). At the cap, open subscribers are marked as cut off: what they miss
    /// may still be on its way.
    pub(super) fn subscribers_done(&mut self, now: u64) -> bool {
        if self.subscribers == 0 {
            return true;
        }
        let subs = &self.control.subs;
        if !subs.all_publishers_finished() {
            return false;
        }
        let owed = subs.owed();
        let (settled, delivered) = self.subscriber_progress(owed);
        subs.update_settled(self.settled_reported, settled);
        subs.update_delivered(self.delivered_reported, delivered);
        (self.settled_reported, self.delivered_reported) = (settled, delivered);
        let all_arrived = self.all_arrived(owed);
        let mut clock = match self.drain {
            Drain::Subscribers(Some(clock)) => clock,
            _ => DrainClock::start(
                now,
                self.plan.drain_quiet.as_nanos() as u64,
                self.plan.drain_max.as_nanos() as u64,
                subs.delivered(),
            ),
        };
        clock.observe(subs.delivered(), now);
        self.drain = Drain::Subscribers(Some(clock));
        match clock.end(all_arrived, self.polled_ns, now) {
            None => false,
            Some(DrainEnd::Cap) => {
                self.mark_cut_off();
                true
            }
            Some(_) => true,
        }
    }

    /// Every subscriber of the run (or the shared group) has what it is owed, or can receive
    /// nothing more.
    fn all_arrived(&self, owed: u64) -> bool {
        let subs = &self.control.subs;
        let all_settled = subs.settled() >= u64::from(self.plan.sub_users);
        all_settled || (self.plan.shared_subscription() && subs.delivered() >= owed)
    }

    /// The cap ended the drain: every subscriber still open could have received more.
    fn mark_cut_off(&mut self) {
        for c in &self.conns {
            if let (Role::Subscriber { slot }, true) = (c.role, c.is_open()) {
                if let Some(audit) = self.audits.get_mut(slot as usize) {
                    audit.cut_off = true;
                }
            }
        }
    }

    /// (subscribers that have `owed` first arrivals or can receive nothing more, first
    /// arrivals of all of this worker's subscribers). A shared group's subscriber is settled
    /// only when closed: the group's total decides.
    fn subscriber_progress(&self, owed: u64) -> (u64, u64) {
        let (mut settled, mut delivered) = (0, 0);
        for c in &self.conns {
            let Role::Subscriber { slot } = c.role else {
                continue;
            };
            let unique = self
                .audits
                .get(slot as usize)
                .map_or(c.counted, |a| a.unique_total);
            delivered += unique;
            let has_all = unique >= owed && !self.plan.shared_subscription();
            if has_all || !c.is_open() {
                settled += 1;
            }
        }
        (settled, delivered)
    }

    /// Set the publishers' spawn timers once every subscriber of the run has settled.
    pub(super) fn schedule_publishers(&mut self) {
        if self.publishers_scheduled {
            return;
        }
        let Some(start_ns) = self.control.subs.publish_start_ns() else {
            return;
        };
        self.publishers_scheduled = true;
        for ci in 0..self.conns.len() {
            let c = &self.conns[ci];
            if c.is_subscriber() || c.state != State::Waiting || c.parked {
                continue;
            }
            // Spawn times are local to this process (its shard), as in an unsharded run.
            let local = c.index - self.plan.client_index_offset;
            let spawn_ns = start_ns.saturating_add(paced_ns(local, self.plan.spawn_rate));
            self.timers.push(Reverse((spawn_ns, ci as u32)));
        }
    }

    /// Give the engine what the audit needs: each publisher's counted publishes since the
    /// audit's cut and whether the filter matches it, and every subscriber's streams.
    pub(super) fn hand_over_audit(&mut self) {
        let Ok(mut board) = self.control.subs.board.lock() else {
            return;
        };
        let users = self.control.users.capacity().max(self.plan.users) as usize;
        if board.published.len() < users {
            board.published.resize(users, (0, 0));
            board.matching.resize(users, false);
        }
        for c in &self.conns {
            if let Role::Publisher { matches } = c.role {
                if let Some(slot) = board.published.get_mut(c.index as usize) {
                    *slot = (c.audit_counted, c.audit_cut_ns);
                }
                if let Some(slot) = board.matching.get_mut(c.index as usize) {
                    *slot = matches;
                }
            }
        }
        board.audits.append(&mut self.audits);
    }
}
