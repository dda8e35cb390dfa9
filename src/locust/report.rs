//! Locust `stats` reports from our snapshots. The merger publishes the whole run so far; a
//! Locust master wants what happened since the previous report (it adds the reports up), so
//! each report is the difference between this snapshot and the last one reported: counts,
//! the interval's histogram (HDR subtraction is exact) keyed into Locust's buckets, the
//! closed seconds of the timeline as the per-second maps, and failure reasons by occurrence.
//! The Aggregated entry (`stats_total`) is the sum of the entries it sends, built from them.
//!
//! Mapping: every request row of our table becomes an entry (method = the request type,
//! `MQTT`; name = the row's name; one entry per stream, in place of `publish`), and
//! `stats_total` (the master's Aggregated) is their sum.
//! Failed requests carry no response time, so they are Locust's "none" requests
//! (`num_none_requests`), left out of its averages and percentiles as ours are. Rows that are
//! not requests of their own are sent as entries of their own type, outside the total, so
//! the master lists them apart as our reports do: the connect phases and `reconnect` as
//! `{type} part` ([`PART_SUFFIX`]), the `connection` row (sessions; counts only, its samples
//! are session lengths) as `{type} session` ([`SESSION_SUFFIX`]).
//!
//! Device points (a gateway's point rows): Locust's entries have fixed fields and none of
//! them is a second count beside the requests (an extra key is dropped by the master's
//! `unserialize`; `total_content_length` is bytes, shown as "Average Content Size"). So each
//! point row's points go as an entry of their own, `{type} points` ([`POINTS_SUFFIX`]) with
//! the row's name, outside the total: its requests are the points, all "none" requests
//! (Locust's `response_time=None`: counted, untimed), and its per-second map the points of
//! each second, so the master's table, CSV and charts show the points and points/s beside
//! the row's messages, and its Aggregated stays the MQTT messages.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rmpv::Value;

use super::bucket;
use super::msg::{int_map, MapBuilder};
use crate::stats::{new_histogram, Metric, RowKind, Summary, TimelineEntry, N_METRICS};

/// Appended to the request type in the method of a breakdown entry (`MQTT part`).
pub const PART_SUFFIX: &str = " part";
/// Appended to the request type in the method of the sessions entry (`MQTT session`).
pub const SESSION_SUFFIX: &str = " session";
/// Appended to the request type in the method of a point row's device points entry
/// (`MQTT points`).
pub const POINTS_SUFFIX: &str = " points";

/// The method (Locust's "Type") of `metric`'s entry: the request type for request rows,
/// marked for the rows outside the total.
fn method_of(request_type: &str, metric: Metric) -> String {
    match metric.kind() {
        RowKind::Request => request_type.to_string(),
        RowKind::Breakdown => format!("{request_type}{PART_SUFFIX}"),
        RowKind::Sessions => format!("{request_type}{SESSION_SUFFIX}"),
    }
}

/// What one entry of a report holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub name: String,
    pub method: String,
    pub requests: u64,
    pub failures: u64,
    pub none_requests: u64,
    pub total_ms: f64,
    pub min_ms: Option<f64>,
    pub max_ms: f64,
    pub response_times: BTreeMap<u64, u64>,
    pub reqs_per_sec: BTreeMap<u64, u64>,
    pub fail_per_sec: BTreeMap<u64, u64>,
    pub last_request_ts: Option<f64>,
}

