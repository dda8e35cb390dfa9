//! data.json -> pre-serialized PUBLISH frames with patch offsets.
//!
//! Each client gets one frame per payload object (data.json may be an array used in rotation),
//! built once when the client is created. Per message the engine copies the frame into the
//! connection's write buffer and patches the packet identifier and the per-message fields
//! (sequence number, timestamp, random values) in place, at fixed width, so the JSON stays
//! valid and nothing is allocated.
//!
//! Placeholders:
//! - per client, anywhere inside string values and in the topic / client id templates: `{i}`
//!   (client index), `{token}` (device token), `{client_id}` (resolved client id). Resolved once
//!   per client by [`render`] / [`build_frames`]. Other `{...}` text in payload strings is kept
//!   as written (payloads may legitimately contain braces).
//! - per message, only as a whole string value (they become JSON numbers or booleans, written
//!   right-aligned in a fixed-width field padded with leading spaces; JSON allows whitespace
//!   before a value, leading zeros would be invalid); see [`crate::workload::fields`]:
//!   - `"{seq}"`: the client's message sequence number, from 1; 10 characters, modulo 10^10;
//!   - `"{ts}"`: epoch milliseconds at send time; 13 characters (13 digits until the year 2286);
//!   - `"{int:MIN..MAX}"`: a random integer, both ends included;
//!   - `"{float:MIN..MAX:D}"`: a random number with D decimals (`{float:20.0..30.0:2}`);
//!   - `"{bool:P}"`: `true` with probability P (`{bool:0.98}`);
//!   - `|alarm=V` after the arguments (`"{int:50..99|alarm=10}"`): the value written instead
//!     when the message is an alarm (`Frame::write_message`'s `alarm`).
//!
//!   Random values come from a generator per frame, seeded from the client index; at most
//!   [`MAX_FIELDS_PER_OBJECT`] fields per payload object.
//!
//! End-to-end marker (only when the run has subscribers or `--e2e`): each payload object gets
//! one more member, last, `"_mqb":"PPPPPPPPSSSSSSSSSSSSTTTTTTTTTTTTTTTT"`: the publisher's
//! global index (8 hex digits), its message sequence number modulo 2^48 (12 hex digits,
//! the first is 1) and the send time (16 hex digits, nanoseconds: see [`e2e_now_ns`]). Fixed
//! width, lower case hex, so the JSON stays valid, the user's members stay as they are, and a subscriber
//! finds it at a fixed distance from the end of the payload ([`find_marker`]) without parsing.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::mqtt::publish::{self, PublishLayout};
use crate::mqtt::{v5, Version};
use crate::plan::Plan;
use crate::workload::fields::{self, Field, Rng};
pub use crate::workload::fields::{SEQ_WIDTH, TS_WIDTH};

/// The default payload, built into the binary so a bare `mqblast` works in an empty directory.
pub const DEFAULT_DATA_JSON: &str = include_str!("../data.json");

/// How the built-in payload is named in messages and in the effective configuration.
pub const BUILTIN_SOURCE: &str = "built-in data.json";

/// Most per-message fields one payload object may hold: the `industrial-plc` preset's
/// largest (999 data points and `ts`) fits. Each frame keeps a list of their offsets
/// (4 bytes each), allocated once when the frame is built; their descriptions are shared by
/// every client's frame of the object. Patching walks that fixed list, never a growing one.
pub const MAX_FIELDS_PER_OBJECT: usize = 1024;

/// Member name of the end-to-end marker.
pub const E2E_KEY: &str = "_mqb";
/// What precedes the marker's hex digits.
const E2E_PREFIX: &[u8] = b"\"_mqb\":\"";
const E2E_PUBLISHER_HEX: usize = 8;
const E2E_SEQ_HEX: usize = 12;
const E2E_TS_HEX: usize = 16;
const E2E_HEX: usize = E2E_PUBLISHER_HEX + E2E_SEQ_HEX + E2E_TS_HEX;
/// Bytes from the start of the marker's prefix to the end of the payload (`"}` included).
pub const E2E_TAIL_BYTES: usize = E2E_PREFIX.len() + E2E_HEX + 2;
/// Marker sequence numbers wrap modulo 2^48 (the delivery audit unwraps them).
pub const E2E_SEQ_MODULUS: u64 = 1 << 48;

/// What a subscriber reads from a marked payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub publisher: u32,
    /// Sequence number modulo [`E2E_SEQ_MODULUS`].
    pub seq: u64,
    /// Send time, see [`e2e_now_ns`].
    pub sent_ns: u64,
}

/// The marker's clock: the run's wall-clock start in epoch nanoseconds plus the monotonic
/// nanoseconds since `Control::start`. In one process (publishers and subscribers of one
/// mqblast) differences are exactly monotonic-clock differences; between processes or hosts
/// they include the difference of the wall clocks at their starts (NTP skew), so the
/// latency a subscriber computes for another host's message is only as good as the clocks.
#[inline]
pub fn e2e_now_ns(start_epoch_ns: u64, since_start_ns: u64) -> u64 {
    start_epoch_ns.wrapping_add(since_start_ns)
}

/// The marker at the end of `payload`, if it has one. Reads 46 bytes; never allocates.
#[inline]
pub fn find_marker(payload: &[u8]) -> Option<Marker> {
    let tail = payload.get(payload.len().checked_sub(E2E_TAIL_BYTES)?..)?;
    let (prefix, rest) = tail.split_at(E2E_PREFIX.len());
    if prefix != E2E_PREFIX || &rest[E2E_HEX..] != b"\"}" {
        return None;
    }
    let publisher = parse_hex(&rest[..E2E_PUBLISHER_HEX])?;
    let seq = parse_hex(&rest[E2E_PUBLISHER_HEX..E2E_PUBLISHER_HEX + E2E_SEQ_HEX])?;
    let sent_ns = parse_hex(&rest[E2E_PUBLISHER_HEX + E2E_SEQ_HEX..E2E_HEX])?;
    Some(Marker {
        publisher: u32::try_from(publisher).ok()?,
        seq,
        sent_ns,
    })
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(v))
    })
}

