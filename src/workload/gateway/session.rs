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

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

    /// When the earliest device is due (None: no device).
    #[inline]
    pub fn next_due_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Move the devices due at or before `until_ns`, earliest first, at most `max`, into
    /// `due` (emptied first; its capacity is the device count, so it never grows).
    #[inline]
    pub fn take_due(&mut self, until_ns: u64, max: usize, due: &mut Vec<Due>) {
        due.clear();
        while due.len() < max {
            match self.heap.peek() {
                Some(&Reverse((due_ns, slot))) if due_ns <= until_ns => {
                    self.heap.pop();
                    let index = slot as usize;
                    due.push(Due {
                        slot,
                        object: self.object[index],
                        seq: self.seq[index] + 1,
                        due_ns,
                    });
                }
                _ => break,
            }
        }
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
            let index = point.slot as usize;
            let next_ns = match n < sent {
                true => {
                    self.seq[index] = point.seq;
                    self.object[index] = (point.object + 1) % objects.max(1);
                    pace.next_due_ns(point.due_ns, sent_ns, rng)
                }
                false => point.due_ns,
            };
            self.heap.push(Reverse((next_ns, point.slot)));
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
}

impl GatewaySession {
    /// The session state of a connection with `frames`; `objects[s]` is the number of
    /// payload objects of point stream `s`.
    pub fn new(frames: GatewayFrames, mode: GatewayMode, objects: &[u32], rng: PaceRng) -> Self {
        let devices = frames.device_count();
        let largest_single = frames.largest_single_len();
        GatewaySession {
            largest_single,
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
    /// (spread over each stream's shortest wait in `per-point` mode).
    pub fn start(&mut self, start_ns: u64, paces: impl Iterator<Item = Pace>) {
        self.announced = 0;
        self.farewell = None;
        for (clock, pace) in self.clocks.iter_mut().zip(paces) {
            let spread_ns = match self.mode {
                GatewayMode::PerPoint => pace.shortest_gap_ns().unwrap_or(0),
                GatewayMode::Batched => 0,
            };
            clock.start(start_ns, spread_ns);
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
    /// in `batched` mode. They wait in the session for [`GatewaySession::settle`].
    #[inline]
    pub fn take_due(&mut self, stream: usize, until_ns: u64) -> &[Due] {
        let max = match self.mode {
            GatewayMode::PerPoint => 1,
            GatewayMode::Batched => self.due.capacity(),
        };
        self.clocks[stream].take_due(until_ns, max, &mut self.due);
        &self.due
    }

    /// The devices taken by the last [`GatewaySession::take_due`].
    #[inline]
    pub fn due(&self) -> &[Due] {
        &self.due
    }

    /// The first `sent` taken devices of stream `stream` went out at `sent_ns`; the rest are
    /// put back, still due.
    #[inline]
    pub fn settle(&mut self, stream: usize, sent: usize, sent_ns: u64, pace: &Pace) {
        let objects = self.objects.get(stream).copied().unwrap_or(1);
        self.clocks[stream].settle(&self.due, sent, sent_ns, pace, objects, &mut self.rng);
        self.due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        GatewaySession::new(frames, mode, &[1], PaceRng::for_client(0, 0))
    }

    #[test]
    fn every_device_is_announced_once_before_points_and_says_goodbye_once() {
        let mut s = session(3, GatewayMode::PerPoint);
        s.start(0, [interval(SECOND_NS)].into_iter());
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
        s.start(0, [interval(SECOND_NS)].into_iter());
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
        s.start(10, [interval(SECOND_NS)].into_iter());
        assert_eq!(s.next_announcement(), Some(0));
        assert!(!s.in_farewell());
    }

    #[test]
    fn per_point_takes_one_device_and_batched_takes_all_that_are_due() {
        let mut s = session(4, GatewayMode::PerPoint);
        s.start(0, [interval(SECOND_NS)].into_iter());
        assert_eq!(s.take_due(0, SECOND_NS).len(), 1);
        s.settle(0, 1, 0, &interval(SECOND_NS));
        assert_eq!(s.next_due_ns(0), Some(SECOND_NS / 4));
        let mut s = session(4, GatewayMode::Batched);
        s.start(0, [interval(SECOND_NS)].into_iter());
        assert_eq!(s.take_due(0, 0).len(), 4);
        s.settle(0, 4, 0, &interval(SECOND_NS));
        assert_eq!(s.next_due_ns(0), Some(SECOND_NS));
        assert!(s.due().is_empty());
    }
}
