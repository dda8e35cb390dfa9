//! Worker-side recording: fixed-bound histograms and counters, shipped once per interval.
//!
//! This is the hot path: every acknowledged publish calls [`Recorder::ok`]. Nothing here
//! allocates after [`Recorder::new`], blocks, or panics. A recorder owns at most
//! [`crate::stats::INTERVALS_PER_WORKER`] intervals (the current one and [`SPARE_INTERVALS`]
//! spares, which circulate through the merger and back over the recycle channel). When the
//! merger is slow and no empty interval is at hand, the recorder simply keeps accumulating into
//! the current interval and ships it later: samples are never lost and never block the worker.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;

use super::live::LiveAudit;
use super::{
    new_histogram, ClientRef, Failure, Metric, INTERVAL_MS, LATENCY_MAX_US, MAX_ERROR_EXAMPLES,
    N_METRICS,
};

/// Most distinct failure reasons one interval holds; further new reasons are counted in the
/// per-metric `overflow` bucket instead of growing anything.
pub const MAX_FAILURE_KINDS: usize = 32;

/// Empty intervals each recorder allocates up front, besides the one it records into. Three
/// spares let the merger fall three intervals behind before a worker stops shipping.
pub const SPARE_INTERVALS: usize = 3;

/// The first clients (at most [`MAX_ERROR_EXAMPLES`], each once) a failure reason happened
/// to in one interval: a fixed array inside the interval, so keeping them never allocates.
#[derive(Debug, Clone, Copy)]
pub struct Examples {
    clients: [ClientRef; MAX_ERROR_EXAMPLES],
    len: usize,
}

impl Examples {
    const EMPTY: Examples = Examples {
        clients: [ClientRef {
            subscriber: false,
            index: 0,
        }; MAX_ERROR_EXAMPLES],
        len: 0,
    };

    /// The clients kept, in the order they failed.
    pub fn clients(&self) -> &[ClientRef] {
        &self.clients[..self.len.min(MAX_ERROR_EXAMPLES)]
    }

    /// Keeps `client` unless it is already kept or the examples are full.
    pub fn add(&mut self, client: ClientRef) {
        if self.len < MAX_ERROR_EXAMPLES && !self.clients().contains(&client) {
            self.clients[self.len] = client;
            self.len += 1;
        }
    }
}

/// One worker's measurements for one interval (or the last, partial one).
pub struct Interval {
    pub worker: usize,
    /// Instant the interval was shipped.
    pub at: Instant,
    /// Successful request latencies per metric, microseconds.
    pub latency: [Histogram<u64>; N_METRICS],
    /// How far behind schedule each publish was sent, microseconds.
    pub lag: Histogram<u64>,
    /// Acknowledged (QoS 0: written) publishes of each stream of the plan, microseconds,
    /// indexed by stream: the stream rows. The merger adds them into `latency[Publish]`
    /// ([`Interval::fold_streams`]), which the workers leave empty.
    pub streams: Box<[Histogram<u64>]>,
    /// Failure counts by reason; `failures[..failure_kinds]` are used.
    pub failures: [(Failure, u64); MAX_FAILURE_KINDS],
    /// The stream of each publish failure in `failures` (0 for other failures): a reason is
    /// counted per stream, so each stream row has its own.
    pub failure_streams: [u8; MAX_FAILURE_KINDS],
    pub failure_kinds: usize,
    /// Example clients of each reason, parallel to `failures`.
    pub examples: [Examples; MAX_FAILURE_KINDS],
    /// Failures that did not fit in `failures`.
    pub overflow: [u64; N_METRICS],
    /// Of `overflow[Publish]`, those of each stream.
    pub overflow_streams: Box<[u64]>,
    /// Device points carried by each stream row's successful publishes (gateway rows; 0
    /// elsewhere).
    pub points: Box<[u64]>,
    /// Publishes handed to the socket (all QoS).
    pub sent: u64,
    /// Clients of this worker holding an accepted connection at `at`.
    pub connected: u32,
    /// The worker's delivery-audit counts at `at` (cumulative since the audit's cut).
    pub audit: LiveAudit,
    /// True for the worker's last interval.
    pub last: bool,
}

impl Interval {
    /// An empty interval of `worker` without stream rows (allocates its histograms: call at
    /// start-up only).
    pub fn new(worker: usize, at: Instant) -> Interval {
        Interval::with_streams(worker, at, 0)
    }

