//! Adding timeline seconds together (for `merge`): counts summed, histograms added, the
//! second's percentiles recomputed from the added histogram, connected users summed.

use hdrhistogram::Histogram;

use crate::stats::timeline::encode_or_empty;
use crate::stats::{new_histogram, Metric, TimelineEntry};

/// The sum of the entries of one merged second.
pub struct Accumulator {
    entry: TimelineEntry,
    latency_us: [Histogram<u64>; 2],
    lag_us: Histogram<u64>,
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
            },
            latency_us: [new_histogram(), new_histogram()],
            lag_us: new_histogram(),
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
        e.connected_users += other.connected_users;
        e.lag_max_us = e.lag_max_us.max(other.lag_max_us);
        for metric in Metric::ALL {
            let h = other.histogram(metric)?;
            let _ = self.latency_us[metric.index()].add(&h);
        }
        let _ = self.lag_us.add(&other.lag_histogram()?);
        Ok(())
    }

    pub fn finish(mut self, second: u64) -> TimelineEntry {
        let publish = &self.latency_us[Metric::Publish.index()];
        let q = |quantile: f64| {
            if publish.is_empty() {
                0
            } else {
                publish.value_at_quantile(quantile)
            }
        };
        self.entry.second = second;
        self.entry.publish_p50_us = q(0.50);
        self.entry.publish_p95_us = q(0.95);
        self.entry.publish_p99_us = q(0.99);
        self.entry.connect_hdr = encode_or_empty(&self.latency_us[Metric::Connect.index()]);
        self.entry.publish_hdr = encode_or_empty(publish);
        self.entry.lag_hdr = encode_or_empty(&self.lag_us);
        self.entry
    }
}
