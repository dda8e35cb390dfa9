//! Latency and failure accounting: thread-local recorders on the workers, one merger thread.
//!
//! Workers never send one channel message per sample: each keeps fixed-bound HDR histograms
//! and counters (a [`Recorder`]) and ships them as one [`Interval`] per second over a bounded
//! crossbeam channel. The merger sends the emptied `Interval` back on a recycle channel, so in
//! steady state nothing is allocated on either side. Merging adds histograms; percentiles are
//! never averaged.

pub mod audit;
pub mod hdr_codec;
pub mod live;
pub mod merger;
pub mod recorder;
pub mod summary;
pub mod timeline;

pub use merger::{Merger, MergerConfig};
pub use recorder::{Examples, Interval, Recorder, MAX_FAILURE_KINDS, SPARE_INTERVALS};
pub use summary::{ClientNamer, ErrorCount, ErrorExample, MetricSummary, Source, Summary};
pub use timeline::TimelineEntry;

use crossbeam_channel::{bounded, Receiver, Sender};
use hdrhistogram::Histogram;

/// Highest latency a histogram holds (1 hour, in microseconds). Larger values are clamped to
/// it, so recording never reallocates. The `connection` row's session durations share the
/// bound: a session longer than an hour is counted exactly but its duration reads as 1 hour.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Most example clients kept per failure reason (per recorder interval, per merged run and per
/// `merge`), so a failure report can name devices while its memory stays bounded.
pub const MAX_ERROR_EXAMPLES: usize = 10;
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
    /// An established connection, from its CONNACK to its end. Ok: it ended by our choice
    /// (DISCONNECT at stop or `--churn`, or closed by us), sampled with the session's duration;
    /// failed: lost after its CONNACK (OS error, closed by the broker, keep-alive timeout,
    /// protocol error). Every CONNACK starts one, so at the end `connect.ok` equals this row's
    /// requests, and the `connect` row counts connect attempts only; except that acks for
    /// packet ids nothing held (`Failure::StrayAck`) are counted here too, on a connection
    /// that goes on.
    Connection = 5,
    /// The connect row split (TLS and WebSocket runs, and `mqblast conn`): TCP connect.
    ConnectTcp = 6,
    /// TLS handshake, full (no session resumed).
    ConnectTlsFull = 7,
    /// TLS handshake resumed from a session ticket; its count is the resumption count.
    ConnectTlsResumed = 8,
    /// WebSocket upgrade: request -> 101.
    ConnectWs = 9,
    /// CONNECT -> CONNACK.
    ConnectMqtt = 10,
    /// `--rpc-responder`: server-side RPC requests the devices received, timed from the
    /// request's arrival to its answer handed to the socket (the configured delay included);
    /// failed: dropped (the answer queue was full, or the connection closed with the answer
    /// still queued) or malformed, by name.
    RpcResponder = 11,
}

pub const N_METRICS: usize = 12;

impl Metric {
    /// Every metric, in index order (`Metric as usize`).
    pub const ALL: [Metric; N_METRICS] = [
        Metric::Connect,
        Metric::Publish,
        Metric::Subscribe,
        Metric::EndToEnd,
        Metric::Reconnect,
        Metric::Connection,
        Metric::ConnectTcp,
        Metric::ConnectTlsFull,
        Metric::ConnectTlsResumed,
        Metric::ConnectWs,
        Metric::ConnectMqtt,
        Metric::RpcResponder,
    ];

