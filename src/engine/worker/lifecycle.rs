//! A connection's life after connecting: periodic housekeeping (connect, subscribe and ack
//! timeouts, keep-alive), losing and closing it, `--reconnect` back-off and `--churn`.

use std::cmp::Reverse;
use std::time::Instant;

use super::{ns_to_us, Drain, Worker, RECONNECT_FIRST_NS, RECONNECT_MAX_NS};
use crate::engine::conn::{Role, State};
use crate::mqtt;
use crate::stats::{Failure, Metric};
use crate::transport::Transport;

/// A check re-armed by its own handling comes back no sooner than this.
const MIN_RECHECK_NS: u64 = 1_000;
/// Reads (of this many bytes, on the stack) that drop what a closing connection received.
const END_READS_MAX: usize = 16;
const END_READ_BYTES: usize = 4096;

impl Worker {
    /// The worker's tick: sample the connected count and ship stats when an interval is over.
    pub(super) fn housekeeping(&mut self) {
        self.rec.set_connected(self.connected);
        self.rec.maybe_flush(Instant::now());
    }

    /// A connection's check came due (`when` is its time; an entry whose time is no longer
    /// the connection's armed check is stale and ignored): connect, subscribe, ack and write
    /// timeouts, keep-alive and churn, then the next check is armed.
    pub(super) fn fire_check(&mut self, ci: usize, when: u64, now: u64) {
        if self.conns[ci].check_at_ns != when {
            return;
        }
        self.conns[ci].check_at_ns = u64::MAX;
        match self.conns[ci].state {
            State::Connecting | State::Handshaking | State::AwaitConnack => {
                self.check_connect_timeout(ci, now)
            }
            State::AwaitSuback => self.check_subscribe_timeout(ci, now),
            State::Connected => {
                if self.write_stalled(ci, now) {
                    self.close(ci, Some(Failure::WriteTimeout));
                } else {
                    self.expire_acks(ci, now);
                    self.expire_requests(ci, now);
                    self.write_due_answers(ci, now);
                    self.keep_alive(ci, now);
                    self.churn(ci, now);
                }
            }
            _ => {}
        }
        // Never re-armed in the past: a deadline that handling did not move cannot spin.
        if let Some(when) = self.next_check_ns(ci) {
            self.arm_check(ci, when.max(now + MIN_RECHECK_NS));
        }
    }

    /// Arm the connection's check at its next deadline, if that is earlier than the one armed.
    pub(super) fn rearm_check(&mut self, ci: usize) {
        if let Some(when) = self.next_check_ns(ci) {
            self.arm_check(ci, when);
        }
    }

    /// Make sure the connection is checked no later than `when_ns`.
    ///
    /// Bound: an entry is pushed only when `when_ns` is earlier than the armed check, and the
    /// old entry stays behind, stale, until its time. Every deadline armed is "now + a fixed
    /// duration" (timeout, keep-alive margin, churn), so between two checks a connection can
    /// lower its check once per kind of deadline: a handful of stale entries at most.
    #[inline]
    pub(super) fn arm_check(&mut self, ci: usize, when_ns: u64) {
        let c = &mut self.conns[ci];
        if when_ns < c.check_at_ns {
            c.check_at_ns = when_ns;
            self.checks.push(Reverse((when_ns, ci as u32)));
        }
    }

    /// When something about this connection is next due (None: nothing while in this state).
    fn next_check_ns(&mut self, ci: usize) -> Option<u64> {
        let answers_due = match self.conns[ci].state {
            State::Connected => self.answers_due_ns(ci),
            _ => None,
        };
        let c = &self.conns[ci];
        let timeout_ns = self.timeout_ns;
        match c.state {
            State::Connecting | State::Handshaking | State::AwaitConnack | State::AwaitSuback => {
                Some(c.connect_started_ns + timeout_ns + 1)
            }
            State::Connected => {
                let mut due = u64::MAX;
                if let Some(since) = c.write_blocked_since_ns {
                    due = due.min(since + timeout_ns + 1);
                }
                if let Some(sent) = c.inflight.oldest_outstanding_sent_ns() {
                    due = due.min(sent + timeout_ns + 1);
                }
                let keep_alive_ns = c.keep_alive_s as u64 * 1_000_000_000;
                if keep_alive_ns > 0 {
                    due = due.min(match c.ping_sent_ns {
                        Some(sent) => sent + timeout_ns.max(keep_alive_ns) + 1,
                        None => c.last_write_ns + ping_after_ns(keep_alive_ns),
                    });
                }
                if c.retiring {
                    due = due.min(c.retire_deadline_ns);
                }
                if let Some(answers_due) = answers_due {
                    due = due.min(answers_due);
                }
                // Once due, the last ack recycles the connection (`on_ack`), not a timer.
                let churns = !c.is_subscriber() && !c.churn_due && self.drain == Drain::No;
                if let Some(churn) = self.plan.churn.filter(|_| churns) {
                    due = due.min(c.connected_at_ns + churn.as_nanos() as u64);
                }
                (due != u64::MAX).then_some(due)
            }
            _ => None,
        }
    }

