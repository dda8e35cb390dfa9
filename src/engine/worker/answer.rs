//! A device's answers: the subscription to its answer topics (and, with `--rpc-responder`, to
//! server-side RPC requests; a gateway: to its devices' RPC on `v1/gateway/rpc`) at each
//! connect, the ids of its requests, the answers that time them, and the RPC answers it
//! writes. The tables and queues are `workload::answers` and
//! `workload::responder`; this file moves their events into the connection and the stats.
//!
//! Bounds: a device's incoming PUBLISH larger than the read buffer ([`MAX_INCOMING_BYTES`])
//! is skipped as it arrives, counted, and the framing kept (`Conn::skip_bytes`); pending
//! requests and queued answers are bounded by their tables. An answer is written only while
//! the write buffer keeps room for a publish ([`Conn::answer_room`] reserves it), so answers
//! never make a publish wait; an answer that does not fit waits in its queue for the next
//! flush.

use super::{ns_to_us, Worker, SCRATCH_BYTES};
use crate::engine::conn::State;
use crate::mqtt::v5::subscribe::SubscribeOptions;
use crate::stats::{Failure, Metric};
use crate::workload::answers::{parse_id, patch_request_id, Answer, Incoming, RequestKind};
use crate::workload::gateway_rpc::{self, GatewayOffer};
use crate::workload::responder::Offer;

/// Largest PUBLISH a device reads: the read buffer. Larger ones are skipped, counted.
pub(super) const MAX_INCOMING_BYTES: usize = SCRATCH_BYTES;
/// Packet id of the first answer SUBSCRIBE; the k-th filter takes this minus k. Held in the
/// in-flight table until its SUBACK, so no publish uses it meanwhile.
const SUBSCRIBE_ID_TOP: u16 = u16::MAX;
/// The answer subscriptions' QoS: answers and requests come at QoS 1 at most.
const ANSWER_QOS: u8 = 1;

impl Worker {
    /// After the CONNACK: subscribe to what this device listens to, once per connection, one
    /// SUBSCRIBE per filter. Under MQTT 5 with No Local, so a device that both calls and
    /// answers RPC on a plain broker does not receive its own requests (ThingsBoard never
    /// echoes them).
    pub(super) fn subscribe_answers(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if c.answers.is_none() {
            return;
        }
        let options = SubscribeOptions {
            qos: ANSWER_QOS,
            no_local: true,
            retain_as_published: false,
            retain_handling: 0,
        };
        c.lend_wbuf(&mut self.pool);
        let Some(answers) = c.answers.as_ref() else {
            return;
        };
        for (k, filter) in answers.filters().iter().enumerate() {
            let pkid = SUBSCRIBE_ID_TOP - k as u16;
            c.inflight.hold_id(pkid);
            self.plan
                .mqtt_version
                .encode_subscribe(&mut c.wbuf, pkid, filter, options, None);
        }
        self.mark_dirty(ci);
    }

    /// A SUBACK on a device connection: one of its answer subscriptions. Refused: counted
    /// (its requests will time out), the connection kept. An id it never used is stray.
    pub(super) fn on_answers_suback(&mut self, ci: usize, pkid: u16, codes: &[u8]) {
        let filters = self.conns[ci]
            .answers
            .as_ref()
            .map_or(0, |a| a.filters().len());
        let ours = (SUBSCRIBE_ID_TOP - pkid) as usize;
        let client = self.conns[ci].client();
        if ours >= filters || !self.conns[ci].inflight.release_id(pkid) {
            self.rec.fail_by(Failure::IncomingUnexpected, client);
            return;
        }
        if let Some(&code) = codes.first().filter(|&&code| code > 2) {
            self.rec
                .fail_by(Failure::AnswerSubscribeRefused(code), client);
        }
    }

    /// A PUBLISH to a device (already acknowledged): an answer, a server-side RPC request, or
    /// something it did not ask for.
    pub(super) fn on_device_publish(&mut self, ci: usize, topic: &[u8], payload: &[u8], now: u64) {
        let Some(answers) = self.conns[ci].answers.as_ref() else {
            return;
        };
        match answers.classify(topic) {
            Incoming::Answer { kind, id } => self.on_answer(ci, kind, id, now),
            // Its own client-side RPC request, sent back by a plain broker: not a request
            // (ThingsBoard never does this; MQTT 5's No Local prevents it).
            Incoming::RpcRequest { id } if answers.is_own_request(id) => {}
            Incoming::RpcRequest { id } => self.on_rpc_request(ci, id, payload, now),
            Incoming::GatewayRpc => self.on_gateway_rpc(ci, payload, now),
            Incoming::Other => {
                let client = self.conns[ci].client();
                self.rec.fail_by(Failure::IncomingUnexpected, client);
            }
        }
    }

