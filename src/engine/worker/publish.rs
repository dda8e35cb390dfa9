//! Publishing: the schedule (one timer per connection, at its earliest due stream), the
//! client's share of `--messages`, the in-flight window and the write path (dirty and ready
//! lists, flushing). Every bound makes a message wait; none is dropped. Which stream is due
//! and when the next is due are the streams' own (`workload::stream`); this file only sends.

use std::cmp::Reverse;

use super::{errno, ns_to_us, Drain, Worker};
use crate::engine::conn::State;
use crate::payload;

impl Worker {
    /// Publish as many messages as the schedule, the in-flight window, the write buffer and
    /// the client's share of the message limit allow, in the order its streams are due. At
    /// every bound the message waits; none is dropped.
    pub(super) fn pump(&mut self, ci: usize, now: u64) {
        if self.conns[ci].gateway.is_some() {
            return self.pump_gateway(ci, now);
        }
        if self.conns[ci].state != State::Connected
            || self.drain != Drain::No
            || self.plan.connect_only
            || self.conns[ci].is_subscriber()
            || self.conns[ci].churn_due
        {
            return;
        }
        let epoch_ms = self.control.start_epoch_ms + now / 1_000_000;
        loop {
            let c = &self.conns[ci];
            let Some(index) = c.streams.next_due() else {
                break;
            };
            let slot = c.streams.slot(index);
            let (qos, unpaced) = (slot.qos, slot.pace.is_unpaced());
            if !unpaced && slot.due_ns > now + self.batching.early_ns {
                self.arm_timer(ci, slot.due_ns);
                break;
            }
            if c.streams.is_rate_recheck(index) {
                self.recheck_due(ci);
                continue;
            }
            // The window is the connection's, shared by its QoS 1/2 streams.
            let window_full = c.inflight.is_full() || c.inflight.outstanding() >= c.send_window;
            if (qos > 0 && window_full) || c.quota == 0 {
                break;
            }
            // A request waits while its connection has as many awaiting answers as it may
            // (`workload::answers`), as a publish waits for a full window.
            if self.request_waits(ci, index) {
                break;
            }
            if !c.frame_fits(index) {
                if unpaced && qos == 0 {
                    // Nothing else will call the pump again (no ack at QoS 0, no timer without a
                    // pace): come back after this iteration's flush. If that flush would
                    // block, the socket's writable event brings the connection back instead.
                    self.mark_ready(ci);
                }
                break;
            }
            self.publish_one(ci, index, now, epoch_ms);
        }
    }

    /// Publish the next message of stream slot `index` of connection `ci`.
    fn publish_one(&mut self, ci: usize, index: usize, now: u64, epoch_ms: u64) {
        let slot = self.conns[ci].streams.slot(index);
        let (qos, stream, matches) = (slot.qos, slot.stream, slot.matches);
        let scheduled_ns = slot.scheduled_ns(now);
        // A rate turn: the schedule says whether it is an alarm, and when the next one comes.
        let rate_turn = slot.is_weighted();
        let alarm = rate_turn && self.is_alarm(ci, scheduled_ns);
        let c = &mut self.conns[ci];
        // Latency starts at the schedule, or at the send when that was earlier (the early
        // window, `wakeup`): whichever is earlier, so no latency is ever under-reported.
        let start_ns = scheduled_ns.min(now);
        let first_outstanding = c.inflight.outstanding() == 0;
        let pkid = if qos > 0 {
            self.inflight_total += 1;
            c.inflight.insert(start_ns, now, stream).unwrap_or(0)
        } else {
            0
        };
        c.seq += 1;
        if c.quota != u64::MAX {
            c.quota -= 1;
            self.quota_holders -= u32::from(c.quota == 0);
        }
        c.lend_wbuf(&mut self.pool);
        let sent_ns = payload::e2e_now_ns(self.control.start_epoch_ns, start_ns);
        let frame = c.streams.slot(index).frame().for_alias(c.alias_set);
        let frame_at = c.wbuf.len();
        frame.write_message(&mut c.wbuf, pkid, c.seq, epoch_ms, sent_ns, alarm);
        // A request: its id, into the topic just written, and into the table of its answers.
        self.issue_request(ci, index, frame_at, start_ns, now);
        let c = &mut self.conns[ci];
        c.alias_set = true;
        c.streams.advance(index, now);
        c.last_write_ns = now;
        let lag_us = ns_to_us(now.saturating_sub(scheduled_ns));
        self.rec.lag(lag_us);
        self.rec.sent();
        if qos == 0 {
            // No acknowledgement at QoS 0: the "response time" is scheduled -> written.
            self.rec.publish_ok(stream, lag_us);
            self.count_publish(ci, start_ns, matches);
        }
        self.published += 1;
        if rate_turn {
            self.set_next_due(ci, scheduled_ns);
        }
        self.mark_dirty(ci);
        if qos > 0 && first_outstanding {
            // Its ack timeout is the connection's earliest deadline unless one is armed sooner.
            self.arm_check(ci, now + self.timeout_ns + 1);
        }
    }

