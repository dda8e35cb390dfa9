//! One gateway connection's schedule: which devices are announced, which point of which
//! device is due when, and which have said goodbye. Pure state, driven by the worker with its
//! clock (no I/O here), so it is tested with plain numbers.
//!
//! Each point stream keeps a clock per device: a min-heap of (due time, device) with room for
//! exactly the gateway's D devices, reserved when the connection is built, so taking the due
//! devices and putting them back never allocates. Each device has its own next-due time at
//! its stream's pace (`workload::pace`), its own sequence number (`{seq}`) and its own place
//! in the payload rotation.
//!
//! When a session starts (each CONNACK):
//! - `per-point`: device k of D is first due at `start + k * gap / D`, `gap` the pace's
//!   shortest wait (the interval), so a gateway's messages are spread evenly over the
//!   interval as ThingsBoard's tests spread theirs over each second;
//! - `batched`: every device is first due at the start, so the devices are due together each
//!   interval and fold into few messages, as an IoT Gateway's report period does.
//!
//! Under a global rate (`--rate`, [`super::turns`]) a weighted stream's devices come due at
//! their places in the rate's schedule instead, from the session's start: each device's next
//! turn is asked of the schedule after each of its points, and waits in the clock of the
//! weighted stream it goes to. A turn that is only the end of the random order's look-ahead
//! is asked again when it comes, never sent. Points due together (within the worker's early
//! window) fold into one message in `batched` mode as they do without a rate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::turns::{DeviceTurns, RateClock};
use super::{Due, GatewayFrames, GatewayMode};
use crate::workload::pace::{Pace, PaceRng};

/// The devices of one point stream: when each is due, its sequence number, its rotation.
#[derive(Debug)]
pub struct DeviceClocks {
    /// (due time ns since the run's start, device slot); capacity: the device count.
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Per device: the last sequence number sent (the first message is 1).
    seq: Box<[u64]>,
    /// Per device: the payload object its next point uses.
    object: Box<[u32]>,
}

impl DeviceClocks {
    /// Clocks for `devices` devices (allocates; at connection build time only).
    pub fn new(devices: u32) -> DeviceClocks {
        DeviceClocks {
            heap: BinaryHeap::with_capacity(devices as usize),
            seq: vec![0; devices as usize].into_boxed_slice(),
            object: vec![0; devices as usize].into_boxed_slice(),
        }
    }

    /// Every device due again from `start_ns`, device k at `start_ns + k * spread_ns / D`.
    /// Sequence numbers and rotations go on from where they were (a reconnect keeps them).
    pub fn start(&mut self, start_ns: u64, spread_ns: u64) {
        self.heap.clear();
        let devices = self.seq.len() as u64;
        for slot in 0..devices {
            let offset =
                (u128::from(spread_ns) * u128::from(slot) / u128::from(devices.max(1))) as u64;
            self.heap
                .push(Reverse((start_ns.saturating_add(offset), slot as u32)));
        }
    }

    /// No device due (a weighted stream's clock at a session's start: the rate's turns put
    /// them back one by one).
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Device `slot` is due at `due_ns`. The caller keeps each device in at most one clock
    /// at a time, so the heap never holds more than its reserved D entries.
    #[inline]
    pub fn push(&mut self, due_ns: u64, slot: u32) {
        self.heap.push(Reverse((due_ns, slot)));
    }

    /// When the earliest device is due (None: no device).
    #[inline]
    pub fn next_due_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Take the earliest device if it is due at or before `until_ns`: (due time, slot).
    #[inline]
    pub fn pop_due(&mut self, until_ns: u64) -> Option<(u64, u32)> {
        match self.heap.peek() {
            Some(&Reverse((due_ns, slot))) if due_ns <= until_ns => {
                self.heap.pop();
                Some((due_ns, slot))
            }
            _ => None,
        }
    }

