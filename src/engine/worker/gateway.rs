//! A gateway connection's part of the write path (`--gateway`): after its CONNACK every
//! device is announced on `v1/gateway/connect` before any point; then each device's points
//! go out at its own pace (one per message in `per-point` mode, the devices due together
//! folded into one message in `batched` mode); when the connection stops (the run ends, or
//! the live user target steps it down) every announced device says goodbye on
//! `v1/gateway/disconnect` before the DISCONNECT. The frames and the device clocks are
//! `workload::gateway`'s; this file only decides when to send and counts.
//!
//! Rows: a point message is one request of its stream's row (`gateway telemetry`, ...), and
//! the device points it carried are counted beside it (`Recorder::points`) when it succeeds;
//! announcements and goodbyes are requests of the `gateway connect` and `gateway disconnect`
//! rows. Each is timed as a device's publish: to its acknowledgement at QoS 1/2, to its write
//! at QoS 0, from when it was due (a batch: its earliest device; an announcement or goodbye:
//! when it was written). `--messages` counts point messages only.
//!
//! Every bound makes a message wait, none drops it: the in-flight window (shared with the
//! points), the write buffer (a message is written only when the largest single message
//! fits; a batch folds what fits of the rest), and the client's share of `--messages`.
//! Goodbyes are bounded by the stop timeout: what has not gone out by then is not sent.
//!
//! Under a global rate (`--rate`) the devices' points come due at their places in the rate's
//! schedule (`workload::gateway::turns`), counted from the publishers' start as a device's
//! turns are (`due`). When they come due faster than the window or the buffer lets the
//! gateway send, they wait in their device clocks, as points at a pace do: none is dropped,
//! each is timed from its scheduled time, so the wait shows as latency and lag. A device whose
//! point is waiting has no next turn queued until it goes (its clock holds it once), so a
//! gateway that falls behind sends each late device's point once, then its next turn after
//! that point's scheduled time: the turns it fell behind by are sent late, not skipped.

use super::{ns_to_us, Drain, Worker};
use crate::engine::conn::State;
use crate::workload::gateway::{GatewayMode, RateClock, MAX_BATCH_PAYLOAD_BYTES};

/// What a device message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announcement {
    Connect,
    Disconnect,
}

impl Worker {
    /// A new gateway session (at its CONNACK): nothing announced yet, every device due from
    /// now at its stream's pace; the streams' slots mirror the device clocks.
    pub(super) fn start_gateway(&mut self, ci: usize, now: u64) {
        let origin_ns = self.control.subs.publish_start_ns().unwrap_or(0);
        let rate = self.rate.as_ref().map(|schedule| RateClock {
            schedule,
            origin_ns,
        });
        let c = &mut self.conns[ci];
        let Some(gateway) = c.gateway.as_mut() else {
            return;
        };
        let paces = c.streams.slots().iter().map(|slot| slot.pace);
        gateway.start(now, paces, rate);
        for index in 0..c.streams.slots().len() {
            let due_ns = gateway.next_due_ns(index).unwrap_or(u64::MAX);
            c.streams.set_due_ns(index, due_ns);
        }
    }

    /// `pump` for a gateway connection: announcements, then points as the devices come due;
    /// goodbyes instead once it stops.
    pub(super) fn pump_gateway(&mut self, ci: usize, now: u64) {
        let c = &self.conns[ci];
        if c.state != State::Connected || self.plan.connect_only {
            return;
        }
        if self.drain != Drain::No || c.retiring {
            self.say_goodbye(ci, now);
            return;
        }
        if c.churn_due || !self.announce(ci, now) {
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
            if slot.due_ns == u64::MAX {
                break; // no device on this stream
            }
            if !unpaced && slot.due_ns > now + self.batching.early_ns {
                self.arm_timer(ci, slot.due_ns);
                break;
            }
            let window_full = c.inflight.is_full() || c.inflight.outstanding() >= c.send_window;
            if (qos > 0 && window_full) || c.quota == 0 {
                break;
            }
            if !self.gateway_message_fits(ci) {
                if unpaced && qos == 0 {
                    // As for a device's unpaced stream: back after this iteration's flush.
                    self.mark_ready(ci);
                }
                break;
            }
            self.publish_points(ci, index, now, epoch_ms);
        }
    }

