//! Locust's ini-style config files, `~/.locust.conf`, `./locust.conf` and `--config FILE.conf`,
//! read as Locust 2.47 reads them (configargparse's `DefaultConfigFileParser`): one
//! `key = value` per line (also `key: value`, `key value`, `--key value`, or a bare `key` for
//! true), `#` and `;` comments, `[section]` and `---` lines ignored, quotes around a value
//! dropped, `[a, b]` a list; a key set twice keeps its last value. Keys are Locust's dashed
//! option names (`spawn-rate`); an mqblast setting's name (`spawn_rate`) is accepted too.
//! Keys go through the same mapping as `[tool.locust]` (see `locust_keys`), with the same
//! notes. A line that is none of these is an error naming the file and line, as in Locust.

use std::path::{Path, PathBuf};

use super::layers::{Layer, LocustFile, Origin, Raw, RawValue};
use super::locust_keys::{map_key, Mapping, SILENCE};
use super::{invalid, ConfigError};

/// Read from the working directory, as Locust does.
pub const LOCUST_CONF_FILE: &str = "locust.conf";

/// Read from the home directory, as Locust does (below ./locust.conf).
pub const HOME_LOCUST_CONF_FILE: &str = ".locust.conf";

/// Larger than any hand-written config file; bounds what is read into memory.
const MAX_LOCUST_CONF_BYTES: u64 = 1 << 20;

/// Whether `-f/--config FILE` names a Locust config file rather than mqblast's config.toml:
/// Locust's are `*.conf` (`locust.conf`, `~/.locust.conf`, `prod.conf`).
pub(super) fn is_locust_conf(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "conf")
}

/// The file as a layer; None when it is missing and was not named (`required`).
pub(super) fn load_locust_conf(
    path: PathBuf,
    which: LocustFile,
    required: bool,
) -> Result<Option<Layer>, ConfigError> {
    let size = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(invalid(format!("config file {}: {err}", path.display()))),
    };
    if size > MAX_LOCUST_CONF_BYTES {
        return Err(invalid(format!(
            "{}: {size} bytes, more than the {MAX_LOCUST_CONF_BYTES} a Locust config file is read up to",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|err| invalid(format!("config file {}: {err}", path.display())))?;
    parse(path, which, &text).map(Some)
}

/// One `key = value` line: the key as written and its value; None for blank lines, comments
/// and sections; Err for a line Locust would refuse.
fn parse_line(line: &str) -> Result<Option<(String, RawValue)>, ()> {
    let line = line.trim();
    if line.is_empty() || line.starts_with(['#', ';', '[']) || line.starts_with("---") {
        return Ok(None);
    }
    // configargparse: ^(?P<key>[^:=;#\s]+)\s*(?:(?P<equal>[:=\s])\s*(['"]?)(?P<value>.+?)?\3)?
    //                 \s*(?:\s[;#]\s*(?P<comment>.*?)\s*)?$
    let key_end = line
        .find(|c: char| matches!(c, ':' | '=' | ';' | '#') || c.is_whitespace())
        .unwrap_or(line.len());
    let key = &line[..key_end];
    if key.is_empty() {
        return Err(());
    }
    let rest = &line[key_end..];
    let after_space = rest.trim_start();
    let (equal, value) = match after_space.chars().next() {
        None => return Ok(Some((key.to_string(), RawValue::Text("true".to_string())))),
        Some(c @ (':' | '=')) => (Some(c), after_space[1..].trim_start()),
        Some(_) if rest.starts_with(char::is_whitespace) => (None, after_space),
        // `key;comment` or `key#comment` with no space: not a line configargparse matches.
        Some(_) => return Err(()),
    };
    // An inline comment needs a blank before it: `users = 3 # three`.
    let value = match value.find([';', '#']) {
        Some(0) => "",
        Some(at) if value[..at].ends_with(char::is_whitespace) => value[..at].trim_end(),
        _ => value,
    };
    let value = match value.as_bytes() {
        [q @ (b'"' | b'\''), .., last] if last == q && value.len() >= 2 => {
            &value[1..value.len() - 1]
        }
        _ => value,
    };
    if value.is_empty() {
        return Ok(Some((
            key.to_string(),
            RawValue::Text(match equal {
                Some(_) => String::new(),
                None => "true".to_string(),
            }),
        )));
    }
    if value.starts_with('[') && value.ends_with(']') {
        let items = value[1..value.len() - 1]
            .split(',')
            .map(|item| item.trim().trim_matches(['"', '\'']).to_string())
            .filter(|item| !item.is_empty())
            .map(toml::Value::String)
            .collect();
        return Ok(Some((
            key.to_string(),
            RawValue::Toml(toml::Value::Array(items)),
        )));
    }
    Ok(Some((key.to_string(), RawValue::Text(value.to_string()))))
}

/// Every line of `text` into a layer of settings and notes.
pub(super) fn parse(path: PathBuf, which: LocustFile, text: &str) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let Some((written_key, value)) = parse_line(line).map_err(|()| {
            invalid(format!(
                "{} line {number}: not a Locust config line (expected key = value): {}",
                path.display(),
                super::shown(line.trim())
            ))
        })?
        else {
            continue;
        };
        let option = written_key.trim_start_matches("--");
        let as_toml = match &value {
            RawValue::Toml(list) => list.clone(),
            RawValue::Text(text) => toml::Value::String(text.clone()),
        };
        let at = format!("{} line {number}: {written_key}", path.display());
        match map_key(&option.replace('_', "-"), &as_toml) {
            Mapping::Setting(key, value) => layer.set(Raw {
                key,
                origin: Origin::LocustConf {
                    which,
                    path: path.clone(),
                    line: number,
                    written_key: written_key.clone(),
                },
                value,
            }),
            Mapping::Note(note) => {
                layer.note(option, format!("mqblast: note: {at}: {note}{SILENCE}"))
            }
            Mapping::Unknown => layer.note(
                option,
                format!(
                    "mqblast: warning: {at}: not a Locust option mqblast knows; ignored{SILENCE}"
                ),
            ),
        }
    }
    Ok(layer)
}
