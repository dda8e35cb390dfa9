//! The per-connection in-flight window: unacknowledged QoS 1/2 publishes, indexed by packet id.
//!
//! A fixed array of `window` slots, allocated once. Packet ids encode their slot
//! (`pkid = generation * window + slot + 1`, every generation that keeps the id within
//! 1..=65535), so an acknowledgement finds its entry by arithmetic, not a search or a map (as
//! rumqttc's `state.rs`). Between them the slots' generations cover the whole id space.
//!
//! A packet id belongs to its publish until the broker has finished with it [MQTT-2.3.1-2]:
//! PUBACK at QoS 1, PUBCOMP at QoS 2. A publish that outlives `--timeout` is counted as timed
//! out once (`expire_sent_before`) and leaves the window: its slot takes new publishes at once,
//! under ids that skip the ones still held. Its own id stays *held* (a bit in `held`) until
//! its late ack arrives or the connection ends; a late PUBREC gets its PUBREL at once
//! [MQTT-4.3.3-1] and the id stays held until the PUBCOMP.
//!
//! An ack for an id that no publish holds (a duplicate, or an id never sent) is `Ack::Stray`:
//! the framing is intact, so the worker counts it by name and keeps the connection. A PUBREC
//! for such an id is answered with PUBREL all the same (MQTT 5 gives that PUBREL reason 0x92,
//! Packet Identifier not found; 3.1.1 section 4.3.3 has the sender answer every PUBREC), so the
//! broker can end a flow it holds; its id is held until the PUBCOMP. An ack that contradicts
//! the stage of a publish in flight (PUBCOMP before PUBREC) is `Ack::Unexpected`, a protocol
//! error of the broker.
//!
//! Bounds: at most `window` publishes await an ack (when all slots are taken the next message
//! waits; it is never dropped). Held ids live in a list of [`HELD_LIST_MAX`] ids (64 bytes),
//! allocated at the connection's first timed-out publish or stray PUBREC; a connection that
//! ever holds more at once moves them to a bitset of the whole id space (65,536 bits, 8 KiB).
//! Both are dropped when the connection ends; a connection whose publishes never time out has
//! neither. A broker 2 s late at 5 messages a second leaves about 10 ids held per connection,
//! in the list; one that stopped acknowledging fills the bitset.
//! A slot whose every id is held takes no publish until one of them is freed (with the
//! default window of 16 that is after 4,095 held ids of that slot). When every id of the
//! space is held the broker has stopped acknowledging on this connection:
//! `all_ids_held` says so and the worker closes it (a new connection starts a clean
//! session, which frees every id). A new allocation per message never happens: the held set
//! lives until the connection ends, however often it empties.

/// Packet ids in the space (1..=65535).
const ID_SPACE: u32 = u16::MAX as u32;
/// Words of the held-id bitset: one bit per id 0..=65535.
const HELD_WORDS: usize = 65_536 / 64;
/// Held ids kept in a plain list before the bitset is needed.
pub const HELD_LIST_MAX: usize = 32;

/// What an in-flight slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Free,
    /// QoS 1: PUBACK. QoS 2: PUBREC.
    AwaitAck,
    /// QoS 2 after PUBREC: PUBCOMP (a PUBREL was sent).
    AwaitComp,
    /// No publish: every id of this slot is held by a timed-out publish. Freed (and back
    /// among the free slots) when one of them is.
    Exhausted,
}

/// What an acknowledgement did to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The publish is complete: its scheduled time (ns since run start) and its stream.
    Completed(u64, u8),
    /// QoS 2: PUBREC moved the publish to `AwaitComp` (or repeated it, or came late for a
    /// timed-out publish): send PUBREL.
    Release,
    /// The ack of a publish already counted as timed out: its id is free again, nothing is
    /// recorded.
    Late,
    /// No publish holds this id (a duplicate ack, or an id never sent). For a PUBREC a PUBREL
    /// is owed all the same and the id is now held until its PUBCOMP.
    Stray,
    /// A publish holds this id but waits for another ack (PUBCOMP before PUBREC): a protocol
    /// error of the broker.
    Unexpected,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pkid: u16,
    stage: Stage,
    /// When the publish was scheduled (ns since run start): latency starts here.
    scheduled_ns: u64,
    /// When it was handed to the socket buffer (ns since run start): timeouts start here.
    sent_ns: u64,
    /// The stream it belongs to (its stats row).
    stream: u8,
    /// Device points it carries (a gateway's message; 0 otherwise). Fits the slot's padding.
    points: u16,
}

