//! Worker-side recording: fixed-bound histograms and counters, shipped once per interval.

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;

use super::{Failure, Metric, N_METRICS};

/// Most distinct failure reasons one interval holds; further new reasons are counted under the
/// last slot's neighbour "other" bucket (`overflow`) instead of growing anything.
pub const MAX_FAILURE_KINDS: usize = 32;

/// One worker's measurements for one interval (or the last, partial one).
pub struct Interval {
    pub worker: usize,
    /// Instant the interval was shipped.
    pub at: Instant,
    /// Successful request latencies per metric, microseconds.
    pub latency: [Histogram<u64>; N_METRICS],
    /// How far behind schedule each publish was sent, microseconds.
    pub lag: Histogram<u64>,
    /// Failure counts by reason; `failures[..failure_kinds]` are used.
    pub failures: [(Failure, u64); MAX_FAILURE_KINDS],
    pub failure_kinds: usize,
    /// Failures that did not fit in `failures`.
    pub overflow: [u64; N_METRICS],
    /// Publishes handed to the socket (all QoS).
    pub sent: u64,
    /// Clients of this worker holding an accepted connection at `at`.
    pub connected: u32,
    /// True for the worker's last interval.
    pub last: bool,
}

/// Thread-local recorder owned by one worker.
pub struct Recorder {
    _todo: (Sender<Interval>, Receiver<Interval>, Metric),
}

impl Recorder {
    pub fn new(worker: usize, tx: Sender<Interval>, recycle: Receiver<Interval>, now: Instant) -> Recorder {
        todo!()
    }
    pub fn ok(&mut self, metric: Metric, latency_us: u64) {
        todo!()
    }
    pub fn fail(&mut self, failure: Failure) {
        todo!()
    }
    pub fn lag(&mut self, lag_us: u64) {
        todo!()
    }
    pub fn sent(&mut self) {
        todo!()
    }
    pub fn set_connected(&mut self, n: u32) {
        todo!()
    }
    /// Ship the interval if `INTERVAL_MS` has passed since the last one. Never blocks: if the
    /// channel is full the interval keeps accumulating and is shipped next time.
    pub fn maybe_flush(&mut self, now: Instant) {
        todo!()
    }
    /// Ship the last interval; blocks until the merger takes it.
    pub fn finish(&mut self, now: Instant) {
        todo!()
    }
}
