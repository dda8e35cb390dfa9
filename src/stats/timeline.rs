//! The per-second timeline: what happened in each second of the run, for charts and CSV history.
//!
//! Workers ship on the grid `start + k s`, so the interval a worker ships at about `k` seconds
//! holds what it measured during second `k` (from `k-1` to `k`). Intervals of one second arrive
//! from different workers at slightly different times, so a second stays *open* until every
//! worker has shipped a later one (or finished); then it is closed into a [`TimelineEntry`] with
//! its own exact percentiles. Memory is bounded: at most [`MAX_OPEN_SECONDS`] stay open (a
//! stalled worker cannot hold them forever), and an interval for an already closed second is
//! counted in the oldest open one.
//!
//! Each closed second also keeps its own merged histograms (connect, publish, schedule lag),
//! encoded as text ([`super::hdr_codec`]): a few hundred bytes per second instead of the
//! histograms' fixed-size arrays, so an hour-long run's timeline stays small, and the interval
//! log, the CSV history and the charts can be rebuilt from a result file alone.

use std::collections::VecDeque;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{hdr_codec, new_histogram, Interval, Metric, N_METRICS};

/// Seconds kept open waiting for slow workers before they are closed anyway.
pub const MAX_OPEN_SECONDS: usize = 10;

/// One second of the run, across all workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Seconds since the start; the entry covers `(second - 1, second]`.
    pub second: u64,
    /// Acknowledged publishes in this second (= publishes/s).
    pub publish_ok: u64,
    pub publish_failures: u64,
    pub connect_ok: u64,
    pub connect_failures: u64,
    /// Publishes handed to sockets.
    pub sent: u64,
    /// Publish latency percentiles of this second alone, microseconds (0 when none).
    pub publish_p50_us: u64,
    pub publish_p95_us: u64,
    pub publish_p99_us: u64,
    /// Clients holding an accepted connection at the end of the second.
    pub connected_users: u32,
    /// Worst schedule lag of a publish sent in this second, microseconds.
    pub lag_max_us: u64,
    /// This second's connect latency histogram ([`hdr_codec`] text; "" = empty).
    #[serde(default)]
    pub connect_hdr: String,
    /// This second's publish latency histogram.
    #[serde(default)]
    pub publish_hdr: String,
    /// This second's schedule lag histogram.
    #[serde(default)]
    pub lag_hdr: String,
    /// This second's end-to-end latency histogram (runs with subscribers).
    #[serde(default)]
    pub e2e_hdr: String,
    /// Marked messages subscribers received in this second.
    #[serde(default)]
    pub e2e_ok: u64,
    /// End-to-end latency percentiles of this second alone, microseconds (0 when none).
    #[serde(default)]
    pub e2e_p50_us: u64,
    #[serde(default)]
    pub e2e_p95_us: u64,
    #[serde(default)]
    pub e2e_p99_us: u64,
    /// Established connections that ended in this second by our choice (the `connection`
    /// row's ok; their durations are in the whole-run histogram only).
    #[serde(default)]
    pub connection_ok: u64,
    /// Established connections lost in this second (the `connection` row's failures).
    #[serde(default)]
    pub connection_failures: u64,
    /// Each stream's row in this second, by stream, in runs with more than one stream (with
    /// one, the stream row is the publish row: see [`TimelineEntry::stream_counts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamSecond>,
}