    /// An empty interval of `worker` with `streams` stream rows (allocates its histograms:
    /// call at start-up only).
    pub fn with_streams(worker: usize, at: Instant, streams: usize) -> Interval {
        Interval {
            worker,
            at,
            latency: std::array::from_fn(|_| new_histogram()),
            streams: (0..streams).map(|_| new_histogram()).collect(),
            lag: new_histogram(),
            failures: [(Failure::ConnectTimeout, 0); MAX_FAILURE_KINDS],
            failure_streams: [0; MAX_FAILURE_KINDS],
            failure_kinds: 0,
            examples: [Examples::EMPTY; MAX_FAILURE_KINDS],
            overflow: [0; N_METRICS],
            overflow_streams: vec![0; streams].into_boxed_slice(),
            points: vec![0; streams].into_boxed_slice(),
            sent: 0,
            connected: 0,
            audit: LiveAudit::default(),
            last: false,
        }
    }

    /// Empties the interval for reuse, keeping its allocations and its `worker`.
    pub fn reset(&mut self) {
        for histogram in self.latency.iter_mut().chain(self.streams.iter_mut()) {
            histogram.reset();
        }
        self.lag.reset();
        self.failure_kinds = 0;
        self.overflow = [0; N_METRICS];
        self.overflow_streams.fill(0);
        self.points.fill(0);
        self.sent = 0;
        self.connected = 0;
        self.last = false;
    }

    /// The failure reasons in use, with their counts.
    pub fn failures(&self) -> &[(Failure, u64)] {
        &self.failures[..self.failure_kinds.min(MAX_FAILURE_KINDS)]
    }

    /// Failures of `metric` in this interval (named reasons plus overflow).
    pub fn failures_of(&self, metric: Metric) -> u64 {
        let named: u64 = self
            .failures()
            .iter()
            .filter(|(failure, _)| failure.metric() == metric)
            .map(|(_, count)| count)
            .sum();
        named + self.overflow[metric.index()]
    }

    /// Failures of stream `stream`'s publishes in this interval (named reasons plus overflow).
    pub fn failures_of_stream(&self, stream: usize) -> u64 {
        let named: u64 = self
            .failures()
            .iter()
            .zip(&self.failure_streams)
            .filter(|((failure, _), &s)| {
                failure.metric() == Metric::Publish && s as usize == stream
            })
            .map(|((_, count), _)| count)
            .sum();
        named + self.overflow_streams.get(stream).copied().unwrap_or(0)
    }

    /// The stream of `failures()[kind]` (0 for a kind out of range or not a publish).
    pub fn stream_of(&self, kind: usize) -> u8 {
        self.failure_streams.get(kind).copied().unwrap_or(0)
    }

    /// Add the stream rows into the `publish` row, which then holds every publish: done once
    /// per interval by the merger, so workers record each publish once.
    pub fn fold_streams(&mut self) {
        let publish = &mut self.latency[Metric::Publish.index()];
        for stream in self.streams.iter() {
            // Same bounds on both sides: adding cannot fail.
            let _ = publish.add(stream);
        }
    }

    /// The example clients of `failures()[kind]` (none for a kind out of range).
    pub fn examples_of(&self, kind: usize) -> &[ClientRef] {
        self.examples.get(kind).map_or(&[], Examples::clients)
    }

    /// Counts one failure, in its own slot (with `client` as an example) or in the overflow
    /// bucket of its metric (whose reason, and so its examples, are not kept).
    /// `stream`: the publish's stream (0 for failures of other rows).
    fn count_failure(&mut self, failure: Failure, stream: u8, client: Option<ClientRef>) {
        let used = self.failure_kinds.min(MAX_FAILURE_KINDS);
        let kind = match self.failures[..used]
            .iter()
            .zip(&self.failure_streams)
            .position(|((f, _), &s)| *f == failure && s == stream)
        {
            Some(kind) => {
                self.failures[kind].1 += 1;
                kind
            }
            None if used < MAX_FAILURE_KINDS => {
                self.failures[used] = (failure, 1);
                self.failure_streams[used] = stream;
                self.examples[used] = Examples::EMPTY;
                self.failure_kinds = used + 1;
                used
            }
            None => {
                self.overflow[failure.metric().index()] += 1;
                if failure.metric() == Metric::Publish {
                    if let Some(count) = self.overflow_streams.get_mut(stream as usize) {
                        *count += 1;
                    }
                }
                return;
            }
        };
        if let Some(client) = client {
            self.examples[kind].add(client);
        }
    }
}

