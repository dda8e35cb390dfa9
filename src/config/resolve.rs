//! Validators for single settings: each takes the winning [`Raw`] value and returns the typed
//! value or a one-line error naming where the value came from.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::layers::Raw;
use super::values::{parse_bind_item, parse_host, MAX_BIND_ADDRS};
use super::{invalid, ConfigError, Context, DEFAULT_PAYLOAD_FILE, DEFAULT_RUN_TIME};
use crate::limits::RESERVED_FDS;
use crate::payload::Payload;
use crate::plan::HostPort;
use crate::workload::presets;

/// No host at all: the embedded broker. An explicitly empty one (`-H ""`, `MQBLAST_HOST=`,
/// `host = ""` or `[]`) is refused: it is a typo or an unset shell variable far more often
/// than a wish to measure the embedded broker, which would then be tested by mistake.
pub(super) fn resolve_hosts(raw: Option<Raw>) -> Result<Vec<HostPort>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items = raw.list()?;
    if items.is_empty() {
        return Err(raw.fail("names no broker; leave the host unset to use the embedded broker"));
    }
    let several = items.len() > 1;
    items
        .iter()
        .map(|item| {
            parse_host(item).map_err(|problem| match several {
                true => raw.fail(format!("{item:?}: {problem}")),
                false => raw.fail(problem),
            })
        })
        .collect()
}

pub(super) fn resolve_users(raw: &Raw) -> Result<u32, ConfigError> {
    let users = raw.whole()?;
    u32::try_from(users).map_err(|_| raw.fail(format!("must be at most {}", u32::MAX)))
}

pub(super) fn check_users_can_publish(
    users: u32,
    users_raw: &Raw,
    messages_raw: Option<&Raw>,
) -> Result<(), ConfigError> {
    if users > 0 {
        return Ok(());
    }
    let problem = "at least one user is needed to publish";
    match messages_raw {
        Some(messages) => Err(invalid(format!(
            "{} with {}: {problem}",
            users_raw.describe(),
            messages.describe()
        ))),
        None => Err(users_raw.fail(problem)),
    }
}

pub(super) fn resolve_spawn_rate(raw: &Raw) -> Result<f64, ConfigError> {
    let rate = raw.float()?;
    // The slowest rate the spawn pacing is given from here: see its bound's doc.
    let min = crate::engine::control::MIN_SPAWN_RATE_PER_S;
    if rate.is_finite() && rate >= min {
        Ok(rate)
    } else {
        Err(raw.fail(format!(
            "must be a number of users per second from {min} (one user every {} s) up",
            1.0 / min
        )))
    }
}

pub(super) fn resolve_messages(raw: Option<&Raw>) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.whole()? {
        0 => Err(raw.fail("must be at least 1")),
        messages => Ok(Some(messages)),
    }
}

/// `until_stopped` (a message limit, or the web UI's Stop): no default run time.
pub(super) fn resolve_run_time(
    raw: Option<Raw>,
    until_stopped: Option<u64>,
) -> Result<Option<Duration>, ConfigError> {
    match raw {
        Some(raw) => positive_duration(&raw).map(Some),
        None if until_stopped.is_some() => Ok(None),
        None => Ok(Some(DEFAULT_RUN_TIME)),
    }
}

pub(super) fn positive_duration(raw: &Raw) -> Result<Duration, ConfigError> {
    match raw.duration()? {
        Duration::ZERO => Err(raw.fail("must be longer than 0")),
        duration => Ok(duration),
    }
}

pub(super) fn resolve_qos(raw: &Raw) -> Result<u8, ConfigError> {
    match raw.whole() {
        Ok(qos @ 0..=2) => Ok(qos as u8),
        _ => Err(raw.fail("must be 0, 1 or 2")),
    }
}

/// The payload: a preset's name (`smart-meter`, `smart-tracker`, `industrial-plc`; a file of
/// that name is `./smart-meter`), or a file. An explicitly named file must exist; the default
/// ./data.json falls back to the built-in copy. `datapoints` (checked by
/// [`resolve_datapoints`]) sizes `industrial-plc`; whether anything uses it is checked once
/// the streams are known ([`check_datapoints_used`]).
pub(super) fn resolve_payload(
    raw: Option<Raw>,
    datapoints: Option<u32>,
    ctx: &Context,
) -> Result<Payload, ConfigError> {
    let text = raw.as_ref().map(Raw::text).transpose()?;
    let preset = text.as_deref().filter(|text| presets::is_preset(text));
    if let Some(payload) = preset.and_then(|name| presets::preset(name, datapoints)) {
        return Ok(payload);
    }
    if let Some(raw) = raw {
        return Payload::load(&raw.path(ctx)?).map_err(invalid);
    }
    let default_path = ctx.cwd.join(DEFAULT_PAYLOAD_FILE);
    if default_path.exists() {
        Payload::load(&default_path).map_err(invalid)
    } else {
        Ok(Payload::builtin())
    }
}

