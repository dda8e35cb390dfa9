//! The settings table: one row per setting naming its config key, flag, environment variable
//! and default, so the four sources cannot drift apart (and tests check the docs against it).

#[derive(Debug)]
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) flag: &'static str,
    pub(super) env: &'static str,
    /// Parsed like any other value; None when the default is "unset" or computed.
    pub(super) default: Option<&'static str>,
    /// Never echoed in messages.
    pub(super) secret: bool,
    /// An empty environment variable is a value (to be refused), not "unset": where unset
    /// has a meaning of its own that an empty value must not select by accident.
    pub(super) empty_env_is_a_value: bool,
    /// A duration whose bare number (seconds) above [`BARE_SECONDS_MAX`] is refused as a likely
    /// millisecond count (see `Raw::duration`).
    pub(super) bare_seconds_capped: bool,
}

/// Largest bare number of seconds a [`Key::bare_seconds_capped`] duration accepts: an hour.
/// Timeouts, intervals and keep-alives longer than that are written with a unit (`2h`).
pub(super) const BARE_SECONDS_MAX: u64 = 3600;

const fn key(name: &'static str, flag: &'static str, env: &'static str) -> Key {
    Key {
        name,
        flag,
        env,
        default: None,
        secret: false,
        empty_env_is_a_value: false,
        bare_seconds_capped: false,
    }
}

const fn with_default(mut key: Key, default: &'static str) -> Key {
    key.default = Some(default);
    key
}

const fn secret(mut key: Key) -> Key {
    key.secret = true;
    key
}

/// Not for `run_time` (`-t 7200` is a normal two-hour Locust run) nor for settings whose
/// natural unit is whole seconds (`keep_alive` up to MQTT's 65535, `session_expiry = 86400`,
/// `autoquit`).
const fn bare_seconds_capped(mut key: Key) -> Key {
    key.bare_seconds_capped = true;
    key
}

const fn empty_env_is_a_value(mut key: Key) -> Key {
    key.empty_env_is_a_value = true;
    key
}