/// Thread-local recorder owned by one worker.
pub struct Recorder {
    /// The interval being recorded into.
    current: Interval,
    /// Empty intervals ready to swap in; capacity [`SPARE_INTERVALS`], never grows.
    spares: Vec<Interval>,
    tx: Sender<Interval>,
    recycle: Receiver<Interval>,
    /// When the current interval is due. Deadlines stay on the grid `start + k * INTERVAL_MS`
    /// so that all workers ship at about the same moments and the merger can bucket by second.
    ship_due_at: Instant,
    connected: u32,
    audit: LiveAudit,
    finished: bool,
    /// Streams timed by their answers (bit s: stream s sends requests): the acks, ack
    /// timeouts, losses and refusals of their publishes are not their rows' (see
    /// [`Recorder::set_answered_streams`]).
    answered_streams: u32,
}

impl Recorder {
    /// Allocates the current interval and the spares, with a row for each of the plan's
    /// `streams` (a publish of a stream beyond them is not recorded). `now` should be the
    /// run's start instant (the one given to the merger) so that intervals line up with the
    /// timeline's seconds.
    pub fn new(
        worker: usize,
        tx: Sender<Interval>,
        recycle: Receiver<Interval>,
        now: Instant,
        streams: usize,
    ) -> Recorder {
        let mut spares = Vec::with_capacity(SPARE_INTERVALS);
        for _ in 0..SPARE_INTERVALS {
            spares.push(Interval::with_streams(worker, now, streams));
        }
        Recorder {
            current: Interval::with_streams(worker, now, streams),
            spares,
            tx,
            recycle,
            ship_due_at: now + interval(),
            connected: 0,
            audit: LiveAudit::default(),
            finished: false,
            answered_streams: 0,
        }
    }

    /// A successful request; the latency is clamped to `[1, LATENCY_MAX_US]`.
    pub fn ok(&mut self, metric: Metric, latency_us: u64) {
        let clamped_us = latency_us.clamp(1, LATENCY_MAX_US);
        self.current.latency[metric.index()].saturating_record(clamped_us);
    }

    /// The request streams of the plan (bit s for stream s, streams 0 to 31): a request's row
    /// counts its answer ([`Recorder::answer_ok`]) or its `RequestTimeout` / `RequestLost`,
    /// never the ack of the PUBLISH that carried it, so [`Recorder::publish_ok`] and the
    /// publish failures of those streams (ack timeout, loss, refusal) are not recorded.
    pub fn set_answered_streams(&mut self, mask: u32) {
        self.answered_streams = mask;
    }

    #[inline]
    fn answered(&self, stream: u8) -> bool {
        stream < 32 && self.answered_streams & (1 << stream) != 0
    }

    /// An acknowledged (QoS 0: written) publish of stream `stream`; the latency is clamped
    /// to `[1, LATENCY_MAX_US]`. A stream beyond the plan's, or a request stream, is not
    /// recorded.
    #[inline]
    pub fn publish_ok(&mut self, stream: u8, latency_us: u64) {
        if !self.answered(stream) {
            self.stream_ok(stream, latency_us);
        }
    }

    /// An answered request of stream `stream`, timed from its scheduled send to its answer.
    #[inline]
    pub fn answer_ok(&mut self, stream: u8, latency_us: u64) {
        self.stream_ok(stream, latency_us);
    }

    #[inline]
    fn stream_ok(&mut self, stream: u8, latency_us: u64) {
        let clamped_us = latency_us.clamp(1, LATENCY_MAX_US);
        if let Some(histogram) = self.current.streams.get_mut(stream as usize) {
            histogram.saturating_record(clamped_us);
        }
    }

    /// `points` device points carried by a successful publish of stream row `stream` (a
    /// gateway's message). A row beyond the plan's is not recorded.
    #[inline]
    pub fn points(&mut self, stream: u8, points: u64) {
        if let Some(count) = self.current.points.get_mut(stream as usize) {
            *count += points;
        }
    }

    /// A failed request, counted against `failure.metric()`.
    pub fn fail(&mut self, failure: Failure) {
        self.current.count_failure(failure, 0, None);
    }

    /// A failed request of `client`, which may become one of the reason's examples.
    pub fn fail_by(&mut self, failure: Failure, client: ClientRef) {
        self.current.count_failure(failure, 0, Some(client));
    }

