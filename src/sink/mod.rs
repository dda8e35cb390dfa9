//! `mqblast sink`: a calibration target that acknowledges everything and discards payloads.
//!
//! Why it exists: a load test measures the generator and the broker together. Pointing
//! mqblast at the sink (like `iperf -s`) shows what a load-generator host can push on its
//! own, and lets benchmarks measure the generator without a broker as the bottleneck.
//! `--ack-delay` and `--stall` turn it into a slow or stalling broker with known behaviour,
//! to check that latency is reported honestly (coordinated omission) when a broker is slow.
//!
//! **It is not a broker**: it speaks just enough MQTT 3.1.1 and 5 to keep clients going. CONNECT
//! gets CONNACK 0 (no authentication), PUBLISH at QoS 1 gets PUBACK, at QoS 2 PUBREC and then
//! PUBCOMP on PUBREL, SUBSCRIBE gets a SUBACK granting the requested QoS, UNSUBSCRIBE gets
//! UNSUBACK, PINGREQ gets PINGRESP, DISCONNECT closes. Nothing is routed, stored or retained:
//! subscribers never receive a message, sessions are not kept, keep-alive is not enforced.
//!
//! Threads: one acceptor thread deals accepted streams round-robin to N pinned worker
//! threads (see [`acceptor`]), each a mio loop owning its connections (see [`worker`], which
//! also states every buffer's bound and what happens at it).

mod acceptor;
mod acks;
mod stall;
mod tls;
mod worker;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

pub use stall::{parse_duration, parse_stall, Stall};
pub use tls::SinkTls;

use acceptor::{Acceptor, WorkerInbox, INBOX_PER_WORKER};
use worker::{Shared, Worker, WorkerCounters};

/// One-line description for `mqblast sink --help`.
pub const ABOUT: &str =
    "Calibration sink: acknowledge MQTT publishes and discard them (not a broker)";

/// Long description for `mqblast sink --help`.
pub const LONG_ABOUT: &str = "\
Calibration sink, like `iperf -s`: listens for MQTT 3.1.1 and MQTT 5 clients (each answered \
in its own version), answers CONNECT, PUBLISH \
(QoS 1 and 2), SUBSCRIBE, UNSUBSCRIBE and PINGREQ, and discards every payload. Run it to learn \
what a load-generator host can push without a broker in the way.

NOT A BROKER: no routing (subscribers receive nothing), no persistence, no sessions, no \
retained messages, no authentication. Do not point real devices at it.

--ack-delay sends every PUBACK, PUBREC and PUBCOMP that long after the packet arrived \
(a slow broker). --stall EVERY:FOR stops reading all sockets for FOR every EVERY (a stalled \
broker); acks owed are sent after the stall.

It listens on 127.0.0.1:1883 unless --listen names another address (0.0.0.0:1883: every \
interface; anyone who can reach it can connect). Partial packets held between reads count \
against one bound for all connections together, 64 MiB: a read that would take the total \
past it closes that connection (counted, \"closed at the memory bound\" in the progress line); \
the others are served on.";

/// Bytes of partial packets (each connection's read leftover, counted by its capacity) all
/// connections may hold together. A connection whose next partial packet would take the
/// total past it is closed and counted ([`SinkTotals::over_memory`]); the others go on.
pub const BUFFERED_MAX_BYTES: usize = 64 << 20;

/// Delayed acks all workers may hold together (24 bytes each, allocated at start only when
/// `--ack-delay` is set). At the bound a worker stops reading until acks fall due.
pub const ACK_QUEUE_TOTAL: usize = 1 << 20;
/// Descriptors the sink's table is grown to at start (capped at the open-files limit; see
/// `limits::reserve_descriptors`): 65,536 connections, 0.5 MiB of table.
const SINK_DESCRIPTORS_RESERVED: u64 = 1 << 16;

/// Everything `mqblast sink` is told on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    pub listen: SocketAddr,
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
    /// Delay before every PUBACK, PUBREC and PUBCOMP; zero sends them at once.
    pub ack_delay: Duration,
    pub stall: Option<Stall>,
    /// Stop by itself after this long (`run` only).
    pub run_for: Option<Duration>,
    /// No per-second progress line (`run` only).
    pub quiet: bool,
    /// `--tls-cert`/`--tls-key`: terminate TLS (rustls) on every connection.
    pub tls: Option<SinkTls>,
    /// `--websocket`: speak MQTT over WebSocket (with `tls`: WebSocket over TLS).
    pub websocket: bool,
    /// Bound on partial-packet bytes over all connections ([`BUFFERED_MAX_BYTES`]).
    pub max_buffered_bytes: usize,
}

