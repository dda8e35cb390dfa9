//! The global rate (`--rate N`): N messages per second across the D devices of the whole run,
//! as ThingsBoard's performance tests send them (`MESSAGES_PER_SECOND`, `TEST_SEQUENTIAL`,
//! `SEED`, `ALARMS_PER_SECOND`, `ALARM_STORM_START_SECOND`..`_END_SECOND`).
//!
//! Why it exists: a per-user interval says how often each device publishes; a capacity test of
//! ThingsBoard says how many messages per second the platform gets, whatever the number of
//! devices. This module is the schedule only, pure arithmetic free of I/O and of the clock: the
//! engine asks it, per device, "when am I next due after t" and "is this message an alarm".
//!
//! The schedule. Time is nanoseconds since the schedule's origin (the publishers' start);
//! second `s` holds messages `k = 0..N`, message `k` at `s + k/N` seconds (`floor(k * 1e9 / N)`
//! ns into the second), so the N messages are spread evenly over the second.
//! - **Sequential**: message `k` of second `s` is position `p = s*N + k` of the run and goes to
//!   device `p mod D`: each second takes the next N devices in order, continuing where the
//!   previous second stopped, wrapping. A device's positions are an arithmetic progression
//!   (`device + j*D`), so its next message after `t` is found in O(1).
//! - **Random**: each second deals its messages from seeded permutations of the devices: round
//!   `r` of second `s` (messages `r*D .. r*D + D` of that second; one round when N <= D) goes to
//!   `perm(seed, s, r)(k - r*D)`. No device repeats within a round, so none repeats within a
//!   second when N <= D, and none is drawn more than `ceil(N/D)` times when N > D. The
//!   permutation is a 4-round Feistel network over the smallest power of four >= D, with cycle
//!   walking back into `[0, D)`; its inverse gives a device its place in a second in O(1).
//!
//! Cost (no allocation anywhere, nothing materialised per second or per device):
//! - sequential: a few multiplications and divisions per question;
//! - random: one inverse permutation per second looked at: 4 rounds of a 64-bit mixer, times
//!   the cycle walk (fewer than 4 steps on average, since the power of four is below 4·D). A
//!   device of a run with N < D is in a given second with probability N/D, so finding its next
//!   message looks at D/N seconds on average; the look is cut at [`LOOKAHEAD_S`] seconds, after
//!   which the answer is "nothing before then, ask again" ([`Due::NotBefore`]). With N >= D
//!   every device is in every second, so the look starts at the round of the moment asked and
//!   ends in that round, the next or the next second's first: at most 3 permutations. Amortised,
//!   the engine pays about one inverse permutation per device per second of the run, and never
//!   more than [`LOOKAHEAD_S`] permutations for one question (`benches/rate.rs`: about 23 ns a
//!   permutation, 1.5 µs for the whole look-ahead, on a loaded 2-core machine).
//!
//! Alarms: within the storm window (`START..END` seconds from the origin, END exclusive as in
//! ThingsBoard's `iteration >= start && iteration < end`; the whole run without a window), the
//! first `alarms_per_second` messages of each second are alarms.
//!
//! Arithmetic is checked throughout: a time past `u64` nanoseconds (584 years) is "never", a
//! rate or device count beyond the stated bounds is refused when the schedule is built.

use std::fmt;
use std::time::Duration;

/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Most messages per second: one per nanosecond of the run clock, so that the messages of a
/// second have distinct times (`floor(k * 1e9 / N)` is strictly increasing in `k`).
pub const RATE_MAX_PER_S: u64 = NS_PER_S;

/// Most devices a schedule spreads its rate over (far beyond what the hosts of a run hold):
/// the random order's permutation domain, a power of four above D, then fits 64 bits with room.
pub const DEVICES_MAX: u64 = 1 << 48;

/// Seconds the random order looks ahead for a device's next message before answering
/// [`Due::NotBefore`]: with N < D a device waits D/N seconds between messages on average, and a
/// look without bound would cost that much in one go (10,000 seconds at N = 1,000 over 10^7
/// devices).
pub const LOOKAHEAD_S: u64 = 64;

/// Rounds of the Feistel network (Luby-Rackoff: four rounds of a good round function make a
/// pseudo-random permutation).
const FEISTEL_ROUNDS: u64 = 4;