    /// Wake for the connection's next due message at `due_ns`, unless a wakeup is armed.
    pub(super) fn arm_timer(&mut self, ci: usize, due_ns: u64) {
        let c = &mut self.conns[ci];
        // `u64::MAX`: never due again (`due`); nothing to wake for.
        if c.timer_at_ns == u64::MAX && due_ns != u64::MAX {
            c.timer_at_ns = due_ns;
            self.timers.push(Reverse((due_ns, ci as u32)));
        }
    }

    pub(super) fn mark_dirty(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
    }

    pub(super) fn mark_ready(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.ready {
            c.ready = true;
            self.ready_next.push(ci as u32);
        }
    }

    /// Give ready connections (QoS 0, no interval) a turn: flush, then fill the buffer again.
    pub(super) fn serve_ready(&mut self) {
        if self.ready_next.is_empty() {
            return;
        }
        let mut ready = std::mem::take(&mut self.ready_next);
        self.ready_next = std::mem::take(&mut self.ready);
        for &ci in &ready {
            let ci = ci as usize;
            self.conns[ci].ready = false;
            let now = self.control.now_ns();
            // If the socket is full, its writable event brings the connection back.
            if self.flush(ci, now) {
                self.pump(ci, now);
            }
        }
        ready.clear();
        self.ready = ready;
    }

    pub(super) fn flush_dirty(&mut self) {
        let now = self.control.now_ns();
        let mut dirty = std::mem::take(&mut self.dirty);
        for &ci in &dirty {
            let ci = ci as usize;
            self.conns[ci].dirty = false;
            self.flush(ci, now);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Write the buffer until it is empty or the socket would block. Returns true when the
    /// buffer was emptied.
    pub(super) fn flush(&mut self, ci: usize, now: u64) -> bool {
        let c = &mut self.conns[ci];
        if c.state == State::Connecting {
            // Nothing goes out before the TCP connect is complete (`finish_connect` starts
            // the handshake and flushes then).
            return false;
        }
        let Some(stream) = c.stream.as_mut() else {
            return false;
        };
        // The transport writes plain bytes, or encrypts / frames the whole batch first.
        match c.transport.flush(stream, &mut c.wbuf) {
            Ok(flushed) => {
                if flushed.wrote {
                    c.last_write_ns = now;
                    c.write_blocked_since_ns = None;
                }
                if flushed.empty {
                    c.write_blocked_since_ns = None;
                    c.return_wbuf(&mut self.pool);
                    return true;
                }
                if c.write_blocked_since_ns.is_none() {
                    c.write_blocked_since_ns = Some(now);
                    self.arm_check(ci, now + self.timeout_ns + 1);
                }
                false
            }
            Err(e) => {
                self.lose(ci, errno(&e));
                false
            }
        }
    }

    /// Queue a small control packet. Publishes leave `Conn::control_reserve` bytes free for
    /// these (a PUBREL for the whole window, a PINGREQ, a DISCONNECT), so they fit. Late and
    /// stray PUBRECs can ask for more PUBRELs than the window in one read: when the buffer is
    /// that full it is flushed first; were it still full (the socket takes nothing), the
    /// packet is not queued and its timeout (ack, ping or write) reports the failure.
    pub(super) fn reply(&mut self, ci: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        const ROOM: usize = 8;
        let c = &mut self.conns[ci];
        c.lend_wbuf(&mut self.pool);
        if c.wbuf.capacity() - c.wbuf.len() < ROOM {
            let now = self.control.now_ns();
            self.flush(ci, now);
            self.conns[ci].lend_wbuf(&mut self.pool);
        }
        let c = &mut self.conns[ci];
        if c.stream.is_some() && c.wbuf.capacity() - c.wbuf.len() >= ROOM {
            encode(&mut c.wbuf);
            self.mark_dirty(ci);
        }
    }
}
