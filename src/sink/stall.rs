//! `--stall EVERY:FOR` and the duration syntax the sink's options share.
//!
//! A stall imitates a broker that stops reading for a while (a GC pause, a full disk, a
//! leader election). Every worker derives the stall windows from the same start instant, so
//! the whole process stops reading at once, as one stalled broker would.

use std::time::Duration;

/// Periodic read pause: reads stop during `[k * every, k * every + duration)` for k >= 1,
/// counted from the sink's start. `duration < every`, both non-zero (see [`parse_stall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub every: Duration,
    pub duration: Duration,
}

impl Stall {
    /// Whether reads are paused `elapsed_ns` after the sink started.
    pub fn is_stalled_at(&self, elapsed_ns: u64) -> bool {
        let every_ns = duration_ns(self.every).max(1);
        elapsed_ns >= every_ns && elapsed_ns % every_ns < duration_ns(self.duration)
    }

    /// Nanoseconds from `elapsed_ns` until [`Stall::is_stalled_at`] next changes value.
    pub fn next_change_in_ns(&self, elapsed_ns: u64) -> u64 {
        let every_ns = duration_ns(self.every).max(1);
        let stall_ns = duration_ns(self.duration);
        if elapsed_ns < every_ns {
            return every_ns - elapsed_ns;
        }
        let into_period_ns = elapsed_ns % every_ns;
        if into_period_ns < stall_ns {
            stall_ns - into_period_ns
        } else {
            every_ns - into_period_ns
        }
    }
}

/// Parse `EVERY:FOR`, e.g. `10s:1s` (stop reading for 1 s every 10 s).
///
/// # Errors
/// A message naming the problem: no colon, a bad duration, a zero part, or `FOR` not shorter
/// than `EVERY` (the sink would never read again).
pub fn parse_stall(s: &str) -> Result<Stall, String> {
    let (every, duration) = s
        .split_once(':')
        .ok_or_else(|| format!("stall {s:?} is not EVERY:FOR, e.g. 10s:1s"))?;
    let every = parse_duration(every).map_err(|e| format!("stall EVERY: {e}"))?;
    let duration = parse_duration(duration).map_err(|e| format!("stall FOR: {e}"))?;
    if every.is_zero() || duration.is_zero() {
        return Err(format!(
            "stall {s:?}: EVERY and FOR must both be above zero"
        ));
    }
    if duration >= every {
        return Err(format!(
            "stall {s:?}: FOR must be shorter than EVERY, or the sink never reads again"
        ));
    }
    Ok(Stall { every, duration })
}

/// Durations are parsed as everywhere else in mqblast (`250ms`, `1.5s`, `2m`, `3` = 3 s).
pub use crate::config::parse_duration;

/// Saturating nanoseconds of a duration (584 years fit in a u64).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn durations_accept_milliseconds_seconds_minutes_and_plain_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn stall_parses_every_then_for() {
        assert_eq!(
            parse_stall("10s:1s"),
            Ok(Stall {
                every: Duration::from_secs(10),
                duration: Duration::from_secs(1)
            })
        );
        assert_eq!(
            parse_stall("1s:300ms"),
            Ok(Stall {
                every: Duration::from_secs(1),
                duration: Duration::from_millis(300)
            })
        );
    }

    #[test]
    fn stall_errors_say_what_is_wrong() {
        let no_colon = parse_stall("10s").unwrap_err();
        assert!(no_colon.contains("EVERY:FOR"), "{no_colon}");
        let bad_every = parse_stall("x:1s").unwrap_err();
        assert!(bad_every.starts_with("stall EVERY"), "{bad_every}");
        let bad_for = parse_stall("10s:1x").unwrap_err();
        assert!(bad_for.starts_with("stall FOR"), "{bad_for}");
        let zero = parse_stall("10s:0s").unwrap_err();
        assert!(zero.contains("above zero"), "{zero}");
        let too_long = parse_stall("1s:1s").unwrap_err();
        assert!(too_long.contains("shorter than EVERY"), "{too_long}");
        assert!(parse_stall("1s:2s").is_err());
        assert!(parse_stall(":").is_err());
    }

    #[test]
    fn stall_windows_start_after_the_first_period_and_last_for_the_stall() {
        let stall = parse_stall("1s:300ms").unwrap();
        assert!(!stall.is_stalled_at(0));
        assert!(!stall.is_stalled_at(999 * MS));
        assert!(stall.is_stalled_at(1_000 * MS));
        assert!(stall.is_stalled_at(1_299 * MS));
        assert!(!stall.is_stalled_at(1_300 * MS));
        assert!(stall.is_stalled_at(2_000 * MS));
    }

    #[test]
    fn next_change_points_at_the_next_window_edge() {
        let stall = parse_stall("1s:300ms").unwrap();
        assert_eq!(stall.next_change_in_ns(0), 1_000 * MS);
        assert_eq!(stall.next_change_in_ns(1_100 * MS), 200 * MS);
        assert_eq!(stall.next_change_in_ns(1_300 * MS), 700 * MS);
        assert_eq!(stall.next_change_in_ns(1_999 * MS), MS);
    }
}
