//! A result file loaded back: the JSON written by `--json` (or `merge`) turned into the same
//! [`Summary`] the run produced, histograms decoded, so every report (console, CSV, interval
//! log, HTML, compare) can be rendered from the file alone.
//!
//! A run renders its own reports through this path too ([`RunResult::round_trip`]: summary ->
//! JSON text -> `RunResult`), so `mqblast report result.json` reproduces them byte for byte.
//! Loading never panics: every problem is one line naming the file and the field.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::Value;

use super::json::{summary_json, FORMAT_VERSION};
use crate::engine::audit::AuditSummary;
use crate::stats::{
    hdr_codec, ErrorCount, ErrorExample, Metric, MetricSummary, Source, Summary, TimelineEntry,
};

/// A run's results and the configuration that produced them (secrets already redacted).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub summary: Summary,
    pub config: Value,
}

impl RunResult {
    /// The result as the file holds it: `summary` through JSON text and back, so reports
    /// rendered from it equal those rendered later from the saved file.
    pub fn round_trip(summary: Summary, config: Value) -> Result<(RunResult, String), String> {
        let text = to_text(&RunResult { summary, config });
        let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok((from_json(&doc)?, text))
    }
}

/// The pretty-printed JSON document of `result`, newline-terminated.
pub fn to_text(result: &RunResult) -> String {
    let doc = summary_json(&result.summary, &result.config);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Reads and decodes the result file at `path`; errors name the file.
pub fn load(path: &Path) -> Result<RunResult, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read result file {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a JSON result file: {e}", path.display()))?;
    from_json(&doc).map_err(|e| format!("{}: {e}", path.display()))
}

/// Decodes a result document; errors name the field.
pub fn from_json(doc: &Value) -> Result<RunResult, String> {
    if doc.get("tool").and_then(Value::as_str) != Some("mqblast") {
        return Err("not an mqblast result (no \"tool\": \"mqblast\")".to_string());
    }
    let version = doc
        .get("format_version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if version > FORMAT_VERSION {
        return Err(format!(
            "format_version {version} is newer than this mqblast reads ({FORMAT_VERSION})"
        ));
    }
    let started_at = time_at(f64_at(doc, "started_at_unix_s")?);
    let duration_s = f64_at(doc, "duration_s")?;
    let mut metrics = Metric::ALL.map(empty_metric);
    for metric in Metric::ALL {
        // Subscriber rows are written only by runs that had them.
        if metric.always_shown() || doc.get(metric.key()).is_some() {
            metrics[metric.index()] = metric_at(doc, metric)?;
        }
    }
    let streams = streams_at(doc)?;
    let summary = Summary {
        streams,
        request_type: str_at(doc, "request_type")?.to_string(),
        qos: u8::try_from(u64_at(doc, "qos")?).map_err(|_| "qos: out of range".to_string())?,
        started_at,
        duration_s,
        errors: errors_at(doc)?,
        lag_us: hdr_at(doc, "schedule_lag_us")?,
        sent: u64_at(field(doc, "publish")?, "sent").unwrap_or(0),
        timeline: timeline_at(doc)?,
        target_users: u32_at(doc, "users")?,
        max_connected_users: u32_at(doc, "max_connected_users")?,
        sources: sources_at(doc, started_at, duration_s, &metrics)?,
        missing_sources: missing_at(doc)?,
        audit: audit_at(doc)?,
        metrics,
    };
    let config = doc.get("config").cloned().unwrap_or(Value::Null);
    Ok(RunResult { summary, config })
}

/// `missing_sources`: absent in a complete result.
fn missing_at(doc: &Value) -> Result<Vec<String>, String> {
    let Some(list) = doc.get("missing_sources") else {
        return Ok(Vec::new());
    };
    let items = list
        .as_array()
        .ok_or("\"missing_sources\": expected a list")?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| "\"missing_sources\": expected strings".to_string())
        })
        .collect()
}

fn field<'a>(doc: &'a Value, name: &str) -> Result<&'a Value, String> {
    doc.get(name)
        .ok_or_else(|| format!("missing field \"{name}\""))
}

fn u64_at(doc: &Value, name: &str) -> Result<u64, String> {
    field(doc, name)?
        .as_u64()
        .ok_or_else(|| format!("\"{name}\": expected a whole number"))
}

fn u32_at(doc: &Value, name: &str) -> Result<u32, String> {
    u32::try_from(u64_at(doc, name)?).map_err(|_| format!("\"{name}\": out of range"))
}

