//! The HTTP server, with every queue bounded by us: one acceptor thread admits connections
//! into a queue of [`MAX_PENDING`], served by [`HANDLERS`] threads, one request per
//! connection. At each bound the behaviour is decided here:
//! - more connections than the handlers and the queue hold: `503` with a JSON error, written
//!   by the acceptor without reading anything (it never blocks on a client), then closed;
//! - a head over `http::MAX_HEAD_BYTES`: `431`; a body over [`MAX_BODY_BYTES`]: `413`;
//!   a chunked body: `411`;
//! - a request not complete within [`REQUEST_READ_TIMEOUT`] of its connection being
//!   accepted (a slow or silent client): `408`; the reply written and the connection closed
//!   within [`CONNECTION_TIMEOUT`] of the accept, whatever the client reads.
//!
//! Deadlines count from the accept, not from a handler taking the connection, so clients
//! queued behind slow ones expire together instead of in turns of [`HANDLERS`]. What that
//! bounds, for a client that sends its request at once and finds a place:
//! - behind clients that stall sending, it is answered [`REQUEST_READ_TIMEOUT`] (5 s) after
//!   connecting at most, plus the time to serve it (measured: 5.0 s behind 19 stalled
//!   clients, test `a_prompt_client_behind_nineteen_stalled_ones_...`; 24.2 s when each
//!   deadline started at the handler's turn and a stalled client held its handler for a
//!   second more after its 408);
//! - behind clients that stall reading their replies, [`CONNECTION_TIMEOUT`] (10 s) plus
//!   twice [`LATE_GRACE`] for each connection a handler takes late ahead of it (at most 5
//!   per handler): 11 s at most.
//!
//! Threads and memory are never exhausted: at most `HANDLERS + MAX_PENDING + LINGERING_MAX`
//! connections are held.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::api::{self, Reply};
use super::guard::Guard;
use super::http::{self, Head};
use super::session::Session;
use super::MAX_BODY_BYTES;
use crate::plan::WebPlan;

/// Threads serving requests (each holds one connection at a time).
pub const HANDLERS: usize = 4;
/// Connections accepted and waiting for a handler; more are refused with 503.
pub const MAX_PENDING: usize = 16;
/// From a connection's accept to its request's last byte.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// From a connection's accept to its close: the reply is written (and the client's close
/// awaited) by then.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// What a connection taken from the queue after its deadline still gets: the request it
/// already sent is read without waiting, and one write and the close may take this long.
const LATE_GRACE: Duration = Duration::from_millis(100);
/// Refused connections kept open (their 503 written) until the client closes, so the
/// request it sent does not turn our close into a reset that loses the 503; beyond this,
/// or after [`LINGER`], they are closed at once.
const LINGERING_MAX: usize = 64;
const LINGER: Duration = Duration::from_secs(1);
/// How often the acceptor looks at lingering connections while there are any.
const LINGER_TICK: Duration = Duration::from_millis(100);
const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);

/// An accepted connection and when it was accepted (its deadlines count from then).
type Admitted = (TcpStream, Instant);

/// A running server; dropping it stops accepting (handlers finish what they hold).
pub struct WebServer {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Arc<Waker>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.wake();
        if let Some(thread) = self.acceptor.take() {
            let _ = thread.join();
        }
    }
}

/// Bind `web.listen` and serve `session` until the returned server is dropped.
pub fn serve(web: &WebPlan, session: Arc<Session>) -> Result<WebServer, String> {
    let cannot = |e: std::io::Error| format!("cannot serve the web UI on {}: {e}", web.listen);
    let listener = TcpListener::bind(web.listen).map_err(cannot)?;
    listener.set_nonblocking(true).map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let guard = Arc::new(Guard::new(addr.ip(), web.auth.as_ref()));
    let (admitted, pending) = crossbeam_channel::bounded(MAX_PENDING);
    for h in 0..HANDLERS {
        let (session, pending) = (Arc::clone(&session), pending.clone());
        let guard = Arc::clone(&guard);
        thread::Builder::new()
            .name(format!("mqblast-web{h}"))
            .spawn(move || handle_all(&pending, &session, &guard))
            .map_err(|e| format!("cannot start the web threads: {e}"))?;
    }
    let poll = Poll::new().map_err(cannot)?;
    poll.registry()
        .register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )
        .map_err(cannot)?;
    let wake = Arc::new(Waker::new(poll.registry(), WAKE).map_err(cannot)?);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let acceptor = thread::Builder::new()
        .name("mqblast-web".into())
        .spawn(move || accept_all(poll, &listener, &admitted, &stopping))
        .map_err(|e| format!("cannot start the web thread: {e}"))?;
    Ok(WebServer {
        addr,
        stop,
        wake,
        acceptor: Some(acceptor),
    })
}

