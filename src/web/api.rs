//! Locust's HTTP API on mqblast's runs: the same paths, parameters and JSON field names
//! (`/swarm`, `/stop`, `/stats/reset`, `/stats/requests`, the CSVs, `/stats/report`), plus
//! `/metrics` (Prometheus) and the page's own `/ui/live`. Every reply is built here from
//! the session and the latest snapshot; a malformed request gets a 4xx with a JSON error.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::guard;
use super::http::Head;
use super::params::Params;
use super::session::{Session, StartRequest};
use super::{metrics, page};
use crate::report::{csv, html, result::RunResult};
use crate::stats::{live::Snapshot, new_histogram, Metric, Summary};

/// Percentiles Locust's stats rows carry as `response_time_percentile_<q>`.
const ROW_PERCENTILES: [f64; 6] = [0.5, 0.66, 0.75, 0.9, 0.95, 0.99];

/// A reply before it is written: status, headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn with(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![
                ("Content-Type", content_type.to_string()),
                ("Cache-Control", "no-store".to_string()),
                // No other site may frame the page (its buttons start load: clickjacking).
                (
                    "Content-Security-Policy",
                    "frame-ancestors 'none'".to_string(),
                ),
                ("X-Frame-Options", "DENY".to_string()),
                ("X-Content-Type-Options", "nosniff".to_string()),
            ],
            body: body.into(),
        }
    }

    fn json(status: u16, value: &Value) -> Reply {
        Reply::with(status, "application/json", value.to_string())
    }

    /// `{"success": false, "message": ...}` with a 4xx status.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({"success": false, "message": message}))
    }

    pub fn unauthorized() -> Reply {
        let mut reply = Reply::error(401, "authentication required");
        reply
            .headers
            .push(("WWW-Authenticate", "Basic realm=\"mqblast\"".to_string()));
        reply
    }

    fn download(self, file_name: &str) -> Reply {
        let mut reply = self;
        let disposition = format!("attachment; filename=\"{file_name}\"");
        reply.headers.push(("Content-Disposition", disposition));
        reply
    }
}

/// Paths that change state: POSTed forms from the page's own origin only (`guard`).
const STATE_CHANGES: [&str; 3] = ["/swarm", "/stop", "/stats/reset"];

/// Dispatch one request (its `Host` and auth already checked by the server).
pub fn route(session: &Session, head: &Head, body: &[u8]) -> Reply {
    let (method, url) = (head.method.as_str(), head.target.as_str());
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let get = method == "GET" || method == "HEAD";
    let post = method == "POST";
    if post && STATE_CHANGES.contains(&path) {
        if let Err(refused) = guard::check_state_change(head) {
            return refused;
        }
    }
    match path {
        "/" if get => Reply::with(200, "text/html; charset=utf-8", page::html(session)),
        "/ui/live" if get => Reply::json(200, &live(session)),
        "/swarm" if post => match Params::parse(query, &head.content_type, body) {
            Ok(params) => swarm(session, &params),
            Err(msg) => Reply::error(400, &msg),
        },
        "/stop" if post => stop(session),
        "/stats/reset" if post => reset(session),
        "/stats/requests" if get => Reply::json(200, &requests(session)),
        "/stats/requests/csv" if get => csv_reply(session, "requests.csv", csv::stats_csv),
        "/stats/failures/csv" if get => csv_reply(session, "failures.csv", csv::failures_csv),
        "/stats/history/csv" if get => csv_reply(session, "stats_history.csv", |s| {
            csv::history_csv(s, false).unwrap_or_default()
        }),
        "/stats/report" if get => report(session, query),
        "/stats/result.json" if get => result_json(session),
        "/logs" if get => Reply::json(
            200,
            &json!({"master": session.journal.lines(), "workers": {}}),
        ),
        "/exceptions" if get => exceptions(session),
        "/exceptions/csv" if get => Reply::with(
            200,
            "text/csv; charset=utf-8",
            session.journal.exceptions_csv(),
        )
        .download("exceptions.csv"),
        "/metrics" if get => Reply::with(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(session),
        ),
        "/"
        | "/ui/live"
        | "/swarm"
        | "/stop"
        | "/stats/reset"
        | "/stats/requests"
        | "/stats/requests/csv"
        | "/stats/failures/csv"
        | "/stats/history/csv"
        | "/stats/report"
        | "/stats/result.json"
        | "/logs"
        | "/exceptions"
        | "/exceptions/csv"
        | "/metrics" => not_allowed(method, path),
        _ => Reply::error(404, &format!("no such path: {path}")),
    }
}