impl Entry {
    fn add(&mut self, other: &Entry) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.none_requests += other.none_requests;
        self.total_ms += other.total_ms;
        self.min_ms = match (self.min_ms, other.min_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ms = self.max_ms.max(other.max_ms);
        for (maps, theirs) in [
            (&mut self.response_times, &other.response_times),
            (&mut self.reqs_per_sec, &other.reqs_per_sec),
            (&mut self.fail_per_sec, &other.fail_per_sec),
        ] {
            for (k, v) in theirs {
                *maps.entry(*k).or_insert(0) += v;
            }
        }
        self.last_request_ts = match (self.last_request_ts, other.last_request_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn to_value(&self, start_time: f64) -> Value {
        MapBuilder::new()
            .put("name", self.name.as_str())
            .put("method", self.method.as_str())
            .put(
                "last_request_timestamp",
                self.last_request_ts.map_or(Value::Nil, Value::from),
            )
            .put("start_time", start_time)
            .put("num_requests", self.requests)
            .put("num_none_requests", self.none_requests)
            .put("num_failures", self.failures)
            .put("total_response_time", self.total_ms)
            .put("max_response_time", self.max_ms)
            .put(
                "min_response_time",
                self.min_ms.map_or(Value::Nil, Value::from),
            )
            .put("total_content_length", 0u64)
            .put("response_times", int_map(self.response_times.clone()))
            .put("num_reqs_per_sec", int_map(self.reqs_per_sec.clone()))
            .put("num_fail_per_sec", int_map(self.fail_per_sec.clone()))
            .build()
    }
}

/// One failure reason's occurrences in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDelta {
    pub name: String,
    pub method: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen: f64,
    pub last_seen: f64,
}

/// A report: the entries with something in them, their sum, and the failures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub entries: Vec<Entry>,
    pub total: Entry,
    pub errors: Vec<ErrorDelta>,
    /// Unix time of the previous report (Locust's `start_time` of each entry).
    pub start_time: f64,
}

impl Report {
    /// The `stats` message's data, with the user counts the master keeps per worker.
    pub fn to_value(&self, user_classes: &[(String, u64)]) -> Value {
        let entries = self
            .entries
            .iter()
            .map(|e| e.to_value(self.start_time))
            .collect();
        let errors = self
            .errors
            .iter()
            .map(|e| {
                let value = MapBuilder::new()
                    .put("name", e.name.as_str())
                    .put("method", e.method.as_str())
                    .put("error", e.error.as_str())
                    .put("occurrences", e.occurrences)
                    .put("first_seen", e.first_seen)
                    .put("last_seen", e.last_seen)
                    .build();
                (Value::from(error_key(e)), value)
            })
            .collect();
        let classes = user_classes
            .iter()
            .map(|(name, count)| (Value::from(name.as_str()), Value::from(*count)))
            .collect();
        let users: u64 = user_classes.iter().map(|(_, c)| c).sum();
        MapBuilder::new()
            .put("stats", Value::Array(entries))
            .put("stats_total", self.total.to_value(self.start_time))
            .put("errors", Value::Map(errors))
            .put("user_classes_count", Value::Map(classes))
            .put("user_count", users)
            .build()
    }
}