    /// An answer: a success of its request's stream timed from the request's scheduled send
    /// to the answer's arrival, or late, duplicate or unknown (counted by name).
    fn on_answer(&mut self, ci: usize, kind: RequestKind, id: &[u8], now: u64) {
        let arrived_ns = self.arrived_ns.min(now);
        let client = self.conns[ci].client();
        let Some(pending) = self.conns[ci]
            .answers
            .as_mut()
            .and_then(|a| a.pending.as_mut())
        else {
            return;
        };
        let answer = match parse_id(id) {
            Some(id) => pending.answer(kind, id, now),
            None => Answer::Unknown,
        };
        match answer {
            Answer::Matched {
                stream,
                scheduled_ns,
            } => {
                // Timed to when the answer reached this host, unless that stamp is before the
                // send (not trusted), as acks are.
                let answered_ns = if arrived_ns >= scheduled_ns {
                    arrived_ns
                } else {
                    now
                };
                let latency_us = ns_to_us(answered_ns.saturating_sub(scheduled_ns));
                self.rec.answer_ok(stream, latency_us);
                // Room in the table again: a waiting request may go.
                self.pump(ci, now);
            }
            Answer::Late {
                stream,
                expired_now,
            } => {
                if expired_now {
                    self.rec
                        .publish_fail_by(Failure::RequestTimeout, stream, client);
                    self.pump(ci, now);
                }
                self.rec.fail_by(Failure::AnswerLate(kind.name()), client);
            }
            Answer::Duplicate { .. } => {
                self.rec
                    .fail_by(Failure::AnswerDuplicate(kind.name()), client);
            }
            Answer::Unknown => {
                self.rec
                    .fail_by(Failure::AnswerUnknown(kind.name()), client);
            }
        }
    }

    /// A server-side RPC request: its answer queued (and written at once when due now),
    /// dropped when the queue is full, or malformed.
    fn on_rpc_request(&mut self, ci: usize, id: &[u8], request: &[u8], now: u64) {
        let Some(plan) = self.plan.rpc_responder.as_ref() else {
            return;
        };
        let arrived_ns = self.arrived_ns.min(now);
        let version = self.plan.mqtt_version;
        let client = self.conns[ci].client();
        let Some(answers) = self.conns[ci].answers.as_mut() else {
            return;
        };
        match answers.queue.offer(plan, version, id, request, arrived_ns) {
            Offer::Queued => {
                self.write_due_answers(ci, now);
                self.rearm_check(ci);
            }
            Offer::Dropped => self.rec.fail_by(Failure::RpcQueueFull, client),
            Offer::Malformed(why) => {
                self.rec
                    .fail_by(Failure::RpcMalformed(why.describe()), client);
            }
        }
    }

    /// A message on `v1/gateway/rpc` to a gateway: a request for one of its devices (queued,
    /// dropped, malformed or for a device it does not carry, as for a device's requests), or
    /// one of its own answers come back (counted apart, see `gateway_rpc`).
    fn on_gateway_rpc(&mut self, ci: usize, payload: &[u8], now: u64) {
        let Some(plan) = self.plan.rpc_responder.as_ref() else {
            return;
        };
        let arrived_ns = self.arrived_ns.min(now);
        let version = self.plan.mqtt_version;
        let client = self.conns[ci].client();
        let Some(answers) = self.conns[ci].answers.as_mut() else {
            return;
        };
        let Some(devices) = answers.gateway.as_ref() else {
            return;
        };
        let queue = &mut answers.queue;
        match gateway_rpc::offer(queue, plan, version, devices, payload, arrived_ns) {
            GatewayOffer::Queued => {
                self.write_due_answers(ci, now);
                self.rearm_check(ci);
            }
            GatewayOffer::Dropped => self.rec.fail_by(Failure::RpcQueueFull, client),
            GatewayOffer::Malformed(why) => {
                self.rec
                    .fail_by(Failure::RpcMalformed(why.describe()), client);
            }
            GatewayOffer::UnknownDevice => self.rec.fail_by(Failure::RpcUnknownDevice, client),
            GatewayOffer::OwnAnswer => self.own_gateway_answers += 1,
        }
    }

    /// Write the answers due by `now` while the write buffer keeps room for a publish; each
    /// is a success of the `rpc-responder` row, timed from its request's arrival.
    pub(super) fn write_due_answers(&mut self, ci: usize, now: u64) {
        if self.conns[ci].state != State::Connected {
            return;
        }
        let keep_free = {
            let c = &self.conns[ci];
            c.control_reserve() + c.largest_publish_bytes()
        };
        let mut flushed = false;
        loop {
            let c = &mut self.conns[ci];
            let due = c.answers.as_ref().and_then(|a| a.queue.due_frame(now));
            if due.is_none() {
                return;
            }
            c.lend_wbuf(&mut self.pool);
            let Some(answers) = c.answers.as_mut() else {
                return;
            };
            let Some((frame, arrived_ns)) = answers.queue.due_frame(now) else {
                return;
            };
            let free = c.wbuf.capacity() - c.wbuf.len();
            if free < frame.len() + keep_free {
                if flushed {
                    return; // The next flush (or writable event) brings it back.
                }
                flushed = true;
                self.flush(ci, now);
                continue;
            }
            c.wbuf.extend_from_slice(frame);
            answers.queue.pop();
            c.last_write_ns = now;
            self.rec.ok(
                Metric::RpcResponder,
                ns_to_us(now.saturating_sub(arrived_ns)),
            );
            self.mark_dirty(ci);
        }
    }

