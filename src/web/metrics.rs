//! `/metrics` in the Prometheus text format (0.0.4): requests and failures per row, failures
//! by reason, connected and target users, publish latency quantiles (exact, from the
//! histograms), schedule lag and the delivery audit's counts (running, then final). Nothing here names a token or a password: example clients
//! are not exported, only reasons.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::session::Session;
use crate::stats::audit::AuditSummary;
use crate::stats::{Metric, RowKind};

const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// The exposition text of the latest snapshot (zeros before the first test).
pub fn render(session: &Session) -> String {
    let mut out = String::new();
    let snapshot = session.steering.snapshot();
    let target = match session.steering.ramp() {
        Some((ramp, _)) => ramp.target,
        None => 0,
    };
    let connected = snapshot.as_ref().map_or(0, |s| s.connected_users);
    gauge(
        &mut out,
        "mqblast_connected_users",
        "Clients connected now.",
        connected.into(),
    );
    gauge(
        &mut out,
        "mqblast_target_users",
        "The running test's user target (0 between tests).",
        target.into(),
    );
    let running = session.steering.running().is_some();
    gauge(
        &mut out,
        "mqblast_running",
        "1 while a test runs.",
        u64::from(running),
    );
    let Some(s) = snapshot else {
        return out;
    };
    let summary = &s.summary;
    header(
        &mut out,
        "mqblast_requests_total",
        "counter",
        "Requests per row of the statistics table (ok + failed); the Aggregated row is the sum over kind=\"request\" (kind=\"breakdown\": connect phases and reconnects, each also a connect; kind=\"session\": established connections).",
    );
    for m in summary.rows().filter(|m| !m.name.is_empty()) {
        let _ = writeln!(
            out,
            "mqblast_requests_total{{name=\"{}\",kind=\"{}\"}} {}",
            label(&m.name),
            kind_label(m.metric),
            m.requests
        );
    }
    header(
        &mut out,
        "mqblast_failures_total",
        "counter",
        "Failed requests per row.",
    );
    for m in summary.rows().filter(|m| !m.name.is_empty()) {
        let _ = writeln!(
            out,
            "mqblast_failures_total{{name=\"{}\",kind=\"{}\"}} {}",
            label(&m.name),
            kind_label(m.metric),
            m.failures
        );
    }
    header(
        &mut out,
        "mqblast_failures_by_reason_total",
        "counter",
        "Failures per reason.",
    );
    for e in &summary.errors {
        let name = &summary.row_of(e).name;
        let _ = writeln!(
            out,
            "mqblast_failures_by_reason_total{{name=\"{}\",reason=\"{}\"}} {}",
            label(name),
            label(&e.reason),
            e.count
        );
    }
    let publish = summary.metric(Metric::Publish);
    quantiles(
        &mut out,
        "mqblast_publish_latency_seconds",
        "Publish latency from the scheduled send time.",
        &publish.latency_us,
    );
    quantiles(
        &mut out,
        "mqblast_schedule_lag_seconds",
        "How far behind its schedule the generator sent.",
        &summary.lag_us,
    );
    if let Some(audit) = &summary.audit {
        audit_counts(&mut out, audit);
    }
    out
}

/// The delivery audit's counts, one gauge family (they restart at a stats reset).
fn audit_counts(out: &mut String, a: &AuditSummary) {
    header(
        out,
        "mqblast_audit_messages",
        "gauge",
        "Delivery audit counts since the test started or its stats were reset.",
    );
    let counts = [
        ("published", a.published),
        ("expected", a.expected),
        ("delivered", a.delivered),
        ("not_delivered_yet", a.still_arriving),
        ("lost", a.lost),
        ("duplicated", a.duplicated),
        ("reordered", a.reordered),
    ];
    for (kind, count) in counts {
        let _ = writeln!(out, "mqblast_audit_messages{{kind=\"{kind}\"}} {count}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A summary: quantiles in seconds, plus `_sum` and `_count`.
fn quantiles(out: &mut String, name: &str, help: &str, h: &Histogram<u64>) {
    header(out, name, "summary", help);
    for q in QUANTILES {
        let us = if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q)
        };
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", us as f64 / 1e6);
    }
    let sum_s = if h.is_empty() {
        0.0
    } else {
        h.mean() * h.len() as f64 / 1e6
    };
    let _ = writeln!(out, "{name}_sum {sum_s}\n{name}_count {}", h.len());
}

/// A label value escaped as the format requires (backslash, quote, newline).
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `kind` label of a row: what it is to the Aggregated row (see `RowKind`).
fn kind_label(metric: Metric) -> &'static str {
    match metric.kind() {
        RowKind::Request => "request",
        RowKind::Breakdown => "breakdown",
        RowKind::Sessions => "session",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
