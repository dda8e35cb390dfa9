//! Gateways: one MQTT connection that carries D devices, in ThingsBoard's gateway API.
//!
//! A gateway user announces each of its devices on `v1/gateway/connect` (`{"device":"NAME"}`)
//! after its CONNACK, sends the devices' points on `v1/gateway/telemetry`
//! (`{"NAME":[{"ts":..,"values":{..}}]}`) and `v1/gateway/attributes` (`{"NAME":{..}}`), and
//! says goodbye per device on `v1/gateway/disconnect` before its DISCONNECT. Two modes:
//! `per-point`, one MQTT message per device point (what ThingsBoard's performance tests send),
//! and `batched`, the points due together folded into one message (what ThingsBoard's IoT
//! Gateway sends).
//!
//! Everything is serialized once per gateway connection: the PUBLISH headers of the four
//! topics (fixed header byte, topic, packet identifier slot, MQTT 5 properties) and, per
//! device, its name as a JSON string and its point as a [`Fragment`] (the payload object's
//! `values`, or the whole object when it has no `{"ts":..,"values":..}` shape, with `ts`
//! stamped per message). Per message the writer puts the header, `{`, the devices' name and
//! fragment pairs and `}` straight into the connection's write buffer and patches the
//! per-message fields in place: nothing is allocated per message.
//!
//! Which devices a gateway carries: device i (from 0) belongs to gateway i % G when the run's
//! gateway count G is fixed (ThingsBoard's tests map devices so), so gateway g carries devices
//! g, g + G, g + 2G, ...; in a live run (web UI, Locust worker) the count changes while it
//! runs, and gateway g carries the block g*D .. g*D + D - 1, so no device is ever carried by
//! two gateways. A device's name is its number (`device_start` + i) put into the name
//! template, by default `DW{i:08}`: the device token ThingsBoard's tool names it by.
//!
//! Bounds (and why):
//! - [`MAX_DEVICES_PER_GATEWAY`] devices per gateway: every device is announced with one
//!   `v1/gateway/connect` message before the gateway's first point (about 40 bytes each:
//!   400 KB per gateway at the bound, paced by the socket), and its names and fragments are
//!   kept by the connection (see the next item).
//! - [`MAX_DEVICES_PER_PROCESS`] devices in one process: each device costs its name (about
//!   20 bytes) and, when the payload uses per-client placeholders (`{i}`, `{token}`,
//!   `{client_id}`: the built-in one does), a fragment per payload object (its serialized
//!   size plus about 90 bytes); without them all the devices of a gateway share the
//!   gateway's fragments. About 490 bytes per device with the built-in payload (RSS of 50
//!   gateways: 66 MB with 1,000 devices each, 163 MB with 5,000): 2.4 GB at the bound.
//! - [`MAX_BATCH_PAYLOAD_BYTES`] bytes of payload per batched message, ThingsBoard's default
//!   MQTT payload limit (`NETTY_MAX_PAYLOAD_SIZE`): a batch takes the due points in order
//!   while they fit and leaves the rest for the next message; a single point larger than
//!   that is sent alone.
//! - [`MAX_DEVICE_NAME_BYTES`] bytes per device name (ThingsBoard's name column is 255).

mod session;
mod turns;

pub use session::{DeviceClocks, GatewaySession};
pub use turns::{DeviceTurns, RateClock, Turn};

use serde_json::{Map, Value};

use crate::mqtt::{self, v5, Version};
use crate::payload::{self, ClientVars, Fragment, Payload};
use crate::plan::Plan;

/// Where a gateway announces a device.
pub const CONNECT_TOPIC: &str = "v1/gateway/connect";
/// Where a gateway says a device has gone.
pub const DISCONNECT_TOPIC: &str = "v1/gateway/disconnect";
/// Where a gateway sends its devices' telemetry.
pub const TELEMETRY_TOPIC: &str = "v1/gateway/telemetry";
/// Where a gateway sends its devices' client attributes.
pub const ATTRIBUTES_TOPIC: &str = "v1/gateway/attributes";