/// The fractional part of the golden ratio in 64 bits: spreads consecutive integers apart
/// before mixing (as SplitMix64 does).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// In which order each second's messages go to the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOrder {
    /// The next N devices in index order, continuing from where the previous second stopped
    /// (ThingsBoard's `TEST_SEQUENTIAL=true`).
    Sequential,
    /// Devices drawn at random without repeats within a second, reproducible from the seed
    /// (`TEST_SEQUENTIAL=false`).
    Random,
}

impl RateOrder {
    /// The name in config.toml and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RateOrder::Sequential => "sequential",
            RateOrder::Random => "random",
        }
    }
}

/// The seconds (from the schedule's origin) in which alarms are sent: `start_s..end_s`, end
/// exclusive, as ThingsBoard's `ALARM_STORM_START_SECOND`..`ALARM_STORM_END_SECOND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmStorm {
    pub start_s: u64,
    pub end_s: u64,
}

impl AlarmStorm {
    pub fn contains(&self, second: u64) -> bool {
        self.start_s <= second && second < self.end_s
    }
}

impl fmt::Display for AlarmStorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start_s, self.end_s)
    }
}

/// The global rate as configured (`rate`, `rate_order`, `seed`, `alarms_per_second`,
/// `alarm_storm`), with the devices it is spread over. Plain data: [`RateSchedule::new`]
/// checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePlan {
    /// N: messages per second, all devices of the run together.
    pub messages_per_s: u64,
    /// D: the devices the rate is spread over: every user of the whole run (all `--shard`s).
    pub devices: u64,
    /// The client index of device 0: a client's device is `client index - first_device_index`
    /// (0 for a run and its shards, whose client indexes are already the run's; a Locust
    /// worker's offset under a master).
    pub first_device_index: u64,
    pub order: RateOrder,
    /// Seeds the random order; every process of a run must use the same.
    pub seed: u64,
    /// The first this many messages of each second (within the storm) are alarms; 0: none.
    pub alarms_per_s: u64,
    /// Seconds with alarms; None: every second.
    pub alarm_storm: Option<AlarmStorm>,
}

impl RatePlan {
    /// How long a device waits between two messages on average (D/N seconds, at least 1 ns):
    /// the per-user pace the engine's wakeup batching is sized for.
    pub fn mean_device_interval(&self) -> Duration {
        let ns = u128::from(self.devices) * u128::from(NS_PER_S)
            / u128::from(self.messages_per_s.max(1));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX).max(1))
    }
}

/// Why a [`RatePlan`] cannot be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateError {
    NoMessages,
    TooManyMessages,
    NoDevices,
    TooManyDevices,
    AlarmsAboveRate,
    StormEndsBeforeStart,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::NoMessages => f.write_str("the rate must be at least 1 message per second"),
            RateError::TooManyMessages => write!(
                f,
                "the rate must be at most {RATE_MAX_PER_S} messages per second (one per nanosecond)"
            ),
            RateError::NoDevices => f.write_str("a rate needs at least one device (user)"),
            RateError::TooManyDevices => {
                write!(f, "a rate is spread over at most {DEVICES_MAX} devices")
            }
            RateError::AlarmsAboveRate => {
                f.write_str("alarms per second must not exceed the messages per second")
            }
            RateError::StormEndsBeforeStart => {
                f.write_str("the alarm storm must end after it starts (START..END, END exclusive)")
            }
        }
    }
}

/// The answer to "when is this device next due".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Its next message is at this time (ns since the origin).
    At(u64),
    /// It has no message before this time (the end of the random order's look-ahead): ask
    /// again then.
    NotBefore(u64),
    /// Never in this run: not a device of the schedule, or past the clock's range.
    Never,
}

/// A checked [`RatePlan`], ready to answer the engine. Immutable; `Copy`-cheap to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSchedule {
    messages_per_s: u64,
    devices: u64,
    first_device_index: u64,
    order: RateOrder,
    seed: u64,
    alarms_per_s: u64,
    alarm_storm: Option<AlarmStorm>,
    /// Permutation rounds per second: ceil(N / D).
    rounds_per_s: u64,
    /// Bits of each Feistel half: the domain is 4^half_bits >= D.
    half_bits: u32,
    half_mask: u64,
}

