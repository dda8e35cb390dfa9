//! The effective configuration recorded in the results: every setting as used, in config.toml
//! names and syntax, with tokens and password redacted.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::values::format_duration;
use crate::plan::Plan;
use crate::transport::ClientCerts;

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
    let tls = &plan.transport.tls_options;
    let (client_cert, client_key, cert_dir, cert_name, key_name) = match &tls.client_certs {
        ClientCerts::None => (None, None, None, None, None),
        ClientCerts::One { cert, key } => (path(Some(cert)), path(Some(key)), None, None, None),
        ClientCerts::PerDevice {
            dir,
            cert_name,
            key_name,
        } => (
            None,
            None,
            path(Some(dir)),
            Some(cert_name.clone()),
            Some(key_name.clone()),
        ),
    };
    let mut config = json!({
        "config_file": path(config_file),
        "host": plan.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "run_time": plan.run_time.map(format_duration),
        "messages": plan.messages,
        "qos": plan.qos,
        "topic": plan.topic,
        "payload": plan.payload.setting(),
        "interval": format_duration(plan.interval),
    });
    if let Some(all) = config.as_object_mut() {
        all.extend(rate_settings(plan));
    }
    let rest = json!({
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
    if let (Some(all), serde_json::Value::Object(rest)) = (config.as_object_mut(), rest) {
        all.extend(rest);
        // Placed by `in_settings_order` below, after `interval`.
        all.insert(
            "stream".into(),
            super::streams::streams_json(&plan.streams, &plan.payload),
        );
    }
    let transport = json!({
        "cafile": path(tls.cafile.as_deref()),
        "insecure": tls.insecure,
        "tls_server_name": tls.server_name,
        "alpn": tls.alpn,
        "cert": client_cert,
        "key": client_key,
        "cert_dir": cert_dir,
        "cert_name": cert_name,
        "key_name": key_name,
        "tls_resume": tls.resume,
        "ws_path": plan.transport.ws_path,
    });
    if let (Some(all), serde_json::Value::Object(more)) = (config.as_object_mut(), transport) {
        all.extend(more);
    }
    if let (Some(all), serde_json::Value::Object(mqtt)) =
        (config.as_object_mut(), mqtt_settings(plan))
    {
        all.extend(mqtt);
    }
    if let Some(settings) = config.as_object_mut() {
        settings.extend(web_settings(plan));
        settings.extend(preset_settings(plan));
        settings.extend(gateway_settings(plan));
        settings.extend(responder_settings(plan));
    }
    in_settings_order(config)
}

/// The settings in the settings table's order (`config_file` first), whichever object
/// above each was written in.
fn in_settings_order(config: serde_json::Value) -> serde_json::Value {
    let serde_json::Value::Object(mut all) = config else {
        return config;
    };
    let mut ordered = serde_json::Map::new();
    for name in std::iter::once("config_file").chain(super::keys::setting_names()) {
        if let Some(value) = all.remove(name) {
            ordered.insert(name.to_string(), value);
        }
    }
    ordered.extend(all);
    serde_json::Value::Object(ordered)
}

/// The preset's data points and the tokens template (a further object, for the `json!`
/// recursion limit). The template is shown: the tokens it names are its public scheme.
fn preset_settings(plan: &Plan) -> serde_json::Map<String, serde_json::Value> {
    let template = plan.token_template.as_ref();
    let settings = json!({
        "datapoints": plan.payload.preset().and_then(|preset| preset.datapoints),
        "tokens_template": template.map(|t| t.template.as_str()),
        "tokens_start": template.map_or(0, |t| t.start),
    });
    match settings {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The gateway settings (a separate object, as the web UI's). Without `--gateway` the device
/// settings are unset: they mean nothing then.
fn gateway_settings(plan: &Plan) -> serde_json::Map<String, serde_json::Value> {
    let gateway = plan.gateway.as_ref();
    let settings = json!({
        "gateway": gateway.is_some(),
        "devices_per_gateway": gateway.map(|g| g.devices_per_gateway),
        "gateway_mode": gateway.map(|g| g.mode.name()),
        "device_name": gateway.map(|g| g.device_name.as_str()),
        "device_start": gateway.map(|g| g.device_start),
    });
    match settings {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The global rate's settings (`workload::rate`): the interval's place in the table, with
/// the defaults of its companions when no rate is set.
fn rate_settings(plan: &Plan) -> serde_json::Map<String, serde_json::Value> {
    let rate = plan.rate.as_ref();
    let settings = json!({
        "rate": rate.map(|r| r.messages_per_s),
        "rate_order": rate.map_or("sequential", |r| r.order.name()),
        "seed": rate.map_or(0, |r| r.seed),
        "alarms_per_second": rate.map_or(0, |r| r.alarms_per_s),
        "alarm_storm": rate.and_then(|r| r.alarm_storm).map(|storm| storm.to_string()),
    });
    match settings {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The protocol version and MQTT 5 settings (a second object: one `json!` of every setting
/// exceeds the macro's recursion limit).
fn mqtt_settings(plan: &Plan) -> serde_json::Value {
    json!({
        "mqtt_version": plan.mqtt_version.label(),
        "clean_start": plan.clean_start,
        "session_expiry": plan.v5.session_expiry_s,
        "receive_maximum": plan.v5.receive_maximum,
        "maximum_packet_size": plan.v5.maximum_packet_size,
        "topic_alias_maximum": plan.v5.topic_alias_maximum,
        "request_problem_info": plan.v5.request_problem_information,
        "connect_properties": pairs(&plan.v5.connect_user_properties),
        "topic_alias": plan.v5.topic_alias,
        "message_expiry": plan.v5.message_expiry_s,
        "content_type": plan.v5.content_type,
        "payload_format": plan.v5.payload_format_indicator.map(|f| if f == 1 { "utf8" } else { "bytes" }),
        "user_properties": pairs(&plan.v5.user_properties),
        "no_local": plan.v5.no_local,
        "retain_as_published": plan.v5.retain_as_published,
        "retain_handling": plan.v5.retain_handling,
        "subscription_id": plan.v5.subscription_identifier,
    })
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
        "worker": plan.worker.is_some(),
        "master_host": plan.worker.as_ref().map(|w| w.master_host.clone()),
        "master_port": plan.worker.as_ref().map(|w| w.master_port),
    });
    match settings {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The RPC responder's settings (apart, for the `json!` recursion limit); unset when off.
fn responder_settings(plan: &Plan) -> serde_json::Map<String, serde_json::Value> {
    let responder = plan.rpc_responder.as_ref();
    let mut settings = serde_json::Map::new();
    settings.insert("rpc_responder".into(), json!(responder.is_some()));
    settings.insert(
        "rpc_response_delay".into(),
        json!(responder.map(|r| format_duration(r.delay))),
    );
    settings.insert(
        "rpc_response".into(),
        json!(responder.map(|r| r.response.describe())),
    );
    settings
}

/// User properties as config.toml writes them: `["name=value", ...]`.
fn pairs(list: &[(String, String)]) -> Vec<String> {
    list.iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

/// `mqblast config`: the effective configuration as config.toml text, every setting in the
/// settings table's order, each with where its value came from; unset ones commented out.
/// Secrets stay redacted, as in the result file.
pub fn render_effective(plan: &Plan) -> String {
    let config = &plan.effective_config;
    let mut text = format!(
        "# mqblast {}: effective configuration (config file: {})\n",
        env!("CARGO_PKG_VERSION"),
        config["config_file"].as_str().unwrap_or("none")
    );
    for name in super::keys::setting_names() {
        let source = plan
            .sources
            .iter()
            .find(|source| source.name == name)
            .map_or("default", |source| source.place.as_str());
        let value = config.get(name).unwrap_or(&serde_json::Value::Null);
        let line = match (value, toml::Value::try_from(value)) {
            (serde_json::Value::Null, _) | (_, Err(_)) => format!("# {name} = (unset)"),
            (serde_json::Value::Array(items), _) if items.is_empty() => {
                format!("# {name} = (unset)")
            }
            (_, Ok(value)) => format!("{name} = {value}"),
        };
        text.push_str(&format!("{line:<48} # {source}\n"));
    }
    text
}
