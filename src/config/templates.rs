//! The topic and client id templates: rendered per client by [`crate::payload::render`], so they
//! are checked here for every client they can produce (placeholders, wildcards, uniqueness).

use super::layers::Raw;
use super::ConfigError;
use crate::payload;

pub(super) const TOPIC_PLACEHOLDERS: [&str; 3] = ["{i}", "{token}", "{client_id}"];
pub(super) const CLIENT_ID_PLACEHOLDERS: [&str; 2] = ["{i}", "{token}"];

pub(super) fn resolve_topic(raw: &Raw, tokens: &[String]) -> Result<String, ConfigError> {
    let topic = raw.text()?;
    if topic.is_empty() {
        return Err(raw.fail("must not be empty"));
    }
    if topic.contains(['+', '#']) {
        return Err(raw.fail("must not contain the wildcards + or # (a PUBLISH names one topic)"));
    }
    if topic.contains('\0') || topic.len() > usize::from(u16::MAX) {
        return Err(raw.fail("must be at most 65535 bytes without NUL characters"));
    }
    check_placeholders(raw, &topic, &TOPIC_PLACEHOLDERS)?;
    if topic.contains("{token}") && tokens.iter().any(|token| token.contains(['+', '#'])) {
        return Err(
            raw.fail("uses {token}, and a device token contains + or #, which a topic must not")
        );
    }
    Ok(topic)
}

pub(super) fn check_placeholders(
    raw: &Raw,
    template: &str,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    match payload::unknown_placeholder(template, allowed) {
        Some(unknown) => Err(raw.fail(format!(
            "unknown placeholder {unknown} (known: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

pub(super) fn resolve_client_id(
    raw: &Raw,
    users: u32,
    tokens: &[String],
) -> Result<String, ConfigError> {
    let client_id = raw.text()?;
    if client_id.is_empty() {
        return Err(raw.fail("must not be empty"));
    }
    check_placeholders(raw, &client_id, &CLIENT_ID_PLACEHOLDERS)?;
    let unique_per_token = client_id.contains("{token}") && tokens.len() >= users as usize;
    if users > 1 && !client_id.contains("{i}") && !unique_per_token {
        return Err(raw.fail(
            "clients would share client ids, and the broker disconnects the older session: add {i}",
        ));
    }
    Ok(client_id)
}
