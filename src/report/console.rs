//! The console tables in Locust's layout, which load testers read at a glance.
//!
//! Layout follows Locust 2.x `stats.py` (`get_stats_summary`, `get_percentile_stats_summary`,
//! `get_error_report_summary`) as printed when stderr is not a terminal: type column 8 wide,
//! name column `80 - 8 + 4` wide in the stats table and 80 in the percentile table. Where Locust
//! is approximate or cramped we differ, on purpose:
//! - times are milliseconds with decimals below 100 ms (`0.42`), since MQTT round trips are
//!   often well under a millisecond and Locust's whole milliseconds would print `0`;
//! - percentiles come from HDR histograms (0.1% resolution), so the title does not say
//!   "approximated", and the percentile table's `# reqs` is the number of successful requests
//!   the percentiles are computed from;
//! - columns widen when a name or a count is longer than Locust's width, so rows stay aligned;
//! - trailing spaces are trimmed.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::stats::{new_histogram, ErrorCount, Metric, MetricSummary, Summary};

/// Locust's `STATS_TYPE_WIDTH`.
pub const STATS_TYPE_WIDTH: usize = 8;
/// Locust's `STATS_NAME_WIDTH` when the output is not a terminal.
pub const STATS_NAME_WIDTH: usize = 80;
/// Name of the total row.
pub const AGGREGATED: &str = "Aggregated";
/// Locust's `PERCENTILES_TO_REPORT`, with their column headers.
pub const PERCENTILES: [(f64, &str); 11] = [
    (0.50, "50%"),
    (0.66, "66%"),
    (0.75, "75%"),
    (0.80, "80%"),
    (0.90, "90%"),
    (0.95, "95%"),
    (0.98, "98%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (1.0, "100%"),
];

/// One row of a table.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// "Type" column; empty for the Aggregated row.
    pub type_label: &'a str,
    pub name: &'a str,
    /// ok + failures.
    pub requests: u64,
    pub failures: u64,
    /// Latencies of successful requests, microseconds.
    pub latency_us: &'a Histogram<u64>,
    pub rps: f64,
    pub fail_per_s: f64,
}

impl Row<'_> {
    fn fail_cell(&self) -> String {
        let ratio = if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        };
        format!("{}({:.2}%)", self.failures, ratio * 100.0)
    }
}

