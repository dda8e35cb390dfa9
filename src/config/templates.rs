//! The topic and client id templates: rendered per client by [`crate::payload::render`], so they
//! are checked here for every client they can produce (placeholders, wildcards, uniqueness).

use super::layers::Raw;
use super::values::{check_mqtt_string_len, check_no_nul};
use super::ConfigError;
use crate::payload::{self, ClientVars};
use crate::token_template::TokenTemplate;

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

/// A topic with `{token}` must not get a wildcard from the tokens template's text.
pub(super) fn check_template_in_topic(
    raw: &Raw,
    topic: &str,
    template: &TokenTemplate,
) -> Result<(), ConfigError> {
    let literal = template.literal_parts();
    if topic.contains("{token}") && literal.iter().any(|part| part.contains(['+', '#'])) {
        return Err(raw.fail(
            "uses {token}, and the tokens template contains + or #, which a topic must not",
        ));
    }
    Ok(())
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

/// `distinct_tokens`: how many different device tokens the users get (u64::MAX with a tokens
/// template: one each). `server_assigns_ids`: MQTT 5, where an empty client id asks the broker
/// to assign one (Assigned Client Identifier in CONNACK, kept for the client's reconnects).
pub(super) fn resolve_client_id(
    raw: &Raw,
    users: u32,
    distinct_tokens: u64,
    server_assigns_ids: bool,
) -> Result<String, ConfigError> {
    let client_id = raw.text()?;
    if client_id.is_empty() {
        if server_assigns_ids {
            return Ok(client_id);
        }
        return Err(raw.fail(
            "must not be empty (under --mqtt-version 5 an empty id lets the broker assign one)",
        ));
    }
    check_no_nul(&client_id).map_err(|problem| raw.fail_at_source(problem))?;
    check_placeholders(raw, &client_id, &CLIENT_ID_PLACEHOLDERS)?;
    let unique_per_token = client_id.contains("{token}") && distinct_tokens >= u64::from(users);
    if users > 1 && !client_id.contains("{i}") && !unique_per_token {
        return Err(raw.fail(
            "clients would share client ids, and the broker disconnects the older session: add {i}",
        ));
    }
    Ok(client_id)
}

/// The widest client the templates can be rendered for: the largest client index of the
/// whole plan and the longest device token. Each placeholder's rendering only grows with
/// them, so no client's id or topic renders longer than with these.
pub(super) struct Widest<'a> {
    /// `users + sub_users - 1` of the whole plan: every shard's largest index is at most this
    /// (exact without shards and subscribers), so all shards refuse alike.
    pub(super) index: u64,
    pub(super) token: &'a str,
    /// Subscriber ids are the client id plus `-sub` (`engine::worker::subscriber_id_of`).
    pub(super) has_subscribers: bool,
}

impl Widest<'_> {
    fn vars<'v>(&'v self, client_id: &'v str) -> ClientVars<'v> {
        ClientVars {
            index: self.index,
            token: self.token,
            client_id,
        }
    }
}

/// The longest device token ("" without tokens).
pub(super) fn longest_token(tokens: &[String]) -> &str {
    tokens
        .iter()
        .map(String::as_str)
        .max_by_key(|token| token.len())
        .unwrap_or("")
}

/// A token at least as long as any a tokens template renders for this plan: the numbers of
/// a plan (start + index, index below 2^32) have at most as many digits as this one's.
pub(super) fn widest_templated_token(template: &TokenTemplate, start: u64) -> String {
    template.render(start.saturating_add(u64::from(u32::MAX)))
}

/// Refuse templates that could render longer than an MQTT string: the encoders would panic
/// on the first such client, after the run had started.
pub(super) fn check_rendered_lengths(
    topic: (&Raw, &str),
    client_id: (&Raw, &str),
    widest: &Widest<'_>,
) -> Result<(), ConfigError> {
    let id = payload::render(client_id.1, &widest.vars(""));
    let id_len_bytes = id.len()
        + if widest.has_subscribers {
            SUB_SUFFIX.len()
        } else {
            0
        };
    check_rendered(client_id.0, id_len_bytes, widest)?;
    let topic_len_bytes = payload::render(topic.1, &widest.vars(&id)).len();
    check_rendered(topic.0, topic_len_bytes, widest)
}

/// The same for MQTT 5 user properties (`raw` names the setting): every name and value must
/// render to an MQTT string for every client.
pub(super) fn check_rendered_pairs(
    raw: Option<Raw>,
    pairs: &[(String, String)],
    client_id: &str,
    widest: &Widest<'_>,
) -> Result<(), ConfigError> {
    let Some(raw) = raw else {
        return Ok(());
    };
    let id = payload::render(client_id, &widest.vars(""));
    for (name, value) in pairs {
        for text in [name, value] {
            check_rendered(&raw, payload::render(text, &widest.vars(&id)).len(), widest)?;
        }
    }
    Ok(())
}

/// Appended to subscribers' client ids (`engine::worker::subscriber_id_of`).
const SUB_SUFFIX: &str = "-sub";

fn check_rendered(raw: &Raw, len_bytes: usize, widest: &Widest<'_>) -> Result<(), ConfigError> {
    check_mqtt_string_len(len_bytes).map_err(|problem| {
        raw.fail_at_source(format!(
            "renders to {problem} (client {} with the longest device token)",
            widest.index
        ))
    })
}
