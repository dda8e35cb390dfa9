//! Locust-compatible CSV files (`--csv PREFIX`), so spreadsheets, dashboards and scripts built
//! for Locust's `PREFIX_stats.csv`, `PREFIX_stats_history.csv`, `PREFIX_failures.csv` and
//! `PREFIX_exceptions.csv` read ours unchanged: same header rows, column order, Aggregated row,
//! milliseconds, and Python's `csv` dialect (minimal quoting, `\r\n` line ends).
//!
//! Where Locust is approximate we are exact, deliberately: the stats file holds the final
//! numbers (Locust does not refresh it at shutdown), percentiles come from HDR histograms with
//! microsecond resolution (written as milliseconds with up to 3 decimals, not bucketed integers).
//! The history has one row set per second of the timeline; as in Locust, its percentile columns
//! are the whole-run-so-far percentiles for the Aggregated row, and with `--csv-full-history`
//! every row's percentiles are the current ones (that second's own histogram).
//!
//! As in Locust, where every row is a request, the stats files hold the request rows only and
//! Aggregated is their sum. What is not a request of its own goes to a fifth file,
//! `PREFIX_breakdown.csv`, in the stats file's columns: the connect phases (`connect:tcp`,
//! `connect:mqtt`...) and `reconnect`, each also counted on the `connect` row, and the
//! `connection` row (sessions: ended by us = requests - failures, lost = failures; its times
//! are session lengths).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::console::{quantile_us, PERCENTILES};
use super::json::unix_s;
use crate::stats::{new_histogram, ErrorCount, Metric, MetricSummary, Summary, TimelineEntry};

/// `PREFIX_stats.csv` header (Locust's `requests_csv_columns`).
pub const STATS_COLUMNS: &[&str] = &[
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
];
/// `PREFIX_stats_history.csv` columns before the percentiles.
pub const HISTORY_COLUMNS: &[&str] = &[
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
];
/// `PREFIX_stats_history.csv` columns after the percentiles.
pub const HISTORY_TOTAL_COLUMNS: &[&str] = &[
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];
pub const FAILURES_COLUMNS: &[&str] = &[
    "Method",
    "Name",
    "Error",
    "Occurrences",
    "First Seen",
    "Last Seen",
    "Example Clients",
];
pub const EXCEPTIONS_COLUMNS: &[&str] = &["Count", "Message", "Traceback", "Nodes"];

/// Locust's name of the total row.
const AGGREGATED: &str = "Aggregated";

/// The files' paths for `prefix`: stats, stats_history, failures, exceptions, breakdown.
pub fn paths(prefix: &Path) -> [PathBuf; 5] {
    [
        "stats",
        "stats_history",
        "failures",
        "exceptions",
        "breakdown",
    ]
    .map(|suffix| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(format!("_{suffix}.csv"));
        PathBuf::from(name)
    })
}