/// Write `value` as `field.len()` lower-case hex digits (the low bits), zero padded.
#[inline]
fn write_hex(field: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut rest = value;
    for byte in field.iter_mut().rev() {
        *byte = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
    }
}

/// Append the marker member to a serialized object (`{...}`) in `body`; returns the offset
/// of its sequence digits in `body`.
fn append_marker(body: &mut Vec<u8>, publisher: u64) -> usize {
    body.pop(); // the object's closing brace
    if body.len() > 1 {
        body.push(b',');
    }
    body.extend_from_slice(E2E_PREFIX);
    let at = body.len();
    body.resize(at + E2E_HEX, b'0');
    write_hex(&mut body[at..at + E2E_PUBLISHER_HEX], publisher);
    body.extend_from_slice(b"\"}");
    at + E2E_PUBLISHER_HEX
}

/// Largest serialized payload object accepted: the MQTT remaining-length limit (268,435,455)
/// less room for the topic (at most 65,535 bytes + 2) and the packet identifier.
pub const MAX_PAYLOAD_BYTES: usize = 268_435_455 - 65_537 - 2;

/// The parsed payload file: one or more JSON objects used in rotation.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The file as named in messages ("data.json", [`BUILTIN_SOURCE`], "preset smart-meter").
    source: String,
    /// Always at least one; each is a JSON object.
    objects: Vec<Value>,
    /// Each object's per-message fields in document order (the order [`build_frames`] meets
    /// them), parsed once and shared by every client's frames.
    fields: Vec<Arc<[Field]>>,
    /// The built-in preset this payload is, if it is one.
    preset: Option<PresetRef>,
}

/// A built-in payload named by `--payload NAME` (see [`crate::workload::presets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetRef {
    pub name: &'static str,
    /// `--datapoints` of a preset that has them (industrial-plc).
    pub datapoints: Option<u32>,
}

impl Payload {
    /// Parse payload text; `source` names it in error messages (one line each). A leading
    /// byte-order mark (files saved by Windows editors) is skipped, as for the other files.
    pub fn parse(source: &str, text: &str) -> Result<Payload, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value =
            serde_json::from_str(text).map_err(|err| json_error_line(source, &err))?;
        let objects = match value {
            Value::Object(_) => vec![value],
            Value::Array(items) => items,
            other => {
                return Err(format!(
                    "{source}: expected a JSON object or an array of objects, found {}",
                    kind_of(&other)
                ))
            }
        };
        if objects.is_empty() {
            return Err(format!(
                "{source}: the array is empty: give at least one object"
            ));
        }
        let fields = objects
            .iter()
            .enumerate()
            .map(|(index, object)| check_object(source, index, objects.len(), object))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Payload {
            source: source.to_string(),
            objects,
            fields,
            preset: None,
        })
    }

    /// This payload as the built-in preset `preset` (named so in the effective configuration).
    pub fn into_preset(mut self, preset: PresetRef) -> Payload {
        self.preset = Some(preset);
        self
    }

    /// The preset this payload is, if it is one.
    pub fn preset(&self) -> Option<PresetRef> {
        self.preset
    }

    /// How the effective configuration writes this payload: the preset's name, or the file.
    pub fn setting(&self) -> &str {
        self.preset.map_or(&self.source, |preset| preset.name)
    }

    /// Per-message fields of object `object` (in rotation order), in document order.
    pub fn fields_of(&self, object: usize) -> &[Field] {
        self.fields.get(object).map_or(&[], |fields| fields)
    }

    /// Read and parse a payload file.
    pub fn load(path: &Path) -> Result<Payload, String> {
        let source = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|err| format!("payload {source}: {err}"))?;
        Payload::parse(&source, &text)
    }

    /// The default payload built into the binary.
    pub fn builtin() -> Payload {
        Payload::parse(BUILTIN_SOURCE, DEFAULT_DATA_JSON)
            .expect("the built-in data.json is checked by a unit test")
    }

    /// Where the payload came from, as named in messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The objects, in rotation order.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// Number of objects (at least 1).
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Always false: a payload has at least one object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Per-client values that templates may use.
#[derive(Debug, Clone, Copy)]
pub struct ClientVars<'a> {
    /// Global client index (0-based).
    pub index: u64,
    /// Device token ("" when none).
    pub token: &'a str,
    /// Resolved client id ("" while resolving the client id template itself).
    pub client_id: &'a str,
}

/// A JSON value serialized once, with its per-message fields, for messages that are put
/// together from several parts (a gateway message holds one fragment per device). Per
/// message it is copied and its fields written in place, as a [`Frame`]'s payload is.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// The value as `serde_json::to_vec` writes it, per-message fields at their initial values.
    bytes: Box<[u8]>,
    /// The value's per-message fields, in document order.
    fields: Arc<[Field]>,
    /// Offset of each field (same order) from the fragment's start.
    field_at: Box<[u32]>,
    /// The generator of this fragment's random values, advanced by every message.
    rng: Cell<Rng>,
}