/// One stream's row in one second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSecond {
    /// Acknowledged (QoS 0: written) publishes.
    pub ok: u64,
    pub failures: u64,
    /// Their latency histogram ([`hdr_codec`] text; "" = empty).
    #[serde(default)]
    pub hdr: String,
    /// Device points the successful publishes carried (a gateway's point rows; absent, 0,
    /// elsewhere, so results of runs without gateways are written as before).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub points: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TimelineEntry {
    /// This second's histogram of `metric`, decoded ("" decodes to an empty histogram).
    pub fn histogram(&self, metric: Metric) -> Result<Histogram<u64>, String> {
        match metric {
            Metric::Connect => decode_or_empty(&self.connect_hdr),
            Metric::Publish => decode_or_empty(&self.publish_hdr),
            Metric::EndToEnd => decode_or_empty(&self.e2e_hdr),
            // Not kept per second (their whole-run histograms are in the result).
            Metric::Subscribe
            | Metric::Reconnect
            | Metric::Connection
            | Metric::ConnectTcp
            | Metric::ConnectTlsFull
            | Metric::ConnectTlsResumed
            | Metric::ConnectWs
            | Metric::ConnectMqtt
            | Metric::RpcResponder => Ok(new_histogram()),
        }
    }

    /// Ok and failed publishes of stream `stream` in this second: its own entry, or the
    /// publish row's when the run had a single stream (no entries).
    pub fn stream_counts(&self, stream: usize) -> (u64, u64) {
        match (self.streams.get(stream), stream) {
            (Some(second), _) => (second.ok, second.failures),
            (None, 0) if self.streams.is_empty() => (self.publish_ok, self.publish_failures),
            (None, _) => (0, 0),
        }
    }

    /// Device points of stream `stream` in this second (0 for rows that carry none, and for
    /// timelines without stream rows).
    pub fn stream_points(&self, stream: usize) -> u64 {
        self.streams.get(stream).map_or(0, |second| second.points)
    }

    /// This second's latency histogram of stream `stream`, decoded (as [`Self::stream_counts`]).
    pub fn stream_histogram(&self, stream: usize) -> Result<Histogram<u64>, String> {
        match (self.streams.get(stream), stream) {
            (Some(second), _) => decode_or_empty(&second.hdr),
            (None, 0) if self.streams.is_empty() => decode_or_empty(&self.publish_hdr),
            (None, _) => Ok(new_histogram()),
        }
    }

    /// This second's schedule lag histogram, decoded.
    pub fn lag_histogram(&self) -> Result<Histogram<u64>, String> {
        decode_or_empty(&self.lag_hdr)
    }
}

fn decode_or_empty(text: &str) -> Result<Histogram<u64>, String> {
    if text.is_empty() {
        Ok(new_histogram())
    } else {
        hdr_codec::decode(text)
    }
}

/// [`hdr_codec::encode`], "" for an empty histogram (most seconds of most metrics).
pub fn encode_or_empty(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        String::new()
    } else {
        hdr_codec::encode(histogram).unwrap_or_default()
    }
}

/// Counts of one metric in one second, for the live "current req/s" window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondCounts {
    pub ok: u64,
    pub failures: u64,
}

/// A second still receiving intervals.
struct OpenSecond {
    counts: [SecondCounts; N_METRICS],
    /// Counts and latency of each stream row (empty with fewer than two streams).
    stream_counts: Vec<SecondCounts>,
    stream_latency_us: Vec<Histogram<u64>>,
    /// Device points of each stream row (empty with fewer than two streams).
    stream_points: Vec<u64>,
    sent: u64,
    /// Latency per metric, indexed by `Metric::index()`.
    latency_us: [Histogram<u64>; N_METRICS],
    lag_us: Histogram<u64>,
    connected: Vec<Option<u32>>,
    lag_max_us: u64,
}

/// Builds the timeline from intervals in arrival order (the merger owns one).
pub struct TimelineBuilder {
    started_at: Instant,
    closed: Vec<TimelineEntry>,
    /// Counts of closed seconds, parallel to `closed`.
    closed_counts: Vec<[SecondCounts; N_METRICS]>,
    /// Stream rows kept per second: the plan's streams when there are two or more (with one,
    /// the publish row is the stream's), else 0.
    streams: usize,
    /// Contiguous open seconds, the first being `closed.len() + 1`.
    open: VecDeque<OpenSecond>,
    /// Latest second each worker has shipped; `u64::MAX` once it finished.
    worker_second: Vec<u64>,
    /// Connected clients per worker as of the last closed second.
    connected: Vec<u32>,
    /// Emptied histograms of closed seconds, reused for new ones.
    spare_histograms: Vec<Histogram<u64>>,
}

impl TimelineBuilder {
    pub fn new(workers: usize, started_at: Instant) -> TimelineBuilder {
        TimelineBuilder::with_streams(workers, started_at, 0)
    }

    /// A timeline of a run of `streams` streams: each second keeps every stream's row when
    /// there are two or more.
    pub fn with_streams(workers: usize, started_at: Instant, streams: usize) -> TimelineBuilder {
        TimelineBuilder {
            started_at,
            closed: Vec::new(),
            closed_counts: Vec::new(),
            streams: if streams > 1 { streams } else { 0 },
            open: VecDeque::new(),
            worker_second: vec![0; workers],
            connected: vec![0; workers],
            spare_histograms: Vec::new(),
        }
    }

    /// The second an interval shipped at `at` belongs to (rounded, never 0).
    pub fn second_of(&self, at: Instant) -> u64 {
        let since_ms = at.saturating_duration_since(self.started_at).as_millis();
        let second = (since_ms + 500) / 1000;
        u64::try_from(second).unwrap_or(u64::MAX).max(1)
    }

