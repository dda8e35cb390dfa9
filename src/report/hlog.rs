//! The HdrHistogram interval log (`--hlog FILE`): one tagged histogram per metric per second,
//! in the standard format that HdrHistogram's log readers, `HistogramLogProcessor` and
//! HistogramLogAnalyzer load, so latency over time can be studied with the usual tools.
//!
//! Tags: `publish`, `connect` and `lag` (schedule lag), and in runs of two or more streams one
//! per stream, `stream:NAME` (its row name, with commas and white space as `_`, which tags
//! cannot hold). Values are microseconds; the
//! `Interval_Max` column is divided by 1000 (milliseconds), as the header says. Timestamps are
//! seconds since `BaseTime` (= `StartTime` = the run's start), each interval one second long.

use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::stats::{Metric, Summary, TimelineEntry};

/// The tags, in the order they are written each second.
pub const TAGS: [&str; 3] = ["publish", "connect", "lag"];

/// Java's legend line, which readers skip.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// Writes the log to `path`; the error names the file.
pub fn write_hlog(path: &std::path::Path, summary: &Summary) -> Result<(), String> {
    let bytes = hlog_bytes(summary)?;
    std::fs::write(path, bytes)
        .map_err(|e| format!("cannot write HDR interval log {}: {e}", path.display()))
}

/// The whole log.
pub fn hlog_bytes(summary: &Summary) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let stream_tags = stream_tags(summary);
    {
        let tags: Vec<&str> = TAGS
            .iter()
            .copied()
            .chain(stream_tags.iter().map(String::as_str))
            .collect();
        let comment = format!(
            "[Logged with mqblast {}; values in microseconds, Interval_Max in milliseconds; tags: {}]",
            env!("CARGO_PKG_VERSION"),
            tags.join(", ")
        );
        IntervalLogWriterBuilder::new()
            .add_comment(&comment)
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(summary.started_at)
            .with_base_time(summary.started_at)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| e.to_string())?;
    }
    out.extend_from_slice(LEGEND.as_bytes());
    let mut writer = IntervalLogWriterBuilder::new()
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| e.to_string())?;
    for entry in &summary.timeline {
        let start = Duration::from_secs(entry.second.saturating_sub(1));
        for (tag, histogram) in TAGS.iter().zip(histograms(entry)?) {
            writer
                .write_histogram(&histogram, start, Duration::from_secs(1), Tag::new(tag))
                .map_err(|e| format!("second {}: {e}", entry.second))?;
        }
        for (stream, tag) in stream_tags.iter().enumerate() {
            let histogram = entry
                .stream_histogram(stream)
                .map_err(|e| format!("timeline second {}: {e}", entry.second))?;
            writer
                .write_histogram(&histogram, start, Duration::from_secs(1), Tag::new(tag))
                .map_err(|e| format!("second {}: {e}", entry.second))?;
        }
    }
    Ok(out)
}

/// `stream:NAME` per stream row, in runs of two or more streams (with one, `publish` is it).
fn stream_tags(summary: &Summary) -> Vec<String> {
    if summary.streams.len() < 2 {
        return Vec::new();
    }
    let allowed = |c: char| !(c == ',' || c.is_whitespace());
    summary
        .streams
        .iter()
        .map(|row| {
            let name: String = row
                .name
                .chars()
                .map(|c| if allowed(c) { c } else { '_' })
                .collect();
            format!("stream:{name}")
        })
        .collect()
}

/// One second's histograms in [`TAGS`] order.
fn histograms(entry: &TimelineEntry) -> Result<[Histogram<u64>; 3], String> {
    let at = |e: String| format!("timeline second {}: {e}", entry.second);
    Ok([
        entry.histogram(Metric::Publish).map_err(at)?,
        entry.histogram(Metric::Connect).map_err(at)?,
        entry.lag_histogram().map_err(at)?,
    ])
}