    /// A failed publish of stream `stream` of `client`, counted on that stream's row. On a
    /// request stream's row only the request's own failures count (`RequestTimeout`,
    /// `RequestLost`).
    pub fn publish_fail_by(&mut self, failure: Failure, stream: u8, client: ClientRef) {
        let of_request = matches!(failure, Failure::RequestTimeout | Failure::RequestLost);
        if of_request || !self.answered(stream) {
            self.current.count_failure(failure, stream, Some(client));
        }
    }

    /// How late a publish was sent relative to its schedule (0 = on time).
    pub fn lag(&mut self, lag_us: u64) {
        self.current
            .lag
            .saturating_record(lag_us.min(LATENCY_MAX_US));
    }

    /// One publish handed to the socket.
    pub fn sent(&mut self) {
        self.current.sent += 1;
    }

    /// Clients of this worker currently holding an accepted connection.
    pub fn set_connected(&mut self, n: u32) {
        self.connected = n;
    }

    /// The worker's delivery-audit counts since `cut_ns` (started over when the cut moved);
    /// each shipped interval carries a copy.
    #[inline]
    pub fn audit(&mut self, cut_ns: u64) -> &mut LiveAudit {
        self.audit.at_cut(cut_ns)
    }

    /// Ship the interval if `INTERVAL_MS` has passed since the last one. Never blocks: if the
    /// channel is full the interval keeps accumulating and is shipped next time.
    pub fn maybe_flush(&mut self, now: Instant) {
        if self.finished || now < self.ship_due_at {
            return;
        }
        // No empty interval: the merger is behind. Keep accumulating; retry on the next call.
        let Some(empty) = self.take_empty() else {
            return;
        };
        self.current.at = now;
        self.current.connected = self.connected;
        self.current.audit = self.audit;
        let full = std::mem::replace(&mut self.current, empty);
        match self.tx.try_send(full) {
            Ok(()) => self.ship_due_at = next_deadline(self.ship_due_at, now),
            Err(TrySendError::Full(full)) | Err(TrySendError::Disconnected(full)) => {
                let empty = std::mem::replace(&mut self.current, full);
                self.keep_spare(empty);
            }
        }
    }

    /// Ship the last interval; blocks until the merger takes it.
    pub fn finish(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.finished = true;
        // The only place a recorder may allocate after `new`: the run is over, and a
        // replacement is needed only when every interval is still with the merger.
        let streams = self.current.streams.len();
        let empty = self
            .take_empty()
            .unwrap_or_else(|| Interval::with_streams(self.current.worker, now, streams));
        let mut last = std::mem::replace(&mut self.current, empty);
        last.at = now;
        last.connected = self.connected;
        last.audit = self.audit;
        last.last = true;
        // A disconnected merger has nobody to report to; the interval is dropped.
        let _ = self.tx.send(last);
    }

    /// A spare, or an interval the merger sent back; `None` when all are with the merger.
    fn take_empty(&mut self) -> Option<Interval> {
        self.spares.pop().or_else(|| self.recycle.try_recv().ok())
    }

    /// Returns an unused empty interval to the spares, without growing the vector.
    fn keep_spare(&mut self, empty: Interval) {
        if self.spares.len() < self.spares.capacity() {
            self.spares.push(empty);
        }
    }
}

fn interval() -> Duration {
    Duration::from_millis(INTERVAL_MS)
}

