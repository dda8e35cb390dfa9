//! The RPC responder's settings (`rpc_responder`, `rpc_response_delay`, `rpc_response`),
//! resolved together: the delay and the answer mean something only with the responder on.

use std::time::Duration;

use super::layers::Raw;
use super::{ConfigError, Context};
use crate::workload::gateway_rpc::MAX_GATEWAY_RESPONSE_BYTES;
use crate::workload::responder::{ResponderPlan, ResponsePayload, MAX_RESPONSE_BYTES};

/// Longest `rpc_response_delay`: an answer waits in a bounded queue, and a delay longer than
/// this is a typo, not a device.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The word that names the default answer, so a flag can restore it over config.toml.
const ECHO: &str = "echo";

/// The responder's plan (None when off) and notes for settings given without it. Bad values
/// are refused either way.
pub(super) fn resolve_responder(
    get: &dyn Fn(&str) -> Option<Raw>,
    ctx: &Context,
) -> Result<(Option<ResponderPlan>, Vec<String>), ConfigError> {
    let on = match get("rpc_responder") {
        Some(raw) => raw.boolean()?,
        None => false,
    };
    let delay_raw = get("rpc_response_delay");
    let delay = match &delay_raw {
        Some(raw) => resolve_delay(raw)?,
        None => Duration::ZERO,
    };
    let response_raw = get("rpc_response").filter(|raw| !raw.is_blank());
    // A gateway's answer also carries the device's name (see `workload::gateway_rpc`).
    let gateway = get("gateway").map(|raw| raw.boolean()).transpose()? == Some(true);
    let max_bytes = match gateway {
        true => MAX_GATEWAY_RESPONSE_BYTES,
        false => MAX_RESPONSE_BYTES,
    };
    let response = match &response_raw {
        Some(raw) => resolve_response(raw, ctx, max_bytes)?,
        None => ResponsePayload::EchoParams,
    };
    if on {
        return Ok((Some(ResponderPlan { delay, response }), Vec::new()));
    }
    let notes = [delay_raw.filter(|raw| !raw.equals_default()), response_raw]
        .into_iter()
        .flatten()
        .map(|raw| {
            format!(
                "mqblast: note: {}: not used without rpc_responder = true (--rpc-responder)",
                raw.describe()
            )
        })
        .collect();
    Ok((None, notes))
}

fn resolve_delay(raw: &Raw) -> Result<Duration, ConfigError> {
    match raw.duration()? {
        delay if delay > MAX_DELAY => Err(raw.fail("must be at most 1h")),
        delay => Ok(delay),
    }
}

/// `echo`, inline JSON (the text starts with `{`, `[` or `"`), or a JSON file; any JSON value,
/// serialised once, compactly, no larger than an answer queue can hold.
fn resolve_response(
    raw: &Raw,
    ctx: &Context,
    max_bytes: usize,
) -> Result<ResponsePayload, ConfigError> {
    let text = raw.text()?;
    let trimmed = text.trim();
    if trimmed == ECHO {
        return Ok(ResponsePayload::EchoParams);
    }
    let (source, json_text) = if trimmed.starts_with(['{', '[', '"']) {
        ("inline JSON".to_string(), text.clone())
    } else {
        let path = raw.path(ctx)?;
        let read = std::fs::read_to_string(&path)
            .map_err(|err| raw.fail(format!("cannot read {}: {err}", path.display())))?;
        (path.display().to_string(), read)
    };
    let json_text = json_text.strip_prefix('\u{feff}').unwrap_or(&json_text);
    let value: serde_json::Value = serde_json::from_str(json_text)
        .map_err(|err| raw.fail_at_source(format!("{source} is not JSON: {err}")))?;
    let json =
        serde_json::to_vec(&value).map_err(|err| raw.fail_at_source(format!("{source}: {err}")))?;
    if json.len() > max_bytes {
        let queue = match max_bytes {
            MAX_RESPONSE_BYTES => "each device queues its answers in 16 KiB",
            _ => "each gateway queues its answers, with its devices' names, in 16 KiB",
        };
        return Err(raw.fail_at_source(format!(
            "{source} is {} bytes of JSON, more than the {max_bytes} an answer may be ({queue})",
            json.len()
        )));
    }
    Ok(ResponsePayload::Fixed {
        source,
        json: json.into_boxed_slice(),
    })
}