/// Every setting, in config.toml order of documentation.
pub(super) const KEYS: &[Key] = &[
    // Unset means "start the embedded broker"; `MQBLAST_HOST=` must not mean that.
    empty_env_is_a_value(key("host", "--host", "MQBLAST_HOST")),
    with_default(key("users", "--users", "MQBLAST_USERS"), "10"),
    with_default(
        key("spawn_rate", "--spawn-rate", "MQBLAST_SPAWN_RATE"),
        "10",
    ),
    key("run_time", "--run-time", "MQBLAST_RUN_TIME"),
    key("messages", "--messages", "MQBLAST_MESSAGES"),
    with_default(key("qos", "--qos", "MQBLAST_QOS"), "1"),
    with_default(
        key("topic", "--topic", "MQBLAST_TOPIC"),
        "v1/devices/me/telemetry",
    ),
    key("payload", "--payload", "MQBLAST_PAYLOAD"),
    // Unset means the preset's own default (60); only `industrial-plc` takes it.
    key("datapoints", "--datapoints", "MQBLAST_DATAPOINTS"),
    bare_seconds_capped(with_default(
        key("interval", "--interval", "MQBLAST_INTERVAL"),
        "1s",
    )),
    key("stream", "--stream", "MQBLAST_STREAM"),
    key("rate", "--rate", "MQBLAST_RATE"),
    with_default(
        key("rate_order", "--rate-order", "MQBLAST_RATE_ORDER"),
        "sequential",
    ),
    with_default(key("seed", "--seed", "MQBLAST_SEED"), "0"),
    with_default(
        key(
            "alarms_per_second",
            "--alarms-per-second",
            "MQBLAST_ALARMS_PER_SECOND",
        ),
        "0",
    ),
    key("alarm_storm", "--alarm-storm", "MQBLAST_ALARM_STORM"),
    with_default(
        key("max_inflight", "--max-inflight", "MQBLAST_MAX_INFLIGHT"),
        "16",
    ),
    bare_seconds_capped(with_default(
        key("timeout", "--timeout", "MQBLAST_TIMEOUT"),
        "10s",
    )),
    secret(key("tokens", "--tokens", "MQBLAST_TOKENS")),
    key("tokens_file", "--tokens-file", "MQBLAST_TOKENS_FILE"),
    key(
        "tokens_template",
        "--tokens-template",
        "MQBLAST_TOKENS_TEMPLATE",
    ),
    with_default(
        key("tokens_start", "--tokens-start", "MQBLAST_TOKENS_START"),
        "0",
    ),
    with_default(
        key("client_id", "--client-id", "MQBLAST_CLIENT_ID"),
        "mqblast-{i}",
    ),
    key("username", "--username", "MQBLAST_USERNAME"),
    secret(key("password", "--password", "MQBLAST_PASSWORD")),
    with_default(
        key("keep_alive", "--keep-alive", "MQBLAST_KEEP_ALIVE"),
        "60s",
    ),
    key("threads", "--threads", "MQBLAST_THREADS"),
    with_default(key("pin", "--pin", "MQBLAST_PIN"), "owned"),
    with_default(
        key("only_summary", "--only-summary", "MQBLAST_ONLY_SUMMARY"),
        "false",
    ),
    bare_seconds_capped(with_default(
        key("stop_timeout", "--stop-timeout", "MQBLAST_STOP_TIMEOUT"),
        "10s",
    )),
    key("json", "--json", "MQBLAST_JSON"),
    with_default(
        key("request_type", "--request-type", "MQBLAST_REQUEST_TYPE"),
        "MQTT",
    ),
    key("shard", "--shard", "MQBLAST_SHARD"),
    key("start_at", "--start-at", "MQBLAST_START_AT"),
    key("csv", "--csv", "MQBLAST_CSV"),
    with_default(
        key(
            "csv_full_history",
            "--csv-full-history",
            "MQBLAST_CSV_FULL_HISTORY",
        ),
        "false",
    ),
    key("hlog", "--hlog", "MQBLAST_HLOG"),
    key("html", "--html", "MQBLAST_HTML"),
    key("bind", "--bind", "MQBLAST_BIND"),
    key("connect_rate", "--connect-rate", "MQBLAST_CONNECT_RATE"),
    with_default(key("sub_users", "--sub-users", "MQBLAST_SUB_USERS"), "0"),
    key("sub_topic", "--sub-topic", "MQBLAST_SUB_TOPIC"),
    key("sub_qos", "--sub-qos", "MQBLAST_SUB_QOS"),
    with_default(key("e2e", "--e2e", "MQBLAST_E2E"), "false"),
    key("verify", "--verify", "MQBLAST_VERIFY"),
    bare_seconds_capped(with_default(
        key("drain_timeout", "--drain-timeout", "MQBLAST_DRAIN_TIMEOUT"),
        "2s",
    )),
    bare_seconds_capped(with_default(
        key("drain_max", "--drain-max", "MQBLAST_DRAIN_MAX"),
        "60s",
    )),
    with_default(
        key("reconnect", "--reconnect", "MQBLAST_RECONNECT"),
        "false",
    ),
    bare_seconds_capped(key("churn", "--churn", "MQBLAST_CHURN")),
    key("cafile", "--cafile", "MQBLAST_CAFILE"),
    with_default(key("insecure", "--insecure", "MQBLAST_INSECURE"), "false"),
    key(
        "tls_server_name",
        "--tls-server-name",
        "MQBLAST_TLS_SERVER_NAME",
    ),
    key("alpn", "--alpn", "MQBLAST_ALPN"),
    key("cert", "--cert", "MQBLAST_CERT"),
    key("key", "--key", "MQBLAST_KEY"),
    key("cert_dir", "--cert-dir", "MQBLAST_CERT_DIR"),
    with_default(
        key("cert_name", "--cert-name", "MQBLAST_CERT_NAME"),
        "device-{i}.pem",
    ),
    with_default(
        key("key_name", "--key-name", "MQBLAST_KEY_NAME"),
        "device-{i}.key",
    ),
    with_default(
        key("tls_resume", "--tls-resume", "MQBLAST_TLS_RESUME"),
        "true",
    ),
    with_default(key("ws_path", "--ws-path", "MQBLAST_WS_PATH"), "/mqtt"),
    with_default(
        key("mqtt_version", "--mqtt-version", "MQBLAST_MQTT_VERSION"),
        "3.1.1",
    ),
    key("clean_start", "--clean-start", "MQBLAST_CLEAN_START"),
    key(
        "session_expiry",
        "--session-expiry",
        "MQBLAST_SESSION_EXPIRY",
    ),
    key(
        "receive_maximum",
        "--receive-maximum",
        "MQBLAST_RECEIVE_MAXIMUM",
    ),
    key(
        "maximum_packet_size",
        "--maximum-packet-size",
        "MQBLAST_MAXIMUM_PACKET_SIZE",
    ),
    key(
        "topic_alias_maximum",
        "--topic-alias-maximum",
        "MQBLAST_TOPIC_ALIAS_MAXIMUM",
    ),
    key(
        "request_problem_info",
        "--request-problem-info",
        "MQBLAST_REQUEST_PROBLEM_INFO",
    ),
    key(
        "connect_properties",
        "--connect-properties",
        "MQBLAST_CONNECT_PROPERTIES",
    ),
    key("topic_alias", "--topic-alias", "MQBLAST_TOPIC_ALIAS"),
    key(
        "message_expiry",
        "--message-expiry",
        "MQBLAST_MESSAGE_EXPIRY",
    ),
    key("content_type", "--content-type", "MQBLAST_CONTENT_TYPE"),
    key(
        "payload_format",
        "--payload-format",
        "MQBLAST_PAYLOAD_FORMAT",
    ),
    key(
        "user_properties",
        "--user-properties",
        "MQBLAST_USER_PROPERTIES",
    ),
    key("no_local", "--no-local", "MQBLAST_NO_LOCAL"),
    key(
        "retain_as_published",
        "--retain-as-published",
        "MQBLAST_RETAIN_AS_PUBLISHED",
    ),
    key(
        "retain_handling",
        "--retain-handling",
        "MQBLAST_RETAIN_HANDLING",
    ),
    key(
        "subscription_id",
        "--subscription-id",
        "MQBLAST_SUBSCRIPTION_ID",
    ),
    with_default(key("headless", "--headless", "MQBLAST_HEADLESS"), "true"),
    with_default(
        key("web_host", "--web-host", "MQBLAST_WEB_HOST"),
        "127.0.0.1",
    ),
    with_default(key("web_port", "--web-port", "MQBLAST_WEB_PORT"), "8089"),
    secret(key("web_auth", "--web-auth", "MQBLAST_WEB_AUTH")),
    with_default(
        key("autostart", "--autostart", "MQBLAST_AUTOSTART"),
        "false",
    ),
    key("autoquit", "--autoquit", "MQBLAST_AUTOQUIT"),
    with_default(key("worker", "--worker", "MQBLAST_WORKER"), "false"),
    with_default(
        key("master_host", "--master-host", "MQBLAST_MASTER_HOST"),
        "127.0.0.1",
    ),
    with_default(
        key("master_port", "--master-port", "MQBLAST_MASTER_PORT"),
        "5557",
    ),
    with_default(key("gateway", "--gateway", "MQBLAST_GATEWAY"), "false"),
    with_default(
        key(
            "devices_per_gateway",
            "--devices-per-gateway",
            "MQBLAST_DEVICES_PER_GATEWAY",
        ),
        "10",
    ),
    with_default(
        key("gateway_mode", "--gateway-mode", "MQBLAST_GATEWAY_MODE"),
        "per-point",
    ),
    with_default(
        key("device_name", "--device-name", "MQBLAST_DEVICE_NAME"),
        crate::workload::gateway::DEFAULT_DEVICE_NAME,
    ),
    with_default(
        key("device_start", "--device-start", "MQBLAST_DEVICE_START"),
        "0",
    ),
    with_default(
        key("rpc_responder", "--rpc-responder", "MQBLAST_RPC_RESPONDER"),
        "false",
    ),
    bare_seconds_capped(with_default(
        key(
            "rpc_response_delay",
            "--rpc-response-delay",
            "MQBLAST_RPC_RESPONSE_DELAY",
        ),
        "0s",
    )),
    key("rpc_response", "--rpc-response", "MQBLAST_RPC_RESPONSE"),
];

