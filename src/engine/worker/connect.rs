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
        self.send_connect(ci, now);
    }

    fn send_connect(&mut self, ci: usize, now: u64) {
        let plan = Arc::clone(&self.plan);
        let c = &mut self.conns[ci];
        let client_id = match c.role {
            Role::Subscriber { .. } => subscriber_id_of(&plan, c.index),
            Role::Publisher { .. } => client_id_of(&plan, c.index),
        };
        if c.is_subscriber() {
            // Subscribers own their (larger) buffer for the life of the connection.
            c.wbuf = Vec::with_capacity(c.write_capacity(plan.max_inflight));
        } else {
            c.lend_wbuf(&mut self.pool);
        }
        let connect = mqtt::connect::Connect {
            client_id: &client_id,
            username: plan.username_for(c.index),
            password: plan.password.as_deref().map(str::as_bytes),
            keep_alive_s: plan.keep_alive_s,
            clean_session: true,
        };
        mqtt::connect::encode(&mut c.wbuf, &connect);
        c.state = State::AwaitConnack;
        c.last_write_ns = now;
        self.mark_dirty(ci);
    }

    pub(super) fn on_connack(&mut self, ci: usize, code: u8, now: u64) -> Result<(), Failure> {
        if self.conns[ci].state != State::AwaitConnack {
            return Err(Failure::Protocol("unexpected CONNACK"));
        }
        if code != 0 {
            return Err(Failure::ConnackRefused(code));
        }
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
        } else if self.conns[ci].retiring {
            // Stepped down while connecting: it leaves now, connected and counted.
            self.step_down(ci, now);
        } else {
            self.pump(ci, now);
        }
        self.rearm_check(ci);
        Ok(())
    }
}
