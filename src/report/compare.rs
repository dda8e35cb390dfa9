//! `mqblast compare BASE NEW`: did the broker get slower? A Markdown table of throughput,
//! failures and publish latency percentiles with their change in %, and the regression check
//! behind `--fail-if-worse PCT` (for CI): throughput down, or p99 or failures up, by more than
//! PCT percent.

use std::fmt::Write as _;

use super::console::quantile_us;
use super::csv::ms;
use crate::stats::{Metric, Summary};

/// Whether a larger value is better (throughput) or worse (latency, failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One compared quantity.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: &'static str,
    pub base: f64,
    pub new: f64,
    /// How to print a value.
    pub unit: Unit,
    pub better: Better,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    PerSecond,
    Count,
    /// Microseconds, printed as milliseconds.
    Micros,
}

impl Line {
    /// Change from base to new in percent; None when base is 0 and new is not.
    pub fn change_pct(&self) -> Option<f64> {
        if self.base == 0.0 {
            return (self.new == 0.0).then_some(0.0);
        }
        Some((self.new - self.base) / self.base * 100.0)
    }

    pub fn format(&self, value: f64) -> String {
        match self.unit {
            Unit::PerSecond => format!("{value:.1}"),
            Unit::Count => format!("{value:.0}"),
            Unit::Micros => format!("{} ms", ms(value)),
        }
    }

    pub fn change_text(&self) -> String {
        match self.change_pct() {
            Some(pct) => format!("{pct:+.1}%"),
            None => "new".to_string(),
        }
    }

    /// True when `new` is worse than `base` by more than `pct` percent.
    pub fn worse_by_more_than(&self, pct: f64) -> bool {
        match (self.better, self.change_pct()) {
            (Better::Higher, Some(change)) => change < -pct,
            (Better::Lower, Some(change)) => change > pct,
            (Better::Lower, None) => true,
            (Better::Higher, None) => false,
        }
    }
}

/// The compared lines, in table order.
pub fn lines(base: &Summary, new: &Summary) -> Vec<Line> {
    let publish =
        |s: &Summary, q: f64| quantile_us(&s.metric(Metric::Publish).latency_us, q) as f64;
    let line = |label, unit, better, f: &dyn Fn(&Summary) -> f64| Line {
        label,
        base: f(base),
        new: f(new),
        unit,
        better,
    };
    vec![
        line(
            "Throughput (msg/s)",
            Unit::PerSecond,
            Better::Higher,
            &|s| s.metric(Metric::Publish).rps,
        ),
        line("Publishes", Unit::Count, Better::Higher, &|s| {
            s.metric(Metric::Publish).requests as f64
        }),
        line("Failures", Unit::Count, Better::Lower, &|s| {
            s.failures() as f64
        }),
        line("p50", Unit::Micros, Better::Lower, &|s| publish(s, 0.5)),
        line("p90", Unit::Micros, Better::Lower, &|s| publish(s, 0.9)),
        line("p99", Unit::Micros, Better::Lower, &|s| publish(s, 0.99)),
        line("p99.9", Unit::Micros, Better::Lower, &|s| publish(s, 0.999)),
        line("max", Unit::Micros, Better::Lower, &|s| publish(s, 1.0)),
    ]
}

/// The Markdown table.
pub fn markdown(base: &Summary, new: &Summary, base_label: &str, new_label: &str) -> String {
    let mut out =
        format!("| metric | {base_label} | {new_label} | change |\n|---|---:|---:|---:|\n");
    for line in lines(base, new) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            line.label,
            line.format(line.base),
            line.format(line.new),
            line.change_text()
        );
    }
    out
}

/// What got worse by more than `pct` percent: throughput, p99, failures.
pub fn regressions(base: &Summary, new: &Summary, pct: f64) -> Vec<String> {
    lines(base, new)
        .into_iter()
        .filter(|l| matches!(l.label, "Throughput (msg/s)" | "p99" | "Failures"))
        .filter(|l| l.worse_by_more_than(pct))
        .map(|l| {
            format!(
                "{} got worse by more than {pct}%: {} -> {} ({})",
                l.label,
                l.format(l.base),
                l.format(l.new),
                l.change_text()
            )
        })
        .collect()
}
