//! The merger thread: adds worker intervals into whole-run histograms and a per-second
//! timeline, prints the live table, and produces the final [`Summary`].
//!
//! It is the only consumer of the data channel and does per-interval work only (a few
//! histogram additions per worker per second), never per-sample work. Every interval it
//! consumes is emptied and sent back to its worker, so the workers never allocate. The run's
//! statistics end when every worker has sent its `last` interval (or every sender is gone).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;

use super::audit::AuditShape;
use super::live::{LiveAudit, LiveBoard, Snapshot, SNAPSHOT_INTERVAL_MS};
/// Also reachable here, where the skeleton declared it.
pub use super::summary::Summary;
use super::timeline::TimelineBuilder;
use super::{
    new_histogram, ClientNamer, ClientRef, ErrorCount, ErrorExample, Failure, Interval, Metric,
    MetricSummary, RowKind, Source, TimelineEntry, MAX_ERROR_EXAMPLES, MAX_FAILURE_KINDS,
    N_METRICS,
};
use crate::plan::Plan;
use crate::report::console;

/// How often the live table is printed (Locust's `CONSOLE_STATS_INTERVAL_SEC`).
pub const CONSOLE_INTERVAL_MS: u64 = 2000;

/// What the merger needs to know about the run.
#[derive(Debug, Clone)]
pub struct MergerConfig {
    /// The table's "Type" column (Locust's request_type), e.g. `MQTT`.
    pub request_type: String,
    /// The table's "Name" column per metric, indexed by `Metric::index()`.
    pub metric_names: [String; N_METRICS],
    /// The name of each stream row, by stream (`Plan::row_names`); empty: no stream rows, the
    /// `publish` row is shown.
    pub stream_names: Vec<String>,
    /// The stream rows that carry device points (a gateway's point streams), by stream;
    /// missing entries are false.
    pub point_rows: Vec<bool>,
    pub target_users: u32,
    /// Print only the final report, not the live table.
    pub only_summary: bool,
    pub qos: u8,
    /// The instant the run started; recorders should be created with the same instant.
    pub started_at: Instant,
    /// The same moment on the wall clock, for reports.
    pub started_wall: SystemTime,
    /// The run's delivery audit, when it has one: snapshots carry its running counts.
    pub audit: Option<AuditShape>,
}

impl MergerConfig {
    /// The configuration of a run of `plan` that started at `started_at` / `started_wall`.
    pub fn from_plan(plan: &Plan, started_at: Instant, started_wall: SystemTime) -> MergerConfig {
        MergerConfig {
            request_type: plan.request_type.clone(),
            metric_names: metric_names_of(plan),
            stream_names: plan.row_names(),
            point_rows: plan
                .row_names()
                .iter()
                .enumerate()
                .map(|(row, _)| plan.gateway.is_some() && row < plan.streams.len())
                .collect(),
            target_users: plan.users,
            only_summary: plan.only_summary,
            qos: plan.qos,
            started_at,
            started_wall,
            audit: None,
        }
    }
}

/// Row names as Locust's own MQTT user writes them: `connect` and `publish:{qos}:{topic}`;
/// subscriber rows are `subscribe:{qos}:{filter}` and `e2e:{qos}:{filter}`.
pub fn metric_names(qos: u8, topic_template: &str) -> [String; N_METRICS] {
    let mut names: [String; N_METRICS] = Default::default();
    names[Metric::Connect.index()] = "connect".to_string();
    names[Metric::Publish.index()] = format!("publish:{qos}:{topic_template}");
    names[Metric::Subscribe.index()] = "subscribe".to_string();
    names[Metric::EndToEnd.index()] = "e2e".to_string();
    names[Metric::Reconnect.index()] = "reconnect".to_string();
    names[Metric::Connection.index()] = "connection".to_string();
    names[Metric::RpcResponder.index()] = "rpc-responder".to_string();
    for part in Metric::CONNECT_PARTS {
        names[part.index()] = part.part_name().unwrap_or("connect").to_string();
    }
    names
}

/// [`metric_names`] of a plan, with its subscriber filter in the subscriber rows.
pub fn metric_names_of(plan: &Plan) -> [String; N_METRICS] {
    let mut names = metric_names(plan.qos, &plan.topic);
    let (sub_qos, filter) = (plan.sub_qos, &plan.sub_topic);
    names[Metric::Subscribe.index()] = format!("subscribe:{sub_qos}:{filter}");
    names[Metric::EndToEnd.index()] = format!("e2e:{sub_qos}:{filter}");
    if plan.connect_only {
        // `mqblast conn` never publishes: no publish row (an empty name is no row).
        names[Metric::Publish.index()] = String::new();
    } else if plan.streams.iter().any(|s| s.declared) {
        // Declared streams are the rows; `publish` is their sum.
        names[Metric::Publish.index()] = "publish".to_string();
    }
    names
}

