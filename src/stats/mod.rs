//! Latency and failure accounting: thread-local recorders on the workers, one merger thread.
//!
//! Workers never send one channel message per sample: each keeps fixed-bound HDR histograms
//! and counters (a [`Recorder`]) and ships them as one [`Interval`] per second over a bounded
//! crossbeam channel. The merger sends the emptied `Interval` back on a recycle channel, so in
//! steady state nothing is allocated on either side. Merging adds histograms; percentiles are
//! never averaged.

pub mod hdr_codec;
pub mod merger;
pub mod recorder;
pub mod summary;
pub mod timeline;

pub use merger::{Merger, MergerConfig};
pub use recorder::{Interval, Recorder, MAX_FAILURE_KINDS, SPARE_INTERVALS};
pub use summary::{ErrorCount, MetricSummary, Source, Summary};
pub use timeline::TimelineEntry;

use crossbeam_channel::{bounded, Receiver, Sender};
use hdrhistogram::Histogram;

/// Highest latency a histogram holds (1 hour, in microseconds). Larger values are clamped to
/// it, so recording never reallocates.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant decimal digits of every histogram (0.1% resolution).
pub const SIGFIG: u8 = 3;
/// How often workers ship their interval histograms.
pub const INTERVAL_MS: u64 = 1000;
/// Intervals that exist per worker: the one being recorded plus [`SPARE_INTERVALS`]. Every
/// queue an `Interval` can sit in is sized to hold all of them, so no send of a worker's
/// interval can find its queue full for lack of room, only for lack of a free interval.
pub const INTERVALS_PER_WORKER: usize = 1 + SPARE_INTERVALS;

/// The channels between `workers` recorders and the merger.
///
/// Returns the data channel (one `Sender` to clone into each recorder, the `Receiver` for the
/// merger), bounded at [`INTERVALS_PER_WORKER`] intervals per worker, and one recycle channel
/// per worker (the `Sender` for the merger, the `Receiver` for recorder `i`), bounded at
/// [`INTERVALS_PER_WORKER`]. Since a recorder never owns more than `INTERVALS_PER_WORKER`
/// intervals in total, neither bound is reached in practice; if the merger falls behind, a
/// recorder runs out of free intervals first and keeps accumulating into its current one.
#[allow(clippy::type_complexity)]
pub fn channels(
    workers: usize,
) -> (
    Sender<Interval>,
    Receiver<Interval>,
    Vec<(Sender<Interval>, Receiver<Interval>)>,
) {
    let (tx, rx) = bounded(workers.max(1) * INTERVALS_PER_WORKER);
    let recycle = (0..workers)
        .map(|_| bounded(INTERVALS_PER_WORKER))
        .collect();
    (tx, rx, recycle)
}

/// A latency histogram with fixed bounds (values in microseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, SIGFIG)
        .expect("static histogram bounds are valid")
}

/// The request rows of the stats table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// TCP connect + CONNECT -> CONNACK.
    Connect = 0,
    /// QoS 1: PUBLISH -> PUBACK; QoS 2: PUBLISH -> PUBCOMP; QoS 0: scheduled time -> written
    /// to the socket. Always measured from the scheduled send time.
    Publish = 1,
    /// Subscriber clients: SUBSCRIBE -> SUBACK.
    Subscribe = 2,
    /// Publish -> subscriber receive, from the timestamp publishers embed in the payload
    /// (see `payload::e2e`); "requests" are the marked messages subscribers received.
    EndToEnd = 3,
    /// `--reconnect`: connection lost -> CONNACK again (back-off included).
    Reconnect = 4,
}

pub const N_METRICS: usize = 5;

impl Metric {
    /// Every metric, in index order (`Metric as usize`).
    pub const ALL: [Metric; N_METRICS] = [
        Metric::Connect,
        Metric::Publish,
        Metric::Subscribe,
        Metric::EndToEnd,
        Metric::Reconnect,
    ];

    /// Index into per-metric arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case key used in JSON and CSV (`connect`, `publish`).
    pub fn key(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Publish => "publish",
            Metric::Subscribe => "subscribe",
            Metric::EndToEnd => "e2e",
            Metric::Reconnect => "reconnect",
        }
    }

    /// Rows shown even when empty; the others appear only in runs that use them, so a
    /// plain publish run prints exactly the tables it always did.
    pub fn always_shown(self) -> bool {
        matches!(self, Metric::Connect | Metric::Publish)
    }
}