impl RateSchedule {
    pub fn new(plan: &RatePlan) -> Result<RateSchedule, RateError> {
        let (n, d) = (plan.messages_per_s, plan.devices);
        if n == 0 {
            return Err(RateError::NoMessages);
        }
        if n > RATE_MAX_PER_S {
            return Err(RateError::TooManyMessages);
        }
        if d == 0 {
            return Err(RateError::NoDevices);
        }
        if d > DEVICES_MAX {
            return Err(RateError::TooManyDevices);
        }
        if plan.alarms_per_s > n {
            return Err(RateError::AlarmsAboveRate);
        }
        if plan.alarm_storm.is_some_and(|w| w.end_s < w.start_s) {
            return Err(RateError::StormEndsBeforeStart);
        }
        let mut half_bits = 1;
        while (1u64 << (2 * half_bits)) < d {
            half_bits += 1;
        }
        Ok(RateSchedule {
            messages_per_s: n,
            devices: d,
            first_device_index: plan.first_device_index,
            order: plan.order,
            seed: plan.seed,
            alarms_per_s: plan.alarms_per_s,
            alarm_storm: plan.alarm_storm,
            rounds_per_s: n.div_ceil(d),
            half_bits,
            half_mask: (1u64 << half_bits) - 1,
        })
    }

    /// The device of client `client_index`; None for a client outside the schedule's devices.
    pub fn device_of(&self, client_index: u64) -> Option<u64> {
        client_index
            .checked_sub(self.first_device_index)
            .filter(|&device| device < self.devices)
    }

    /// The device that message `k` of second `s` goes to; None when `k >= N`.
    pub fn device_at(&self, second: u64, k: u64) -> Option<u64> {
        if k >= self.messages_per_s {
            return None;
        }
        Some(match self.order {
            RateOrder::Sequential => {
                let position = u128::from(second) * u128::from(self.messages_per_s) + u128::from(k);
                (position % u128::from(self.devices)) as u64
            }
            RateOrder::Random => {
                let round = k / self.devices;
                self.permute(self.key(second, round), k % self.devices)
            }
        })
    }

    /// When `device` is next due at or after `t_ns` (ns since the origin). After a message
    /// scheduled at `due`, its next one is `due_at_or_after(device, due + 1)`.
    pub fn due_at_or_after(&self, device: u64, t_ns: u64) -> Due {
        if device >= self.devices {
            return Due::Never;
        }
        let second = t_ns / NS_PER_S;
        let first_k = self.first_message_from(t_ns % NS_PER_S);
        match self.order {
            RateOrder::Sequential => self.sequential_due(device, second, first_k),
            RateOrder::Random => self.random_due(device, second, first_k),
        }
    }

    /// Whether `device`'s message scheduled at `due_ns` is an alarm: it is one of the first
    /// `alarms_per_second` messages of its second, the second is in the storm, and the
    /// message is really this device's (false for any other time or device).
    pub fn is_alarm(&self, device: u64, due_ns: u64) -> bool {
        if self.alarms_per_s == 0 {
            return false;
        }
        let second = due_ns / NS_PER_S;
        let k = self.first_message_from(due_ns % NS_PER_S);
        k < self.alarms_per_s
            && self.alarm_storm.is_none_or(|storm| storm.contains(second))
            && self.time_of(second, k) == Some(due_ns)
            && self.device_at(second, k) == Some(device)
    }

    /// Time of message `k` (< N) of second `s`, ns since the origin; None past `u64`.
    fn time_of(&self, second: u64, k: u64) -> Option<u64> {
        // k < N <= 1e9, so k * 1e9 < 1e18 fits.
        second
            .checked_mul(NS_PER_S)?
            .checked_add(k * NS_PER_S / self.messages_per_s)
    }

    /// The first message of a second at or after `offset_ns` into it (N when none is): the
    /// least k with floor(k * 1e9 / N) >= offset, i.e. ceil(offset * N / 1e9).
    fn first_message_from(&self, offset_ns: u64) -> u64 {
        // offset < 1e9 and N <= 1e9: the product is below 1e18.
        (offset_ns * self.messages_per_s).div_ceil(NS_PER_S)
    }

    /// Sequential: the first position at or after `second * N + first_k` that is congruent
    /// to `device` modulo D.
    fn sequential_due(&self, device: u64, second: u64, first_k: u64) -> Due {
        let (n, d) = (u128::from(self.messages_per_s), u128::from(self.devices));
        let from = u128::from(second) * n + u128::from(first_k);
        let position = from + (u128::from(device) + d - from % d) % d;
        let Ok(due_second) = u64::try_from(position / n) else {
            return Due::Never;
        };
        self.time_of(due_second, (position % n) as u64)
            .map_or(Due::Never, Due::At)
    }

