//! The report subcommands (`report`, `merge`, `compare`) and the files a run writes at its end.
//!
//! Everything goes through [`RunResult`]: a run turns its summary into the result document,
//! writes it (`--json`) and renders CSV, interval log and HTML from the document loaded back,
//! exactly as `mqblast report` does from the saved file, so both give the same bytes. Exit
//! codes: 0 done, 1 a file could not be written (or, for `compare`, a regression), 2 an input
//! result file is unreadable or invalid (the message names it).

use std::path::{Path, PathBuf};

use clap::Args;

use super::result::{self, RunResult};
use super::{compare, console, csv, hlog, html, merge};
use crate::plan::Plan;
use crate::stats::Summary;

const EXIT_USAGE: i32 = 2;

/// `mqblast report` flags.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A result file written by `--json` or `mqblast merge`.
    #[arg(value_name = "RESULT.json")]
    pub result: PathBuf,
    /// Write the HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write Locust-compatible CSV files PREFIX_stats.csv, PREFIX_stats_history.csv, ...
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// With --csv: a history row per metric every second, not only the Aggregated row.
    #[arg(long)]
    pub csv_full_history: bool,
    /// Write the HdrHistogram interval log to FILE.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
}

/// `mqblast merge` flags.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Result files to merge (two or more hosts or runs).
    #[arg(value_name = "RESULT.json", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged result.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// A source (host) that should be part of this result but produced none; the merged
    /// result and its reports are marked partial. Repeatable.
    #[arg(long, value_name = "LABEL")]
    pub partial_missing: Vec<String>,
}

/// `mqblast compare` flags.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference result.
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,
    /// The result to judge.
    #[arg(value_name = "NEW.json")]
    pub new: PathBuf,
    /// Write a side-by-side HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Exit 1 when throughput dropped, or p99 or failures rose, by more than PCT percent.
    #[arg(long, value_name = "PCT")]
    pub fail_if_worse: Option<f64>,
}

/// Files to render from a result.
#[derive(Debug, Default)]
pub struct Outputs<'a> {
    pub json: Option<&'a Path>,
    pub csv_prefix: Option<&'a Path>,
    pub csv_full_history: bool,
    pub hlog: Option<&'a Path>,
    pub html: Option<&'a Path>,
}

impl Outputs<'_> {
    fn any(&self) -> bool {
        self.json.is_some()
            || self.csv_prefix.is_some()
            || self.hlog.is_some()
            || self.html.is_some()
    }
}

/// Writes every requested file of `result` (`json_text` is its document); stops at the first
/// failure, whose message names the file.
pub fn write_outputs(result: &RunResult, json_text: &str, out: &Outputs<'_>) -> Result<(), String> {
    for path in [out.json, out.csv_prefix, out.hlog, out.html]
        .into_iter()
        .flatten()
    {
        create_parent_dir(path)?;
    }
    if let Some(path) = out.json {
        std::fs::write(path, json_text)
            .map_err(|e| format!("cannot write the JSON summary {}: {e}", path.display()))?;
    }
    if let Some(prefix) = out.csv_prefix {
        csv::write_csv(prefix, &result.summary, out.csv_full_history)?;
    }
    if let Some(path) = out.hlog {
        hlog::write_hlog(path, &result.summary)?;
    }
    if let Some(path) = out.html {
        std::fs::write(path, html::render(result))
            .map_err(|e| format!("cannot write HTML report {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Locust creates the directory of its `--csv` prefix (`csv = "results/tb"` works in a fresh
/// checkout); mqblast does the same for every output file.
fn create_parent_dir(path: &Path) -> Result<(), String> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create directory {} for {}: {e}",
                dir.display(),
                path.display()
            )
        }),
        None => Ok(()),
    }
}

/// The files a finished run writes; returns 1 if one could not be written, else 0.
pub fn write_run_outputs(summary: Summary, plan: &Plan) -> i32 {
    let outputs = Outputs {
        json: plan.json_path.as_deref(),
        csv_prefix: plan.csv_prefix.as_deref(),
        csv_full_history: plan.csv_full_history,
        hlog: plan.hlog_path.as_deref(),
        html: plan.html_path.as_deref(),
    };
    if !outputs.any() {
        return 0;
    }
    let written = RunResult::round_trip(summary, plan.effective_config.clone())
        .and_then(|(result, text)| write_outputs(&result, &text, &outputs));
    match written {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("mqblast: error: {msg}");
            1
        }
    }
}

/// `mqblast report`: render files from a saved result (the console report when none asked).
pub fn report(args: &ReportArgs) -> i32 {
    let loaded = match result::load(&args.result) {
        Ok(r) => r,
        Err(msg) => return usage_error(&msg),
    };
    let outputs = Outputs {
        json: None,
        csv_prefix: args.csv.as_deref(),
        csv_full_history: args.csv_full_history,
        hlog: args.hlog.as_deref(),
        html: args.html.as_deref(),
    };
    if !outputs.any() {
        print!("{}", console::final_report(&loaded.summary));
        return 0;
    }
    match write_outputs(&loaded, "", &outputs) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("mqblast: error: {msg}");
            1
        }
    }
}

/// `mqblast merge`: add the inputs into one result and write it.
pub fn merge(args: &MergeArgs) -> i32 {
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        match result::load(path) {
            Ok(result) => inputs.push(merge::Input {
                label: label_of(path),
                result,
            }),
            Err(msg) => return usage_error(&msg),
        }
    }
    let mut merged = match merge::merge(inputs) {
        Ok(m) => m,
        Err(msg) => return usage_error(&msg),
    };
    merged
        .summary
        .missing_sources
        .extend(args.partial_missing.iter().cloned());
    let text = result::to_text(&merged);
    if let Err(e) = std::fs::write(&args.output, text) {
        eprintln!(
            "mqblast: error: cannot write merged result {}: {e}",
            args.output.display()
        );
        return 1;
    }
    let s = &merged.summary;
    eprintln!(
        "mqblast merge: {} sources, {} requests, {} failures, {:.1} s -> {}",
        s.sources.len(),
        s.requests(),
        s.failures(),
        s.duration_s,
        args.output.display()
    );
    0
}

/// `mqblast compare`: the Markdown table on stdout; 1 on a regression beyond `--fail-if-worse`.
pub fn compare(args: &CompareArgs) -> i32 {
    let (base, new) = match (result::load(&args.base), result::load(&args.new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(msg), _) | (_, Err(msg)) => return usage_error(&msg),
    };
    let labels = (label_of(&args.base), label_of(&args.new));
    print!(
        "{}",
        compare::markdown(&base.summary, &new.summary, &labels.0, &labels.1)
    );
    if let Some(path) = &args.html {
        let page = html::render_compare(&base, &new, (&labels.0, &labels.1));
        if let Err(e) = std::fs::write(path, page) {
            eprintln!(
                "mqblast: error: cannot write HTML report {}: {e}",
                path.display()
            );
            return 1;
        }
    }
    let Some(pct) = args.fail_if_worse else {
        return 0;
    };
    let worse = compare::regressions(&base.summary, &new.summary, pct);
    for line in &worse {
        eprintln!("mqblast compare: {line}");
    }
    i32::from(!worse.is_empty())
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("mqblast: error: {msg}");
    EXIT_USAGE
}

/// A result's label: its file name without `.json`.
fn label_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