    fn check_connect_timeout(&mut self, ci: usize, now: u64) {
        if now.saturating_sub(self.conns[ci].connect_started_ns) > self.timeout_ns {
            let failure = self.handshake_timeout(ci);
            self.close(ci, Some(failure));
        }
    }

    /// Queued bytes the socket has taken none of for `--timeout`: the peer stopped reading.
    fn write_stalled(&self, ci: usize, now: u64) -> bool {
        self.conns[ci]
            .write_blocked_since_ns
            .is_some_and(|since| now.saturating_sub(since) > self.timeout_ns)
    }

    fn check_subscribe_timeout(&mut self, ci: usize, now: u64) {
        if now.saturating_sub(self.conns[ci].connect_started_ns) > self.timeout_ns {
            self.settle_subscriber(ci, Some(Failure::SubscribeTimeout), now);
            self.close(ci, None);
        }
    }

    /// Count publishes unacknowledged for `--timeout` as timed out. They leave the in-flight
    /// window, so publishing goes on; their packet ids stay held until the broker acks them
    /// [MQTT-2.3.1-2] and new publishes take other ids. Only when every id of the space is
    /// held has the broker stopped acknowledging on this connection, which is then closed (a
    /// new session, with `--reconnect`, frees them).
    fn expire_acks(&mut self, ci: usize, now: u64) {
        if self.conns[ci].inflight.outstanding() == 0 || now < self.timeout_ns {
            return;
        }
        let client = self.conns[ci].client();
        let rec = &mut self.rec;
        let expired = self.conns[ci]
            .inflight
            .expire_sent_before(now - self.timeout_ns, |stream| {
                rec.publish_fail_by(Failure::AckTimeout, stream, client)
            });
        self.inflight_total -= expired as u64;
        if self.conns[ci].inflight.all_ids_held() {
            self.close(ci, Some(Failure::AckWindowStalled));
        } else if expired > 0 {
            // The window has room again.
            self.pump(ci, now);
        }
    }

    fn keep_alive(&mut self, ci: usize, now: u64) {
        let keep_alive_ns = self.conns[ci].keep_alive_s as u64 * 1_000_000_000;
        if keep_alive_ns == 0 {
            return;
        }
        let c = &self.conns[ci];
        match c.ping_sent_ns {
            Some(sent) if now.saturating_sub(sent) > self.timeout_ns.max(keep_alive_ns) => {
                self.close(ci, Some(Failure::ConnectionLost(libc::ETIMEDOUT)));
            }
            None if now.saturating_sub(c.last_write_ns) >= ping_after_ns(keep_alive_ns) => {
                self.conns[ci].ping_sent_ns = Some(now);
                self.conns[ci].last_write_ns = now;
                self.reply(ci, mqtt::connect::encode_pingreq);
            }
            _ => {}
        }
    }

    /// The connection broke: errno 0 means the broker closed it.
    pub(super) fn lose(&mut self, ci: usize, errno: i32) {
        let failure = match self.conns[ci].state {
            State::Connecting => Failure::ConnectFailed(errno),
            _ => Failure::ConnectionLost(errno),
        };
        self.close(ci, Some(failure));
    }