    /// Adds one interval to its second and closes the seconds every worker has moved past.
    pub fn absorb(&mut self, interval: &Interval) {
        let second = self.second_of(interval.at).max(self.first_open());
        let open = self.open_second(second);
        for metric in Metric::ALL {
            let counts = &mut open.counts[metric.index()];
            counts.ok += interval.latency[metric.index()].len();
            counts.failures += interval.failures_of(metric);
        }
        for (stream, counts) in open.stream_counts.iter_mut().enumerate() {
            counts.ok += interval.streams.get(stream).map_or(0, Histogram::len);
            counts.failures += interval.failures_of_stream(stream);
        }
        for (sum, part) in open
            .stream_latency_us
            .iter_mut()
            .zip(interval.streams.iter())
        {
            let _ = sum.add(part);
        }
        for (sum, part) in open.stream_points.iter_mut().zip(interval.points.iter()) {
            *sum += part;
        }
        open.sent += interval.sent;
        for (sum, part) in open.latency_us.iter_mut().zip(&interval.latency) {
            let _ = sum.add(part);
        }
        let _ = open.lag_us.add(&interval.lag);
        if let Some(slot) = open.connected.get_mut(interval.worker) {
            *slot = Some(interval.connected);
        }
        if !interval.lag.is_empty() {
            open.lag_max_us = open.lag_max_us.max(interval.lag.max());
        }
        if let Some(latest) = self.worker_second.get_mut(interval.worker) {
            *latest = if interval.last {
                u64::MAX
            } else {
                (*latest).max(second)
            };
        }
        self.close_settled();
    }

    /// Closes every open second and returns the timeline.
    pub fn finish(mut self) -> Vec<TimelineEntry> {
        while !self.open.is_empty() {
            self.close_first();
        }
        self.closed
    }

    /// The seconds closed so far (a live snapshot's timeline).
    pub fn closed_entries(&self) -> &[TimelineEntry] {
        &self.closed
    }

    /// Counts of `metric` in `second`, if that second has been seen.
    pub fn counts(&self, second: u64, metric: Metric) -> Option<SecondCounts> {
        let index = usize::try_from(second.checked_sub(1)?).ok()?;
        if let Some(counts) = self.closed_counts.get(index) {
            return Some(counts[metric.index()]);
        }
        let open = self.open.get(index - self.closed_counts.len())?;
        Some(open.counts[metric.index()])
    }

    /// The latest second every worker has shipped (0: none yet). Its counts are complete:
    /// a worker ships each second once, on the grid, so nothing more arrives for it.
    fn complete_through(&self) -> u64 {
        let seen = (self.closed.len() + self.open.len()) as u64;
        let shipped = self.worker_second.iter().copied().min().unwrap_or(u64::MAX);
        shipped.min(seen)
    }

    /// [`TimelineBuilder::current_rates`] of stream `stream`'s row (the publish row's when
    /// the run has one stream).
    pub fn current_stream_rates(&self, now: Instant, stream: usize) -> (f64, f64) {
        if self.streams == 0 {
            return match stream {
                0 => self.current_rates(now, Metric::Publish),
                _ => (0.0, 0.0),
            };
        }
        self.rates_of(now, |second| self.stream_counts_at(second, stream))
    }

    /// Counts of stream `stream` in `second`, if that second has been seen.
    fn stream_counts_at(&self, second: u64, stream: usize) -> Option<SecondCounts> {
        let index = usize::try_from(second.checked_sub(1)?).ok()?;
        if let Some(entry) = self.closed.get(index) {
            let (ok, failures) = entry.stream_counts(stream);
            return Some(SecondCounts { ok, failures });
        }
        let open = self.open.get(index - self.closed.len())?;
        open.stream_counts.get(stream).copied()
    }

    /// The live "current" rate of `metric`: (requests/s, failures/s), Locust's `current_rps`:
    /// the average of the per-second counts over the last ten seconds, never before the
    /// run's start (Locust: `[max(t - 12, start), t - 2)`, averaged over the seconds in it).
    /// Locust holds back the last two seconds because its workers report every 3 s; ours
    /// ship every second, so the window ends at the latest second every worker has shipped
    /// (not at `now - 1`): at the first live table, after 2 s, the first second counts.
    pub fn current_rates(&self, now: Instant, metric: Metric) -> (f64, f64) {
        self.rates_of(now, |second| self.counts(second, metric))
    }