    /// Device `slot`'s next point, due at `due_ns`.
    #[inline]
    pub fn point(&self, slot: u32, due_ns: u64, alarm: bool) -> Due {
        let index = slot as usize;
        Due {
            slot,
            object: self.object[index],
            seq: self.seq[index] + 1,
            due_ns,
            alarm,
        }
    }

    /// Move the devices due at or before `until_ns`, earliest first, at most `max`, into
    /// `due` (emptied first; its capacity is the device count, so it never grows).
    #[inline]
    pub fn take_due(&mut self, until_ns: u64, max: usize, due: &mut Vec<Due>) {
        due.clear();
        while due.len() < max {
            let Some((due_ns, slot)) = self.pop_due(until_ns) else {
                break;
            };
            due.push(self.point(slot, due_ns, false));
        }
    }

    /// `point` went out: its device counts the message (sequence number, rotation).
    #[inline]
    fn count_sent(&mut self, point: &Due, objects: u32) {
        let index = point.slot as usize;
        self.seq[index] = point.seq;
        self.object[index] = (point.object + 1) % objects.max(1);
    }

    /// After a message carried the first `sent` of `due` (taken by [`DeviceClocks::take_due`])
    /// at `sent_ns`: those devices count the message and are due again at their pace; the
    /// others go back as they were, still due.
    #[inline]
    pub fn settle(
        &mut self,
        due: &[Due],
        sent: usize,
        sent_ns: u64,
        pace: &Pace,
        objects: u32,
        rng: &mut PaceRng,
    ) {
        for (n, point) in due.iter().enumerate() {
            let next_ns = match n < sent {
                true => {
                    self.count_sent(point, objects);
                    pace.next_due_ns(point.due_ns, sent_ns, rng)
                }
                false => point.due_ns,
            };
            self.push(next_ns, point.slot);
        }
    }

    /// Devices on this clock.
    pub fn devices(&self) -> u32 {
        self.seq.len() as u32
    }
}

/// A gateway connection's frames and schedule.
#[derive(Debug)]
pub struct GatewaySession {
    pub frames: GatewayFrames,
    pub mode: GatewayMode,
    /// One clock per point stream, in the frames' stream order.
    clocks: Box<[DeviceClocks]>,
    /// Payload objects per stream (the rotation's length).
    objects: Box<[u32]>,
    /// The devices due for the message being written (capacity: the device count).
    due: Vec<Due>,
    rng: PaceRng,
    /// Devices announced on `v1/gateway/connect` in this session (in slot order).
    announced: u32,
    /// Devices that said goodbye on `v1/gateway/disconnect` (None: not stopping yet).
    farewell: Option<u32>,
    /// The largest single-point or connect message (computed once).
    largest_single: usize,
    /// Under a global rate: the devices' place in it and the weighted streams' turns.
    turns: Option<DeviceTurns>,
}

impl GatewaySession {
    /// The session state of a connection with `frames`; `objects[s]` is the number of
    /// payload objects of point stream `s`; `turns` its devices under a global rate.
    pub fn new(
        frames: GatewayFrames,
        mode: GatewayMode,
        objects: &[u32],
        rng: PaceRng,
        turns: Option<DeviceTurns>,
    ) -> Self {
        let devices = frames.device_count();
        let largest_single = frames.largest_single_len();
        GatewaySession {
            largest_single,
            turns,
            clocks: (0..frames.stream_count())
                .map(|_| DeviceClocks::new(devices))
                .collect(),
            objects: objects.into(),
            due: Vec::with_capacity(devices as usize),
            frames,
            mode,
            rng,
            announced: 0,
            farewell: None,
        }
    }

    /// The largest single-point or connect message of this gateway: a write buffer with
    /// this much room takes the next message, whichever it is.
    pub fn largest_single_len(&self) -> usize {
        self.largest_single
    }

