//! Between TCP connect and CONNECT: the transport's own set-up (TLS handshake, WebSocket
//! upgrade), timed as parts of the connect row, and its failures named.
//!
//! A connection in `State::Handshaking` is driven by its socket events alone: each readable
//! event feeds the transport until the socket is empty, each event flushes what the transport
//! wants to send (ClientHello, Finished, the upgrade request). When every layer is open, the
//! CONNECT goes out as on a plain TCP connection.

use std::sync::Arc;

use super::Worker;
use crate::engine::conn::State;
use crate::plan::{HostPort, Plan};
use crate::stats::{Failure, Metric};
use crate::transport::{Dial, LinkFailure, ReadOutcome, Scheme, TlsFailure, Transport, WsError};

impl Worker {
    /// The transport of client `ci`'s next connection, from its host's scheme. A TLS client
    /// gets its own config (session cache) at its first connect and keeps it.
    pub(super) fn new_transport(&mut self, ci: usize) -> Result<Transport, Failure> {
        let plan = Arc::clone(&self.plan);
        let index = self.conns[ci].index;
        let Some(host) = host_of(&plan, index) else {
            return Ok(Transport::Tcp);
        };
        let tls = match plan.transport.tls.as_deref() {
            Some(setup) if host.scheme.uses_tls() => {
                let local = index - plan.client_index_offset;
                let config = self.conns[ci]
                    .tls_config
                    .get_or_insert_with(|| setup.client_config(local));
                Some((setup, Arc::clone(config)))
            }
            _ => None,
        };
        let dial = Dial {
            scheme: host.scheme,
            host: &host.host,
            ws_path: host.path.as_deref().unwrap_or(&plan.transport.ws_path),
            tls,
        };
        Transport::new(&dial).map_err(|_| Failure::Tls(TlsFailure::Other("cannot start a session")))
    }

    /// Whether the connect row is split into its parts: runs over TLS or WebSocket, and
    /// connection storms (`mqblast conn`).
    pub(super) fn splits_connect(&self) -> bool {
        self.plan.connect_only || self.plan.hosts.iter().any(|h| h.scheme != Scheme::Tcp)
    }

    /// TCP is up: start the transport's set-up, or send CONNECT at once over plain TCP.
    pub(super) fn start_handshake(&mut self, ci: usize, now: u64) {
        self.record_part(ci, Metric::ConnectTcp, now);
        if self.conns[ci].transport.is_open() {
            return self.send_connect(ci, now);
        }
        self.conns[ci].state = State::Handshaking;
        self.flush(ci, now);
    }

    /// A socket event during the set-up: read, send what the transport owes, and connect
    /// once every layer is open.
    pub(super) fn advance_handshake(&mut self, ci: usize, readable: bool, now: u64) {
        let tls_before = self.conns[ci].transport.tls_handshaking();
        if readable {
            if let Err(failure) = self.read_handshake(ci) {
                return self.close(ci, Some(failure));
            }
        }
        let c = &self.conns[ci];
        if tls_before && !c.transport.tls_handshaking() {
            let part = match c.transport.tls_resumed() {
                true => Metric::ConnectTlsResumed,
                false => Metric::ConnectTlsFull,
            };
            self.record_part(ci, part, now);
        }
        self.flush(ci, now);
        if self.conns[ci].state != State::Handshaking || !self.conns[ci].transport.is_open() {
            return;
        }
        if matches!(
            self.conns[ci].transport,
            Transport::Ws(_) | Transport::Wss(..)
        ) {
            self.record_part(ci, Metric::ConnectWs, now);
        }
        self.send_connect(ci, now);
    }

    /// Read until the socket is empty; no MQTT byte may arrive before CONNECT.
    fn read_handshake(&mut self, ci: usize) -> Result<(), Failure> {
        loop {
            let c = &mut self.conns[ci];
            let Some(stream) = c.stream.as_mut() else {
                return Ok(());
            };
            match c.transport.read(stream, &mut self.scratch) {
                ReadOutcome::Data { n: 0, drained, .. } if !drained => {}
                ReadOutcome::Data { n: 0, .. } | ReadOutcome::WouldBlock => return Ok(()),
                ReadOutcome::Data { .. } => {
                    return Err(Failure::Protocol("MQTT bytes before CONNECT"))
                }
                ReadOutcome::Eof => return Err(self.closed_in_handshake(ci)),
                ReadOutcome::Io(libc::ECONNRESET) => return Err(self.closed_in_handshake(ci)),
                ReadOutcome::Io(errno) => return Err(Failure::ConnectionLost(errno)),
                ReadOutcome::Failed(f) => return Err(link_failure(f)),
            }
        }
    }

    fn closed_in_handshake(&self, ci: usize) -> Failure {
        match self.conns[ci].transport.tls_handshaking() {
            true => Failure::Tls(TlsFailure::Other(
                "the broker closed the connection during the handshake (a plain MQTT port? use mqtt://)",
            )),
            false => Failure::WebSocket(WsError::BadUpgrade(
                "the broker closed the connection before answering the upgrade",
            )),
        }
    }

    /// What a connect that ran out of `--timeout` failed at.
    pub(super) fn handshake_timeout(&self, ci: usize) -> Failure {
        let c = &self.conns[ci];
        match c.state {
            State::Handshaking if c.transport.tls_handshaking() => {
                Failure::Tls(TlsFailure::HandshakeTimeout)
            }
            State::Handshaking => {
                Failure::WebSocket(WsError::BadUpgrade("no upgrade response within --timeout"))
            }
            _ => Failure::ConnectTimeout,
        }
    }

    /// Time one part of the connect row, from the end of the previous part.
    pub(super) fn record_part(&mut self, ci: usize, part: Metric, now: u64) {
        let c = &mut self.conns[ci];
        let took_ns = now.saturating_sub(c.phase_started_ns);
        c.phase_started_ns = now;
        if self.splits_connect() {
            self.rec.ok(part, took_ns / 1_000);
        }
    }
}

/// The failure a transport reported, as a failure reason.
pub(super) fn link_failure(f: LinkFailure) -> Failure {
    match f {
        LinkFailure::Tls(tls) => Failure::Tls(tls),
        LinkFailure::Ws(ws) => Failure::WebSocket(ws),
    }
}

/// The host client `index` connects to (None: the embedded broker, plain TCP).
fn host_of(plan: &Plan, index: u64) -> Option<&HostPort> {
    let hosts = &plan.hosts;
    (!hosts.is_empty()).then(|| &hosts[(index % hosts.len() as u64) as usize])
}
