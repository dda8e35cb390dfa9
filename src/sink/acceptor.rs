//! The acceptor thread: one listener, streams dealt round-robin to the workers.
//!
//! One acceptor rather than one `SO_REUSEPORT` listener per worker: std cannot set socket
//! options before `bind`, and accepting is not the hot path (a worker serves each connection
//! for its whole life). Round-robin also spreads connections evenly whatever the kernel's
//! hash of the client ports would do.
//!
//! Bound: each worker's inbox holds [`INBOX_PER_WORKER`] streams. When the chosen worker's
//! inbox is full the next ones are tried; when all are full the acceptor waits for room
//! (re-checking the stop flag every 100 ms), and new connections queue in the kernel's listen
//! backlog (1024 with mio) instead of in memory.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Poll, Token, Waker};

use super::worker::Shared;
use crate::transport::rx_stamp;

/// Streams queued for one worker before the acceptor waits.
pub(crate) const INBOX_PER_WORKER: usize = 1024;
pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
/// The acceptor re-checks the stop flag and retries failed accepts this often.
const TICK: Duration = Duration::from_millis(100);
/// At most one "accept failed" line per this interval (EMFILE can repeat for a long time).
const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A worker as the acceptor sees it: where to queue a stream and how to wake the worker.
pub(crate) struct WorkerInbox {
    pub sender: Sender<TcpStream>,
    pub waker: Arc<Waker>,
}

pub(crate) struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    workers: Vec<WorkerInbox>,
    shared: Arc<Shared>,
    next_worker: usize,
    last_error_report: Option<Instant>,
}

impl Acceptor {
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        workers: Vec<WorkerInbox>,
        shared: Arc<Shared>,
    ) -> Acceptor {
        Acceptor {
            poll,
            listener,
            workers,
            shared,
            next_worker: 0,
            last_error_report: None,
        }
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(16);
        while !self.shared.stopping() {
            // Accept on every tick, not only on events: after an error (EMFILE) the edge
            // may already be spent while connections still wait in the backlog.
            self.accept_all();
            match self.poll.poll(&mut events, Some(TICK)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("sink acceptor: poll failed: {e}");
                    return;
                }
            }
        }
    }

    /// Accept until the backlog is empty, handing each stream to a worker.
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // Acks are tiny and latency is what the client measures: no Nagle.
                    let _ = stream.set_nodelay(true);
                    // `--ack-delay` is timed from each packet's arrival (`rx_stamp`).
                    if self.shared.ack_delay_ns > 0 {
                        rx_stamp::enable(stream.as_raw_fd());
                    }
                    self.hand_over(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.report_error(&e);
                    return;
                }
            }
        }
    }

    /// Queue the stream on the next worker with room, waiting if every inbox is full.
    fn hand_over(&mut self, stream: TcpStream) {
        let count = self.workers.len();
        let mut stream = stream;
        for offset in 0..count {
            let index = (self.next_worker + offset) % count;
            match self.workers[index].sender.try_send(stream) {
                Ok(()) => return self.delivered(index),
                Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => stream = back,
            }
        }
        let index = self.next_worker;
        loop {
            if self.shared.stopping() {
                return;
            }
            match self.workers[index].sender.send_timeout(stream, TICK) {
                Ok(()) => return self.delivered(index),
                Err(SendTimeoutError::Timeout(back)) => stream = back,
                // The worker has exited (it only does when stopping): drop the stream.
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }

    fn delivered(&mut self, index: usize) {
        let _ = self.workers[index].waker.wake();
        self.next_worker = (index + 1) % self.workers.len();
    }

    fn report_error(&mut self, e: &io::Error) {
        let now = Instant::now();
        let due = self
            .last_error_report
            .is_none_or(|last| now.duration_since(last) >= ERROR_REPORT_INTERVAL);
        if due {
            eprintln!("sink acceptor: accept failed: {e}");
            self.last_error_report = Some(now);
        }
    }
}