    /// A new session (after a CONNACK): nothing announced, every device due from `start_ns`
    /// (spread over each stream's shortest wait in `per-point` mode); under a global rate
    /// (`rate`), the weighted streams' devices at their first turns from `start_ns`.
    pub fn start(
        &mut self,
        start_ns: u64,
        paces: impl Iterator<Item = Pace>,
        rate: Option<RateClock<'_>>,
    ) {
        self.announced = 0;
        self.farewell = None;
        for (clock, pace) in self.clocks.iter_mut().zip(paces) {
            let spread_ns = match self.mode {
                GatewayMode::PerPoint => pace.shortest_gap_ns().unwrap_or(0),
                GatewayMode::Batched => 0,
            };
            clock.start(start_ns, spread_ns);
        }
        let (Some(turns), Some(rate)) = (self.turns.as_mut(), rate) else {
            return;
        };
        turns.reset();
        for (stream, clock) in self.clocks.iter_mut().enumerate() {
            if turns.is_weighted(stream) {
                clock.clear();
            }
        }
        for slot in 0..self.frames.device_count() {
            queue_turn(turns, &mut self.clocks, rate, slot, start_ns);
        }
    }

    /// The next device to announce, while some are not yet announced.
    #[inline]
    pub fn next_announcement(&self) -> Option<u32> {
        (self.announced < self.frames.device_count()).then_some(self.announced)
    }

    /// The device [`GatewaySession::next_announcement`] named was announced.
    #[inline]
    pub fn announced_one(&mut self) {
        self.announced += 1;
    }

    /// Every device is announced: points may go out.
    #[inline]
    pub fn all_announced(&self) -> bool {
        self.announced >= self.frames.device_count()
    }

    /// The connection is stopping: the announced devices say goodbye from now on.
    pub fn begin_farewell(&mut self) {
        self.farewell.get_or_insert(0);
    }

    /// Whether the connection is saying goodbye (no more points then).
    #[inline]
    pub fn in_farewell(&self) -> bool {
        self.farewell.is_some()
    }

    /// The next device to say goodbye for, while some announced ones have not.
    #[inline]
    pub fn next_farewell(&self) -> Option<u32> {
        self.farewell.filter(|&n| n < self.announced)
    }

    /// The device [`GatewaySession::next_farewell`] named said goodbye.
    #[inline]
    pub fn farewell_one(&mut self) {
        if let Some(n) = self.farewell.as_mut() {
            *n += 1;
        }
    }

    /// Every announced device has said goodbye (or the connection is not stopping).
    pub fn farewell_done(&self) -> bool {
        self.next_farewell().is_none()
    }

    /// When stream `stream`'s earliest device is due.
    #[inline]
    pub fn next_due_ns(&self, stream: usize) -> Option<u64> {
        self.clocks.get(stream).and_then(DeviceClocks::next_due_ns)
    }

    /// Take stream `stream`'s devices due by `until_ns`: one in `per-point` mode, all of them
    /// in `batched` mode. They wait in the session for [`GatewaySession::settle`]. A weighted
    /// stream's turns come from `rate`: a turn that is only a recheck is asked again (and
    /// queued again) rather than taken, and each point taken knows whether it is an alarm.
    #[inline]
    pub fn take_due(
        &mut self,
        stream: usize,
        until_ns: u64,
        rate: Option<RateClock<'_>>,
    ) -> &[Due] {
        let max = match self.mode {
            GatewayMode::PerPoint => 1,
            GatewayMode::Batched => self
                .due
                .capacity()
                .min(self.frames.batch_points_max(stream)),
        };
        let rated = self.turns.as_mut().zip(rate);
        let Some((turns, rate)) = rated.filter(|(turns, _)| turns.is_weighted(stream)) else {
            self.clocks[stream].take_due(until_ns, max, &mut self.due);
            return &self.due;
        };
        self.due.clear();
        while self.due.len() < max {
            let Some((due_ns, slot)) = self.clocks[stream].pop_due(until_ns) else {
                break;
            };
            if turns.is_recheck(slot) {
                // The end of a look-ahead: its real turn is asked from there, into the same
                // stream (the turn was not taken). Each recheck moves on by the look-ahead,
                // so this loop ends.
                let turn = rate.next_turn(turns.device(slot), due_ns);
                turns.set_recheck(slot, turn.recheck);
                if turn.at_ns != u64::MAX {
                    self.clocks[stream].push(turn.at_ns, slot);
                }
                continue;
            }
            let alarm = rate.is_alarm(turns.device(slot), due_ns);
            let point = self.clocks[stream].point(slot, due_ns, alarm);
            self.due.push(point);
        }
        &self.due
    }

