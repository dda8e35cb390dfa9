//! A user as a list of streams: config.toml's `[[stream]]` tables, `--stream KIND[,key=value...]`
//! (repeatable) and `MQBLAST_STREAM` (definitions separated by `;`), validated into the plan's
//! [`StreamPlan`]s. Without any, the single-stream settings (`topic`, `payload`, `qos`,
//! `interval`) are the one stream, exactly as before streams existed.
//!
//! Keys of a stream: `kind` (required), `name`, `topic`, `payload`, `datapoints` (of an
//! `industrial-plc` payload only), `qos`, and at most one pace: `interval`, `between`
//! (`["1s", "3s"]`, or `1s..3s` on the command line), `constant_pacing` or `weight`. A stream
//! without a payload, QoS or pace takes the run's (`payload`, `qos`, `interval`); one naming
//! `industrial-plc` without `datapoints` takes the run's `--datapoints` (else 60). Every error is one line naming the key and where it was written: the file
//! and line of the key (or of the table), or the flag with its definition.

use std::collections::BTreeMap;
use std::path::Path;

use super::layers::{Origin, Raw, RawValue};
use super::templates::Widest;
use super::values::{check_mqtt_string_len, check_no_nul, format_duration, parse_duration};
use super::{invalid, shown, ConfigError, Context};
use crate::payload::{self, ClientVars, Payload};
use crate::workload::answers;
use crate::workload::pace::{duration_ns, Pace, WEIGHT_MAX};
use crate::workload::presets;
use crate::workload::stream::{StreamKind, StreamPlan, MAX_NAME_CHARS, MAX_STREAMS};

/// How an inline payload's source reads (after the stream: `stream 2 inline payload`).
const INLINE_SUFFIX: &str = crate::workload::stream::INLINE_PAYLOAD_SUFFIX;
/// The keys a stream may have, in documentation order.
const STREAM_KEYS: [&str; 10] = [
    "kind",
    "name",
    "topic",
    "payload",
    "datapoints",
    "qos",
    "interval",
    "between",
    "constant_pacing",
    "weight",
];
/// The pace keys: at most one per stream.
const PACE_KEYS: [&str; 4] = ["interval", "between", "constant_pacing", "weight"];
/// Row names of the fixed rows (and prefixes of the connect phases): a stream may not take
/// one, or two rows of a report would read alike.
const RESERVED_NAMES: [&str; 5] = ["connect", "connection", "reconnect", "subscribe", "e2e"];
/// Largest bare number of seconds a stream's duration accepts (as `interval` does).
const BARE_SECONDS_MAX: f64 = 3600.0;
/// Placeholders of a stream topic, and of the request kinds' topics.
const TOPIC_PLACEHOLDERS: [&str; 3] = ["{i}", "{token}", "{client_id}"];
const REQUEST_TOPIC_PLACEHOLDERS: [&str; 4] = ["{i}", "{token}", "{client_id}", "{id}"];

/// Where each key of each `[[stream]]` table of config.toml was written, by table: key ->
/// line, and the table's own line under "" (its `[[stream]]` header).
pub(super) type StreamLines = Vec<BTreeMap<String, usize>>;

/// What a stream takes from the run when it does not say.
pub(super) struct RunDefaults<'a> {
    pub(super) payload: &'a Payload,
    pub(super) qos: u8,
    pub(super) pace: Pace,
    /// A global rate is set: a stream may take a `weight` of it.
    pub(super) rated: bool,
    pub(super) tokens: &'a [String],
    /// `--datapoints`: the points of a stream that names `industrial-plc` without its own.
    pub(super) datapoints: Option<u32>,
}

/// The streams `raw` defines (None or an empty list: none, and the caller uses the
/// single-stream settings). `lines` locates the keys of config.toml's tables.
pub(super) fn resolve_streams(
    raw: Option<&Raw>,
    lines: &StreamLines,
    defaults: &RunDefaults<'_>,
    ctx: &Context,
) -> Result<Vec<StreamPlan>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let definitions = definitions_of(raw, lines)?;
    if definitions.len() > MAX_STREAMS {
        return Err(raw.fail_at_source(format!(
            "{} streams, at most {MAX_STREAMS} per user",
            definitions.len()
        )));
    }
    let base_dir = raw.base_dir(ctx);
    let mut streams: Vec<StreamPlan> = Vec::with_capacity(definitions.len());
    for definition in &definitions {
        let stream = definition.resolve(defaults, base_dir)?;
        if let Some(same) = streams.iter().position(|s| s.name == stream.name) {
            return Err(definition.fail(format!(
                "its row name \"{}\" is also stream {}'s: give one a name (name = ...)",
                shown(&stream.name),
                same + 1
            )));
        }
        streams.push(stream);
    }
    Ok(streams)
}

