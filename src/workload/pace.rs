//! Paces: when a stream's next message is due, as data rather than one send loop per option.
//!
//! Three paces, each a Locust wait-time function a user of the old script knows:
//! - `interval`: a fixed-rate schedule (every `interval` from the connection's first message).
//!   A generator that falls behind sends the missed messages as soon as it can (bounded by
//!   the in-flight window), so the rate asked for is the rate measured. Zero: no pace at all,
//!   as fast as the in-flight window allows (a throughput test).
//! - `between(a, b)`: Locust's `between`: after each send a uniform random wait in `[a, b]`.
//!   A send late by its schedule pushes the next one later (Locust waits after the task),
//!   never earlier.
//! - `constant_pacing(p)`: Locust's `constant_pacing`: each message is due `p` after the
//!   previous one was due, but never before the previous send (a late send is followed by at
//!   most one message at once, not a burst that catches up as `interval` does).
//!
//! Randomness comes from [`PaceRng`], one per connection: a SplitMix64 generator (8 bytes of
//! state, no allocation) seeded from the run's seed and the client index, so a run is
//! reproducible and no two devices share a sequence.

use std::time::Duration;

/// How a stream paces its messages. Times in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Fixed rate; 0: as fast as the in-flight window allows.
    Interval { interval_ns: u64 },
    /// A uniform random wait in `[min_ns, max_ns]` after each send (`min_ns <= max_ns`).
    Between { min_ns: u64, max_ns: u64 },
    /// Due `pace_ns` after the previous message was due, never before the previous send.
    ConstantPacing { pace_ns: u64 },
}

impl Pace {
    /// The fixed-rate pace of `interval` (the single-stream `interval` setting).
    pub fn interval(interval: Duration) -> Pace {
        Pace::Interval {
            interval_ns: duration_ns(interval),
        }
    }

    /// No pace: every message is due at once (`interval = 0`).
    pub fn is_unpaced(&self) -> bool {
        matches!(self, Pace::Interval { interval_ns: 0 })
    }

    /// The shortest wait this pace can put between two messages (0 when unpaced): what the
    /// worker's batching rules are sized from.
    pub fn shortest_gap_ns(&self) -> u64 {
        match *self {
            Pace::Interval { interval_ns } => interval_ns,
            Pace::Between { min_ns, .. } => min_ns,
            Pace::ConstantPacing { pace_ns } => pace_ns,
        }
    }

    /// Mean messages per second of one stream on this pace (None when unpaced: as many as
    /// the broker takes).
    pub fn mean_rate_per_s(&self) -> Option<f64> {
        let mean_ns = match *self {
            Pace::Interval { interval_ns: 0 } => return None,
            Pace::Interval { interval_ns } => interval_ns as f64,
            Pace::Between { min_ns, max_ns } => (min_ns as f64 + max_ns as f64) / 2.0,
            Pace::ConstantPacing { pace_ns } => pace_ns as f64,
        };
        (mean_ns > 0.0).then(|| 1e9 / mean_ns)
    }