/// One failure reason over the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tally {
    count: u64,
    /// First and last second seen (since the start).
    first_seen_s: u64,
    last_seen_s: u64,
    /// The first distinct clients the workers kept as examples, at most [`MAX_ERROR_EXAMPLES`].
    examples: Vec<ClientRef>,
}

impl Tally {
    fn new(second: u64) -> Tally {
        Tally {
            count: 0,
            first_seen_s: second,
            last_seen_s: second,
            examples: Vec::new(),
        }
    }

    fn add(&mut self, count: u64, second: u64, examples: &[ClientRef]) {
        self.count += count;
        self.first_seen_s = self.first_seen_s.min(second);
        self.last_seen_s = self.last_seen_s.max(second);
        for &client in examples {
            if self.examples.len() < MAX_ERROR_EXAMPLES && !self.examples.contains(&client) {
                self.examples.push(client);
            }
        }
    }
}

/// The default [`ClientNamer`], for mergers not given one by the engine: the client index,
/// since only the engine knows the client id template (`client 7`, `subscriber 2`).
fn name_by_index(client: ClientRef) -> ErrorExample {
    let role = if client.subscriber {
        "subscriber"
    } else {
        "client"
    };
    ErrorExample {
        client_id: format!("{role} {}", client.index),
        token_index: None,
    }
}

/// Whole-run accumulation; `Merger::run` consumes it into a [`Summary`].
pub struct Merger {
    cfg: MergerConfig,
    rx: Receiver<Interval>,
    /// Recycle channel of each worker, indexed by `Interval::worker`.
    recycle: Vec<Sender<Interval>>,
    /// Workers that have not sent their `last` interval yet.
    running: Vec<bool>,
    latency_us: [Histogram<u64>; N_METRICS],
    failures: [u64; N_METRICS],
    /// The stream rows: latency and failures by stream.
    stream_latency_us: Vec<Histogram<u64>>,
    /// Device points of each stream row (gateway point rows; 0 elsewhere).
    stream_points: Vec<u64>,
    stream_failures: Vec<u64>,
    /// Count, first and last second seen and example clients, per failure reason and stream
    /// (0 for failures of other rows).
    errors: HashMap<(Failure, u8), Tally>,
    /// Names the example clients in the summary.
    name_client: ClientNamer,
    /// Failures whose reason did not fit in a worker's interval, per metric.
    overflow: [u64; N_METRICS],
    /// First and last second an overflowed failure was seen, per metric.
    overflow_seen_s: [(u64, u64); N_METRICS],
    /// Of the publish row's overflow, each stream's, with when it was seen.
    stream_overflow: Vec<(u64, (u64, u64))>,
    lag_us: Histogram<u64>,
    sent: u64,
    timeline: TimelineBuilder,
    /// Latest `Interval::at` seen: the end of the run.
    last_at: Instant,
    /// Reused for the live table's Aggregated row.
    aggregated_us: Histogram<u64>,
    /// Where snapshots go for the faces (None: nobody watches live).
    live: Option<Arc<LiveBoard>>,
    /// Connected clients per worker, from its latest interval.
    connected: Vec<u32>,
    /// Delivery-audit counts per worker, from its latest interval.
    audit: Vec<LiveAudit>,
}

impl Merger {
    /// A merger for `workers` workers; `recycle[i]` is the recycle sender of worker `i`.
    pub fn new(
        cfg: MergerConfig,
        workers: usize,
        rx: Receiver<Interval>,
        recycle: Vec<Sender<Interval>>,
    ) -> Merger {
        let started_at = cfg.started_at;
        let streams = cfg.stream_names.len();
        Merger {
            rx,
            recycle,
            running: vec![true; workers],
            latency_us: std::array::from_fn(|_| new_histogram()),
            failures: [0; N_METRICS],
            stream_latency_us: (0..streams).map(|_| new_histogram()).collect(),
            stream_failures: vec![0; streams],
            stream_points: vec![0; streams],
            errors: HashMap::new(),
            name_client: Box::new(name_by_index),
            overflow: [0; N_METRICS],
            overflow_seen_s: [(u64::MAX, 0); N_METRICS],
            stream_overflow: vec![(0, (u64::MAX, 0)); streams],
            lag_us: new_histogram(),
            sent: 0,
            timeline: TimelineBuilder::with_streams(workers, started_at, streams),
            cfg,
            last_at: started_at,
            aggregated_us: new_histogram(),
            live: None,
            connected: vec![0; workers],
            audit: vec![LiveAudit::default(); workers],
        }
    }