/// 405 with the methods the path takes (`Allow`).
fn not_allowed(method: &str, path: &str) -> Reply {
    let allowed = match STATE_CHANGES.contains(&path) {
        true => "POST",
        false => "GET, HEAD",
    };
    let mut reply = Reply::error(
        405,
        &format!("{method} is not allowed on {path}: use {allowed}"),
    );
    reply.headers.push(("Allow", allowed.to_string()));
    reply
}

/// Start a test, or change the running one's users and spawn rate (as Locust's edit form).
fn swarm(session: &Session, params: &Params) -> Reply {
    match swarm_request(params) {
        Ok(request) => swarm_with(session, request),
        Err(msg) => Reply::error(400, &msg),
    }
}

fn swarm_request(params: &Params) -> Result<StartRequest, String> {
    let host = params
        .text("host")
        .map(|h| crate::config::parse_host(h).map_err(|e| format!("host: {e}")))
        .transpose()?;
    Ok(StartRequest {
        users: params.count("user_count")?,
        spawn_rate: params.rate("spawn_rate")?,
        host,
        run_time: match params.has("run_time") {
            true => Some(params.duration("run_time")?),
            false => None,
        },
    })
}

fn swarm_with(session: &Session, request: StartRequest) -> Reply {
    let steering = &session.steering;
    if let Some((ramp, _)) = steering.ramp() {
        let users = request.users.unwrap_or(ramp.target);
        let rate = request.spawn_rate.unwrap_or(ramp.spawn_rate);
        return match session.change_users(users, rate) {
            Ok(()) => Reply::json(
                200,
                &json!({"success": true, "message": format!("Changed to {users} users at {rate}/s")}),
            ),
            Err(refused) => Reply::error(409, &refused.0),
        };
    }
    let host = request.host.as_ref().map(|h| h.to_string());
    match session.start(request) {
        Ok(()) => Reply::json(
            200,
            &json!({"success": true, "message": "Swarming started", "host": host}),
        ),
        Err(msg) => Reply::error(409, &msg),
    }
}

fn stop(session: &Session) -> Reply {
    match session.stop() {
        true => Reply::json(200, &json!({"success": true, "message": "Test stopped"})),
        false => Reply::error(409, "no test is running"),
    }
}

fn reset(session: &Session) -> Reply {
    match session.reset_stats() {
        true => Reply::json(200, &json!({"success": true, "message": "Stats reset"})),
        false => Reply::error(409, "no test is running"),
    }
}

/// The latest snapshot's summary, or an empty one before the first test.
fn summary_of(snapshot: Option<&Snapshot>) -> Option<&Summary> {
    snapshot.map(|s| &s.summary)
}

fn csv_reply(session: &Session, file: &str, render: impl Fn(&Summary) -> String) -> Reply {
    let snapshot = session.steering.snapshot();
    match summary_of(snapshot.as_deref()) {
        Some(summary) => {
            Reply::with(200, "text/csv; charset=utf-8", render(summary)).download(file)
        }
        None => Reply::error(404, "no test has run yet"),
    }
}

/// The current run's result document (reused by the HTML report): while a test runs, with
/// its user target as it is now.
fn result_of(session: &Session) -> Option<(RunResult, String)> {
    let snapshot = session.steering.snapshot()?;
    let config = session.plan().effective_config.clone();
    let mut summary = snapshot.summary.clone();
    if let Some((ramp, _)) = session.steering.ramp() {
        summary.target_users = ramp.target;
    }
    RunResult::round_trip(summary, config).ok()
}

/// Locust's `/exceptions`: count, message, traceback and nodes of each kept exception.
fn exceptions(session: &Session) -> Reply {
    let (kept, not_kept) = session.journal.exceptions();
    let rows: Vec<Value> = kept
        .iter()
        .map(|e| json!({"count": e.count, "msg": e.message, "traceback": e.traceback, "nodes": e.nodes}))
        .collect();
    Reply::json(200, &json!({"exceptions": rows, "not_kept": not_kept}))
}

