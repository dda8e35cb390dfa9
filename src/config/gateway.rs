//! The gateway settings (`--gateway`, `--devices-per-gateway`, `--gateway-mode`,
//! `--device-name`, `--device-start`) validated into a [`GatewayPlan`], and the settings a
//! gateway run cannot have refused in one line naming both.

use super::layers::{Origin, Raw};
use super::{invalid, ConfigError};
use crate::payload::{MAX_FIELDS_PER_OBJECT, MAX_PAYLOAD_BYTES};
use crate::workload::gateway::{
    point_field_count, point_value, DeviceLayout, GatewayMode, GatewayPlan, NameTemplate,
    PointKind, MAX_DEVICES_PER_GATEWAY, MAX_DEVICES_PER_PROCESS, MAX_DEVICE_NAME_BYTES,
};
use crate::workload::stream::{StreamKind, StreamPlan};

/// The device settings, meaningful only with `gateway = true`.
const DEVICE_SETTINGS: [&str; 4] = [
    "devices_per_gateway",
    "gateway_mode",
    "device_name",
    "device_start",
];

/// What the gateway checks need from the rest of the plan.
pub(super) struct GatewayContext<'a> {
    /// This process's users (gateways), after `--shard`.
    pub(super) users: u32,
    /// The whole run's users, before `--shard`.
    pub(super) total_users: u32,
    /// A web UI or Locust-worker run: its user count changes while it runs.
    pub(super) live: bool,
    /// The payload setting, to name it in errors (None: the default payload).
    pub(super) payload_raw: Option<Raw>,
    pub(super) sub_users: u32,
    /// The run's streams: a gateway's point streams once resolved (see [`resolve_gateway`]).
    pub(super) streams: &'a mut [StreamPlan],
}

/// `gateway = true`: the validated settings, and the streams made the gateway's point
/// streams (telemetry and attributes only, on `v1/gateway/*`, rows named `gateway telemetry`
/// and `gateway attributes` unless named); otherwise None, and any device setting given is
/// an error (it would silently do nothing).
pub(super) fn resolve_gateway(
    get: &dyn Fn(&str) -> Option<Raw>,
    ctx: &mut GatewayContext<'_>,
) -> Result<Option<GatewayPlan>, ConfigError> {
    let gateway_raw = get("gateway");
    let on = gateway_raw.as_ref().map(Raw::boolean).transpose()?;
    let Some(gateway_raw) = gateway_raw.filter(|_| on == Some(true)) else {
        for name in DEVICE_SETTINGS {
            if let Some(raw) = get(name).filter(given) {
                return Err(raw.fail(
                    "only applies to gateways: add --gateway (gateway = true) to make each user a gateway carrying devices",
                ));
            }
        }
        return Ok(None);
    };
    let required =
        |name: &str| get(name).ok_or_else(|| invalid(format!("{name}: no value and no default")));
    refuse_conflicts(get, &gateway_raw, ctx)?;
    let devices_raw = required("devices_per_gateway")?;
    let devices = resolve_devices(&devices_raw)?;
    let mode_raw = required("gateway_mode")?;
    let mode = GatewayMode::parse(&mode_raw.text()?)
        .ok_or_else(|| mode_raw.fail("expected per-point or batched"))?;
    let name_raw = required("device_name")?;
    let device_name = NameTemplate::parse(&name_raw.text()?).map_err(|why| name_raw.fail(why))?;
    let start_raw = required("device_start")?;
    let device_start = start_raw.whole()?;
    let process_devices = u64::from(ctx.users) * u64::from(devices);
    let users_raw = required("users")?;
    if process_devices > MAX_DEVICES_PER_PROCESS {
        return Err(invalid(format!(
            "{} with {}: {process_devices} gateway devices in one process, more than {MAX_DEVICES_PER_PROCESS} (each keeps its name and payload fragments: fewer devices per gateway, or --shard over several processes)",
            users_raw.describe(),
            devices_raw.describe()
        )));
    }
    let run_devices = u64::from(ctx.total_users) * u64::from(devices);
    let last_number = device_start
        .checked_add(run_devices.saturating_sub(1))
        .ok_or_else(|| start_raw.fail("the device numbers would pass 18446744073709551615"))?;
    let widest = device_name.widest_len(last_number);
    if widest > MAX_DEVICE_NAME_BYTES {
        return Err(name_raw.fail(format!(
            "device {last_number}'s name would be {widest} bytes, more than {MAX_DEVICE_NAME_BYTES} (ThingsBoard's limit)"
        )));
    }
    gateway_streams(&gateway_raw, ctx)?;
    let layout = match ctx.live {
        true => DeviceLayout::Blocks,
        false => DeviceLayout::Interleaved {
            gateways: u64::from(ctx.total_users),
        },
    };
    Ok(Some(GatewayPlan {
        devices_per_gateway: devices,
        mode,
        device_name,
        device_start,
        layout,
    }))
}