    /// The current rates from the per-second counts `counts_in` gives.
    fn rates_of(
        &self,
        now: Instant,
        counts_in: impl Fn(u64) -> Option<SecondCounts>,
    ) -> (f64, f64) {
        let now_s = now.saturating_duration_since(self.started_at).as_secs();
        let through = self.complete_through().min(now_s.max(1));
        if through == 0 {
            return (0.0, 0.0);
        }
        let from = through.saturating_sub(9).max(1);
        let (mut requests, mut failures, mut seconds) = (0u64, 0u64, 0u64);
        for second in from..=through {
            let counts = counts_in(second).unwrap_or_default();
            requests += counts.ok + counts.failures;
            failures += counts.failures;
            seconds += 1;
        }
        let seconds = seconds.max(1) as f64;
        (requests as f64 / seconds, failures as f64 / seconds)
    }

    fn first_open(&self) -> u64 {
        self.closed.len() as u64 + 1
    }

    /// The open second `second` (>= first open), opening it and any before it. At most
    /// [`MAX_OPEN_SECONDS`] stay open: a second further ahead closes the oldest ones first.
    fn open_second(&mut self, second: u64) -> &mut OpenSecond {
        while second - self.first_open() >= MAX_OPEN_SECONDS as u64 {
            if self.open.is_empty() {
                self.push_open();
            }
            self.close_first();
        }
        let index = (second - self.first_open()) as usize;
        while self.open.len() <= index {
            self.push_open();
        }
        &mut self.open[index]
    }

    fn push_open(&mut self) {
        let mut spare = || self.spare_histograms.pop().unwrap_or_else(new_histogram);
        let latency_us = std::array::from_fn(|_| spare());
        let lag_us = spare();
        let stream_latency_us = (0..self.streams).map(|_| spare()).collect();
        self.open.push_back(OpenSecond {
            counts: [SecondCounts::default(); N_METRICS],
            stream_counts: vec![SecondCounts::default(); self.streams],
            stream_latency_us,
            stream_points: vec![0; self.streams],
            sent: 0,
            latency_us,
            lag_us,
            connected: vec![None; self.worker_second.len()],
            lag_max_us: 0,
        });
    }

    /// Closes the seconds that every worker has moved past.
    fn close_settled(&mut self) {
        let settled = self.worker_second.iter().copied().min().unwrap_or(u64::MAX);
        while !self.open.is_empty() && self.first_open() < settled {
            self.close_first();
        }
    }

    fn close_first(&mut self) {
        let Some(open) = self.open.pop_front() else {
            return;
        };
        for (worker, value) in open.connected.iter().enumerate() {
            if let (Some(value), Some(slot)) = (value, self.connected.get_mut(worker)) {
                *slot = *value;
            }
        }
        let percentile_of = |latency: &Histogram<u64>, q: f64| {
            if latency.is_empty() {
                0
            } else {
                latency.value_at_quantile(q)
            }
        };
        let percentile = |q: f64| percentile_of(&open.latency_us[Metric::Publish.index()], q);
        let e2e = |q: f64| percentile_of(&open.latency_us[Metric::EndToEnd.index()], q);
        let publish = open.counts[Metric::Publish.index()];
        let connect = open.counts[Metric::Connect.index()];
        let connection = open.counts[Metric::Connection.index()];
        self.closed.push(TimelineEntry {
            second: self.first_open(),
            publish_ok: publish.ok,
            publish_failures: publish.failures,
            connect_ok: connect.ok,
            connect_failures: connect.failures,
            sent: open.sent,
            publish_p50_us: percentile(0.50),
            publish_p95_us: percentile(0.95),
            publish_p99_us: percentile(0.99),
            connected_users: self.connected.iter().sum(),
            lag_max_us: open.lag_max_us,
            connect_hdr: encode_or_empty(&open.latency_us[Metric::Connect.index()]),
            publish_hdr: encode_or_empty(&open.latency_us[Metric::Publish.index()]),
            lag_hdr: encode_or_empty(&open.lag_us),
            e2e_hdr: encode_or_empty(&open.latency_us[Metric::EndToEnd.index()]),
            e2e_ok: open.counts[Metric::EndToEnd.index()].ok,
            e2e_p50_us: e2e(0.50),
            e2e_p95_us: e2e(0.95),
            e2e_p99_us: e2e(0.99),
            connection_ok: connection.ok,
            connection_failures: connection.failures,
            streams: open
                .stream_counts
                .iter()
                .zip(&open.stream_latency_us)
                .zip(&open.stream_points)
                .map(|((counts, latency), &points)| StreamSecond {
                    ok: counts.ok,
                    failures: counts.failures,
                    hdr: encode_or_empty(latency),
                    points,
                })
                .collect(),
        });
        self.closed_counts.push(open.counts);
        let histograms = open.latency_us.into_iter().chain([open.lag_us]);
        for mut histogram in histograms.chain(open.stream_latency_us) {
            histogram.reset();
            self.spare_histograms.push(histogram);
        }
    }
}

