//! `mqblast init --from-locust`: writes config.toml (and tokens.txt) from the Locust + paho
//! script's config.py, pyproject.toml `[tool.locust]` table and locust.conf, so a user moves over with one
//! command. config.py is read as data ([`super::pyliteral`]), never run. Each written value
//! has a comment above it naming the file and line it came from; assignments mqblast has no
//! use for are listed as not used. Nothing existing is overwritten.

use std::path::{Path, PathBuf};

use super::layers::RawValue;
use super::locust_conf::{conf_lines, is_locust_conf, map_conf_key, LOCUST_CONF_FILE};
use super::pyliteral::{parse_module, PyValue, StatementKind};
use super::pyproject::{locust_table, locust_value, map_key, Mapping, PYPROJECT_FILE};
use super::{invalid, ConfigError, DEFAULT_CONFIG_FILE, DEFAULT_PAYLOAD_FILE};

/// The old script's settings module.
pub const CONFIG_PY_FILE: &str = "config.py";

/// Where the device tokens are written: one per line, as `tokens_file` reads them.
pub const TOKENS_FILE: &str = "tokens.txt";

/// Where data.json is written again when its `ts` is a number: with `"ts": "{ts}"`.
pub const STAMPED_PAYLOAD_FILE: &str = "data.mqblast.json";

/// Larger than any hand-written config.py: 20k tokens of 40 bytes is under 1 MiB. With the
/// parser's bound on values ([`super::pyliteral::MAX_VALUES`]) it bounds the import's memory.
const MAX_CONFIG_PY_BYTES: u64 = 16 << 20;

/// What was written, for the one-line report.
#[derive(Debug)]
pub struct Imported {
    pub config_toml: PathBuf,
    pub tokens_file: Option<PathBuf>,
    pub token_count: usize,
    /// data.json written again with `"ts": "{ts}"` ([`STAMPED_PAYLOAD_FILE`]), if it was.
    pub payload_file: Option<PathBuf>,
    pub read: Vec<PathBuf>,
    /// Lines for the user about what was changed on the way (`mqblast: note: ...`).
    pub notes: Vec<String>,
}

/// One config.toml setting to write, with the comment naming its source.
struct Entry {
    name: &'static str,
    source: String,
    toml: String,
}

#[derive(Default)]
struct Output {
    entries: Vec<Entry>,
    not_used: Vec<String>,
    tokens: Vec<String>,
}

impl Output {
    fn set(&mut self, name: &'static str, source: String, value: toml::Value) {
        match self.entries.iter().find(|entry| entry.name == name) {
            Some(first) => self.not_used.push(format!(
                "{source}: {name} is already set from {}",
                first.source
            )),
            None => self.entries.push(Entry {
                name,
                source,
                toml: value.to_string(),
            }),
        }
    }
}