impl Fragment {
    /// Serialize `value`, resolving per-client placeholders with `vars`. The value must have
    /// passed the checks a payload object passes (at most [`MAX_FIELDS_PER_OBJECT`] fields);
    /// its random values are seeded from the run's seed and the client (device) index, as a
    /// frame's are.
    pub fn build(value: &Value, vars: &ClientVars<'_>, run_seed: u64) -> Fragment {
        let mut found = Vec::new();
        let mut path = String::from("$");
        // Checked when the payload was parsed; a field that failed here is sent as its text.
        let _ = check_strings(value, &mut path, &mut found);
        let seed = fields::seed_for(run_seed, vars.index, 0);
        let mut laid_out = BodyFields {
            fields: found.into(),
            at: Vec::new(),
            seed,
        };
        let mut bytes = Vec::new();
        write_value(value, vars, &mut bytes, &mut laid_out);
        Fragment {
            bytes: bytes.into_boxed_slice(),
            fields: laid_out.fields,
            field_at: laid_out.at.into_boxed_slice(),
            rng: Cell::new(Rng::new(seed)),
        }
    }

    /// Append the fragment to `out` with `seq`, the time and fresh random values written, or
    /// each field's alarm value where it has one when `alarm` is set (a gateway device's
    /// point that is one of the global rate's alarms). Allocation-free when `out` has room
    /// for `self.len()` more bytes.
    #[inline]
    pub fn write_into(&self, out: &mut Vec<u8>, seq: u64, now_epoch_ms: u64, alarm: bool) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let bytes = &mut out[start..];
        let mut rng = self.rng.get();
        for (field, &at) in self.fields.iter().zip(self.field_at.iter()) {
            let at = at as usize;
            field.write(
                &mut bytes[at..at + usize::from(field.width)],
                &mut rng,
                seq,
                now_epoch_ms,
                alarm,
            );
        }
        self.rng.set(rng);
    }

    /// Length in bytes (the same for every message: the fields have fixed widths).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false for a serialized JSON value.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Whether any string in `value` uses a per-client placeholder (`{i}`, `{token}`,
/// `{client_id}`): if none does, the value serializes the same for every client.
pub fn uses_client_placeholders(value: &Value) -> bool {
    match value {
        Value::String(text) => ["{i}", "{token}", "{client_id}"]
            .iter()
            .any(|placeholder| text.contains(placeholder)),
        Value::Array(items) => items.iter().any(uses_client_placeholders),
        Value::Object(map) => map.values().any(uses_client_placeholders),
        _ => false,
    }
}

/// Number of per-message fields (`"{seq}"`, `"{ts}"`, `"{int:..}"`, ... string values) in `value`.
pub fn message_field_count(value: &Value) -> usize {
    match value {
        Value::String(text) => usize::from(fields::is_field(text)),
        Value::Array(items) => items.iter().map(message_field_count).sum(),
        Value::Object(map) => map.values().map(message_field_count).sum(),
        _ => 0,
    }
}

/// One client's PUBLISH frame for one payload object.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The encoded PUBLISH packet with packet id 0 and initial per-message fields.
    bytes: Box<[u8]>,
    /// Offset of the 2-byte packet identifier (None at QoS 0).
    pkid_at: Option<u32>,
    /// The object's per-message fields, shared by every client's frame of it.
    fields: Arc<[Field]>,
    /// Offset of each field (same order) from the frame start: this client's, fixed at build.
    field_at: Box<[u32]>,
    /// The generator of this frame's random values, advanced by every message.
    rng: Cell<Rng>,
    /// Offset of the end-to-end marker's sequence digits (None: unmarked payload).
    e2e_seq_at: Option<u32>,
    /// MQTT 5 `--topic-alias`: the same message with an empty topic and the alias, used
    /// once this frame (topic and alias) has set the alias on the connection.
    aliased: Option<Box<Frame>>,
}

/// The per-message fields of one payload object as [`write_value`] laid them out in its
/// serialized body.
struct BodyFields {
    fields: Arc<[Field]>,
    /// Offsets from the body start, in the order of `fields`.
    at: Vec<u32>,
    seed: u64,
}

impl Frame {
    /// Append this frame to `out` with its packet id, sequence number and timestamp patched
    /// (no end-to-end time, no alarm). Allocation-free when `out` has capacity for
    /// `self.len()` more bytes.
    pub fn write_into(&self, out: &mut Vec<u8>, pkid: u16, seq: u64, now_epoch_ms: u64) {
        self.write_message(out, pkid, seq, now_epoch_ms, 0, false);
    }

    /// Append this frame to `out` with its packet id and per-message fields written: `seq`,
    /// `now_epoch_ms`, fresh random values, or each field's alarm value where it has one when
    /// `alarm` is set; and the end-to-end marker (if the frame has one) stamped with `seq` and
    /// `sent_ns` (see [`e2e_now_ns`]). Allocation-free when `out` has room for `self.len()`.
    #[inline]
    pub fn write_message(
        &self,
        out: &mut Vec<u8>,
        pkid: u16,
        seq: u64,
        now_epoch_ms: u64,
        sent_ns: u64,
        alarm: bool,
    ) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let frame = &mut out[start..];
        if let Some(at) = self.pkid_at {
            crate::mqtt::publish::patch_pkid(frame, at as usize, pkid);
        }
        let mut rng = self.rng.get();
        for (field, &at) in self.fields.iter().zip(self.field_at.iter()) {
            let at = at as usize;
            let value = &mut frame[at..at + usize::from(field.width)];
            field.write(value, &mut rng, seq, now_epoch_ms, alarm);
        }
        self.rng.set(rng);
        if let Some(at) = self.e2e_seq_at {
            let at = at as usize;
            write_hex(&mut frame[at..at + E2E_SEQ_HEX], seq);
            let ts_at = at + E2E_SEQ_HEX;
            write_hex(&mut frame[ts_at..ts_at + E2E_TS_HEX], sent_ns);
        }
    }

    /// The frame to send: the aliased one (empty topic) once the connection has set the
    /// alias, else this one.
    #[inline]
    pub fn for_alias(&self, alias_set: bool) -> &Frame {
        match &self.aliased {
            Some(aliased) if alias_set => aliased,
            _ => self,
        }
    }

    /// Length of the encoded frame in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a PUBLISH frame has at least a fixed header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The frame as built (packet id 0, per-message fields at their initial values).
    pub fn template_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn new(
        bytes: Vec<u8>,
        layout: PublishLayout,
        body: &BodyFields,
        e2e_seq_at: Option<usize>,
    ) -> Frame {
        let payload_at = layout.payload_at as u32;
        Frame {
            bytes: bytes.into_boxed_slice(),
            pkid_at: layout.pkid_at.map(|at| at as u32),
            fields: Arc::clone(&body.fields),
            field_at: body.at.iter().map(|at| at + payload_at).collect(),
            rng: Cell::new(Rng::new(body.seed)),
            e2e_seq_at: e2e_seq_at.map(|at| (at + layout.payload_at) as u32),
            aliased: None,
        }
    }
}