    /// Random: look at the device's place in each round of each second from `second` on, for
    /// at most [`LOOKAHEAD_S`] seconds.
    fn random_due(&self, device: u64, second: u64, first_k: u64) -> Due {
        for ahead in 0..LOOKAHEAD_S {
            let Some(s) = second.checked_add(ahead) else {
                return Due::Never;
            };
            let least_k = if ahead == 0 { first_k } else { 0 };
            // Rounds before `least_k / D` end before `least_k`: with N >> D (10^7 messages a
            // second over a few devices) walking them would cost a round each.
            for round in least_k / self.devices..self.rounds_per_s {
                // round * D < N + D <= 2^49: no overflow; k grows with the round.
                let k = round * self.devices + self.unpermute(self.key(s, round), device);
                if k >= self.messages_per_s {
                    break;
                }
                if k >= least_k {
                    return self.time_of(s, k).map_or(Due::Never, Due::At);
                }
            }
        }
        second
            .checked_add(LOOKAHEAD_S)
            .and_then(|s| self.time_of(s, 0))
            .map_or(Due::Never, Due::NotBefore)
    }

    /// The permutation key of round `round` of second `second`.
    fn key(&self, second: u64, round: u64) -> u64 {
        mix64(self.seed ^ mix64(second ^ mix64(round.wrapping_add(GOLDEN_GAMMA))))
    }

    /// The device at place `x` (< D) of a permutation of `[0, D)`: the Feistel network, walked
    /// until it lands inside `[0, D)`. The walk ends: the network is a permutation of a finite
    /// domain, so the cycle through `x` comes back to `x` at the latest.
    fn permute(&self, key: u64, x: u64) -> u64 {
        let mut y = self.feistel(key, x);
        while y >= self.devices {
            y = self.feistel(key, y);
        }
        y
    }

    /// The place of device `y` (< D): the inverse of [`RateSchedule::permute`].
    fn unpermute(&self, key: u64, y: u64) -> u64 {
        let mut x = self.feistel_inverse(key, y);
        while x >= self.devices {
            x = self.feistel_inverse(key, x);
        }
        x
    }