/// Read the Locust project's files and write config.toml (and tokens.txt) into `out_dir`.
/// `files` are config.py and/or pyproject.toml in any order (told apart by the `.toml`
/// ending); missing ones default to `out_dir`'s, and a missing default pyproject.toml is fine.
pub fn import_locust(files: &[PathBuf], out_dir: &Path) -> Result<Imported, ConfigError> {
    let is_toml = |f: &&PathBuf| f.extension().is_some_and(|e| e == "toml");
    let named_toml = files.iter().find(is_toml);
    let named_conf = files.iter().find(|f| is_locust_conf(f));
    let named_py = files.iter().find(|f| !is_toml(f) && !is_locust_conf(f));
    let config_py = named_py
        .cloned()
        .unwrap_or_else(|| out_dir.join(CONFIG_PY_FILE));
    let pyproject = named_toml
        .cloned()
        .unwrap_or_else(|| out_dir.join(PYPROJECT_FILE));
    let config_toml = out_dir.join(DEFAULT_CONFIG_FILE);
    let tokens_path = out_dir.join(TOKENS_FILE);
    refuse_existing(&config_toml)?;

    let mut out = Output::default();
    let mut read = Vec::new();
    if let Some(text) = read_optional(&pyproject, named_toml.is_some())? {
        read_pyproject(&pyproject, &text, &mut out)?;
        read.push(pyproject);
    }
    // Below pyproject.toml, as in Locust: read second, so a key pyproject.toml sets wins.
    let locust_conf = named_conf
        .cloned()
        .unwrap_or_else(|| out_dir.join(LOCUST_CONF_FILE));
    if let Some(text) = read_optional(&locust_conf, named_conf.is_some())? {
        read_locust_conf(&locust_conf, &text, &mut out)?;
        read.push(locust_conf);
    }
    let mut from_py = Output::default();
    // Without a config.py, a pyproject.toml alone is enough.
    if let Some(py_text) = read_optional(&config_py, named_py.is_some() || read.is_empty())? {
        read_config_py(&config_py, &py_text, &mut from_py)?;
        read.insert(0, config_py.clone());
    }
    // config.py is what the old script ran with: its values come first and win.
    from_py.not_used.append(&mut out.not_used);
    for entry in out.entries {
        match from_py.entries.iter().find(|e| e.name == entry.name) {
            Some(first) => from_py.not_used.push(format!(
                "{}: {} is already set from {}",
                entry.source, entry.name, first.source
            )),
            None => from_py.entries.push(entry),
        }
    }
    let payload = config_py.with_file_name(DEFAULT_PAYLOAD_FILE);
    let mut stamped = None;
    let mut notes = Vec::new();
    if payload.is_file() && !from_py.entries.iter().any(|e| e.name == "payload") {
        let shown = relative_to(&payload, out_dir);
        let text = read_optional(&payload, true)?.unwrap_or_default();
        match stamp_ts(&text) {
            Some(stamped_text) => {
                let path = out_dir.join(STAMPED_PAYLOAD_FILE);
                refuse_existing(&path)?;
                let written = relative_to(&path, out_dir);
                notes.push(format!(
                    "{shown}: \"ts\" is a number: the old script replaced it with each message's send time; {written} has \"ts\": \"{{ts}}\" instead (stamped per message), so ThingsBoard does not store every point at one time"
                ));
                from_py.set(
                    "payload",
                    format!(
                        "{shown} (next to {}) with its numeric \"ts\" written as \"{{ts}}\", the send time of each message",
                        config_py.display()
                    ),
                    toml::Value::String(written),
                );
                stamped = Some((path, stamped_text));
            }
            None => from_py.set(
                "payload",
                format!("{} (the payload next to {})", shown, config_py.display()),
                toml::Value::String(shown),
            ),
        }
    }
    let token_count = from_py.tokens.len();
    if token_count > 0 {
        refuse_existing(&tokens_path)?;
    }
    let tokens_file = match token_count {
        0 => None,
        _ => {
            write_new(&tokens_path, &tokens_text(&from_py.tokens, &config_py))?;
            Some(tokens_path)
        }
    };
    let payload_file = match stamped {
        Some((path, text)) => {
            write_new(&path, &text)?;
            Some(path)
        }
        None => None,
    };
    write_new(&config_toml, &render(&from_py, &read))?;
    Ok(Imported {
        config_toml,
        tokens_file,
        token_count,
        payload_file,
        read,
        notes,
    })
}

/// data.json with every numeric top-level `ts` (of the object, or of each object of an
/// array) replaced by `"{ts}"`; None when there is none (or the file is not JSON: the run
/// names that problem). The old script overwrote `ts` with the send time; sent as written,
/// every message would carry the file's one time and ThingsBoard would store every point there.
fn stamp_ts(text: &str) -> Option<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut stamped = false;
    let mut stamp = |object: &mut serde_json::Value| {
        if let Some(ts) = object.get_mut("ts").filter(|ts| ts.is_number()) {
            *ts = serde_json::Value::String("{ts}".to_string());
            stamped = true;
        }
    };
    match &mut value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(&mut stamp),
        object => stamp(object),
    }
    let mut out = serde_json::to_string_pretty(&value).ok()?;
    out.push('\n');
    stamped.then_some(out)
}

fn refuse_existing(path: &Path) -> Result<(), ConfigError> {
    match path.exists() {
        true => Err(invalid(format!(
            "{} already exists: not overwriting it (edit it, or remove it first)",
            path.display()
        ))),
        false => Ok(()),
    }
}