fn report(session: &Session, query: &str) -> Reply {
    match result_of(session) {
        Some((result, _)) => {
            let reply = Reply::with(200, "text/html; charset=utf-8", html::render(&result));
            match query.contains("download") {
                true => reply.download("mqblast-report.html"),
                false => reply,
            }
        }
        None => Reply::error(404, "no test has run yet"),
    }
}

fn result_json(session: &Session) -> Reply {
    match result_of(session) {
        Some((_, text)) => {
            Reply::with(200, "application/json", text).download("mqblast-result.json")
        }
        None => Reply::error(404, "no test has run yet"),
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        ms(h.value_at_quantile(q))
    }
}

/// Locust's `/stats/requests`: rows, Aggregated, current rates, errors, state, users.
pub fn requests(session: &Session) -> Value {
    // The state first: once it says stopped, the final result is already the snapshot.
    let state = session.state();
    let snapshot = session.steering.snapshot();
    let snapshot = snapshot.as_deref();
    let mut rows = Vec::new();
    let mut breakdown = Vec::new();
    let mut aggregated = new_histogram();
    let (mut total_requests, mut total_failures) = (0u64, 0u64);
    let (mut current_rps, mut current_fail) = (0.0, 0.0);
    if let Some(s) = snapshot {
        for metric in Metric::ALL {
            let m = s.summary.metric(metric);
            let (rps, fail) = s.current[metric.index()];
            if metric == Metric::Publish && !s.summary.streams.is_empty() {
                // One row per stream in place of `publish` (which is their sum).
                for (stream, m) in s.summary.streams.iter().enumerate() {
                    let current = s.current_streams.get(stream).copied().unwrap_or_default();
                    let mut stream_row = row(
                        &s.summary.request_type,
                        &m.name,
                        m.requests,
                        m.failures,
                        &m.latency_us,
                        current,
                    );
                    with_points(&mut stream_row, m.points);
                    rows.push(stream_row);
                    total_requests += m.requests;
                    total_failures += m.failures;
                    current_rps += current.0;
                    current_fail += current.1;
                    let _ = aggregated.add(&m.latency_us);
                }
                continue;
            }
            if m.is_breakdown_row() {
                // Parts of the connects above: shown apart, outside Aggregated.
                breakdown.push(row(
                    &s.summary.request_type,
                    &m.name,
                    m.requests,
                    m.failures,
                    &m.latency_us,
                    (rps, fail),
                ));
            }
            if !m.is_request_row() {
                continue;
            }
            rows.push(row(
                &s.summary.request_type,
                &m.name,
                m.requests,
                m.failures,
                &m.latency_us,
                (rps, fail),
            ));
            total_requests += m.requests;
            total_failures += m.failures;
            current_rps += rps;
            current_fail += fail;
            let _ = aggregated.add(&m.latency_us);
        }
    }
    let total = (current_rps, current_fail);
    let mut total_row = row(
        "",
        "Aggregated",
        total_requests,
        total_failures,
        &aggregated,
        total,
    );
    with_points(
        &mut total_row,
        snapshot.and_then(|s| s.summary.device_points()),
    );
    rows.push(total_row);
    let fail_ratio = match total_requests {
        0 => 0.0,
        n => total_failures as f64 / n as f64,
    };
    let publish = snapshot.map(|s| &s.summary.metric(Metric::Publish).latency_us);
    let p = |q: f64| publish.map_or(0.0, |h| quantile_ms(h, q));
    let connections = snapshot.map(|s| s.summary.metric(Metric::Connection));
    json!({
        "stats": rows,
        "breakdown": breakdown,
        "connections": {
            "ended": connections.map_or(0, |m| m.requests),
            "closed": connections.map_or(0, |m| m.ok),
            "lost": connections.map_or(0, |m| m.failures),
        },
        "errors": errors(snapshot),
        "total_rps": current_rps,
        "total_fail_per_sec": current_fail,
        "fail_ratio": fail_ratio,
        "current_response_time_percentiles": {
            "response_time_percentile_0.5": p(0.5),
            "response_time_percentile_0.95": p(0.95),
        },
        "state": state,
        "user_count": snapshot.map_or(0, |s| s.connected_users),
        "target_user_count": session.target_users(),
        "reserved_users": session.steering.ramp().map_or(0, |(_, reserved)| reserved),
        "schedule_lag_p99_ms": snapshot.map_or(0.0, |s| quantile_ms(&s.summary.lag_us, 0.99)),
        "schedule_lag_max_ms": snapshot.map_or(0.0, |s| match s.summary.lag_us.is_empty() {
            true => 0.0,
            false => ms(s.summary.lag_us.max()),
        }),
    })
}