    /// Whether the write buffer has room for the gateway's largest single message (with no
    /// buffer lent it has: a pool buffer holds a window of them).
    fn gateway_message_fits(&self, ci: usize) -> bool {
        let c = &self.conns[ci];
        let Some(gateway) = c.gateway.as_ref() else {
            return false;
        };
        let need = gateway.largest_single_len() + c.control_reserve();
        c.wbuf.capacity() == 0 || c.wbuf.capacity() - c.wbuf.len() >= need
    }

    /// One message of stream slot `index`: its due device (`per-point`), or its devices due
    /// within the early window, as many as the payload bound and the buffer take (`batched`).
    fn publish_points(&mut self, ci: usize, index: usize, now: u64, epoch_ms: u64) {
        let early_ns = self.batching.early_ns;
        let origin_ns = self.control.subs.publish_start_ns().unwrap_or(0);
        let rate = self.rate.as_ref().map(|schedule| RateClock {
            schedule,
            origin_ns,
        });
        let c = &mut self.conns[ci];
        c.lend_wbuf(&mut self.pool);
        let room = (c.wbuf.capacity() - c.wbuf.len()).saturating_sub(c.control_reserve());
        let slot = c.streams.slot(index);
        let (qos, row, pace) = (slot.qos, slot.stream, slot.pace);
        let until_ns = if pace.is_unpaced() {
            now
        } else {
            now + early_ns
        };
        let Some(gateway) = c.gateway.as_mut() else {
            return;
        };
        let due = gateway.take_due(index, until_ns, rate);
        let Some(first) = due.first() else {
            // Nothing due after all (the rate's rechecks were asked again).
            let due_ns = gateway.next_due_ns(index).unwrap_or(u64::MAX);
            c.streams.set_due_ns(index, due_ns);
            return;
        };
        // A batch is timed from its earliest device (the clock gives them earliest first).
        let scheduled_ns = if pace.is_unpaced() { now } else { first.due_ns };
        let start_ns = scheduled_ns.min(now);
        let max_payload = match gateway.mode {
            GatewayMode::PerPoint => 0, // one device was taken: it goes alone
            GatewayMode::Batched => MAX_BATCH_PAYLOAD_BYTES
                .min(room.saturating_sub(gateway.frames.header_bytes_max(index))),
        };
        let first_outstanding = c.inflight.outstanding() == 0;
        let pkid = if qos > 0 {
            self.inflight_total += 1;
            c.inflight.insert(start_ns, now, row).unwrap_or(0)
        } else {
            0
        };
        let folded = gateway.frames.write_points(
            &mut c.wbuf,
            pkid,
            index,
            gateway.due(),
            epoch_ms,
            max_payload,
        );
        gateway.settle(index, folded, now, &pace, rate);
        // Under a rate a device's next turn may go to another weighted stream: every slot
        // mirrors its clock again (at most 32).
        for stream in 0..c.streams.slots().len() {
            let due_ns = gateway.next_due_ns(stream).unwrap_or(u64::MAX);
            c.streams.set_due_ns(stream, due_ns);
        }
        // At most `MAX_DEVICES_PER_GATEWAY` (10,000) points per message: a u16.
        let points = u16::try_from(folded).unwrap_or(u16::MAX);
        if qos > 0 {
            c.inflight.set_points(pkid, points);
        }
        c.seq += 1;
        if c.quota != u64::MAX {
            c.quota -= 1;
            self.quota_holders -= u32::from(c.quota == 0);
        }
        c.last_write_ns = now;
        let lag_us = ns_to_us(now.saturating_sub(scheduled_ns));
        self.rec.lag(lag_us);
        self.rec.sent();
        if qos == 0 {
            self.rec.publish_ok(row, lag_us);
            self.rec.points(row, u64::from(points));
        }
        self.published += 1;
        self.mark_dirty(ci);
        if qos > 0 && first_outstanding {
            self.arm_check(ci, now + self.timeout_ns + 1);
        }
    }