/// The file's text; None when it is missing and was not named.
fn read_optional(path: &Path, required: bool) -> Result<Option<String>, ConfigError> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(invalid(format!("{}: {err}", path.display()))),
    };
    if size > MAX_CONFIG_PY_BYTES {
        return Err(invalid(format!(
            "{}: {size} bytes, more than the {MAX_CONFIG_PY_BYTES} a Locust config file is read up to",
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|err| invalid(format!("{}: {err}", path.display())))
}

fn read_pyproject(path: &Path, text: &str, out: &mut Output) -> Result<(), ConfigError> {
    let table = locust_table(text)
        .map_err(|err| super::file::toml_error(path, text, &err))?
        .unwrap_or_default();
    for (written_key, line, value) in table {
        let source = format!(
            "{} line {line}: [tool.locust] {written_key}",
            path.display()
        );
        match map_key(&written_key, &value) {
            // The value as written, unless the mapping changed it (json-file NAME -> NAME.json).
            Mapping::Setting(key, mapped) => match (mapped, locust_value(&value)) {
                (super::layers::RawValue::Text(text), super::layers::RawValue::Text(as_read))
                    if text != as_read =>
                {
                    out.set(key.name, source, toml::Value::String(text))
                }
                _ => out.set(key.name, source, value),
            },
            Mapping::Note(note) => out.not_used.push(format!("{source}: {note}")),
            Mapping::Unknown => out
                .not_used
                .push(format!("{source}: not a Locust option mqblast knows")),
        }
    }
    Ok(())
}

/// locust.conf's lines, each as a config.toml value (typed where it reads as a number or a
/// boolean), or as a "Not used" line: the same mapping and notes as a run reads it with.
fn read_locust_conf(path: &Path, text: &str, out: &mut Output) -> Result<(), ConfigError> {
    for (line, written_key, value) in conf_lines(path, text)? {
        let source = format!("{} line {line}: {written_key}", path.display());
        match map_conf_key(&written_key, &value) {
            (_, Mapping::Setting(key, RawValue::Toml(list))) => out.set(key.name, source, list),
            (_, Mapping::Setting(key, RawValue::Text(text))) => {
                out.set(key.name, source, typed(&text))
            }
            (_, Mapping::Note(note)) => out.not_used.push(format!("{source}: {note}")),
            (_, Mapping::Unknown) => out
                .not_used
                .push(format!("{source}: not a Locust option mqblast knows")),
        }
    }
    Ok(())
}

/// A locust.conf value as config.toml would write it: `3` an integer, `2.5` a float, `true`
/// a boolean, anything else a string.
fn typed(text: &str) -> toml::Value {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match trimmed.parse::<f64>() {
        Ok(x) if x.is_finite() => return toml::Value::Float(x),
        _ => {}
    }
    match trimmed.to_ascii_lowercase().as_str() {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(text.to_string()),
    }
}

fn read_config_py(path: &Path, text: &str, out: &mut Output) -> Result<(), ConfigError> {
    let at = |line: usize| format!("{} line {line}", path.display());
    let statements =
        parse_module(text).map_err(|err| invalid(format!("{} {err}", path.display())))?;
    let mut address: Option<(usize, String)> = None;
    let mut port: Option<(usize, i64)> = None;
    for statement in statements {
        let line = statement.line;
        let (name, value) = match statement.kind {
            StatementKind::Assign { name, value } => (name, value),
            StatementKind::Other { what, why } if what.contains(" =") => {
                out.not_used
                    .push(format!("{}: {what}: {why}, not run", at(line)));
                continue;
            }
            StatementKind::Other { .. } => continue, // imports and the like
        };
        let shown_name = super::shown(&name);
        let wrong =
            |expected: &str| invalid(format!("{}: {shown_name}: expected {expected}", at(line)));
        let source = format!("{}: {shown_name}", at(line));
        match (name.as_str(), value) {
            ("tb_address", PyValue::Str(host)) => address = Some((line, host)),
            ("tb_address", _) => return Err(wrong("a string")),
            ("tb_port", PyValue::Int(n)) => port = Some((line, n)),
            ("tb_port", _) => return Err(wrong("an integer")),
            ("mqtt_topic", PyValue::Str(topic)) => {
                out.set("topic", source, toml::Value::String(topic))
            }
            ("mqtt_topic", _) => return Err(wrong("a string")),
            ("mqtt_qos", PyValue::Int(qos)) => out.set("qos", source, toml::Value::Integer(qos)),
            ("mqtt_qos", _) => return Err(wrong("an integer")),
            ("REQUEST_TYPE", PyValue::Str(label)) => {
                out.set("request_type", source, toml::Value::String(label))
            }
            ("REQUEST_TYPE", _) => return Err(wrong("a string")),
            ("PUBLISH_TIMEOUT", value) => {
                let ms =
                    timeout_ms(&value).ok_or_else(|| wrong("a positive number of milliseconds"))?;
                let source = format!("{source} (milliseconds)");
                out.set("timeout", source, toml::Value::String(format!("{ms}ms")));
            }
            ("KEEPALIVE", PyValue::Int(seconds @ 0..=65535)) => {
                let source = format!("{source} (seconds)");
                out.set("keep_alive", source, toml::Value::Integer(seconds));
            }
            ("KEEPALIVE", _) => return Err(wrong("whole seconds from 0 to 65535")),
            ("CLIENT_ID_PREFIX", PyValue::Str(prefix)) if !prefix.contains(['{', '}', '\0']) => {
                // paho's id was the prefix and a per-user suffix; the client index is ours.
                let source = format!("{source} (the prefix, then each client's index)");
                out.set(
                    "client_id",
                    source,
                    toml::Value::String(format!("{prefix}{{i}}")),
                );
            }
            ("CLIENT_ID_PREFIX", _) => return Err(wrong("a string without {, } or NUL")),
            ("device_tokens", value) => {
                out.tokens = tokens(value).map_err(|problem| {
                    invalid(format!("{}: device_tokens: {problem}", at(line)))
                })?;
                let source = format!("{source} ({} tokens, one per line)", out.tokens.len());
                out.set(
                    "tokens_file",
                    source,
                    toml::Value::String(TOKENS_FILE.to_string()),
                );
            }
            (_, _) => out.not_used.push(format!(
                "{}: {shown_name}: mqblast has no setting for it",
                at(line)
            )),
        }
    }
    if let (None, Some((line, _))) = (&address, &port) {
        out.not_used
            .push(format!("{}: tb_port: used only with tb_address", at(*line)));
    }
    if let Some(host) = broker(address, port, path) {
        let (source, value) = host;
        out.set("host", source, toml::Value::String(value));
    }
    Ok(())
}

/// `tb_address` and `tb_port` together as one broker address.
fn broker(
    address: Option<(usize, String)>,
    port: Option<(usize, i64)>,
    path: &Path,
) -> Option<(String, String)> {
    let file = path.display();
    match (address, port) {
        (Some((line, host)), Some((port_line, port))) if !host.contains("://") => Some((
            format!("{file} line {line}: tb_address and line {port_line}: tb_port"),
            format!("{host}:{port}"),
        )),
        (Some((line, host)), _) => Some((format!("{file} line {line}: tb_address"), host)),
        (None, _) => None,
    }
}

fn timeout_ms(value: &PyValue) -> Option<u64> {
    match value {
        PyValue::Int(ms) if *ms > 0 => u64::try_from(*ms).ok(),
        PyValue::Float(ms) if *ms >= 1.0 && ms.is_finite() && *ms < 1e15 => Some(ms.round() as u64),
        _ => None,
    }
}

/// The tokens, each one a tokens file can hold (one per line, trimmed, `#` starts a comment).
fn tokens(value: PyValue) -> Result<Vec<String>, String> {
    let items = match value {
        PyValue::List(items) | PyValue::Tuple(items) => items,
        PyValue::Str(one) => vec![PyValue::Str(one)],
        _ => return Err("expected a list of strings".to_string()),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            PyValue::Str(token)
                if !token.is_empty()
                    && token.trim() == token
                    && !token.starts_with('#')
                    && !token.contains(['\n', '\r', '\0']) =>
            {
                Ok(token)
            }
            PyValue::Str(_) => Err(format!(
                "token {} is empty, has surrounding spaces, a line break, a NUL or starts with #",
                i + 1
            )),
            _ => Err(format!("item {} is not a string", i + 1)),
        })
        .collect()
}

fn tokens_text(tokens: &[String], config_py: &Path) -> String {
    let mut text = format!(
        "# Device access tokens from {} (device_tokens), one per line; used round-robin.\n",
        config_py.display()
    );
    for token in tokens {
        text.push_str(token);
        text.push('\n');
    }
    text
}

fn render(out: &Output, read: &[PathBuf]) -> String {
    let names: Vec<String> = read.iter().map(|p| p.display().to_string()).collect();
    let mut text = format!(
        "# mqblast settings, written by `mqblast init --from-locust` from {}.\n\
         # Each value names the line it came from. Every other setting has its default:\n\
         # `mqblast config --default` prints them all with their documentation.\n",
        names.join(" and ")
    );
    let order = |name: &str| super::keys::setting_names().position(|known| known == name);
    let mut entries: Vec<&Entry> = out.entries.iter().collect();
    entries.sort_by_key(|entry| order(entry.name));
    for entry in entries {
        text.push_str(&format!(
            "\n# {}\n{} = {}\n",
            entry.source, entry.name, entry.toml
        ));
    }
    if !out.not_used.is_empty() {
        text.push_str("\n# Not used:\n");
        for line in &out.not_used {
            text.push_str(&format!("#   {line}\n"));
        }
    }
    text
}

/// `path` as config.toml (in `base`) should name it.
fn relative_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn write_new(path: &Path, text: &str) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| invalid(format!("{}: {err}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|err| invalid(format!("{}: {err}", path.display())))
}