    /// The front of `buf` starts a PUBLISH larger than a device reads: count it, acknowledge
    /// it when its packet id is in `buf`, and drop it (what is not in `buf` yet is dropped as
    /// it arrives). Returns the bytes of `buf` it took; None for anything else.
    pub(super) fn skip_oversized(&mut self, ci: usize, buf: &[u8]) -> Option<usize> {
        if self.conns[ci].is_subscriber() {
            return None;
        }
        let peeked = crate::mqtt::peek_publish(buf)?;
        if peeked.total_bytes <= MAX_INCOMING_BYTES {
            return None;
        }
        let client = self.conns[ci].client();
        let bytes = u32::try_from(peeked.total_bytes).unwrap_or(u32::MAX);
        self.rec.fail_by(Failure::IncomingTooLarge(bytes), client);
        if let Some(pkid) = peeked.pkid {
            self.ack_incoming(ci, peeked.qos, pkid);
        }
        let here = buf.len().min(peeked.total_bytes);
        self.conns[ci].skip_bytes = peeked.total_bytes - here;
        Some(here)
    }

    /// Whether stream slot `index`'s next message is a request that must wait: its table
    /// holds as many pending requests as it may.
    #[inline]
    pub(super) fn request_waits(&self, ci: usize, index: usize) -> bool {
        let c = &self.conns[ci];
        c.streams.slot(index).request.is_some()
            && c.answers
                .as_ref()
                .and_then(|a| a.pending.as_ref())
                .is_none_or(|p| p.is_full())
    }

    /// The id of a request of stream slot `index` sent now (scheduled at `scheduled_ns`),
    /// written into its frame, the last bytes of the write buffer from `frame_at`. Called only
    /// when [`Worker::request_waits`] said no.
    pub(super) fn issue_request(
        &mut self,
        ci: usize,
        index: usize,
        frame_at: usize,
        scheduled_ns: u64,
        now: u64,
    ) {
        let c = &mut self.conns[ci];
        let slot = c.streams.slot(index);
        let (Some(request), stream) = (slot.request, slot.stream) else {
            return;
        };
        let Some(pending) = c.answers.as_mut().and_then(|a| a.pending.as_mut()) else {
            return;
        };
        let first = pending.pending() == 0;
        if let Some(id) = pending.issue(request.kind, stream, scheduled_ns, now) {
            patch_request_id(&mut c.wbuf[frame_at..], request.id_at as usize, id);
        }
        if first {
            self.arm_check(ci, now + self.timeout_ns + 1);
        }
    }

    /// Requests whose answer is overdue by `now`: failed on their stream's row. Room in the
    /// table again lets waiting requests go.
    pub(super) fn expire_requests(&mut self, ci: usize, now: u64) {
        let client = self.conns[ci].client();
        let mut expired = false;
        while let Some(stream) = self.conns[ci]
            .answers
            .as_mut()
            .and_then(|a| a.pending.as_mut())
            .and_then(|p| p.expire_next(now))
        {
            self.rec
                .publish_fail_by(Failure::RequestTimeout, stream, client);
            expired = true;
        }
        if expired {
            self.pump(ci, now);
        }
    }

    /// The stop timeout ran out: every request still waiting counts as timed out, as the
    /// publishes still waiting for acks do.
    pub(super) fn expire_all_requests(&mut self, ci: usize) {
        self.expire_requests(ci, u64::MAX);
    }

    /// The connection ended: requests still waiting are lost, queued answers dropped, each
    /// counted; a packet being skipped ends with it.
    pub(super) fn end_answers(&mut self, ci: usize) {
        let client = self.conns[ci].client();
        let c = &mut self.conns[ci];
        c.skip_bytes = 0;
        let Some(answers) = c.answers.as_mut() else {
            return;
        };
        if let Some(pending) = answers.pending.as_mut() {
            while let Some(stream) = pending.lose_next() {
                self.rec
                    .publish_fail_by(Failure::RequestLost, stream, client);
            }
        }
        for _ in 0..answers.queue.close() {
            self.rec.fail_by(Failure::RpcAnswerLost, client);
        }
    }

    /// When this device next needs attention for its answers: its oldest request's timeout,
    /// its next answer's due time.
    pub(super) fn answers_due_ns(&mut self, ci: usize) -> Option<u64> {
        let answers = self.conns[ci].answers.as_mut()?;
        let timeout = answers.pending.as_mut().and_then(|p| p.next_deadline_ns());
        let answer = answers.queue.next_due_ns();
        match (timeout, answer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// No request awaits its answer on this connection.
    pub(super) fn requests_settled(&self, ci: usize) -> bool {
        self.conns[ci]
            .answers
            .as_ref()
            .and_then(|a| a.pending.as_ref())
            .is_none_or(|p| p.pending() == 0)
    }
}