/// A refused connection waiting for its client to close.
struct Lingering {
    stream: TcpStream,
    until: Instant,
}

/// The acceptor: admit or refuse each connection as it arrives; never reads a request.
fn accept_all(
    mut poll: Poll,
    listener: &TcpListener,
    admitted: &Sender<Admitted>,
    stop: &AtomicBool,
) {
    let mut events = Events::with_capacity(2);
    let mut lingering: Vec<Lingering> = Vec::with_capacity(LINGERING_MAX);
    // Events are edge-triggered: after a failed accept, retry on a tick, not on the next event.
    let mut retry = false;
    while !stop.load(Ordering::Acquire) {
        let timeout = (retry || !lingering.is_empty()).then_some(LINGER_TICK);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                // Nothing to wait with: check again after a tick rather than spin.
                thread::sleep(LINGER_TICK);
            }
        }
        retry = loop {
            match listener.accept() {
                Ok((stream, _)) => admit(stream, admitted, &mut lingering),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                // A transient failure (out of descriptors): retried on the next tick.
                Err(_) => break true,
            }
        };
        linger_on(&mut lingering);
    }
}

fn admit(stream: TcpStream, admitted: &Sender<Admitted>, lingering: &mut Vec<Lingering>) {
    let stream = match admitted.try_send((stream, Instant::now())) {
        Ok(()) => return,
        Err(TrySendError::Full((stream, _)) | TrySendError::Disconnected((stream, _))) => stream,
    };
    let busy = Reply::error(
        503,
        &format!(
            "the web UI is busy: {} connections are open or waiting; try again",
            HANDLERS + MAX_PENDING
        ),
    );
    // A fresh socket's send buffer takes the whole reply: this write does not wait.
    let _ = stream.set_nonblocking(true);
    let _ = (&stream).write_all(&http::encode_reply(&busy, false));
    let _ = stream.shutdown(Shutdown::Write);
    if lingering.len() < LINGERING_MAX {
        lingering.push(Lingering {
            stream,
            until: Instant::now() + LINGER,
        });
    }
}

/// Read and drop what refused clients sent; close those that closed or outstayed [`LINGER`].
fn linger_on(lingering: &mut Vec<Lingering>) {
    let now = Instant::now();
    let mut scratch = [0u8; 4096];
    lingering.retain(|l| {
        let open = loop {
            match (&l.stream).read(&mut scratch) {
                Ok(0) => break false,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        };
        open && now < l.until
    });
}

fn handle_all(pending: &Receiver<Admitted>, session: &Session, guard: &Guard) {
    while let Ok((stream, accepted)) = pending.recv() {
        handle(stream, accepted, session, guard);
    }
}

/// Why no request came from a connection.
enum Unread {
    /// The client closed before sending anything: nothing to answer.
    Closed,
    /// Answer this (malformed, too large, unauthorized); the client may still be sending.
    Refused(Reply),
    /// Answer this (408): the client did not send its request in time.
    Late(Reply),
}

fn handle(mut stream: TcpStream, accepted: Instant, session: &Session, guard: &Guard) {
    let _ = stream.set_nonblocking(false);
    let read_by = accepted + REQUEST_READ_TIMEOUT;
    // Whether the client may still be sending what we did not read (a refused body): then
    // closing waits for it, so that its bytes do not turn our close into a reset.
    let (reply, head_only, unread) = match read_request(&mut stream, read_by, guard) {
        Ok((head, body)) => {
            let head_only = head.method == "HEAD";
            (api::route(session, &head, &body), head_only, false)
        }
        Err(Unread::Closed) => return,
        Err(Unread::Late(reply)) => (reply, false, false),
        Err(Unread::Refused(reply)) => (reply, false, true),
    };
    let closed_by = accepted + CONNECTION_TIMEOUT;
    if write_by(
        &mut stream,
        &http::encode_reply(&reply, head_only),
        closed_by,
    ) {
        close_gently(stream, closed_by, unread);
    }
}

/// Write `bytes` unless `deadline` passes first (then one more write may take
/// [`LATE_GRACE`]); false when the client did not take them.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> bool {
    while !bytes.is_empty() {
        let _ = stream.set_write_timeout(Some(left_until(deadline)));
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
        if !bytes.is_empty() && Instant::now() >= deadline {
            return false;
        }
    }
    true
}

