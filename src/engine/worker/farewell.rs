//! The end of a WebSocket connection: after the DISCONNECT, our close frame (status 1000),
//! and at the end of a run a bounded wait for the broker's close frame or end of stream
//! before the socket is dropped (RFC 6455 section 7.1.1: the server closes the TCP
//! connection first).
//!
//! Bound: [`WS_CLOSE_WAIT_NS`] (or `--timeout` when shorter) for all of a worker's
//! connections together, so a broker that stays silent costs a run at most that at its end.
//! A connection recycled by `--churn` or stepped down sends its close frame and does not
//! wait: its next connect starts at once.

use std::time::Duration;

use mio::Events;

use super::Worker;
use crate::transport::ReadOutcome;

/// Longest wait at the end of a run for the brokers' close frames.
pub(super) const WS_CLOSE_WAIT_NS: u64 = 2_000_000_000;

/// Readiness events taken per wait.
const EVENTS_PER_WAIT: usize = 256;

impl Worker {
    /// After the DISCONNECT went out whole over WebSocket: send our close frame. True when
    /// the connection is still there to wait for the broker's close.
    pub(super) fn send_ws_close(&mut self, ci: usize, now: u64) -> bool {
        let c = &mut self.conns[ci];
        if !c.wbuf.is_empty() || !c.transport.begin_close() {
            return false;
        }
        self.flush(ci, now);
        self.conns[ci].stream.is_some()
    }

    /// Read (and drop) what the `closing` connections receive until each saw the broker's
    /// close frame or end of stream, or the bound passed.
    pub(super) fn await_ws_closes(&mut self, closing: &[usize]) {
        let deadline_ns = self.control.now_ns() + WS_CLOSE_WAIT_NS.min(self.timeout_ns);
        let mut open: Vec<usize> = closing.to_vec();
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        loop {
            let waiting = std::mem::take(&mut open);
            for ci in waiting {
                if !self.ws_close_seen(ci) {
                    open.push(ci);
                }
            }
            let now = self.control.now_ns();
            if open.is_empty() || now >= deadline_ns {
                return;
            }
            let left = Duration::from_nanos(deadline_ns - now);
            if self.poll.poll(&mut events, Some(left)).is_err() {
                return;
            }
        }
    }

    /// Read until the socket is empty; true once the broker closed (close frame, end of
    /// stream, or an error that ends the connection anyway).
    fn ws_close_seen(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let Some(stream) = c.stream.as_mut() else {
            return true;
        };
        loop {
            match c.transport.read(stream, &mut self.scratch) {
                ReadOutcome::Data { .. } => {}
                ReadOutcome::WouldBlock => return false,
                _ => return true,
            }
        }
    }
}
