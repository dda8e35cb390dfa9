//! The global rate (`--rate N`) over a gateway's devices: the rate's devices are the gateway
//! devices of the whole run, as ThingsBoard's performance tests spread `MESSAGES_PER_SECOND`
//! over the devices behind their gateways (`TEST_API=gateway`). Each device point comes due at
//! its device's places in the rate's schedule (`workload::rate`) and is sent on its gateway's
//! connection then.
//!
//! Numbering: the rate's device `i` is the device the gateway plan numbers `i`
//! ([`super::GatewayPlan::device_index`]), whose name is `device_start + i` put into the name
//! template: in a fixed run device `i` is carried by gateway `i % G` (slot `i / G`), so a
//! sequential second walks the device names in order across the gateways, as ThingsBoard's
//! tests do; in a live run (web UI, Locust worker) gateway `g` carries the block
//! `g*D .. g*D + D - 1`. A gateway's slot `s` is device `first_device + s * stride`: two
//! numbers per gateway, nothing per device.
//!
//! Streams: the point streams with a `weight` share each device's turns in proportion to
//! their weights, by the smooth weighted round-robin the connection-level streams use
//! (`workload::stream`), kept per device. Each device waits in the clock of the stream its
//! next turn goes to, so every clock still holds at most the gateway's D devices.
//!
//! Memory, allocated when the gateway's connection is built, never per message: one byte per
//! device (whether its queued turn is only the end of the random order's look-ahead) and,
//! with more than one weighted stream, 4 bytes per device and weighted stream (the credits).

use crate::workload::rate::{Due as RateDue, RateSchedule};

/// The rate's schedule placed on the run clock: what a gateway asks for its devices' turns.
#[derive(Debug, Clone, Copy)]
pub struct RateClock<'a> {
    pub schedule: &'a RateSchedule,
    /// The schedule's origin on the run clock (the publishers' start).
    pub origin_ns: u64,
}

/// A device's next turn on the run clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// When (ns since the run's start); `u64::MAX`: never.
    pub at_ns: u64,
    /// The time is only the end of the random order's look-ahead: no point then, ask again.
    pub recheck: bool,
}

impl RateClock<'_> {
    /// Device `device`'s (the gateway plan's numbering) next turn at or after `from_ns`.
    pub fn next_turn(&self, device: u64, from_ns: u64) -> Turn {
        let never = Turn {
            at_ns: u64::MAX,
            recheck: false,
        };
        let Some(device) = self.schedule.device_of(device) else {
            return never;
        };
        let from_origin_ns = from_ns.saturating_sub(self.origin_ns);
        match self.schedule.due_at_or_after(device, from_origin_ns) {
            RateDue::At(t_ns) => Turn {
                at_ns: self.origin_ns.saturating_add(t_ns),
                recheck: false,
            },
            RateDue::NotBefore(t_ns) => Turn {
                at_ns: self.origin_ns.saturating_add(t_ns),
                recheck: true,
            },
            RateDue::Never => never,
        }
    }

    /// Whether device `device`'s point due at `due_ns` (run clock) is one of the rate's alarms.
    pub fn is_alarm(&self, device: u64, due_ns: u64) -> bool {
        self.schedule.device_of(device).is_some_and(|device| {
            self.schedule
                .is_alarm(device, due_ns.saturating_sub(self.origin_ns))
        })
    }
}

/// One gateway's devices under the rate: where they sit in its numbering, which point streams
/// share their turns, and the per-device state that sharing needs.
#[derive(Debug)]
pub struct DeviceTurns {
    /// The device number (gateway plan's numbering) of slot 0...
    first_device: u64,
    /// ...and between consecutive slots.
    stride: u64,
    /// The weighted streams: (stream index, weight), in stream order.
    weighted: Box<[(usize, u32)]>,
    /// Per device, per weighted stream: round-robin credit. Empty with one weighted stream.
    /// Smooth WRR keeps every credit within the sum of the weights (at most 32 x 10^6), so
    /// an `i32` holds it.
    credits: Box<[i32]>,
    /// Per device: its queued turn is a recheck ([`Turn::recheck`]).
    recheck: Box<[bool]>,
}

impl DeviceTurns {
    /// The turns of a gateway whose slot `s` is device `first_device + s * stride`, carrying
    /// `devices` devices, with point streams of `weights` (0: a pace of its own). Allocates;
    /// at connection build time only.
    pub fn new(first_device: u64, stride: u64, devices: u32, weights: &[u32]) -> DeviceTurns {
        let weighted: Box<[(usize, u32)]> = weights
            .iter()
            .enumerate()
            .filter(|&(_, &weight)| weight > 0)
            .map(|(stream, &weight)| (stream, weight))
            .collect();
        let credits = match weighted.len() {
            0 | 1 => Vec::new(),
            n => vec![0; devices as usize * n],
        };
        DeviceTurns {
            first_device,
            stride,
            weighted,
            credits: credits.into_boxed_slice(),
            recheck: vec![false; devices as usize].into_boxed_slice(),
        }
    }

    /// Whether point stream `stream` takes its devices' turns from the rate.
    #[inline]
    pub fn is_weighted(&self, stream: usize) -> bool {
        self.weighted.iter().any(|&(index, _)| index == stream)
    }