    /// Close a client for good, recording why (None: a normal stop). Before its CONNACK a loss
    /// or protocol error counts as a failed connect (`Failure::before_connack`).
    pub(super) fn close(&mut self, ci: usize, failure: Option<Failure>) {
        if self.conns[ci].state == State::Closed {
            return;
        }
        let now = self.control.now_ns();
        let connecting = self.conns[ci].before_connack();
        let failure = failure.map(|f| if connecting { f.before_connack() } else { f });
        if let Some(f) = failure.filter(|&f| self.retries(f)) {
            return self.retry_later(ci, f, now);
        }
        let lost_subscriber = failure.map(|_| Failure::SubscriberLost);
        self.settle_subscriber(ci, lost_subscriber, now);
        let c = &mut self.conns[ci];
        let (client, rec) = (c.client(), &mut self.rec);
        // Publishes in flight are lost with the connection when it failed (a normal close
        // has already waited for them).
        let lost = c.inflight.clear(|stream| {
            if failure.is_some() {
                rec.publish_fail_by(Failure::InflightLost, stream, client);
            }
        });
        if matches!(c.state, State::Connected | State::AwaitSuback) {
            self.connected -= 1;
            if failure.is_none() {
                self.rec
                    .ok(Metric::Connection, session_us(c.connected_at_ns, now));
            }
        }
        if !c.is_subscriber() {
            self.live_publishers -= 1;
            // Its unpublished share is given up (the failure that closed it is reported).
            let holds_quota = self.plan.messages.is_some() && c.quota > 0;
            self.quota_holders -= u32::from(holds_quota);
        }
        c.state = State::Closed;
        c.check_at_ns = u64::MAX;
        self.end_stream(ci);
        let c = &mut self.conns[ci];
        c.transport = Transport::Tcp;
        c.return_wbuf(&mut self.pool);
        if c.is_subscriber() {
            c.wbuf = Vec::new();
        }
        c.rbuf = Vec::new();
        self.live -= 1;
        self.inflight_total -= lost as u64;
        if let Some(f) = failure {
            self.rec.fail_by(f, self.conns[ci].client());
        }
    }

    /// `--reconnect` retries a lost or failed connection, not a refusal that would repeat
    /// (bad credentials) nor a protocol error; never once the run is stopping. A TLS or
    /// WebSocket failure, or a close before CONNACK, is retried too: a broker restarting its
    /// listener or rotating its certificate shows them for a while. Each attempt is counted
    /// under its own name, so a setting that can never work shows as a growing count.
    fn retries(&self, failure: Failure) -> bool {
        let transient = matches!(
            failure,
            Failure::ConnectionLost(_)
                | Failure::LostBeforeConnack(_)
                | Failure::ConnectFailed(_)
                | Failure::ConnectTimeout
                | Failure::ClosedBeforeConnack
                | Failure::Tls(_)
                | Failure::WebSocket(_)
                // 3.1.1 server unavailable; MQTT 5 Server unavailable, Server busy.
                | Failure::ConnackRefused(3 | 0x88 | 0x89)
                // MQTT 5 DISCONNECT: Server busy, Server shutting down, Keep Alive timeout.
                | Failure::ServerDisconnect(0x89 | 0x8B | 0x8D)
        );
        self.plan.reconnect && transient && self.drain == Drain::No
    }

    /// `--churn`: once a publisher has been connected for the churn time, stop publishing on
    /// it; when its in-flight window is empty, DISCONNECT and connect again at once.
    pub(super) fn churn(&mut self, ci: usize, now: u64) {
        if self.conns[ci].retiring {
            return self.step_down(ci, now);
        }
        let Some(churn) = self.plan.churn else {
            return;
        };
        let c = &mut self.conns[ci];
        if c.is_subscriber() || self.drain != Drain::No || c.state != State::Connected {
            return;
        }
        if now.saturating_sub(c.connected_at_ns) < churn.as_nanos() as u64 {
            return;
        }
        c.churn_due = true;
        if c.inflight.outstanding() > 0 {
            return;
        }
        self.reply(ci, mqtt::connect::encode_disconnect);
        self.flush(ci, now);
        self.send_ws_close(ci, now);
        let connected_at_ns = self.conns[ci].connected_at_ns;
        self.rec
            .ok(Metric::Connection, session_us(connected_at_ns, now));
        self.detach(ci);
        let c = &mut self.conns[ci];
        c.churn_due = false;
        c.reconnect_at_ns = now;
        self.timers.push(Reverse((now, ci as u32)));
    }