/// Refuse a stream topic that renders longer than an MQTT string for the widest client.
pub(super) fn check_stream_topics(
    streams: &[StreamPlan],
    client_id: &str,
    widest: &Widest<'_>,
) -> Result<(), ConfigError> {
    let vars = |client_id| ClientVars {
        index: widest.index,
        token: widest.token,
        client_id,
    };
    let id = payload::render(client_id, &vars(""));
    for (n, stream) in streams.iter().enumerate() {
        let len_bytes = payload::render(&stream.topic, &vars(&id)).len();
        check_mqtt_string_len(len_bytes).map_err(|problem| {
            invalid(format!(
                "stream {} ({}): topic renders to {problem} (client {} with the longest device token)",
                n + 1,
                shown(&stream.name),
                widest.index
            ))
        })?;
    }
    Ok(())
}

/// The pace as config.toml writes it: `interval 1s`, `between 1s..3s`, `constant_pacing 2s`.
pub fn pace_text(pace: &Pace) -> String {
    let text = |ns: u64| format_duration(std::time::Duration::from_nanos(ns));
    match *pace {
        Pace::Interval { interval_ns } => format!("interval {}", text(interval_ns)),
        Pace::Between { min_ns, max_ns } => format!("between {}..{}", text(min_ns), text(max_ns)),
        Pace::ConstantPacing { pace_ns } => format!("constant_pacing {}", text(pace_ns)),
        Pace::Weight { weight } => format!("weight {weight}"),
    }
}

/// The streams as the effective configuration records them (config.toml's keys), so that
/// `mqblast config` prints definitions that read back as the same streams: a payload is the
/// file's path, or the inline JSON itself, and left out when it is the run's.
pub(super) fn streams_json(streams: &[StreamPlan], run_payload: &Payload) -> serde_json::Value {
    let text = |ns: u64| format_duration(std::time::Duration::from_nanos(ns));
    let list = streams.iter().filter(|s| s.declared).map(|s| {
        let mut fields = serde_json::Map::new();
        fields.insert("kind".into(), s.kind.name().into());
        fields.insert("name".into(), s.name.as_str().into());
        fields.insert("topic".into(), s.topic.as_str().into());
        let source = s.payload.source();
        if source.ends_with(INLINE_SUFFIX) {
            let json = match s.payload.objects() {
                [one] => one.to_string(),
                many => serde_json::Value::Array(many.to_vec()).to_string(),
            };
            fields.insert("payload".into(), json.into());
        } else if source != run_payload.source() {
            // A preset reads back by its name (`smart-meter`), a file by its path, and
            // industrial-plc with its points.
            fields.insert("payload".into(), s.payload.setting().into());
            if let Some(points) = s.payload.preset().and_then(|p| p.datapoints) {
                fields.insert("datapoints".into(), points.into());
            }
        }
        fields.insert("qos".into(), s.qos.into());
        let (key, value) = match s.pace {
            Pace::Interval { interval_ns } => ("interval", text(interval_ns).into()),
            Pace::Between { min_ns, max_ns } => {
                ("between", serde_json::json!([text(min_ns), text(max_ns)]))
            }
            Pace::ConstantPacing { pace_ns } => ("constant_pacing", text(pace_ns).into()),
            Pace::Weight { weight } => ("weight", weight.into()),
        };
        fields.insert(key.into(), value);
        serde_json::Value::Object(fields)
    });
    serde_json::Value::Array(list.collect())
}

/// One stream definition as written, before validation.
struct Definition {
    /// 1-based position among the streams.
    number: usize,
    /// Where it was written: `config.toml line 12: [[stream]] #2`, `--stream attributes,...`.
    at: String,
    fields: Vec<Field>,
}

struct Field {
    key: String,
    /// Where the key was written (its line in config.toml, else the definition's place).
    at: String,
    value: FieldValue,
}

enum FieldValue {
    Text(String),
    Toml(toml::Value),
}

