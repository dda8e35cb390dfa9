//! Splitting one plan over N processes or hosts (`--shard K/N`) and starting them together
//! (`--start-at EPOCH_MS`).
//!
//! Why it exists: one process tops out at its open-files limit, its ephemeral ports and its
//! cores, so big tests run the same plan on many hosts (`scripts/run_cluster.sh`, a Kubernetes
//! indexed Job, ...). Each host must run a disjoint, exact part of the whole: the shards' users,
//! message limits and spawn rates add up to the plan's, no two shards share a client index (so
//! client ids, topics and payload ids never collide and the broker never kicks a session), and
//! each device token is used by exactly one shard. The arithmetic lives here, free of I/O, so it
//! can be tested exhaustively; `config.rs` applies it to the plan.

use std::ops::Range;
use std::time::Duration;

/// Shard `index` (1-based, as users write it) of `count` equal parts of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `K/N` with 1 <= K <= N.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    const FORM: &str = "expected K/N with 1 <= K <= N, e.g. 1/4 for the first of four parts";
    let (index, count) = text.trim().split_once('/').ok_or(FORM)?;
    let number = |part: &str| part.trim().parse::<u32>().map_err(|_| FORM.to_string());
    let shard = Shard {
        index: number(index)?,
        count: number(count)?,
    };
    if shard.count == 0 || shard.index == 0 || shard.index > shard.count {
        return Err(FORM.to_string());
    }
    Ok(shard)
}

/// The part of `0..total` that `shard` owns: contiguous, the first `total % count` shards one
/// larger, so the parts are disjoint, cover `0..total` exactly and differ by at most one.
pub fn range_of(total: u64, shard: Shard) -> Range<u64> {
    let count = u64::from(shard.count);
    let before = u64::from(shard.index - 1);
    let (base, extra) = (total / count, total % count);
    let start = before * base + before.min(extra);
    let len = base + u64::from(before < extra);
    start..start + len
}

/// How many of `total` (users, messages) this shard gets.
pub fn share_of(total: u64, shard: Shard) -> u64 {
    let range = range_of(total, shard);
    range.end - range.start
}

/// This shard's contiguous part of the device tokens. Fewer tokens than shards would leave a
/// shard without any, so that is refused.
pub fn tokens_of(tokens: &[String], shard: Shard) -> Result<Vec<String>, String> {
    if (tokens.len() as u64) < u64::from(shard.count) {
        return Err(format!(
            "{} device tokens cannot be split over {} shards: each shard needs at least one token of its own (give more tokens or use fewer shards)",
            tokens.len(),
            shard.count
        ));
    }
    let range = range_of(tokens.len() as u64, shard);
    Ok(tokens[range.start as usize..range.end as usize].to_vec())
}

/// The spawn rate of a shard running `shard_users` of `total_users`: proportional, so every
/// shard finishes its ramp-up when the unsharded run would, and the rates add up to `rate_per_s`.
pub fn spawn_rate_of(rate_per_s: f64, shard_users: u64, total_users: u64) -> f64 {
    rate_per_s * shard_users as f64 / total_users.max(1) as f64
}

/// A start time further in the past than this is refused: the hosts would not start together.
pub const START_AT_TOLERANCE: Duration = Duration::from_secs(1);

/// How long to wait from `now_ms` until `start_at_ms` (both epoch milliseconds): zero when the
/// start is now or up to [`START_AT_TOLERANCE`] ago, an error when it is further in the past.
pub fn wait_until(start_at_ms: u64, now_ms: u64) -> Result<Duration, String> {
    if start_at_ms >= now_ms {
        return Ok(Duration::from_millis(start_at_ms - now_ms));
    }
    let late = Duration::from_millis(now_ms - start_at_ms);
    if late <= START_AT_TOLERANCE {
        return Ok(Duration::ZERO);
    }
    Err(format!(
        "the start time is {:.1} s in the past (now is {now_ms} ms since the epoch): every host would start at a different time; pick a time a few seconds ahead, e.g. $(( $(date +%s) + 10 ))000, and check that the hosts' clocks are synchronised (NTP)",
        late.as_secs_f64()
    ))
}

/// Wall-clock now in epoch milliseconds.
pub fn now_epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(count: u32) -> impl Iterator<Item = Shard> {
        (1..=count).map(move |index| Shard { index, count })
    }

    #[test]
    fn shards_parse_as_k_of_n_and_refuse_anything_else() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(parse_shard(" 1 / 1 "), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/4", "5/4", "1/0", "1", "a/b", "-1/4", "1/4/2", ""] {
            assert!(parse_shard(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shares_sum_exactly_to_the_whole_and_differ_by_at_most_one() {
        for total in [0u64, 1, 2, 7, 10, 99, 1_000_003] {
            for count in 1..=9 {
                let shares: Vec<u64> = shards(count).map(|s| share_of(total, s)).collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {count}");
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(max.unwrap() - min.unwrap() <= 1, "{total} over {count}");
            }
        }
    }

    #[test]
    fn client_index_ranges_are_disjoint_contiguous_and_cover_every_client() {
        for total in [1u64, 5, 10, 13, 64] {
            for count in 1..=8 {
                let mut next = 0;
                for shard in shards(count) {
                    let range = range_of(total, shard);
                    assert_eq!(range.start, next, "{total} over {count}: gap or overlap");
                    next = range.end;
                }
                assert_eq!(next, total);
            }
        }
        assert_eq!(range_of(10, Shard { index: 1, count: 3 }), 0..4);
        assert_eq!(range_of(10, Shard { index: 2, count: 3 }), 4..7);
        assert_eq!(range_of(10, Shard { index: 3, count: 3 }), 7..10);
    }

    #[test]
    fn token_partitions_are_disjoint_and_complete() {
        let tokens: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        for count in 1..=11 {
            let parts: Vec<Vec<String>> = shards(count)
                .map(|s| tokens_of(&tokens, s).unwrap())
                .collect();
            assert!(parts.iter().all(|part| !part.is_empty()));
            assert_eq!(parts.concat(), tokens, "over {count} shards");
        }
    }

    #[test]
    fn fewer_tokens_than_shards_are_refused() {
        let tokens = vec!["a".to_string(), "b".to_string()];
        let err = tokens_of(&tokens, Shard { index: 1, count: 3 }).unwrap_err();
        assert!(err.starts_with("2 device tokens cannot be split over 3 shards"));
    }

    #[test]
    fn spawn_rates_are_proportional_to_users_and_sum_to_the_whole() {
        let total: f64 = shards(3)
            .map(|s| spawn_rate_of(30.0, share_of(10, s), 10))
            .sum();
        assert!((total - 30.0).abs() < 1e-9);
        assert_eq!(spawn_rate_of(30.0, 4, 10), 12.0);
    }

    #[test]
    fn a_start_ahead_is_waited_for_and_one_just_missed_starts_now() {
        assert_eq!(wait_until(10_500, 10_000), Ok(Duration::from_millis(500)));
        assert_eq!(wait_until(10_000, 10_000), Ok(Duration::ZERO));
        assert_eq!(wait_until(9_000, 10_000), Ok(Duration::ZERO));
    }

    #[test]
    fn a_start_more_than_a_second_in_the_past_is_refused() {
        let err = wait_until(8_000, 10_000).unwrap_err();
        assert!(
            err.starts_with("the start time is 2.0 s in the past"),
            "{err}"
        );
    }
}
