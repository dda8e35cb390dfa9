//! The JSON summary: one file that scripts, dashboards and run-to-run comparisons can load.
//!
//! Besides the usual numbers it carries each histogram in the standard HdrHistogram V2
//! compressed format, base64-encoded (`latency_us.hdr`), so results from several hosts can be
//! merged exactly by any HdrHistogram implementation instead of averaging percentiles.
//! Every timeline second carries its own histograms too, and `sources`/`error_details` keep
//! what the other reports need, so `report::result` can load the file back into a `Summary`
//! and every report can be rendered again from the file alone.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

use std::time::SystemTime;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::stats::{hdr_codec, ErrorExample, Metric, MetricSummary, Source, Summary};

/// Version of the result file layout; bump when a field changes meaning. 2: `connect` counts
/// connect attempts only, connections lost after their CONNACK are on the new `connection`
/// row, and `error_details` name example clients. 3: the top-level `requests` and `failures`
/// (and each source's) are the Aggregated row's, the request rows listed in
/// `aggregated_rows` only; the connect phases and `reconnect` (`breakdown_rows`) and the
/// sessions (`connection`, summed up in `connections`) are no longer added in. Files of
/// versions 1 and 2 still load (their stored totals keep their old meaning; every report
/// recomputes Aggregated from the rows). Files of version 3 may also carry `streams` (one row
/// per stream of the users, in the `publish` row's shape; `publish` is their sum and the
/// reports show them in its place) and `error_details[].stream`/`stream_name` (the row of a
/// publish failure); files without them read as one `publish` row, as before.
pub const FORMAT_VERSION: u64 = 3;

/// Writes the summary, with the effective configuration under `config`, to `path`.
pub fn write_json(path: &Path, summary: &Summary, effective_config: &Value) -> io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    serde_json::to_writer_pretty(&mut file, &summary_json(summary, effective_config))?;
    file.write_all(b"\n")?;
    file.flush()
}

/// The process exit code for a finished run: 1 if anything failed or the delivery audit did
/// not pass (lost or duplicated messages, or `incomplete`: still arriving at the drain cap),
/// else 0 (Locust's default `--exit-code-on-error`).
pub fn exit_code(summary: &Summary) -> i32 {
    let audit_failed = summary.audit.as_ref().is_some_and(|a| !a.passed());
    i32::from(summary.any_failure() || audit_failed)
}

/// The JSON document `write_json` writes.
pub fn summary_json(summary: &Summary, effective_config: &Value) -> Value {
    let started_unix_s = unix_s(summary.started_at);
    let errors: Map<String, Value> = summary
        .errors_by_reason()
        .into_iter()
        .map(|(reason, count)| (reason, json!(count)))
        .collect();
    let lag = &summary.lag_us;
    let mut publish = metric_fields(summary.metric(Metric::Publish));
    publish.insert("sent".into(), json!(summary.sent));
    let mut doc = json!({
        "tool": "mqblast",
        "version": env!("CARGO_PKG_VERSION"),
        "format_version": FORMAT_VERSION,
        "started_at_unix_s": started_unix_s,
        "duration_s": summary.duration_s,
        "request_type": summary.request_type,
        "qos": summary.qos,
        "users": summary.target_users,
        "max_connected_users": summary.max_connected_users,
        "requests": summary.requests(),
        "failures": summary.failures(),
        "connect": metric_fields(summary.metric(Metric::Connect)),
        "publish": publish,
        "streams": summary.streams.iter().map(|s| Value::Object(metric_fields(s))).collect::<Vec<_>>(),
        "errors": errors,
        "error_details": error_details(summary),
        "schedule_lag_us": {
            "p50": quantile_us(lag, 0.5),
            "p99": quantile_us(lag, 0.99),
            "max": quantile_us(lag, 1.0),
            "count": lag.len(),
            "hdr": hdr_base64(lag),
        },
        "timeline": summary.timeline,
        "sources": summary.sources.iter().map(source_json).collect::<Vec<_>>(),
        "missing_sources": summary.missing_sources,
        "config": effective_config,
    });
    add_subscriber_fields(&mut doc, summary);
    doc
}

