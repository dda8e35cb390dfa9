//! What a web session tells its user besides the statistics, as Locust's UI does: a log of
//! every test start, user change, stats reset and stop (the "Logs" view and `/logs`), and
//! the tool's own errors (the "Exceptions" view, `/exceptions` and `/exceptions/csv`).
//!
//! An exception here is an error of mqblast itself, not a failed request (those are the
//! failures): a test that was accepted but could not start or run (its broker could not be
//! resolved, a thread could not be started), and a panic on any thread while the session
//! lives (a worker's, say), with where it happened. Both are bounded: [`LOG_LINES_MAX`]
//! lines (the oldest dropped first), [`EXCEPTIONS_MAX`] distinct messages (later ones only
//! counted), every text cut at a stated length.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// Lines the log keeps; the oldest goes first.
pub const LOG_LINES_MAX: usize = 500;
/// Longest log line kept (bytes, cut at a character boundary).
pub const LOG_LINE_BYTES_MAX: usize = 1024;
/// Distinct exception messages kept; more are counted, not kept.
pub const EXCEPTIONS_MAX: usize = 100;
/// Longest exception message or traceback kept (bytes).
pub const EXCEPTION_TEXT_BYTES_MAX: usize = 4096;
/// Locust's node name for the process itself (its workers are named by their ids).
pub const NODE: &str = "local";

/// One exception: how often, what, where (Locust's Count, Message, Traceback, Nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub count: u64,
    pub message: String,
    pub traceback: String,
    pub nodes: String,
}

#[derive(Default)]
struct Exceptions {
    kept: Vec<Exception>,
    /// Exceptions with a message beyond the first [`EXCEPTIONS_MAX`] distinct ones.
    not_kept: u64,
}

/// The session's log and exceptions.
#[derive(Default)]
pub struct Journal {
    lines: Mutex<VecDeque<String>>,
    exceptions: Mutex<Exceptions>,
}

impl Journal {
    pub fn new() -> Arc<Journal> {
        Arc::new(Journal::default())
    }

    /// Print `line` on the console (`mqblast: web: line`) and keep it, timestamped, for
    /// the Logs view.
    pub fn log(&self, line: &str) {
        eprintln!("mqblast: web: {line}");
        let stamped = format!(
            "[{}] {}",
            crate::report::html::utc(SystemTime::now()),
            cut(line, LOG_LINE_BYTES_MAX)
        );
        let mut lines = lock(&self.lines);
        if lines.len() == LOG_LINES_MAX {
            lines.pop_front();
        }
        lines.push_back(stamped);
    }

    /// The kept log lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).iter().cloned().collect()
    }

    /// Record an error of the tool itself (and log it).
    pub fn exception(&self, message: &str, traceback: &str) {
        self.log(&format!("error: {message}"));
        self.record(message, traceback);
    }

    fn record(&self, message: &str, traceback: &str) {
        lock(&self.exceptions).add(message, traceback);
    }
}

impl Exceptions {
    fn add(&mut self, message: &str, traceback: &str) {
        let message = cut(message, EXCEPTION_TEXT_BYTES_MAX);
        let exceptions = self;
        if let Some(seen) = exceptions.kept.iter_mut().find(|e| e.message == message) {
            seen.count += 1;
            return;
        }
        if exceptions.kept.len() == EXCEPTIONS_MAX {
            exceptions.not_kept += 1;
            return;
        }
        exceptions.kept.push(Exception {
            count: 1,
            message: message.to_string(),
            traceback: cut(traceback, EXCEPTION_TEXT_BYTES_MAX).to_string(),
            nodes: NODE.to_string(),
        });
    }
}

impl Journal {
    /// The kept exceptions, and how many more were counted beyond the bound.
    pub fn exceptions(&self) -> (Vec<Exception>, u64) {
        let exceptions = lock(&self.exceptions);
        (exceptions.kept.clone(), exceptions.not_kept)
    }

    /// Locust's `exceptions.csv`: Count,Message,Traceback,Nodes.
    pub fn exceptions_csv(&self) -> String {
        let (kept, not_kept) = self.exceptions();
        let mut out = String::from("Count,Message,Traceback,Nodes\r\n");
        for e in &kept {
            let count = e.count.to_string();
            out.push_str(&csv_row(&[&count, &e.message, &e.traceback, &e.nodes]));
        }
        if not_kept > 0 {
            let count = not_kept.to_string();
            let message = format!("(other exceptions beyond the first {EXCEPTIONS_MAX} kinds)");
            out.push_str(&csv_row(&[&count, &message, "", NODE]));
        }
        out
    }

    /// Record every panic on any thread from now on (the first journal installed wins).
    pub fn record_panics(self: &Arc<Journal>) {
        static PANICS_TO: OnceLock<Arc<Journal>> = OnceLock::new();
        if PANICS_TO.set(Arc::clone(self)).is_err() {
            return;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(journal) = PANICS_TO.get() {
                let payload = info.payload();
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                let thread = std::thread::current();
                let message = format!(
                    "thread '{}' panicked: {what}",
                    thread.name().unwrap_or("unnamed")
                );
                let place = info.location().map_or(String::new(), |l| {
                    format!("at {}:{}:{}", l.file(), l.line(), l.column())
                });
                let backtrace = std::backtrace::Backtrace::capture();
                let traceback = match backtrace.status() {
                    std::backtrace::BacktraceStatus::Captured => format!("{place}\n{backtrace}"),
                    _ => place,
                };
                // Never wait in a panic: a panic inside the journal itself records nothing.
                if let Ok(mut exceptions) = journal.exceptions.try_lock() {
                    exceptions.add(&message, &traceback);
                }
            }
            previous(info);
        }));
    }
}

/// One CSV row as Python's csv module writes it (quoted only when needed), CRLF-ended.
fn csv_row(fields: &[&str]) -> String {
    let cells: Vec<String> = fields
        .iter()
        .map(|f| match f.contains([',', '"', '\r', '\n']) {
            true => format!("\"{}\"", f.replace('"', "\"\"")),
            false => f.to_string(),
        })
        .collect();
    cells.join(",") + "\r\n"
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_last_lines_up_to_its_bound() {
        let journal = Journal::new();
        for i in 0..LOG_LINES_MAX + 3 {
            journal.log(&format!("line {i}"));
        }
        let lines = journal.lines();
        assert_eq!(lines.len(), LOG_LINES_MAX);
        assert!(lines[0].ends_with("] line 3"), "{}", lines[0]);
        journal.log(&"é".repeat(LOG_LINE_BYTES_MAX));
        let last = journal.lines().pop().unwrap();
        assert!(last.len() < LOG_LINE_BYTES_MAX + 40, "cut: {}", last.len());
    }

    #[test]
    fn exceptions_are_counted_by_message_bounded_and_written_as_locusts_csv() {
        let journal = Journal::new();
        journal.exception("cannot resolve broker host x, y", "at run_one");
        journal.exception("cannot resolve broker host x, y", "at run_one");
        for i in 0..EXCEPTIONS_MAX + 5 {
            journal.exception(&format!("other {i}"), "");
        }
        let (kept, not_kept) = journal.exceptions();
        assert_eq!(kept.len(), EXCEPTIONS_MAX);
        assert_eq!(kept[0].count, 2);
        assert_eq!(not_kept, 6);
        let csv = journal.exceptions_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("Count,Message,Traceback,Nodes"));
        assert_eq!(
            lines.next(),
            Some("2,\"cannot resolve broker host x, y\",at run_one,local")
        );
        assert!(csv.ends_with("6,(other exceptions beyond the first 100 kinds),,local\r\n"));
    }
}
