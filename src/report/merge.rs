//! `mqblast merge`: several results (hosts of one cluster run, or repeated runs) combined
//! exactly into one, as if one generator had recorded every sample.
//!
//! Histograms are added (never percentiles averaged), counts summed, and timelines aligned on
//! wall-clock seconds: each input's second `s` lands on the merged second
//! `s + round(input start - earliest start)`. The merged run lasts from the earliest start to
//! the latest end. Each input stays visible as a `source` (label, host, counts, duration).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::result::RunResult;
use super::timeline_entry;
use crate::engine::audit::AuditSummary;
use crate::stats::{
    new_histogram, ErrorCount, Metric, MetricSummary, Source, Summary, MAX_ERROR_EXAMPLES,
};

/// One input: its label (usually the file name) and its result.
pub struct Input {
    pub label: String,
    pub result: RunResult,
}

/// Merges `inputs` (at least one); the configuration is the first input's.
pub fn merge(inputs: Vec<Input>) -> Result<RunResult, String> {
    let first = inputs.first().ok_or("nothing to merge")?;
    let start = inputs
        .iter()
        .map(|i| i.result.summary.started_at)
        .min()
        .unwrap_or(first.result.summary.started_at);
    let end = inputs
        .iter()
        .map(|i| end_of(&i.result.summary))
        .max()
        .unwrap_or(start);
    let duration_s = end.duration_since(start).unwrap_or_default().as_secs_f64();
    let offsets_s: Vec<u64> = inputs
        .iter()
        .map(|i| offset_s(start, i.result.summary.started_at))
        .collect();
    let summaries: Vec<&Summary> = inputs.iter().map(|i| &i.result.summary).collect();
    let base = summaries[0];
    let metrics = Metric::ALL.map(|metric| merged_metric(&summaries, metric, duration_s));
    let streams = StreamMap::of(&summaries);
    let timeline = merged_timeline(&summaries, &offsets_s, &streams)?;
    let summary = Summary {
        request_type: base.request_type.clone(),
        qos: base.qos,
        started_at: start,
        duration_s,
        errors: merged_errors(&summaries, &offsets_s, &streams),
        streams: streams.rows(&summaries, duration_s),
        lag_us: add_all(summaries.iter().map(|s| &s.lag_us)),
        sent: summaries.iter().map(|s| s.sent).sum(),
        max_connected_users: timeline
            .iter()
            .map(|e| e.connected_users)
            .max()
            .unwrap_or(0),
        timeline,
        target_users: summaries.iter().map(|s| s.target_users).sum(),
        missing_sources: summaries
            .iter()
            .flat_map(|s| s.missing_sources.clone())
            .collect(),
        audit: merged_audit(&summaries),
        sources: merged_sources(&inputs),
        metrics,
    };
    Ok(RunResult {
        summary,
        config: first.result.config.clone(),
    })
}

fn end_of(summary: &Summary) -> SystemTime {
    summary.started_at + Duration::try_from_secs_f64(summary.duration_s).unwrap_or_default()
}

/// Whole seconds from `start` to `at`, rounded.
fn offset_s(start: SystemTime, at: SystemTime) -> u64 {
    at.duration_since(start)
        .unwrap_or_default()
        .as_secs_f64()
        .round() as u64
}

fn add_all<'a>(histograms: impl Iterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut sum = new_histogram();
    for h in histograms {
        // Same fixed bounds everywhere (decoded results are re-bounded): cannot fail.
        let _ = sum.add(h);
    }
    sum
}

/// Audits add up when every source has one (each host audited its own subscribers);
/// otherwise the merge has none rather than a misleading partial one.
fn merged_audit(summaries: &[&Summary]) -> Option<AuditSummary> {
    let mut total = summaries.first()?.audit.clone()?;
    for s in &summaries[1..] {
        let a = s.audit.as_ref()?;
        total.published += a.published;
        total.expected += a.expected;
        total.delivered += a.delivered;
        total.lost += a.lost;
        total.still_arriving += a.still_arriving;
        total.duplicated += a.duplicated;
        total.reordered += a.reordered;
        total.skipped += a.skipped;
        total.subscribers += a.subscribers;
    }
    Some(total)
}

/// The merged stream rows: the inputs' stream rows of the same name added up, in the order
/// the names first appear. An input without stream rows (written before streams existed)
/// that published contributes its `publish` row as the stream row of that name, so the
/// stream rows still add up to the merged `publish` row. No input with stream rows: none.
struct StreamMap {
    names: Vec<String>,
    /// Per input, the merged index of each of its stream rows.
    to_merged: Vec<Vec<usize>>,
}

impl StreamMap {
    fn of(summaries: &[&Summary]) -> StreamMap {
        let mut map = StreamMap {
            names: Vec::new(),
            to_merged: Vec::new(),
        };
        if summaries.iter().all(|s| s.streams.is_empty()) {
            map.to_merged = vec![Vec::new(); summaries.len()];
            return map;
        }
        for summary in summaries {
            let indexes = Self::rows_of(summary)
                .iter()
                .map(|row| match map.names.iter().position(|n| *n == row.name) {
                    Some(at) => at,
                    None => {
                        map.names.push(row.name.clone());
                        map.names.len() - 1
                    }
                })
                .collect();
            map.to_merged.push(indexes);
        }
        map
    }

