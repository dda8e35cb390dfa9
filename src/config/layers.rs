//! The layers, merged per setting: every source (flags, the environment, config.toml,
//! pyproject.toml, Locust's config files) yields the same [`Layer`], and [`Layers`] stacks them
//! in precedence order; nothing here knows how a source is read. A value keeps its origin
//! ([`Raw`]) until it is parsed, so every error can say where it came from.
//!
//! The order, lowest first, is Locust's own among Locust's sources, with mqblast's around it:
//! defaults < ~/.locust.conf < ./locust.conf < pyproject.toml [tool.locust] < a Locust config
//! file named by `--config FILE.conf` < mqblast's config file (config.toml) < `LOCUST_*`
//! environment < `MQBLAST_*` environment < command line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{find_key, Key, BARE_SECONDS_MAX};
use super::values::{check_mqtt_string_len, check_no_nul, parse_duration, DURATION_FORMS};
use super::{invalid, ConfigError, Context};

/// Which of Locust's ini-style config files a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocustFile {
    /// `~/.locust.conf`
    Home,
    /// `./locust.conf`
    Cwd,
    /// `--config FILE.conf`
    Named,
}

/// Where a value came from; higher layers win.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Default,
    /// A Locust config file (`locust.conf` syntax); `written_key` as written (`spawn-rate`).
    LocustConf {
        which: LocustFile,
        path: PathBuf,
        line: usize,
        written_key: String,
    },
    /// A `LOCUST_*` environment variable (Locust's own name for it: `LOCUST_MODE_WORKER`).
    LocustEnv(&'static str),
    /// pyproject.toml's `[tool.locust]` table; `written_key` as Locust spells it (`spawn-rate`).
    Pyproject {
        path: PathBuf,
        line: usize,
        written_key: String,
    },
    File {
        path: PathBuf,
        line: usize,
        written_key: String,
    },
    Env,
    Cli,
}

impl Origin {
    /// The layer's rank in the precedence order (see the module comment).
    pub(super) fn layer(&self) -> u8 {
        match self {
            Origin::Default => 0,
            Origin::LocustConf {
                which: LocustFile::Home,
                ..
            } => 1,
            Origin::LocustConf {
                which: LocustFile::Cwd,
                ..
            } => 2,
            Origin::Pyproject { .. } => 3,
            Origin::LocustConf {
                which: LocustFile::Named,
                ..
            } => 4,
            Origin::File { .. } => 5,
            Origin::LocustEnv(_) => 6,
            Origin::Env => 7,
            Origin::Cli => 8,
        }
    }

    /// The layer, for the banner; None for a default.
    pub(super) fn source_layer(&self) -> Option<crate::plan::SourceLayer> {
        use crate::plan::SourceLayer;
        Some(match self {
            Origin::Default => return None,
            Origin::LocustConf { .. } => SourceLayer::LocustConf,
            Origin::Pyproject { .. } => SourceLayer::Pyproject,
            Origin::File { .. } => SourceLayer::ConfigFile,
            Origin::Env | Origin::LocustEnv(_) => SourceLayer::Env,
            Origin::Cli => SourceLayer::Flag,
        })
    }