pub(super) fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// The durations whose bare numbers are capped at [`BARE_SECONDS_MAX`], for the message.
pub(super) fn bare_seconds_capped_names() -> Vec<&'static str> {
    KEYS.iter()
        .filter(|key| key.bare_seconds_capped)
        .map(|key| key.name)
        .collect()
}

/// The names of every setting, for "unknown setting" messages and documentation tests.
pub fn setting_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|key| key.name)
}

/// The environment variable of every setting, in documentation order.
pub fn env_var_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|key| key.env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;

    #[test]
    fn the_shipped_config_toml_documents_every_setting_and_env_var() {
        for key in KEYS {
            let plain = format!("\n{} = ", key.name);
            let commented = format!("\n# {} = ", key.name);
            assert!(
                DEFAULT_CONFIG.contains(&plain) || DEFAULT_CONFIG.contains(&commented),
                "{} missing from config.toml",
                key.name
            );
            assert!(DEFAULT_CONFIG.contains(key.env), "{} undocumented", key.env);
            assert!(
                DEFAULT_CONFIG.contains(key.flag),
                "{} undocumented",
                key.flag
            );
        }
    }

    #[test]
    fn the_settings_guide_documents_every_setting_and_env_var() {
        let guide = include_str!("../../docs/CONFIG.md");
        for key in KEYS {
            assert!(
                guide.contains(&format!("`{}", key.name)),
                "{} undocumented",
                key.name
            );
            assert!(guide.contains(key.env), "{} undocumented", key.env);
            assert!(guide.contains(key.flag), "{} undocumented", key.flag);
        }
    }
}