    /// The devices taken by the last [`GatewaySession::take_due`].
    #[inline]
    pub fn due(&self) -> &[Due] {
        &self.due
    }

    /// The first `sent` taken devices of stream `stream` went out at `sent_ns`; the rest are
    /// put back, still due. A weighted stream's devices that went out are due at their next
    /// turns in `rate`, in the stream each turn goes to.
    #[inline]
    pub fn settle(
        &mut self,
        stream: usize,
        sent: usize,
        sent_ns: u64,
        pace: &Pace,
        rate: Option<RateClock<'_>>,
    ) {
        let objects = self.objects.get(stream).copied().unwrap_or(1);
        let rated = self.turns.as_mut().zip(rate);
        let Some((turns, rate)) = rated.filter(|(turns, _)| turns.is_weighted(stream)) else {
            self.clocks[stream].settle(&self.due, sent, sent_ns, pace, objects, &mut self.rng);
            self.due.clear();
            return;
        };
        for (n, point) in self.due.iter().enumerate() {
            if n < sent {
                self.clocks[stream].count_sent(point, objects);
                let after_ns = point.due_ns.saturating_add(1);
                queue_turn(turns, &mut self.clocks, rate, point.slot, after_ns);
            } else {
                self.clocks[stream].push(point.due_ns, point.slot);
            }
        }
        self.due.clear();
    }
}