    /// An input's stream rows: its own, else its publish row when it published.
    fn rows_of(summary: &Summary) -> &[MetricSummary] {
        let publish = summary.metric(Metric::Publish);
        match (summary.streams.is_empty(), publish.requests > 0) {
            (false, _) => &summary.streams,
            (true, true) => std::slice::from_ref(publish),
            (true, false) => &[],
        }
    }

    fn rows(&self, summaries: &[&Summary], duration_s: f64) -> Vec<MetricSummary> {
        (0..self.names.len())
            .map(|merged| {
                let parts: Vec<&MetricSummary> = summaries
                    .iter()
                    .zip(&self.to_merged)
                    .flat_map(|(summary, map)| {
                        let rows = Self::rows_of(summary);
                        map.iter()
                            .zip(rows)
                            .filter(move |(&to, _)| to == merged)
                            .map(|(_, row)| row)
                    })
                    .collect();
                let mut row = added(&parts, Metric::Publish, duration_s);
                row.name = self.names[merged].clone();
                row
            })
            .collect()
    }
}

fn merged_metric(summaries: &[&Summary], metric: Metric, duration_s: f64) -> MetricSummary {
    let parts: Vec<&MetricSummary> = summaries.iter().map(|s| s.metric(metric)).collect();
    added(&parts, metric, duration_s)
}

/// Rows of one metric added up (the name of the first that has requests).
fn added(parts: &[&MetricSummary], metric: Metric, duration_s: f64) -> MetricSummary {
    let requests: u64 = parts.iter().map(|m| m.requests).sum();
    let failures: u64 = parts.iter().map(|m| m.failures).sum();
    let per_s = |n: u64| {
        if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        }
    };
    MetricSummary {
        metric,
        name: parts
            .iter()
            .find(|m| m.requests > 0)
            .or(parts.first())
            .map(|m| m.name.clone())
            .unwrap_or_default(),
        requests,
        failures,
        ok: parts.iter().map(|m| m.ok).sum(),
        rps: per_s(requests),
        fail_per_s: per_s(failures),
        latency_us: add_all(parts.iter().map(|m| &m.latency_us)),
    }
}

/// Same (metric, reason) summed; first/last seen on the merged clock; example clients the
/// union of the inputs' (in input order, each once, at most `MAX_ERROR_EXAMPLES`).
fn merged_errors(
    summaries: &[&Summary],
    offsets_s: &[u64],
    streams: &StreamMap,
) -> Vec<ErrorCount> {
    let mut by_reason: BTreeMap<(usize, Option<usize>, String), ErrorCount> = BTreeMap::new();
    for ((summary, &offset), to_merged) in summaries.iter().zip(offsets_s).zip(&streams.to_merged) {
        for e in &summary.errors {
            // A publish failure of an input without stream rows is its one stream's.
            let stream = match (e.metric, e.stream) {
                (Metric::Publish, stream) => to_merged.get(stream.unwrap_or(0)).copied(),
                _ => None,
            };
            let key = (e.metric.index(), stream, e.reason.clone());
            let merged = by_reason.entry(key).or_insert_with(|| ErrorCount {
                count: 0,
                first_seen_s: u64::MAX,
                last_seen_s: 0,
                examples: Vec::new(),
                stream,
                ..e.clone()
            });
            for example in &e.examples {
                let room = merged.examples.len() < MAX_ERROR_EXAMPLES;
                if room && !merged.examples.contains(example) {
                    merged.examples.push(example.clone());
                }
            }
            merged.count += e.count;
            merged.first_seen_s = merged.first_seen_s.min(e.first_seen_s + offset);
            merged.last_seen_s = merged.last_seen_s.max(e.last_seen_s + offset);
        }
    }
    let mut errors: Vec<ErrorCount> = by_reason.into_values().collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    errors
}

fn merged_timeline(
    summaries: &[&Summary],
    offsets_s: &[u64],
    streams: &StreamMap,
) -> Result<Vec<crate::stats::TimelineEntry>, String> {
    let mut seconds: BTreeMap<u64, timeline_entry::Accumulator> = BTreeMap::new();
    let count = streams.names.len();
    for ((summary, &offset), to_merged) in summaries.iter().zip(offsets_s).zip(&streams.to_merged) {
        for entry in &summary.timeline {
            let second = seconds.entry(entry.second + offset).or_default();
            second.add(entry)?;
            second.add_streams(entry, to_merged, count)?;
        }
    }
    let last = seconds.keys().next_back().copied().unwrap_or(0);
    Ok((1..=last)
        .map(|second| seconds.remove(&second).unwrap_or_default().finish(second))
        .collect())
}

/// Each input's sources; a single-source input is relabelled with the input's label.
fn merged_sources(inputs: &[Input]) -> Vec<Source> {
    let mut sources = Vec::new();
    for input in inputs {
        let summary = &input.result.summary;
        match summary.sources.as_slice() {
            [one] => sources.push(Source {
                label: input.label.clone(),
                ..one.clone()
            }),
            [] => sources.push(Source {
                label: input.label.clone(),
                host: String::new(),
                started_at: summary.started_at,
                duration_s: summary.duration_s,
                requests: summary.requests(),
                failures: summary.failures(),
            }),
            many => sources.extend(many.iter().cloned()),
        }
    }
    sources
}