    fn feistel(&self, key: u64, x: u64) -> u64 {
        let (mut left, mut right) = (x >> self.half_bits, x & self.half_mask);
        for round in 0..FEISTEL_ROUNDS {
            let f = self.round_function(key, round, right);
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }

    fn feistel_inverse(&self, key: u64, y: u64) -> u64 {
        let (mut left, mut right) = (y >> self.half_bits, y & self.half_mask);
        for round in (0..FEISTEL_ROUNDS).rev() {
            let f = self.round_function(key, round, left);
            (left, right) = (right ^ f, left);
        }
        (left << self.half_bits) | right
    }

    fn round_function(&self, key: u64, round: u64, half: u64) -> u64 {
        mix64(half ^ key.wrapping_add(round.wrapping_mul(GOLDEN_GAMMA))) & self.half_mask
    }
}

/// SplitMix64's finaliser: a bijective 64-bit mixer whose every output bit depends on every
/// input bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n: u64, d: u64, order: RateOrder) -> RatePlan {
        RatePlan {
            messages_per_s: n,
            devices: d,
            first_device_index: 0,
            order,
            seed: 7,
            alarms_per_s: 0,
            alarm_storm: None,
        }
    }

    fn schedule(n: u64, d: u64, order: RateOrder) -> RateSchedule {
        RateSchedule::new(&plan(n, d, order)).unwrap()
    }

    /// The devices of second `s`, in message order.
    fn second_of(schedule: &RateSchedule, s: u64, n: u64) -> Vec<u64> {
        (0..n).map(|k| schedule.device_at(s, k).unwrap()).collect()
    }

    /// Every (time, device) message of seconds `0..seconds`, the model the O(1) answers must
    /// agree with.
    fn messages(schedule: &RateSchedule, n: u64, seconds: u64) -> Vec<(u64, u64)> {
        let mut all = Vec::new();
        for s in 0..seconds {
            for k in 0..n {
                let time = schedule.time_of(s, k).unwrap();
                all.push((time, schedule.device_at(s, k).unwrap()));
            }
        }
        all
    }

    #[test]
    fn each_sequential_second_takes_the_next_n_devices_continuing_and_wrapping() {
        let s = schedule(3, 7, RateOrder::Sequential);
        assert_eq!(second_of(&s, 0, 3), [0, 1, 2]);
        assert_eq!(second_of(&s, 1, 3), [3, 4, 5]);
        assert_eq!(second_of(&s, 2, 3), [6, 0, 1]);
        assert_eq!(second_of(&s, 3, 3), [2, 3, 4]);
        // Day-long runs: second 86,400 continues the same arithmetic.
        assert_eq!(s.device_at(86_400, 0), Some(86_400 * 3 % 7));
    }

    #[test]
    fn the_messages_of_a_second_are_spread_evenly_over_it() {
        let s = schedule(4, 10, RateOrder::Sequential);
        let times: Vec<u64> = (0..4).map(|k| s.time_of(2, k).unwrap()).collect();
        assert_eq!(
            times,
            [2_000_000_000, 2_250_000_000, 2_500_000_000, 2_750_000_000]
        );
        let s = schedule(3, 10, RateOrder::Sequential);
        assert_eq!(s.time_of(0, 1), Some(333_333_333));
        assert_eq!(s.time_of(0, 2), Some(666_666_666));
    }

    #[test]
    fn more_messages_than_devices_send_each_device_its_share_every_second() {
        let s = schedule(10, 4, RateOrder::Sequential);
        let mut counts = [0u32; 4];
        for device in second_of(&s, 0, 10) {
            counts[device as usize] += 1;
        }
        assert_eq!(counts, [3, 3, 2, 2]);
        // The next second continues at device 2.
        assert_eq!(s.device_at(1, 0), Some(2));
    }

    #[test]
    fn a_random_second_never_repeats_a_device() {
        for (n, d) in [(100, 200), (200, 200), (1, 5), (37, 1000)] {
            let s = schedule(n, d, RateOrder::Random);
            for second in 0..20 {
                let mut seen = vec![false; d as usize];
                for device in second_of(&s, second, n) {
                    assert!(
                        !seen[device as usize],
                        "device {device} twice in second {second} (N {n}, D {d})"
                    );
                    seen[device as usize] = true;
                }
            }
        }
    }

    #[test]
    fn with_more_messages_than_devices_a_random_second_draws_each_at_most_ceil_n_over_d() {
        let (n, d) = (500, 200);
        let s = schedule(n, d, RateOrder::Random);
        for second in 0..10 {
            let mut counts = vec![0u64; d as usize];
            for device in second_of(&s, second, n) {
                counts[device as usize] += 1;
            }
            assert!(counts.iter().all(|&c| (2..=3).contains(&c)), "{counts:?}");
            assert_eq!(counts.iter().sum::<u64>(), n);
        }
    }

    #[test]
    fn the_random_order_is_the_same_for_a_seed_and_differs_for_another() {
        let s = schedule(50, 300, RateOrder::Random);
        let again = schedule(50, 300, RateOrder::Random);
        let other = RateSchedule::new(&RatePlan {
            seed: 8,
            ..plan(50, 300, RateOrder::Random)
        })
        .unwrap();
        for second in 0..5 {
            assert_eq!(second_of(&s, second, 50), second_of(&again, second, 50));
        }
        assert_ne!(second_of(&s, 0, 50), second_of(&other, 0, 50));
        // Nor is it one order repeated every second.
        assert_ne!(second_of(&s, 0, 50), second_of(&s, 1, 50));
        // And not the sequential order.
        assert_ne!(second_of(&s, 0, 50), (0..50).collect::<Vec<u64>>());
    }

    #[test]
    fn the_permutation_is_a_bijection_whatever_the_device_count() {
        for d in [1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 1000, 4097] {
            let s = schedule(1, d, RateOrder::Random);
            let key = s.key(3, 0);
            let mut hit = vec![false; d as usize];
            for x in 0..d {
                let y = s.permute(key, x);
                assert!(y < d && !hit[y as usize], "D {d}: {x} -> {y}");
                hit[y as usize] = true;
                assert_eq!(s.unpermute(key, y), x);
            }
        }
    }

    /// The O(1) answer against the brute-force model, for every device and many times.
    fn check_due_against_the_model(n: u64, d: u64, order: RateOrder, seconds: u64) {
        let s = schedule(n, d, order);
        let all = messages(&s, n, seconds);
        let horizon = seconds * NS_PER_S;
        let step = NS_PER_S / 7 + 13;
        for device in 0..d {
            let mut t = 0;
            while t < horizon {
                let expected = all
                    .iter()
                    .filter(|&&(time, dev)| dev == device && time >= t)
                    .map(|&(time, _)| time)
                    .next();
                match (s.due_at_or_after(device, t), expected) {
                    (Due::At(due), Some(expected)) => {
                        assert_eq!(due, expected, "N {n} D {d} {order:?} device {device} t {t}")
                    }
                    (Due::NotBefore(later), None) => assert!(later >= horizon),
                    (Due::At(due), None) => assert!(due >= horizon),
                    (got, expected) => panic!(
                        "N {n} D {d} {order:?} device {device} t {t}: {got:?}, model {expected:?}"
                    ),
                }
                t += step;
            }
            // Straight after each of its messages: the next one.
            let mine: Vec<u64> = all
                .iter()
                .filter(|&&(_, dev)| dev == device)
                .map(|&(time, _)| time)
                .collect();
            for pair in mine.windows(2) {
                assert_eq!(s.due_at_or_after(device, pair[0] + 1), Due::At(pair[1]));
            }
        }
    }

    #[test]
    fn a_sequential_device_finds_its_next_message_as_the_model_does() {
        for (n, d) in [(3, 7), (7, 3), (5, 5), (1, 4), (4, 1), (1000, 13)] {
            check_due_against_the_model(n, d, RateOrder::Sequential, 6);
        }
    }

    #[test]
    fn a_random_device_finds_its_next_message_as_the_model_does() {
        for (n, d) in [(3, 7), (7, 3), (5, 5), (2, 9), (4, 1), (200, 13)] {
            check_due_against_the_model(n, d, RateOrder::Random, 12);
        }
    }

    #[test]
    fn a_random_device_rarely_due_is_told_when_to_ask_again() {
        // One message per second over a million devices: a device waits ~11 days on average.
        let s = schedule(1, 1_000_000, RateOrder::Random);
        let mut not_before = 0;
        for device in 0..200 {
            match s.due_at_or_after(device, 5 * NS_PER_S) {
                Due::NotBefore(t) => {
                    assert_eq!(t, (5 + LOOKAHEAD_S) * NS_PER_S);
                    not_before += 1;
                }
                Due::At(t) => {
                    let second = t / NS_PER_S;
                    assert!((5..5 + LOOKAHEAD_S).contains(&second));
                    assert_eq!(s.device_at(second, 0), Some(device));
                }
                Due::Never => panic!("device {device} never due"),
            }
        }
        assert!(not_before > 190, "{not_before}");
    }

    #[test]
    fn a_device_with_millions_of_turns_a_second_is_found_without_walking_the_rounds() {
        // 10^9 messages a second over 2 devices: 5 * 10^8 rounds a second. Late in a second
        // the answer is in the round of that moment or the next, not after every round before.
        let s = schedule(RATE_MAX_PER_S, 2, RateOrder::Random);
        let t = 5 * NS_PER_S + 999_999_990;
        for device in 0..2 {
            let started = std::time::Instant::now();
            let Due::At(due) = s.due_at_or_after(device, t) else {
                panic!("device {device} not due");
            };
            // A bound on the work, not on speed: a few permutations take microseconds, the
            // 2.5 * 10^8 rounds before this moment would take minutes.
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            assert!((t..t + 4).contains(&due), "{due}");
            assert_eq!(s.device_at(due / NS_PER_S, due % NS_PER_S), Some(device));
        }
    }

    #[test]
    fn alarms_are_the_first_k_messages_of_each_second_of_the_storm_only() {
        let s = RateSchedule::new(&RatePlan {
            alarms_per_s: 2,
            alarm_storm: Some(AlarmStorm {
                start_s: 3,
                end_s: 5,
            }),
            ..plan(5, 8, RateOrder::Sequential)
        })
        .unwrap();
        let mut alarms = Vec::new();
        for second in 0..8 {
            for k in 0..5 {
                let due = s.time_of(second, k).unwrap();
                let device = s.device_at(second, k).unwrap();
                if s.is_alarm(device, due) {
                    alarms.push((second, k));
                }
                // Another device at that time, or a time that is no message, is no alarm.
                assert!(!s.is_alarm((device + 1) % 8, due));
                assert!(!s.is_alarm(device, due + 1));
            }
        }
        assert_eq!(alarms, [(3, 0), (3, 1), (4, 0), (4, 1)]);
    }

    #[test]
    fn without_a_storm_window_every_second_has_its_alarms_in_random_order_too() {
        let s = RateSchedule::new(&RatePlan {
            alarms_per_s: 1,
            ..plan(4, 6, RateOrder::Random)
        })
        .unwrap();
        for second in 0..10 {
            let alarms = (0..4)
                .filter(|&k| {
                    let due = s.time_of(second, k).unwrap();
                    s.is_alarm(s.device_at(second, k).unwrap(), due)
                })
                .collect::<Vec<u64>>();
            assert_eq!(alarms, [0]);
        }
    }

    #[test]
    fn settings_that_cannot_be_scheduled_are_refused() {
        let ok = plan(10, 10, RateOrder::Sequential);
        let refused = |p: RatePlan| RateSchedule::new(&p).unwrap_err();
        assert_eq!(
            refused(RatePlan {
                messages_per_s: 0,
                ..ok.clone()
            }),
            RateError::NoMessages
        );
        assert_eq!(
            refused(RatePlan {
                messages_per_s: RATE_MAX_PER_S + 1,
                ..ok.clone()
            }),
            RateError::TooManyMessages
        );
        assert_eq!(
            refused(RatePlan {
                devices: 0,
                ..ok.clone()
            }),
            RateError::NoDevices
        );
        assert_eq!(
            refused(RatePlan {
                devices: DEVICES_MAX + 1,
                ..ok.clone()
            }),
            RateError::TooManyDevices
        );
        assert_eq!(
            refused(RatePlan {
                alarms_per_s: 11,
                ..ok.clone()
            }),
            RateError::AlarmsAboveRate
        );
        assert_eq!(
            refused(RatePlan {
                alarm_storm: Some(AlarmStorm {
                    start_s: 5,
                    end_s: 4
                }),
                ..ok
            }),
            RateError::StormEndsBeforeStart
        );
    }

    #[test]
    fn the_largest_inputs_answer_without_overflow() {
        for order in [RateOrder::Sequential, RateOrder::Random] {
            let s = schedule(RATE_MAX_PER_S, 10_000_000, order);
            // The end of the clock: nothing fits after it.
            assert_eq!(s.due_at_or_after(3, u64::MAX), Due::Never);
            assert!(!s.is_alarm(3, u64::MAX));
            // A week into a run at 10^7/s over 10^7 devices.
            let week_ns = 7 * 86_400 * NS_PER_S;
            let s = schedule(10_000_000, 10_000_000, order);
            match s.due_at_or_after(9_999_999, week_ns) {
                Due::At(t) => assert!((week_ns..week_ns + 2 * NS_PER_S).contains(&t)),
                other => panic!("{order:?}: {other:?}"),
            }
            let s = schedule(1, DEVICES_MAX, order);
            assert_eq!(s.due_at_or_after(DEVICES_MAX, 0), Due::Never);
            let last = s.due_at_or_after(DEVICES_MAX - 1, week_ns);
            match order {
                // Its turn comes after 2^48 seconds, past the clock's 584 years.
                RateOrder::Sequential => assert_eq!(last, Due::Never),
                // 1 in 2^48 per second: not within the look-ahead.
                RateOrder::Random => {
                    assert_eq!(last, Due::NotBefore(week_ns + LOOKAHEAD_S * NS_PER_S))
                }
            }
        }
        // The device whose turn is a week in: exactly then.
        let s = schedule(1, DEVICES_MAX, RateOrder::Sequential);
        assert_eq!(
            s.due_at_or_after(7 * 86_400, 1),
            Due::At(7 * 86_400 * NS_PER_S)
        );
    }

    #[test]
    fn clients_outside_the_devices_of_the_schedule_have_no_device() {
        let s = RateSchedule::new(&RatePlan {
            first_device_index: 100,
            ..plan(10, 5, RateOrder::Sequential)
        })
        .unwrap();
        assert_eq!(s.device_of(99), None);
        assert_eq!(s.device_of(100), Some(0));
        assert_eq!(s.device_of(104), Some(4));
        assert_eq!(s.device_of(105), None);
    }

    #[test]
    fn the_mean_device_interval_is_d_over_n_seconds() {
        assert_eq!(
            plan(500, 200, RateOrder::Sequential).mean_device_interval(),
            Duration::from_millis(400)
        );
        assert_eq!(
            plan(RATE_MAX_PER_S, 1, RateOrder::Sequential).mean_device_interval(),
            Duration::from_nanos(1)
        );
    }
}