/// Resolve per-client placeholders (`{i}`, `{token}`, `{client_id}`) in a template.
pub fn render(template: &str, vars: &ClientVars<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let consumed = if rest.starts_with("{i}") {
            out.push_str(&vars.index.to_string());
            3
        } else if rest.starts_with("{token}") {
            out.push_str(vars.token);
            7
        } else if rest.starts_with("{client_id}") {
            out.push_str(vars.client_id);
            11
        } else {
            out.push('{');
            1
        };
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    out
}

/// Resolve the per-client placeholders of MQTT 5 user properties (names and values).
pub fn render_pairs(pairs: &[(String, String)], vars: &ClientVars<'_>) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (render(name, vars), render(value, vars)))
        .collect()
}

/// The first `{name}` placeholder in `template` whose name is not in `allowed`, for the
/// config checks of the topic and client id templates (a typo there would go unnoticed).
pub fn unknown_placeholder<'t>(template: &'t str, allowed: &[&str]) -> Option<&'t str> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        rest = &rest[open..];
        let name_len = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - 1);
        let candidate_end = 1 + name_len;
        if name_len > 0 && rest[candidate_end..].starts_with('}') {
            let placeholder = &rest[..candidate_end + 1];
            if !allowed.contains(&placeholder) {
                return Some(placeholder);
            }
        }
        rest = &rest[1..];
    }
    None
}

/// What one stream publishes: the topic template, the payload objects and the QoS. The
/// single-stream settings of a plan are one ([`FrameSpec::of_plan`]); each stream of
/// `workload::stream` is another.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec<'a> {
    pub topic: &'a str,
    pub payload: &'a Payload,
    pub qos: u8,
}

impl<'a> FrameSpec<'a> {
    /// The plan's single-stream settings (`topic`, `payload`, `qos`).
    pub fn of_plan(plan: &'a Plan) -> FrameSpec<'a> {
        FrameSpec {
            topic: &plan.topic,
            payload: &plan.payload,
            qos: plan.qos,
        }
    }
}

/// Build a client's frames for the plan's single-stream settings (one per payload object,
/// in rotation order).
pub fn build_frames(plan: &Plan, vars: &ClientVars<'_>) -> Vec<Frame> {
    build_frames_of(plan, &FrameSpec::of_plan(plan), vars)
}

/// Build a client's frames of one stream (one per payload object, in rotation order), with
/// the plan's protocol version, MQTT 5 properties and end-to-end marker.
pub fn build_frames_of(plan: &Plan, spec: &FrameSpec<'_>, vars: &ClientVars<'_>) -> Vec<Frame> {
    let topic = render(spec.topic, vars);
    let user_properties = render_pairs(&plan.v5.user_properties, vars);
    let mut body = Vec::new();
    spec.payload
        .objects
        .iter()
        .zip(&spec.payload.fields)
        .enumerate()
        .map(|(n, (object, fields))| {
            body.clear();
            let mut laid_out = BodyFields {
                fields: Arc::clone(fields),
                at: Vec::with_capacity(fields.len()),
                seed: fields::seed_for(plan.seed, vars.index, n as u64),
            };
            write_value(object, vars, &mut body, &mut laid_out);
            let e2e_seq_at = plan.e2e.then(|| append_marker(&mut body, vars.index));
            match plan.mqtt_version {
                Version::V311 => {
                    let mut bytes = Vec::with_capacity(body.len() + topic.len() + 9);
                    let layout = publish::encode(&mut bytes, &topic, spec.qos, false, 0, &body);
                    Frame::new(bytes, layout, &laid_out, e2e_seq_at)
                }
                Version::V5 => v5_frame(
                    plan,
                    (&topic, spec.qos),
                    &user_properties,
                    &body,
                    laid_out,
                    e2e_seq_at,
                ),
            }
        })
        .collect()
}

/// The topic alias every `--topic-alias` connection uses (one topic per client).
pub const TOPIC_ALIAS: u16 = 1;

/// An MQTT 5 frame with the plan's PUBLISH properties; with `--topic-alias`, the frame that
/// sets the alias (topic and alias) holding the one that uses it (empty topic and alias).
fn v5_frame(
    plan: &Plan,
    (topic, qos): (&str, u8),
    user_properties: &[(String, String)],
    body: &[u8],
    mut laid_out: BodyFields,
    e2e_seq_at: Option<usize>,
) -> Frame {
    let mut properties = v5::publish::PublishProperties {
        payload_format_indicator: plan.v5.payload_format_indicator,
        message_expiry_s: plan.v5.message_expiry_s,
        content_type: plan.v5.content_type.as_deref(),
        topic_alias: plan.v5.topic_alias.then_some(TOPIC_ALIAS),
        user_properties,
    };
    let encode = |topic: &str,
                  properties: &v5::publish::PublishProperties<'_>,
                  laid_out: &BodyFields| {
        let mut bytes = Vec::with_capacity(body.len() + topic.len() + 9 + properties.block_len());
        let layout = v5::publish::encode(&mut bytes, topic, qos, false, 0, properties, body);
        Frame::new(bytes, layout, laid_out, e2e_seq_at)
    };
    let mut frame = encode(topic, &properties, &laid_out);
    if plan.v5.topic_alias {
        properties.topic_alias = Some(TOPIC_ALIAS);
        // Its own generator: it sends every message after the first of each connection.
        laid_out.seed = !laid_out.seed;
        frame.aliased = Some(Box::new(encode("", &properties, &laid_out)));
    }
    frame
}

/// Serialize `value` compactly (as `serde_json::to_vec`, keys in file order), rendering
/// per-client placeholders and recording the offsets of the per-message fields (met in the
/// order `Payload::parse` listed them).
fn write_value(value: &Value, vars: &ClientVars<'_>, out: &mut Vec<u8>, laid_out: &mut BodyFields) {
    match value {
        Value::String(text) if fields::is_field(text) => write_field(text, out, laid_out),
        Value::String(text) if text.contains('{') => write_json(out, &render(text, vars)),
        Value::String(text) => write_json(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(item, vars, out, laid_out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (n, (key, item)) in map.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_json(out, key);
                out.push(b':');
                write_value(item, vars, out, laid_out);
            }
            out.push(b'}');
        }
        scalar => write_json(out, scalar),
    }
}

/// Lay out the next per-message field (written as `text` in the payload) at the end of
/// `out`, with its initial value.
fn write_field(text: &str, out: &mut Vec<u8>, laid_out: &mut BodyFields) {
    let Some(field) = laid_out.fields.get(laid_out.at.len()).copied() else {
        // `Payload::parse` listed every field `is_field` finds, so this does not happen; were
        // one missing, its text would be sent as written rather than break the JSON.
        write_json(out, text);
        return;
    };
    let at = out.len();
    out.resize(at + usize::from(field.width), b' ');
    field.write_initial(&mut out[at..]);
    laid_out.at.push(at as u32);
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("serializing a JSON value into a Vec cannot fail");
}

/// One line: `file: line L column C: problem`.
fn json_error_line(source: &str, err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let problem = full.strip_suffix(&suffix).unwrap_or(&full);
    format!(
        "{source}: line {} column {}: {problem}",
        err.line(),
        err.column()
    )
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reject what would be silently wrong at run time: non-objects in the rotation, malformed
/// per-message fields, fields inside a longer string, too many fields, oversized objects.
/// Returns the object's fields in document order.
fn check_object(
    source: &str,
    index: usize,
    count: usize,
    object: &Value,
) -> Result<Arc<[Field]>, String> {
    let mut path = if count == 1 && object.is_object() {
        String::from("$")
    } else {
        format!("$[{index}]")
    };
    if !object.is_object() {
        return Err(format!(
            "{source}: {path}: expected an object, found {}",
            kind_of(object)
        ));
    }
    let mut found = Vec::new();
    check_strings(object, &mut path, &mut found)
        .map_err(|problem| format!("{source}: {problem}"))?;
    let size = serde_json::to_vec(object).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "{source}: {path}: {size} bytes serialized, more than an MQTT packet can carry ({MAX_PAYLOAD_BYTES})"
        ));
    }
    Ok(found.into())
}

