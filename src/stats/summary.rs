//! The result of a run: what the final console report, the JSON file, the CSVs and the HTML
//! report are rendered from. It keeps whole histograms (not just percentiles) so that runs
//! from several hosts can be merged exactly.

use std::collections::BTreeMap;
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::{Metric, TimelineEntry, N_METRICS};

/// One row of the stats table over the whole run.
#[derive(Debug, Clone)]
pub struct MetricSummary {
    pub metric: Metric,
    /// The table's "Name" column: `connect` or `publish:{qos}:{topic template}`.
    pub name: String,
    /// Requests made: `ok + failures` (Locust counts failed requests as requests).
    pub requests: u64,
    pub failures: u64,
    pub ok: u64,
    /// Requests per second over the whole run.
    pub rps: f64,
    pub fail_per_s: f64,
    /// Latencies of the successful requests, microseconds.
    pub latency_us: Histogram<u64>,
    /// A gateway's point rows: the device points its successful messages carried (in
    /// `batched` mode several per message). None for every other row.
    pub points: Option<u64>,
}

impl MetricSummary {
    /// Whether the row appears among the request rows of a report: a request row with
    /// requests, or `connect` and `publish` even when empty (a plain publish run always
    /// prints both). A row whose name is empty is not part of the run (`mqblast conn` has no
    /// publish row).
    pub fn is_request_row(&self) -> bool {
        self.metric.is_request()
            && (self.requests > 0 || (self.metric.always_shown() && !self.name.is_empty()))
    }

    /// Whether the row appears in the breakdown (connect phases, reconnects): when it has any.
    pub fn is_breakdown_row(&self) -> bool {
        self.metric.kind() == super::RowKind::Breakdown && self.requests > 0
    }

    /// Failed share of the requests, 0.0 to 1.0.
    pub fn fail_ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

/// How often one failure reason occurred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    pub metric: Metric,
    /// The stream row of a publish failure (index into `Summary::streams`); None for the
    /// other rows, and for results without stream rows.
    pub stream: Option<usize>,
    /// `Failure::describe` text.
    pub reason: String,
    pub count: u64,
    /// Seconds since the start of the first and last second it occurred in.
    pub first_seen_s: u64,
    pub last_seen_s: u64,
    /// Up to [`super::MAX_ERROR_EXAMPLES`] clients it happened to, so a refused device can be
    /// found among thousands (sorted by client; empty for reasons not kept per client).
    pub examples: Vec<ErrorExample>,
}

/// A client a failure happened to, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrorExample {
    /// The client id the broker saw (a `{token}` in the client id template reads `{token}`).
    pub client_id: String,
    /// Position in the configured token list of the token the client used as its user name;
    /// None without tokens. Never the token itself: tokens are credentials.
    pub token_index: Option<u64>,
}

impl ErrorExample {
    /// `mqblast-7 (token #7)`, or just the id without tokens.
    pub fn label(&self) -> String {
        match self.token_index {
            Some(token) => format!("{} (token #{token})", self.client_id),
            None => self.client_id.clone(),
        }
    }
}

/// Names the clients of failure examples. The merger calls it for at most
/// [`super::MAX_ERROR_EXAMPLES`] clients per reason, off the workers' hot path; the engine,
/// which owns the client id template, provides it, so stats never depend on the engine.
pub type ClientNamer = Box<dyn Fn(super::ClientRef) -> ErrorExample + Send>;

/// One run that contributed to a result: the run itself, or each input of a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// What the user calls it: the host name for a run, the file name for a merge input.
    pub label: String,
    /// Host name of the machine that ran it.
    pub host: String,
    pub started_at: SystemTime,
    pub duration_s: f64,
    pub requests: u64,
    pub failures: u64,
}