/// Milliseconds from microseconds: 2 decimals below 10 ms, 1 below 100 ms, whole above.
pub fn format_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if us <= 0.0 {
        "0".to_string()
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Value at `quantile` in microseconds, 0 when empty.
pub fn quantile_us(histogram: &Histogram<u64>, quantile: f64) -> u64 {
    if histogram.is_empty() {
        0
    } else if quantile >= 1.0 {
        histogram.max()
    } else {
        histogram.value_at_quantile(quantile)
    }
}

/// Column widths shared by the header, the separator and the rows.
struct Widths {
    type_w: usize,
    name_w: usize,
    reqs_w: usize,
    fails_w: usize,
}

fn widths(rows: &[&Row<'_>], name_min: usize, reqs_min: usize, fails_min: usize) -> Widths {
    let longest = |f: &dyn Fn(&Row<'_>) -> usize| rows.iter().map(|r| f(r)).max().unwrap_or(0);
    Widths {
        type_w: STATS_TYPE_WIDTH.max(longest(&|r| r.type_label.len() + 1)),
        name_w: name_min.max(longest(&|r| r.name.len())),
        reqs_w: reqs_min.max(longest(&|r| r.requests.to_string().len())),
        fails_w: fails_min.max(longest(&|r| r.fail_cell().len())),
    }
}

/// Rows sorted by name then type (Locust sorts by `(name, method)`).
fn sorted<'r, 'a>(rows: &'r [Row<'a>]) -> Vec<&'r Row<'a>> {
    let mut sorted: Vec<&Row<'a>> = rows.iter().collect();
    sorted.sort_by(|a, b| (a.name, a.type_label).cmp(&(b.name, b.type_label)));
    sorted
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The stats table: header, separator, rows sorted by name, separator, the total row.
/// Pass whole-run rates for the final table and current rates for the live one.
pub fn stats_table(rows: &[Row<'_>], total: &Row<'_>) -> String {
    table_of(rows, Some(total))
}

/// Title of the breakdown table.
pub const BREAKDOWN_TITLE: &str =
    "Breakdown (parts of the connect requests above, not in Aggregated)";

/// The breakdown table: the connect phases and reconnects in the stats table's layout,
/// without a total (each is part of a `connect` already counted); empty without rows.
pub fn breakdown_table(rows: &[Row<'_>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    format!("{BREAKDOWN_TITLE}\n{}", table_of(rows, None))
}

fn table_of(rows: &[Row<'_>], total: Option<&Row<'_>>) -> String {
    let mut all = sorted(rows);
    all.extend(total);
    let w = widths(&all, STATS_NAME_WIDTH - STATS_TYPE_WIDTH + 4, 7, 12);
    let (tw, nw, rw, fw) = (w.type_w, w.name_w, w.reqs_w, w.fails_w);
    let mut out = String::new();
    let header = format!(
        "{:<tw$} {:<nw$} {:>rw$} {:>fw$} |{:>7} {:>7} {:>7}{:>7} | {:>7} {:>11}",
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
    );
    push_line(&mut out, &header);
    let dashes = |n: usize| "-".repeat(n);
    let separator = [tw, nw, rw, fw + 1, 7, 7, 7, 7, 8, 11]
        .map(dashes)
        .join("|");
    push_line(&mut out, &separator);
    let body = match total {
        Some(_) => &all[..all.len() - 1],
        None => &all[..],
    };
    for row in body {
        push_line(&mut out, &stats_row(row, &w));
    }
    push_line(&mut out, &separator);
    if let Some(total) = total {
        push_line(&mut out, &stats_row(total, &w));
    }
    out
}

fn stats_row(row: &Row<'_>, w: &Widths) -> String {
    let (tw, nw, rw, fw) = (w.type_w, w.name_w, w.reqs_w, w.fails_w);
    let h = row.latency_us;
    format!(
        "{:<tw$} {:<nw$} {:>rw$} {:>fw$} |{:>7} {:>7} {:>7}{:>7} | {:>7.2} {:>11.2}",
        row.type_label,
        row.name,
        row.requests,
        row.fail_cell(),
        format_ms(h.mean()),
        format_ms(quantile_us(h, 0.0) as f64),
        format_ms(quantile_us(h, 1.0) as f64),
        format_ms(quantile_us(h, 0.5) as f64),
        row.rps,
        row.fail_per_s,
    )
}

/// The "Response time percentiles" table (milliseconds). Rows without successful requests
/// are left out, as Locust does.
pub fn percentile_table(rows: &[Row<'_>], total: &Row<'_>) -> String {
    percentile_table_of(rows, Some(total))
}

/// The percentile table of `rows`, with `total` below them; without a total it is the
/// breakdown's ("Breakdown response time percentiles"), empty when no row has times.
pub fn percentile_table_of(rows: &[Row<'_>], total: Option<&Row<'_>>) -> String {
    let body: Vec<&Row<'_>> = sorted(rows)
        .into_iter()
        .filter(|r| !r.latency_us.is_empty())
        .collect();
    if total.is_none() && body.is_empty() {
        return String::new();
    }
    let mut all = body.clone();
    all.extend(total);
    let w = widths(&all, STATS_NAME_WIDTH, 0, 0);
    let reqs_w = all
        .iter()
        .map(|r| r.latency_us.len().to_string().len())
        .max()
        .unwrap_or(0)
        .max(6);
    let (tw, nw) = (w.type_w, w.name_w);

    let mut out = String::from(match total {
        Some(_) => "Response time percentiles\n",
        None => "Breakdown response time percentiles (not in Aggregated)\n",
    });
    let mut header = format!("{:<tw$} {:<nw$} {:>8}", "Type", "Name", PERCENTILES[0].1);
    for (_, label) in &PERCENTILES[1..] {
        let _ = write!(header, " {label:>6}");
    }
    let _ = write!(header, " {:>reqs_w$}", "# reqs");
    push_line(&mut out, &header);

    let mut columns = vec![tw, nw, 8];
    columns.extend([6; PERCENTILES.len() - 1]);
    columns.push(reqs_w);
    let separator = columns
        .into_iter()
        .map(|n| "-".repeat(n))
        .collect::<Vec<_>>()
        .join("|");
    push_line(&mut out, &separator);
    for row in body {
        push_line(&mut out, &percentile_row(row, tw, nw, reqs_w));
    }
    push_line(&mut out, &separator);
    if let Some(total) = total.filter(|t| !t.latency_us.is_empty()) {
        push_line(&mut out, &percentile_row(total, tw, nw, reqs_w));
    }
    out
}

fn percentile_row(row: &Row<'_>, tw: usize, nw: usize, reqs_w: usize) -> String {
    let h = row.latency_us;
    let mut line = format!(
        "{:<tw$} {:<nw$} {:>8}",
        row.type_label,
        row.name,
        format_ms(quantile_us(h, PERCENTILES[0].0) as f64)
    );
    for (quantile, _) in &PERCENTILES[1..] {
        let _ = write!(line, " {:>6}", format_ms(quantile_us(h, *quantile) as f64));
    }
    let _ = write!(line, " {:>reqs_w$}", h.len());
    line
}

/// The "Error report" table; empty when nothing failed. `name_of` gives an error's row name.
pub fn error_report(
    errors: &[ErrorCount],
    request_type: &str,
    name_of: &dyn Fn(&ErrorCount) -> String,
) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut out = String::from("Error report\n");
    push_line(&mut out, &format!("{:<18} {}", "# occurrences", "Error"));
    let separator = format!(
        "{}|{}",
        "-".repeat(18),
        "-".repeat(80 + STATS_NAME_WIDTH - 19)
    );
    push_line(&mut out, &separator);
    for error in errors {
        let text = format!("{request_type} {}: {}", name_of(error), error.reason);
        push_line(&mut out, &format!("{:<18} {}", error.count, text));
        if !error.examples.is_empty() {
            push_line(&mut out, &format!("{:<18} {}", "", examples_text(error)));
        }
    }
    push_line(&mut out, &separator);
    out.push('\n');
    out
}

/// `clients: mqblast-3 (token #3), mqblast-8 (token #8)`: which devices a reason happened to
/// (at most [`crate::stats::MAX_ERROR_EXAMPLES`]; `e.g.` when it happened more often).
pub fn examples_text(error: &ErrorCount) -> String {
    let labels: Vec<String> = error.examples.iter().map(|e| e.label()).collect();
    let lead = if error.count > error.examples.len() as u64 {
        "e.g. clients"
    } else {
        "clients"
    };
    format!("{lead}: {}", labels.join(", "))
}

/// How far behind schedule the generator sent publishes: the generator's own health.
pub fn lag_line(lag_us: &Histogram<u64>) -> String {
    if lag_us.is_empty() {
        return "Generator schedule lag: no publishes were sent\n".to_string();
    }
    format!(
        "Generator schedule lag: p99 {} ms, max {} ms (latency is measured from the scheduled send time)\n",
        format_ms(quantile_us(lag_us, 0.99) as f64),
        format_ms(quantile_us(lag_us, 1.0) as f64),
    )
}

/// Sum of histograms (for the Aggregated row).
pub fn aggregate<'a>(histograms: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut sum = new_histogram();
    for histogram in histograms {
        // Same fixed bounds everywhere: adding cannot fail.
        let _ = sum.add(histogram);
    }
    sum
}

/// The histograms of the request rows (the Aggregated row's).
pub fn response_times(summary: &Summary) -> impl Iterator<Item = &Histogram<u64>> {
    summary.request_rows().map(|m| &m.latency_us)
}

/// Request rows of a summary with whole-run rates (what Aggregated adds up): one per
/// stream in place of `publish`.
pub fn summary_rows(summary: &Summary) -> Vec<Row<'_>> {
    let rows = summary.request_rows().filter(|m| m.is_request_row());
    rows_of(summary, rows)
}

/// Breakdown rows of a summary (connect phases, reconnects) with whole-run rates.
pub fn breakdown_rows(summary: &Summary) -> Vec<Row<'_>> {
    let rows = summary.metrics.iter().filter(|m| m.is_breakdown_row());
    rows_of(summary, rows)
}

fn rows_of<'a>(
    summary: &'a Summary,
    rows: impl Iterator<Item = &'a MetricSummary>,
) -> Vec<Row<'a>> {
    rows.map(|m| Row {
        type_label: &summary.request_type,
        name: &m.name,
        requests: m.requests,
        failures: m.failures,
        latency_us: &m.latency_us,
        rps: m.rps,
        fail_per_s: m.fail_per_s,
    })
    .collect()
}

/// The total row of `rows`, over `aggregated` (the sum of their histograms).
pub fn total_row<'a>(rows: &[Row<'_>], aggregated: &'a Histogram<u64>) -> Row<'a> {
    Row {
        type_label: "",
        name: AGGREGATED,
        requests: rows.iter().map(|r| r.requests).sum(),
        failures: rows.iter().map(|r| r.failures).sum(),
        latency_us: aggregated,
        rps: rows.iter().map(|r| r.rps).sum(),
        fail_per_s: rows.iter().map(|r| r.fail_per_s).sum(),
    }
}

/// The heading of the end-of-run report, which tells the final tables from the live ones.
pub const FINAL_HEADING: &str = "Final stats (whole run; req/s over the whole run)";

/// Seconds, with a decimal below 100 s (`2.5 s`, `360 s`).
fn format_s(us: u64) -> String {
    let s = us as f64 / 1e6;
    if s < 100.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// The connections section: established connections (sessions) are no requests, so they are
/// reported here rather than as a row: how many ended by our choice, how many were lost, and
/// how long they lasted. Empty when no connection was established.
pub fn connections_section(summary: &Summary) -> String {
    let m = summary.metric(Metric::Connection);
    if m.requests == 0 {
        return String::new();
    }
    let h = &m.latency_us;
    let mut out = format!(
        "Connections: {} sessions ended: {} closed by mqblast, {} lost",
        m.requests, m.ok, m.failures
    );
    if !h.is_empty() {
        let _ = write!(
            out,
            "; session length (closed ones) avg {}, min {}, median {}, max {}",
            format_s(h.mean() as u64),
            format_s(quantile_us(h, 0.0)),
            format_s(quantile_us(h, 0.5)),
            format_s(quantile_us(h, 1.0)),
        );
    }
    out.push('\n');
    out
}

/// The end-of-run report: stats (whole-run rates), the breakdown of connects, percentiles,
/// connections, errors, generator health.
pub fn final_report(summary: &Summary) -> String {
    let rows = summary_rows(summary);
    let aggregated = aggregate(response_times(summary));
    let total = total_row(&rows, &aggregated);
    let breakdown = breakdown_rows(summary);
    let name_of = |error: &ErrorCount| summary.row_of(error).name.clone();
    let mut out = format!("{FINAL_HEADING}\n");
    out.push_str(&stats_table(&rows, &total));
    if !breakdown.is_empty() {
        out.push('\n');
        out.push_str(&breakdown_table(&breakdown));
    }
    out.push('\n');
    out.push_str(&percentile_table(&rows, &total));
    let breakdown_percentiles = percentile_table_of(&breakdown, None);
    if !breakdown_percentiles.is_empty() {
        out.push('\n');
        out.push_str(&breakdown_percentiles);
    }
    out.push('\n');
    let connections = connections_section(summary);
    if !connections.is_empty() {
        out.push_str(&connections);
        out.push('\n');
    }
    out.push_str(&error_report(
        &summary.errors,
        &summary.request_type,
        &name_of,
    ));
    out.push_str(&lag_line(&summary.lag_us));
    // A running audit's counts are no verdict: the engine prints that once workers are done.
    if let Some(audit) = summary.audit.as_ref().filter(|a| !a.running) {
        out.push_str(&audit.verdict_line());
        out.push('\n');
        if let Some(hint) = audit.hint() {
            out.push_str(&hint);
            out.push('\n');
        }
    }
    if !summary.missing_sources.is_empty() {
        out.push_str(&format!(
            "PARTIAL: no result from {}; the numbers above cover only the others\n",
            summary.missing_sources.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values_us: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values_us {
            h.saturating_record(v);
        }
        h
    }

    fn row<'a>(
        name: &'a str,
        requests: u64,
        failures: u64,
        h: &'a Histogram<u64>,
        rps: f64,
    ) -> Row<'a> {
        Row {
            type_label: "MQTT",
            name,
            requests,
            failures,
            latency_us: h,
            rps,
            fail_per_s: 0.0,
        }
    }

    #[test]
    fn milliseconds_keep_decimals_only_where_they_matter() {
        assert_eq!(format_ms(0.0), "0");
        assert_eq!(format_ms(420.0), "0.42");
        assert_eq!(format_ms(12_345.0), "12.3");
        assert_eq!(format_ms(1_234_567.0), "1235");
    }

    #[test]
    fn stats_table_matches_locust_layout_with_sorted_rows_and_aggregated_last() {
        // Below 2048 us the histogram is exact to the microsecond.
        let publish = histogram(&[1_000, 1_500, 2_000]);
        let connect = histogram(&[500]);
        let total_h = aggregate([&publish, &connect]);
        let rows = [
            row("publish:1:t", 4, 1, &publish, 2.5),
            row("connect", 1, 0, &connect, 0.5),
        ];
        let total = total_row(&rows, &total_h);
        let table = stats_table(&rows, &total);
        let lines: Vec<&str> = table.lines().collect();
        let name_pad = |name: &str| format!("{name:<76}");
        assert_eq!(
            lines[0],
            format!(
                "Type     {}  # reqs      # fails |    Avg     Min     Max    Med |   req/s  failures/s",
                name_pad("Name")
            )
        );
        assert_eq!(
            lines[1],
            format!("--------|{}|-------|-------------|-------|-------|-------|-------|--------|-----------", "-".repeat(76))
        );
        assert_eq!(
            lines[2],
            format!("MQTT     {}       1     0(0.00%) |   0.50    0.50    0.50   0.50 |    0.50        0.00", name_pad("connect"))
        );
        assert_eq!(
            lines[3],
            format!("MQTT     {}       4    1(25.00%) |   1.50    1.00    2.00   1.50 |    2.50        0.00", name_pad("publish:1:t"))
        );
        assert_eq!(lines[4], lines[1]);
        assert_eq!(
            lines[5],
            format!("         {}       5    1(20.00%) |   1.25    0.50    2.00   1.00 |    3.00        0.00", name_pad("Aggregated"))
        );
        assert_eq!(lines.len(), 6);
        // Every row has its "|" in the same columns as the header.
        let bars = |line: &str| line.match_indices('|').map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(bars(lines[2]), bars(lines[0]));
        assert_eq!(bars(lines[5]), bars(lines[0]));
    }

    #[test]
    fn stats_table_widens_columns_for_long_names_and_big_counts() {
        let h = histogram(&[100]);
        let long_name = "publish:1:".to_string() + &"x".repeat(90);
        let rows = [row(&long_name, 123_456_789_012, 0, &h, 0.0)];
        let total = total_row(&rows, &h);
        let table = stats_table(&rows, &total);
        let lines: Vec<&str> = table.lines().collect();
        let bars = |line: &str| line.match_indices('|').map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(bars(lines[2]), bars(lines[0]));
        assert_eq!(bars(lines[4]), bars(lines[0]));
        assert!(lines[2].contains(&long_name));
    }

    #[test]
    fn percentile_table_lists_eleven_percentiles_and_sample_count() {
        let values: Vec<u64> = (1..=1000).collect();
        let publish = histogram(&values);
        let empty = new_histogram();
        let rows = [
            row("publish:0:t", 1000, 0, &publish, 0.0),
            row("connect", 3, 3, &empty, 0.0),
        ];
        let total = total_row(&rows, &publish);
        let table = percentile_table(&rows, &total);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "Response time percentiles");
        assert_eq!(
            lines[1],
            format!(
                "Type     {:<80}      50%    66%    75%    80%    90%    95%    98%    99%  99.9% 99.99%   100% # reqs",
                "Name"
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "--------|{}|--------|{}------",
                "-".repeat(80),
                "------|".repeat(10)
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "MQTT     {:<80}     0.50   0.66   0.75   0.80   0.90   0.95   0.98   0.99   1.00   1.00   1.00   1000",
                "publish:0:t"
            )
        );
        assert_eq!(
            lines[4], lines[2],
            "the connect row without successes is left out"
        );
        assert!(lines[5].starts_with("         Aggregated"));
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn error_report_lists_occurrences_with_row_names_and_is_empty_without_failures() {
        use crate::stats::{Failure, Metric};
        let errors = [
            ErrorCount {
                stream: None,
                metric: Metric::Publish,
                reason: Failure::AckTimeout.describe(),
                count: 12,
                first_seen_s: 1,
                last_seen_s: 2,
                examples: Vec::new(),
            },
            ErrorCount {
                stream: None,
                metric: Metric::Connect,
                reason: Failure::ConnectTimeout.describe(),
                count: 3,
                first_seen_s: 1,
                last_seen_s: 1,
                examples: Vec::new(),
            },
        ];
        let name_of = |e: &ErrorCount| e.metric.key().to_string();
        let report = error_report(&errors, "MQTT", &name_of);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "Error report");
        assert_eq!(lines[1], "# occurrences      Error");
        assert_eq!(lines[2], format!("{}|{}", "-".repeat(18), "-".repeat(141)));
        assert_eq!(
            lines[3],
            "12                 MQTT publish: publish timed out: no acknowledgement"
        );
        assert_eq!(
            lines[4],
            "3                  MQTT connect: connect timed out: no CONNACK"
        );
        assert_eq!(lines[5], lines[2]);
        assert_eq!(lines[6], "");
        assert_eq!(error_report(&[], "MQTT", &name_of), "");
    }

    #[test]
    fn error_report_names_the_example_clients_under_their_reason() {
        use crate::stats::{ErrorExample, Failure, Metric};
        let example = |id: &str, token_index| ErrorExample {
            client_id: id.to_string(),
            token_index,
        };
        let refused = ErrorCount {
            stream: None,
            metric: Metric::Connect,
            reason: Failure::ConnackRefused(5).describe(),
            count: 2,
            first_seen_s: 1,
            last_seen_s: 1,
            examples: vec![example("dev-2", Some(2)), example("dev-5", Some(5))],
        };
        let lost = ErrorCount {
            stream: None,
            metric: Metric::Connection,
            reason: Failure::ConnectionLost(0).describe(),
            count: 4,
            examples: vec![example("dev-1", None)],
            ..refused.clone()
        };
        let name_of = |e: &ErrorCount| e.metric.key().to_string();
        let report = error_report(&[refused, lost], "MQTT", &name_of);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(
            lines[3],
            "2                  MQTT connect: CONNACK refused: 5 (not authorized)"
        );
        assert_eq!(
            lines[4],
            "                   clients: dev-2 (token #2), dev-5 (token #5)"
        );
        assert_eq!(
            lines[6], "                   e.g. clients: dev-1",
            "more occurrences than examples"
        );
    }

    #[test]
    fn lag_line_reports_p99_and_max_of_schedule_lag() {
        let lag = histogram(&[100, 200, 300, 2_100]);
        assert_eq!(
            lag_line(&lag),
            "Generator schedule lag: p99 2.10 ms, max 2.10 ms (latency is measured from the scheduled send time)\n"
        );
        assert_eq!(
            lag_line(&new_histogram()),
            "Generator schedule lag: no publishes were sent\n"
        );
    }
}