pub struct Inflight {
    slots: Box<[Slot]>,
    /// Free slot indexes (a stack, capacity `window`).
    free: Vec<u16>,
    /// Slots in `Stage::Exhausted`.
    exhausted: usize,
    /// The next generation each slot tries.
    next_generation: Box<[u16]>,
    /// Ids held with no slot (timed-out publishes and answered stray PUBRECs, until the
    /// broker's PUBACK/PUBCOMP): a list of at most `HELD_LIST_MAX` (capacity 0 until the first
    /// one), or, once more were held at once, the bitset (and the list is unused).
    held_list: Vec<u16>,
    held_bits: Option<Box<[u64; HELD_WORDS]>>,
    held_count: u32,
    /// The device points of the publish the last `Ack::Completed` was for.
    completed_points: u16,
}

impl Inflight {
    /// A window of `window` slots (1..=65535).
    pub fn new(window: u16) -> Inflight {
        let window = window.max(1);
        let slots = vec![
            Slot {
                pkid: 0,
                stage: Stage::Free,
                scheduled_ns: 0,
                sent_ns: 0,
                stream: 0,
                points: 0,
            };
            window as usize
        ];
        Inflight {
            slots: slots.into_boxed_slice(),
            free: (0..window).rev().collect(),
            exhausted: 0,
            next_generation: vec![0; window as usize].into_boxed_slice(),
            held_list: Vec::new(),
            held_bits: None,
            held_count: 0,
            completed_points: 0,
        }
    }

    /// Publishes awaiting an ack (not yet counted as timed out): the window's use.
    pub fn outstanding(&self) -> usize {
        self.slots.len() - self.free.len() - self.exhausted
    }

    /// The window: most publishes awaiting an ack at once.
    pub fn window(&self) -> usize {
        self.slots.len()
    }

    /// No publish awaits an ack and no id is held: the broker has finished with every id.
    pub fn is_empty(&self) -> bool {
        self.outstanding() == 0 && self.held_count == 0
    }

    /// No slot can take a publish now.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Ids held by publishes that timed out (and answered stray PUBRECs).
    pub fn held(&self) -> usize {
        self.held_count as usize
    }

    /// Every id of 1..=65535 is held: the broker has stopped acknowledging on this connection.
    pub fn all_ids_held(&self) -> bool {
        self.held_count >= ID_SPACE
    }