/// Most devices one gateway connection carries (see the module documentation).
pub const MAX_DEVICES_PER_GATEWAY: u32 = 10_000;
/// Most gateway devices one process simulates (see the module documentation).
pub const MAX_DEVICES_PER_PROCESS: u64 = 5_000_000;
/// Largest payload of a batched message, in bytes: ThingsBoard's default MQTT payload limit.
pub const MAX_BATCH_PAYLOAD_BYTES: usize = 65_536;
/// Longest device name, in bytes (before JSON escaping).
pub const MAX_DEVICE_NAME_BYTES: usize = 255;
/// The default device name template: the device token ThingsBoard's tool creates (`DW%08d`).
pub const DEFAULT_DEVICE_NAME: &str = "DW{i:08}";

/// The row of the `v1/gateway/connect` messages in every report.
pub const CONNECT_ROW: &str = "gateway connect";
/// The row of the `v1/gateway/disconnect` messages in every report.
pub const DISCONNECT_ROW: &str = "gateway disconnect";

/// How device points become MQTT messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    /// One message per device point (ThingsBoard's performance tests).
    PerPoint,
    /// The points due together folded into one message (ThingsBoard's IoT Gateway).
    Batched,
}

impl GatewayMode {
    /// The name in settings and reports.
    pub fn name(self) -> &'static str {
        match self {
            GatewayMode::PerPoint => "per-point",
            GatewayMode::Batched => "batched",
        }
    }

    /// `per-point` or `batched`.
    pub fn parse(text: &str) -> Option<GatewayMode> {
        match text {
            "per-point" => Some(GatewayMode::PerPoint),
            "batched" => Some(GatewayMode::Batched),
            _ => None,
        }
    }
}

/// Which gateway message a device point goes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointKind {
    /// `v1/gateway/telemetry`: `"NAME":[{"ts":..,"values":{..}}]`.
    Telemetry,
    /// `v1/gateway/attributes`: `"NAME":{..}`.
    Attributes,
}

impl PointKind {
    pub fn topic(self) -> &'static str {
        match self {
            PointKind::Telemetry => TELEMETRY_TOPIC,
            PointKind::Attributes => ATTRIBUTES_TOPIC,
        }
    }

    /// The row name of a stream of this kind that was given no name of its own.
    pub fn row_name(self) -> &'static str {
        match self {
            PointKind::Telemetry => "gateway telemetry",
            PointKind::Attributes => "gateway attributes",
        }
    }
}

/// How devices are dealt to gateways (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceLayout {
    /// Device i belongs to gateway i % `gateways` (the run's fixed gateway count).
    Interleaved { gateways: u64 },
    /// Gateway g carries devices g*D .. g*D + D - 1 (live runs).
    Blocks,
}

/// A device name template: the grammar of `--tokens-template` (one `{i}` or `{i:0W}`, the
/// device number zero-padded to W digits as Python's `{i:08}` writes it), so a device's name
/// and its token are written alike, by one parser.
pub type NameTemplate = crate::token_template::TokenTemplate;

/// The validated gateway settings of a run (`--gateway`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPlan {
    /// Devices each gateway connection carries (1..=[`MAX_DEVICES_PER_GATEWAY`]).
    pub devices_per_gateway: u32,
    pub mode: GatewayMode,
    pub device_name: NameTemplate,
    /// Number of the first device (ThingsBoard's `DEVICE_START_IDX`).
    pub device_start: u64,
    pub layout: DeviceLayout,
}

impl GatewayPlan {
    /// Index (from 0, over the whole run) of the device in `slot` of gateway `gateway` (a
    /// global client index).
    pub fn device_index(&self, gateway: u64, slot: u32) -> u64 {
        let slot = u64::from(slot);
        match self.layout {
            DeviceLayout::Interleaved { gateways } => slot * gateways + gateway,
            DeviceLayout::Blocks => gateway * u64::from(self.devices_per_gateway) + slot,
        }
    }