    /// Short, for the start banner: `--users`, `MQBLAST_USERS`, `config.toml line 3`,
    /// `pyproject.toml line 5`, `locust.conf line 2`, `LOCUST_USERS`, `default`.
    pub(super) fn place(&self, key: &Key) -> String {
        match self {
            Origin::Default => "default".to_string(),
            Origin::Pyproject { path, line, .. }
            | Origin::File { path, line, .. }
            | Origin::LocustConf { path, line, .. } => {
                format!("{} line {line}", path.display())
            }
            Origin::LocustEnv(var) => var.to_string(),
            Origin::Env => key.env.to_string(),
            Origin::Cli => key.flag.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum RawValue {
    Text(String),
    Toml(toml::Value),
}

/// A setting's value as written, with its origin, before parsing.
#[derive(Debug, Clone)]
pub(super) struct Raw {
    pub(super) key: &'static Key,
    pub(super) origin: Origin,
    pub(super) value: RawValue,
}

impl Raw {
    /// How the user wrote it: `--qos 3`, `MQBLAST_QOS=3`, `config.toml line 7: qos = 3`.
    pub(super) fn describe(&self) -> String {
        let shown = match (&self.value, self.key.secret) {
            (_, true) => None,
            (RawValue::Text(text), false) if text.is_empty() => Some("\"\"".to_string()),
            (RawValue::Text(text), false) => Some(super::shown(text)),
            (RawValue::Toml(value), false) => Some(super::shown(&value.to_string())),
        };
        self.describe_showing(shown)
    }

    /// Where it came from, without the value: `--username`, `MQBLAST_USERNAME`,
    /// `config.toml line 7: username`. For values too long to echo in a one-line message.
    pub(super) fn source(&self) -> String {
        self.describe_showing(None)
    }

    fn describe_showing(&self, shown: Option<String>) -> String {
        match (&self.origin, shown) {
            (Origin::Cli, Some(text)) => format!("{} {text}", self.key.flag),
            (Origin::Cli, None) => self.key.flag.to_string(),
            (Origin::Env, Some(text)) => format!("{}={text}", self.key.env),
            (Origin::Env, None) => self.key.env.to_string(),
            (Origin::LocustEnv(var), Some(text)) => format!("{var}={text}"),
            (Origin::LocustEnv(var), None) => var.to_string(),
            (
                Origin::LocustConf {
                    path,
                    line,
                    written_key,
                    ..
                },
                shown,
            ) => match shown {
                Some(text) => format!("{} line {line}: {written_key} = {text}", path.display()),
                None => format!("{} line {line}: {written_key}", path.display()),
            },
            (
                Origin::Pyproject {
                    path,
                    line,
                    written_key,
                },
                shown,
            ) => match shown {
                Some(text) => format!(
                    "{} line {line}: [tool.locust] {written_key} = {text}",
                    path.display()
                ),
                None => format!(
                    "{} line {line}: [tool.locust] {written_key}",
                    path.display()
                ),
            },
            (
                Origin::File {
                    path,
                    line,
                    written_key,
                },
                shown,
            ) => match shown {
                Some(text) => format!("{} line {line}: {written_key} = {text}", path.display()),
                None => format!("{} line {line}: {written_key}", path.display()),
            },
            (Origin::Default, Some(text)) => format!("{} = {text} (default)", self.key.name),
            (Origin::Default, None) => format!("{} (default)", self.key.name),
        }
    }

    pub(super) fn fail(&self, problem: impl fmt::Display) -> ConfigError {
        invalid(format!("{}: {problem}", self.describe()))
    }

    /// [`Raw::fail`] naming only the source, not the value.
    pub(super) fn fail_at_source(&self, problem: impl fmt::Display) -> ConfigError {
        invalid(format!("{}: {problem}", self.source()))
    }

    /// The text, refused when longer than an MQTT string can be (the encoders' limit) or
    /// when it holds a NUL; the value is not echoed (a password, or an invisible NUL).
    pub(super) fn mqtt_string(&self) -> Result<String, ConfigError> {
        let text = self.text()?;
        check_mqtt_string_len(text.len())
            .map_err(|problem| self.fail_at_source(format!("is {problem}")))?;
        check_no_nul(&text).map_err(|problem| self.fail_at_source(problem))?;
        Ok(text)
    }

    /// Directory that relative paths in this value are relative to.
    pub(super) fn base_dir<'a>(&'a self, ctx: &'a Context) -> &'a Path {
        match &self.origin {
            Origin::File { path, .. } | Origin::Pyproject { path, .. } => {
                path.parent().unwrap_or(Path::new(""))
            }
            _ => &ctx.cwd,
        }
    }

    pub(super) fn text(&self) -> Result<String, ConfigError> {
        match &self.value {
            RawValue::Text(text) | RawValue::Toml(toml::Value::String(text)) => Ok(text.clone()),
            RawValue::Toml(_) => Err(self.fail("expected a string")),
        }
    }

    pub(super) fn whole(&self) -> Result<u64, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Integer(n)) => {
                u64::try_from(*n).map_err(|_| self.fail("must not be negative"))
            }
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                let text = self.text()?;
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| self.fail("expected a whole number"))
            }
            RawValue::Toml(_) => Err(self.fail("expected a whole number")),
        }
    }

    pub(super) fn float(&self) -> Result<f64, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Integer(n)) => Ok(*n as f64),
            RawValue::Toml(toml::Value::Float(x)) => Ok(*x),
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                let text = self.text()?;
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| self.fail("expected a number"))
            }
            RawValue::Toml(_) => Err(self.fail("expected a number")),
        }
    }

    pub(super) fn duration(&self) -> Result<Duration, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Integer(n)) => {
                let seconds = u64::try_from(*n).map_err(|_| self.fail(DURATION_FORMS))?;
                self.check_bare_seconds(&n.to_string(), seconds as f64)?;
                Ok(Duration::from_secs(seconds))
            }
            RawValue::Toml(toml::Value::Float(x)) => {
                self.check_bare_seconds(&x.to_string(), *x)?;
                Duration::try_from_secs_f64(*x).map_err(|_| self.fail(DURATION_FORMS))
            }
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                let text = self.text()?;
                let bare = text.trim();
                let is_number = |b: u8| b.is_ascii_digit() || b == b'.';
                if let (true, Ok(seconds)) = (bare.bytes().all(is_number), bare.parse::<f64>()) {
                    self.check_bare_seconds(bare, seconds)?;
                }
                parse_duration(&text).map_err(|problem| self.fail(problem))
            }
            RawValue::Toml(_) => Err(self.fail(DURATION_FORMS)),
        }
    }

    /// A bare number is seconds, as in Locust; for the settings marked in the table, one above
    /// [`BARE_SECONDS_MAX`] is far more likely milliseconds (`PUBLISH_TIMEOUT = 10000` in the
    /// old script) than hours, and is refused rather than silently waited out.
    fn check_bare_seconds(&self, written: &str, seconds: f64) -> Result<(), ConfigError> {
        if !self.key.bare_seconds_capped || seconds <= BARE_SECONDS_MAX as f64 {
            return Ok(());
        }
        Err(self.fail(format!(
            "a bare number is seconds: did you mean {written}ms? Write {written}ms, or {written}s \
             if seconds were meant (bare numbers above {BARE_SECONDS_MAX} are refused for {})",
            super::keys::bare_seconds_capped_names().join(", ")
        )))
    }

    pub(super) fn boolean(&self) -> Result<bool, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Boolean(b)) => Ok(*b),
            // Locust reads `only-summary = 1` as true; config.toml written from it may keep the 1.
            RawValue::Toml(toml::Value::Integer(n @ (0 | 1))) => Ok(*n == 1),
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                match self.text()?.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Ok(true),
                    "false" | "no" | "off" | "0" => Ok(false),
                    _ => Err(self.fail("expected true or false")),
                }
            }
            RawValue::Toml(_) => Err(self.fail("expected true or false")),
        }
    }

    /// A list: a TOML array of strings, or a comma-separated string. "" is the empty list.
    pub(super) fn list(&self) -> Result<Vec<String>, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.trim().to_string()),
                    _ => Err(self.fail("expected a list of strings")),
                })
                .collect(),
            _ => {
                let text = self.text()?;
                if text.trim().is_empty() {
                    return Ok(Vec::new());
                }
                Ok(text
                    .split(',')
                    .map(|item| item.trim().to_string())
                    .collect())
            }
        }
    }

    /// A path, relative to the config file's directory when it came from the file.
    pub(super) fn path(&self, ctx: &Context) -> Result<PathBuf, ConfigError> {
        let text = self.text()?;
        if text.trim().is_empty() {
            return Err(self.fail("expected a file name"));
        }
        Ok(resolve(self.base_dir(ctx), &text))
    }

    /// Whether the value means the built-in default, however it is written (`users = 10`,
    /// `keep_alive = "1m"` for "60s", `tokens = []` for unset), so the start banner names only
    /// the settings that change something.
    pub(super) fn equals_default(&self) -> bool {
        let Some(default) = self.key.default else {
            return matches!(&self.value, RawValue::Toml(toml::Value::Array(items)) if items.is_empty())
                || self.is_blank();
        };
        let default = Raw {
            key: self.key,
            origin: Origin::Default,
            value: RawValue::Text(default.to_string()),
        };
        if let (Ok(a), Ok(b)) = (self.boolean(), default.boolean()) {
            return a == b;
        }
        if let (Ok(a), Ok(b)) = (self.float(), default.float()) {
            return a == b;
        }
        if let (Ok(a), Ok(b)) = (self.duration(), default.duration()) {
            return a == b;
        }
        matches!((self.text(), default.text()), (Ok(a), Ok(b)) if a == b)
    }

    /// The empty string, which unsets optional settings (`--json ""`: no JSON file).
    pub(super) fn is_blank(&self) -> bool {
        matches!(&self.value, RawValue::Text(text) | RawValue::Toml(toml::Value::String(text)) if text.trim().is_empty())
    }
}

pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// A note about a key accepted but not used, or not known: printed once per key.
#[derive(Debug, Clone)]
pub(super) struct Note {
    /// The key as Locust names it (`expect-workers`), so that one key set in several places
    /// gets one note.
    pub(super) key: String,
    /// The line to print.
    pub(super) line: String,
}

/// One source's settings: what every source yields, whatever its syntax.
#[derive(Debug, Default)]
pub(super) struct Layer {
    values: BTreeMap<&'static str, Raw>,
    pub(super) notes: Vec<Note>,
}

impl Layer {
    /// Set a value; a later one for the same setting replaces it (the sources that refuse a
    /// repeated key do so before they get here).
    pub(super) fn set(&mut self, raw: Raw) {
        self.values.insert(raw.key.name, raw);
    }

    pub(super) fn get(&self, key: &Key) -> Option<&Raw> {
        self.values.get(key.name)
    }

    pub(super) fn note(&mut self, key: &str, line: String) {
        self.notes.push(Note {
            key: key.trim_start_matches('-').replace('_', "-"),
            line,
        });
    }
}

/// The layers, lowest precedence first, consulted per setting.
pub(super) struct Layers {
    stack: Vec<Layer>,
}

impl Layers {
    /// `stack` in precedence order, lowest first.
    pub(super) fn new(stack: Vec<Layer>) -> Layers {
        Layers { stack }
    }

