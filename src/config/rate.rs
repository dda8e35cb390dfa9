//! `rate`, `rate_order`, `seed`, `alarms_per_second` and `alarm_storm`: the global rate
//! ([`crate::workload::rate`]), resolved together because each depends on the others and on the
//! per-user `interval`. A conflict is refused with both settings named, where each came from:
//! a rate with an interval set to something else, or a companion set without the rate. The
//! `seed` is the run's (paces' jitter, value fields, the random order), so it is no companion:
//! it is read by the caller and valid with or without a rate.

use super::layers::{Origin, Raw};
use super::{invalid, ConfigError};
use crate::workload::rate::{AlarmStorm, RateOrder, RatePlan, RateSchedule, RATE_MAX_PER_S};

/// The global rate over `devices` (every user of the whole run, all shards), or None without
/// `rate`. `interval` is the winning per-user interval: set to anything but its default it
/// conflicts with a rate (the default, as the shipped config.toml writes it, does not).
pub(super) fn resolve_rate(
    get: &dyn Fn(&str) -> Option<Raw>,
    interval: &Raw,
    devices: u64,
    seed: u64,
) -> Result<Option<RatePlan>, ConfigError> {
    let missing = |name: &str| invalid(format!("{name}: no value and no default"));
    let order_raw = get("rate_order").ok_or_else(|| missing("rate_order"))?;
    let alarms_raw = get("alarms_per_second").ok_or_else(|| missing("alarms_per_second"))?;
    let storm_raw = get("alarm_storm").filter(|raw| !raw.is_blank());
    let Some(rate_raw) = get("rate").filter(|raw| !raw.is_blank()) else {
        let companions = [Some(&order_raw), Some(&alarms_raw)];
        let set = companions
            .into_iter()
            .chain([storm_raw.as_ref()])
            .flatten()
            .find(|raw| changes_something(raw));
        return match set {
            Some(raw) => Err(raw.fail(
                "has no effect without a global rate: set `rate` (--rate N messages per second) too",
            )),
            None => Ok(None),
        };
    };
    let messages_per_s = resolve_messages_per_s(&rate_raw)?;
    if changes_something(interval) {
        return Err(invalid(format!(
            "{} with {}: a global rate schedules every device's messages, so the per-user interval would not be used; set one of them",
            rate_raw.describe(),
            interval.describe()
        )));
    }
    let order = resolve_order(&order_raw)?;
    let alarms_per_s = alarms_raw.whole()?;
    if alarms_per_s > messages_per_s {
        return Err(invalid(format!(
            "{} with {}: more alarms per second than messages per second",
            alarms_raw.describe(),
            rate_raw.describe()
        )));
    }
    let alarm_storm = storm_raw.as_ref().map(resolve_storm).transpose()?;
    if let (Some(raw), 0) = (&storm_raw, alarms_per_s) {
        return Err(raw.fail(
            "names the seconds with alarms, but no message is one: set alarms_per_second (--alarms-per-second N) too",
        ));
    }
    let plan = RatePlan {
        messages_per_s,
        devices,
        first_device_index: 0,
        order,
        seed,
        alarms_per_s,
        alarm_storm,
    };
    RateSchedule::new(&plan).map_err(|problem| rate_raw.fail(problem))?;
    Ok(Some(plan))
}

/// Set somewhere (not the built-in default) to a value other than the default's: the shipped
/// config.toml writes `interval = "1s"`, which must not count as asking for an interval.
fn changes_something(raw: &Raw) -> bool {
    !matches!(raw.origin, Origin::Default) && !raw.equals_default()
}

fn resolve_messages_per_s(raw: &Raw) -> Result<u64, ConfigError> {
    let problem = format!("must be a whole number of messages per second, 1 to {RATE_MAX_PER_S}");
    match raw.whole() {
        Ok(n @ 1..=RATE_MAX_PER_S) => Ok(n),
        _ => Err(raw.fail(problem)),
    }
}

fn resolve_order(raw: &Raw) -> Result<RateOrder, ConfigError> {
    match raw.text()?.trim() {
        "sequential" => Ok(RateOrder::Sequential),
        "random" => Ok(RateOrder::Random),
        _ => Err(raw.fail("must be sequential or random")),
    }
}

/// `START..END` whole seconds from the start of publishing, END exclusive (ThingsBoard's
/// `ALARM_STORM_START_SECOND` and `ALARM_STORM_END_SECOND`).
fn resolve_storm(raw: &Raw) -> Result<AlarmStorm, ConfigError> {
    let form = "expected START..END in whole seconds from the start, END exclusive, e.g. 60..120";
    let text = raw.text()?;
    let (start, end) = text.trim().split_once("..").ok_or_else(|| raw.fail(form))?;
    let seconds = |part: &str| part.trim().parse::<u64>().map_err(|_| raw.fail(form));
    let storm = AlarmStorm {
        start_s: seconds(start)?,
        end_s: seconds(end)?,
    };
    if storm.end_s < storm.start_s {
        return Err(raw.fail("the storm ends before it starts (END < START)"));
    }
    if storm.end_s == storm.start_s {
        return Err(raw.fail(
            "an empty window (END is exclusive): no message would be an alarm; END must be after START",
        ));
    }
    Ok(storm)
}
