//! The Locust worker settings (`--worker`, `--master-host`, `--master-port`) validated into a
//! [`WorkerPlan`], and the settings a worker cannot have: the Locust master decides the users
//! and when tests start and stop, so the settings that decide those here are refused.

use super::layers::Raw;
use super::{invalid, ConfigError};
use crate::plan::WorkerPlan;

/// The worker settings, or None when this process is not a Locust worker.
pub(super) fn resolve_worker(
    get: &dyn Fn(&str) -> Option<Raw>,
    web: bool,
) -> Result<Option<WorkerPlan>, ConfigError> {
    let worker = get("worker").map(|raw| raw.boolean()).transpose()?;
    if !worker.unwrap_or(false) {
        return Ok(None);
    }
    if web {
        return Err(invalid(
            "--worker and the web UI (--web, headless = false) exclude each other: a worker is steered by its Locust master, whose web UI is the one to open"
                .to_string(),
        ));
    }
    for (name, why) in [
        ("shard", "the master hands out the users"),
        ("start_at", "the master starts the tests"),
        (
            "messages",
            "the master sets the users and when the test ends (use interval to pace them)",
        ),
    ] {
        if let Some(raw) = get(name).filter(|raw| !raw.is_blank()) {
            return Err(raw.fail(format!("not with --worker: {why}")));
        }
    }
    let master_host = match get("master_host") {
        Some(raw) => super::resolve::non_empty_text(&raw)?,
        None => "127.0.0.1".to_string(),
    };
    let master_port = match get("master_port") {
        Some(raw) => match u16::try_from(raw.whole()?) {
            Ok(port) if port > 0 => port,
            _ => return Err(raw.fail("expected a port number, 1 to 65535")),
        },
        None => 5557,
    };
    Ok(Some(WorkerPlan {
        master_host,
        master_port,
    }))
}