/// Writes the four files; the error names the file that could not be written.
pub fn write_csv(prefix: &Path, summary: &Summary, full_history: bool) -> Result<(), String> {
    let contents = [
        stats_csv(summary),
        history_csv(summary, full_history)?,
        failures_csv(summary),
        row(EXCEPTIONS_COLUMNS.iter().copied()),
        breakdown_csv(summary),
    ];
    for (path, text) in paths(prefix).iter().zip(contents) {
        std::fs::write(path, text)
            .map_err(|e| format!("cannot write CSV file {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One CSV record in Python's default dialect.
fn row<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            let _ = write!(line, "\"{}\"", field.replace('"', "\"\""));
        } else {
            line.push_str(field);
        }
    }
    line.push_str("\r\n");
    line
}

fn row_owned(fields: &[String]) -> String {
    row(fields.iter().map(String::as_str))
}

/// Microseconds as milliseconds, up to 3 decimals, trailing zeros dropped: exact HDR values.
pub fn ms(us: f64) -> String {
    let text = format!("{:.3}", us / 1000.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Locust's `f"{x:2f}"`: six decimals.
fn rate(x: f64) -> String {
    format!("{x:.6}")
}

/// The 11 percentile cells: "N/A" without requests (as Locust), else exact milliseconds.
fn percentile_cells(requests: u64, h: &Histogram<u64>) -> Vec<String> {
    PERCENTILES
        .iter()
        .map(|&(q, _)| {
            if requests == 0 {
                "N/A".to_string()
            } else {
                ms(quantile_us(h, q) as f64)
            }
        })
        .collect()
}

/// Median, average, min, max cells of `h`, in Locust's order.
fn time_cells(h: &Histogram<u64>) -> [String; 4] {
    if h.is_empty() {
        return ["0", "0", "0", "0"].map(String::from);
    }
    [
        ms(quantile_us(h, 0.5) as f64),
        ms(h.mean()),
        ms(h.min() as f64),
        ms(h.max() as f64),
    ]
}

fn header_with_percentiles(before: &[&str], after: &[&str]) -> String {
    let labels = PERCENTILES.iter().map(|&(_, label)| label);
    row(before
        .iter()
        .copied()
        .chain(labels)
        .chain(after.iter().copied()))
}

/// Request rows with requests, sorted by name as Locust sorts its entries.
fn reported(summary: &Summary) -> Vec<&MetricSummary> {
    let mut metrics: Vec<&MetricSummary> =
        summary.request_rows().filter(|m| m.requests > 0).collect();
    metrics.sort_by(|a, b| a.name.cmp(&b.name));
    metrics
}

/// `PREFIX_breakdown.csv`: the breakdown rows (connect phases, `reconnect`) and the
/// `connection` row (sessions), sorted by name, in the stats file's columns, no total.
pub fn breakdown_csv(summary: &Summary) -> String {
    let mut out = header_with_percentiles(STATS_COLUMNS, &[]);
    let mut rows: Vec<&MetricSummary> = summary
        .metrics
        .iter()
        .filter(|m| !m.metric.is_request() && m.requests > 0)
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    for m in rows {
        out.push_str(&stats_row(
            &summary.request_type,
            &m.name,
            (m.requests, m.failures),
            &m.latency_us,
            (m.rps, m.fail_per_s),
        ));
    }
    out
}

/// `PREFIX_stats.csv`: one row per request metric, then Aggregated (their sum); final
/// whole-run numbers.
///
/// A run with gateways has one more column, last, [`POINTS_COLUMN`]: the device points the
/// row's successful messages carried (empty for rows that carry none: connect, the gateway's
/// connect and disconnect rows), Aggregated their sum. Files of other runs keep Locust's
/// columns exactly.
pub fn stats_csv(summary: &Summary) -> String {
    let all_points = summary.device_points();
    let gateway = all_points.is_some();
    let after: &[&str] = if gateway { &[POINTS_COLUMN] } else { &[] };
    let mut out = header_with_percentiles(STATS_COLUMNS, after);
    let mut total = new_histogram();
    let points_cell = |points: Option<u64>| match (gateway, points) {
        (false, _) => None,
        (true, points) => Some(points.map(|p| p.to_string()).unwrap_or_default()),
    };
    for m in reported(summary) {
        let _ = total.add(&m.latency_us);
        let mut line = stats_row(
            &summary.request_type,
            &m.name,
            (m.requests, m.failures),
            &m.latency_us,
            (m.rps, m.fail_per_s),
        );
        with_cell(&mut line, points_cell(m.points));
        out.push_str(&line);
    }
    let rates = summary
        .request_rows()
        .fold((0.0, 0.0), |(r, f), m| (r + m.rps, f + m.fail_per_s));
    let mut line = stats_row(
        "",
        AGGREGATED,
        (summary.requests(), summary.failures()),
        &total,
        rates,
    );
    with_cell(&mut line, points_cell(all_points));
    out.push_str(&line);
    out
}

/// The stats file's extra column of a run with gateways.
pub const POINTS_COLUMN: &str = "Device Points";
/// The history's extra columns of a run with gateways: the device points of the second
/// (the "current" rate, as its Requests/s), then of the run so far (as its Total columns).
pub const HISTORY_POINTS_COLUMNS: &[&str] = &["Device Points/s", "Total Device Points"];

/// Append one more (numeric, never quoted) cell, or cells already joined by commas, to a
/// record, before its line end.
fn with_cell(line: &mut String, cell: Option<String>) {
    if let Some(cell) = cell {
        let end = line.trim_end_matches(['\r', '\n']).len();
        line.insert_str(end, &format!(",{cell}"));
    }
}

fn stats_row(
    type_label: &str,
    name: &str,
    (requests, failures): (u64, u64),
    h: &Histogram<u64>,
    (rps, fail_per_s): (f64, f64),
) -> String {
    let [median, avg, min, max] = time_cells(h);
    let mut fields = vec![
        type_label.to_string(),
        name.to_string(),
        requests.to_string(),
        failures.to_string(),
        median,
        avg,
        min,
        max,
        "0".to_string(),
        rps.to_string(),
        fail_per_s.to_string(),
    ];
    fields.extend(percentile_cells(requests, h));
    row_owned(&fields)
}

/// Whole-run-so-far totals of one row of the history.
struct Running {
    requests: u64,
    failures: u64,
    latency_us: Histogram<u64>,
    /// Device points (a gateway's point rows and Aggregated; 0 elsewhere).
    points: u64,
}

impl Running {
    fn new() -> Running {
        Running {
            requests: 0,
            failures: 0,
            latency_us: new_histogram(),
            points: 0,
        }
    }
}

/// `PREFIX_stats_history.csv`: per second, the metric rows (with `full_history`) and the
/// Aggregated row.
///
/// A run with gateways has two more columns, last, [`HISTORY_POINTS_COLUMNS`]: the device
/// points of the second and of the run so far (empty for rows that carry none), Aggregated
/// their sum; its last Total Device Points is the stats file's Device Points. Files of other
/// runs keep Locust's columns exactly.
pub fn history_csv(summary: &Summary, full_history: bool) -> Result<String, String> {
    let gateway = summary.device_points().is_some();
    let after: Vec<&str> = match gateway {
        true => [HISTORY_TOTAL_COLUMNS, HISTORY_POINTS_COLUMNS].concat(),
        false => HISTORY_TOTAL_COLUMNS.to_vec(),
    };
    let mut out = header_with_percentiles(HISTORY_COLUMNS, &after);
    // The two points cells of a row: (this second's, the run's so far) when it carries any.
    let points_cells = |points: Option<(u64, u64)>| {
        gateway.then(|| match points {
            Some((now, so_far)) => format!("{},{so_far}", rate(now as f64)),
            None => ",".to_string(),
        })
    };
    let start_s = unix_s(summary.started_at);
    // One running total per history row: the request metrics, then the stream rows.
    let rows = history_rows(summary);
    let mut running: Vec<Running> = rows.iter().map(|_| Running::new()).collect();
    let mut total = Running::new();
    let names = reported(summary);
    for entry in &summary.timeline {
        let timestamp = (start_s + entry.second as f64).floor() as u64;
        let mut second_total = new_histogram();
        let (mut requests, mut failures, mut points) = (0, 0, 0u64);
        for (row, run) in rows.iter().zip(running.iter_mut()) {
            let at_second = |e: String| format!("timeline second {}: {e}", entry.second);
            let (h, (ok, failed)) = match row.stream {
                Some(stream) => (
                    entry.stream_histogram(stream).map_err(at_second)?,
                    entry.stream_counts(stream),
                ),
                None => (
                    entry.histogram(row.row.metric).map_err(at_second)?,
                    counts(entry, row.row.metric),
                ),
            };
            run.requests += ok + failed;
            run.failures += failed;
            let _ = run.latency_us.add(&h);
            let _ = second_total.add(&h);
            requests += ok + failed;
            failures += failed;
            // Only a point row's own points: a stream's second keeps none for the others.
            let row_points = row.row.points.and(row.stream).map(|stream| {
                let now = entry.stream_points(stream);
                run.points = run.points.saturating_add(now);
                (now, run.points)
            });
            points += row_points.map_or(0, |(now, _)| now);
            if full_history && names.iter().any(|n| std::ptr::eq(*n, row.row)) {
                let cells = HistoryCells {
                    timestamp,
                    users: entry.connected_users,
                    type_label: &summary.request_type,
                    name: &row.row.name,
                    now: (ok + failed, failed),
                    percentiles_of: &h,
                };
                let mut line = history_row(&cells, run);
                with_cell(&mut line, points_cells(row_points));
                out.push_str(&line);
            }
        }
        total.requests += requests;
        total.failures += failures;
        total.points = total.points.saturating_add(points);
        let _ = total.latency_us.add(&second_total);
        let cumulative = total.latency_us.clone();
        let cells = HistoryCells {
            timestamp,
            users: entry.connected_users,
            type_label: "",
            name: AGGREGATED,
            now: (requests, failures),
            percentiles_of: if full_history {
                &second_total
            } else {
                &cumulative
            },
        };
        let mut line = history_row(&cells, &total);
        with_cell(&mut line, points_cells(Some((points, total.points))));
        out.push_str(&line);
    }
    Ok(out)
}

/// A request row of the history: a metric's row, or stream `stream`'s.
struct HistoryRow<'a> {
    row: &'a MetricSummary,
    stream: Option<usize>,
}

/// The request rows in table order: the stream rows in place of `publish` when the result
/// has them.
fn history_rows(summary: &Summary) -> Vec<HistoryRow<'_>> {
    let streams = summary.streams.iter().enumerate();
    summary
        .request_rows()
        .map(|row| HistoryRow {
            row,
            stream: streams
                .clone()
                .find(|(_, s)| std::ptr::eq(*s, row))
                .map(|(n, _)| n),
        })
        .collect()
}

/// Ok and failed counts of `metric` in one timeline second.
fn counts(entry: &TimelineEntry, metric: Metric) -> (u64, u64) {
    match metric {
        Metric::Connect => (entry.connect_ok, entry.connect_failures),
        Metric::Publish => (entry.publish_ok, entry.publish_failures),
        Metric::EndToEnd => (entry.e2e_ok, 0),
        Metric::Connection => (entry.connection_ok, entry.connection_failures),
        // Not counted per second in the timeline.
        _ => (0, 0),
    }
}

/// The per-second part of a history row.
struct HistoryCells<'a> {
    timestamp: u64,
    users: u32,
    type_label: &'a str,
    name: &'a str,
    /// Requests and failures in this second (the "current" rates: one-second window).
    now: (u64, u64),
    percentiles_of: &'a Histogram<u64>,
}