fn row(
    method: &str,
    name: &str,
    requests: u64,
    failures: u64,
    latency_us: &Histogram<u64>,
    (rps, fail_per_s): (f64, f64),
) -> Value {
    let mut row = Map::new();
    row.insert("method".into(), json!(method));
    row.insert("name".into(), json!(name));
    row.insert("safe_name".into(), json!(crate::report::svg::escape(name)));
    row.insert("num_requests".into(), json!(requests));
    row.insert("num_failures".into(), json!(failures));
    let empty = latency_us.is_empty();
    row.insert(
        "avg_response_time".into(),
        json!(if empty {
            0.0
        } else {
            latency_us.mean() / 1000.0
        }),
    );
    row.insert(
        "min_response_time".into(),
        json!(if empty { 0.0 } else { ms(latency_us.min()) }),
    );
    row.insert(
        "max_response_time".into(),
        json!(if empty { 0.0 } else { ms(latency_us.max()) }),
    );
    row.insert("current_rps".into(), json!(rps));
    row.insert("current_fail_per_sec".into(), json!(fail_per_s));
    row.insert(
        "median_response_time".into(),
        json!(quantile_ms(latency_us, 0.5)),
    );
    row.insert(
        "ninetieth_response_time".into(),
        json!(quantile_ms(latency_us, 0.9)),
    );
    row.insert(
        "ninety_ninth_response_time".into(),
        json!(quantile_ms(latency_us, 0.99)),
    );
    row.insert("avg_content_length".into(), json!(0));
    for q in ROW_PERCENTILES {
        row.insert(
            format!("response_time_percentile_{q}"),
            json!(quantile_ms(latency_us, q)),
        );
    }
    Value::Object(row)
}

/// A gateway's point rows (and Aggregated, in a run with gateways) carry one field Locust's
/// rows do not have, `device_points`: the device points their successful messages carried.
/// Rows of other runs keep Locust's fields exactly.
fn with_points(row: &mut Value, points: Option<u64>) {
    if let (Some(points), Some(row)) = (points, row.as_object_mut()) {
        row.insert("device_points".into(), json!(points));
    }
}

/// Locust's error list (method, name, error, occurrences), with the example clients.
fn errors(snapshot: Option<&Snapshot>) -> Vec<Value> {
    let Some(s) = snapshot else {
        return Vec::new();
    };
    s.summary
        .errors
        .iter()
        .map(|e| {
            json!({
                "method": s.summary.request_type,
                "name": s.summary.row_of(e).name,
                "error": e.reason,
                "occurrences": e.count,
                "example_clients": e.examples.iter().map(|x| x.label()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// What the page refreshes: the numbers of `/stats/requests` and the report's sections,
/// rendered by the same code as the HTML report.
fn live(session: &Session) -> Value {
    let snapshot = session.steering.snapshot();
    let charted = snapshot.as_ref().map(|s| session.charted(s));
    let configured = crate::workload::stream::configured_shares(&session.plan().streams);
    let sections = snapshot
        .as_deref()
        .zip(charted.as_ref())
        .map(|(s, charted)| {
            let charts: String = html::charts(charted)
                .into_iter()
                .map(|(caption, svg)| {
                    format!("<figure><figcaption>{caption}</figcaption>{svg}</figure>")
                })
                .collect();
            json!({
                "charts": charts,
                "stats": html::stats_table(&s.summary)
                    + &html::ratio_table(&s.summary, &configured)
                    + &html::percentile_table(&s.summary)
                    + &html::connections_section(&s.summary),
                "failures": html::failures_table(&s.summary),
                "audit": html::audit_section(&s.summary),
            })
        });
    let exceptions = session.journal.exceptions();
    json!({
        "requests": requests(session),
        "sections": sections,
        "chart_seconds": charted.as_ref().map_or(0, |s| s.timeline.len()),
        "exception_count": exceptions.0.iter().map(|e| e.count).sum::<u64>() + exceptions.1,
    })
}