impl FieldValue {
    fn shown(&self) -> String {
        match self {
            FieldValue::Text(text) => shown(text),
            FieldValue::Toml(value) => shown(&value.to_string()),
        }
    }
}

/// The definitions in `raw`: TOML tables (config.toml), definition strings (flags, a TOML
/// list of strings), or `;`-separated definition strings (the environment).
fn definitions_of(raw: &Raw, lines: &StreamLines) -> Result<Vec<Definition>, ConfigError> {
    let items: Vec<toml::Value> = match &raw.value {
        RawValue::Toml(toml::Value::Array(items)) => items.clone(),
        RawValue::Toml(table @ toml::Value::Table(_)) => vec![table.clone()],
        RawValue::Toml(toml::Value::String(text)) | RawValue::Text(text) => text
            .split(';')
            .filter(|spec| !spec.trim().is_empty())
            .map(|spec| toml::Value::String(spec.trim().to_string()))
            .collect(),
        RawValue::Toml(_) => {
            return Err(raw.fail("expected [[stream]] tables or \"KIND,key=value,...\" strings"))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let number = index + 1;
            match item {
                toml::Value::Table(table) => {
                    Ok(table_definition(raw, number, table, lines.get(index)))
                }
                toml::Value::String(spec) => spec_definition(raw, number, &spec),
                other => Err(raw.fail_at_source(format!(
                    "stream {number}: expected a table or a \"KIND,key=value,...\" string, found {}",
                    other.type_str()
                ))),
            }
        })
        .collect()
}

fn table_definition(
    raw: &Raw,
    number: usize,
    table: toml::Table,
    lines: Option<&BTreeMap<String, usize>>,
) -> Definition {
    let place = |line: Option<usize>| match (&raw.origin, line) {
        (Origin::File { path, .. }, Some(line)) => {
            format!("{} line {line}: [[stream]] #{number}", path.display())
        }
        _ => format!("{}: stream {number}", raw.source()),
    };
    let line_of = |key: &str| lines.and_then(|lines| lines.get(key).copied());
    let fields = table
        .into_iter()
        .map(|(key, value)| Field {
            at: place(line_of(&key).or_else(|| line_of(""))),
            key: key.replace('-', "_"),
            value: FieldValue::Toml(value),
        })
        .collect();
    Definition {
        number,
        at: place(line_of("")),
        fields,
    }
}

/// `KIND[,key=value...]`: commas inside quotes, braces or brackets (inline JSON) do not split.
fn spec_definition(raw: &Raw, number: usize, spec: &str) -> Result<Definition, ConfigError> {
    let at = match &raw.origin {
        Origin::Cli => format!("{} {}", raw.key.flag, shown(spec)),
        Origin::Env => format!("{}={}", raw.key.env, shown(spec)),
        _ => format!("{}: stream {number} {:?}", raw.source(), shown(spec)),
    };
    let mut fields = Vec::new();
    for (position, part) in split_top_level(spec).into_iter().enumerate() {
        let part = part.trim();
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key.trim(), value.trim()),
            None if position == 0 => ("kind", part),
            None => {
                return Err(invalid(format!(
                    "{at}: {}: expected key=value (keys: {})",
                    shown(part),
                    STREAM_KEYS.join(", ")
                )))
            }
        };
        fields.push(Field {
            key: key.replace('-', "_"),
            at: at.clone(),
            value: FieldValue::Text(value.to_string()),
        });
    }
    Ok(Definition { number, at, fields })
}