/// The first grid point after `now`, stepping from `due_at` in whole intervals (a worker that
/// stalled for several seconds skips the missed ones rather than shipping in a burst).
fn next_deadline(due_at: Instant, now: Instant) -> Instant {
    let step_ns = u128::from(INTERVAL_MS) * 1_000_000;
    let behind_ns = now.saturating_duration_since(due_at).as_nanos();
    let steps = u64::try_from(behind_ns / step_ns + 1).unwrap_or(u64::MAX / INTERVAL_MS);
    due_at + Duration::from_millis(INTERVAL_MS.saturating_mul(steps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::channels;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn one_worker(start: Instant) -> (Recorder, Receiver<Interval>, Sender<Interval>) {
        let (tx, rx, mut recycle) = channels(1);
        let (recycle_tx, recycle_rx) = recycle.remove(0);
        (Recorder::new(0, tx, recycle_rx, start, 1), rx, recycle_tx)
    }

    #[test]
    fn recorder_ships_after_the_interval_and_recycles() {
        let start = Instant::now();
        let (mut recorder, rx, recycle_tx) = one_worker(start);
        recorder.ok(Metric::Publish, 250);
        recorder.set_connected(7);
        recorder.maybe_flush(start + ms(999));
        assert!(
            rx.try_recv().is_err(),
            "nothing ships before the interval is over"
        );

        recorder.maybe_flush(start + ms(1000));
        let mut shipped = rx.try_recv().expect("shipped after one interval");
        assert_eq!(shipped.latency[Metric::Publish.index()].len(), 1);
        assert_eq!(shipped.connected, 7);
        assert!(!shipped.last);
        assert_eq!(recorder.current.latency[Metric::Publish.index()].len(), 0);

        // The merger resets and returns it; the recorder reuses it once the spares run out.
        shipped.reset();
        recycle_tx.send(shipped).unwrap();
        for second in 2..=5 {
            recorder.ok(Metric::Publish, second);
            recorder.maybe_flush(start + ms(1000 * second));
        }
        assert_eq!(
            rx.len(),
            3,
            "the two spares left and the recycled interval were shipped"
        );
        assert!(recorder.spares.is_empty());
        assert!(recorder.recycle.is_empty());
    }

    #[test]
    fn recorder_keeps_accumulating_and_loses_nothing_when_no_interval_is_free() {
        let start = Instant::now();
        let (mut recorder, rx, _recycle_tx) = one_worker(start);
        for second in 1..=6 {
            recorder.ok(Metric::Publish, 100);
            recorder.fail(Failure::AckTimeout);
            recorder.maybe_flush(start + ms(1000 * second));
        }
        // One interval per spare shipped; then the recorder held on to the current one.
        assert_eq!(rx.len(), SPARE_INTERVALS);
        let mut intervals: Vec<Interval> = rx.try_iter().collect();
        recorder.finish(start + ms(6500));
        intervals.extend(rx.try_iter());
        let ok: u64 = intervals
            .iter()
            .map(|i| i.latency[Metric::Publish.index()].len())
            .sum();
        let failed: u64 = intervals
            .iter()
            .map(|i| i.failures_of(Metric::Publish))
            .sum();
        assert_eq!((ok, failed), (6, 6));
        assert!(intervals.last().is_some_and(|i| i.last));
    }

    #[test]
    fn recorder_keeps_accumulating_when_the_channel_is_full() {
        let start = Instant::now();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (_recycle_tx, recycle_rx) = crossbeam_channel::bounded(4);
        let mut recorder = Recorder::new(0, tx, recycle_rx, start, 1);
        for second in 1..=3 {
            recorder.ok(Metric::Connect, 10);
            recorder.maybe_flush(start + ms(1000 * second));
        }
        assert_eq!(rx.len(), 1);
        assert_eq!(recorder.current.latency[Metric::Connect.index()].len(), 2);
        assert_eq!(
            recorder.spares.len(),
            2,
            "the swapped-in interval went back to the spares"
        );
    }

    #[test]
    fn failures_beyond_the_fixed_kinds_go_to_the_overflow_bucket_of_their_metric() {
        let start = Instant::now();
        let (mut recorder, _rx, _recycle_tx) = one_worker(start);
        for code in 0..40u8 {
            recorder.fail(Failure::ConnackRefused(code));
        }
        recorder.fail(Failure::ConnackRefused(0));
        recorder.fail(Failure::AckTimeout);
        let interval = &recorder.current;
        assert_eq!(interval.failure_kinds, MAX_FAILURE_KINDS);
        assert_eq!(interval.failures()[0], (Failure::ConnackRefused(0), 2));
        assert_eq!(interval.overflow, [8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(interval.failures_of(Metric::Connect), 41);
        assert_eq!(interval.failures_of(Metric::Publish), 1);
    }

    #[test]
    fn a_reason_keeps_at_most_ten_distinct_example_clients() {
        let start = Instant::now();
        let (mut recorder, _rx, _recycle_tx) = one_worker(start);
        let client = |index| ClientRef {
            subscriber: false,
            index,
        };
        for index in [7, 7, 3] {
            recorder.fail_by(Failure::ConnackRefused(5), client(index));
        }
        for index in 100..120 {
            recorder.fail_by(Failure::AckTimeout, client(index));
        }
        recorder.fail(Failure::ConnectTimeout);
        let interval = &recorder.current;
        assert_eq!(interval.failures()[0], (Failure::ConnackRefused(5), 3));
        assert_eq!(interval.examples_of(0), &[client(7), client(3)]);
        let timeouts: Vec<u64> = interval.examples_of(1).iter().map(|c| c.index).collect();
        assert_eq!(timeouts, (100..110).collect::<Vec<u64>>());
        assert_eq!(
            interval.failures()[1].1,
            20,
            "every failure is still counted"
        );
        assert!(interval.examples_of(2).is_empty());
    }

    #[test]
    fn a_request_streams_row_counts_its_answers_and_own_failures_never_its_acks() {
        let start = Instant::now();
        let (tx, rx, mut recycle) = channels(1);
        let (_recycle_tx, recycle_rx) = recycle.remove(0);
        let mut recorder = Recorder::new(0, tx, recycle_rx, start, 2);
        recorder.set_answered_streams(0b10);
        let client = ClientRef {
            subscriber: false,
            index: 0,
        };
        for stream in [0, 1] {
            recorder.publish_ok(stream, 10);
            recorder.answer_ok(stream, 20);
            recorder.publish_fail_by(Failure::AckTimeout, stream, client);
            recorder.publish_fail_by(Failure::RequestTimeout, stream, client);
        }
        recorder.finish(start + ms(10));
        let interval = rx.try_recv().unwrap();
        assert_eq!(interval.streams[0].len(), 2, "a plain stream counts both");
        assert_eq!(
            interval.streams[1].len(),
            1,
            "a request stream: its answer only"
        );
        assert_eq!(interval.failures_of_stream(0), 2);
        assert_eq!(
            interval.failures_of_stream(1),
            1,
            "its timeout, not the ack's"
        );
    }

    #[test]
    fn a_reused_interval_starts_its_examples_afresh() {
        let mut interval = Interval::new(0, Instant::now());
        let client = ClientRef {
            subscriber: true,
            index: 4,
        };
        interval.count_failure(Failure::SubscribeTimeout, 0, Some(client));
        interval.reset();
        interval.count_failure(Failure::AckTimeout, 0, None);
        assert_eq!(interval.failures(), &[(Failure::AckTimeout, 1)]);
        assert!(interval.examples_of(0).is_empty());
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_rejected() {
        let start = Instant::now();
        let (mut recorder, _rx, _recycle_tx) = one_worker(start);
        recorder.ok(Metric::Publish, 0);
        recorder.ok(Metric::Publish, u64::MAX);
        recorder.lag(u64::MAX);
        let histogram = &recorder.current.latency[Metric::Publish.index()];
        assert_eq!(histogram.len(), 2);
        assert_eq!(histogram.min(), 1);
        assert!(histogram.max() >= LATENCY_MAX_US);
        assert_eq!(recorder.current.lag.len(), 1);
    }

    #[test]
    fn publishes_and_their_failures_are_kept_per_stream_and_fold_into_the_publish_row() {
        let start = Instant::now();
        let (tx, _rx, mut recycle) = channels(1);
        let (_recycle_tx, recycle_rx) = recycle.remove(0);
        let mut recorder = Recorder::new(0, tx, recycle_rx, start, 2);
        let client = ClientRef {
            subscriber: false,
            index: 3,
        };
        recorder.publish_ok(0, 100);
        recorder.publish_ok(1, 200);
        recorder.publish_ok(1, 300);
        recorder.publish_ok(7, 400); // beyond the plan's streams: not recorded
        recorder.publish_fail_by(Failure::AckTimeout, 1, client);
        recorder.publish_fail_by(Failure::AckTimeout, 0, client);
        recorder.publish_fail_by(Failure::AckTimeout, 1, client);
        let interval = &mut recorder.current;
        assert_eq!(interval.streams[0].len(), 1);
        assert_eq!(interval.streams[1].len(), 2);
        assert_eq!(
            interval.failures().len(),
            2,
            "one reason, kept apart per stream"
        );
        assert_eq!(interval.failures_of_stream(0), 1);
        assert_eq!(interval.failures_of_stream(1), 2);
        assert_eq!(interval.failures_of(Metric::Publish), 3);
        assert!(interval.latency[Metric::Publish.index()].is_empty());
        interval.fold_streams();
        assert_eq!(interval.latency[Metric::Publish.index()].len(), 3);
        interval.reset();
        assert!(interval.streams.iter().all(Histogram::is_empty));
        assert_eq!(interval.failures_of_stream(1), 0);
    }

    #[test]
    fn a_stalled_worker_skips_missed_deadlines_and_stays_on_the_grid() {
        let start = Instant::now();
        assert_eq!(
            next_deadline(start + ms(1000), start + ms(1003)),
            start + ms(2000)
        );
        assert_eq!(
            next_deadline(start + ms(1000), start + ms(4500)),
            start + ms(5000)
        );
    }
}