/// Locust merges failure rows from every report by this key: stable per (method, name, error).
fn error_key(error: &ErrorDelta) -> String {
    let text = format!("{}.{}.{:?}", error.method, error.name, error.error);
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A row of the report: a metric's, or a stream's (the stream rows stand in for `publish`
/// when the run has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowRef {
    Metric(Metric),
    Stream(usize),
}

impl RowRef {
    /// Index of the row's reported state: metrics first, then streams.
    fn slot(self) -> usize {
        match self {
            RowRef::Metric(metric) => metric.index(),
            RowRef::Stream(stream) => N_METRICS + stream,
        }
    }
}

/// What was already reported of the run in progress.
pub struct Reporter {
    started_at: SystemTime,
    /// Per row ([`RowRef::slot`]): the histogram and (ok, failed) counts reported so far.
    latency: Vec<Histogram<u64>>,
    /// Scratch for one row's interval histogram.
    interval: Histogram<u64>,
    counts: Vec<(u64, u64)>,
    /// Reported occurrences per (metric, stream row, reason).
    errors: BTreeMap<(usize, Option<usize>, String), u64>,
    /// Device points reported so far, by stream row (a gateway's point rows).
    points: Vec<u64>,
    /// Timeline seconds already in per-second maps.
    seconds_done: u64,
    last_report: f64,
}

impl Reporter {
    /// Nothing reported yet of a run that started at `started_at`.
    pub fn new(started_at: SystemTime) -> Reporter {
        Reporter {
            started_at,
            latency: (0..N_METRICS).map(|_| new_histogram()).collect(),
            interval: new_histogram(),
            counts: vec![(0, 0); N_METRICS],
            errors: BTreeMap::new(),
            points: Vec::new(),
            seconds_done: 0,
            last_report: unix(started_at),
        }
    }

    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// What `summary` (the same run, later) adds to what was reported; remembers it as reported.
    pub fn report(&mut self, summary: &Summary, now: f64) -> Report {
        let start = unix(self.started_at);
        let streams = summary.streams.len();
        let per_second = self.per_second(&summary.timeline, streams, start, now);
        let mut report = Report {
            start_time: self.last_report,
            ..Report::default()
        };
        let rows = Metric::ALL.into_iter().flat_map(|metric| {
            match metric == Metric::Publish && !summary.streams.is_empty() {
                true => (0..summary.streams.len()).map(RowRef::Stream).collect(),
                false => vec![RowRef::Metric(metric)],
            }
        });
        for row in rows {
            let mut entry = self.entry(summary, row, &per_second, now);
            if entry.requests > 0 || entry.failures > 0 {
                let metric = row_of(summary, row).metric;
                if metric.is_request() {
                    report.total.add(&entry);
                }
                entry.method = method_of(&summary.request_type, metric);
                report.entries.push(entry);
            }
        }
        for stream in 0..streams {
            if let Some(entry) = self.points_entry(summary, stream, &per_second, now) {
                report.entries.push(entry);
            }
        }
        report.total.name = "Aggregated".to_string();
        report.total.method = String::new();
        report.errors = self.errors_since(summary, start);
        self.last_report = now;
        report
    }

    /// One row's difference since the last report.
    fn entry(&mut self, summary: &Summary, at: RowRef, per_second: &PerSecond, now: f64) -> Entry {
        let row = row_of(summary, at);
        let metric = row.metric;
        let i = at.slot();
        while self.counts.len() <= i {
            self.counts.push((0, 0));
            self.latency.push(new_histogram());
        }
        let (ok_before, failed_before) = self.counts[i];
        let ok = row.ok.saturating_sub(ok_before);
        let failures = row.failures.saturating_sub(failed_before);
        self.counts[i] = (row.ok.max(ok_before), row.failures.max(failed_before));
        // The interval's histogram: this snapshot's less the last reported (same bounds, so
        // neither step can fail; an inconsistent pair yields an empty interval, not a panic).
        let interval = &mut self.interval;
        if interval.set_to(&row.latency_us).is_err() || interval.subtract(&self.latency[i]).is_err()
        {
            interval.reset();
        }
        let _ = self.latency[i].set_to(&row.latency_us);
        let interval = &self.interval;
        let mut entry = Entry {
            name: row.name.clone(),
            method: summary.request_type.clone(),
            requests: ok + failures,
            failures,
            none_requests: failures,
            last_request_ts: (ok + failures > 0).then_some(now),
            ..Entry::default()
        };
        if metric.is_response_time() && !interval.is_empty() {
            entry.response_times = bucket::buckets(interval).into_iter().collect();
            entry.total_ms = bucket::total_ms(interval);
            entry.min_ms =
                Some(bucket::representative_us(interval, interval.min()) as f64 / 1000.0);
            entry.max_ms = bucket::representative_us(interval, interval.max()) as f64 / 1000.0;
        } else {
            // Session lengths (or nothing timed): counts only.
            entry.none_requests = entry.requests;
        }
        per_second.fill(at, &mut entry, now);
        entry
    }

    /// The device points stream `stream`'s row carried since the last report, as an entry of
    /// their own outside the total (see the module doc); None for rows without points and
    /// when nothing was added.
    fn points_entry(
        &mut self,
        summary: &Summary,
        stream: usize,
        per_second: &PerSecond,
        now: f64,
    ) -> Option<Entry> {
        let row = summary.streams.get(stream)?;
        let points = row.points?;
        if self.points.len() <= stream {
            self.points.resize(stream + 1, 0);
        }
        let added = points.saturating_sub(self.points[stream]);
        self.points[stream] = self.points[stream].max(points);
        if added == 0 {
            return None;
        }
        let mut entry = Entry {
            name: row.name.clone(),
            method: format!("{}{POINTS_SUFFIX}", summary.request_type),
            requests: added,
            none_requests: added,
            last_request_ts: Some(now),
            ..Entry::default()
        };
        for (second, counts) in &per_second.seconds {
            match counts.points.get(stream) {
                Some(&points) if points > 0 => {
                    *entry.reqs_per_sec.entry(*second).or_insert(0) += points;
                }
                _ => {}
            }
        }
        Some(entry)
    }

    /// Closed seconds of the timeline not reported yet, as unix-second maps.
    fn per_second(
        &mut self,
        timeline: &[TimelineEntry],
        streams: usize,
        start: f64,
        now: f64,
    ) -> PerSecond {
        let mut out = PerSecond::default();
        let done = self.seconds_done;
        for second in timeline.iter().filter(|s| s.second > done) {
            let key = (start + second.second.saturating_sub(1) as f64)
                .floor()
                .min(now.floor()) as u64;
            out.seconds.push((key, SecondCounts::of(second, streams)));
            self.seconds_done = self.seconds_done.max(second.second);
        }
        out
    }

    /// Failure reasons whose count grew since the last report.
    fn errors_since(&mut self, summary: &Summary, start: f64) -> Vec<ErrorDelta> {
        let mut out = Vec::new();
        for error in &summary.errors {
            let key = (error.metric.index(), error.stream, error.reason.clone());
            let before = self.errors.get(&key).copied().unwrap_or(0);
            if error.count <= before {
                continue;
            }
            self.errors.insert(key, error.count);
            out.push(ErrorDelta {
                name: summary.row_of(error).name.clone(),
                method: method_of(&summary.request_type, error.metric),
                error: error.reason.clone(),
                occurrences: error.count - before,
                first_seen: start + error.first_seen_s as f64,
                last_seen: start + error.last_seen_s as f64,
            });
        }
        out
    }
}

/// (ok, failed) per second for the rows the timeline keeps.
#[derive(Default)]
struct PerSecond {
    seconds: Vec<(u64, SecondCounts)>,
}

#[derive(Clone)]
struct SecondCounts {
    publish: (u64, u64),
    connect: (u64, u64),
    e2e: (u64, u64),
    connection: (u64, u64),
    /// Each stream row's, by stream.
    streams: Vec<(u64, u64)>,
    /// Each stream row's device points, by stream (0 for rows without).
    points: Vec<u64>,
}

impl SecondCounts {
    fn of(entry: &TimelineEntry, streams: usize) -> SecondCounts {
        SecondCounts {
            publish: (entry.publish_ok, entry.publish_failures),
            connect: (entry.connect_ok, entry.connect_failures),
            e2e: (entry.e2e_ok, 0),
            connection: (entry.connection_ok, entry.connection_failures),
            streams: (0..streams).map(|s| entry.stream_counts(s)).collect(),
            points: (0..streams).map(|s| entry.stream_points(s)).collect(),
        }
    }
}

/// The row `at` of `summary`.
fn row_of(summary: &Summary, at: RowRef) -> &crate::stats::MetricSummary {
    match at {
        RowRef::Metric(metric) => summary.metric(metric),
        RowRef::Stream(stream) => &summary.streams[stream],
    }
}

impl PerSecond {
    /// The row's per-second maps: from the timeline where it keeps the row, otherwise the
    /// whole difference in the current second.
    fn fill(&self, at: RowRef, entry: &mut Entry, now: f64) {
        let pick = |c: &SecondCounts| match at {
            RowRef::Metric(Metric::Publish) => Some(c.publish),
            RowRef::Metric(Metric::Connect) => Some(c.connect),
            RowRef::Metric(Metric::EndToEnd) => Some(c.e2e),
            RowRef::Metric(Metric::Connection) => Some(c.connection),
            RowRef::Metric(_) => None,
            RowRef::Stream(stream) => c.streams.get(stream).copied(),
        };
        let kept = matches!(
            at,
            RowRef::Metric(
                Metric::Publish | Metric::Connect | Metric::EndToEnd | Metric::Connection
            ) | RowRef::Stream(_)
        );
        if !kept {
            if entry.requests > 0 {
                entry.reqs_per_sec.insert(now as u64, entry.requests);
            }
            if entry.failures > 0 {
                entry.fail_per_sec.insert(now as u64, entry.failures);
            }
            return;
        }
        for (second, counts) in &self.seconds {
            if let Some((ok, failed)) = pick(counts) {
                if ok + failed > 0 {
                    *entry.reqs_per_sec.entry(*second).or_insert(0) += ok + failed;
                }
                if failed > 0 {
                    *entry.fail_per_sec.entry(*second).or_insert(0) += failed;
                }
            }
        }
    }
}

/// Unix time in seconds.
pub fn unix(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ErrorCount, MetricSummary};
    use std::time::Duration;

    fn second(n: u64, publish_ok: u64, publish_failures: u64) -> TimelineEntry {
        serde_json::from_value(serde_json::json!({
            "second": n, "publish_ok": publish_ok, "publish_failures": publish_failures,
            "connect_ok": 0, "connect_failures": 0, "sent": publish_ok,
            "publish_p50_us": 0, "publish_p95_us": 0, "publish_p99_us": 0,
            "connected_users": 2, "lag_max_us": 0
        }))
        .expect("a timeline entry")
    }

    /// A run so far: `publish_us` acknowledged publishes, `failures` timed out, `connects`.
    fn summary(publish_us: &[u64], failures: u64, timeline: Vec<TimelineEntry>) -> Summary {
        let metrics = Metric::ALL.map(|metric| {
            let mut latency_us = new_histogram();
            let samples: &[u64] = match metric {
                Metric::Publish => publish_us,
                Metric::Connect => &[900, 1_100],
                _ => &[],
            };
            for us in samples {
                latency_us.record(*us).unwrap();
            }
            let failed = if metric == Metric::Publish {
                failures
            } else {
                0
            };
            let ok = latency_us.len();
            MetricSummary {
                metric,
                name: if metric == Metric::Publish {
                    "publish:1:t".into()
                } else {
                    metric.key().into()
                },
                requests: ok + failed,
                failures: failed,
                ok,
                rps: 0.0,
                fail_per_s: 0.0,
                latency_us,
                points: None,
            }
        });
        let errors = (failures > 0)
            .then(|| ErrorCount {
                stream: None,
                metric: Metric::Publish,
                reason: "publish timed out: no acknowledgement".into(),
                count: failures,
                first_seen_s: 2,
                last_seen_s: 3,
                examples: Vec::new(),
            })
            .into_iter()
            .collect();
        Summary {
            streams: Vec::new(),
            request_type: "MQTT".into(),
            qos: 1,
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration_s: 3.0,
            metrics,
            errors,
            lag_us: new_histogram(),
            sent: publish_us.len() as u64 + failures,
            timeline,
            target_users: 2,
            max_connected_users: 2,
            sources: Vec::new(),
            missing_sources: Vec::new(),
            audit: None,
        }
    }

    #[test]
    fn reports_are_differences_and_the_aggregated_entry_is_their_sum() {
        let started = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut reporter = Reporter::new(started);
        let first = summary(&[1_000, 2_000, 150_000], 0, vec![second(1, 3, 0)]);
        let report = reporter.report(&first, 1_700_000_003.0);
        let publish = report
            .entries
            .iter()
            .find(|e| e.name == "publish:1:t")
            .unwrap();
        assert_eq!((publish.requests, publish.failures), (3, 0));
        assert_eq!(
            publish.response_times,
            BTreeMap::from([(1, 1), (2, 1), (150, 1)])
        );
        assert_eq!(publish.reqs_per_sec, BTreeMap::from([(1_700_000_000, 3)]));
        assert_eq!(report.total.requests, 5, "3 publishes + 2 connects");
        assert_eq!(report.start_time, 1_700_000_000.0);

        // Later: two more acknowledged, one timed out, one more second closed.
        let later = summary(
            &[1_000, 2_000, 150_000, 3_000, 3_000],
            1,
            vec![second(1, 3, 0), second(2, 2, 1)],
        );
        let report = reporter.report(&later, 1_700_000_006.0);
        let publish = report
            .entries
            .iter()
            .find(|e| e.name == "publish:1:t")
            .unwrap();
        assert_eq!(
            (publish.requests, publish.failures, publish.none_requests),
            (3, 1, 1)
        );
        assert_eq!(publish.response_times, BTreeMap::from([(3, 2)]));
        assert_eq!(publish.reqs_per_sec, BTreeMap::from([(1_700_000_001, 3)]));
        assert_eq!(publish.fail_per_sec, BTreeMap::from([(1_700_000_001, 1)]));
        assert!(
            report.entries.iter().all(|e| e.name != "connect"),
            "nothing new to connect"
        );
        assert_eq!(report.total.requests, 3);
        assert_eq!(report.total.response_times, publish.response_times);
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].occurrences, 1);
        assert_eq!(report.start_time, 1_700_000_003.0);

        // Nothing new: an empty report, nothing sent twice.
        let report = reporter.report(&later, 1_700_000_009.0);
        assert!(report.entries.is_empty() && report.errors.is_empty());
        assert_eq!(report.total.requests, 0);
    }

    /// Regression: the master's Aggregated added the connect phases and the sessions to the
    /// connects (2 connects read as 6 requests).
    #[test]
    fn connect_phases_and_sessions_are_sent_apart_from_the_aggregated_entry() {
        let mut reporter = Reporter::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let mut run = summary(&[1_000], 0, Vec::new());
        let mut add = |metric: Metric, name: &str, samples: &[u64], failures: u64| {
            let m = &mut run.metrics[metric.index()];
            for us in samples {
                m.latency_us.record(*us).unwrap();
            }
            m.name = name.to_string();
            m.ok = m.latency_us.len();
            m.failures = failures;
            m.requests = m.ok + failures;
        };
        add(Metric::ConnectTcp, "connect:tcp", &[300, 400], 0);
        add(Metric::Connection, "connection", &[2_000_000], 1);
        let report = reporter.report(&run, 1_700_000_003.0);
        assert_eq!(
            report.total.requests,
            2 + 1,
            "connects and the publish only"
        );
        let method_of = |name: &str| {
            let entry = report.entries.iter().find(|e| e.name == name);
            entry.map(|e| (e.method.clone(), e.requests))
        };
        assert_eq!(method_of("connect"), Some(("MQTT".into(), 2)));
        assert_eq!(method_of("connect:tcp"), Some(("MQTT part".into(), 2)));
        assert_eq!(method_of("connection"), Some(("MQTT session".into(), 2)));
    }

    /// `--rpc-responder`: the answers are a request row of the master's, like Locust's own
    /// requests, with their failures (dropped requests) beside them.
    #[test]
    fn rpc_answers_reach_the_master_as_a_request_row_in_the_aggregated_entry() {
        let mut reporter = Reporter::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let mut run = summary(&[1_000], 0, Vec::new());
        let m = &mut run.metrics[Metric::RpcResponder.index()];
        for us in [20_000, 21_000, 22_000] {
            m.latency_us.record(us).unwrap();
        }
        m.name = "rpc-responder".to_string();
        (m.ok, m.failures, m.requests) = (3, 2, 5);
        let report = reporter.report(&run, 1_700_000_003.0);
        let entry = report
            .entries
            .iter()
            .find(|e| e.name == "rpc-responder")
            .expect("an rpc-responder entry");
        assert_eq!(
            (entry.method.as_str(), entry.requests, entry.failures),
            ("MQTT", 5, 2)
        );
        assert_eq!(
            report.total.requests,
            2 + 1 + 5,
            "connects, the publish, the requests answered or dropped"
        );
    }

    /// A gateway's points reach the master as an entry of their own beside the row's
    /// messages, outside the total, each report adding only the points since the last.
    #[test]
    fn device_points_are_an_untimed_entry_of_their_own_outside_the_aggregated_entry() {
        let started = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let gateway_run = |points: u64, seconds: &[(u64, u64, u64)]| {
            let timeline = seconds
                .iter()
                .map(|&(n, messages, points)| {
                    let mut entry = second(n, messages, 0);
                    entry.streams = vec![
                        crate::stats::timeline::StreamSecond {
                            ok: messages,
                            failures: 0,
                            hdr: String::new(),
                            points,
                        },
                        crate::stats::timeline::StreamSecond {
                            ok: 0,
                            failures: 0,
                            hdr: String::new(),
                            points: 0,
                        },
                    ];
                    entry
                })
                .collect();
            let mut run = summary(&[], 0, timeline);
            let messages: u64 = seconds.iter().map(|&(_, m, _)| m).sum();
            let row = |name: &str, ok: u64, points: Option<u64>| {
                let mut latency_us = new_histogram();
                for _ in 0..ok {
                    latency_us.record(2_000).unwrap();
                }
                MetricSummary {
                    metric: Metric::Publish,
                    name: name.into(),
                    requests: ok,
                    failures: 0,
                    ok,
                    rps: 0.0,
                    fail_per_s: 0.0,
                    latency_us,
                    points,
                }
            };
            run.streams = vec![
                row("gateway telemetry", messages, Some(points)),
                row("gateway connect", 0, None),
            ];
            run
        };
        let mut reporter = Reporter::new(started);
        let run = gateway_run(40, &[(1, 4, 40)]);
        let report = reporter.report(&run, 1_700_000_003.0);
        let find = |report: &Report, method: &str| {
            report
                .entries
                .iter()
                .find(|e| e.name == "gateway telemetry" && e.method == method)
                .cloned()
        };
        let points = find(&report, "MQTT points").expect("a points entry");
        assert_eq!(
            (points.requests, points.none_requests, points.failures),
            (40, 40, 0),
            "counted, untimed"
        );
        assert!(points.response_times.is_empty() && points.min_ms.is_none());
        assert_eq!(points.reqs_per_sec, BTreeMap::from([(1_700_000_000, 40)]));
        assert_eq!(find(&report, "MQTT").map(|e| e.requests), Some(4));
        assert_eq!(report.total.requests, 2 + 4, "connects and messages only");
        assert!(
            report
                .entries
                .iter()
                .all(|e| e.name != "gateway connect" || e.method != "MQTT points"),
            "a row without points has no points entry"
        );

        let run = gateway_run(55, &[(1, 4, 40), (2, 3, 15)]);
        let report = reporter.report(&run, 1_700_000_006.0);
        let points = find(&report, "MQTT points").expect("a points entry");
        assert_eq!(points.requests, 15, "only what was added");
        assert_eq!(points.reqs_per_sec, BTreeMap::from([(1_700_000_001, 15)]));
        let report = reporter.report(&run, 1_700_000_009.0);
        assert_eq!(find(&report, "MQTT points"), None, "nothing sent twice");
    }

    #[test]
    fn the_stats_message_has_every_key_locust_reads_unguarded() {
        let mut reporter = Reporter::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let report = reporter.report(
            &summary(&[1_000], 1, vec![second(1, 1, 1)]),
            1_700_000_003.0,
        );
        let value = report.to_value(&[("MQTTLocust".into(), 2)]);
        for key in [
            "stats",
            "stats_total",
            "errors",
            "user_classes_count",
            "user_count",
        ] {
            assert!(super::super::msg::field(&value, key).is_some(), "{key}");
        }
        let total = super::super::msg::field(&value, "stats_total").unwrap();
        for key in [
            "name",
            "method",
            "start_time",
            "num_requests",
            "num_none_requests",
            "num_failures",
            "total_response_time",
            "max_response_time",
            "min_response_time",
            "response_times",
            "num_reqs_per_sec",
            "num_fail_per_sec",
            "last_request_timestamp",
            "total_content_length",
        ] {
            assert!(
                super::super::msg::field(total, key).is_some(),
                "stats_total.{key}"
            );
        }
    }
}