/// Walk `value` in serialization order, collecting its per-message fields into `found`;
/// `path` (`$.a[2].b`) names the value in errors.
fn check_strings(value: &Value, path: &mut String, found: &mut Vec<Field>) -> Result<(), String> {
    match value {
        Value::String(text) => match fields::parse(text) {
            Some(Ok(field)) if found.len() < MAX_FIELDS_PER_OBJECT => found.push(field),
            Some(Ok(_)) => {
                return Err(format!(
                    "{path}: more than {MAX_FIELDS_PER_OBJECT} per-message fields in one object"
                ))
            }
            Some(Err(problem)) => return Err(format!("{path}: {problem}")),
            None if fields::mentioned_inside(text) => {
                return Err(format!(
                    "{path}: {text:?}: per-message fields ({{seq}}, {{ts}}, {{int:..}}, {{float:..}}, {{bool:..}}) must be the whole string value (they become numbers or booleans)"
                ));
            }
            None => {}
        },
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{n}]"));
                check_strings(item, path, found)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                check_strings(item, path, found)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn vars(index: u64, token: &str, client_id: &'static str) -> ClientVars<'static> {
        ClientVars {
            index,
            token: Box::leak(token.to_string().into_boxed_str()),
            client_id,
        }
    }

    /// Frames for a payload text, returning (frames, payload_at).
    fn frames_for(text: &str, qos: u8, topic: &str) -> (Vec<Frame>, usize) {
        let payload = Payload::parse("data.json", text).unwrap();
        let plan = crate::config::tests::plan_with_payload(payload, qos, topic);
        let v = vars(7, "tok7", "dev-7");
        let frames = build_frames(&plan, &v);
        let mut probe = Vec::new();
        let payload_at =
            publish::encode(&mut probe, &render(topic, &v), qos, false, 0, b"").payload_at;
        (frames, payload_at)
    }

    fn patched(frame: &Frame, payload_at: usize, pkid: u16, seq: u64, ts: u64) -> Value {
        let mut out = Vec::new();
        frame.write_into(&mut out, pkid, seq, ts);
        serde_json::from_slice(&out[payload_at..]).unwrap()
    }

    #[test]
    fn a_data_json_with_a_byte_order_mark_is_read_like_the_other_files() {
        let plain = Payload::parse("data.json", r#"{"t": 1}"#).unwrap();
        let marked = Payload::parse("data.json", "\u{feff}{\"t\": 1}").unwrap();
        assert_eq!(marked.objects, plain.objects);
    }

    #[test]
    fn the_built_in_data_json_parses_and_is_about_200_bytes() {
        let payload = Payload::builtin();
        assert_eq!(payload.len(), 1);
        let size = serde_json::to_vec(&payload.objects()[0]).unwrap().len();
        assert!((150..=260).contains(&size), "size {size}");
    }

    #[test]
    fn a_single_object_is_a_rotation_of_one() {
        let payload = Payload::parse("data.json", r#"{"a":1}"#).unwrap();
        assert_eq!(payload.len(), 1);
        assert_eq!(payload.source(), "data.json");
    }

    #[test]
    fn a_number_is_rejected_naming_the_file() {
        let err = Payload::parse("data.json", "42").unwrap_err();
        assert_eq!(
            err,
            "data.json: expected a JSON object or an array of objects, found a number"
        );
    }

    #[test]
    fn an_empty_array_is_rejected() {
        let err = Payload::parse("d.json", "[]").unwrap_err();
        assert!(err.starts_with("d.json: the array is empty"), "{err}");
    }

    #[test]
    fn an_array_with_a_non_object_is_rejected_naming_the_element() {
        let err = Payload::parse("d.json", r#"[{"a":1}, 2]"#).unwrap_err();
        assert_eq!(err, "d.json: $[1]: expected an object, found a number");
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let err = Payload::parse("data.json", "{\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
        assert_eq!(err, "data.json: line 3 column 3: expected `,` or `}`");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = Payload::load(Path::new("/nonexistent/mqblast/data.json")).unwrap_err();
        assert!(
            err.starts_with("payload /nonexistent/mqblast/data.json: "),
            "{err}"
        );
    }

    #[test]
    fn seq_inside_a_longer_string_is_rejected_with_its_path() {
        let err = Payload::parse("d.json", r#"{"m":{"id":"dev-{seq}"}}"#).unwrap_err();
        assert!(err.starts_with("d.json: $.m.id: \"dev-{seq}\": "), "{err}");
    }

    #[test]
    fn too_many_per_message_fields_are_rejected_and_the_bound_itself_is_accepted() {
        let object = |count: usize| {
            let fields: Vec<String> = (0..count)
                .map(|n| format!("\"f{n}\":\"{{int:0..9}}\""))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        let err = Payload::parse("d.json", &object(MAX_FIELDS_PER_OBJECT + 1)).unwrap_err();
        assert_eq!(
            err,
            "d.json: $.f1024: more than 1024 per-message fields in one object"
        );
        let payload = Payload::parse("d.json", &object(MAX_FIELDS_PER_OBJECT)).unwrap();
        assert_eq!(payload.fields_of(0).len(), MAX_FIELDS_PER_OBJECT);
    }

    #[test]
    fn render_replaces_every_client_placeholder() {
        let v = vars(42, "abc", "dev-42");
        assert_eq!(
            render("{i}/{token}/{client_id}/{i}", &v),
            "42/abc/dev-42/42"
        );
    }

    #[test]
    fn render_keeps_other_braces_as_written() {
        let v = vars(1, "t", "c");
        assert_eq!(render("{x} {i {} }{", &v), "{x} {i {} }{");
    }

    #[test]
    fn unknown_placeholders_are_found_and_known_ones_pass() {
        let allowed = ["{i}", "{token}"];
        assert_eq!(
            unknown_placeholder("a/{i}/{tokn}", &allowed),
            Some("{tokn}")
        );
        assert_eq!(unknown_placeholder("a/{i}/{token}/{", &allowed), None);
        assert_eq!(unknown_placeholder("{}{ x}", &allowed), None);
    }

    #[test]
    fn frames_serialize_compactly_with_keys_in_file_order() {
        let text = r#"{"z": 1, "a": {"y": [true, null, 2.5], "b": "x"}, "m": "é\n"}"#;
        let (frames, payload_at) = frames_for(text, 0, "t");
        let body = &frames[0].template_bytes()[payload_at..];
        let expected = serde_json::to_vec(&serde_json::from_str::<Value>(text).unwrap()).unwrap();
        assert_eq!(body, &expected[..]);
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            "{\"z\":1,\"a\":{\"y\":[true,null,2.5],\"b\":\"x\"},\"m\":\"é\\n\"}"
        );
    }

    #[test]
    fn client_placeholders_are_resolved_in_payload_strings_and_topic() {
        let text = r#"{"device":"tracker-{i}","token":"{token}","id":"{client_id}"}"#;
        let (frames, payload_at) = frames_for(text, 1, "v1/{token}/gps");
        let frame = frames[0].template_bytes();
        assert_eq!(&frame[4..4 + 11], b"v1/tok7/gps");
        let body: Value = serde_json::from_slice(&frame[payload_at..]).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"device":"tracker-7","token":"tok7","id":"dev-7"})
        );
    }

    #[test]
    fn patching_keeps_the_payload_valid_json_for_many_values() {
        let text = r#"{"seq":"{seq}","ts":"{ts}","nested":[{"s":"{seq}"}],"v":1}"#;
        let (frames, payload_at) = frames_for(text, 1, "v1/lptrk/gps");
        let cases = [
            (1, 0),
            (9, 42),
            (10, 1_700_000_000_123),
            (123_456, 9_999_999_999_999),
            (9_999_999_999, 1_000_000_000_000),
        ];
        for (seq, ts) in cases {
            let body = patched(&frames[0], payload_at, 5, seq, ts);
            assert_eq!(body["seq"], seq, "seq {seq}");
            assert_eq!(body["ts"], ts, "ts {ts}");
            assert_eq!(body["nested"][0]["s"], seq);
            assert_eq!(body["v"], 1);
        }
        let wrapped = patched(&frames[0], payload_at, 5, 10_000_000_001, 1);
        assert_eq!(wrapped["seq"], 1);
    }

    #[test]
    fn the_packet_identifier_is_patched_at_qos_1_and_absent_at_qos_0() {
        let (frames, payload_at) = frames_for(r#"{"a":"{seq}"}"#, 1, "t");
        let mut out = Vec::new();
        frames[0].write_into(&mut out, 0xBEEF, 1, 1);
        assert_eq!(&out[payload_at - 2..payload_at], &[0xBE, 0xEF]);

        let (frames, payload_at) = frames_for(r#"{"a":"{seq}"}"#, 0, "t");
        let mut out = Vec::new();
        frames[0].write_into(&mut out, 0xBEEF, 3, 1);
        assert_eq!(
            &out[..payload_at],
            &frames[0].template_bytes()[..payload_at]
        );
        assert_eq!(out.len(), frames[0].len());
    }

    #[test]
    fn write_into_appends_without_reallocating_when_capacity_suffices() {
        let (frames, _) = frames_for(r#"{"seq":"{seq}","ts":"{ts}"}"#, 1, "t");
        let frame = &frames[0];
        let mut out = Vec::with_capacity(frame.len() * 3);
        out.extend_from_slice(b"xyz");
        let pointer = out.as_ptr();
        frame.write_into(&mut out, 1, 1, 1);
        frame.write_into(&mut out, 2, 2, 2);
        assert_eq!(out.as_ptr(), pointer);
        assert_eq!(out.len(), 3 + 2 * frame.len());
        assert_eq!(&out[..3], b"xyz");
    }

    #[test]
    fn an_array_yields_one_frame_per_object_in_rotation_order() {
        let text = r#"[{"n":0,"seq":"{seq}"},{"n":1},{"n":2,"ts":"{ts}"}]"#;
        let (frames, payload_at) = frames_for(text, 1, "t");
        assert_eq!(frames.len(), 3);
        for (n, frame) in frames.iter().enumerate() {
            let body = patched(frame, payload_at, 1, 77, 88);
            assert_eq!(body["n"], n);
        }
        assert_eq!(patched(&frames[0], payload_at, 1, 77, 88)["seq"], 77);
        assert_eq!(patched(&frames[2], payload_at, 1, 77, 88)["ts"], 88);
    }

    #[test]
    fn a_patched_frame_is_byte_identical_to_encoding_the_rendered_payload() {
        let (frames, _) = frames_for(r#"{"seq":"{seq}"}"#, 1, "t");
        let mut out = Vec::new();
        frames[0].write_into(&mut out, 9, 123, 0);
        let mut expected = Vec::new();
        publish::encode(&mut expected, "t", 1, false, 9, b"{\"seq\":       123}");
        assert_eq!(out, expected);
    }

    #[test]
    fn built_frames_decode_to_the_rendered_topic_the_plan_qos_and_the_patched_payload() {
        for qos in [0, 1, 2] {
            let (frames, _) = frames_for(r#"{"id":"{token}","seq":"{seq}"}"#, qos, "d/{i}/t");
            let mut out = Vec::new();
            frames[0].write_into(&mut out, 42, 5, 0);
            let Ok(Some((packet, used_bytes))) = crate::mqtt::decode(&out) else {
                panic!("QoS {qos}: the frame does not decode: {out:02X?}");
            };
            assert_eq!(used_bytes, out.len(), "QoS {qos}");
            let crate::mqtt::Packet::Publish {
                dup,
                qos: decoded_qos,
                retain,
                topic,
                pkid,
                payload,
            } = packet
            else {
                panic!("QoS {qos}: decoded {packet:?}, not a PUBLISH");
            };
            assert_eq!((dup, decoded_qos, retain), (false, qos, false));
            assert_eq!(topic, b"d/7/t");
            assert_eq!(pkid, if qos > 0 { 42 } else { 0 }, "QoS {qos}");
            assert_eq!(payload, br#"{"id":"tok7","seq":         5}"#);
        }
    }

    #[test]
    fn the_e2e_marker_is_the_last_member_keeps_json_valid_and_reads_back() {
        let payload = Payload::parse("t", r#"{"temp":"{seq}","site":"a"}"#).unwrap();
        let mut plan = crate::config::tests::plan_with_payload(payload, 1, "t");
        plan.e2e = true;
        let vars = ClientVars {
            index: 0x2a,
            token: "",
            client_id: "c",
        };
        let frames = build_frames(&plan, &vars);
        let mut out = Vec::with_capacity(frames[0].len());
        frames[0].write_message(&mut out, 7, 5, 1, 0x0123_4567_89ab_cdef, false);
        let body = &out[out.iter().position(|&b| b == b'{').unwrap()..];
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(value["temp"], 5);
        assert_eq!(value["site"], "a");
        assert_eq!(
            value[E2E_KEY], "0000002a0000000000050123456789abcdef",
            "publisher, sequence, time in fixed-width hex"
        );
        let marker = find_marker(body).unwrap();
        assert_eq!(
            marker,
            Marker {
                publisher: 0x2a,
                seq: 5,
                sent_ns: 0x0123_4567_89ab_cdef
            }
        );
    }

    /// Client `index`'s MQTT 3.1.1 frames for `payload`.
    fn client_frames(payload: Payload, index: u64, e2e: bool) -> Vec<Frame> {
        let mut plan = crate::config::tests::plan_with_payload(payload, 1, "t");
        plan.e2e = e2e;
        let vars = ClientVars {
            index,
            token: "",
            client_id: "c",
        };
        build_frames(&plan, &vars)
    }

    /// The payload of message `seq` written by an MQTT 3.1.1 `frame`, decoded and parsed.
    fn message(frame: &Frame, seq: u64, ts: u64, alarm: bool) -> Value {
        message_of(Version::V311, frame, seq, ts, alarm)
    }

    fn message_of(version: Version, frame: &Frame, seq: u64, ts: u64, alarm: bool) -> Value {
        let mut out = Vec::with_capacity(frame.len());
        frame.write_message(&mut out, 1, seq, ts, 0, alarm);
        let Ok(Some((crate::mqtt::Packet::Publish { payload, .. }, used))) = version.decode(&out)
        else {
            panic!("message {seq} does not decode as a PUBLISH: {out:02X?}");
        };
        assert_eq!(used, out.len());
        serde_json::from_slice(payload).unwrap_or_else(|err| {
            panic!(
                "message {seq} is not JSON ({err}): {}",
                String::from_utf8_lossy(payload)
            )
        })
    }

    fn number(value: &Value) -> f64 {
        value
            .as_f64()
            .unwrap_or_else(|| panic!("{value} is not a number"))
    }

    #[test]
    fn every_smart_meter_message_parses_with_its_values_in_range_and_its_ts() {
        let payload = crate::workload::presets::preset("smart-meter", None).unwrap();
        let frames = client_frames(payload, 3, false);
        let mut leaks = 0;
        for seq in 1..=20_000u64 {
            let ts = 1_700_000_000_000 + seq;
            let body = message(&frames[0], seq, ts, false);
            assert_eq!(body["ts"], ts);
            let values = &body["values"];
            let pulses = number(&values["pulseCounter"]);
            assert!((0.0..=999_999.0).contains(&pulses) && pulses.fract() == 0.0);
            let battery = number(&values["batteryLevel"]);
            assert!((50.0..=99.0).contains(&battery), "{battery}");
            leaks += usize::from(values["leakage"] == true);
        }
        // 98% of 20,000 is 19,600, standard deviation 20: 19,450..19,750 is 7.5 sigma wide.
        assert!((19_450..=19_750).contains(&leaks), "{leaks}");
    }

    #[test]
    fn every_tracker_and_plc_message_parses_with_its_values_in_range() {
        let ranges = [
            ("latitude", -90.0, 90.0),
            ("longitude", -180.0, 180.0),
            ("speed", 0.0, 100.0),
            ("fuel", 0.0, 99.0),
            ("batteryLevel", 50.0, 99.0),
        ];
        let tracker = crate::workload::presets::preset("smart-tracker", None).unwrap();
        let frames = client_frames(tracker, 0, true);
        for seq in 1..=5_000 {
            let body = message(&frames[0], seq, 1_700_000_000_000, false);
            for (key, lo, hi) in ranges {
                let value = number(&body["values"][key]);
                assert!((lo..=hi).contains(&value), "{key} {value}");
            }
            assert!(body[E2E_KEY].is_string(), "the marker stays last and valid");
        }
        let plc = crate::workload::presets::preset("industrial-plc", Some(999)).unwrap();
        let frames = client_frames(plc, 0, false);
        for seq in 1..=200 {
            let body = message(&frames[0], seq, 1_700_000_000_000, false);
            let values = body["values"].as_object().unwrap();
            assert_eq!(values.len(), 999);
            assert!(values.values().all(|v| (0.0..=100.0).contains(&number(v))));
        }
    }

    #[test]
    fn an_alarm_message_writes_the_alarm_value_and_the_next_one_does_not() {
        let payload = crate::workload::presets::preset("smart-meter", None).unwrap();
        let frames = client_frames(payload, 0, false);
        for seq in 1..=100 {
            let alarm = message(&frames[0], seq, 1, true);
            assert_eq!(alarm["values"]["batteryLevel"], 10);
            let normal = message(&frames[0], seq, 1, false);
            assert!(number(&normal["values"]["batteryLevel"]) >= 50.0);
        }
    }

    #[test]
    fn clients_draw_different_values_and_each_is_reproducible() {
        let text = r#"{"v":"{int:0..1000000000}"}"#;
        let draws = |index| {
            let frames = client_frames(Payload::parse("d", text).unwrap(), index, false);
            (1..=5)
                .map(|seq| message(&frames[0], seq, 0, false)["v"].clone())
                .collect::<Vec<Value>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        let first = draws(1);
        assert!(
            first.windows(2).any(|pair| pair[0] != pair[1]),
            "values change"
        );
    }

    #[test]
    fn value_fields_keep_a_rotation_and_mqtt_5_topic_alias_frames_valid() {
        let text = r#"[{"a":"{float:-1..1:3}","s":"{seq}"},{"b":"{bool:0.5|alarm=true}"}]"#;
        let payload = Payload::parse("d", text).unwrap();
        let mut plan = crate::config::tests::plan_with_payload(payload, 1, "t");
        plan.mqtt_version = Version::V5;
        plan.v5.topic_alias = true;
        let vars = ClientVars {
            index: 0,
            token: "",
            client_id: "c",
        };
        let frames = build_frames(&plan, &vars);
        for frame in [&frames[0], frames[0].for_alias(true)] {
            for seq in 1..=500 {
                let body = message_of(Version::V5, frame, seq, 0, false);
                assert!((-1.0..=1.0).contains(&number(&body["a"])));
                assert_eq!(body["s"], seq);
            }
        }
        let alarm = message_of(Version::V5, frames[1].for_alias(true), 1, 0, true);
        assert_eq!(alarm["b"], true);
    }

    #[test]
    fn an_empty_object_gets_the_marker_without_a_comma_and_plain_payloads_have_none() {
        let mut body = b"{}".to_vec();
        append_marker(&mut body, 1);
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
        assert!(find_marker(&body).is_some());
        assert_eq!(find_marker(br#"{"a":1}"#), None);
        assert_eq!(find_marker(b""), None);
        let mut bad = body.clone();
        bad[E2E_PREFIX.len() + 2] = b'G';
        assert_eq!(find_marker(&bad), None, "non-hex digits are not a marker");
    }
}
