//! The web UI settings (`--web`, `headless = false`) validated into a [`WebPlan`]: loopback by
//! default, and any other address only with basic auth, because the UI starts and stops load
//! against a broker and shows what the run did.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::layers::Raw;
use super::{invalid, ConfigError};
use crate::plan::WebPlan;

/// The web settings, or None when headless.
pub(super) fn resolve_web(
    get: &dyn Fn(&str) -> Option<Raw>,
) -> Result<Option<WebPlan>, ConfigError> {
    let headless = get("headless").map(|raw| raw.boolean()).transpose()?;
    if headless.unwrap_or(true) {
        return Ok(None);
    }
    let host = get("web_host").map(|raw| web_ip(&raw)).transpose()?;
    let ip = host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let port = get("web_port").map(|raw| web_port(&raw)).transpose()?;
    let listen = SocketAddr::new(ip, port.unwrap_or(8089));
    let auth = get("web_auth").map(|raw| web_auth(&raw)).transpose()?;
    if !ip.is_loopback() && auth.is_none() {
        return Err(invalid(format!(
            "refusing to serve the web UI on {listen} without --web-auth USER:PASS: anyone who can reach it could start load against the broker (bind 127.0.0.1, or set --web-auth)"
        )));
    }
    refuse_coordinated_starts(get)?;
    let autostart = get("autostart").map(|raw| raw.boolean()).transpose()?;
    let autoquit = get("autoquit").map(|raw| raw.duration()).transpose()?;
    Ok(Some(WebPlan {
        listen,
        auth,
        autostart: autostart.unwrap_or(false),
        autoquit,
    }))
}

/// `--shard` and `--start-at` belong to a multi-host run that a launcher starts everywhere at
/// one moment with fixed shares of the users; a web test starts when Start is pressed and its
/// users change live, which would break both. Refused in one line rather than half-supported.
fn refuse_coordinated_starts(get: &dyn Fn(&str) -> Option<Raw>) -> Result<(), ConfigError> {
    if let Some(raw) = get("shard") {
        return Err(raw.fail(
            "cannot be steered from the web UI: a shard's users and start are fixed by its launcher (run the shards headless, or --web on one process without --shard)",
        ));
    }
    if let Some(raw) = get("start_at") {
        return Err(raw.fail(
            "cannot be combined with --web: a web test starts when Start is pressed (use --autostart to start at once)",
        ));
    }
    Ok(())
}

fn web_ip(raw: &Raw) -> Result<IpAddr, ConfigError> {
    let text = raw.text()?;
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse()
        .map_err(|_| raw.fail("expected an IP address to listen on, e.g. 127.0.0.1 or 0.0.0.0"))
}

fn web_port(raw: &Raw) -> Result<u16, ConfigError> {
    u16::try_from(raw.whole()?).map_err(|_| raw.fail("expected a port number, 0 to 65535"))
}

/// `USER:PASS`, neither empty; the value is never echoed in errors.
fn web_auth(raw: &Raw) -> Result<(String, String), ConfigError> {
    let text = raw.text()?;
    match text.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
            Ok((user.to_string(), pass.to_string()))
        }
        _ => Err(raw.fail_at_source("expected USER:PASS, both non-empty")),
    }
}