fn history_row(cells: &HistoryCells<'_>, total: &Running) -> String {
    let mut fields = vec![
        cells.timestamp.to_string(),
        cells.users.to_string(),
        cells.type_label.to_string(),
        cells.name.to_string(),
        rate(cells.now.0 as f64),
        rate(cells.now.1 as f64),
    ];
    fields.extend(percentile_cells(total.requests, cells.percentiles_of));
    let [median, avg, min, max] = time_cells(&total.latency_us);
    fields.extend([
        total.requests.to_string(),
        total.failures.to_string(),
        median,
        avg,
        min,
        max,
        "0".to_string(),
    ]);
    row_owned(&fields)
}

/// The clients a reason happened to, `; `-separated: `mqblast-3 (token #3); mqblast-8 (token #8)`.
fn example_cell(error: &ErrorCount) -> String {
    let labels: Vec<String> = error.examples.iter().map(|e| e.label()).collect();
    labels.join("; ")
}

/// `PREFIX_failures.csv`: one row per failure reason, first/last seen as Unix seconds, and
/// up to 10 example clients (a column Locust does not have, last so Locust's keep their place).
pub fn failures_csv(summary: &Summary) -> String {
    let mut out = row(FAILURES_COLUMNS.iter().copied());
    let start_s = unix_s(summary.started_at);
    let mut errors: Vec<_> = summary.errors.iter().collect();
    let name_of = |error: &ErrorCount| summary.row_of(error).name.as_str();
    errors.sort_by(|a, b| (name_of(a), &a.reason).cmp(&(name_of(b), &b.reason)));
    for error in errors {
        let seen = |s: u64| ((start_s + s as f64).floor() as u64).to_string();
        out.push_str(&row_owned(&[
            summary.request_type.clone(),
            name_of(error).to_string(),
            error.reason.clone(),
            error.count.to_string(),
            seen(error.first_seen_s),
            seen(error.last_seen_s),
            example_cell(error),
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_python_csv_quotes_them() {
        assert_eq!(
            row(["a", "b,c", "say \"hi\""]),
            "a,\"b,c\",\"say \"\"hi\"\"\"\r\n"
        );
    }

    #[test]
    fn milliseconds_are_exact_to_the_microsecond() {
        assert_eq!(ms(0.0), "0");
        assert_eq!(ms(420.0), "0.42");
        assert_eq!(ms(1_000.0), "1");
        assert_eq!(ms(123_456.0), "123.456");
    }
}