    /// The device number of `slot`.
    #[inline]
    pub fn device(&self, slot: u32) -> u64 {
        self.first_device
            .saturating_add(u64::from(slot).saturating_mul(self.stride))
    }

    /// A new session: every device's round-robin starts over.
    pub fn reset(&mut self) {
        self.credits.fill(0);
        self.recheck.fill(false);
    }

    /// Whether `slot`'s queued turn is a recheck.
    #[inline]
    pub fn is_recheck(&self, slot: u32) -> bool {
        self.recheck[slot as usize]
    }

    /// Mark `slot`'s queued turn a recheck or a point.
    #[inline]
    pub fn set_recheck(&mut self, slot: u32, recheck: bool) {
        self.recheck[slot as usize] = recheck;
    }

    /// The weighted stream that takes `slot`'s next turn (None without weighted streams).
    #[inline]
    pub fn pick(&mut self, slot: u32) -> Option<usize> {
        let count = self.weighted.len();
        if count <= 1 {
            return self.weighted.first().map(|&(stream, _)| stream);
        }
        let credits = &mut self.credits[slot as usize * count..(slot as usize + 1) * count];
        let mut total: i32 = 0;
        let mut best = 0;
        for (n, &(_, weight)) in self.weighted.iter().enumerate() {
            // Weights are at most WEIGHT_MAX (10^6), streams at most 32: no overflow.
            let weight = weight as i32;
            total += weight;
            credits[n] += weight;
            if credits[n] > credits[best] {
                best = n;
            }
        }
        credits[best] -= total;
        Some(self.weighted[best].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::rate::{RateOrder, RatePlan, NS_PER_S};

    fn schedule(n: u64, d: u64, order: RateOrder) -> RateSchedule {
        RateSchedule::new(&RatePlan {
            messages_per_s: n,
            devices: d,
            first_device_index: 0,
            order,
            seed: 7,
            alarms_per_s: 1,
            alarm_storm: None,
        })
        .unwrap()
    }

    #[test]
    fn a_turn_is_the_schedules_place_moved_to_the_run_clock() {
        let s = schedule(4, 8, RateOrder::Sequential);
        let clock = RateClock {
            schedule: &s,
            origin_ns: 1_000,
        };
        // Device 5 is the second message of second 1: 1.25 s after the origin.
        let turn = clock.next_turn(5, 0);
        assert_eq!(turn.at_ns, 1_000 + NS_PER_S + NS_PER_S / 4);
        assert!(!turn.recheck);
        // Device 0 is the first message of second 0 (an alarm), then of second 2.
        assert_eq!(clock.next_turn(0, 0).at_ns, 1_000);
        assert!(clock.is_alarm(0, 1_000));
        assert!(!clock.is_alarm(1, 1_000 + NS_PER_S / 4));
        assert_eq!(clock.next_turn(0, 1_001).at_ns, 1_000 + 2 * NS_PER_S);
        // Not a device of the schedule: never.
        assert_eq!(clock.next_turn(8, 0).at_ns, u64::MAX);
    }

    #[test]
    fn a_device_rarely_due_in_random_order_is_a_recheck_at_the_end_of_the_look_ahead() {
        let s = schedule(1, 1_000_000, RateOrder::Random);
        let clock = RateClock {
            schedule: &s,
            origin_ns: 0,
        };
        let rechecks = (0..100)
            .filter(|&device| clock.next_turn(device, 0).recheck)
            .count();
        assert!(rechecks > 90, "{rechecks}");
    }

    #[test]
    fn slots_are_numbered_from_the_gateways_first_device_by_its_stride() {
        // Gateway 2 of 4 in a fixed run: devices 2, 6, 10, ...
        let turns = DeviceTurns::new(2, 4, 3, &[1]);
        assert_eq!(
            (0..3).map(|slot| turns.device(slot)).collect::<Vec<_>>(),
            [2, 6, 10]
        );
    }

    #[test]
    fn one_weighted_stream_takes_every_turn_and_keeps_no_credits() {
        let mut turns = DeviceTurns::new(0, 1, 1000, &[0, 3]);
        assert!(turns.credits.is_empty());
        assert!(turns.is_weighted(1) && !turns.is_weighted(0));
        assert!((0..10).all(|_| turns.pick(7) == Some(1)));
        let mut none = DeviceTurns::new(0, 1, 10, &[0]);
        assert_eq!(none.pick(0), None);
    }

    #[test]
    fn weighted_streams_share_each_devices_turns_by_weight() {
        let mut turns = DeviceTurns::new(0, 1, 2, &[3, 0, 1]);
        let mut counts = [[0u32; 3]; 2];
        for turn in 1..=40u32 {
            for slot in 0..2 {
                let stream = turns.pick(slot).unwrap();
                counts[slot as usize][stream] += 1;
            }
            // Each device on its own: within one of its exact 3:1 share at every turn.
            for device in counts {
                assert!((device[0] * 4).abs_diff(turn * 3) < 4, "{counts:?}");
            }
        }
        assert_eq!(counts, [[30, 0, 10], [30, 0, 10]]);
        turns.reset();
        assert!(turns.credits.iter().all(|&c| c == 0));
    }
}