/// The instant `millis` after `start` (test helper for building intervals).
#[cfg(test)]
pub(crate) fn at(start: Instant, millis: u64) -> Instant {
    start + std::time::Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Failure;

    fn interval(worker: usize, at: Instant, publishes: &[u64], connected: u32) -> Interval {
        let mut interval = Interval::new(worker, at);
        for &us in publishes {
            interval.latency[Metric::Publish.index()].saturating_record(us);
        }
        interval.connected = connected;
        interval
    }

    #[test]
    fn a_second_closes_when_every_worker_has_moved_past_it() {
        let start = Instant::now();
        let mut timeline = TimelineBuilder::new(2, start);
        timeline.absorb(&interval(0, at(start, 1_002), &[100, 200], 3));
        timeline.absorb(&interval(0, at(start, 2_001), &[300], 3));
        assert!(
            timeline.closed.is_empty(),
            "worker 1 has not shipped second 1 yet"
        );
        timeline.absorb(&interval(1, at(start, 998), &[400], 4));
        assert!(timeline.closed.is_empty());
        timeline.absorb(&interval(1, at(start, 2_003), &[], 5));
        assert_eq!(timeline.closed.len(), 1);
        let first = &timeline.closed[0];
        assert_eq!(
            (first.second, first.publish_ok, first.connected_users),
            (1, 3, 7)
        );
        assert_eq!(first.publish_p50_us, 200);
        let publish = first.histogram(Metric::Publish).unwrap();
        assert_eq!((publish.len(), publish.max()), (3, 400));
        assert!(first.histogram(Metric::Connect).unwrap().is_empty());

        let entries = timeline.finish();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (
                entries[1].second,
                entries[1].publish_ok,
                entries[1].connected_users
            ),
            (2, 1, 8)
        );
    }

    #[test]
    fn current_rates_average_the_last_ten_seconds_every_worker_has_shipped() {
        let start = Instant::now();
        let mut timeline = TimelineBuilder::new(1, start);
        for second in 1..=20u64 {
            let mut iv = interval(0, at(start, second * 1000), &vec![50; second as usize], 0);
            iv.failures[0] = (Failure::AckTimeout, 1);
            iv.failure_kinds = 1;
            timeline.absorb(&iv);
        }
        // At t = 20.4 s, seconds 11..=20 are shipped: ok 11..=20 (+1 failure each) = 155 + 10.
        let (rps, fail_per_s) = timeline.current_rates(at(start, 20_400), Metric::Publish);
        assert_eq!((rps, fail_per_s), (16.5, 1.0));
    }

    /// Regression: the first live table (at 2 s) always read `req/s 0.00`, since the window
    /// ended a second before now, and a burst in the first second was then divided by the
    /// seconds after it one by one (5.00, 2.50, 1.67 for 10 connects) as Locust's window
    /// grew from the start.
    #[test]
    fn the_first_live_table_rates_what_flowed_in_the_first_second() {
        let start = Instant::now();
        let mut timeline = TimelineBuilder::new(2, start);
        assert_eq!(
            timeline.current_rates(at(start, 900), Metric::Publish),
            (0.0, 0.0)
        );
        timeline.absorb(&interval(0, at(start, 1_000), &[50; 10], 1));
        assert_eq!(
            timeline.current_rates(at(start, 2_000), Metric::Publish),
            (0.0, 0.0),
            "worker 1 has not shipped its first second: nothing is complete"
        );
        timeline.absorb(&interval(1, at(start, 1_001), &[50; 6], 1));
        assert_eq!(
            timeline.current_rates(at(start, 2_000), Metric::Publish),
            (16.0, 0.0),
            "the first second, complete, is the whole window"
        );
        for second in 2..=3u64 {
            for worker in 0..2 {
                timeline.absorb(&interval(worker, at(start, second * 1000), &[], 1));
            }
        }
        assert_eq!(
            timeline.current_rates(at(start, 4_000), Metric::Publish),
            (16.0 / 3.0, 0.0),
            "seconds 1 to 3, as Locust averages its window from the start"
        );
    }
}
