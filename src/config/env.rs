//! The environment as two layers: `MQBLAST_*` (one variable per setting, named in the settings
//! table) and, below it, `LOCUST_*`, Locust's own variables read as Locust reads them, so a
//! Locust project's environment (`LOCUST_USERS=3`) means what it means to Locust. The
//! `MQBLAST_*` layer is above: it names the setting in mqblast's own words.

use super::keys::KEYS;
use super::layers::{Layer, Origin, Raw, RawValue};
use super::locust_keys::{map_key, Mapping, SILENCE};

/// Locust 2.47's environment variables and the option each sets (its `env_var=` in
/// locust/argument_parser.py; not every name is `LOCUST_` + the option: `LOCUST_MODE_WORKER`
/// is `--worker`, `LOCUST_MASTER_NODE_HOST` is `--master-host`).
pub(super) const LOCUST_ENV: &[(&str, &str)] = &[
    ("LOCUST_LOCUSTFILE", "locustfile"),
    ("LOCUST_HOST", "host"),
    ("LOCUST_USERS", "users"),
    ("LOCUST_SPAWN_RATE", "spawn-rate"),
    ("LOCUST_RUN_TIME", "run-time"),
    ("LOCUST_CONFIG_USERS", "config-users"),
    ("LOCUST_WEB_HOST", "web-host"),
    ("LOCUST_WEB_HOST_DISPLAY_NAME", "web-host-display-name"),
    ("LOCUST_WEB_PORT", "web-port"),
    ("LOCUST_HEADLESS", "headless"),
    ("LOCUST_AUTOSTART", "autostart"),
    ("LOCUST_AUTOQUIT", "autoquit"),
    ("LOCUST_HEADFUL", "headful"),
    ("LOCUST_WEB_AUTH", "web-auth"),
    ("LOCUST_WEB_LOGIN", "web-login"),
    ("LOCUST_TLS_CERT", "tls-cert"),
    ("LOCUST_TLS_KEY", "tls-key"),
    ("LOCUST_USERCLASS_PICKER", "class-picker"),
    ("LOCUST_BUILD_PATH", "build-path"),
    ("LOCUST_LEGACY_UI", "legacy-ui"),
    ("LOCUST_MODE_MASTER", "master"),
    ("LOCUST_MASTER_BIND_HOST", "master-bind-host"),
    ("LOCUST_MASTER_BIND_PORT", "master-bind-port"),
    ("LOCUST_EXPECT_WORKERS", "expect-workers"),
    ("LOCUST_EXPECT_WORKERS_MAX_WAIT", "expect-workers-max-wait"),
    ("LOCUST_MODE_WORKER", "worker"),
    ("LOCUST_PROCESSES", "processes"),
    ("LOCUST_MASTER_NODE_HOST", "master-host"),
    ("LOCUST_MASTER_NODE_PORT", "master-port"),
    ("LOCUST_WEB_BASE_PATH", "web-base-path"),
    ("LOCUST_TAGS", "tags"),
    ("LOCUST_EXCLUDE_TAGS", "exclude-tags"),
    ("LOCUST_CSV", "csv"),
    ("LOCUST_CSV_FULL_HISTORY", "csv-full-history"),
    ("LOCUST_PRINT_STATS", "print-stats"),
    ("LOCUST_ONLY_SUMMARY", "only-summary"),
    ("LOCUST_RESET_STATS", "reset-stats"),
    ("LOCUST_HTML", "html"),
    ("LOCUST_SKIP_LOG_SETUP", "skip-log-setup"),
    ("LOCUST_LOGLEVEL", "loglevel"),
    ("LOCUST_LOGFILE", "logfile"),
    ("LOCUST_EXIT_CODE_ON_ERROR", "exit-code-on-error"),
    ("LOCUST_STOP_TIMEOUT", "stop-timeout"),
    ("LOCUST_ENABLE_OPENTELEMETRY", "otel"),
];

/// An environment variable, treating an empty value as unset.
pub(super) fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|value| !value.is_empty())
}

/// `MQBLAST_*`: every setting's variable. Empty is unset, except where the settings table
/// says an empty value is a value (to be refused).
pub(super) fn mqblast_layer(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    let mut layer = Layer::default();
    for key in KEYS {
        let value = match key.empty_env_is_a_value {
            true => env(key.env),
            false => env_value(env, key.env),
        };
        if let Some(value) = value {
            layer.set(Raw {
                key,
                origin: Origin::Env,
                value: RawValue::Text(value),
            });
        }
    }
    layer
}

/// `LOCUST_*`: Locust's variables that are set and not empty, each mapped as the same key in
/// `[tool.locust]` or locust.conf would be, with the same note when mqblast has no use for it.
pub(super) fn locust_layer(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    let mut layer = Layer::default();
    for &(var, option) in LOCUST_ENV {
        let Some(value) = env_value(env, var) else {
            continue;
        };
        match map_key(option, &toml::Value::String(value)) {
            Mapping::Setting(key, value) => layer.set(Raw {
                key,
                origin: Origin::LocustEnv(var),
                value,
            }),
            Mapping::Note(note) => {
                layer.note(option, format!("mqblast: note: {var}: {note}{SILENCE}"))
            }
            Mapping::Unknown => {}
        }
    }
    layer
}