    /// The winning value of a setting: the highest layer that sets it, else the default.
    pub(super) fn get(&self, name: &str) -> Option<Raw> {
        let key = find_key(name)?;
        if let Some(raw) = self.stack.iter().rev().find_map(|layer| layer.get(key)) {
            return Some(raw.clone());
        }
        key.default.map(|default| Raw {
            key,
            origin: Origin::Default,
            value: RawValue::Text(default.to_string()),
        })
    }

    /// The notes of every layer, one per key (the highest layer's), minus the keys in
    /// `acknowledged` (those config.toml lists as not used).
    pub(super) fn notes(&self, acknowledged: &[String]) -> Vec<String> {
        // The highest layer that notes a key keeps its note; printed lowest layer first.
        let mut winner: BTreeMap<&str, usize> = BTreeMap::new();
        for (rank, layer) in self.stack.iter().enumerate() {
            for note in &layer.notes {
                winner.insert(&note.key, rank);
            }
        }
        let mut lines = Vec::new();
        for (rank, layer) in self.stack.iter().enumerate() {
            for note in &layer.notes {
                let known = acknowledged.contains(&note.key);
                if !known && winner.get(note.key.as_str()) == Some(&rank) {
                    winner.remove(note.key.as_str());
                    lines.push(note.line.clone());
                }
            }
        }
        lines
    }
}
