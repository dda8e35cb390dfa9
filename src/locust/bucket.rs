//! Locust's response-time buckets. A Locust master computes its medians and percentiles from
//! `{milliseconds: count}` maps whose keys follow `locust.stats.bucket_response_time`: whole
//! ms below 100 ms, 10 ms steps below 1 s, 100 ms below 10 s, whole seconds above, each with
//! Python's round-half-to-even. A worker that keys its counts any other way skews the master's
//! percentiles, so the rule is reproduced exactly here, in integer microseconds (every tie
//! point of the rule is a whole number of microseconds, so this equals Python on `us / 1000`).
//!
//! Our samples live in HDR histograms (3 significant digits). A recorded value stands for its
//! HDR bucket; it is keyed by the bucket's middle. Below 2,048 µs HDR buckets are 1 µs wide,
//! so keys there are exact. Above, a bucket is at most 1/1024 of its value wide, so a sample
//! can land in the neighbouring Locust bucket only when it lies within half an HDR bucket
//! (at most 0.05% of its value: 50 µs at 100 ms, 0.5 ms at 1 s) of a Locust tie point.

use hdrhistogram::Histogram;

/// Python's `round(q / d)` for whole numbers: round half to even.
fn round_half_even(value: u64, divisor: u64) -> u64 {
    let (quotient, remainder) = (value / divisor, value % divisor);
    let twice = 2 * remainder;
    if twice > divisor || (twice == divisor && quotient % 2 == 1) {
        quotient + 1
    } else {
        quotient
    }
}

/// `locust.stats.bucket_response_time(us / 1000)`, in milliseconds.
pub fn bucket_ms(us: u64) -> u64 {
    if us < 100_000 {
        round_half_even(us, 1_000)
    } else if us < 1_000_000 {
        10 * round_half_even(us, 10_000)
    } else if us < 10_000_000 {
        100 * round_half_even(us, 100_000)
    } else {
        1000 * round_half_even(us, 1_000_000)
    }
}

/// The value a recorded HDR bucket stands for: its middle (the value itself where buckets
/// are 1 µs wide).
pub fn representative_us(histogram: &Histogram<u64>, value: u64) -> u64 {
    histogram.median_equivalent(value)
}

/// How far from the value it stands for a recorded sample can be: half its HDR bucket.
pub fn half_width_us(histogram: &Histogram<u64>, value: u64) -> u64 {
    let low = histogram.lowest_equivalent(value);
    let high = histogram.highest_equivalent(value);
    (high - low) / 2 + 1
}

/// `{bucket ms: count}` of a histogram, in ascending key order (adjacent HDR buckets that
/// share a Locust bucket are added together).
pub fn buckets(histogram: &Histogram<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for step in histogram.iter_recorded() {
        let key = bucket_ms(representative_us(histogram, step.value_iterated_to()));
        let count = step.count_at_value();
        match out.last_mut() {
            Some((last, sum)) if *last == key => *sum += count,
            _ => out.push((key, count)),
        }
    }
    out
}

/// Sum of the recorded values in milliseconds, each at the value it stands for.
pub fn total_ms(histogram: &Histogram<u64>) -> f64 {
    let mut sum_us: u128 = 0;
    for step in histogram.iter_recorded() {
        let value = representative_us(histogram, step.value_iterated_to());
        sum_us += u128::from(value) * u128::from(step.count_at_value());
    }
    sum_us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn ties_round_to_even_and_boundaries_move_up_a_decade() {
        assert_eq!(bucket_ms(0), 0);
        assert_eq!(bucket_ms(499), 0);
        assert_eq!(bucket_ms(500), 0); // 0.5 -> 0 (even)
        assert_eq!(bucket_ms(1_500), 2); // 1.5 -> 2
        assert_eq!(bucket_ms(2_500), 2); // 2.5 -> 2
        assert_eq!(bucket_ms(99_500), 100);
        assert_eq!(bucket_ms(105_000), 100); // 10.5 tens -> 10 (even)
        assert_eq!(bucket_ms(115_000), 120);
        assert_eq!(bucket_ms(995_000), 1000);
        assert_eq!(bucket_ms(9_950_000), 10_000);
        assert_eq!(bucket_ms(12_500_000), 12_000);
    }

    #[test]
    fn keys_from_a_histogram_are_exact_where_its_buckets_are_1_us_wide() {
        for us in [1, 499, 500, 501, 1_499, 1_500, 1_501, 2_047] {
            let mut histogram = new_histogram();
            histogram.record(us).unwrap();
            assert_eq!(buckets(&histogram), vec![(bucket_ms(us), 1)], "{us} us");
        }
    }

    /// The stated bound: a sample's key differs from its exact one only within half an HDR
    /// bucket of a tie point, and then it is the neighbouring key.
    #[test]
    fn a_key_moves_only_next_to_a_tie_point_and_only_to_the_neighbouring_bucket() {
        let histogram = new_histogram();
        let mut moved = 0;
        // Every value around every tie point of each branch of the rule.
        let ms = (0..100u64).map(|k| k * 1_000 + 500);
        let tens = (10..100u64).map(|k| k * 10_000 + 5_000);
        let hundreds = (10..100u64).map(|k| k * 100_000 + 50_000);
        let seconds = (10..60u64).map(|k| k * 1_000_000 + 500_000);
        for tie in ms.chain(tens).chain(hundreds).chain(seconds) {
            for value in tie.saturating_sub(600)..tie + 600 {
                let exact = bucket_ms(value);
                let keyed = bucket_ms(representative_us(&histogram, value));
                if keyed == exact {
                    continue;
                }
                moved += 1;
                let half = half_width_us(&histogram, value);
                assert!(value >= 2_048, "{value} us: exact below 2048 us");
                assert!(
                    value.abs_diff(tie) <= half,
                    "{value} us keyed {keyed}, exact {exact}"
                );
                assert!(bucket_ms(tie.saturating_sub(1)).min(bucket_ms(tie + 1)) <= keyed);
                assert!(keyed <= bucket_ms(tie.saturating_sub(1)).max(bucket_ms(tie + 1)));
            }
        }
        assert!(moved > 0, "values next to tie points above 2048 us do move");
    }

    #[test]
    fn counts_and_totals_are_kept() {
        let mut histogram = new_histogram();
        for us in [700, 1_200, 1_400, 55_000, 250_000, 3_000_000] {
            histogram.record(us).unwrap();
        }
        let keys = buckets(&histogram);
        assert_eq!(keys.iter().map(|(_, c)| c).sum::<u64>(), 6);
        assert_eq!(keys[0], (1, 3)); // 0.7, 1.2, 1.4 ms
        let total = total_ms(&histogram);
        assert!((total - 3_308.3).abs() < 3_308.3 * 0.001, "{total}");
    }
}