/// Everything measured in one run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The table's "Type" column (Locust's request_type), e.g. `MQTT`.
    pub request_type: String,
    pub qos: u8,
    /// Wall-clock start of the run.
    pub started_at: SystemTime,
    /// From the start to the last interval received.
    pub duration_s: f64,
    /// Indexed by `Metric::index()`. The `publish` row holds every stream's publishes.
    pub metrics: [MetricSummary; N_METRICS],
    /// One row per stream of the plan, in plan order (metric `Publish`, the stream's name):
    /// the rows reports show in place of `publish`. Empty in results written before streams
    /// existed and in runs that never publish; then `publish` is shown as it always was.
    pub streams: Vec<MetricSummary>,
    /// Failure reasons, most frequent first.
    pub errors: Vec<ErrorCount>,
    /// How far behind schedule publishes were sent, microseconds.
    pub lag_us: Histogram<u64>,
    /// Publishes handed to sockets.
    pub sent: u64,
    /// One entry per second of the run.
    pub timeline: Vec<TimelineEntry>,
    pub target_users: u32,
    /// Most clients connected at once (per-second samples).
    pub max_connected_users: u32,
    /// The runs this result is made of (one for a run, one per input for a merge).
    pub sources: Vec<Source>,
    /// Sources that should be in this result but produced none (a multi-host run whose host
    /// failed): when not empty, the result is partial and every report says so.
    pub missing_sources: Vec<String>,
    /// The delivery audit of a run with subscribers and `--verify` (the running counts in a
    /// live snapshot, the engine's verdict once the workers have finished; None otherwise).
    pub audit: Option<super::audit::AuditSummary>,
}

impl Summary {
    pub fn metric(&self, metric: Metric) -> &MetricSummary {
        &self.metrics[metric.index()]
    }

    /// Failed requests: the Aggregated row's failures (request rows only, see
    /// [`super::RowKind`]).
    pub fn failures(&self) -> u64 {
        self.request_rows().map(|m| m.failures).sum()
    }

    /// Requests: the Aggregated row's count (request rows only; connect phases, reconnects
    /// and sessions are not requests of their own).
    pub fn requests(&self) -> u64 {
        self.request_rows().map(|m| m.requests).sum()
    }

    /// The device points of a run with gateways: the sum of its point rows (what reports
    /// show in their Aggregated row); None for a run without point rows, whose reports have
    /// no points column at all.
    pub fn device_points(&self) -> Option<u64> {
        let mut rows = self.streams.iter().filter_map(|m| m.points).peekable();
        rows.peek()?;
        Some(rows.fold(0, u64::saturating_add))
    }

    /// Established connections lost after their CONNACK (the `connection` row's failures).
    pub fn connections_lost(&self) -> u64 {
        self.metric(Metric::Connection).failures
    }

    /// Whether anything failed: a request, or an established connection lost.
    pub fn any_failure(&self) -> bool {
        self.failures() > 0 || self.connections_lost() > 0
    }

    /// The rows of independent requests (what Aggregated adds up), in table order: the
    /// request metrics, with the stream rows in place of `publish` when there are any.
    pub fn request_rows(&self) -> impl Iterator<Item = &MetricSummary> {
        self.metrics
            .iter()
            .filter(|m| m.metric.is_request())
            .flat_map(move |m| self.rows_of(m).iter())
    }

    /// Every row in table order: the request rows (streams in place of `publish`), then the
    /// breakdown and session rows.
    pub fn rows(&self) -> impl Iterator<Item = &MetricSummary> {
        let others = self.metrics.iter().filter(|m| !m.metric.is_request());
        self.request_rows().chain(others)
    }

    /// The rows `metric`'s row is shown as: the stream rows for `publish` (when the result
    /// has them), else the row itself.
    fn rows_of<'a>(&'a self, m: &'a MetricSummary) -> &'a [MetricSummary] {
        match m.metric == Metric::Publish && !self.streams.is_empty() {
            true => &self.streams,
            false => std::slice::from_ref(m),
        }
    }

    /// The row an error counts against: its stream's row, else its metric's.
    pub fn row_of(&self, error: &ErrorCount) -> &MetricSummary {
        match error.stream.and_then(|stream| self.streams.get(stream)) {
            Some(row) => row,
            None => self.metric(error.metric),
        }
    }

    /// Failure counts by reason text (reasons of different metrics never share a text).
    pub fn errors_by_reason(&self) -> BTreeMap<String, u64> {
        let mut by_reason = BTreeMap::new();
        for error in &self.errors {
            *by_reason.entry(error.reason.clone()).or_insert(0) += error.count;
        }
        by_reason
    }
}