/// Split at commas outside double quotes, `{}` and `[]`.
fn split_top_level(spec: &str) -> Vec<&str> {
    let (mut parts, mut start, mut depth, mut quoted, mut escaped) =
        (Vec::new(), 0, 0i32, false, false);
    for (at, c) in spec.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '{' | '[' if !quoted => depth += 1,
            '}' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                parts.push(&spec[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

impl Definition {
    fn fail(&self, problem: impl std::fmt::Display) -> ConfigError {
        invalid(format!("{}: {problem}", self.at))
    }

    fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.key == key)
    }

    /// Validate every key and build the stream.
    fn resolve(
        &self,
        defaults: &RunDefaults<'_>,
        base_dir: &Path,
    ) -> Result<StreamPlan, ConfigError> {
        self.check_keys()?;
        let kind_field = self
            .field("kind")
            .ok_or_else(|| self.fail(format!("kind is missing ({})", kind_names().join(", "))))?;
        let kind_text = kind_field.text()?;
        let kind = StreamKind::parse(kind_text.trim()).ok_or_else(|| {
            kind_field.fail(format!("unknown kind (kinds: {})", kind_names().join(", ")))
        })?;
        let topic = self.topic(kind, defaults.tokens)?;
        let name = match self.field("name") {
            Some(field) => field.name()?,
            None => StreamPlan::default_name(kind, &topic),
        };
        let qos = match self.field("qos") {
            Some(field) => field.qos()?,
            None => defaults.qos,
        };
        let pace = self.pace(defaults.rated)?.unwrap_or(defaults.pace);
        let payload = self.payload(defaults, base_dir)?;
        Ok(StreamPlan {
            kind,
            name,
            topic,
            payload,
            qos,
            pace,
            declared: true,
        })
    }

    /// The stream's payload, its own or the run's, with its own `datapoints` when it has
    /// them (refused on a payload other than `industrial-plc`: they would change nothing).
    fn payload(&self, defaults: &RunDefaults<'_>, base_dir: &Path) -> Result<Payload, ConfigError> {
        let datapoints_field = self.field("datapoints");
        let datapoints = datapoints_field.map(Field::datapoints).transpose()?;
        let what = format!("stream {}", self.number);
        let payload = match (self.field("payload"), datapoints) {
            (Some(field), _) => {
                field.payload(datapoints.or(defaults.datapoints), base_dir, &what)?
            }
            // The run's industrial-plc, with this stream's own number of points.
            (None, Some(points)) if presets::is_plc(defaults.payload) => {
                presets::preset(presets::INDUSTRIAL_PLC, Some(points))
                    .unwrap_or_else(|| defaults.payload.clone())
            }
            (None, _) => defaults.payload.clone(),
        };
        match datapoints_field {
            Some(field) if !presets::is_plc(&payload) => Err(field.fail(format!(
                "only the {plc} payload has data points (payload = \"{plc}\")",
                plc = presets::INDUSTRIAL_PLC
            ))),
            _ => Ok(payload),
        }
    }

    /// Unknown and repeated keys, and more than one pace.
    fn check_keys(&self) -> Result<(), ConfigError> {
        for (n, field) in self.fields.iter().enumerate() {
            if !STREAM_KEYS.contains(&field.key.as_str()) {
                return Err(invalid(format!(
                    "{}: unknown stream key \"{}\" (keys: {})",
                    field.at,
                    shown(&field.key),
                    STREAM_KEYS.join(", ")
                )));
            }
            if self.fields[..n].iter().any(|other| other.key == field.key) {
                return Err(field.fail("is set twice"));
            }
        }
        let paces: Vec<&str> = self
            .fields
            .iter()
            .map(|field| field.key.as_str())
            .filter(|key| PACE_KEYS.contains(key))
            .collect();
        if paces.len() > 1 {
            return Err(self.fail(format!(
                "{}: one pace per stream ({})",
                paces.join(" and "),
                PACE_KEYS.join(", ")
            )));
        }
        Ok(())
    }

    fn topic(&self, kind: StreamKind, tokens: &[String]) -> Result<String, ConfigError> {
        let Some(field) = self.field("topic") else {
            return kind.default_topic().map(str::to_string).ok_or_else(|| {
                self.fail("kind = \"publish\" needs a topic (topic = ...): it has no default")
            });
        };
        let topic = field.text()?;
        if topic.is_empty() {
            return Err(field.fail("must not be empty"));
        }
        if topic.contains(['+', '#']) {
            return Err(
                field.fail("must not contain the wildcards + or # (a PUBLISH names one topic)")
            );
        }
        check_no_nul(&topic).map_err(|problem| field.fail(problem))?;
        check_mqtt_string_len(topic.len())
            .map_err(|problem| field.fail(format!("is {problem}")))?;
        let allowed: &[&str] = match kind.expects_answer() {
            true => &REQUEST_TOPIC_PLACEHOLDERS,
            false => &TOPIC_PLACEHOLDERS,
        };
        if let Some(unknown) = payload::unknown_placeholder(&topic, allowed) {
            return Err(field.fail(format!(
                "unknown placeholder {unknown} (known: {})",
                allowed.join(", ")
            )));
        }
        if kind.expects_answer() {
            // The id goes into the topic, and the answer comes on the matching response topic.
            answers::request_topic_layout(&topic).map_err(|problem| field.fail(problem))?;
            answers::answer_prefix(&topic).map_err(|problem| field.fail(problem))?;
        }
        if topic.contains("{token}") && tokens.iter().any(|token| token.contains(['+', '#'])) {
            return Err(field
                .fail("uses {token}, and a device token contains + or #, which a topic must not"));
        }
        Ok(topic)
    }

    /// The stream's own pace, if it names one; a `weight` only under a global rate (`rated`).
    fn pace(&self, rated: bool) -> Result<Option<Pace>, ConfigError> {
        if let Some(field) = self.field("interval") {
            let interval_ns = duration_ns(field.duration()?);
            return Ok(Some(Pace::Interval { interval_ns }));
        }
        if let Some(field) = self.field("between") {
            let (min, max) = field.duration_pair()?;
            if min > max {
                return Err(field.fail(format!(
                    "the minimum ({}) is above the maximum ({})",
                    format_duration(min),
                    format_duration(max)
                )));
            }
            return Ok(Some(Pace::Between {
                min_ns: duration_ns(min),
                max_ns: duration_ns(max),
            }));
        }
        if let Some(field) = self.field("constant_pacing") {
            let pace = field.duration()?;
            if pace.is_zero() {
                return Err(field.fail("must be more than 0 (for no pace at all: interval = 0)"));
            }
            return Ok(Some(Pace::ConstantPacing {
                pace_ns: duration_ns(pace),
            }));
        }
        if let Some(field) = self.field("weight") {
            let weight = field.whole()?;
            if rated {
                return match u32::try_from(weight) {
                    Ok(weight @ 1..=WEIGHT_MAX) => Ok(Some(Pace::Weight { weight })),
                    _ => Err(field.fail(format!("must be 1 to {WEIGHT_MAX}"))),
                };
            }
            return Err(field.fail(
                "a weight is a share of the global rate (rate, --rate), and none is set: give the stream an interval, between or constant_pacing",
            ));
        }
        Ok(None)
    }
}

fn kind_names() -> Vec<&'static str> {
    StreamKind::ALL.iter().map(|kind| kind.name()).collect()
}

