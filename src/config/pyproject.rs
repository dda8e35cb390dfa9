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
use super::keys::Key;
use super::layers::{Layer, Note, Origin, Raw, RawValue};
pub(super) use super::locust_keys::{locust_value, map_key, Mapping};
use super::{invalid, ConfigError, Context};

/// Read from the working directory, as Locust does.
pub const PYPROJECT_FILE: &str = "pyproject.toml";

/// The `[tool.locust]` settings mqblast uses, each with its line, and the notes for the rest.
pub(super) struct Pyproject {
    pub(super) path: PathBuf,
    /// setting name -> (key as written, line, value as Locust reads it)
    entries: BTreeMap<&'static str, (String, usize, RawValue)>,
    /// One line per key that was accepted but not used, or not known.
    pub(super) notes: Vec<Note>,
}

#[derive(Deserialize)]
struct Document {
    tool: Option<Tools>,
}

#[derive(Deserialize)]
struct Tools {
    locust: Option<BTreeMap<String, toml::Spanned<toml::Value>>>,
}

impl Pyproject {
    /// The table's settings and notes as a layer.
    pub(super) fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        for name in self.entries.keys() {
            if let Some(raw) = super::keys::find_key(name).and_then(|key| self.get(key)) {
                layer.set(raw);
            }
        }
        for note in &self.notes {
            layer.note(&note.key, note.line.clone());
        }
        layer
    }

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
            Mapping::Note(note) => self.notes.push(Note {
                key: written_key.to_string(),
                line: format!("mqblast: note: {at}: {note}{}", super::locust_keys::SILENCE),
            }),
            Mapping::Unknown => self.notes.push(Note {
                key: written_key.to_string(),
                line: format!(
                    "mqblast: warning: {at}: not a Locust option mqblast knows; ignored{}",
                    super::locust_keys::SILENCE
                ),
            }),
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

#[cfg(test)]
mod tests {
    use super::super::keys::find_key;
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
            .line
            .contains("line 2: [tool.locust] locustfile: mqblast runs no locustfile"));
        assert!(pyproject.notes[1].line.contains("--shard"));
        assert!(pyproject.notes[2]
            .line
            .starts_with("mqblast: warning: pyproject.toml line 4"));
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
