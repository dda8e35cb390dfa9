//! Reading config.toml: TOML syntax errors and unknown or repeated keys are reported with
//! the file name and line, and each value remembers its line for later errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cli::RunArgs;
use super::keys::{find_key, setting_names, Key};
use super::layers::{env_value, resolve, Origin, Raw, RawValue};
use super::{invalid, ConfigError, Context, CONFIG_ENV, DEFAULT_CONFIG_FILE};

/// A parsed config file: each known setting with its line.
pub(super) struct ConfigFile {
    pub(super) path: PathBuf,
    /// setting name -> (key as written, line, value)
    pub(super) entries: BTreeMap<&'static str, (String, usize, toml::Value)>,
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
        Ok(ConfigFile { path, entries })
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

pub(super) fn load_config_file(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Option<ConfigFile>, ConfigError> {
    let named = args
        .config
        .as_ref()
        .map(|path| resolve(&ctx.cwd, &path.to_string_lossy()))
        .or_else(|| env_value(env, CONFIG_ENV).map(|path| resolve(&ctx.cwd, &path)));
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
