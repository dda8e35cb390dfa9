//! pyproject.toml's `[tool.locust]` table, read the way Locust reads it, so that a Locust
//! project's settings (users, spawn rate, run time, reports) work as they are. It is the layer
//! below config.toml: defaults < pyproject.toml < config.toml < MQBLAST_* < flags.
//!
//! As Locust (configargparse) does, every value but a list is taken as its Python `str()`:
//! `only-summary = 1` is "1", which is true; `headless = true` is "True", also true. A key
//! whose dashed name is a setting's name (`spawn-rate` -> `spawn_rate`) sets it; Locust keys
//! that mean nothing to mqblast (`locustfile`, `expect-workers`, ...) are accepted with one
//! note each saying what mqblast does instead.
//!
//! Unknown keys are a warning, not an error. Locust refuses them ("unrecognized arguments"),
//! but a locustfile may add its own options (`events.init_command_line_parser`) and set them
//! here; those are legitimate in the file and mqblast cannot know them.
//!
//! A pyproject.toml that is not valid TOML is an error (file, line, column) only when its text
//! has a `[tool.locust]` table: anyone else's broken pyproject.toml is not mqblast's to judge,
//! and a run must not fail because a neighbouring tool's file is being edited.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::file::{line_of, toml_error};
use super::keys::{find_key, Key};
use super::layers::{Origin, Raw, RawValue};
use super::{invalid, ConfigError, Context};

/// Read from the working directory, as Locust does.
pub const PYPROJECT_FILE: &str = "pyproject.toml";

/// The `[tool.locust]` settings mqblast uses, each with its line, and the notes for the rest.
pub(super) struct Pyproject {
    pub(super) path: PathBuf,
    /// setting name -> (key as written, line, value as Locust reads it)
    entries: BTreeMap<&'static str, (String, usize, RawValue)>,
    /// One line per key that was accepted but not used, or not known.
    pub(super) notes: Vec<String>,
}

#[derive(Deserialize)]
struct Document {
    tool: Option<Tools>,
}

#[derive(Deserialize)]
struct Tools {
    locust: Option<BTreeMap<String, toml::Spanned<toml::Value>>>,
}

/// What a `[tool.locust]` key becomes.
pub(super) enum Mapping {
    /// Sets this setting, with this value.
    Setting(&'static Key, RawValue),
    /// Accepted, not used: why, and what mqblast does instead.
    Note(String),
    /// Not a Locust option mqblast knows.
    Unknown,
}

impl Pyproject {
    pub(super) fn get(&self, key: &'static Key) -> Option<Raw> {
        let (written_key, line, value) = self.entries.get(key.name)?;
        Some(Raw {
            key,
            origin: Origin::Pyproject {
                path: self.path.clone(),
                line: *line,
                written_key: written_key.clone(),
            },
            value: value.clone(),
        })
    }

    /// The table read from `text`; None when there is no `[tool.locust]` table, or when the
    /// file is broken but has none (see the module comment).
    pub(super) fn parse(path: PathBuf, text: &str) -> Result<Option<Pyproject>, ConfigError> {
        let table = match locust_table(text) {
            Ok(Some(table)) => table,
            Ok(None) => return Ok(None),
            Err(err) if mentions_tool_locust(text) => return Err(toml_error(&path, text, &err)),
            Err(_) => return Ok(None),
        };
        let mut pyproject = Pyproject {
            path,
            entries: BTreeMap::new(),
            notes: Vec::new(),
        };
        for (written_key, line, value) in table {
            pyproject.add(&written_key, line, &value)?;
        }
        Ok(Some(pyproject))
    }

