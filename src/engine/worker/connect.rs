//! Connecting: a client's spawn time, its `--connect-rate` slot, the non-blocking connect
//! (complete only after writable + `take_error` + `peer_addr`), CONNECT and CONNACK.

use std::cmp::Reverse;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::{Interest, Token};

use super::clients::{client_id_of, subscriber_id_of};
use super::server::connect_properties;
use super::{errno, ns_to_us, Worker};
use crate::engine::conn::{Role, State};
use crate::engine::dial;
use crate::mqtt;
use crate::mqtt::v5::properties::{self as props, Properties};
use crate::stats::{Failure, Metric};
use crate::transport::rx_stamp;

/// Capacity of a publisher's `rbuf` from its CONNECT: the longest ack a read may split,
/// without properties (32 bytes a connection, 64 with the allocator's overhead).
const SPLIT_ACK_BYTES: usize = 32;

impl Worker {
    /// A client's spawn time came: connect now, or at its `--connect-rate` slot.
    pub(super) fn spawn_due(&mut self, ci: usize, now: u64) {
        if !self.conns[ci].connect_slot_reserved {
            let slot_ns = self.pacer.reserve(now);
            if slot_ns > now {
                self.conns[ci].connect_slot_reserved = true;
                self.timers.push(Reverse((slot_ns, ci as u32)));
                return;
            }
        }
        self.start_connect(ci, now);
    }

    fn start_connect(&mut self, ci: usize, now: u64) {
        let (addr, source) = (self.conns[ci].addr, self.conns[ci].source);
        let mut stream = match dial::connect(addr, source) {
            Ok(s) => s,
            Err(e) => return self.close(ci, Some(Failure::ConnectFailed(errno(&e)))),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(ci), interest)
        {
            return self.close(ci, Some(Failure::ConnectFailed(errno(&e))));
        }
        let transport = match self.new_transport(ci) {
            Ok(t) => t,
            Err(f) => return self.close(ci, Some(f)),
        };
        // Acks are timed from when they arrive, not from when the loop reads them. Without
        // stamps (TLS) a late read would be a late figure: no read gap in this worker.
        let stamped = transport.stamps_arrivals() && rx_stamp::enable(stream.as_raw_fd());
        self.unstamped |= !stamped;
        let c = &mut self.conns[ci];
        c.stream = Some(stream);
        c.transport = transport;
        c.state = State::Connecting;
        c.connect_started_ns = now;
        c.phase_started_ns = now;
        self.last_connect_ns = now;
        c.connect_slot_reserved = false; // a reconnect is paced again
        self.rearm_check(ci);
    }

    /// A non-blocking connect is complete only after writable + `take_error` + `peer_addr`.
    pub(super) fn finish_connect(&mut self, ci: usize, now: u64) {
        let Some(stream) = self.conns[ci].stream.as_ref() else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.close(ci, Some(Failure::ConnectFailed(errno(&e)))),
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // spurious wakeup
            Err(e) => return self.close(ci, Some(Failure::ConnectFailed(errno(&e)))),
        }
        let _ = stream.set_nodelay(true);
        self.start_handshake(ci, now);
    }

    pub(super) fn send_connect(&mut self, ci: usize, now: u64) {
        let plan = Arc::clone(&self.plan);
        let c = &mut self.conns[ci];
        let client_id = match (&c.assigned_client_id, c.role) {
            (Some(assigned), _) => assigned.to_string(),
            (None, Role::Subscriber { .. }) => subscriber_id_of(&plan, c.index),
            (None, Role::Publisher { .. }) => client_id_of(&plan, c.index),
        };
        if c.is_subscriber() {
            // Subscribers own their (larger) buffer for the life of the connection.
            c.wbuf = Vec::with_capacity(c.write_capacity(plan.max_inflight));
        } else {
            c.lend_wbuf(&mut self.pool);
            // Room for an ack a read splits, made now rather than at the first split (which
            // may come at any message): acks are 2 to 5 bytes under 3.1.1, more only with
            // MQTT 5 properties (then `rbuf` grows once, to that packet's size).
            c.rbuf.reserve(SPLIT_ACK_BYTES);
        }
        let user_properties = connect_properties(&plan, c.index, &client_id);
        let username = plan.username_for(c.index);
        let connect = mqtt::v5::connect::Connect {
            client_id: &client_id,
            username: username.as_deref(),
            password: plan.password.as_deref().map(str::as_bytes),
            keep_alive_s: plan.keep_alive_s,
            clean_start: plan.clean_start,
            session_expiry_s: plan.v5.session_expiry_s,
            receive_maximum: plan.v5.receive_maximum,
            maximum_packet_size: plan.v5.maximum_packet_size,
            topic_alias_maximum: plan.v5.topic_alias_maximum,
            request_problem_information: plan.v5.request_problem_information,
            user_properties: &user_properties,
        };
        plan.mqtt_version.encode_connect(&mut c.wbuf, &connect);
        c.alias_set = false;
        c.state = State::AwaitConnack;
        c.last_write_ns = now;
        self.mark_dirty(ci);
    }

    pub(super) fn on_connack(
        &mut self,
        ci: usize,
        code: u8,
        properties: &[u8],
        now: u64,
    ) -> Result<(), Failure> {
        if self.conns[ci].state != State::AwaitConnack {
            return Err(Failure::Protocol("unexpected CONNACK"));
        }
        if code != 0 {
            return Err(Failure::ConnackRefused(code));
        }
        let server =
            Properties::parse(properties, props::CONNACK).map_err(|e| Failure::Protocol(e.0))?;
        self.honour_connack(ci, &server)?;
        let c = &mut self.conns[ci];
        c.state = State::Connected;
        c.streams.start(now);
        self.start_gateway(ci, now);
        let c = &mut self.conns[ci];
        let latency_ns = now.saturating_sub(c.connect_started_ns);
        c.backoff_ns = 0;
        c.connected_at_ns = now;
        let reconnected_after_ns = c.lost_at_ns.take().map(|lost| now.saturating_sub(lost));
        self.connected += 1;
        self.set_first_due(ci, now);
        self.rec.ok(Metric::Connect, ns_to_us(latency_ns));
        self.record_part(ci, Metric::ConnectMqtt, now);
        if let Some(after_ns) = reconnected_after_ns {
            self.rec.ok(Metric::Reconnect, ns_to_us(after_ns));
        }
        if self.conns[ci].is_subscriber() {
            self.send_subscribe(ci, now);
        } else if self.conns[ci].retiring {
            // Stepped down while connecting: it leaves now, connected and counted.
            self.step_down(ci, now);
        } else {
            // Subscribed before the first request goes out: the broker handles the
            // SUBSCRIBE first, so no answer can come before the subscription.
            self.subscribe_answers(ci);
            self.pump(ci, now);
        }
        self.rearm_check(ci);
        Ok(())
    }
}
