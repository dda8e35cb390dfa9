//! The effective configuration recorded in the results: every setting as used, in config.toml
//! names and syntax, with tokens and password redacted.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::values::format_duration;
use crate::plan::Plan;

/// The effective settings, secrets redacted, in config.toml key names and value syntax.
pub(super) fn effective_config(
    plan: &Plan,
    config_file: Option<&Path>,
    tokens_file: Option<&Path>,
) -> serde_json::Value {
    let path = |p: Option<&Path>| p.map(|p| p.display().to_string());
    let tokens = match plan.tokens.len() {
        0 => json!([]),
        count => json!(format!("<{count} tokens redacted>")),
    };
    let mut effective = json!({
        "config_file": path(config_file),
        "host": plan.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "run_time": plan.run_time.map(format_duration),
        "messages": plan.messages,
        "qos": plan.qos,
        "topic": plan.topic,
        "payload": plan.payload.source(),
        "interval": format_duration(plan.interval),
        "max_inflight": plan.max_inflight,
        "timeout": format_duration(plan.timeout),
        "tokens": tokens,
        "tokens_file": path(tokens_file),
        "client_id": plan.client_id,
        "username": plan.username,
        "password": plan.password.as_ref().map(|_| "<redacted>"),
        "keep_alive": format_duration(Duration::from_secs(plan.keep_alive_s.into())),
        "threads": plan.threads,
        "pin": plan.pin.name(),
        "only_summary": plan.only_summary,
        "stop_timeout": format_duration(plan.stop_timeout),
        "json": path(plan.json_path.as_deref()),
        "request_type": plan.request_type,
        "shard": plan.shard.map(|shard| shard.to_string()),
        "start_at": plan.start_at_epoch_ms,
        "csv": path(plan.csv_prefix.as_deref()),
        "csv_full_history": plan.csv_full_history,
        "hlog": path(plan.hlog_path.as_deref()),
        "html": path(plan.html_path.as_deref()),
        "bind": plan.bind.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "connect_rate": plan.connect_rate,
        "sub_users": plan.sub_users,
        "sub_topic": plan.sub_topic,
        "sub_qos": plan.sub_qos,
        "e2e": plan.e2e,
        "verify": plan.verify,
        "drain_timeout": format_duration(plan.drain_quiet),
        "drain_max": format_duration(plan.drain_max),
        "reconnect": plan.reconnect,
        "churn": plan.churn.map(format_duration),
    });
    if let Some(settings) = effective.as_object_mut() {
        settings.extend(web_settings(plan));
    }
    effective
}

/// The web UI's settings (a second object: one `json!` of every setting is past the macro's
/// recursion limit). Basic auth is redacted.
fn web_settings(plan: &Plan) -> serde_json::Map<String, serde_json::Value> {
    let web = plan.web.as_ref();
    let settings = json!({
        "headless": web.is_none(),
        "web_host": web.map(|w| w.listen.ip().to_string()),
        "web_port": web.map(|w| w.listen.port()),
        "web_auth": web.and_then(|w| w.auth.as_ref()).map(|_| "<redacted>"),
        "autostart": web.is_some_and(|w| w.autostart),
        "autoquit": web.and_then(|w| w.autoquit).map(format_duration),
    });
    match settings {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}