impl Default for SinkOptions {
    /// The MQTT port on loopback, one thread per core, no delay, no stall.
    fn default() -> SinkOptions {
        SinkOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            threads: 0,
            ack_delay: Duration::ZERO,
            stall: None,
            run_for: None,
            quiet: false,
            tls: None,
            websocket: false,
            max_buffered_bytes: BUFFERED_MAX_BYTES,
        }
    }
}

/// What the sink has seen, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkTotals {
    /// Connections accepted by workers since the start.
    pub connections: u64,
    /// Connections open now (at the end, for the totals `run` returns: zero).
    pub open_connections: u64,
    /// CONNECT packets answered.
    pub connects: u64,
    /// PUBLISH packets read, by QoS.
    pub publishes: [u64; 3],
    /// Bytes read from clients.
    pub bytes: u64,
    /// SUBSCRIBE packets answered.
    pub subscribes: u64,
    /// Connections closed for malformed bytes or packets out of protocol.
    pub malformed: u64,
    /// Connections closed because their partial packet would have taken the bytes all
    /// connections hold past [`SinkOptions::max_buffered_bytes`].
    pub over_memory: u64,
    /// Partial-packet bytes held now over all connections (capacity of their read leftovers).
    pub buffered_bytes: u64,
}

/// A sink running in this process. Dropping it stops it too.
pub struct SinkHandle {
    addr: SocketAddr,
    threads: usize,
    shared: Arc<Shared>,
    counters: Arc<[WorkerCounters]>,
    /// Every worker's waker, then the acceptor's.
    wakers: Vec<Arc<Waker>>,
    joins: Vec<JoinHandle<()>>,
}

impl SinkHandle {
    /// Address actually bound (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Worker threads serving connections.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Live totals. Workers publish their counters once per wakeup, before writing that
    /// wakeup's acks, so everything a client has seen acknowledged is counted here.
    pub fn totals(&self) -> SinkTotals {
        let mut sum = SinkTotals::default();
        for counters in self.counters.iter() {
            counters.add_to(&mut sum);
        }
        sum.buffered_bytes = self.shared.buffered_bytes.load(Ordering::Relaxed) as u64;
        sum
    }

    /// Stop accepting and serving, close every connection, and return the totals.
    pub fn stop(mut self) -> SinkTotals {
        self.shut_down();
        self.totals()
    }

    fn shut_down(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
        for join in self.joins.drain(..) {
            let _ = join.join();
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Bind `opts.listen` and start the acceptor and worker threads in this process. Quiet: it
/// prints nothing (`run` adds the banner and progress lines). Use port 0 and
/// [`SinkHandle::addr`] in tests.
///
/// # Errors
/// Binding, creating a poll or waker, or spawning a thread failed; whatever was started is
/// stopped again.
pub fn start(opts: &SinkOptions) -> io::Result<SinkHandle> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut listener = mio::net::TcpListener::bind(opts.listen)?;
    // Accepting grows the descriptor table while the workers run; grow it once now.
    crate::limits::reserve_descriptors(SINK_DESCRIPTORS_RESERVED);
    let shared = Arc::new(Shared {
        stop: Default::default(),
        started: Instant::now(),
        stall: opts.stall,
        ack_delay_ns: stall::duration_ns(opts.ack_delay),
        tls: opts.tls.clone(),
        websocket: opts.websocket,
        max_buffered_bytes: opts.max_buffered_bytes,
        buffered_bytes: Default::default(),
    });
    let mut handle = SinkHandle {
        addr: listener.local_addr()?,
        threads,
        shared: Arc::clone(&shared),
        counters: (0..threads).map(|_| WorkerCounters::default()).collect(),
        wakers: Vec::with_capacity(threads + 1),
        joins: Vec::with_capacity(threads + 1),
    };
    let ack_queue_capacity = ack_queue_per_worker(opts.ack_delay, threads);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut inboxes = Vec::with_capacity(threads);
    for id in 0..threads {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), worker::WAKER)?);
        let (sender, inbox) = crossbeam_channel::bounded(INBOX_PER_WORKER);
        let worker = Worker::new(
            id,
            poll,
            inbox,
            Arc::clone(&shared),
            Arc::clone(&handle.counters),
            ack_queue_capacity,
        );
        let core = cores.get(id % cores.len().max(1)).copied();
        let join = std::thread::Builder::new()
            .name(format!("sink-worker-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                worker.run();
            })?;
        handle.joins.push(join);
        handle.wakers.push(Arc::clone(&waker));
        inboxes.push(WorkerInbox { sender, waker });
    }
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, acceptor::LISTENER, mio::Interest::READABLE)?;
    handle
        .wakers
        .push(Arc::new(Waker::new(poll.registry(), acceptor::WAKER)?));
    let acceptor = Acceptor::new(poll, listener, inboxes, shared);
    let join = std::thread::Builder::new()
        .name("sink-acceptor".into())
        .spawn(move || acceptor.run())?;
    handle.joins.push(join);
    Ok(handle)
}