    fn add(
        &mut self,
        written_key: &str,
        line: usize,
        value: &toml::Value,
    ) -> Result<(), ConfigError> {
        let at = format!(
            "{} line {line}: [tool.locust] {written_key}",
            self.path.display()
        );
        match map_key(written_key, value) {
            Mapping::Setting(key, value) => {
                if let Some((first, first_line, _)) = self.entries.get(key.name) {
                    return Err(invalid(format!(
                        "{at}: sets {} again (also as {first} on line {first_line})",
                        key.name
                    )));
                }
                self.entries
                    .insert(key.name, (written_key.to_string(), line, value));
            }
            Mapping::Note(note) => self.notes.push(format!("mqblast: note: {at}: {note}")),
            Mapping::Unknown => self.notes.push(format!(
                "mqblast: warning: {at}: not a Locust option mqblast knows; ignored"
            )),
        }
        Ok(())
    }
}

/// A `[tool.locust]` key as written, its line and its value.
pub(super) type LocustEntry = (String, usize, toml::Value);

/// The `[tool.locust]` entries in file order, with their lines; Err when the TOML is broken.
pub(super) fn locust_table(text: &str) -> Result<Option<Vec<LocustEntry>>, toml::de::Error> {
    let document: Document = toml::from_str(text)?;
    let Some(table) = document.tool.and_then(|tool| tool.locust) else {
        return Ok(None);
    };
    let mut entries: Vec<LocustEntry> = table
        .into_iter()
        .map(|(key, value)| {
            let line = line_of(text, value.span().start);
            (key, line, value.into_inner())
        })
        .collect();
    entries.sort_by_key(|(_, line, _)| *line);
    Ok(Some(entries))
}

/// Whether a line of `text` opens the `[tool.locust]` table (or a table inside it).
fn mentions_tool_locust(text: &str) -> bool {
    text.lines().any(|line| {
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        compact.starts_with("[tool.locust]") || compact.starts_with("[tool.locust.")
    })
}

/// `pyproject.toml` in the working directory, if it exists and has a `[tool.locust]` table.
pub(super) fn load_pyproject(ctx: &Context) -> Result<Option<Pyproject>, ConfigError> {
    let path = ctx.cwd.join(PYPROJECT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(invalid(format!("{}: {err}", path.display()))),
    };
    Pyproject::parse(path, &text)
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
        "config" => "mqblast reads config.toml (or -f FILE), not a Locust config file",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Pyproject>, ConfigError> {
        Pyproject::parse(PathBuf::from("pyproject.toml"), text)
    }

    #[test]
    fn values_are_read_as_locust_reads_them() {
        let text =
            "[tool.locust]\nonly-summary = 1\nheadless = true\nusers = 20\nspawn-rate = 2.5\n";
        let pyproject = parse(text).unwrap().unwrap();
        let text_of = |name: &str| match pyproject.get(find_key(name).unwrap()).unwrap().value {
            RawValue::Text(text) => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(text_of("only_summary"), "1");
        assert_eq!(text_of("headless"), "True");
        assert_eq!(text_of("users"), "20");
        assert_eq!(text_of("spawn_rate"), "2.5");
        let raw = pyproject.get(find_key("only_summary").unwrap()).unwrap();
        assert!(raw.boolean().unwrap());
        assert_eq!(
            raw.describe(),
            "pyproject.toml line 2: [tool.locust] only-summary = 1"
        );
    }

    #[test]
    fn a_pyproject_without_a_locust_table_is_ignored() {
        assert!(parse("[project]\nname = \"x\"\n").unwrap().is_none());
        assert!(parse("[tool.black]\nline-length = 100\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_broken_pyproject_is_an_error_only_when_it_has_a_locust_table() {
        assert!(parse("[project\nname = 1\n").unwrap().is_none());
        let err = parse("[tool.locust]\nusers = = 3\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("pyproject.toml line 2"), "{err}");
    }

    #[test]
    fn locust_only_keys_get_one_note_each_and_unknown_keys_a_warning() {
        let text = "[tool.locust]\nlocustfile = \"mqtt.py\"\nexpect-workers = 4\nmy-option = 1\n";
        let pyproject = parse(text).unwrap().unwrap();
        assert_eq!(pyproject.notes.len(), 3, "{:?}", pyproject.notes);
        assert!(pyproject.notes[0]
            .contains("line 2: [tool.locust] locustfile: mqblast runs no locustfile"));
        assert!(pyproject.notes[1].contains("--shard"));
        assert!(pyproject.notes[2].starts_with("mqblast: warning: pyproject.toml line 4"));
        assert!(pyproject.entries.is_empty());
    }

    #[test]
    fn json_file_is_locusts_name_plus_json() {
        let pyproject = parse("[tool.locust]\njson-file = \"out/stats\"\njson = true\n")
            .unwrap()
            .unwrap();
        let raw = pyproject.get(find_key("json").unwrap()).unwrap();
        assert_eq!(raw.text().unwrap(), "out/stats.json");
        assert_eq!(pyproject.notes.len(), 1);
    }

    #[test]
    fn autoquit_minus_one_means_never_as_in_locust() {
        let pyproject = parse("[tool.locust]\nautoquit = -1\n").unwrap().unwrap();
        assert!(pyproject.get(find_key("autoquit").unwrap()).is_none());
        assert_eq!(pyproject.notes.len(), 1);
    }

    #[test]
    fn an_http_host_is_not_taken_as_the_broker() {
        let pyproject = parse("[tool.locust]\nhost = \"http://tb:8080\"\n")
            .unwrap()
            .unwrap();
        assert!(pyproject.get(find_key("host").unwrap()).is_none());
        assert_eq!(pyproject.notes.len(), 1);
    }
}