fn f64_at(doc: &Value, name: &str) -> Result<f64, String> {
    field(doc, name)?
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("\"{name}\": expected a number"))
}

fn str_at<'a>(doc: &'a Value, name: &str) -> Result<&'a str, String> {
    field(doc, name)?
        .as_str()
        .ok_or_else(|| format!("\"{name}\": expected a string"))
}

/// The instant `unix_s` seconds after the epoch (the epoch itself for nonsense).
pub fn time_at(unix_s: f64) -> SystemTime {
    UNIX_EPOCH + Duration::try_from_secs_f64(unix_s).unwrap_or(Duration::ZERO)
}

/// `doc[name].hdr`, decoded.
fn hdr_at(doc: &Value, name: &str) -> Result<Histogram<u64>, String> {
    let text = str_at(field(doc, name)?, "hdr").map_err(|e| format!("{name}.{e}"))?;
    hdr_codec::decode(text).map_err(|e| format!("{name}.hdr: {e}"))
}

fn empty_metric(metric: Metric) -> MetricSummary {
    MetricSummary {
        metric,
        name: metric.key().to_string(),
        requests: 0,
        failures: 0,
        ok: 0,
        rps: 0.0,
        fail_per_s: 0.0,
        latency_us: crate::stats::new_histogram(),
    }
}

/// `audit` (runs with subscribers and the delivery audit).
fn audit_at(doc: &Value) -> Result<Option<AuditSummary>, String> {
    let Some(a) = doc.get("audit") else {
        return Ok(None);
    };
    let count = |key: &str| u64_at(a, key).map_err(|e| format!("audit.{e}"));
    let narrow = |key: &str| -> Result<u8, String> {
        u8::try_from(count(key)?).map_err(|_| format!("audit.{key}: out of range"))
    };
    Ok(Some(AuditSummary {
        published: count("published")?,
        expected: count("expected")?,
        delivered: count("delivered")?,
        lost: count("lost")?,
        // Absent from results written before the drain cap existed: nothing was cut off.
        still_arriving: a.get("still_arriving").and_then(Value::as_u64).unwrap_or(0),
        duplicated: count("duplicated")?,
        reordered: count("reordered")?,
        // Absent from results written before the hint existed: no evidence kept.
        skipped: a.get("skipped").and_then(Value::as_u64).unwrap_or(0),
        subscribers: u32::try_from(count("subscribers")?)
            .map_err(|_| "audit.subscribers: out of range".to_string())?,
        publish_qos: narrow("publish_qos")?,
        subscribe_qos: narrow("subscribe_qos")?,
        shared: a.get("shared").and_then(Value::as_bool).unwrap_or(false),
        running: a.get("verdict").and_then(Value::as_str) == Some("running"),
    }))
}

fn metric_at(doc: &Value, metric: Metric) -> Result<MetricSummary, String> {
    let key = metric.key();
    row_at(field(doc, key)?, metric, key)
}

/// `streams`: the stream rows (absent from results written before streams existed, and from
/// runs that never published).
fn streams_at(doc: &Value) -> Result<Vec<MetricSummary>, String> {
    let Some(list) = doc.get("streams") else {
        return Ok(Vec::new());
    };
    let items = list.as_array().ok_or("\"streams\": expected a list")?;
    items
        .iter()
        .enumerate()
        .map(|(n, item)| row_at(item, Metric::Publish, &format!("streams[{n}]")))
        .collect()
}

/// One row's fields; `key` names it in errors.
fn row_at(m: &Value, metric: Metric, key: &str) -> Result<MetricSummary, String> {
    let prefixed = |e: String| format!("{key}.{e}");
    Ok(MetricSummary {
        metric,
        name: str_at(m, "name").map_err(prefixed)?.to_string(),
        requests: u64_at(m, "requests").map_err(prefixed)?,
        failures: u64_at(m, "failures").map_err(prefixed)?,
        ok: u64_at(m, "ok").map_err(prefixed)?,
        rps: f64_at(m, "rps").map_err(prefixed)?,
        fail_per_s: f64_at(m, "fail_per_s").map_err(prefixed)?,
        latency_us: hdr_at(m, "latency_us").map_err(prefixed)?,
    })
}