/// Time left until `deadline`, at least [`LATE_GRACE`]: a connection taken from the queue
/// after its deadline still has a request read if it is already there, and a reply written
/// if the socket takes it at once.
fn left_until(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(LATE_GRACE)
}

/// The head and body of one request; a 403 (Host) or 401 (auth) before the body is read.
fn read_request(
    stream: &mut TcpStream,
    deadline: Instant,
    guard: &Guard,
) -> Result<(Head, Vec<u8>), Unread> {
    let mut buf = Vec::with_capacity(4096);
    let head = loop {
        if let Some(head) = http::parse_head(&buf).map_err(Unread::Refused)? {
            break head;
        }
        if read_some(stream, &mut buf, deadline)? == 0 {
            return Err(match buf.is_empty() {
                true => Unread::Closed,
                false => Unread::Refused(Reply::error(400, "the request ended mid-head")),
            });
        }
    };
    guard.check_host(&head).map_err(Unread::Refused)?;
    if !guard.authorized(&head) {
        return Err(Unread::Refused(Reply::unauthorized()));
    }
    if head.content_length > MAX_BODY_BYTES {
        return Err(Unread::Refused(Reply::error(
            413,
            "the request body is too large",
        )));
    }
    let mut body = buf.split_off(head.head_bytes.min(buf.len()));
    let length = head.content_length as usize;
    if head.expects_continue && body.len() < length {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while body.len() < length {
        if read_some(stream, &mut body, deadline)? == 0 {
            return Err(Unread::Refused(Reply::error(
                400,
                "the request body is shorter than its Content-Length",
            )));
        }
    }
    body.truncate(length);
    Ok((head, body))
}

/// One read into `buf` (at most 4 KiB), waiting no later than `deadline`: 408 after it.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, Unread> {
    let late = || {
        Unread::Late(Reply::error(
            408,
            &format!(
                "the request did not arrive within {} s",
                REQUEST_READ_TIMEOUT.as_secs()
            ),
        ))
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        // Taken from the queue late: what the client sent in time is read, nothing awaited.
        let _ = stream.set_nonblocking(true);
    } else {
        let _ = stream.set_read_timeout(Some(left));
    }
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk);
        if left.is_zero() {
            let _ = stream.set_nonblocking(false);
        }
        match read {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(late())
            }
            Err(_) => return Err(Unread::Closed),
        }
    }
}

/// After the reply: end our side, then read what the client still sends (a body we refused,
/// at most [`MAX_BODY_BYTES`] more, for at most [`LINGER`]) so that closing does not reset
/// the connection before the client has read the reply.
fn close_gently(mut stream: TcpStream, closed_by: Instant, unread: bool) {
    let _ = stream.shutdown(Shutdown::Write);
    if unread {
        let linger = closed_by
            .saturating_duration_since(Instant::now())
            .clamp(LATE_GRACE, LINGER);
        let _ = stream.set_read_timeout(Some(linger));
    } else {
        // The whole request was read (or the client stalled): take what is already there and
        // close, without holding the handler for a client that keeps its end open.
        let _ = stream.set_nonblocking(true);
    }
    let mut left = MAX_BODY_BYTES as usize + 4096;
    let mut scratch = [0u8; 4096];
    while left > 0 {
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