    /// Where gateway `gateway`'s devices sit among the run's: the index of its slot 0 and
    /// the step between its slots (slot `s` is `first + s * step`, as
    /// [`GatewayPlan::device_index`] numbers them).
    pub fn device_numbering(&self, gateway: u64) -> (u64, u64) {
        match self.layout {
            DeviceLayout::Interleaved { gateways } => (gateway, gateways),
            DeviceLayout::Blocks => (
                gateway.saturating_mul(u64::from(self.devices_per_gateway)),
                1,
            ),
        }
    }

    /// The number a device's name is made from: `device_start` + its index. Config checks
    /// that fixed runs cannot overflow; a live run's indexes are far below `u64::MAX`.
    pub fn device_number(&self, gateway: u64, slot: u32) -> u64 {
        self.device_start
            .saturating_add(self.device_index(gateway, slot))
    }

    /// The name of the device in `slot` of gateway `gateway`.
    pub fn device_name(&self, gateway: u64, slot: u32) -> String {
        self.device_name.render(self.device_number(gateway, slot))
    }
}

/// The point a payload object gives a gateway device: its `values` when it has ThingsBoard's
/// `{"ts":..,"values":{..}}` shape, else the object less a top-level `ts` (which the
/// point's own `ts` replaces).
pub fn point_values(object: &Value) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    match (map.get("ts"), map.get("values")) {
        (Some(_), Some(values @ Value::Object(_))) if map.len() == 2 => values.clone(),
        _ => {
            let mut values: Map<String, Value> = map.clone();
            values.shift_remove("ts");
            Value::Object(values)
        }
    }
}

/// The JSON a device's point is: `[{"ts":"{ts}","values":{..}}]` for telemetry (ts stamped
/// per message), the values object for attributes.
pub fn point_value(kind: PointKind, object: &Value) -> Value {
    let values = point_values(object);
    match kind {
        PointKind::Telemetry => {
            let mut point = Map::new();
            point.insert("ts".to_string(), Value::String("{ts}".to_string()));
            point.insert("values".to_string(), values);
            Value::Array(vec![Value::Object(point)])
        }
        PointKind::Attributes => values,
    }
}

/// Per-message fields a point of `object` has (its own plus the telemetry `ts`), for the
/// config check against [`payload::MAX_FIELDS_PER_OBJECT`].
pub fn point_field_count(kind: PointKind, object: &Value) -> usize {
    payload::message_field_count(&point_value(kind, object))
}

/// The PUBLISH header of one gateway topic, serialized once: the fixed header's first byte
/// and everything between the remaining length and the payload (topic, packet identifier
/// slot, MQTT 5 properties). The remaining length is written per message, for its payload.
#[derive(Debug, Clone)]
struct Header {
    first_byte: u8,
    variable: Box<[u8]>,
    /// Offset of the packet identifier in `variable` (None at QoS 0).
    pkid_at: Option<usize>,
}

/// What every gateway header of one connection shares.
struct HeaderSpec<'a> {
    qos: u8,
    version: Version,
    properties: v5::publish::PublishProperties<'a>,
}

impl Header {
    fn build(spec: &HeaderSpec<'_>, topic: &str) -> Header {
        let mut bytes = Vec::new();
        let layout = match spec.version {
            Version::V311 => mqtt::publish::encode(&mut bytes, topic, spec.qos, false, 0, b""),
            Version::V5 => {
                v5::publish::encode(&mut bytes, topic, spec.qos, false, 0, &spec.properties, b"")
            }
        };
        // The remaining-length varint: bytes with the continuation bit, then one without.
        let varint_len = 1 + bytes[1..].iter().take_while(|&&b| b & 0x80 != 0).count();
        let variable_at = 1 + varint_len;
        Header {
            first_byte: bytes[0],
            variable: bytes[variable_at..layout.payload_at].into(),
            pkid_at: layout.pkid_at.map(|at| at - variable_at),
        }
    }

    /// Bytes of a whole message with a payload of `payload_len` bytes.
    fn message_len(&self, payload_len: usize) -> usize {
        let remaining = self.variable.len() + payload_len;
        1 + mqtt::remaining_length_bytes(remaining) + remaining
    }

