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

/// A line of a Locust config file: its number, the key as written and the value.
pub(super) type ConfLine = (usize, String, RawValue);

/// Every `key = value` line of `text`, in order; Err naming the first line that is not one.
pub(super) fn conf_lines(path: &Path, text: &str) -> Result<Vec<ConfLine>, ConfigError> {
    let mut lines = Vec::new();
    // As Python reads a text file: LF, CRLF and a lone CR end lines; a byte-order mark is
    // skipped (as in every file mqblast reads).
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    for (index, line) in text.split(['\n', '\r']).enumerate() {
        let number = index + 1;
        let parsed = parse_line(line).map_err(|()| {
            invalid(format!(
                "{} line {number}: not a Locust config line (expected key = value): {}",
                path.display(),
                super::shown(line.trim())
            ))
        })?;
        if let Some((written_key, value)) = parsed {
            lines.push((number, written_key, value));
        }
    }
    Ok(lines)
}

/// What a line's key becomes, through the mapping every Locust source shares. Keys are read
/// dashed (`--spawn-rate`, `spawn_rate` and `spawn-rate` alike).
pub(super) fn map_conf_key(written_key: &str, value: &RawValue) -> (String, Mapping) {
    let option = written_key.trim_start_matches("--").replace('_', "-");
    let as_toml = match value {
        RawValue::Toml(list) => list.clone(),
        RawValue::Text(text) => toml::Value::String(text.clone()),
    };
    let mapping = map_key(&option, &as_toml);
    (option, mapping)
}

/// Every line of `text` into a layer of settings and notes.
pub(super) fn parse(path: PathBuf, which: LocustFile, text: &str) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for (number, written_key, value) in conf_lines(&path, text)? {
        let at = format!("{} line {number}: {written_key}", path.display());
        match map_conf_key(&written_key, &value) {
            (_, Mapping::Setting(key, value)) => layer.set(Raw {
                key,
                origin: Origin::LocustConf {
                    which,
                    path: path.clone(),
                    line: number,
                    written_key: written_key.clone(),
                },
                value,
            }),
            (option, Mapping::Note(note)) => {
                layer.note(&option, format!("mqblast: note: {at}: {note}{SILENCE}"))
            }
            (option, Mapping::Unknown) => layer.note(
                &option,
                format!(
                    "mqblast: warning: {at}: not a Locust option mqblast knows; ignored{SILENCE}"
                ),
            ),
        }
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(usize, String, String)> {
        conf_lines(Path::new("locust.conf"), text)
            .unwrap()
            .into_iter()
            .map(|(line, key, value)| match value {
                RawValue::Text(text) => (line, key, text),
                RawValue::Toml(list) => (line, key, list.to_string()),
            })
            .collect()
    }

    #[test]
    fn lines_end_as_python_ends_them_and_a_bom_is_skipped() {
        let expected = vec![
            (1, "users".to_string(), "3".to_string()),
            (2, "spawn-rate".to_string(), "2".to_string()),
            (3, "headless".to_string(), "true".to_string()),
        ];
        assert_eq!(
            keys("\u{feff}users = 3\r\nspawn-rate = 2\rheadless\n"),
            expected
        );
    }

    #[test]
    fn values_are_cut_as_configargparse_cuts_them() {
        let got = keys(
            "a = \"quoted\"\nb: 'single'\nc = x # comment\nd = x#not-a-comment\ne =\n\
             f = [x, 'y', z]\n--g 5\nh ; note\n",
        );
        let values: Vec<(&str, &str)> = got
            .iter()
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("a", "quoted"),
                ("b", "single"),
                ("c", "x"),
                ("d", "x#not-a-comment"),
                ("e", ""),
                ("f", "[\"x\", \"y\", \"z\"]"),
                ("--g", "5"),
                ("h", "true"),
            ]
        );
    }
}