    /// When the oldest publish still waiting to be counted was handed to the socket (None when
    /// there is none). A scan of the window: called once per check, not per message.
    pub fn oldest_outstanding_sent_ns(&self) -> Option<u64> {
        if self.outstanding() == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| matches!(s.stage, Stage::AwaitAck | Stage::AwaitComp))
            .map(|s| s.sent_ns)
            .min()
    }

    /// Take a slot for a new publish of `stream`; returns its packet id, or None when no slot
    /// is free.
    pub fn insert(&mut self, scheduled_ns: u64, sent_ns: u64, stream: u8) -> Option<u16> {
        while let Some(slot) = self.free.pop() {
            let slot = slot as usize;
            match self.next_id(slot) {
                Some(pkid) => {
                    self.slots[slot] = Slot {
                        pkid,
                        stage: Stage::AwaitAck,
                        scheduled_ns,
                        sent_ns,
                        stream,
                        points: 0,
                    };
                    return Some(pkid);
                }
                None => {
                    self.slots[slot].stage = Stage::Exhausted;
                    self.exhausted += 1;
                }
            }
        }
        None
    }

    /// Generations of `slot`: those whose id stays within the space.
    fn generations(&self, slot: usize) -> u32 {
        (ID_SPACE - 1 - slot as u32) / self.slots.len() as u32 + 1
    }

    /// The slot's next id that is not held, advancing its generation; None when all are.
    /// Without held ids this is the first try.
    fn next_id(&mut self, slot: usize) -> Option<u16> {
        let window = self.slots.len() as u32;
        let generations = self.generations(slot);
        let mut generation = u32::from(self.next_generation[slot]);
        for _ in 0..generations {
            let pkid = (generation * window + slot as u32 + 1) as u16;
            generation = (generation + 1) % generations;
            if !self.is_held(pkid) {
                self.next_generation[slot] = generation as u16;
                return Some(pkid);
            }
        }
        None
    }

    fn is_held(&self, pkid: u16) -> bool {
        match &self.held_bits {
            Some(bits) => bits[pkid as usize / 64] & (1 << (pkid % 64)) != 0,
            None => self.held_list.contains(&pkid),
        }
    }

    /// Hold an id with no slot. Allocates the list at the connection's first held id, and the
    /// bitset the first time more than `HELD_LIST_MAX` are held at once; never otherwise.
    fn hold(&mut self, pkid: u16) {
        if self.is_held(pkid) {
            return;
        }
        self.held_count += 1;
        if self.held_bits.is_none() {
            if self.held_list.capacity() == 0 {
                self.held_list = Vec::with_capacity(HELD_LIST_MAX);
            }
            if self.held_list.len() < HELD_LIST_MAX {
                self.held_list.push(pkid);
                return;
            }
            let mut bits = Box::new([0u64; HELD_WORDS]);
            for &id in &self.held_list {
                bits[id as usize / 64] |= 1 << (id % 64);
            }
            self.held_list = Vec::new();
            self.held_bits = Some(bits);
        }
        if let Some(bits) = self.held_bits.as_mut() {
            bits[pkid as usize / 64] |= 1 << (pkid % 64);
        }
    }

    /// Free a held id; false when it was not held. Its slot, if it had run out of ids, takes
    /// publishes again.
    fn release_held(&mut self, pkid: u16) -> bool {
        match self.held_bits.as_mut() {
            Some(bits) => {
                let (word, bit) = (pkid as usize / 64, 1u64 << (pkid % 64));
                if bits[word] & bit == 0 {
                    return false;
                }
                bits[word] &= !bit;
            }
            None => match self.held_list.iter().position(|&id| id == pkid) {
                Some(at) => {
                    self.held_list.swap_remove(at);
                }
                None => return false,
            },
        }
        self.held_count -= 1;
        let slot = (pkid as usize - 1) % self.slots.len();
        if self.slots[slot].stage == Stage::Exhausted {
            self.slots[slot].stage = Stage::Free;
            self.exhausted -= 1;
            self.free.push(slot as u16);
        }
        true
    }

    fn slot_of(&self, pkid: u16) -> Option<usize> {
        if pkid == 0 {
            return None;
        }
        let slot = (pkid as usize - 1) % self.slots.len();
        let s = &self.slots[slot];
        let in_flight = matches!(s.stage, Stage::AwaitAck | Stage::AwaitComp);
        (in_flight && s.pkid == pkid).then_some(slot)
    }

    /// Record that the publish in flight with this id carries `points` device points (a
    /// gateway's message); read back with [`Inflight::completed_points`] when it completes.
    pub fn set_points(&mut self, pkid: u16, points: u16) {
        if let Some(slot) = self.slot_of(pkid) {
            self.slots[slot].points = points;
        }
    }

    /// The device points of the publish the last `Ack::Completed` completed.
    pub fn completed_points(&self) -> u16 {
        self.completed_points
    }

    /// Hold `pkid` for a packet that is not a publish (a device's SUBSCRIBE for its answer
    /// topics), so no publish takes it until [`Inflight::release_id`]. A held id counts in
    /// [`Inflight::held`] like a timed-out publish's.
    pub fn hold_id(&mut self, pkid: u16) {
        if pkid != 0 && self.slot_of(pkid).is_none() {
            self.hold(pkid);
        }
    }

    /// Free an id held by [`Inflight::hold_id`]; false when it was not held.
    pub fn release_id(&mut self, pkid: u16) -> bool {
        self.release_held(pkid)
    }

    /// The stream of the publish in flight with this id (None when no publish awaits an ack
    /// for it).
    pub fn stream_of(&self, pkid: u16) -> Option<u8> {
        self.slot_of(pkid).map(|s| self.slots[s].stream)
    }

    /// The stage the publish with this id is in (`Free` when no publish awaits an ack for it).
    pub fn stage(&self, pkid: u16) -> Stage {
        self.slot_of(pkid)
            .map_or(Stage::Free, |s| self.slots[s].stage)
    }

    /// Whether a publish in flight or a held id has this packet id.
    pub fn holds(&self, pkid: u16) -> bool {
        pkid != 0 && (self.slot_of(pkid).is_some() || self.is_held(pkid))
    }

    /// QoS 1 PUBACK: completes a publish waiting for it.
    pub fn on_puback(&mut self, pkid: u16) -> Ack {
        self.finish(pkid, Stage::AwaitAck)
    }

    /// QoS 2 PUBREC: the publish now waits for PUBCOMP and a PUBREL is owed. A repeated
    /// PUBREC is answered again [MQTT-4.3.3-1]; a timed-out publish still gets its PUBREL. A
    /// PUBREC for an id nobody holds is `Stray`: a PUBREL is owed too, and the id is held
    /// until the broker's PUBCOMP.
    pub fn on_pubrec(&mut self, pkid: u16) -> Ack {
        if let Some(s) = self.slot_of(pkid) {
            self.slots[s].stage = Stage::AwaitComp;
            return Ack::Release;
        }
        if pkid == 0 {
            return Ack::Stray;
        }
        if self.is_held(pkid) {
            return Ack::Release;
        }
        self.hold(pkid);
        Ack::Stray
    }

    /// QoS 2 PUBCOMP: completes a publish whose PUBREC came first. A PUBCOMP for a publish
    /// still waiting for its PUBREC is `Unexpected`.
    pub fn on_pubcomp(&mut self, pkid: u16) -> Ack {
        self.finish(pkid, Stage::AwaitComp)
    }

    fn finish(&mut self, pkid: u16, awaited: Stage) -> Ack {
        let Some(slot) = self.slot_of(pkid) else {
            return if self.release_held(pkid) {
                Ack::Late
            } else {
                Ack::Stray
            };
        };
        let s = self.slots[slot];
        if s.stage != awaited {
            return Ack::Unexpected;
        }
        self.slots[slot].stage = Stage::Free;
        self.free.push(slot as u16);
        self.completed_points = s.points;
        Ack::Completed(s.scheduled_ns, s.stream)
    }

    /// Count every publish handed to the socket before `deadline_sent_ns` as timed out: it
    /// leaves the window and its id is held; `expired(stream)` is called for each. Returns
    /// how many expired now.
    pub fn expire_sent_before(
        &mut self,
        deadline_sent_ns: u64,
        mut expired_of: impl FnMut(u8),
    ) -> u32 {
        let mut expired = 0;
        for slot in 0..self.slots.len() {
            let s = self.slots[slot];
            if matches!(s.stage, Stage::AwaitAck | Stage::AwaitComp) && s.sent_ns < deadline_sent_ns
            {
                self.hold(s.pkid);
                self.slots[slot].stage = Stage::Free;
                self.free.push(slot as u16);
                expired += 1;
                expired_of(s.stream);
            }
        }
        expired
    }

    /// Expire every outstanding publish (the stop timeout ran out), calling `expired(stream)`
    /// for each; returns how many.
    pub fn expire_all(&mut self, expired_of: impl FnMut(u8)) -> u32 {
        self.expire_sent_before(u64::MAX, expired_of)
    }

    /// Free every slot and held id (the connection closed, so its session's ids are gone),
    /// calling `lost(stream)` for each publish that was outstanding and not yet counted as
    /// timed out; returns how many there were.
    pub fn clear(&mut self, mut lost: impl FnMut(u8)) -> u32 {
        let outstanding = self.outstanding() as u32;
        for s in self.slots.iter_mut() {
            if matches!(s.stage, Stage::AwaitAck | Stage::AwaitComp) {
                lost(s.stream);
            }
            s.stage = Stage::Free;
        }
        self.free.clear();
        self.free.extend((0..self.slots.len() as u16).rev());
        self.exhausted = 0;
        self.held_list = Vec::new();
        self.held_bits = None;
        self.held_count = 0;
        outstanding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_complete_the_publish_with_their_packet_id() {
        let mut w = Inflight::new(4);
        let a = w.insert(10, 11, 0).unwrap();
        let b = w.insert(20, 21, 0).unwrap();
        assert_ne!(a, b);
        assert_eq!(w.on_puback(b), Ack::Completed(20, 0));
        assert_eq!(w.on_puback(a), Ack::Completed(10, 0));
        assert!(w.is_empty());
    }

    #[test]
    fn acks_expiries_and_losses_name_the_stream_of_their_publish() {
        let mut w = Inflight::new(4);
        let a = w.insert(10, 10, 2).unwrap();
        let b = w.insert(20, 20, 5).unwrap();
        let c = w.insert(30, 30, 1).unwrap();
        assert_eq!((w.stream_of(a), w.stream_of(b)), (Some(2), Some(5)));
        assert_eq!(w.on_puback(b), Ack::Completed(20, 5));
        assert_eq!(w.stream_of(b), None);
        let mut expired = Vec::new();
        assert_eq!(w.expire_sent_before(25, |s| expired.push(s)), 1);
        assert_eq!(expired, [2]);
        let mut lost = Vec::new();
        assert_eq!(w.clear(|s| lost.push(s)), 1);
        assert_eq!(lost, [1], "the expired publish is not lost twice");
        assert_eq!(w.stream_of(c), None);
    }

    #[test]
    fn a_full_window_refuses_the_next_publish() {
        let mut w = Inflight::new(2);
        assert!(w.insert(0, 0, 0).is_some());
        assert!(w.insert(0, 0, 0).is_some());
        assert!(w.is_full());
        assert_eq!(w.insert(0, 0, 0), None);
    }

    #[test]
    fn a_timed_out_publish_leaves_the_window_but_its_id_stays_held_until_its_late_ack() {
        let mut w = Inflight::new(1);
        let old = w.insert(5, 5, 0).unwrap();
        assert_eq!(w.expire_sent_before(6, |_| {}), 1);
        assert_eq!(w.expire_sent_before(7, |_| {}), 0, "counted once");
        assert_eq!((w.outstanding(), w.held()), (0, 1));
        assert!(!w.is_full() && !w.is_empty());
        let new = w.insert(7, 7, 0).expect("the window has room again");
        assert_ne!(
            new, old,
            "the held id is not reused while the broker holds it"
        );
        assert_eq!(w.on_puback(old), Ack::Late);
        assert_eq!(w.on_puback(new), Ack::Completed(7, 0));
        assert!(w.is_empty());
    }

    /// Regression: with a window of 16, the 16th timed-out publish used to close the
    /// connection (every id of the window held); now that takes the whole id space.
    #[test]
    fn only_a_whole_id_space_of_timed_out_publishes_stalls_the_connection() {
        let mut w = Inflight::new(16);
        let mut seen = vec![false; 65_536];
        let mut sent = 0u32;
        while let Some(pkid) = w.insert(0, 0, 0) {
            assert!(!seen[pkid as usize], "id {pkid} handed out while held");
            seen[pkid as usize] = true;
            sent += 1;
            assert!(!w.all_ids_held());
            if w.is_full() {
                w.expire_all(|_| {});
            }
        }
        w.expire_all(|_| {});
        assert_eq!(sent, 65_535);
        assert!(w.all_ids_held());
        assert_eq!(w.outstanding(), 0);
        assert_eq!(w.on_puback(40_000), Ack::Late);
        assert!(!w.all_ids_held());
        assert_eq!(
            w.insert(1, 1, 0),
            Some(40_000),
            "the one free id is used again"
        );
        assert_eq!(w.on_puback(40_000), Ack::Completed(1, 0));
    }

    /// A duplicate ack can only be mistaken for a new publish's once its slot has used all
    /// of its generations: at least 65,535 / window publishes later.
    #[test]
    fn an_id_comes_back_only_after_its_slot_used_every_generation() {
        for window in [1u16, 3, 16, 1000] {
            let mut w = Inflight::new(window);
            let mut last_use = vec![None; 65_536];
            for i in 0..200_000u64 {
                let id = w.insert(i, i, 0).unwrap();
                if let Some(before) = last_use[id as usize] {
                    assert!(
                        i - before >= 65_535 / window as u64,
                        "window {window}: id {id}"
                    );
                }
                last_use[id as usize] = Some(i);
                assert_eq!(w.on_puback(id), Ack::Completed(i, 0));
            }
        }
    }

    #[test]
    fn held_ids_move_from_the_list_to_the_bitset_and_stay_held() {
        let mut w = Inflight::new(64);
        let ids: Vec<u16> = (0..64).map(|i| w.insert(i, i, 0).unwrap()).collect();
        assert_eq!(w.expire_all(|_| {}), 64);
        assert_eq!(w.held(), 64);
        assert!(w.held_bits.is_some(), "more than the list holds");
        for &id in &ids {
            assert!(w.holds(id));
            assert!(!w.insert(0, 0, 0).is_some_and(|new| ids.contains(&new)));
        }
        for &id in &ids {
            assert_eq!(w.on_puback(id), Ack::Late);
        }
        assert_eq!(w.on_puback(ids[0]), Ack::Stray, "freed once");

        let mut w = Inflight::new(4);
        let id = w.insert(0, 0, 0).unwrap();
        w.expire_all(|_| {});
        assert!(w.held_bits.is_none() && w.held_list.capacity() == HELD_LIST_MAX);
        assert_eq!(w.on_puback(id), Ack::Late);
    }

    #[test]
    fn a_late_pubrec_is_still_released() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1, 0).unwrap();
        w.expire_all(|_| {});
        assert_eq!(w.on_pubrec(id), Ack::Release);
        assert_eq!(w.on_pubrec(id), Ack::Release, "repeated: answered again");
        assert_eq!(w.on_pubcomp(id), Ack::Late);
        assert!(w.is_empty());
    }

    #[test]
    fn pubcomp_before_pubrec_is_a_protocol_error() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1, 0).unwrap();
        assert_eq!(w.on_pubcomp(id), Ack::Unexpected);
        assert_eq!(w.stage(id), Stage::AwaitAck, "the publish still waits");
    }

    #[test]
    fn acks_for_ids_no_publish_holds_are_stray_and_change_nothing() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1, 0).unwrap();
        assert_eq!(w.on_puback(id + 1), Ack::Stray, "an id never sent");
        assert_eq!(w.on_pubcomp(9), Ack::Stray);
        assert_eq!(w.on_puback(0), Ack::Stray);
        assert_eq!(w.on_puback(id), Ack::Completed(1, 0));
        assert_eq!(w.on_puback(id), Ack::Stray, "a duplicate");
        assert!(w.is_empty());
    }

    #[test]
    fn a_stray_pubrec_holds_its_id_until_the_pubcomp_of_our_pubrel() {
        let mut w = Inflight::new(1);
        assert_eq!(w.on_pubrec(1), Ack::Stray);
        assert!(w.holds(1) && !w.is_empty());
        assert_ne!(w.insert(0, 0, 0), Some(1), "the broker holds id 1");
        assert_eq!(w.on_pubcomp(1), Ack::Late);
        assert!(!w.holds(1));
    }

    #[test]
    fn clear_counts_only_what_was_not_expired_already_and_frees_held_ids() {
        let mut w = Inflight::new(4);
        w.insert(1, 1, 0);
        w.insert(2, 2, 0);
        w.insert(9, 9, 0);
        assert_eq!(w.expire_sent_before(3, |_| {}), 2);
        assert_eq!(w.clear(|_| {}), 1);
        assert!(w.is_empty());
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn packet_ids_stay_in_range_and_never_zero() {
        for window in [1u16, 3, 16, 1000, 65535] {
            let mut w = Inflight::new(window);
            for i in 0..200_000u64 {
                let id = w.insert(i, i, 0).unwrap();
                assert_ne!(id, 0);
                assert_eq!(w.on_puback(id), Ack::Completed(i, 0));
            }
        }
    }

    #[test]
    fn an_id_held_for_a_subscribe_is_taken_by_no_publish_until_released() {
        let mut w = Inflight::new(1);
        w.hold_id(2);
        assert!(w.holds(2) && !w.is_empty());
        for i in 0..10 {
            let id = w.insert(i, i, 0).unwrap();
            assert_ne!(id, 2);
            assert_eq!(w.on_puback(id), Ack::Completed(i, 0));
        }
        assert!(w.release_id(2));
        assert!(!w.release_id(2), "released once");
        assert!(w.is_empty());
    }

    #[test]
    fn qos2_waits_for_pubcomp_after_pubrec() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1, 0).unwrap();
        assert_eq!(w.on_pubrec(id), Ack::Release);
        assert_eq!(w.stage(id), Stage::AwaitComp);
        assert_eq!(
            w.on_pubrec(id),
            Ack::Release,
            "a repeated PUBREC is answered again"
        );
        assert_eq!(w.on_pubcomp(id), Ack::Completed(1, 0));
    }

    #[test]
    fn a_completed_publish_gives_back_the_device_points_it_carried() {
        let mut w = Inflight::new(4);
        let a = w.insert(1, 1, 0).unwrap();
        let b = w.insert(2, 2, 0).unwrap();
        w.set_points(a, 40);
        assert_eq!(w.on_puback(b), Ack::Completed(2, 0));
        assert_eq!(w.completed_points(), 0, "a publish without points");
        assert_eq!(w.on_puback(a), Ack::Completed(1, 0));
        assert_eq!(w.completed_points(), 40);
        assert_eq!(
            std::mem::size_of::<Slot>(),
            24,
            "the points fit the slot's padding"
        );
    }
}