    /// Append the header of a message whose payload will be `payload_len` bytes.
    #[inline]
    fn write(&self, out: &mut Vec<u8>, pkid: u16, payload_len: usize) {
        out.push(self.first_byte);
        mqtt::write_remaining_length(out, self.variable.len() + payload_len);
        let at = out.len();
        out.extend_from_slice(&self.variable);
        if let Some(pkid_at) = self.pkid_at {
            mqtt::publish::patch_pkid(&mut out[at..], pkid_at, pkid);
        }
    }
}

/// One point stream of a gateway connection (telemetry or attributes): its header and each
/// device's fragments.
#[derive(Debug, Clone)]
struct Points {
    kind: PointKind,
    qos: u8,
    header: Header,
    /// Fragments per payload object; per device (device-major) when `per_device`, else one
    /// set shared by every device.
    fragments: Vec<Fragment>,
    objects: usize,
    per_device: bool,
    /// The shortest fragment of any device (bounds how many points a batch can fold).
    shortest_fragment: usize,
}

impl Points {
    #[inline]
    fn fragment(&self, slot: u32, object: u32) -> &Fragment {
        let object = object as usize % self.objects;
        match self.per_device {
            true => &self.fragments[slot as usize * self.objects + object],
            false => &self.fragments[object],
        }
    }
}

/// One device point that is due: which device, which payload object (its rotation; taken
/// modulo the number of objects), its sequence number (`{seq}`), when it was due (ns since
/// the run's start; the writer does not use it) and whether it is one of the global rate's
/// alarms (its fields' alarm values are written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub slot: u32,
    pub object: u32,
    pub seq: u64,
    pub due_ns: u64,
    pub alarm: bool,
}

/// A gateway connection's messages, serialized once (see the module documentation).
#[derive(Debug, Clone)]
pub struct GatewayFrames {
    /// QoS of the connect and disconnect messages.
    connect_qos: u8,
    connect: Header,
    disconnect: Header,
    /// Every device's name as a JSON string (quotes included), back to back...
    names: Vec<u8>,
    /// ...each ending here (device `slot` is `names[name_ends[slot - 1]..name_ends[slot]]`).
    name_ends: Vec<u32>,
    streams: Vec<Points>,
    /// The shortest name (bytes, quotes included).
    shortest_name: usize,
}

/// `{"device":` and `}` around a name: the payload of connect and disconnect messages.
const DEVICE_OPEN: &[u8] = b"{\"device\":";

impl GatewayFrames {
    /// Build gateway `vars.index`'s frames: its devices' names and, for each point stream
    /// (kind, payload and QoS), every device's fragments. Connect and disconnect messages go
    /// at the plan's `qos`. Payload strings are rendered per device: `{i}` is the device
    /// number, `{token}` the device name, `{client_id}` the gateway's.
    pub fn build(
        plan: &Plan,
        gateway: &GatewayPlan,
        vars: &ClientVars<'_>,
        streams: &[(PointKind, &Payload, u8)],
    ) -> GatewayFrames {
        let user_properties = payload::render_pairs(&plan.v5.user_properties, vars);
        let mut spec = HeaderSpec {
            qos: plan.qos,
            version: plan.mqtt_version,
            properties: v5::publish::PublishProperties {
                payload_format_indicator: plan.v5.payload_format_indicator,
                message_expiry_s: plan.v5.message_expiry_s,
                content_type: plan.v5.content_type.as_deref(),
                topic_alias: None,
                user_properties: &user_properties,
            },
        };
        let devices = gateway.devices_per_gateway;
        let mut names = Vec::new();
        let mut name_ends = Vec::with_capacity(devices as usize);
        let device_names: Vec<(u64, String)> = (0..devices)
            .map(|slot| {
                let number = gateway.device_number(vars.index, slot);
                (number, gateway.device_name.render(number))
            })
            .collect();
        for (_, name) in &device_names {
            serde_json::to_writer(&mut names, name).expect("a string serializes");
            name_ends.push(names.len() as u32);
        }
        let connect = Header::build(&spec, CONNECT_TOPIC);
        let disconnect = Header::build(&spec, DISCONNECT_TOPIC);
        let streams = streams
            .iter()
            .map(|&(kind, payload, qos)| {
                spec.qos = qos;
                let per_device = payload
                    .objects()
                    .iter()
                    .any(payload::uses_client_placeholders);
                let build_for = |number: u64, name: &str| -> Vec<Fragment> {
                    let device_vars = ClientVars {
                        index: number,
                        token: name,
                        client_id: vars.client_id,
                    };
                    payload
                        .objects()
                        .iter()
                        .map(|object| {
                            Fragment::build(&point_value(kind, object), &device_vars, plan.seed)
                        })
                        .collect()
                };
                let fragments = match per_device {
                    true => device_names
                        .iter()
                        .flat_map(|(number, name)| build_for(*number, name))
                        .collect(),
                    false => build_for(0, ""),
                };
                let shortest_fragment = fragments.iter().map(Fragment::len).min().unwrap_or(0);
                Points {
                    kind,
                    qos,
                    header: Header::build(&spec, kind.topic()),
                    fragments,
                    objects: payload.len(),
                    per_device,
                    shortest_fragment,
                }
            })
            .collect();
        let shortest_name = name_ends
            .iter()
            .scan(0u32, |start, &end| {
                let len = end - *start;
                *start = end;
                Some(len as usize)
            })
            .min()
            .unwrap_or(0);
        GatewayFrames {
            connect_qos: plan.qos,
            connect,
            disconnect,
            names,
            name_ends,
            streams,
            shortest_name,
        }
    }