    /// Publishes a snapshot to `board` every [`SNAPSHOT_INTERVAL_MS`] and honours its reset
    /// requests.
    pub fn with_live_board(mut self, board: Arc<LiveBoard>) -> Merger {
        self.live = Some(board);
        self
    }

    /// Names example clients with `namer` (the engine's: client ids from the plan's template
    /// and token positions) instead of by index.
    pub fn with_client_names(mut self, namer: ClientNamer) -> Merger {
        self.name_client = namer;
        self
    }

    /// Merges until every worker has finished, printing the live table to stderr every 2 s
    /// (unless `only_summary`) and the final report at the end.
    pub fn run(self) -> Summary {
        self.run_with_output(std::io::stderr())
    }

    /// [`Merger::run`], writing the console output to `out`.
    pub fn run_with_output<W: Write>(mut self, mut out: W) -> Summary {
        let period = Duration::from_millis(CONSOLE_INTERVAL_MS);
        let mut print_due_at = self.cfg.started_at + period;
        let snapshot_period = Duration::from_millis(SNAPSHOT_INTERVAL_MS);
        let mut snapshot_due_at = self.cfg.started_at + snapshot_period;
        while self.running.iter().any(|&running| running) {
            let now = Instant::now();
            if now >= print_due_at {
                if !self.cfg.only_summary {
                    let _ = writeln!(out, "{}", self.live_table(now));
                }
                print_due_at = now + period;
            }
            if self.live.is_some() && now >= snapshot_due_at {
                self.serve_live(now);
                snapshot_due_at = now + snapshot_period;
            }
            let wake_at = match self.live {
                Some(_) => print_due_at.min(snapshot_due_at),
                None => print_due_at,
            };
            match self.rx.recv_timeout(wake_at.saturating_duration_since(now)) {
                Ok(interval) => self.absorb(interval),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let summary = self.into_summary();
        let _ = write!(out, "{}", console::final_report(&summary));
        let _ = out.flush();
        summary
    }

    /// Adds one interval to the totals and the timeline, then returns it emptied to its worker.
    pub fn absorb(&mut self, mut interval: Interval) {
        interval.fold_streams();
        let second = self.timeline.second_of(interval.at);
        for (stream, latency_us) in self.stream_latency_us.iter_mut().enumerate() {
            if let Some(part) = interval.streams.get(stream) {
                let _ = latency_us.add(part);
            }
            self.stream_failures[stream] += interval.failures_of_stream(stream);
            self.stream_points[stream] += interval.points.get(stream).copied().unwrap_or(0);
            let overflowed = interval.overflow_streams.get(stream).copied().unwrap_or(0);
            if overflowed > 0 {
                let (count, seen) = &mut self.stream_overflow[stream];
                *count += overflowed;
                *seen = (seen.0.min(second), seen.1.max(second));
            }
        }
        for metric in Metric::ALL {
            let m = metric.index();
            // Same bounds on both sides: adding cannot fail.
            let _ = self.latency_us[m].add(&interval.latency[m]);
            self.failures[m] += interval.failures_of(metric);
            self.overflow[m] += interval.overflow[m];
            if interval.overflow[m] > 0 {
                let seen = &mut self.overflow_seen_s[m];
                *seen = (seen.0.min(second), seen.1.max(second));
            }
        }
        for (kind, &(failure, count)) in interval.failures().iter().enumerate() {
            let tally = self
                .errors
                .entry((failure, interval.stream_of(kind)))
                .or_insert_with(|| Tally::new(second));
            tally.add(count, second, interval.examples_of(kind));
        }
        let _ = self.lag_us.add(&interval.lag);
        self.sent += interval.sent;
        self.last_at = self.last_at.max(interval.at);
        self.timeline.absorb(&interval);
        if let Some(connected) = self.connected.get_mut(interval.worker) {
            *connected = interval.connected;
        }
        if let Some(audit) = self.audit.get_mut(interval.worker) {
            *audit = interval.audit;
        }

        let worker = interval.worker;
        if interval.last {
            if let Some(running) = self.running.get_mut(worker) {
                *running = false;
            }
            return;
        }
        if let Some(recycle) = self.recycle.get(worker) {
            interval.reset();
            // Full or disconnected: the worker has enough, or is gone; drop this one.
            let _ = recycle.try_send(interval);
        }
    }

    /// The live stats table: whole-run counts and times, current rates. Aggregated adds the
    /// request rows only; the connect phases and reconnects follow as a breakdown.
    fn live_table(&mut self, now: Instant) -> String {
        let mut rows = Vec::with_capacity(N_METRICS);
        let mut breakdown = Vec::new();
        let (mut total_rps, mut total_fail_per_s) = (0.0, 0.0);
        self.aggregated_us.reset();
        for metric in Metric::ALL {
            let m = metric.index();
            if metric == Metric::Publish && !self.stream_latency_us.is_empty() {
                for (stream, latency_us) in self.stream_latency_us.iter().enumerate() {
                    let (rps, fail_per_s) = self.timeline.current_stream_rates(now, stream);
                    let failures = self.stream_failures[stream];
                    total_rps += rps;
                    total_fail_per_s += fail_per_s;
                    let _ = self.aggregated_us.add(latency_us);
                    rows.push(console::Row {
                        type_label: &self.cfg.request_type,
                        name: &self.cfg.stream_names[stream],
                        requests: latency_us.len() + failures,
                        failures,
                        latency_us,
                        rps,
                        fail_per_s,
                    });
                }
                continue;
            }
            let requests = self.latency_us[m].len() + self.failures[m];
            let name = &self.cfg.metric_names[m];
            let shown = match metric.kind() {
                RowKind::Request => requests > 0 || (metric.always_shown() && !name.is_empty()),
                RowKind::Breakdown => requests > 0,
                RowKind::Sessions => false,
            };
            if !shown {
                continue;
            }
            let (rps, fail_per_s) = self.timeline.current_rates(now, metric);
            let row = console::Row {
                type_label: &self.cfg.request_type,
                name,
                requests,
                failures: self.failures[m],
                latency_us: &self.latency_us[m],
                rps,
                fail_per_s,
            };
            if metric.is_request() {
                total_rps += rps;
                total_fail_per_s += fail_per_s;
                let _ = self.aggregated_us.add(&self.latency_us[m]);
                rows.push(row);
            } else {
                breakdown.push(row);
            }
        }
        let total = console::Row {
            type_label: "",
            name: console::AGGREGATED,
            requests: rows.iter().map(|r| r.requests).sum(),
            failures: rows.iter().map(|r| r.failures).sum(),
            latency_us: &self.aggregated_us,
            rps: total_rps,
            fail_per_s: total_fail_per_s,
        };
        let mut table = console::stats_table(&rows, &total);
        table.push_str(&console::breakdown_table(&breakdown));
        table
    }

    /// Honour a reset request, then publish a snapshot of the run so far.
    fn serve_live(&mut self, now: Instant) {
        let Some(board) = self.live.clone() else {
            return;
        };
        if board.take_reset() {
            self.reset(now);
        }
        let mut current = [(0.0, 0.0); N_METRICS];
        for metric in Metric::ALL {
            current[metric.index()] = self.timeline.current_rates(now, metric);
        }
        let current_streams = (0..self.stream_latency_us.len())
            .map(|stream| self.timeline.current_stream_rates(now, stream))
            .collect();
        let timeline = self.timeline.closed_entries().to_vec();
        let histograms = Histograms {
            latency_us: self.latency_us.clone(),
            stream_latency_us: self.stream_latency_us.clone(),
            lag_us: self.lag_us.clone(),
        };
        let summary = self.summary_of(histograms, timeline);
        board.publish(Snapshot {
            summary,
            current,
            current_streams,
            connected_users: self.connected.iter().sum(),
            running: true,
        });
    }

    /// Start the statistics over from `now` (Locust's reset): the run goes on, its result
    /// then covers what happened after the reset.
    fn reset(&mut self, now: Instant) {
        for histogram in self.latency_us.iter_mut() {
            histogram.reset();
        }
        self.lag_us.reset();
        self.failures = [0; N_METRICS];
        self.overflow = [0; N_METRICS];
        self.overflow_seen_s = [(u64::MAX, 0); N_METRICS];
        for histogram in self.stream_latency_us.iter_mut() {
            histogram.reset();
        }
        self.stream_failures.fill(0);
        self.stream_points.fill(0);
        self.stream_overflow.fill((0, (u64::MAX, 0)));
        self.errors.clear();
        self.sent = 0;
        let elapsed = now.saturating_duration_since(self.cfg.started_at);
        self.cfg.started_wall += elapsed;
        self.cfg.started_at = now;
        self.last_at = now;
        let streams = self.stream_latency_us.len();
        self.timeline = TimelineBuilder::with_streams(self.running.len(), now, streams);
    }

    /// Closes the timeline and computes whole-run rates.
    fn into_summary(mut self) -> Summary {
        let histograms = Histograms {
            latency_us: std::mem::replace(
                &mut self.latency_us,
                std::array::from_fn(|_| new_histogram()),
            ),
            stream_latency_us: std::mem::take(&mut self.stream_latency_us),
            lag_us: std::mem::replace(&mut self.lag_us, new_histogram()),
        };
        let timeline = std::mem::replace(
            &mut self.timeline,
            TimelineBuilder::new(0, self.cfg.started_at),
        )
        .finish();
        self.summary_of(histograms, timeline)
    }

    /// The result document of what was merged so far, from these histograms and timeline.
    fn summary_of(&self, histograms: Histograms, timeline: Vec<TimelineEntry>) -> Summary {
        let Histograms {
            latency_us,
            stream_latency_us,
            lag_us,
        } = histograms;
        let duration_s = self
            .last_at
            .saturating_duration_since(self.cfg.started_at)
            .as_secs_f64();
        let per_s = |count: u64| {
            if duration_s > 0.0 {
                count as f64 / duration_s
            } else {
                0.0
            }
        };
        let mut latency_us = latency_us;
        let metric_summary = |metric: Metric, latency_us: Histogram<u64>| {
            let failures = self.failures[metric.index()];
            let ok = latency_us.len();
            MetricSummary {
                metric,
                name: self.cfg.metric_names[metric.index()].clone(),
                requests: ok + failures,
                failures,
                ok,
                rps: per_s(ok + failures),
                fail_per_s: per_s(failures),
                latency_us,
                points: None,
            }
        };
        let metrics = Metric::ALL.map(|metric| {
            let taken = std::mem::replace(&mut latency_us[metric.index()], new_histogram());
            metric_summary(metric, taken)
        });
        let streams = stream_latency_us
            .into_iter()
            .zip(&self.cfg.stream_names)
            .zip(&self.stream_failures)
            .enumerate()
            .map(|(row, ((latency_us, name), &failures))| {
                let ok = latency_us.len();
                let carries_points = self.cfg.point_rows.get(row).copied().unwrap_or(false);
                MetricSummary {
                    metric: Metric::Publish,
                    name: name.clone(),
                    requests: ok + failures,
                    failures,
                    ok,
                    rps: per_s(ok + failures),
                    fail_per_s: per_s(failures),
                    latency_us,
                    points: carries_points.then(|| self.stream_points[row]),
                }
            })
            .collect();
        let overflow = Overflow {
            per_metric: &self.overflow,
            seen_s: &self.overflow_seen_s,
            per_stream: &self.stream_overflow,
        };
        let errors = error_counts(&self.errors, &overflow, &self.name_client);
        let max_connected_users = timeline
            .iter()
            .map(|e| e.connected_users)
            .max()
            .unwrap_or(0);
        let request_rows = || metrics.iter().filter(|m| m.metric.is_request());
        let requests = request_rows().map(|m| m.requests).sum();
        let failures = request_rows().map(|m| m.failures).sum();
        let host = host_name();
        let sources = vec![Source {
            label: host.clone(),
            host,
            started_at: self.cfg.started_wall,
            duration_s,
            requests,
            failures,
        }];
        Summary {
            sources,
            missing_sources: Vec::new(),
            request_type: self.cfg.request_type.clone(),
            qos: self.cfg.qos,
            started_at: self.cfg.started_wall,
            duration_s,
            metrics,
            streams,
            errors,
            lag_us,
            sent: self.sent,
            timeline,
            target_users: self.cfg.target_users,
            max_connected_users,
            audit: self
                .cfg
                .audit
                .map(|shape| shape.running(LiveAudit::sum(&self.audit))),
        }
    }
}

/// This machine's host name ("" when it cannot be read), naming the run's source.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and we stop at the buffer's end when it does not).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The histograms a summary is made of.
struct Histograms {
    latency_us: [Histogram<u64>; N_METRICS],
    stream_latency_us: Vec<Histogram<u64>>,
    lag_us: Histogram<u64>,
}

/// Failures whose reason was not kept: per metric and, of the publish row's, per stream,
/// with the first and last second seen.
struct Overflow<'a> {
    per_metric: &'a [u64; N_METRICS],
    seen_s: &'a [(u64, u64); N_METRICS],
    per_stream: &'a [(u64, (u64, u64))],
}

/// Failure counts with their texts and example clients (sorted by client, named by
/// `name_client`), most frequent first (ties by text). A publish failure names its stream
/// row when the run has stream rows.
fn error_counts(
    errors: &HashMap<(Failure, u8), Tally>,
    overflow: &Overflow<'_>,
    name_client: &ClientNamer,
) -> Vec<ErrorCount> {
    let has_streams = !overflow.per_stream.is_empty();
    let stream_of = |failure: &Failure, stream: u8| {
        (has_streams && failure.metric() == Metric::Publish).then_some(stream as usize)
    };
    let mut counts: Vec<ErrorCount> = errors
        .iter()
        .map(|(&(failure, stream), tally)| {
            let mut clients = tally.examples.clone();
            clients.sort_unstable();
            ErrorCount {
                metric: failure.metric(),
                stream: stream_of(&failure, stream),
                reason: failure.describe(),
                count: tally.count,
                first_seen_s: tally.first_seen_s,
                last_seen_s: tally.last_seen_s,
                examples: clients.into_iter().map(name_client).collect(),
            }
        })
        .collect();
    let reason = |metric: Metric| {
        format!(
            "{} failed, reason not kept (more than {MAX_FAILURE_KINDS} distinct reasons in one second)",
            metric.key()
        )
    };
    for metric in Metric::ALL {
        let count = overflow.per_metric[metric.index()];
        if count == 0 || (has_streams && metric == Metric::Publish) {
            continue;
        }
        let (first_seen_s, last_seen_s) = overflow.seen_s[metric.index()];
        counts.push(ErrorCount {
            metric,
            stream: None,
            reason: reason(metric),
            count,
            first_seen_s,
            last_seen_s,
            examples: Vec::new(),
        });
    }
    for (stream, &(count, (first_seen_s, last_seen_s))) in overflow.per_stream.iter().enumerate() {
        if count > 0 {
            counts.push(ErrorCount {
                metric: Metric::Publish,
                stream: Some(stream),
                reason: reason(Metric::Publish),
                count,
                first_seen_s,
                last_seen_s,
                examples: Vec::new(),
            });
        }
    }
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::channels;
    use crate::stats::timeline::at;

    fn config(started_at: Instant) -> MergerConfig {
        MergerConfig {
            request_type: "MQTT".to_string(),
            metric_names: metric_names(1, "v1/devices/me/telemetry"),
            stream_names: Vec::new(),
            point_rows: Vec::new(),
            target_users: 2,
            only_summary: true,
            qos: 1,
            started_at,
            started_wall: SystemTime::now(),
            audit: None,
        }
    }

    fn recorded(worker: usize, at: Instant, publish_us: impl Iterator<Item = u64>) -> Interval {
        let mut interval = Interval::new(worker, at);
        for us in publish_us {
            interval.latency[Metric::Publish.index()].saturating_record(us);
        }
        interval
    }

    #[test]
    fn a_live_board_gets_snapshots_and_a_reset_starts_the_statistics_over() {
        let start = Instant::now();
        let (_tx, rx, recycle) = channels(1);
        let (recycle_tx, _recycle_rx): (Vec<_>, Vec<_>) = recycle.into_iter().unzip();
        let board = LiveBoard::new();
        let mut merger =
            Merger::new(config(start), 1, rx, recycle_tx).with_live_board(Arc::clone(&board));
        let mut interval = recorded(0, at(start, 1000), (1..=100u64).map(|i| i * 10));
        interval.connected = 2;
        merger.absorb(interval);
        merger.serve_live(at(start, 1200));
        let snapshot = board.latest().expect("a snapshot");
        assert_eq!(snapshot.summary.metric(Metric::Publish).ok, 100);
        assert_eq!(snapshot.connected_users, 2);
        assert!(snapshot.running);

        board.request_reset();
        merger.serve_live(at(start, 1500));
        let reset = board.latest().expect("a snapshot after the reset");
        assert_eq!(reset.summary.metric(Metric::Publish).ok, 0);
        merger.absorb(recorded(0, at(start, 2000), (1..=7u64).map(|i| i * 10)));
        let summary = merger.into_summary();
        assert_eq!(
            summary.metric(Metric::Publish).ok,
            7,
            "only what came after the reset"
        );
    }

    #[test]
    fn merger_merges_two_workers_exactly_like_one_histogram_of_all_samples() {
        let start = Instant::now();
        let (_tx, rx, recycle) = channels(2);
        let (recycle_tx, recycle_rx): (Vec<_>, Vec<_>) = recycle.into_iter().unzip();
        let mut merger = Merger::new(config(start), 2, rx, recycle_tx);

        let mut all = new_histogram();
        for us in (1..5000u64).map(|i| i * 37 % 9973 + 1) {
            all.saturating_record(us);
        }
        for us in (1..3000u64).map(|i| i * 101 % 50_000 + 1) {
            all.saturating_record(us);
        }
        merger.absorb(recorded(
            0,
            at(start, 1000),
            (1..5000u64).map(|i| i * 37 % 9973 + 1),
        ));
        let mut second = recorded(
            1,
            at(start, 1001),
            (1..3000u64).map(|i| i * 101 % 50_000 + 1),
        );
        second.failures[0] = (Failure::AckTimeout, 3);
        second.failure_kinds = 1;
        second.last = true;
        merger.absorb(second);
        let mut last = Interval::new(0, at(start, 1500));
        last.last = true;
        merger.absorb(last);

        assert_eq!(
            recycle_rx[0].len(),
            1,
            "worker 0's first interval came back"
        );
        let returned = recycle_rx[0].try_recv().unwrap();
        assert!(returned.latency[Metric::Publish.index()].is_empty());
        assert!(recycle_rx[1].is_empty(), "last intervals are not recycled");

        let summary = merger.into_summary();
        let publish = summary.metric(Metric::Publish);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                publish.latency_us.value_at_quantile(q),
                all.value_at_quantile(q)
            );
        }
        assert_eq!(
            (publish.ok, publish.failures, publish.requests),
            (all.len(), 3, all.len() + 3)
        );
        assert!((summary.duration_s - 1.5).abs() < 1e-9);
        assert!((publish.rps - (all.len() + 3) as f64 / 1.5).abs() < 1e-6);
        assert_eq!(summary.errors[0].reason, Failure::AckTimeout.describe());
        assert_eq!(summary.timeline.len(), 2);
        assert_eq!(summary.timeline[0].publish_ok, all.len());
    }

    #[test]
    fn stream_rows_add_up_to_the_publish_row_with_their_own_failures_and_timeline() {
        let start = Instant::now();
        let (_tx, rx, recycle) = channels(1);
        let (recycle_tx, _recycle_rx): (Vec<_>, Vec<_>) = recycle.into_iter().unzip();
        let mut cfg = config(start);
        cfg.stream_names = vec!["telemetry".into(), "attributes".into()];
        let mut merger = Merger::new(cfg, 1, rx, recycle_tx);
        for second in 1..=2u64 {
            let mut interval = Interval::with_streams(0, at(start, second * 1000), 2);
            for us in [100, 200, 300] {
                interval.streams[0].saturating_record(us);
            }
            interval.streams[1].saturating_record(50);
            interval.failures[0] = (Failure::AckTimeout, 2);
            interval.failure_streams[0] = 1;
            interval.failure_kinds = 1;
            interval.last = second == 2;
            merger.absorb(interval);
        }
        let summary = merger.into_summary();
        let rows: Vec<(&str, u64, u64)> = summary
            .streams
            .iter()
            .map(|m| (m.name.as_str(), m.ok, m.failures))
            .collect();
        assert_eq!(rows, [("telemetry", 6, 0), ("attributes", 2, 4)]);
        let publish = summary.metric(Metric::Publish);
        assert_eq!((publish.ok, publish.failures), (8, 4));
        let names: Vec<&str> = summary.request_rows().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "connect",
                "telemetry",
                "attributes",
                "subscribe",
                "e2e",
                "rpc-responder"
            ]
        );
        assert_eq!(summary.requests(), 12);
        assert_eq!(summary.errors[0].stream, Some(1));
        assert_eq!(summary.row_of(&summary.errors[0]).name, "attributes");
        assert_eq!(summary.timeline[0].stream_counts(0), (3, 0));
        assert_eq!(summary.timeline[1].stream_counts(1), (1, 2));
        assert_eq!(summary.timeline[1].stream_histogram(0).unwrap().len(), 3);
    }

    #[test]
    fn merger_run_ends_when_every_worker_sent_its_last_interval() {
        let start = Instant::now();
        let (tx, rx, recycle) = channels(2);
        let (recycle_tx, recycle_rx): (Vec<_>, Vec<_>) = recycle.into_iter().unzip();
        let merger = Merger::new(config(start), 2, rx, recycle_tx);
        let workers: Vec<_> = recycle_rx
            .into_iter()
            .enumerate()
            .map(|(worker, recycle)| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut recorder = super::super::Recorder::new(worker, tx, recycle, start, 0);
                    recorder.ok(Metric::Connect, 900);
                    recorder.fail(Failure::ConnackRefused(5));
                    recorder.finish(start + Duration::from_millis(10));
                })
            })
            .collect();
        drop(tx);
        let mut out = Vec::new();
        let summary = merger.run_with_output(&mut out);
        for worker in workers {
            worker.join().unwrap();
        }
        let connect = summary.metric(Metric::Connect);
        assert_eq!((connect.ok, connect.failures), (2, 2));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Response time percentiles"));
        assert!(text.contains("Error report"));
    }

    /// Regression: a connection lost after its CONNACK was counted as another connect request
    /// (300 lost connections read as 598 connects: 300 ok + 298 failed).
    #[test]
    fn a_connection_lost_after_connack_is_not_another_connect_request() {
        let start = Instant::now();
        let (tx, rx, mut recycle) = channels(1);
        let (recycle_tx, recycle_rx) = recycle.remove(0);
        let merger = Merger::new(config(start), 1, rx, vec![recycle_tx]);
        let mut recorder = super::super::Recorder::new(0, tx, recycle_rx, start, 0);
        let client = |index| ClientRef {
            subscriber: false,
            index,
        };
        for _ in 0..5 {
            recorder.ok(Metric::Connect, 900);
        }
        // Three lost after their CONNACK, one stopped normally (session of 2 s), one closed
        // by the broker before its CONNACK.
        for index in 0..3 {
            recorder.fail_by(Failure::ConnectionLost(0), client(index));
        }
        recorder.ok(Metric::Connection, 2_000_000);
        recorder.fail_by(Failure::ConnectionLost(0).before_connack(), client(9));
        recorder.ok(Metric::Connect, 800);
        recorder.fail_by(Failure::Protocol("bad").before_connack(), client(8));
        recorder.fail_by(Failure::Protocol("bad"), client(3));
        recorder.finish(start + Duration::from_millis(10));
        let summary = merger.run_with_output(Vec::new());

        let connect = summary.metric(Metric::Connect);
        assert_eq!((connect.ok, connect.failures, connect.requests), (6, 2, 8));
        let connection = summary.metric(Metric::Connection);
        assert_eq!((connection.ok, connection.failures), (1, 4));
        assert_eq!(
            connection.latency_us.max(),
            connection.latency_us.highest_equivalent(2_000_000)
        );
        let row_of = |reason: &str| {
            let error = summary.errors.iter().find(|e| e.reason == reason);
            error.map(|e| (e.metric, e.count))
        };
        assert_eq!(
            row_of("connection lost: closed by the broker"),
            Some((Metric::Connection, 3))
        );
        assert_eq!(
            row_of("connection lost before CONNACK: closed by the broker"),
            Some((Metric::Connect, 1))
        );
        assert_eq!(
            row_of("protocol error before CONNACK: bad"),
            Some((Metric::Connect, 1))
        );
        assert_eq!(row_of("protocol error: bad"), Some((Metric::Connection, 1)));
    }

    #[test]
    fn example_clients_survive_interval_shipping_and_are_named_capped_and_sorted() {
        let start = Instant::now();
        let (_tx, rx, recycle) = channels(2);
        let (recycle_tx, _recycle_rx): (Vec<_>, Vec<_>) = recycle.into_iter().unzip();
        let namer: ClientNamer = Box::new(|c: ClientRef| ErrorExample {
            client_id: format!("dev-{}", c.index),
            token_index: Some(c.index % 4),
        });
        let mut merger = Merger::new(config(start), 2, rx, recycle_tx).with_client_names(namer);
        let refused = |worker, millis, indexes: &[u64], last| {
            let mut interval = Interval::new(worker, at(start, millis));
            interval.failures[0] = (Failure::ConnackRefused(5), indexes.len() as u64);
            interval.failure_kinds = 1;
            for &index in indexes {
                interval.examples[0].add(ClientRef {
                    subscriber: false,
                    index,
                });
            }
            interval.last = last;
            interval
        };
        merger.absorb(refused(0, 1000, &[12, 2], false));
        merger.absorb(refused(1, 1000, &[7, 2], false));
        merger.absorb(refused(0, 2000, &[20, 21, 22, 23, 24, 25, 26, 27], true));
        merger.absorb(refused(1, 2000, &[1], true));
        let summary = merger.into_summary();
        let error = &summary.errors[0];
        assert_eq!(error.count, 13);
        let ids: Vec<&str> = error
            .examples
            .iter()
            .map(|e| e.client_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "dev-2", "dev-7", "dev-12", "dev-20", "dev-21", "dev-22", "dev-23", "dev-24",
                "dev-25", "dev-26"
            ],
            "the first ten distinct clients, sorted by client index"
        );
        assert_eq!(error.examples[1].token_index, Some(3));
    }

    #[test]
    fn failures_beyond_the_kept_reasons_are_reported_as_one_line_per_metric() {
        let mut errors = HashMap::new();
        let tally = |count, first_seen_s, last_seen_s| Tally {
            count,
            first_seen_s,
            last_seen_s,
            examples: Vec::new(),
        };
        errors.insert((Failure::AckTimeout, 0), tally(2, 1, 3));
        errors.insert((Failure::ConnectTimeout, 0), tally(5, 1, 1));
        let unseen = (u64::MAX, 0);
        let mut seen_s = [unseen; N_METRICS];
        seen_s[1] = (2, 4);
        let namer: ClientNamer = Box::new(name_by_index);
        let mut per_metric = [0; N_METRICS];
        per_metric[1] = 7;
        let overflow = Overflow {
            per_metric: &per_metric,
            seen_s: &seen_s,
            per_stream: &[],
        };
        let counts = error_counts(&errors, &overflow, &namer);
        assert_eq!(
            counts.iter().map(|e| e.count).collect::<Vec<_>>(),
            vec![7, 5, 2]
        );
        assert_eq!(counts[0].metric, Metric::Publish);
        assert!(counts[0]
            .reason
            .starts_with("publish failed, reason not kept"));
        assert_eq!((counts[0].first_seen_s, counts[0].last_seen_s), (2, 4));
        assert_eq!((counts[2].first_seen_s, counts[2].last_seen_s), (1, 3));
    }
}