    /// When the message after one due at `due_ns` and sent at `sent_ns` is due (ns since the
    /// run's start). Saturating: a due time never wraps, it stops at the end of time.
    #[inline]
    pub fn next_due_ns(&self, due_ns: u64, sent_ns: u64, rng: &mut PaceRng) -> u64 {
        match *self {
            Pace::Interval { interval_ns: 0 } => sent_ns,
            Pace::Interval { interval_ns } => due_ns.saturating_add(interval_ns),
            Pace::Between { min_ns, max_ns } => due_ns
                .max(sent_ns)
                .saturating_add(rng.uniform_ns(min_ns, max_ns)),
            Pace::ConstantPacing { pace_ns } => due_ns.saturating_add(pace_ns).max(sent_ns),
        }
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A connection's random source for its paces: SplitMix64 (Steele, Lea, Flood 2014), which
/// passes BigCrush, costs a few instructions per draw and holds 8 bytes of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceRng {
    state: u64,
}

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl PaceRng {
    /// The generator of client `client_index` in a run seeded with `seed`: the same client of
    /// the same run draws the same waits; different clients draw different ones.
    pub fn for_client(seed: u64, client_index: u64) -> PaceRng {
        let mut mixer = PaceRng {
            state: seed ^ client_index.wrapping_mul(GOLDEN_GAMMA).rotate_left(17),
        };
        PaceRng {
            state: mixer.next_u64(),
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform draw from `[min_ns, max_ns]` (inclusive; `min_ns` when the bounds are
    /// reversed). Multiply-shift (Lemire) rather than a modulo: no division, and the bias is
    /// below 2^-64 per nanosecond of the range.
    #[inline]
    pub fn uniform_ns(&mut self, min_ns: u64, max_ns: u64) -> u64 {
        let Some(span) = max_ns.checked_sub(min_ns) else {
            return min_ns;
        };
        let draw = self.next_u64();
        match span.checked_add(1) {
            Some(count) => min_ns + ((u128::from(draw) * u128::from(count)) >> 64) as u64,
            None => draw, // the whole u64 range
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_NS: u64 = 1_000_000_000;

    #[test]
    fn an_interval_is_a_fixed_rate_that_catches_up_after_a_late_send() {
        let pace = Pace::Interval {
            interval_ns: SECOND_NS,
        };
        let mut rng = PaceRng::for_client(0, 0);
        assert_eq!(
            pace.next_due_ns(5 * SECOND_NS, 5 * SECOND_NS, &mut rng),
            6 * SECOND_NS
        );
        assert_eq!(
            pace.next_due_ns(5 * SECOND_NS, 9 * SECOND_NS, &mut rng),
            6 * SECOND_NS,
            "sent 4 s late: the next one is already due"
        );
    }

    #[test]
    fn an_unpaced_stream_is_due_again_at_its_send() {
        let pace = Pace::Interval { interval_ns: 0 };
        assert!(pace.is_unpaced());
        let mut rng = PaceRng::for_client(0, 0);
        assert_eq!(pace.next_due_ns(3, 70, &mut rng), 70);
        assert_eq!(pace.mean_rate_per_s(), None);
    }

    #[test]
    fn between_waits_a_uniform_time_in_its_bounds_after_each_send() {
        let (min_ns, max_ns) = (SECOND_NS, 3 * SECOND_NS);
        let pace = Pace::Between { min_ns, max_ns };
        let mut rng = PaceRng::for_client(7, 42);
        let mut sum = 0u128;
        let draws = 10_000u64;
        for _ in 0..draws {
            let wait = pace.next_due_ns(10 * SECOND_NS, 10 * SECOND_NS, &mut rng) - 10 * SECOND_NS;
            assert!((min_ns..=max_ns).contains(&wait), "{wait}");
            sum += u128::from(wait);
        }
        let mean = (sum / u128::from(draws)) as f64 / SECOND_NS as f64;
        assert!((1.9..2.1).contains(&mean), "mean wait {mean} s");
        let late = pace.next_due_ns(10 * SECOND_NS, 20 * SECOND_NS, &mut rng);
        assert!(
            late >= 21 * SECOND_NS,
            "a late send pushes the next one later"
        );
        assert_eq!(pace.mean_rate_per_s(), Some(0.5));
    }

    #[test]
    fn constant_pacing_keeps_its_pace_and_never_bursts_to_catch_up() {
        let pace = Pace::ConstantPacing {
            pace_ns: 2 * SECOND_NS,
        };
        let mut rng = PaceRng::for_client(0, 0);
        assert_eq!(
            pace.next_due_ns(4 * SECOND_NS, 4 * SECOND_NS, &mut rng),
            6 * SECOND_NS
        );
        assert_eq!(
            pace.next_due_ns(4 * SECOND_NS, 11 * SECOND_NS, &mut rng),
            11 * SECOND_NS,
            "sent 7 s late: one message at once, then the pace again"
        );
    }

    #[test]
    fn due_times_saturate_instead_of_wrapping() {
        let mut rng = PaceRng::for_client(0, 0);
        for pace in [
            Pace::Interval {
                interval_ns: u64::MAX,
            },
            Pace::Between {
                min_ns: u64::MAX - 1,
                max_ns: u64::MAX,
            },
            Pace::ConstantPacing { pace_ns: u64::MAX },
        ] {
            assert_eq!(
                pace.next_due_ns(u64::MAX - 5, 0, &mut rng),
                u64::MAX,
                "{pace:?}"
            );
        }
    }

    #[test]
    fn the_same_client_of_the_same_seed_draws_the_same_waits_and_others_do_not() {
        let draws = |seed, client| {
            let mut rng = PaceRng::for_client(seed, client);
            (0..8)
                .map(|_| rng.uniform_ns(0, 1_000_000))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(1, 5), draws(1, 5));
        assert_ne!(draws(1, 5), draws(1, 6));
        assert_ne!(draws(1, 5), draws(2, 5));
    }

    #[test]
    fn uniform_draws_cover_both_bounds_and_tolerate_degenerate_ranges() {
        let mut rng = PaceRng::for_client(3, 3);
        let mut seen = [false; 4];
        for _ in 0..1_000 {
            seen[(rng.uniform_ns(10, 13) - 10) as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
        assert_eq!(rng.uniform_ns(9, 9), 9);
        assert_eq!(rng.uniform_ns(9, 3), 9, "reversed bounds: the minimum");
        let _ = rng.uniform_ns(0, u64::MAX);
    }
}