    /// Devices this gateway carries.
    pub fn device_count(&self) -> u32 {
        self.name_ends.len() as u32
    }

    /// Point streams (in the order given to [`GatewayFrames::build`]).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// The kind of point stream `stream`.
    pub fn stream_kind(&self, stream: usize) -> PointKind {
        self.streams[stream].kind
    }

    /// The QoS of point stream `stream`.
    pub fn stream_qos(&self, stream: usize) -> u8 {
        self.streams[stream].qos
    }

    /// The QoS of the connect and disconnect messages.
    pub fn connect_qos(&self) -> u8 {
        self.connect_qos
    }

    /// Device `slot`'s name as a JSON string, quotes included.
    #[inline]
    fn name(&self, slot: u32) -> &[u8] {
        let slot = slot as usize;
        let start = match slot {
            0 => 0,
            _ => self.name_ends[slot - 1] as usize,
        };
        &self.names[start..self.name_ends[slot] as usize]
    }

    /// Bytes of device `slot`'s connect (or disconnect) message.
    pub fn connect_len(&self, slot: u32) -> usize {
        self.connect
            .message_len(DEVICE_OPEN.len() + self.name(slot).len() + 1)
    }

    /// Append device `slot`'s `v1/gateway/connect` message: `{"device":"NAME"}`.
    pub fn write_connect(&self, out: &mut Vec<u8>, pkid: u16, slot: u32) {
        self.write_device_message(&self.connect, out, pkid, slot);
    }

    /// Append device `slot`'s `v1/gateway/disconnect` message: `{"device":"NAME"}`.
    pub fn write_disconnect(&self, out: &mut Vec<u8>, pkid: u16, slot: u32) {
        self.write_device_message(&self.disconnect, out, pkid, slot);
    }

    fn write_device_message(&self, header: &Header, out: &mut Vec<u8>, pkid: u16, slot: u32) {
        let name = self.name(slot);
        header.write(out, pkid, DEVICE_OPEN.len() + name.len() + 1);
        out.extend_from_slice(DEVICE_OPEN);
        out.extend_from_slice(name);
        out.push(b'}');
    }

    /// Payload bytes one device's part of a point message takes: `"NAME":` and its fragment.
    #[inline]
    fn part_len(&self, points: &Points, due: &Due) -> usize {
        self.name(due.slot).len() + 1 + points.fragment(due.slot, due.object).len()
    }

