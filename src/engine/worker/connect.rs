//! Connecting: a client's spawn time, its `--connect-rate` slot, the non-blocking connect
//! (complete only after writable + `take_error` + `peer_addr`), CONNECT and CONNACK.

use std::cmp::Reverse;
use std::io;
use std::sync::Arc;

use mio::{Interest, Token};

use super::clients::{client_id_of, subscriber_id_of};
use super::{errno, ns_to_us, Worker};
use crate::engine::conn::{Role, State};
use crate::engine::dial;
use crate::mqtt;
use crate::mqtt::v5::properties::{self as props, Properties};
use crate::stats::{Failure, Metric};

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
        let c = &mut self.conns[ci];
        c.stream = Some(stream);
        c.state = State::Connecting;
        c.connect_started_ns = now;
        c.connect_slot_reserved = false; // a reconnect is paced again
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
        self.send_connect(ci, now);
    }

    fn send_connect(&mut self, ci: usize, now: u64) {
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
        }
        let user_properties = connect_properties(&plan, c.index, &client_id);
        let connect = mqtt::v5::connect::Connect {
            client_id: &client_id,
            username: plan.username_for(c.index),
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
        c.next_due_ns = now;
        let latency_ns = now.saturating_sub(c.connect_started_ns);
        c.backoff_ns = 0;
        c.connected_at_ns = now;
        let reconnected_after_ns = c.lost_at_ns.take().map(|lost| now.saturating_sub(lost));
        self.connected += 1;
        self.rec.ok(Metric::Connect, ns_to_us(latency_ns));
        if let Some(after_ns) = reconnected_after_ns {
            self.rec.ok(Metric::Reconnect, ns_to_us(after_ns));
        }
        if self.conns[ci].is_subscriber() {
            self.send_subscribe(ci, now);
        } else {
            self.pump(ci, now);
        }
        Ok(())
    }
}

impl Worker {
    /// What an MQTT 5 CONNACK says about the server (3.1.1 has no properties: defaults).
    /// Receive Maximum caps the in-flight window, Server Keep Alive replaces ours; a plan the
    /// server cannot serve fails here, clearly, instead of by a disconnect later.
    fn honour_connack(&mut self, ci: usize, server: &Properties<'_>) -> Result<(), Failure> {
        let plan = &self.plan;
        let c = &self.conns[ci];
        if let Some(maximum_qos) = server.maximum_qos {
            let wanted = if c.is_subscriber() { 0 } else { plan.qos };
            if wanted > maximum_qos {
                return Err(Failure::Unsupported("--qos above the broker's Maximum QoS"));
            }
        }
        if let Some(maximum_bytes) = server.maximum_packet_size {
            let frame_bytes = c.frames.iter().map(|f| f.len()).max().unwrap_or(0);
            if frame_bytes > maximum_bytes as usize {
                return Err(Failure::PacketTooLarge {
                    frame_bytes: u32::try_from(frame_bytes).unwrap_or(u32::MAX),
                    maximum_bytes,
                });
            }
        }
        if plan.v5.topic_alias && !c.is_subscriber() && server.topic_alias_maximum.unwrap_or(0) == 0
        {
            return Err(Failure::Unsupported(
                "--topic-alias, but the broker's Topic Alias Maximum is 0",
            ));
        }
        if c.is_subscriber() {
            check_subscription_support(plan, server)?;
        }
        let receive_maximum = server.receive_maximum.unwrap_or(u16::MAX);
        if server.receive_maximum.is_some() {
            self.control.note_receive_maximum(receive_maximum);
        }
        let c = &mut self.conns[ci];
        c.send_window = usize::from(plan.max_inflight.min(receive_maximum).max(1));
        c.keep_alive_s = server.server_keep_alive_s.unwrap_or(plan.keep_alive_s);
        if let Some(id) = server.assigned_client_identifier {
            // Once per connect, not per message; only when the client sent an empty id.
            c.assigned_client_id = Some(String::from_utf8_lossy(id).into());
        }
        Ok(())
    }
}

/// A subscriber's needs against the CONNACK's Wildcard/Shared Subscription Available and
/// Subscription Identifiers Available (absent: available, section 3.2.2.3).
fn check_subscription_support(
    plan: &crate::plan::Plan,
    server: &Properties<'_>,
) -> Result<(), Failure> {
    let filter = plan.sub_topic.as_str();
    if plan.shared_subscription() && server.shared_subscription_available == Some(false) {
        return Err(Failure::Unsupported(
            "a $share/ filter, but the broker has no shared subscriptions",
        ));
    }
    if (filter.contains('+') || filter.contains('#'))
        && server.wildcard_subscription_available == Some(false)
    {
        return Err(Failure::Unsupported(
            "a wildcard filter, but the broker has no wildcard subscriptions",
        ));
    }
    if plan.v5.subscription_identifier.is_some()
        && server.subscription_identifiers_available == Some(false)
    {
        return Err(Failure::Unsupported(
            "--subscription-id, but the broker has no subscription identifiers",
        ));
    }
    Ok(())
}

/// The client's MQTT 5 CONNECT user properties, templates resolved (empty for most runs).
fn connect_properties(
    plan: &crate::plan::Plan,
    index: u64,
    client_id: &str,
) -> Vec<(String, String)> {
    if plan.v5.connect_user_properties.is_empty() {
        return Vec::new();
    }
    let vars = crate::payload::ClientVars {
        index,
        token: plan.token_for(index),
        client_id,
    };
    crate::payload::render_pairs(&plan.v5.connect_user_properties, &vars)
}