    /// Announce the devices not yet announced in this session, as the window and the buffer
    /// allow. True once every device is announced (points may go out).
    fn announce(&mut self, ci: usize, now: u64) -> bool {
        loop {
            let Some(gateway) = self.conns[ci].gateway.as_ref() else {
                return true;
            };
            let Some(slot) = gateway.next_announcement() else {
                return true;
            };
            if !self.send_announcement(ci, slot, Announcement::Connect, now) {
                return false;
            }
            if let Some(gateway) = self.conns[ci].gateway.as_mut() {
                gateway.announced_one();
            }
        }
    }

    /// Goodbye for the announced devices that have not said it, as the window and the buffer
    /// allow (the connection is stopping).
    fn say_goodbye(&mut self, ci: usize, now: u64) {
        let Some(gateway) = self.conns[ci].gateway.as_mut() else {
            return;
        };
        gateway.begin_farewell();
        let mut wrote = false;
        loop {
            let Some(gateway) = self.conns[ci].gateway.as_ref() else {
                return;
            };
            let Some(slot) = gateway.next_farewell() else {
                break;
            };
            if !self.send_announcement(ci, slot, Announcement::Disconnect, now) {
                return;
            }
            wrote = true;
            if let Some(gateway) = self.conns[ci].gateway.as_mut() {
                gateway.farewell_one();
            }
        }
        if wrote && self.conns[ci].retiring {
            // The last goodbye just went: stepping down goes on at once (its check runs
            // `step_down`), not at its deadline.
            self.arm_check(ci, now);
        }
    }

    /// A retiring gateway connection: goodbyes begun (and written as far as they go now).
    /// True once every announced device has said goodbye (true for any other connection).
    pub(super) fn gateway_said_goodbye(&mut self, ci: usize, now: u64) -> bool {
        if self.conns[ci].gateway.is_none() {
            return true;
        }
        self.say_goodbye(ci, now);
        self.conns[ci]
            .gateway
            .as_ref()
            .is_none_or(|gateway| gateway.farewell_done())
    }

    /// Write device `slot`'s connect or disconnect message; false when the window or the
    /// buffer has no room now (an ack, a flush or a writable event brings the pump back).
    fn send_announcement(&mut self, ci: usize, slot: u32, what: Announcement, now: u64) -> bool {
        let Some((connect_row, disconnect_row)) = self.plan.gateway_rows() else {
            return false;
        };
        let c = &mut self.conns[ci];
        let Some(gateway) = c.gateway.as_ref() else {
            return false;
        };
        let qos = gateway.frames.connect_qos();
        let window_full = c.inflight.is_full() || c.inflight.outstanding() >= c.send_window;
        if qos > 0 && window_full {
            return false;
        }
        let need = gateway.frames.connect_len(slot) + c.control_reserve();
        if c.wbuf.capacity() != 0 && c.wbuf.capacity() - c.wbuf.len() < need {
            if qos == 0 {
                // No ack will call the pump again: back after this iteration's flush.
                self.mark_ready(ci);
            }
            return false;
        }
        c.lend_wbuf(&mut self.pool);
        let row = match what {
            Announcement::Connect => connect_row,
            Announcement::Disconnect => disconnect_row,
        };
        let first_outstanding = c.inflight.outstanding() == 0;
        let pkid = if qos > 0 {
            self.inflight_total += 1;
            c.inflight.insert(now, now, row).unwrap_or(0)
        } else {
            0
        };
        let Some(gateway) = c.gateway.as_ref() else {
            return false;
        };
        match what {
            Announcement::Connect => gateway.frames.write_connect(&mut c.wbuf, pkid, slot),
            Announcement::Disconnect => gateway.frames.write_disconnect(&mut c.wbuf, pkid, slot),
        }
        c.last_write_ns = now;
        self.rec.sent();
        if qos == 0 {
            self.rec.publish_ok(row, 0);
        }
        self.published += 1;
        self.mark_dirty(ci);
        if qos > 0 && first_outstanding {
            self.arm_check(ci, now + self.timeout_ns + 1);
        }
        true
    }
}
