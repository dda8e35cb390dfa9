//! The subscriber settings, resolved together because their defaults depend on each other and
//! on the publishers (filter from the topic, QoS from --qos, the audit's memory bound).

use std::time::Duration;

use super::layers::Raw;
use super::resolve::{positive_duration, resolve_qos, resolve_users};
use super::{invalid, ConfigError};

/// The subscriber settings, resolved together because their defaults depend on each other.
pub(super) struct Subscribers {
    pub(super) users: u32,
    pub(super) topic: String,
    pub(super) qos: u8,
    pub(super) e2e: bool,
    pub(super) verify: bool,
    pub(super) drain_quiet: Duration,
    pub(super) drain_max: Duration,
}

/// Longest `--drain-max`: the engine aborts workers that overrun the stop timeout plus the
/// cap, so the cap bounds how long a run can outlive its publishers.
pub(super) const DRAIN_MAX_LIMIT: Duration = Duration::from_secs(3600);

pub(super) fn resolve_subscribers(
    get: &dyn Fn(&str) -> Option<Raw>,
    users: u32,
    qos: u8,
    topic: &str,
) -> Result<Subscribers, ConfigError> {
    let missing = |name: &str| invalid(format!("{name}: no value and no default"));
    let users_raw = get("sub_users").ok_or_else(|| missing("sub_users"))?;
    let sub_users = resolve_users(&users_raw)?;
    let sub_topic = match get("sub_topic") {
        Some(raw) => resolve_filter(&raw)?,
        None => default_filter(topic),
    };
    let sub_qos = match get("sub_qos") {
        Some(raw) => resolve_qos(&raw)?,
        None => qos,
    };
    let verify = match get("verify") {
        Some(raw) => raw.boolean()?,
        None => sub_users > 0,
    };
    let streams = u64::from(sub_users) * u64::from(users);
    if verify && streams > crate::engine::audit::MAX_STREAMS {
        return Err(users_raw.fail(format!(
            "with {users} users the delivery audit would track {streams} streams, more than {} (88 bytes each): use fewer subscribers or --verify false",
            crate::engine::audit::MAX_STREAMS
        )));
    }
    let e2e_raw = get("e2e").ok_or_else(|| missing("e2e"))?;
    let drain_raw = get("drain_timeout").ok_or_else(|| missing("drain_timeout"))?;
    let drain_max_raw = get("drain_max").ok_or_else(|| missing("drain_max"))?;
    Ok(Subscribers {
        users: sub_users,
        topic: sub_topic,
        qos: sub_qos,
        e2e: e2e_raw.boolean()? || sub_users > 0,
        verify: verify && sub_users > 0,
        drain_quiet: drain_raw.duration()?,
        drain_max: resolve_drain_max(&drain_max_raw)?,
    })
}

fn resolve_drain_max(raw: &Raw) -> Result<Duration, ConfigError> {
    match positive_duration(raw)? {
        cap if cap > DRAIN_MAX_LIMIT => Err(raw.fail("must be at most 1h")),
        cap => Ok(cap),
    }
}

/// The publish topic with every level that holds a per-client placeholder replaced by `+`,
/// so that by default the subscribers receive every publisher's messages.
pub(super) fn default_filter(topic: &str) -> String {
    topic
        .split('/')
        .map(|level| if level.contains('{') { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn resolve_filter(raw: &Raw) -> Result<String, ConfigError> {
    let filter = raw.text()?;
    if filter.is_empty() || filter.contains('\0') || filter.len() > usize::from(u16::MAX) {
        return Err(raw.fail("must be 1 to 65535 bytes without NUL characters"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (n, level) in levels.iter().enumerate() {
        let misplaced_hash = level.contains('#') && (*level != "#" || n + 1 != levels.len());
        let misplaced_plus = level.contains('+') && *level != "+";
        if misplaced_hash || misplaced_plus {
            return Err(raw.fail(
                "+ must be a whole level and # the whole last level (MQTT 3.1.1 section 4.7)",
            ));
        }
    }
    if filter.starts_with("$share/") && levels.len() < 3 {
        return Err(raw.fail("a shared subscription is $share/GROUP/FILTER"));
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::TestDir;

    #[test]
    fn subscribers_default_to_the_topic_with_placeholder_levels_as_plus_and_audit_on() {
        let dir = TestDir::new();
        let plan = dir
            .plan(
                &["--sub-users", "3", "--topic", "dev/{i}/t", "--qos", "2"],
                &[],
            )
            .unwrap();
        assert_eq!((plan.sub_users, plan.sub_qos), (3, 2));
        assert_eq!(plan.sub_topic, "dev/+/t");
        assert!(plan.e2e && plan.verify);
        assert_eq!(plan.drain_quiet, Duration::from_secs(2));
        assert_eq!(plan.drain_max, Duration::from_secs(60));
        let plain = dir.plan(&[], &[]).unwrap();
        assert!(
            !plain.e2e && !plain.verify,
            "plain runs send the payload as written"
        );
        let off = dir
            .plan(&["--sub-users", "1", "--verify", "false"], &[])
            .unwrap();
        assert!(off.e2e && !off.verify);
    }

    #[test]
    fn sub_topic_wildcards_must_be_whole_levels() {
        let dir = TestDir::new();
        assert!(dir.plan(&["--sub-topic", "a/#"], &[]).is_ok());
        assert!(dir.plan(&["--sub-topic", "a/+/b"], &[]).is_ok());
        assert!(dir.error(&["--sub-topic", "a/#/b"], &[]).contains("whole"));
        assert!(dir.error(&["--sub-topic", "a+"], &[]).contains("whole"));
        assert!(dir
            .error(&["--sub-topic", "$share/g"], &[])
            .contains("$share"));
    }

    #[test]
    fn the_drain_cap_must_be_longer_than_zero_and_at_most_an_hour() {
        let dir = TestDir::new();
        let plan = dir.plan(&["--drain-max", "5m"], &[]).unwrap();
        assert_eq!(plan.drain_max, Duration::from_secs(300));
        assert_eq!(
            dir.error(&["--drain-max", "0"], &[]),
            "--drain-max 0: must be longer than 0"
        );
        assert_eq!(
            dir.error(&[], &[("MQBLAST_DRAIN_MAX", "2h")]),
            "MQBLAST_DRAIN_MAX=2h: must be at most 1h"
        );
    }

    #[test]
    fn an_audit_beyond_its_memory_bound_is_refused_with_advice() {
        let dir = TestDir::new();
        let error = dir.error(&["-u", "100000", "--sub-users", "100"], &[]);
        assert!(error.contains("--verify false"), "{error}");
    }
}