    /// Close the socket so that the broker reads an orderly end: whatever was flushed (the
    /// DISCONNECT at a stop or a churn), then our FIN. Closing a socket with unread bytes in
    /// its receive queue makes the kernel send a reset instead of the FIN, and a broker that
    /// acks late (or a stray PINGRESP) leaves such bytes behind at any moment; so the write
    /// side is shut first (the FIN then precedes any reset), and what already arrived is read
    /// and dropped. Bound: [`END_READS_MAX`] reads of [`END_READ_BYTES`], on the stack, so a
    /// peer that keeps sending cannot hold the worker here.
    fn end_stream(&mut self, ci: usize) {
        self.end_answers(ci);
        let c = &mut self.conns[ci];
        let Some(mut stream) = c.stream.take() else {
            return;
        };
        c.transport.close(&mut stream);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; END_READ_BYTES];
        for _ in 0..END_READS_MAX {
            match std::io::Read::read(&mut stream, &mut sink) {
                Ok(n) if n > 0 => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => break, // end of stream, WouldBlock or an error: nothing more to read
            }
        }
        let _ = self.poll.registry().deregister(&mut stream);
    }

    /// Take a stepped-down client out of the run until the user target takes it back.
    pub(super) fn park(&mut self, ci: usize) {
        self.conns[ci].return_wbuf(&mut self.pool);
        self.detach(ci);
        let c = &mut self.conns[ci];
        c.retiring = false;
        c.churn_due = false;
        c.parked = true;
    }

    /// Drop the socket and buffers and make the client wait for its next connect.
    fn detach(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if matches!(c.state, State::Connected | State::AwaitSuback) {
            self.connected -= 1;
        }
        self.end_stream(ci);
        let c = &mut self.conns[ci];
        c.transport = Transport::Tcp;
        c.wbuf = Vec::new();
        c.rbuf = Vec::new();
        c.state = State::Waiting;
        c.ping_sent_ns = None;
        c.timer_at_ns = u64::MAX;
        c.read_paused = false;
        c.peer_closed = false;
        c.write_blocked_since_ns = None;
        c.check_at_ns = u64::MAX;
    }

    /// Record the failure, drop the connection and come back after the back-off: the client
    /// keeps its sequence numbers; what was in flight is lost (clean session).
    fn retry_later(&mut self, ci: usize, failure: Failure, now: u64) {
        let lost_subscriber = Some(Failure::SubscriberLost);
        self.settle_subscriber(ci, lost_subscriber, now);
        // What a subscriber misses until it is back is no evidence of the broker's queue.
        if let Role::Subscriber { slot } = self.conns[ci].role {
            if let Some(audit) = self.audits.get_mut(slot as usize) {
                audit.interrupted = true;
            }
        }
        let client = self.conns[ci].client();
        let rec = &mut self.rec;
        let lost = self.conns[ci].inflight.clear(|stream| {
            rec.publish_fail_by(Failure::InflightLost, stream, client);
        });
        self.detach(ci);
        let c = &mut self.conns[ci];
        c.churn_due = false;
        c.lost_at_ns.get_or_insert(now);
        c.backoff_ns = (c.backoff_ns * 2).clamp(RECONNECT_FIRST_NS, RECONNECT_MAX_NS);
        c.reconnect_at_ns = now + c.backoff_ns;
        self.timers.push(Reverse((c.reconnect_at_ns, ci as u32)));
        self.inflight_total -= lost as u64;
        self.rec.fail_by(failure, self.conns[ci].client());
    }
}

/// How long a connection may stay silent before it sends PINGREQ: three quarters of the
/// keep-alive, so the ping is written *before* the interval ends [MQTT-3.1.2-23] even when
/// the check (every `HOUSEKEEPING_NS`) or the thread runs late. A quarter of the keep-alive
/// (at least 250 ms at the 1 s minimum) is the margin.
fn ping_after_ns(keep_alive_ns: u64) -> u64 {
    keep_alive_ns - keep_alive_ns / 4
}

/// How long an established connection lasted, for the `connection` row (the recorder clamps
/// it to the histograms' bound of one hour).
fn session_us(connected_at_ns: u64, now_ns: u64) -> u64 {
    ns_to_us(now_ns.saturating_sub(connected_at_ns))
}