/// `subscribe`, `e2e`, `reconnect`, `connection`, `rpc_responder`, the connect parts
/// (`connect_tls_full`...) and `audit`, only in runs that have them (a run in which nothing connected keeps the plain
/// shape).
fn add_subscriber_fields(doc: &mut Value, summary: &Summary) {
    let Some(fields) = doc.as_object_mut() else {
        return;
    };
    let optional = [
        Metric::Subscribe,
        Metric::EndToEnd,
        Metric::Reconnect,
        Metric::Connection,
        Metric::RpcResponder,
    ];
    for metric in optional.into_iter().chain(Metric::CONNECT_PARTS) {
        let m = summary.metric(metric);
        if m.requests > 0 {
            fields.insert(metric.key().into(), Value::Object(metric_fields(m)));
        }
    }
    if let Some(audit) = &summary.audit {
        fields.insert("audit".into(), audit.to_json());
    }
    let keys = |keep: fn(&MetricSummary) -> bool| {
        let rows = summary.metrics.iter().filter(|m| keep(m));
        rows.map(|m| json!(m.metric.key())).collect::<Vec<_>>()
    };
    fields.insert(
        "aggregated_rows".into(),
        Value::Array(keys(MetricSummary::is_request_row)),
    );
    fields.insert(
        "breakdown_rows".into(),
        Value::Array(keys(MetricSummary::is_breakdown_row)),
    );
    let sessions = summary.metric(Metric::Connection);
    if sessions.requests > 0 {
        fields.insert("connections".into(), connections_json(sessions));
    }
}