/// Queue device `slot`'s next turn at or after `from_ns` in the clock of the weighted stream
/// it goes to (none when it has no turn left in the run).
fn queue_turn(
    turns: &mut DeviceTurns,
    clocks: &mut [DeviceClocks],
    rate: RateClock<'_>,
    slot: u32,
    from_ns: u64,
) {
    let turn = rate.next_turn(turns.device(slot), from_ns);
    turns.set_recheck(slot, turn.recheck);
    if turn.at_ns == u64::MAX {
        return;
    }
    if let Some(clock) = turns.pick(slot).and_then(|stream| clocks.get_mut(stream)) {
        clock.push(turn.at_ns, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::rate::{RateOrder, RatePlan, RateSchedule};

    const SECOND_NS: u64 = 1_000_000_000;

    fn interval(ns: u64) -> Pace {
        Pace::Interval { interval_ns: ns }
    }

    #[test]
    fn devices_start_spread_over_the_interval_and_keep_their_own_pace() {
        let mut clocks = DeviceClocks::new(4);
        clocks.start(100, SECOND_NS);
        let mut due = Vec::with_capacity(4);
        let mut rng = PaceRng::for_client(0, 0);
        let mut order = Vec::new();
        for _ in 0..8 {
            let at = clocks.next_due_ns().unwrap();
            clocks.take_due(at, 1, &mut due);
            order.push((due[0].slot, due[0].due_ns, due[0].seq));
            clocks.settle(&due, 1, at, &interval(SECOND_NS), 1, &mut rng);
        }
        let quarter = SECOND_NS / 4;
        assert_eq!(
            order,
            [
                (0, 100, 1),
                (1, 100 + quarter, 1),
                (2, 100 + 2 * quarter, 1),
                (3, 100 + 3 * quarter, 1),
                (0, 100 + SECOND_NS, 2),
                (1, 100 + SECOND_NS + quarter, 2),
                (2, 100 + SECOND_NS + 2 * quarter, 2),
                (3, 100 + SECOND_NS + 3 * quarter, 2),
            ]
        );
    }

    #[test]
    fn devices_due_together_are_taken_together_and_the_unsent_stay_due() {
        let mut clocks = DeviceClocks::new(5);
        clocks.start(0, 0);
        let mut due = Vec::with_capacity(5);
        let mut rng = PaceRng::for_client(0, 0);
        clocks.take_due(0, 5, &mut due);
        assert_eq!(
            due.iter().map(|d| d.slot).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        // A message carried three of them: the other two are still due at 0.
        clocks.settle(&due, 3, 10, &interval(SECOND_NS), 1, &mut rng);
        clocks.take_due(10, 5, &mut due);
        assert_eq!(
            due.iter().map(|d| (d.slot, d.seq)).collect::<Vec<_>>(),
            [(3, 1), (4, 1)]
        );
        clocks.settle(&due, 2, 20, &interval(SECOND_NS), 1, &mut rng);
        assert_eq!(clocks.next_due_ns(), Some(SECOND_NS));
        clocks.take_due(SECOND_NS, 5, &mut due);
        assert_eq!(due.len(), 5, "all due again together, one interval on");
        assert!(due.iter().all(|d| d.seq == 2));
        assert_eq!(due.capacity(), 5, "taking never grows the list");
    }

    #[test]
    fn each_device_rotates_through_the_payload_objects() {
        let mut clocks = DeviceClocks::new(2);
        clocks.start(0, 0);
        let mut due = Vec::with_capacity(2);
        let mut rng = PaceRng::for_client(0, 0);
        let mut objects = Vec::new();
        for round in 0..4 {
            clocks.take_due(u64::MAX, 2, &mut due);
            objects.push(due.iter().map(|d| d.object).collect::<Vec<_>>());
            clocks.settle(&due, 2, round, &interval(1), 3, &mut rng);
        }
        assert_eq!(objects, [[0, 0], [1, 1], [2, 2], [0, 0]]);
    }

    fn session(devices: u32, mode: GatewayMode) -> GatewaySession {
        use super::super::{DeviceLayout, GatewayPlan, NameTemplate, PointKind};
        use crate::payload::{ClientVars, Payload};
        let plan = crate::config::tests::plan_with_payload(Payload::builtin(), 0, "t");
        let gateway = GatewayPlan {
            devices_per_gateway: devices,
            mode,
            device_name: NameTemplate::parse("d{i}").unwrap(),
            device_start: 0,
            layout: DeviceLayout::Blocks,
        };
        let payload = Payload::parse("p", r#"{"a":1}"#).unwrap();
        let vars = ClientVars {
            index: 0,
            token: "",
            client_id: "c",
        };
        let streams = [(PointKind::Telemetry, &payload, 0)];
        let frames = GatewayFrames::build(&plan, &gateway, &vars, &streams);
        GatewaySession::new(frames, mode, &[1], PaceRng::for_client(0, 0), None)
    }

    #[test]
    fn every_device_is_announced_once_before_points_and_says_goodbye_once() {
        let mut s = session(3, GatewayMode::PerPoint);
        s.start(0, [interval(SECOND_NS)].into_iter(), None);
        let mut announced = Vec::new();
        while let Some(slot) = s.next_announcement() {
            announced.push(slot);
            s.announced_one();
        }
        assert_eq!(announced, [0, 1, 2]);
        assert!(s.all_announced());
        assert!(s.farewell_done() && !s.in_farewell());
        s.begin_farewell();
        s.begin_farewell();
        let mut gone = Vec::new();
        while let Some(slot) = s.next_farewell() {
            gone.push(slot);
            s.farewell_one();
        }
        assert_eq!(gone, [0, 1, 2]);
        assert!(s.farewell_done());
    }

    #[test]
    fn a_connection_stopped_while_announcing_says_goodbye_only_for_announced_devices() {
        let mut s = session(5, GatewayMode::PerPoint);
        s.start(0, [interval(SECOND_NS)].into_iter(), None);
        s.announced_one();
        s.announced_one();
        s.begin_farewell();
        let mut gone = 0;
        while s.next_farewell().is_some() {
            s.farewell_one();
            gone += 1;
        }
        assert_eq!(gone, 2);
        // A new session announces everything again.
        s.start(10, [interval(SECOND_NS)].into_iter(), None);
        assert_eq!(s.next_announcement(), Some(0));
        assert!(!s.in_farewell());
    }

    #[test]
    fn per_point_takes_one_device_and_batched_takes_all_that_are_due() {
        let mut s = session(4, GatewayMode::PerPoint);
        s.start(0, [interval(SECOND_NS)].into_iter(), None);
        assert_eq!(s.take_due(0, SECOND_NS, None).len(), 1);
        s.settle(0, 1, 0, &interval(SECOND_NS), None);
        assert_eq!(s.next_due_ns(0), Some(SECOND_NS / 4));
        let mut s = session(4, GatewayMode::Batched);
        s.start(0, [interval(SECOND_NS)].into_iter(), None);
        assert_eq!(s.take_due(0, 0, None).len(), 4);
        s.settle(0, 4, 0, &interval(SECOND_NS), None);
        assert_eq!(s.next_due_ns(0), Some(SECOND_NS));
        assert!(s.due().is_empty());
    }

    /// Gateway `gateway` of `gateways` (interleaved, as a fixed run deals them) with
    /// `devices` devices and one point stream per weight, under a rate of `plan`.
    fn rated_session(
        gateway: u64,
        gateways: u64,
        devices: u32,
        mode: GatewayMode,
        weights: &[u32],
    ) -> GatewaySession {
        use super::super::{DeviceLayout, GatewayPlan, NameTemplate, PointKind};
        use crate::payload::{ClientVars, Payload};
        let plan = crate::config::tests::plan_with_payload(Payload::builtin(), 0, "t");
        let gateway_plan = GatewayPlan {
            devices_per_gateway: devices,
            mode,
            device_name: NameTemplate::parse("d{i}").unwrap(),
            device_start: 0,
            layout: DeviceLayout::Interleaved { gateways },
        };
        let payload = Payload::parse("p", r#"{"a":1}"#).unwrap();
        let vars = ClientVars {
            index: gateway,
            token: "",
            client_id: "c",
        };
        let streams: Vec<(PointKind, &Payload, u8)> = weights
            .iter()
            .map(|_| (PointKind::Telemetry, &payload, 0))
            .collect();
        let frames = GatewayFrames::build(&plan, &gateway_plan, &vars, &streams);
        let (first, step) = gateway_plan.device_numbering(gateway);
        let turns = DeviceTurns::new(first, step, devices, weights);
        let objects = vec![1; weights.len()];
        let rng = PaceRng::for_client(0, gateway);
        GatewaySession::new(frames, mode, &objects, rng, Some(turns))
    }

    fn rate(n: u64, d: u64, order: RateOrder, alarms_per_s: u64) -> RateSchedule {
        RateSchedule::new(&RatePlan {
            messages_per_s: n,
            devices: d,
            first_device_index: 0,
            order,
            seed: 3,
            alarms_per_s,
            alarm_storm: None,
        })
        .unwrap()
    }

    fn weighted(weight: u32) -> Pace {
        Pace::Weight { weight }
    }

    /// Send every point of every stream due by `until_ns`, one per message, earliest stream
    /// first: (stream, slot, due time, alarm) in order.
    fn drain(
        s: &mut GatewaySession,
        rate: RateClock<'_>,
        paces: &[Pace],
        until_ns: u64,
    ) -> Vec<(usize, u32, u64, bool)> {
        let mut sent = Vec::new();
        loop {
            let next = (0..paces.len())
                .filter_map(|stream| Some((s.next_due_ns(stream)?, stream)))
                .min();
            let Some((due_ns, stream)) = next.filter(|&(due_ns, _)| due_ns <= until_ns) else {
                return sent;
            };
            let taken: Vec<Due> = s.take_due(stream, due_ns, Some(rate)).to_vec();
            for point in &taken {
                sent.push((stream, point.slot, point.due_ns, point.alarm));
            }
            s.settle(stream, taken.len(), due_ns, &paces[stream], Some(rate));
        }
    }

    #[test]
    fn under_a_sequential_rate_a_gateways_devices_are_due_at_their_places_in_it() {
        // 12 devices on 4 gateways at 6 points a second: gateway 1 carries devices 1, 5, 9,
        // which are due at positions 1, 5, 9, 13, ... of the run (position p at p/6 s).
        let schedule = rate(6, 12, RateOrder::Sequential, 2);
        let clock = RateClock {
            schedule: &schedule,
            origin_ns: 0,
        };
        let mut s = rated_session(1, 4, 3, GatewayMode::PerPoint, &[1]);
        s.start(0, [weighted(1)].into_iter(), Some(clock));
        let sent = drain(&mut s, clock, &[weighted(1)], 4 * SECOND_NS - 1);
        let expected: Vec<(usize, u32, u64, bool)> = (0..24u64)
            .filter(|p| p % 4 == 1)
            .map(|p| {
                let (second, k) = (p / 6, p % 6);
                let due_ns = second * SECOND_NS + k * SECOND_NS / 6;
                // The first two messages of each second are alarms: positions 6s and 6s+1.
                (0, ((p / 4) % 3) as u32, due_ns, k < 2)
            })
            .collect();
        assert_eq!(sent, expected);
        // A reconnect 2.5 s in takes the schedule up at the next place after it.
        s.start(2_500_000_000, [weighted(1)].into_iter(), Some(clock));
        assert_eq!(s.next_due_ns(0), Some(2 * SECOND_NS + 5 * SECOND_NS / 6));
    }

    #[test]
    fn under_a_rate_weighted_point_streams_share_each_devices_turns() {
        // One device, 10 turns a second, two streams weighted 3:2.
        let schedule = rate(10, 1, RateOrder::Sequential, 0);
        let clock = RateClock {
            schedule: &schedule,
            origin_ns: 0,
        };
        let paces = [weighted(3), weighted(2)];
        let mut s = rated_session(0, 1, 1, GatewayMode::PerPoint, &[3, 2]);
        s.start(0, paces.into_iter(), Some(clock));
        let sent = drain(&mut s, clock, &paces, 2 * SECOND_NS - 1);
        assert_eq!(sent.len(), 20, "every turn taken once");
        let times: Vec<u64> = sent.iter().map(|p| p.2).collect();
        assert_eq!(
            times,
            (0..20).map(|k| k * SECOND_NS / 10).collect::<Vec<_>>()
        );
        let first = sent.iter().filter(|p| p.0 == 0).count();
        assert_eq!((first, sent.len() - first), (12, 8));
    }

    #[test]
    fn in_random_order_a_rarely_due_device_is_asked_again_and_never_sent_early() {
        // 2 points a second over 1,000 devices: most of a gateway's devices have no turn in
        // the 64 s look-ahead, so their clocks hold rechecks that must not go out as points.
        let schedule = rate(2, 1_000, RateOrder::Random, 0);
        let clock = RateClock {
            schedule: &schedule,
            origin_ns: 0,
        };
        let mut s = rated_session(0, 10, 100, GatewayMode::Batched, &[1]);
        s.start(0, [weighted(1)].into_iter(), Some(clock));
        let horizon_ns = 200 * SECOND_NS - 1;
        let sent = drain(&mut s, clock, &[weighted(1)], horizon_ns);
        // Exactly the schedule's places of this gateway's devices (0, 10, ..., 990).
        let mut expected = Vec::new();
        for second in 0..200 {
            for k in 0..2 {
                let device = schedule.device_at(second, k).unwrap();
                if device.is_multiple_of(10) {
                    let due_ns = second * SECOND_NS + k * SECOND_NS / 2;
                    expected.push((0, (device / 10) as u32, due_ns, false));
                }
            }
        }
        assert!(!expected.is_empty());
        assert_eq!(sent, expected);
    }
}