    /// How many of `due` (at least one, if any) one message of stream `stream` folds with a
    /// payload of at most `max_payload_bytes` (a single point larger than that goes alone),
    /// and that payload's length.
    pub fn fold(&self, stream: usize, due: &[Due], max_payload_bytes: usize) -> (usize, usize) {
        let points = &self.streams[stream];
        let mut payload_len = 2; // the braces
        let mut count = 0;
        for point in due {
            let more = self.part_len(points, point) + usize::from(count > 0);
            if count > 0 && payload_len + more > max_payload_bytes {
                break;
            }
            payload_len += more;
            count += 1;
        }
        (count, payload_len)
    }

    /// The most points one `batched` message of stream `stream` can fold (its payload is at
    /// most [`MAX_BATCH_PAYLOAD_BYTES`], each point at least the shortest name, a colon, the
    /// shortest fragment and a comma): the schedule takes no more due devices than this per
    /// message, so a message costs what it carries, not the gateway's whole due set.
    pub fn batch_points_max(&self, stream: usize) -> usize {
        let shortest_part = self.shortest_name + 1 + self.streams[stream].shortest_fragment + 1;
        1 + MAX_BATCH_PAYLOAD_BYTES / shortest_part.max(1)
    }

    /// The most bytes a message of stream `stream` takes beyond its payload (fixed header
    /// with the longest remaining length, topic, packet id, properties).
    pub fn header_bytes_max(&self, stream: usize) -> usize {
        1 + 4 + self.streams[stream].header.variable.len()
    }

    /// Bytes of the message [`GatewayFrames::write_points`] writes for the same arguments.
    pub fn points_len(&self, stream: usize, due: &[Due], max_payload_bytes: usize) -> usize {
        let (_, payload_len) = self.fold(stream, due, max_payload_bytes);
        self.streams[stream].header.message_len(payload_len)
    }

    /// Append one message of stream `stream` carrying the points of `due`, in order, as many
    /// as fit in `max_payload_bytes` of payload (at least one; `per-point` passes one at a
    /// time, `batched` the devices due together with [`MAX_BATCH_PAYLOAD_BYTES`]), with
    /// `ts` = `now_epoch_ms` and each device's `{seq}`. Returns how many were folded (0 when
    /// `due` is empty: nothing is written). Allocation-free when `out` has room for
    /// [`GatewayFrames::points_len`] more bytes.
    pub fn write_points(
        &self,
        out: &mut Vec<u8>,
        pkid: u16,
        stream: usize,
        due: &[Due],
        now_epoch_ms: u64,
        max_payload_bytes: usize,
    ) -> usize {
        let (count, payload_len) = self.fold(stream, due, max_payload_bytes);
        if count == 0 {
            return 0;
        }
        let points = &self.streams[stream];
        points.header.write(out, pkid, payload_len);
        out.push(b'{');
        for (n, point) in due[..count].iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.name(point.slot));
            out.push(b':');
            points.fragment(point.slot, point.object).write_into(
                out,
                point.seq,
                now_epoch_ms,
                point.alarm,
            );
        }
        out.push(b'}');
        count
    }

    /// The largest message this gateway may write in `mode`: a single point or a connect
    /// message, or in `batched` mode a batch of [`MAX_BATCH_PAYLOAD_BYTES`] of payload.
    pub fn largest_message_len(&self, mode: GatewayMode) -> usize {
        let single = self.largest_single_len();
        match mode {
            GatewayMode::PerPoint => single,
            GatewayMode::Batched => {
                let batch = self
                    .streams
                    .iter()
                    .map(|points| points.header.message_len(MAX_BATCH_PAYLOAD_BYTES));
                batch.max().unwrap_or(0).max(single)
            }
        }
    }

    /// The largest single-point message of any stream and device, and the largest connect
    /// message: what a write buffer must hold at least.
    pub fn largest_single_len(&self) -> usize {
        let mut largest = 0;
        for slot in 0..self.device_count() {
            largest = largest.max(self.connect_len(slot));
            for (stream, points) in self.streams.iter().enumerate() {
                for object in 0..points.objects as u32 {
                    let due = [Due {
                        slot,
                        object,
                        seq: 0,
                        due_ns: 0,
                        alarm: false,
                    }];
                    largest = largest.max(self.points_len(stream, &due, 0));
                }
            }
        }
        largest
    }
}

#[cfg(test)]
mod tests;