/// Why a request failed. `Copy` and allocation-free so recording a failure on the hot path
/// costs nothing; `describe` makes the text only at report time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// CONNACK with a non-zero return code (ThingsBoard: 5 for an unknown token).
    ConnackRefused(u8),
    /// The TCP connect failed; the OS error number.
    ConnectFailed(i32),
    /// No CONNACK within the timeout.
    ConnectTimeout,
    /// An established connection was lost (OS error number; 0 = closed by the broker).
    ConnectionLost(i32),
    /// A publish got no acknowledgement within the timeout (or by the end of the stop timeout).
    AckTimeout,
    /// Every packet id of the in-flight window was held by a timed-out publish: the broker
    /// stopped acknowledging, so the connection was closed.
    AckWindowStalled,
    /// A publish could not be written within the timeout (the broker stopped reading); the
    /// connection was closed.
    WriteTimeout,
    /// The run stopped while the connect was in progress (before CONNACK).
    ConnectAborted,
    /// A publish was in flight when its connection was lost.
    InflightLost,
    /// The broker sent bytes that are not valid MQTT 3.1.1 (or a packet we did not expect).
    Protocol(&'static str),
    /// SUBACK refused the subscription (return code 0x80).
    SubackRefused(u8),
    /// No SUBACK within the timeout.
    SubscribeTimeout,
    /// A subscriber's connection failed before its SUBACK (connect, CONNACK or lost).
    SubscriberLost,
    /// MQTT 5: PUBACK or PUBREC with a failure reason code (>= 0x80), e.g. 0x87 Not
    /// authorized, 0x97 Quota exceeded.
    PublishRefused(u8),
    /// MQTT 5: the broker sent DISCONNECT with this reason code and closed the connection.
    ServerDisconnect(u8),
    /// MQTT 5: the broker sent AUTH (enhanced authentication), which mqblast does not speak.
    AuthReceived(u8),
    /// MQTT 5: the CONNACK says the broker lacks what the plan needs (the text names it).
    Unsupported(&'static str),
    /// MQTT 5: a PUBLISH frame is larger than the broker's Maximum Packet Size (CONNACK), so
    /// sending it would only make the broker disconnect.
    PacketTooLarge {
        frame_bytes: u32,
        maximum_bytes: u32,
    },
}

use crate::mqtt::reason::Named;

/// What to do when a connect fails at an operating-system limit ("" for other errors).
fn connect_limit_hint(errno: i32) -> &'static str {
    match errno {
        libc::EADDRNOTAVAIL => ": no free ephemeral port for this source and broker address (or a --bind address that is not on this host); spread connections over more local source addresses with --bind (e.g. --bind 127.0.0.2-127.0.0.40 on loopback) or over more brokers with -H",
        libc::EMFILE => ": the open-files limit of this process is reached; raise it (ulimit -n, or the hard limit in /etc/security/limits.conf) or run fewer users per process",
        libc::ENFILE => ": the system-wide open-files limit is reached (fs.file-max); raise it or spread the users over more hosts",
        _ => "",
    }
}

impl Failure {
    /// Which row of the stats table this failure counts against.
    pub fn metric(&self) -> Metric {
        match self {
            Failure::ConnackRefused(_)
            | Failure::ConnectFailed(_)
            | Failure::ConnectTimeout
            | Failure::ConnectAborted
            | Failure::ConnectionLost(_)
            | Failure::AckWindowStalled
            | Failure::Protocol(_)
            | Failure::ServerDisconnect(_)
            | Failure::AuthReceived(_)
            | Failure::Unsupported(_)
            | Failure::PacketTooLarge { .. } => Metric::Connect,
            Failure::AckTimeout
            | Failure::InflightLost
            | Failure::WriteTimeout
            | Failure::PublishRefused(_) => Metric::Publish,
            Failure::SubackRefused(_) | Failure::SubscribeTimeout | Failure::SubscriberLost => {
                Metric::Subscribe
            }
        }
    }

    /// One readable line, e.g. `CONNACK refused: 5 (not authorized)`.
    pub fn describe(&self) -> String {
        match *self {
            Failure::ConnackRefused(code) => {
                format!("CONNACK refused: {}", Named { code, connack: true })
            }
            Failure::ConnectFailed(errno) => {
                format!(
                    "connect failed: {}{}",
                    std::io::Error::from_raw_os_error(errno),
                    connect_limit_hint(errno)
                )
            }
            Failure::ConnectTimeout => "connect timed out: no CONNACK".to_string(),
            Failure::ConnectionLost(0) => "connection lost: closed by the broker".to_string(),
            Failure::ConnectionLost(errno) => {
                format!(
                    "connection lost: {}",
                    std::io::Error::from_raw_os_error(errno)
                )
            }
            Failure::AckTimeout => "publish timed out: no acknowledgement".to_string(),
            Failure::AckWindowStalled => {
                "connection closed: every packet id of the in-flight window held by an unacknowledged publish".to_string()
            }
            Failure::WriteTimeout => {
                "write timed out: the broker stopped reading for --timeout".to_string()
            }
            Failure::ConnectAborted => "connect aborted: run stopped before CONNACK".to_string(),
            Failure::InflightLost => {
                "publish lost: connection closed before acknowledgement".to_string()
            }
            Failure::Protocol(what) => format!("protocol error: {what}"),
            Failure::SubackRefused(0x80) => {
                "SUBACK refused: 0x80 (the broker rejected the subscription)".to_string()
            }
            Failure::SubackRefused(code) => {
                format!("SUBACK refused: {}", Named { code, connack: false })
            }
            Failure::SubscribeTimeout => "subscribe timed out: no SUBACK".to_string(),
            Failure::SubscriberLost => {
                "subscriber lost before its SUBACK (connect failed, refused or closed)".to_string()
            }
            Failure::PublishRefused(code) => {
                format!("publish refused: {}", Named { code, connack: false })
            }
            Failure::ServerDisconnect(code) => {
                format!("DISCONNECT from the broker: {}", Named { code, connack: false })
            }
            Failure::AuthReceived(code) => format!(
                "AUTH from the broker ({}): enhanced authentication is not supported",
                Named { code, connack: false }
            ),
            Failure::Unsupported(what) => format!("the broker cannot serve this plan: {what}"),
            Failure::PacketTooLarge {
                frame_bytes,
                maximum_bytes,
            } => format!(
                "publish of {frame_bytes} bytes exceeds the broker's Maximum Packet Size of {maximum_bytes} bytes (CONNACK): use a smaller payload"
            ),
        }
    }
}