    /// The parts of the connect row, in the order a connection goes through them.
    pub const CONNECT_PARTS: [Metric; 5] = [
        Metric::ConnectTcp,
        Metric::ConnectTlsFull,
        Metric::ConnectTlsResumed,
        Metric::ConnectWs,
        Metric::ConnectMqtt,
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
            Metric::Connection => "connection",
            Metric::ConnectTcp => "connect_tcp",
            Metric::ConnectTlsFull => "connect_tls_full",
            Metric::ConnectTlsResumed => "connect_tls_resumed",
            Metric::ConnectWs => "connect_ws",
            Metric::ConnectMqtt => "connect_mqtt",
            Metric::RpcResponder => "rpc_responder",
        }
    }

    /// Row name of a connect part (`connect:tls-full`); None for the other metrics.
    pub fn part_name(self) -> Option<&'static str> {
        Some(match self {
            Metric::ConnectTcp => "connect:tcp",
            Metric::ConnectTlsFull => "connect:tls-full",
            Metric::ConnectTlsResumed => "connect:tls-resumed",
            Metric::ConnectWs => "connect:ws-upgrade",
            Metric::ConnectMqtt => "connect:mqtt",
            _ => return None,
        })
    }

    /// What the row is to the Aggregated row: independent requests (covered by it), a
    /// breakdown of requests counted on another row (the connect phases, `reconnect`), or
    /// the sessions of established connections (`connection`), which are no requests.
    pub fn kind(self) -> RowKind {
        match self {
            Metric::Connect
            | Metric::Publish
            | Metric::Subscribe
            | Metric::EndToEnd
            | Metric::RpcResponder => RowKind::Request,
            Metric::Reconnect
            | Metric::ConnectTcp
            | Metric::ConnectTlsFull
            | Metric::ConnectTlsResumed
            | Metric::ConnectWs
            | Metric::ConnectMqtt => RowKind::Breakdown,
            Metric::Connection => RowKind::Sessions,
        }
    }

    /// Whether the row counts independent requests, the rows Aggregated adds up.
    pub fn is_request(self) -> bool {
        self.kind() == RowKind::Request
    }

    /// Whether the row's samples are response times. The `connection` row's are session
    /// durations (seconds to hours): the Aggregated row leaves them out of its times, or
    /// its mean and maximum would describe sessions rather than responses.
    pub fn is_response_time(self) -> bool {
        self != Metric::Connection
    }

    /// Rows shown even when empty; the others appear only in runs that use them, so a
    /// plain publish run prints exactly the tables it always did.
    pub fn always_shown(self) -> bool {
        matches!(self, Metric::Connect | Metric::Publish)
    }
}

/// What a row is to the Aggregated row (see [`Metric::kind`]). As in Locust, where every
/// row is a request, Aggregated adds the request rows only: a connect's phases are parts of
/// that connect, a `reconnect` is also a `connect`, and a session is no request at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Independent requests: `connect`, `publish`, `subscribe`, `e2e`, `rpc-responder` (the
    /// requests the devices answer).
    Request,
    /// Parts or views of requests counted on another row: `connect:tcp`, `connect:mqtt`...,
    /// `reconnect` (each is also a `connect`). Shown apart, outside Aggregated.
    Breakdown,
    /// `connection`: established connections, ended by us (ok) or lost (failed), with their
    /// session lengths. Reported in a section of its own.
    Sessions,
}

