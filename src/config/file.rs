//! Reading config.toml: TOML syntax errors and unknown or repeated keys are reported with
//! the file name and line, and each value remembers its line for later errors. It also reads
//! the file's "Not used" list (as `mqblast init --from-locust` writes it): the Locust keys
//! named there have been seen, and their notes are not printed again on every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::{find_key, setting_names, Key};
use super::layers::{Layer, Origin, Raw, RawValue};
use super::streams::StreamLines;
use super::{invalid, ConfigError, Context, DEFAULT_CONFIG_FILE};

/// A parsed config file: each known setting with its line.
pub(super) struct ConfigFile {
    pub(super) path: PathBuf,
    /// setting name -> (key as written, line, value)
    pub(super) entries: BTreeMap<&'static str, (String, usize, toml::Value)>,
    /// Locust keys listed under a `# Not used:` comment: their notes are not repeated.
    pub(super) acknowledged: Vec<String>,
    /// The lines of the keys of each `[[stream]]` table.
    pub(super) stream_lines: StreamLines,
}

impl ConfigFile {
    pub(super) fn parse(path: PathBuf, text: &str) -> Result<ConfigFile, ConfigError> {
        let table: BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|err| toml_error(&path, text, &err))?;
        let mut written: Vec<(String, toml::Spanned<toml::Value>)> = table.into_iter().collect();
        written.sort_by_key(|(_, value)| value.span().start);
        let mut entries = BTreeMap::new();
        for (written_key, spanned) in written {
            let line = line_of(text, spanned.span().start);
            let name = written_key.replace('-', "_");
            let Some(key) = find_key(&name) else {
                let known: Vec<&str> = setting_names().collect();
                return Err(invalid(format!(
                    "{} line {line}: unknown setting \"{written_key}\" (known settings: {})",
                    path.display(),
                    known.join(", ")
                )));
            };
            if let Some((first, first_line, _)) = entries.get(key.name) {
                return Err(invalid(format!(
                    "{} line {line}: {written_key} is set twice (also as {first} on line {first_line})",
                    path.display()
                )));
            }
            entries.insert(key.name, (written_key, line, spanned.into_inner()));
        }
        Ok(ConfigFile {
            path,
            entries,
            acknowledged: not_used_keys(text),
            stream_lines: stream_lines(text),
        })
    }

    /// The file's settings as a layer.
    pub(super) fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        for key in self.entries.keys().filter_map(|name| find_key(name)) {
            if let Some(raw) = self.get(key) {
                layer.set(raw);
            }
        }
        layer
    }

    pub(super) fn get(&self, key: &'static Key) -> Option<Raw> {
        let (written_key, line, value) = self.entries.get(key.name)?;
        Some(Raw {
            key,
            origin: Origin::File {
                path: self.path.clone(),
                line: *line,
                written_key: written_key.clone(),
            },
            value: RawValue::Toml(value.clone()),
        })
    }
}

/// Where each key of each `[[stream]]` table was written (tables in order; "" is the table's
/// header). Empty when `stream` is not a list of tables (the plan builder reports that).
fn stream_lines(text: &str) -> StreamLines {
    type Table = BTreeMap<String, toml::Spanned<toml::Value>>;
    #[derive(serde::Deserialize)]
    struct Streams {
        stream: Option<Vec<Table>>,
    }
    let Ok(Streams {
        stream: Some(tables),
    }) = toml::from_str::<Streams>(text)
    else {
        return Vec::new();
    };
    let headers: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split('#').next().unwrap_or("");
            code.split_whitespace().collect::<String>() == "[[stream]]"
        })
        .map(|(index, _)| index + 1)
        .collect();
    // `stream = [{...}]` (inline) has no headers: each table is then located by its keys.
    let use_headers = headers.len() == tables.len();
    tables
        .into_iter()
        .enumerate()
        .map(|(n, table)| {
            let mut lines: BTreeMap<String, usize> = table
                .into_iter()
                .map(|(key, value)| (key, line_of(text, value.span().start)))
                .collect();
            let first_key = lines.values().min().copied();
            let header = headers.get(n).copied().filter(|_| use_headers);
            if let Some(line) = header.or(first_key) {
                lines.insert(String::new(), line);
            }
            lines
        })
        .collect()
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(super) fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim().replace('\n', "; ");
    match err.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |at| at + 1);
            let column = text[line_start..span.start.min(text.len())].chars().count() + 1;
            invalid(format!(
                "{} line {line} column {column}: {message}",
                path.display()
            ))
        }
        None => invalid(format!("{}: {message}", path.display())),
    }
}

/// The Locust keys named in the comment lines under `# Not used:` (each line as
/// `mqblast init --from-locust` writes it: `#   FILE line N: [tool.locust] KEY: why`, or
/// `#   FILE line N: KEY: why` for locust.conf), dashed as Locust names them.
fn not_used_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut in_list = false;
    for line in text.lines().map(str::trim) {
        let Some(comment) = line.strip_prefix('#') else {
            in_list = false;
            continue;
        };
        if comment.trim().eq_ignore_ascii_case("not used:") {
            in_list = true;
            continue;
        }
        let Some((_, after_line)) = comment.split_once(" line ").filter(|_| in_list) else {
            continue;
        };
        // `N: [tool.locust] KEY: why` or `N: KEY: why`
        let Some((_, rest)) = after_line.split_once(": ") else {
            continue;
        };
        let rest = rest.strip_prefix("[tool.locust] ").unwrap_or(rest);
        if let Some((key, _)) = rest.split_once(':') {
            keys.push(key.trim().trim_start_matches('-').replace('_', "-"));
        }
    }
    keys
}

/// `named` (from `-f/--config` or `MQBLAST_CONFIG`), else ./config.toml when it exists.
pub(super) fn load_config_file(
    named: Option<PathBuf>,
    ctx: &Context,
) -> Result<Option<ConfigFile>, ConfigError> {
    let explicit = named.is_some();
    if let Some(path) = named
        .as_ref()
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
    {
        // Locust's `-f mqtt.py` names the locustfile; ours names config.toml.
        return Err(invalid(format!(
            "-f {}: that is a Locust locustfile; mqblast's -f/--config takes a config.toml \
             (write one from config.py with `mqblast init --from-locust`)",
            path.display()
        )));
    }
    let path = named.unwrap_or_else(|| ctx.cwd.join(DEFAULT_CONFIG_FILE));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if !explicit && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(invalid(format!("config file {}: {err}", path.display()))),
    };
    ConfigFile::parse(path, &text).map(Some)
}