/// The connections section: sessions ended by us (`closed`) or lost, and how long the closed
/// ones lasted, in seconds (the `connection` object holds the same as a row, histogram
/// included).
fn connections_json(sessions: &MetricSummary) -> Value {
    let h = &sessions.latency_us;
    let s = |us: u64| us as f64 / 1e6;
    json!({
        "ended": sessions.requests,
        "closed": sessions.ok,
        "lost": sessions.failures,
        "session_s": {
            "mean": if h.is_empty() { 0.0 } else { h.mean() / 1e6 },
            "min": s(quantile_us(h, 0.0)),
            "p50": s(quantile_us(h, 0.5)),
            "max": s(quantile_us(h, 1.0)),
        },
    })
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_s(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn source_json(source: &Source) -> Value {
    json!({
        "label": source.label,
        "host": source.host,
        "started_at_unix_s": unix_s(source.started_at),
        "duration_s": source.duration_s,
        "requests": source.requests,
        "failures": source.failures,
    })
}

/// Each failure reason with its metric, when it was first and last seen, and the clients it
/// happened to (client id and token position, never the token).
fn error_details(summary: &Summary) -> Vec<Value> {
    summary
        .errors
        .iter()
        .map(|e| {
            let mut detail = json!({
                "metric": e.metric.key(),
                "reason": e.reason,
                "count": e.count,
                "first_seen_s": e.first_seen_s,
                "last_seen_s": e.last_seen_s,
                "examples": e.examples.iter().map(example_json).collect::<Vec<_>>(),
            });
            if let (Some(stream), Some(fields)) = (e.stream, detail.as_object_mut()) {
                // The index of its row in `streams`, and the row's name for readers.
                fields.insert("stream".into(), json!(stream));
                let name = summary.streams.get(stream).map(|row| row.name.as_str());
                fields.insert("stream_name".into(), json!(name));
            }
            detail
        })
        .collect()
}

/// `{"client_id": ..., "token_index": ...}`; no `token_index` without tokens.
fn example_json(example: &ErrorExample) -> Value {
    let mut fields = Map::new();
    fields.insert("client_id".into(), json!(example.client_id));
    if let Some(token_index) = example.token_index {
        fields.insert("token_index".into(), json!(token_index));
    }
    Value::Object(fields)
}

/// `name`, counts, rates and `latency_us` of one metric.
fn metric_fields(metric: &MetricSummary) -> Map<String, Value> {
    let h = &metric.latency_us;
    let latency = json!({
        "count": h.len(),
        "min": quantile_us(h, 0.0),
        "mean": h.mean(),
        "p50": quantile_us(h, 0.5),
        "p90": quantile_us(h, 0.9),
        "p95": quantile_us(h, 0.95),
        "p99": quantile_us(h, 0.99),
        "p999": quantile_us(h, 0.999),
        "max": quantile_us(h, 1.0),
        "hdr": hdr_base64(h),
    });
    let mut fields = Map::new();
    fields.insert("name".into(), json!(metric.name));
    fields.insert("requests".into(), json!(metric.requests));
    fields.insert("failures".into(), json!(metric.failures));
    fields.insert("ok".into(), json!(metric.ok));
    fields.insert("rps".into(), json!(metric.rps));
    fields.insert("fail_per_s".into(), json!(metric.fail_per_s));
    fields.insert("latency_us".into(), latency);
    if let Some(points) = metric.points {
        // A gateway's point row: the device points its successful messages carried.
        fields.insert("points".into(), json!(points));
    }
    fields
}

/// Value at `quantile` (0.0 = min, 1.0 = max) in microseconds, 0 when empty.
fn quantile_us(histogram: &Histogram<u64>, quantile: f64) -> u64 {
    match (histogram.is_empty(), quantile) {
        (true, _) => 0,
        (false, q) if q <= 0.0 => histogram.min(),
        (false, q) if q >= 1.0 => histogram.max(),
        (false, q) => histogram.value_at_quantile(q),
    }
}

/// The histogram in HdrHistogram's V2 compressed encoding, base64; null if encoding failed.
fn hdr_base64(histogram: &Histogram<u64>) -> Value {
    hdr_codec::encode(histogram).map_or(Value::Null, Value::String)
}

/// Standard base64 with padding (RFC 4648 §4).
#[cfg(test)]
fn base64(bytes: &[u8]) -> String {
    hdr_codec::base64_encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, ErrorCount, Failure, TimelineEntry};
    use hdrhistogram::serialization::Deserializer;
    use std::time::{Duration, SystemTime};

    fn histogram(values_us: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values_us {
            h.saturating_record(v);
        }
        h
    }

    fn metric(
        metric: Metric,
        name: &str,
        latency_us: Histogram<u64>,
        failures: u64,
    ) -> MetricSummary {
        let ok = latency_us.len();
        MetricSummary {
            metric,
            name: name.to_string(),
            requests: ok + failures,
            failures,
            ok,
            rps: (ok + failures) as f64 / 10.0,
            fail_per_s: failures as f64 / 10.0,
            latency_us,
            points: None,
        }
    }

    fn summary(publish_failures: u64) -> Summary {
        let errors = if publish_failures > 0 {
            vec![ErrorCount {
                stream: None,
                metric: Metric::Publish,
                reason: Failure::AckTimeout.describe(),
                count: publish_failures,
                first_seen_s: 1,
                last_seen_s: 1,
                examples: vec![ErrorExample {
                    client_id: "mqblast-3".to_string(),
                    token_index: Some(3),
                }],
            }]
        } else {
            Vec::new()
        };
        Summary {
            streams: Vec::new(),
            request_type: "MQTT".to_string(),
            qos: 1,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration_s: 10.0,
            metrics: [
                metric(Metric::Connect, "connect", histogram([800, 1200]), 0),
                metric(
                    Metric::Publish,
                    "publish:1:t",
                    histogram(1..=1000),
                    publish_failures,
                ),
                metric(Metric::Subscribe, "subscribe", new_histogram(), 0),
                metric(Metric::EndToEnd, "e2e", new_histogram(), 0),
                metric(Metric::Reconnect, "reconnect", new_histogram(), 0),
                metric(Metric::Connection, "connection", new_histogram(), 0),
                metric(Metric::ConnectTcp, "connect:tcp", new_histogram(), 0),
                metric(
                    Metric::ConnectTlsFull,
                    "connect:tls-full",
                    new_histogram(),
                    0,
                ),
                metric(
                    Metric::ConnectTlsResumed,
                    "connect:tls-resumed",
                    new_histogram(),
                    0,
                ),
                metric(Metric::ConnectWs, "connect:ws-upgrade", new_histogram(), 0),
                metric(Metric::ConnectMqtt, "connect:mqtt", new_histogram(), 0),
                metric(Metric::RpcResponder, "rpc-responder", new_histogram(), 0),
            ],
            errors,
            lag_us: histogram([10, 20, 5000]),
            sent: 1000 + publish_failures,
            timeline: vec![TimelineEntry {
                streams: Vec::new(),
                second: 1,
                publish_ok: 1000,
                publish_failures,
                connect_ok: 2,
                connect_failures: 0,
                sent: 1000,
                publish_p50_us: 500,
                publish_p95_us: 950,
                publish_p99_us: 990,
                connected_users: 2,
                lag_max_us: 5000,
                connect_hdr: String::new(),
                publish_hdr: String::new(),
                lag_hdr: String::new(),
                e2e_hdr: String::new(),
                e2e_ok: 0,
                e2e_p50_us: 0,
                e2e_p95_us: 0,
                e2e_p99_us: 0,
                connection_ok: 0,
                connection_failures: 0,
            }],
            target_users: 2,
            max_connected_users: 2,
            sources: Vec::new(),
            missing_sources: Vec::new(),
            audit: None,
        }
    }

    #[test]
    fn a_gateway_point_row_keeps_its_device_points_through_the_result_file() {
        let mut s = summary(0);
        let mut telemetry = metric(Metric::Publish, "gateway telemetry", histogram(1..=10), 0);
        telemetry.points = Some(250);
        let connect = metric(Metric::Publish, "gateway connect", histogram(1..=5), 0);
        s.streams = vec![telemetry, connect];
        let doc = summary_json(&s, &json!({}));
        assert_eq!(doc["streams"][0]["points"], json!(250));
        assert!(doc["streams"][1].get("points").is_none(), "not a point row");
        let (read, _) = crate::report::result::RunResult::round_trip(s, json!({})).unwrap();
        let points: Vec<Option<u64>> = read.summary.streams.iter().map(|r| r.points).collect();
        assert_eq!(points, [Some(250), None]);
        let input = |label: &str| crate::report::merge::Input {
            label: label.to_string(),
            result: read.clone(),
        };
        let merged = crate::report::merge::merge(vec![input("a"), input("b")]).unwrap();
        let points: Vec<Option<u64>> = merged.summary.streams.iter().map(|r| r.points).collect();
        assert_eq!(points, [Some(500), None], "merged results add their points");
    }

    #[test]
    fn json_summary_has_every_required_field_with_correct_numbers() {
        let config = json!({"qos": 1, "users": 2});
        let doc = summary_json(&summary(4), &config);
        assert_eq!(doc["duration_s"], json!(10.0));
        assert_eq!(doc["publish"]["requests"], json!(1004));
        assert_eq!(doc["publish"]["failures"], json!(4));
        assert_eq!(doc["publish"]["ok"], json!(1000));
        assert_eq!(doc["publish"]["rps"], json!(100.4));
        assert_eq!(doc["publish"]["sent"], json!(1004));
        let latency = &doc["publish"]["latency_us"];
        for (field, expected) in [
            ("min", 1),
            ("p50", 500),
            ("p90", 900),
            ("p99", 990),
            ("p999", 999),
            ("max", 1000),
        ] {
            assert_eq!(
                latency[field],
                json!(expected),
                "publish.latency_us.{field}"
            );
        }
        assert_eq!(latency["mean"], json!(500.5));
        assert_eq!(doc["connect"]["requests"], json!(2));
        assert_eq!(doc["connect"]["latency_us"]["min"], json!(800));
        assert_eq!(
            doc["errors"],
            json!({"publish timed out: no acknowledgement": 4})
        );
        assert_eq!(doc["schedule_lag_us"]["p50"], json!(20));
        let lag_max_us = summary(4).lag_us.highest_equivalent(5000);
        assert_eq!(doc["schedule_lag_us"]["max"], json!(lag_max_us));
        assert!(doc["schedule_lag_us"]["p99"].is_u64());
        assert_eq!(doc["config"], config);
        assert_eq!(doc["users"], json!(2));
        assert_eq!(doc["timeline"][0]["publish_p99_us"], json!(990));
        assert_eq!(doc["timeline"].as_array().map(Vec::len), Some(1));
        assert_eq!(doc["started_at_unix_s"], json!(1_700_000_000.0));
        assert_eq!(
            doc["error_details"][0]["examples"],
            json!([{"client_id": "mqblast-3", "token_index": 3}])
        );
        assert!(doc.get("connection").is_none(), "no connection: no row");
    }

    #[test]
    fn json_histograms_decode_back_to_the_same_histogram() {
        let doc = summary_json(&summary(0), &Value::Null);
        let encoded = doc["publish"]["latency_us"]["hdr"]
            .as_str()
            .unwrap_or_default();
        let bytes = decode_base64(encoded);
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(
            decoded,
            summary(0).metrics[Metric::Publish.index()].latency_us
        );
    }

    #[test]
    fn write_json_writes_a_parseable_file() {
        let path =
            std::env::temp_dir().join(format!("mqblast-summary-{}.json", std::process::id()));
        write_json(&path, &summary(0), &json!({})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["publish"]["requests"], json!(1000));
    }

    #[test]
    fn exit_code_is_one_when_anything_failed() {
        assert_eq!(exit_code(&summary(0)), 0);
        assert_eq!(exit_code(&summary(1)), 1);
    }

    /// A run with connect phases and sessions: 2 connects (each also a `connect:tcp`),
    /// 1000 publishes, 2 sessions of which one was lost.
    fn summary_with_phases_and_a_lost_session() -> Summary {
        let mut s = summary(0);
        s.metrics[Metric::ConnectTcp.index()] =
            metric(Metric::ConnectTcp, "connect:tcp", histogram([300, 400]), 0);
        s.metrics[Metric::Connection.index()] =
            metric(Metric::Connection, "connection", histogram([2_000_000]), 1);
        s
    }

    /// Regression: the Aggregated totals added the connect phases and the sessions to the
    /// requests (2 connects read as 2 + 2 + 2 requests).
    #[test]
    fn json_totals_count_requests_once_and_sessions_apart() {
        let doc = summary_json(&summary_with_phases_and_a_lost_session(), &Value::Null);
        assert_eq!(doc["requests"], json!(1002));
        assert_eq!(doc["failures"], json!(0));
        assert_eq!(doc["aggregated_rows"], json!(["connect", "publish"]));
        assert_eq!(doc["breakdown_rows"], json!(["connect_tcp"]));
        assert_eq!(doc["connections"]["ended"], json!(2));
        assert_eq!(doc["connections"]["lost"], json!(1));
        assert_eq!(doc["connect_tcp"]["requests"], json!(2), "the row is kept");
    }

    #[test]
    fn a_lost_connection_still_fails_the_run() {
        let s = summary_with_phases_and_a_lost_session();
        assert_eq!(s.failures(), 0, "a lost session is no failed request");
        assert_eq!(exit_code(&s), 1);
    }

    /// A version 2 file (totals that added every row, no `aggregated_rows`) still loads,
    /// and its reports add up the request rows only.
    #[test]
    fn a_format_2_result_still_loads_and_its_aggregated_counts_requests_only() {
        let mut doc = summary_json(&summary_with_phases_and_a_lost_session(), &Value::Null);
        let fields = doc.as_object_mut().unwrap();
        fields.insert("format_version".into(), json!(2));
        fields.insert("requests".into(), json!(1006));
        for key in [
            "aggregated_rows",
            "breakdown_rows",
            "connections",
            "sources",
        ] {
            fields.remove(key);
        }
        let loaded = crate::report::result::from_json(&doc).expect("a version 2 file loads");
        let s = &loaded.summary;
        assert_eq!(s.requests(), 1002);
        assert_eq!(s.sources[0].requests, 1002);
        assert_eq!(s.metric(Metric::ConnectTcp).requests, 2);
        assert_eq!(s.connections_lost(), 1);
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    fn decode_base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let sextets: Vec<u32> = text
            .bytes()
            .filter(|&c| c != b'=')
            .filter_map(|c| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32))
            .collect();
        let mut out = Vec::new();
        for chunk in sextets.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &s)| n | s << (18 - 6 * i));
            for i in 0..chunk.len().saturating_sub(1) {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }
}