/// A client named by a failure: its global client index (with `--shard`, its index in the
/// whole plan) and whether it is a subscriber (whose client id differs). Plain numbers, so
/// recording one costs no allocation; ids are rendered from them at report time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientRef {
    pub subscriber: bool,
    pub index: u64,
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
    /// An established connection (after its CONNACK) was lost: OS error number (0 = closed by
    /// the broker; `ETIMEDOUT` = no PINGRESP within the keep-alive).
    ConnectionLost(i32),
    /// The connection was lost after the TCP connect but before the CONNACK (OS error number;
    /// 0 = closed by the broker): a failed connect attempt.
    LostBeforeConnack(i32),
    /// A publish got no acknowledgement within the timeout (or by the end of the stop timeout).
    AckTimeout,
    /// Every packet id (1..=65535) was held by a timed-out publish: the broker stopped
    /// acknowledging, so the connection was closed.
    AckWindowStalled,
    /// An acknowledgement for a packet id no publish of the connection held (a duplicate, or
    /// an id never sent). Counted on the connection row; the connection is kept.
    StrayAck(StrayAck),
    /// A publish could not be written within the timeout (the broker stopped reading); the
    /// connection was closed.
    WriteTimeout,
    /// The run stopped while the connect was in progress (before CONNACK).
    ConnectAborted,
    /// A publish was in flight when its connection was lost.
    InflightLost,
    /// After the CONNACK, the broker sent bytes that are not valid MQTT 3.1.1 (or a packet we
    /// did not expect); the connection is closed.
    Protocol(&'static str),
    /// The same before the CONNACK: a failed connect attempt.
    ProtocolBeforeConnack(&'static str),
    /// SUBACK refused the subscription (return code 0x80).
    SubackRefused(u8),
    /// No SUBACK within the timeout.
    SubscribeTimeout,
    /// A subscriber's connection failed before its SUBACK (connect, CONNACK or lost).
    SubscriberLost,
    /// TLS failed (handshake, certificate, alert from the broker).
    Tls(crate::transport::TlsFailure),
    /// The WebSocket upgrade or framing failed, or the broker sent a close frame.
    WebSocket(crate::transport::WsError),
    /// The broker closed the connection before CONNACK (often a plain client on a TLS or
    /// WebSocket port).
    ClosedBeforeConnack,
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
    /// A request (`attribute-request`, `rpc-call`) got no answer within the timeout, counted
    /// from its send. On its stream's row.
    RequestTimeout,
    /// A request awaited its answer when its connection closed or the run ended. On its
    /// stream's row.
    RequestLost,
    /// An answer to a request of this kind (the stream kind's name) that had already timed
    /// out. Never a success; on the connection row, the connection is kept.
    AnswerLate(&'static str),
    /// A further answer to a request of this kind already answered.
    AnswerDuplicate(&'static str),
    /// An answer on this kind's answer topic for an id the connection never used (or used
    /// too long ago to remember, see `workload::answers`), or not an id at all.
    AnswerUnknown(&'static str),
    /// A PUBLISH to a device bigger than the read buffer (its size): skipped unread, the
    /// connection kept.
    IncomingTooLarge(u32),
    /// A PUBLISH to a device on a topic it did not subscribe to for answers or requests.
    IncomingUnexpected,
    /// The broker refused the device's subscription to its answer (or RPC request) topics:
    /// SUBACK with this code. Its requests will time out; the connection is kept.
    AnswerSubscribeRefused(u8),
    /// `--rpc-responder`: a request was not answered: the device's answer queue was full.
    RpcQueueFull,
    /// `--rpc-responder`: an answer was still queued when its connection closed or the run
    /// ended.
    RpcAnswerLost,
    /// `--rpc-responder`: a request that cannot be answered (why).
    RpcMalformed(&'static str),
    /// `--gateway --rpc-responder`: a request on `v1/gateway/rpc` for a device the gateway
    /// does not carry: not answered.
    RpcUnknownDevice,
}

use crate::mqtt::reason::Named;

/// Which acknowledgement named a packet id that nothing held (`Failure::StrayAck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrayAck {
    PubAck,
    PubRec,
    PubComp,
}

impl StrayAck {
    pub fn name(self) -> &'static str {
        match self {
            StrayAck::PubAck => "PUBACK",
            StrayAck::PubRec => "PUBREC",
            StrayAck::PubComp => "PUBCOMP",
        }
    }

    /// The protocol error of this ack arriving for a publish that waits for another one.
    pub fn out_of_order(self) -> &'static str {
        match self {
            StrayAck::PubAck => "PUBACK for a publish not waiting for one",
            StrayAck::PubRec => "refusing PUBREC for a publish already past its PUBREC",
            StrayAck::PubComp => "PUBCOMP for a packet id not waiting for one",
        }
    }
}

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
            | Failure::LostBeforeConnack(_)
            | Failure::ProtocolBeforeConnack(_) => Metric::Connect,
            Failure::ConnectionLost(_)
            | Failure::Protocol(_)
            | Failure::AckWindowStalled
            | Failure::StrayAck(_)
            | Failure::WriteTimeout
            | Failure::ServerDisconnect(_)
            | Failure::WebSocket(crate::transport::WsError::Closed(_)) => Metric::Connection,
            Failure::Tls(_)
            | Failure::WebSocket(_)
            | Failure::ClosedBeforeConnack
            | Failure::AuthReceived(_)
            | Failure::Unsupported(_)
            | Failure::PacketTooLarge { .. } => Metric::Connect,
            Failure::AckTimeout
            | Failure::InflightLost
            | Failure::PublishRefused(_)
            | Failure::RequestTimeout
            | Failure::RequestLost => Metric::Publish,
            Failure::AnswerLate(_)
            | Failure::AnswerDuplicate(_)
            | Failure::AnswerUnknown(_)
            | Failure::IncomingTooLarge(_)
            | Failure::IncomingUnexpected
            | Failure::AnswerSubscribeRefused(_) => Metric::Connection,
            Failure::RpcQueueFull
            | Failure::RpcAnswerLost
            | Failure::RpcMalformed(_)
            | Failure::RpcUnknownDevice => Metric::RpcResponder,
            Failure::SubackRefused(_) | Failure::SubscribeTimeout | Failure::SubscriberLost => {
                Metric::Subscribe
            }
        }
    }

    /// This failure as it reads for a connection still waiting for its CONNACK: a loss or a
    /// protocol error then is a failed connect attempt, not a lost connection. The worker,
    /// which knows the connection's state, decides; other failures are returned unchanged.
    pub fn before_connack(self) -> Failure {
        match self {
            Failure::ConnectionLost(errno) => Failure::LostBeforeConnack(errno),
            Failure::Protocol(what) => Failure::ProtocolBeforeConnack(what),
            other => other,
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
            Failure::LostBeforeConnack(0) => {
                "connection lost before CONNACK: closed by the broker".to_string()
            }
            Failure::LostBeforeConnack(errno) => {
                format!(
                    "connection lost before CONNACK: {}",
                    std::io::Error::from_raw_os_error(errno)
                )
            }
            Failure::AckTimeout => "publish timed out: no acknowledgement".to_string(),
            Failure::AckWindowStalled => {
                "connection closed: all 65,535 packet ids held by unacknowledged publishes".to_string()
            }
            Failure::StrayAck(kind) => format!(
                "unexpected {} (packet id not in flight): counted, connection kept",
                kind.name()
            ),
            Failure::WriteTimeout => {
                "write timed out: the broker stopped reading for --timeout".to_string()
            }
            Failure::ConnectAborted => "connect aborted: run stopped before CONNACK".to_string(),
            Failure::InflightLost => {
                "publish lost: connection closed before acknowledgement".to_string()
            }
            Failure::Protocol(what) => format!("protocol error: {what}"),
            Failure::ProtocolBeforeConnack(what) => {
                format!("protocol error before CONNACK: {what}")
            }
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
            Failure::Tls(tls) => tls.describe(),
            Failure::WebSocket(ws) => ws.describe(),
            Failure::ClosedBeforeConnack => {
                "connection closed by the broker before CONNACK (a TLS or WebSocket port? use mqtts:// or ws://)".to_string()
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
            Failure::RequestTimeout => "request timed out: no answer".to_string(),
            Failure::RequestLost => {
                "request lost: connection closed before its answer".to_string()
            }
            Failure::AnswerLate(kind) => format!(
                "late answer to a {kind} request (it had timed out): counted, not a success"
            ),
            Failure::AnswerDuplicate(kind) => format!(
                "duplicate answer to a {kind} request (already answered): counted, not a success"
            ),
            Failure::AnswerUnknown(kind) => format!(
                "answer on the {kind} response topic for an id this device did not use: counted, not a success"
            ),
            Failure::IncomingTooLarge(bytes) => format!(
                "PUBLISH of {bytes} bytes to a device, larger than its read buffer: skipped, connection kept"
            ),
            Failure::IncomingUnexpected => {
                "PUBLISH to a device on a topic it did not subscribe to: ignored".to_string()
            }
            Failure::AnswerSubscribeRefused(code) => format!(
                "SUBACK refused the device's answer subscription: {}: its requests will time out",
                Named { code, connack: false }
            ),
            Failure::RpcQueueFull => {
                "RPC request dropped: the device's answer queue was full (64 answers, 16 KiB)"
                    .to_string()
            }
            Failure::RpcAnswerLost => {
                "RPC answer dropped: its connection closed (or the run ended) before it was due"
                    .to_string()
            }
            Failure::RpcMalformed(why) => format!("RPC request not answered: {why}"),
            Failure::RpcUnknownDevice => {
                "gateway RPC request not answered: unknown device (not one this gateway carries)"
                    .to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_before_the_connack_count_on_the_connect_row_and_after_it_on_the_connection_row() {
        let after = [Failure::ConnectionLost(0), Failure::Protocol("x")];
        for failure in after {
            assert_eq!(failure.metric(), Metric::Connection, "{failure:?}");
            assert_eq!(failure.before_connack().metric(), Metric::Connect);
            assert_ne!(failure.before_connack().describe(), failure.describe());
        }
        let unchanged = [Failure::ConnackRefused(5), Failure::AckTimeout];
        for failure in unchanged {
            assert_eq!(failure.before_connack(), failure);
        }
        assert_eq!(
            Failure::ConnectionLost(libc::ECONNRESET)
                .before_connack()
                .describe(),
            format!(
                "connection lost before CONNACK: {}",
                std::io::Error::from_raw_os_error(libc::ECONNRESET)
            )
        );
    }

    #[test]
    fn only_connect_publish_subscribe_e2e_and_rpc_answers_are_requests_that_aggregated_adds_up() {
        let requests: Vec<Metric> = Metric::ALL.into_iter().filter(|m| m.is_request()).collect();
        assert_eq!(
            requests,
            [
                Metric::Connect,
                Metric::Publish,
                Metric::Subscribe,
                Metric::EndToEnd,
                Metric::RpcResponder
            ]
        );
        for part in Metric::CONNECT_PARTS {
            assert_eq!(part.kind(), RowKind::Breakdown);
        }
        assert_eq!(Metric::Reconnect.kind(), RowKind::Breakdown);
        assert_eq!(Metric::Connection.kind(), RowKind::Sessions);
    }

    #[test]
    fn every_metric_has_its_own_key_and_only_sessions_are_not_response_times() {
        let keys: std::collections::HashSet<&str> = Metric::ALL.iter().map(|m| m.key()).collect();
        assert_eq!(keys.len(), N_METRICS);
        for (index, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(metric.index(), index);
            assert_eq!(metric.is_response_time(), *metric != Metric::Connection);
        }
    }
}