/// `error_details` (format 1 on; `examples` from format 2); older files only have `errors`
/// (reason -> count).
fn errors_at(doc: &Value) -> Result<Vec<ErrorCount>, String> {
    if let Some(details) = doc.get("error_details") {
        let items = details
            .as_array()
            .ok_or("\"error_details\": expected a list")?;
        return items.iter().map(error_at).collect();
    }
    let Some(errors) = doc.get("errors").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    Ok(errors
        .iter()
        .map(|(reason, count)| ErrorCount {
            metric: metric_of_reason(reason),
            stream: None,
            reason: reason.clone(),
            count: count.as_u64().unwrap_or(0),
            first_seen_s: 0,
            last_seen_s: 0,
            examples: Vec::new(),
        })
        .collect())
}

fn error_at(item: &Value) -> Result<ErrorCount, String> {
    let prefixed = |e: String| format!("error_details.{e}");
    let key = str_at(item, "metric").map_err(prefixed)?;
    let metric = match Metric::ALL.into_iter().find(|m| m.key() == key) {
        Some(metric) => metric,
        None => return Err(format!("error_details.metric: unknown metric {key:?}")),
    };
    let stream = match item.get("stream") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let index = u64_at(item, "stream").map_err(prefixed)?;
            Some(usize::try_from(index).map_err(|_| "error_details.stream: out of range")?)
        }
    };
    Ok(ErrorCount {
        metric,
        stream,
        reason: str_at(item, "reason").map_err(prefixed)?.to_string(),
        count: u64_at(item, "count").map_err(prefixed)?,
        first_seen_s: u64_at(item, "first_seen_s").unwrap_or(0),
        last_seen_s: u64_at(item, "last_seen_s").unwrap_or(0),
        examples: examples_at(item)?,
    })
}

/// `error_details[].examples` (absent before format 2).
fn examples_at(item: &Value) -> Result<Vec<ErrorExample>, String> {
    let Some(list) = item.get("examples") else {
        return Ok(Vec::new());
    };
    let items = list
        .as_array()
        .ok_or("error_details.examples: expected a list")?;
    items
        .iter()
        .map(|example| {
            let prefixed = |e: String| format!("error_details.examples.{e}");
            let token_index = match example.get("token_index") {
                None | Some(Value::Null) => None,
                Some(_) => Some(u64_at(example, "token_index").map_err(prefixed)?),
            };
            Ok(ErrorExample {
                client_id: str_at(example, "client_id").map_err(prefixed)?.to_string(),
                token_index,
            })
        })
        .collect()
}

fn metric_of_reason(reason: &str) -> Metric {
    if reason.starts_with("publish") {
        Metric::Publish
    } else {
        Metric::Connect
    }
}

fn timeline_at(doc: &Value) -> Result<Vec<TimelineEntry>, String> {
    let Some(timeline) = doc.get("timeline") else {
        return Ok(Vec::new());
    };
    let entries: Vec<TimelineEntry> =
        serde_json::from_value(timeline.clone()).map_err(|e| format!("timeline: {e}"))?;
    for entry in &entries {
        for metric in Metric::ALL {
            entry.histogram(metric).map_err(|e| {
                format!(
                    "timeline second {}: {} histogram: {e}",
                    entry.second,
                    metric.key()
                )
            })?;
        }
        entry
            .lag_histogram()
            .map_err(|e| format!("timeline second {}: lag histogram: {e}", entry.second))?;
    }
    Ok(entries)
}

fn sources_at(
    doc: &Value,
    started_at: SystemTime,
    duration_s: f64,
    metrics: &[MetricSummary],
) -> Result<Vec<Source>, String> {
    let request_rows = || metrics.iter().filter(|m| m.metric.is_request());
    let Some(list) = doc.get("sources") else {
        return Ok(vec![Source {
            label: String::new(),
            host: String::new(),
            started_at,
            duration_s,
            requests: request_rows().map(|m| m.requests).sum(),
            failures: request_rows().map(|m| m.failures).sum(),
        }]);
    };
    let items = list.as_array().ok_or("\"sources\": expected a list")?;
    items
        .iter()
        .map(|item| {
            let prefixed = |e: String| format!("sources.{e}");
            Ok(Source {
                label: str_at(item, "label").map_err(prefixed)?.to_string(),
                host: str_at(item, "host").map_err(prefixed)?.to_string(),
                started_at: time_at(f64_at(item, "started_at_unix_s").map_err(prefixed)?),
                duration_s: f64_at(item, "duration_s").map_err(prefixed)?,
                requests: u64_at(item, "requests").map_err(prefixed)?,
                failures: u64_at(item, "failures").map_err(prefixed)?,
            })
        })
        .collect()
}