/// `--datapoints N`: 1 to [`presets::MAX_DATAPOINTS`] (a stream's `datapoints` reads the same).
pub(super) fn resolve_datapoints(raw: &Raw) -> Result<u32, ConfigError> {
    raw.whole()
        .ok()
        .and_then(presets::datapoints)
        .ok_or_else(|| raw.fail(presets::datapoints_bound()))
}

/// `--datapoints` sizes the run's `industrial-plc` payload and is the default of the streams
/// that name that preset: refused when neither uses it (it would change nothing).
pub(super) fn check_datapoints_used(
    raw: Option<&Raw>,
    payload: &Payload,
    streams: &[crate::workload::stream::StreamPlan],
) -> Result<(), ConfigError> {
    let Some(raw) = raw else {
        return Ok(());
    };
    let plc = |payload: &Payload| presets::is_plc(payload);
    if plc(payload) || streams.iter().any(|s| plc(&s.payload)) {
        return Ok(());
    }
    Err(raw.fail(format!(
        "only the {} payload has data points (--payload {})",
        presets::INDUSTRIAL_PLC,
        presets::INDUSTRIAL_PLC
    )))
}

/// `--bind`: addresses and inclusive IPv4 ranges (`127.0.0.2-127.0.0.40`), in order.
pub(super) fn resolve_bind(raw: Option<Raw>) -> Result<Vec<IpAddr>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut addrs = Vec::new();
    for item in raw.list()? {
        let more =
            parse_bind_item(&item).map_err(|problem| raw.fail(format!("{item:?}: {problem}")))?;
        if addrs.len() + more.len() > MAX_BIND_ADDRS {
            return Err(raw.fail(format!("more than {MAX_BIND_ADDRS} source addresses")));
        }
        addrs.extend(more);
    }
    Ok(addrs)
}

pub(super) fn resolve_connect_rate(raw: Option<Raw>) -> Result<Option<f64>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let rate = raw.float()?;
    if rate.is_finite() && rate > 0.0 {
        Ok(Some(rate))
    } else {
        Err(raw.fail("must be a number greater than 0 (TCP connects per second)"))
    }
}

pub(super) fn resolve_max_inflight(raw: &Raw) -> Result<u16, ConfigError> {
    match raw.whole() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(raw.fail("must be between 1 and 65535")),
    }
}

pub(super) fn resolve_keep_alive(raw: &Raw) -> Result<u16, ConfigError> {
    let keep_alive = raw.duration()?;
    let whole_seconds = keep_alive.subsec_nanos() == 0;
    match u16::try_from(keep_alive.as_secs()) {
        Ok(seconds) if whole_seconds => Ok(seconds),
        _ => Err(raw.fail("must be whole seconds, at most 65535 (0 disables keep-alive)")),
    }
}

pub(super) fn resolve_pin(raw: &Raw) -> Result<crate::plan::Pin, ConfigError> {
    use crate::plan::Pin;
    match raw.text()?.as_str() {
        "never" => Ok(Pin::Never),
        "always" => Ok(Pin::Always),
        "owned" => Ok(Pin::Owned),
        _ => Err(raw.fail("must be never, always or owned")),
    }
}

pub(super) fn resolve_threads(
    raw: Option<Raw>,
    ctx: &Context,
    users: u32,
) -> Result<usize, ConfigError> {
    let threads = match raw {
        Some(raw) => match raw.whole()? {
            0 => return Err(raw.fail("must be at least 1")),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        None => ctx.available_cores.max(1),
    };
    // More workers than users would leave workers with nothing to do.
    Ok(threads.min(users.max(1) as usize))
}

pub(super) fn optional_path(
    raw: Option<Raw>,
    ctx: &Context,
) -> Result<Option<PathBuf>, ConfigError> {
    match raw {
        Some(raw) if !raw.is_blank() => raw.path(ctx).map(Some),
        _ => Ok(None),
    }
}

pub(super) fn non_empty_text(raw: &Raw) -> Result<String, ConfigError> {
    match raw.text()? {
        text if text.trim().is_empty() => Err(raw.fail("must not be empty")),
        text => Ok(text),
    }
}

/// Each user holds one socket (two with the embedded broker, which holds the other end in
/// this process); refuse a plan that would run out of descriptors half-way through the ramp-up.
pub(super) fn check_open_files(
    users: u32,
    users_raw: &Raw,
    embedded_broker: bool,
    open_files_limit: u64,
) -> Result<(), ConfigError> {
    let sockets_per_user = if embedded_broker { 2 } else { 1 };
    let sockets = u64::from(users) * sockets_per_user;
    let available = open_files_limit.saturating_sub(RESERVED_FDS);
    if sockets <= available {
        return Ok(());
    }
    let which = if embedded_broker {
        " (each client and its embedded-broker end)"
    } else {
        ""
    };
    Err(invalid(format!(
        "{} needs {sockets} sockets{which} but this process may open at most {available} (open-files limit {open_files_limit}): run fewer users per process, or split the run over several processes or hosts (scripts/run_cluster.sh, --shard)",
        users_raw.describe()
    )))
}