impl Field {
    fn fail(&self, problem: impl std::fmt::Display) -> ConfigError {
        invalid(format!(
            "{}: {} = {}: {problem}",
            self.at,
            self.key,
            self.value.shown()
        ))
    }

    fn text(&self) -> Result<String, ConfigError> {
        match &self.value {
            FieldValue::Text(text) | FieldValue::Toml(toml::Value::String(text)) => {
                Ok(text.clone())
            }
            FieldValue::Toml(_) => Err(self.fail("expected a string")),
        }
    }

    fn whole(&self) -> Result<u64, ConfigError> {
        match &self.value {
            FieldValue::Toml(toml::Value::Integer(n)) => {
                u64::try_from(*n).map_err(|_| self.fail("must not be negative"))
            }
            _ => self
                .text()?
                .trim()
                .parse::<u64>()
                .map_err(|_| self.fail("expected a whole number")),
        }
    }

    fn qos(&self) -> Result<u8, ConfigError> {
        match self.whole() {
            Ok(qos @ 0..=2) => Ok(qos as u8),
            _ => Err(self.fail("must be 0, 1 or 2")),
        }
    }

    fn name(&self) -> Result<String, ConfigError> {
        let name = self.text()?;
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err(self.fail("must not be empty"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(self.fail(format!("is longer than {MAX_NAME_CHARS} characters")));
        }
        if name.chars().any(char::is_control) {
            return Err(self.fail("must not contain control characters"));
        }
        let reserved = RESERVED_NAMES
            .iter()
            .any(|fixed| trimmed == *fixed || trimmed.starts_with(&format!("{fixed}:")));
        if reserved || trimmed.eq_ignore_ascii_case("Aggregated") {
            return Err(self.fail("is the name of one of mqblast's own rows: choose another"));
        }
        Ok(trimmed.to_string())
    }

    /// `datapoints = N`: 1 to [`presets::MAX_DATAPOINTS`], as `--datapoints`.
    fn datapoints(&self) -> Result<u32, ConfigError> {
        let points = self
            .whole()
            .map_err(|_| self.fail(presets::datapoints_bound()))?;
        presets::datapoints(points).ok_or_else(|| self.fail(presets::datapoints_bound()))
    }

    fn payload(
        &self,
        datapoints: Option<u32>,
        base_dir: &Path,
        what: &str,
    ) -> Result<Payload, ConfigError> {
        let loaded = match &self.value {
            FieldValue::Toml(value @ (toml::Value::Table(_) | toml::Value::Array(_))) => {
                let json = serde_json::to_string(value).map_err(|e| self.fail(e))?;
                Payload::parse(&format!("{what}{INLINE_SUFFIX}"), &json)
            }
            _ => {
                let text = self.text()?;
                if text.trim().is_empty() {
                    return Err(self.fail("expected a file name or inline JSON"));
                }
                crate::workload::stream::load_payload(&text, datapoints, base_dir, what)
            }
        };
        loaded.map_err(|problem| invalid(format!("{}: {}: {problem}", self.at, self.key)))
    }

    fn duration(&self) -> Result<std::time::Duration, ConfigError> {
        match &self.value {
            FieldValue::Toml(toml::Value::Integer(n)) => self.seconds(*n as f64),
            FieldValue::Toml(toml::Value::Float(x)) => self.seconds(*x),
            _ => self.duration_text(&self.text()?),
        }
    }

    fn duration_text(&self, text: &str) -> Result<std::time::Duration, ConfigError> {
        let bare = text.trim();
        if let Ok(seconds) = bare.parse::<f64>() {
            return self.seconds(seconds);
        }
        parse_duration(bare).map_err(|problem| self.fail(problem))
    }

    /// A bare number of seconds; above an hour it is refused as a likely millisecond count.
    fn seconds(&self, seconds: f64) -> Result<std::time::Duration, ConfigError> {
        if seconds > BARE_SECONDS_MAX {
            return Err(self.fail(format!(
                "a bare number is seconds: did you mean {seconds}ms? Write the unit (bare numbers above {BARE_SECONDS_MAX} are refused)"
            )));
        }
        std::time::Duration::try_from_secs_f64(seconds)
            .map_err(|_| self.fail("expected a duration like 30 (seconds), 30s, 5m or 250ms"))
    }

    /// `between`: `["1s", "3s"]` (TOML) or `1s..3s`.
    fn duration_pair(&self) -> Result<(std::time::Duration, std::time::Duration), ConfigError> {
        const FORMS: &str = "expected two durations: [\"1s\", \"3s\"], or 1s..3s";
        let (min, max) = match &self.value {
            FieldValue::Toml(toml::Value::Array(items)) if items.len() == 2 => {
                let one = |item: &toml::Value| match item {
                    toml::Value::Integer(n) => self.seconds(*n as f64),
                    toml::Value::Float(x) => self.seconds(*x),
                    toml::Value::String(text) => self.duration_text(text),
                    _ => Err(self.fail(FORMS)),
                };
                (one(&items[0])?, one(&items[1])?)
            }
            FieldValue::Toml(toml::Value::Array(_)) => return Err(self.fail(FORMS)),
            _ => {
                let text = self.text()?;
                let (min, max) = text.split_once("..").ok_or_else(|| self.fail(FORMS))?;
                (self.duration_text(min)?, self.duration_text(max)?)
            }
        };
        Ok((min, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_inside_json_and_quotes_do_not_split_a_definition() {
        assert_eq!(
            split_top_level(r#"telemetry,payload={"a":1,"b":[1,2]},name="x,y",qos=0"#),
            vec![
                "telemetry",
                r#"payload={"a":1,"b":[1,2]}"#,
                r#"name="x,y""#,
                "qos=0"
            ]
        );
        assert_eq!(split_top_level("attributes"), vec!["attributes"]);
    }

    #[test]
    fn paces_read_as_config_toml_writes_them() {
        assert_eq!(
            pace_text(&Pace::Between {
                min_ns: 1_000_000_000,
                max_ns: 3_000_000_000
            }),
            "between 1s..3s"
        );
        assert_eq!(
            pace_text(&Pace::interval(std::time::Duration::from_millis(250))),
            "interval 250ms"
        );
        assert_eq!(
            pace_text(&Pace::ConstantPacing {
                pace_ns: 2_000_000_000
            }),
            "constant_pacing 2s"
        );
    }
}
