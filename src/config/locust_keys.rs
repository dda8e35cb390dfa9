//! What a Locust option (a `[tool.locust]` key, a `locust.conf` key, a `LOCUST_*` variable, a
//! Locust flag) means to mqblast: a setting, or a note saying what mqblast does instead. Shared
//! by every Locust source so they all read a key alike and say the same thing about it.

use super::keys::{find_key, Key};
use super::layers::RawValue;

/// The end of every note about a Locust key mqblast does not use: how to stop seeing it.
pub(super) const SILENCE: &str = " (to silence this, list it under \"# Not used:\" in config.toml, as `mqblast init --from-locust` does)";

/// What a Locust key becomes.
pub(super) enum Mapping {
    /// Sets this setting, with this value.
    Setting(&'static Key, RawValue),
    /// Accepted, not used: why, and what mqblast does instead.
    Note(String),
    /// Not a Locust option mqblast knows.
    Unknown,
}

/// The value as Locust's config parser hands it on: lists as they are, anything else as its
/// Python `str()` (so booleans are "True"/"False", and `1` is "1").
pub(super) fn locust_value(value: &toml::Value) -> RawValue {
    match value {
        toml::Value::Array(_) => RawValue::Toml(value.clone()),
        toml::Value::String(text) => RawValue::Text(text.clone()),
        toml::Value::Boolean(true) => RawValue::Text("True".to_string()),
        toml::Value::Boolean(false) => RawValue::Text("False".to_string()),
        other => RawValue::Text(other.to_string()),
    }
}

/// Which setting a `[tool.locust]` key sets, or why it sets none.
pub(super) fn map_key(written_key: &str, value: &toml::Value) -> Mapping {
    let value = locust_value(value);
    match written_key {
        // Locust's --json-file NAME writes NAME.json; our `json` is the file name itself.
        "json-file" => match (&value, find_key("json")) {
            (RawValue::Text(name), Some(key)) => {
                Mapping::Setting(key, RawValue::Text(format!("{name}.json")))
            }
            _ => Mapping::Unknown,
        },
        // Locust's "never quit" is what an unset autoquit means here.
        "autoquit" if matches!(&value, RawValue::Text(text) if text.trim() == "-1") => {
            Mapping::Note("-1 (never quit) is mqblast's default: left unset".to_string())
        }
        "host" if is_http_address(&value) => Mapping::Note(
            "an HTTP address is not an MQTT broker; ignored (set host in config.toml or with --host)"
                .to_string(),
        ),
        _ => match locust_only_note(written_key) {
            Some(note) => Mapping::Note(note.to_string()),
            None => match find_key(&written_key.replace('-', "_")) {
                Some(key) => Mapping::Setting(key, value),
                None => Mapping::Unknown,
            },
        },
    }
}

fn is_http_address(value: &RawValue) -> bool {
    matches!(value, RawValue::Text(text)
        if text.starts_with("http://") || text.starts_with("https://"))
}

/// What mqblast does instead of a Locust option that has no meaning for it; None for every
/// other key. Shared by `[tool.locust]` keys and the command line (`--master` ...).
pub(super) fn locust_only_note(name: &str) -> Option<&'static str> {
    const NO_MASTER: &str = "mqblast is not a Locust master: run `locust --master -f scripts/locust/mqblast_master.py` and join it with `mqblast --worker --master-host HOST` on each generator host (or --shard K/N and `mqblast merge` without a master)";
    const NO_USER_CLASSES: &str = "mqblast has no Python user classes or tasks: every user connects and publishes what config.toml describes";
    Some(match name {
        "locustfile" => "mqblast runs no locustfile: its users publish what config.toml describes (`mqblast init --from-locust` turns config.py into config.toml)",
        "config" => "a Locust config file names no other config file here: give it with --config FILE.conf",
        "master" | "master-bind-host" | "master-bind-port" | "expect-workers"
        | "expect-workers-max-wait" | "enable-rebalancing" => NO_MASTER,
        "processes" => "mqblast uses every core from one process (--threads N / threads = N sets how many)",
        "tags" | "exclude-tags" | "class-picker" | "config-users" | "list" | "show-task-ratio"
        | "show-task-ratio-json" | "equal-weights" => NO_USER_CLASSES,
        "loglevel" | "logfile" | "skip-log-setup" => "mqblast has no log levels: errors go to stderr, results to --json/--csv/--html",
        "reset-stats" => "mqblast does not reset statistics after the ramp-up: connect latency is reported apart from publish latency",
        "exit-code-on-error" => "mqblast exits 1 when any failure was recorded, 2 for bad usage",
        "print-stats" => "mqblast prints the statistics table every 2 s unless --only-summary",
        "json" => "mqblast does not print JSON to stdout: --json FILE (json = FILE) writes the summary to FILE",
        "json-file" => "mqblast writes the JSON summary with --json NAME.json (json = \"NAME.json\")",
        "headful" => "mqblast runs headless unless --web (headless = false)",
        "modern-ui" | "legacy-ui" | "web-login" | "web-base-path" | "web-host-display-name"
        | "tls-cert" | "tls-key" | "build-path" => "mqblast's web UI has no such option; ignored",
        "profile" | "otel" => "mqblast has no such option; its result file records the run",
        _ => return None,
    })
}
