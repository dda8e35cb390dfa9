//! The protocol version and the MQTT 5 settings, resolved together: every MQTT 5 setting is
//! refused under 3.1.1 (naming the setting), so a run never silently ignores one.

use super::layers::Raw;
use super::{invalid, ConfigError};
use crate::mqtt::Version;
use crate::plan::V5Options;

/// Most user properties per packet: bounds what a CONNECT or PUBLISH frame can grow to
/// (64 pairs of at most 2 x 65,535 bytes stay far below the 268 MB an MQTT packet can carry).
const MAX_USER_PROPERTIES: usize = 64;

/// Per-client placeholders a user property may hold, resolved once per client.
const PLACEHOLDERS: [&str; 3] = ["{i}", "{token}", "{client_id}"];

/// Settings that only MQTT 5 can carry.
const V5_ONLY: &[&str] = &[
    "session_expiry",
    "receive_maximum",
    "maximum_packet_size",
    "topic_alias_maximum",
    "request_problem_info",
    "connect_properties",
    "topic_alias",
    "message_expiry",
    "content_type",
    "payload_format",
    "user_properties",
    "no_local",
    "retain_as_published",
    "retain_handling",
    "subscription_id",
];

/// The version, Clean Start, and the MQTT 5 options.
pub(super) fn resolve_mqtt5(
    get: &dyn Fn(&str) -> Option<Raw>,
) -> Result<(Version, bool, V5Options), ConfigError> {
    let version_raw =
        get("mqtt_version").ok_or_else(|| invalid("mqtt_version: no value".to_string()))?;
    let version = Version::parse(&version_raw.text()?)
        .ok_or_else(|| version_raw.fail("expected 3.1.1 or 5"))?;
    let clean_start = get("clean_start").map_or(Ok(true), |raw| raw.boolean())?;
    if version == Version::V311 {
        if let Some(raw) = V5_ONLY.iter().find_map(|name| get(name)) {
            return Err(raw.fail_at_source("is an MQTT 5 setting: add --mqtt-version 5"));
        }
        return Ok((version, clean_start, V5Options::default()));
    }
    let v5 = V5Options {
        session_expiry_s: get("session_expiry").map_or(Ok(0), |raw| seconds_u32(&raw))?,
        receive_maximum: get("receive_maximum")
            .map(|raw| ranged_u16(&raw, 1))
            .transpose()?,
        // Always sent: a broker must never send a packet larger than the decoders read
        // (MQTT-3.1.2-24), or the connection would end as a protocol error.
        maximum_packet_size: Some(
            get("maximum_packet_size")
                .map(|raw| packet_size(&raw))
                .transpose()?
                .unwrap_or(crate::mqtt::MAX_PACKET_BYTES as u32),
        ),
        topic_alias_maximum: get("topic_alias_maximum")
            .map(|raw| ranged_u16(&raw, 0))
            .transpose()?,
        request_problem_information: get("request_problem_info")
            .map(|raw| raw.boolean())
            .transpose()?,
        connect_user_properties: pairs(get("connect_properties"))?,
        topic_alias: get("topic_alias").map_or(Ok(false), |raw| raw.boolean())?,
        message_expiry_s: get("message_expiry")
            .map(|raw| seconds_u32(&raw))
            .transpose()?,
        content_type: get("content_type")
            .map(|raw| raw.mqtt_string())
            .transpose()?,
        payload_format_indicator: get("payload_format")
            .map(|raw| payload_format(&raw))
            .transpose()?,
        user_properties: pairs(get("user_properties"))?,
        no_local: get("no_local").map_or(Ok(false), |raw| raw.boolean())?,
        retain_as_published: get("retain_as_published").map_or(Ok(false), |raw| raw.boolean())?,
        retain_handling: get("retain_handling").map_or(Ok(0), |raw| retain_handling(&raw))?,
        subscription_identifier: get("subscription_id")
            .map(|raw| subscription_id(&raw))
            .transpose()?,
    };
    Ok((version, clean_start, v5))
}

/// A duration in whole seconds that fits the 4-byte interval properties.
fn seconds_u32(raw: &Raw) -> Result<u32, ConfigError> {
    let duration = raw.duration()?;
    match u32::try_from(duration.as_secs()) {
        Ok(seconds) if duration.subsec_nanos() == 0 => Ok(seconds),
        _ => Err(raw.fail("must be whole seconds, at most 4294967295")),
    }
}

fn ranged_u16(raw: &Raw, min: u64) -> Result<u16, ConfigError> {
    match raw.whole() {
        Ok(n) if n >= min && n <= 65_535 => Ok(n as u16),
        _ => Err(raw.fail(format!("must be between {min} and 65535"))),
    }
}

/// At least a CONNACK's worth, at most what mqblast's decoders read
/// ([`crate::mqtt::MAX_PACKET_BYTES`]).
fn packet_size(raw: &Raw) -> Result<u32, ConfigError> {
    let most = crate::mqtt::MAX_PACKET_BYTES as u64;
    match raw.whole() {
        Ok(n) if (16..=most).contains(&n) => Ok(n as u32),
        _ => Err(raw.fail(format!(
            "must be between 16 and {most} bytes (the largest packet mqblast reads)"
        ))),
    }
}

fn payload_format(raw: &Raw) -> Result<u8, ConfigError> {
    match raw.text()?.trim() {
        "utf8" | "utf-8" | "1" => Ok(1),
        "bytes" | "binary" | "0" => Ok(0),
        _ => Err(raw.fail("expected utf8 or bytes")),
    }
}

fn retain_handling(raw: &Raw) -> Result<u8, ConfigError> {
    match raw.whole() {
        Ok(n @ 0..=2) => Ok(n as u8),
        _ => Err(raw.fail(
            "expected 0 (send retained messages), 1 (only for a new subscription) or 2 (never)",
        )),
    }
}

/// Section 3.8.2.1.2: 1 to 268,435,455.
fn subscription_id(raw: &Raw) -> Result<u32, ConfigError> {
    match raw.whole() {
        Ok(n @ 1..=268_435_455) => Ok(n as u32),
        _ => Err(raw.fail("must be between 1 and 268435455")),
    }
}

/// `name=value,name=value` (or a TOML array of `name=value` strings); names may repeat.
fn pairs(raw: Option<Raw>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items = raw.list()?;
    if items.len() > MAX_USER_PROPERTIES {
        return Err(raw.fail(format!(
            "{} user properties, more than {MAX_USER_PROPERTIES}",
            items.len()
        )));
    }
    let mut out = Vec::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            return Err(raw.fail(format!("{item:?}: expected name=value")));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.len() > 65_535 || value.len() > 65_535 {
            return Err(raw.fail(format!(
                "{item:?}: the name must be 1 to 65535 bytes, the value at most 65535"
            )));
        }
        for text in [name, value] {
            if let Some(unknown) = crate::payload::unknown_placeholder(text, &PLACEHOLDERS) {
                return Err(raw.fail(format!(
                    "{item:?}: unknown placeholder {unknown} (known: {{i}}, {{token}}, {{client_id}})"
                )));
            }
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}