/// Set somewhere, to something other than the default.
fn given(raw: &Raw) -> bool {
    !matches!(raw.origin, Origin::Default) && !raw.equals_default()
}

fn resolve_devices(raw: &Raw) -> Result<u32, ConfigError> {
    match raw.whole()? {
        0 => Err(raw.fail("a gateway needs at least 1 device")),
        n if n > u64::from(MAX_DEVICES_PER_GATEWAY) => Err(raw.fail(format!(
            "at most {MAX_DEVICES_PER_GATEWAY} devices per gateway: each is announced on v1/gateway/connect before the first point and kept by the connection"
        ))),
        n => Ok(n as u32),
    }
}

/// Settings that cannot go with gateways, refused naming both.
fn refuse_conflicts(
    get: &dyn Fn(&str) -> Option<Raw>,
    gateway: &Raw,
    ctx: &GatewayContext<'_>,
) -> Result<(), ConfigError> {
    let both = |other: &Raw, why: &str| {
        invalid(format!(
            "{} with {}: {why}",
            gateway.describe(),
            other.describe()
        ))
    };
    if let Some(topic) = get("topic").filter(given) {
        return Err(both(
            &topic,
            "a gateway publishes on v1/gateway/telemetry (and v1/gateway/connect, v1/gateway/disconnect); leave the topic unset",
        ));
    }
    if let Some(alias) = get("topic_alias").filter(|raw| raw.boolean().unwrap_or(false)) {
        return Err(both(
            &alias,
            "a topic alias gives a connection one topic; a gateway uses three",
        ));
    }
    let why_no_marker = "gateway messages carry no end-to-end marker (one message holds many devices), so subscribers and the delivery audit cannot follow them";
    if ctx.sub_users > 0 {
        if let Some(subs) = get("sub_users") {
            return Err(both(&subs, why_no_marker));
        }
    }
    if let Some(e2e) = get("e2e").filter(|raw| raw.boolean().unwrap_or(false)) {
        return Err(both(&e2e, why_no_marker));
    }
    Ok(())
}

/// Every stream must be one a gateway sends for its devices (telemetry, attributes) and its
/// payload must make points that fit. The streams then name the gateway's topics and rows.
fn gateway_streams(gateway: &Raw, ctx: &mut GatewayContext<'_>) -> Result<(), ConfigError> {
    for (index, stream) in ctx.streams.iter_mut().enumerate() {
        let what = match stream.declared {
            true => format!("stream {} ({})", index + 1, stream.name),
            false => "the payload".to_string(),
        };
        let kind = match stream.kind {
            StreamKind::Telemetry => PointKind::Telemetry,
            StreamKind::Attributes => PointKind::Attributes,
            other => {
                return Err(invalid(format!(
                "{} with {what}: kind {}: a gateway sends telemetry and attributes for its devices",
                gateway.describe(),
                other.name()
            )))
            }
        };
        let default_topic = stream.kind.default_topic().unwrap_or_default();
        if stream.declared && stream.topic != default_topic {
            return Err(invalid(format!(
                "{} with {what}: topic {}: a gateway publishes on {}",
                gateway.describe(),
                super::shown(&stream.topic),
                kind.topic()
            )));
        }
        let named = stream.declared && stream.name != StreamPlan::default_name(stream.kind, "");
        check_points(&what, kind, stream, ctx.payload_raw.as_ref())?;
        if !named {
            stream.name = kind.row_name().to_string();
        }
        stream.topic = kind.topic().to_string();
    }
    Ok(())
}

/// Every payload object must make a point that fits: its per-message fields (plus the
/// telemetry `ts`) within [`MAX_FIELDS_PER_OBJECT`], its size within a PUBLISH with a name.
fn check_points(
    what: &str,
    kind: PointKind,
    stream: &StreamPlan,
    payload_raw: Option<&Raw>,
) -> Result<(), ConfigError> {
    let source = stream.payload.source();
    let name = match (stream.declared, payload_raw) {
        (false, Some(raw)) => raw.source(),
        _ => what.to_string(),
    };
    for (index, object) in stream.payload.objects().iter().enumerate() {
        let fields = point_field_count(kind, object);
        if fields > MAX_FIELDS_PER_OBJECT {
            return Err(invalid(format!(
                "{name}: {source}: object {index}: as a gateway point it has {fields} per-message fields (its ts included), at most {MAX_FIELDS_PER_OBJECT}"
            )));
        }
        let size = serde_json::to_vec(&point_value(kind, object)).map_or(0, |v| v.len());
        // The name (escaped: up to 6 bytes per byte, and quotes) and the braces around it.
        if size + 6 * MAX_DEVICE_NAME_BYTES + 8 > MAX_PAYLOAD_BYTES {
            return Err(invalid(format!(
                "{name}: {source}: object {index}: {size} bytes as a gateway point, more than an MQTT packet can carry"
            )));
        }
    }
    Ok(())
}
