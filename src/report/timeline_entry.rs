//! Adding timeline seconds together (for `merge`): counts summed, histograms added, the
//! second's percentiles recomputed from the added histogram, connected users summed.

use hdrhistogram::Histogram;

use crate::stats::timeline::{encode_or_empty, StreamSecond};
use crate::stats::{new_histogram, Metric, TimelineEntry, N_METRICS};

/// The sum of the entries of one merged second.
pub struct Accumulator {
    entry: TimelineEntry,
    latency_us: [Histogram<u64>; N_METRICS],
    lag_us: Histogram<u64>,
    /// The merged stream rows' histograms, by merged stream (`entry.streams` holds counts).
    stream_latency_us: Vec<Histogram<u64>>,
}

impl Default for Accumulator {
    fn default() -> Accumulator {
        Accumulator {
            entry: TimelineEntry {
                second: 0,
                publish_ok: 0,
                publish_failures: 0,
                connect_ok: 0,
                connect_failures: 0,
                sent: 0,
                publish_p50_us: 0,
                publish_p95_us: 0,
                publish_p99_us: 0,
                connected_users: 0,
                lag_max_us: 0,
                connect_hdr: String::new(),
                publish_hdr: String::new(),
                lag_hdr: String::new(),
                e2e_hdr: String::new(),
                e2e_ok: 0,
                e2e_p50_us: 0,
                e2e_p95_us: 0,
                e2e_p99_us: 0,
                connection_ok: 0,
                connection_failures: 0,
                streams: Vec::new(),
            },
            latency_us: std::array::from_fn(|_| new_histogram()),
            lag_us: new_histogram(),
            stream_latency_us: Vec::new(),
        }
    }
}

impl Accumulator {
    pub fn add(&mut self, other: &TimelineEntry) -> Result<(), String> {
        let e = &mut self.entry;
        e.publish_ok += other.publish_ok;
        e.publish_failures += other.publish_failures;
        e.connect_ok += other.connect_ok;
        e.connect_failures += other.connect_failures;
        e.sent += other.sent;
        e.e2e_ok += other.e2e_ok;
        e.connection_ok += other.connection_ok;
        e.connection_failures += other.connection_failures;
        e.connected_users += other.connected_users;
        e.lag_max_us = e.lag_max_us.max(other.lag_max_us);
        for metric in Metric::ALL {
            let h = other.histogram(metric)?;
            let _ = self.latency_us[metric.index()].add(&h);
        }
        let _ = self.lag_us.add(&other.lag_histogram()?);
        Ok(())
    }

    /// Add `other`'s stream rows: its stream `i` is merged stream `to_merged[i]`; `streams`
    /// merged streams in all (rows are kept per second only when there are two or more).
    pub fn add_streams(
        &mut self,
        other: &TimelineEntry,
        to_merged: &[usize],
        streams: usize,
    ) -> Result<(), String> {
        if streams < 2 {
            return Ok(());
        }
        while self.entry.streams.len() < streams {
            self.entry.streams.push(StreamSecond {
                ok: 0,
                failures: 0,
                hdr: String::new(),
                points: 0,
            });
            self.stream_latency_us.push(new_histogram());
        }
        for (stream, &merged) in to_merged.iter().enumerate() {
            let (ok, failures) = other.stream_counts(stream);
            let row = &mut self.entry.streams[merged];
            row.ok += ok;
            row.failures += failures;
            row.points = row.points.saturating_add(other.stream_points(stream));
            let _ = self.stream_latency_us[merged].add(&other.stream_histogram(stream)?);
        }
        Ok(())
    }

    pub fn finish(mut self, second: u64) -> TimelineEntry {
        let q = |h: &Histogram<u64>, quantile: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(quantile)
            }
        };
        let publish = &self.latency_us[Metric::Publish.index()];
        let e2e = &self.latency_us[Metric::EndToEnd.index()];
        self.entry.second = second;
        self.entry.publish_p50_us = q(publish, 0.50);
        self.entry.publish_p95_us = q(publish, 0.95);
        self.entry.publish_p99_us = q(publish, 0.99);
        self.entry.e2e_p50_us = q(e2e, 0.50);
        self.entry.e2e_p95_us = q(e2e, 0.95);
        self.entry.e2e_p99_us = q(e2e, 0.99);
        self.entry.e2e_hdr = encode_or_empty(e2e);
        self.entry.connect_hdr = encode_or_empty(&self.latency_us[Metric::Connect.index()]);
        self.entry.publish_hdr = encode_or_empty(publish);
        self.entry.lag_hdr = encode_or_empty(&self.lag_us);
        for (row, latency) in self.entry.streams.iter_mut().zip(&self.stream_latency_us) {
            row.hdr = encode_or_empty(latency);
        }
        self.entry
    }
}