/// Each worker's share of [`ACK_QUEUE_TOTAL`], never less than a few reads' worth of acks
/// (below one read's worth a worker could never read again). Zero without `--ack-delay`.
fn ack_queue_per_worker(ack_delay: Duration, threads: usize) -> usize {
    if ack_delay.is_zero() {
        return 0;
    }
    (ACK_QUEUE_TOTAL / threads.max(1)).max(4 * worker::ACKS_PER_READ_MAX)
}

/// Run the sink in the foreground: print the banner, a progress line every second (unless
/// `quiet`), and return the totals once `stop()` says so (checked every 100 ms) or `run_for`
/// has elapsed.
///
/// # Errors
/// As [`start`].
pub fn run(opts: &SinkOptions, stop: &dyn Fn() -> bool) -> io::Result<SinkTotals> {
    const STOP_CHECK: Duration = Duration::from_millis(100);
    const REPORT_EVERY: Duration = Duration::from_secs(1);
    let handle = start(opts)?;
    eprintln!(
        "mqblast sink listening on {} ({} threads) — not a broker: payloads are discarded",
        handle.addr(),
        handle.threads()
    );
    let started = Instant::now();
    let deadline = opts.run_for.map(|d| started + d);
    let mut previous = (handle.totals(), started);
    let mut next_report = started + REPORT_EVERY;
    loop {
        let now = Instant::now();
        if stop() || deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_report {
            let current = handle.totals();
            if !opts.quiet {
                let (before, before_at) = &previous;
                eprintln!("{}", progress_line(before, &current, now - *before_at));
            }
            previous = (current, now);
            next_report += REPORT_EVERY;
        }
        let mut nap = STOP_CHECK.min(next_report.saturating_duration_since(now));
        if let Some(d) = deadline {
            nap = nap.min(d.saturating_duration_since(now));
        }
        std::thread::sleep(nap);
    }
    Ok(handle.stop())
}

/// One progress line: open connections and rates over the last `interval`.
fn progress_line(previous: &SinkTotals, current: &SinkTotals, interval: Duration) -> String {
    let seconds = interval.as_secs_f64().max(1e-9);
    let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
    let mut line = format!(
        "sink: {} connections open ({} accepted) | CONNECT/s {:.0} | PUBLISH/s qos0 {:.0} \
         qos1 {:.0} qos2 {:.0} | {:.2} MB/s in",
        current.open_connections,
        current.connections,
        rate(current.connects, previous.connects),
        rate(current.publishes[0], previous.publishes[0]),
        rate(current.publishes[1], previous.publishes[1]),
        rate(current.publishes[2], previous.publishes[2]),
        rate(current.bytes, previous.bytes) / 1e6,
    );
    if current.malformed > 0 {
        line.push_str(&format!(" | {} closed as malformed", current.malformed));
    }
    if current.over_memory > 0 {
        line.push_str(&format!(
            " | {} closed at the memory bound",
            current.over_memory
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_reports_rates_per_second_by_qos() {
        let before = SinkTotals {
            publishes: [0, 100, 0],
            bytes: 1_000_000,
            ..Default::default()
        };
        let after = SinkTotals {
            connections: 3,
            open_connections: 2,
            connects: 3,
            publishes: [10, 300, 4],
            bytes: 3_000_000,
            ..Default::default()
        };
        let line = progress_line(&before, &after, Duration::from_secs(2));
        assert_eq!(
            line,
            "sink: 2 connections open (3 accepted) | CONNECT/s 2 | PUBLISH/s qos0 5 qos1 100 \
             qos2 2 | 1.00 MB/s in"
        );
    }

    #[test]
    fn progress_line_mentions_malformed_connections_only_when_there_are_some() {
        let zero = SinkTotals::default();
        assert!(!progress_line(&zero, &zero, Duration::from_secs(1)).contains("malformed"));
        let bad = SinkTotals {
            malformed: 2,
            ..Default::default()
        };
        assert!(
            progress_line(&zero, &bad, Duration::from_secs(1)).ends_with("2 closed as malformed")
        );
    }

    #[test]
    fn ack_queue_is_only_allocated_with_an_ack_delay_and_never_below_a_few_reads() {
        assert_eq!(ack_queue_per_worker(Duration::ZERO, 4), 0);
        assert_eq!(
            ack_queue_per_worker(Duration::from_millis(1), 1),
            ACK_QUEUE_TOTAL
        );
        assert_eq!(
            ack_queue_per_worker(Duration::from_millis(1), 1024),
            4 * worker::ACKS_PER_READ_MAX
        );
    }
}
