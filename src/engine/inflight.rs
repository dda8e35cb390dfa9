//! The per-connection in-flight window: unacknowledged QoS 1/2 publishes, indexed by packet id.
//!
//! A fixed array of `window` slots, allocated once. Packet ids encode their slot
//! (`pkid = generation * window + slot + 1`), so an acknowledgement finds its entry by
//! arithmetic, not a search or a map (as rumqttc's `state.rs`).
//!
//! A packet id belongs to its publish until the broker has finished with it [MQTT-2.3.1-2]:
//! PUBACK at QoS 1, PUBCOMP at QoS 2. A publish that outlives `--timeout` is counted as timed
//! out once (`expire_sent_before`) but keeps its slot, marked expired, until its late ack
//! arrives or the connection closes; a late PUBREC still gets its PUBREL [MQTT-4.3.3-1]. An
//! ack that matches no slot in the stage it is waiting for is the broker's protocol error.
//!
//! Bounds: at most `window` ids are held. When all of them are held the next message waits;
//! it is never dropped. When all of them are held by expired publishes the broker has stopped
//! acknowledging on this connection: `expired` says so and the worker closes it (a new
//! connection starts a clean session, which frees every id).

/// What an in-flight publish is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Free,
    /// QoS 1: PUBACK. QoS 2: PUBREC.
    AwaitAck,
    /// QoS 2 after PUBREC: PUBCOMP (a PUBREL was sent).
    AwaitComp,
}

/// What an acknowledgement did to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The publish is complete; its scheduled time (ns since run start).
    Completed(u64),
    /// QoS 2: PUBREC moved the publish to `AwaitComp` (or repeated it): send PUBREL.
    Release,
    /// The ack of a publish already counted as timed out: its id is free again (or, for a
    /// late PUBREC, a PUBREL is owed: see `Ack::Release`), nothing is recorded.
    Late,
    /// No publish with this id waits for this ack: a protocol error of the broker.
    Unexpected,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pkid: u16,
    stage: Stage,
    /// Counted as timed out already; the id stays held until the broker acks it.
    expired: bool,
    /// When the publish was scheduled (ns since run start): latency starts here.
    scheduled_ns: u64,
    /// When it was handed to the socket buffer (ns since run start): timeouts start here.
    sent_ns: u64,
}

pub struct Inflight {
    slots: Box<[Slot]>,
    /// Free slot indexes (a stack, capacity `window`).
    free: Vec<u16>,
    /// Held slots whose publish has expired.
    expired: usize,
    /// Generations per slot so that `pkid` stays within 1..=65535.
    generations: u16,
    next_generation: Box<[u16]>,
}

impl Inflight {
    /// A window of `window` slots (1..=65535).
    pub fn new(window: u16) -> Inflight {
        let window = window.max(1);
        let slots = vec![
            Slot {
                pkid: 0,
                stage: Stage::Free,
                expired: false,
                scheduled_ns: 0,
                sent_ns: 0
            };
            window as usize
        ];
        Inflight {
            slots: slots.into_boxed_slice(),
            free: (0..window).rev().collect(),
            expired: 0,
            generations: (u16::MAX / window).max(1),
            next_generation: vec![0; window as usize].into_boxed_slice(),
        }
    }

    /// Packet ids held (outstanding and expired).
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Publishes still waiting to be counted: held and not expired.
    pub fn outstanding(&self) -> usize {
        self.len() - self.expired
    }

    /// The window: most publishes in flight at once.
    pub fn window(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Ids held by publishes that timed out. When they fill the window the connection may
    /// use (all of it, or the broker's smaller Receive Maximum), the broker has stopped
    /// acknowledging on it.
    pub fn expired(&self) -> usize {
        self.expired
    }

    /// When the oldest publish still waiting to be counted was handed to the socket (None when
    /// there is none). A scan of the window: called once per check, not per message.
    pub fn oldest_outstanding_sent_ns(&self) -> Option<u64> {
        if self.outstanding() == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.stage != Stage::Free && !s.expired)
            .map(|s| s.sent_ns)
            .min()
    }

    /// Take a slot for a new publish; returns its packet id, or None when the window is full.
    pub fn insert(&mut self, scheduled_ns: u64, sent_ns: u64) -> Option<u16> {
        let slot = self.free.pop()? as usize;
        let window = self.slots.len() as u32;
        let generation = self.next_generation[slot];
        self.next_generation[slot] = (generation + 1) % self.generations;
        let pkid = (generation as u32 * window + slot as u32 + 1) as u16;
        self.slots[slot] = Slot {
            pkid,
            stage: Stage::AwaitAck,
            expired: false,
            scheduled_ns,
            sent_ns,
        };
        Some(pkid)
    }

    fn slot_of(&self, pkid: u16) -> Option<usize> {
        if pkid == 0 {
            return None;
        }
        let slot = (pkid as usize - 1) % self.slots.len();
        let s = &self.slots[slot];
        (s.stage != Stage::Free && s.pkid == pkid).then_some(slot)
    }

    /// The stage the publish with this id is in (`Free` when unknown).
    pub fn stage(&self, pkid: u16) -> Stage {
        self.slot_of(pkid)
            .map_or(Stage::Free, |s| self.slots[s].stage)
    }

    /// QoS 1 PUBACK: completes a publish waiting for it.
    pub fn on_puback(&mut self, pkid: u16) -> Ack {
        self.finish(pkid, Stage::AwaitAck)
    }

    /// QoS 2 PUBREC: the publish now waits for PUBCOMP and a PUBREL is owed. A repeated
    /// PUBREC is answered again [MQTT-4.3.3-1]; an expired publish still gets its PUBREL.
    pub fn on_pubrec(&mut self, pkid: u16) -> Ack {
        match self.slot_of(pkid) {
            Some(s) => {
                self.slots[s].stage = Stage::AwaitComp;
                Ack::Release
            }
            None => Ack::Unexpected,
        }
    }

    /// QoS 2 PUBCOMP: completes a publish whose PUBREC came first. A PUBCOMP for an id that
    /// is not waiting for one (no PUBREC yet, or unknown) is `Unexpected`.
    pub fn on_pubcomp(&mut self, pkid: u16) -> Ack {
        self.finish(pkid, Stage::AwaitComp)
    }

    fn finish(&mut self, pkid: u16, awaited: Stage) -> Ack {
        let Some(slot) = self.slot_of(pkid) else {
            return Ack::Unexpected;
        };
        let s = self.slots[slot];
        if s.stage != awaited {
            return Ack::Unexpected;
        }
        self.release(slot);
        if s.expired {
            Ack::Late
        } else {
            Ack::Completed(s.scheduled_ns)
        }
    }

    fn release(&mut self, slot: usize) {
        if self.slots[slot].expired {
            self.expired -= 1;
        }
        self.slots[slot].stage = Stage::Free;
        self.slots[slot].expired = false;
        self.free.push(slot as u16);
    }

    /// Mark every outstanding publish handed to the socket before `deadline_sent_ns` as
    /// expired (its id stays held); returns how many expired now.
    pub fn expire_sent_before(&mut self, deadline_sent_ns: u64) -> u32 {
        let mut expired = 0;
        for s in self.slots.iter_mut() {
            if s.stage != Stage::Free && !s.expired && s.sent_ns < deadline_sent_ns {
                s.expired = true;
                expired += 1;
            }
        }
        self.expired += expired as usize;
        expired
    }

    /// Expire every outstanding publish (the stop timeout ran out); returns how many.
    pub fn expire_all(&mut self) -> u32 {
        self.expire_sent_before(u64::MAX)
    }

    /// Free every slot (the connection closed, so its session's ids are gone); returns how
    /// many publishes were outstanding and not yet counted as expired.
    pub fn clear(&mut self) -> u32 {
        let outstanding = self.outstanding() as u32;
        for slot in 0..self.slots.len() {
            if self.slots[slot].stage != Stage::Free {
                self.release(slot);
            }
        }
        outstanding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_complete_the_publish_with_their_packet_id() {
        let mut w = Inflight::new(4);
        let a = w.insert(10, 11).unwrap();
        let b = w.insert(20, 21).unwrap();
        assert_ne!(a, b);
        assert_eq!(w.on_puback(b), Ack::Completed(20));
        assert_eq!(w.on_puback(a), Ack::Completed(10));
        assert!(w.is_empty());
    }

    #[test]
    fn a_full_window_refuses_the_next_publish() {
        let mut w = Inflight::new(2);
        assert!(w.insert(0, 0).is_some());
        assert!(w.insert(0, 0).is_some());
        assert!(w.is_full());
        assert_eq!(w.insert(0, 0), None);
    }

    #[test]
    fn a_timed_out_packet_id_stays_held_until_its_late_ack() {
        let mut w = Inflight::new(1);
        let old = w.insert(5, 5).unwrap();
        assert_eq!(w.expire_sent_before(6), 1);
        assert_eq!(w.expire_sent_before(7), 0, "counted once");
        assert_eq!(w.outstanding(), 0);
        assert!(w.is_full() && w.expired() == w.window());
        assert_eq!(
            w.insert(7, 7),
            None,
            "the id is not reused while the broker holds it"
        );
        assert_eq!(w.on_puback(old), Ack::Late);
        let new = w.insert(7, 7).unwrap();
        assert_ne!(old, new);
        assert_eq!(w.on_puback(new), Ack::Completed(7));
    }

    #[test]
    fn a_late_pubrec_is_still_released() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1).unwrap();
        w.expire_all();
        assert_eq!(w.on_pubrec(id), Ack::Release);
        assert_eq!(w.on_pubcomp(id), Ack::Late);
        assert!(w.is_empty());
    }

    #[test]
    fn pubcomp_before_pubrec_is_a_protocol_error() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1).unwrap();
        assert_eq!(w.on_pubcomp(id), Ack::Unexpected);
        assert_eq!(w.stage(id), Stage::AwaitAck, "the publish still waits");
        assert_eq!(w.on_puback(id + 1), Ack::Unexpected, "an id never sent");
    }

    #[test]
    fn clear_counts_only_what_was_not_expired_already() {
        let mut w = Inflight::new(4);
        w.insert(1, 1);
        w.insert(2, 2);
        w.insert(9, 9);
        assert_eq!(w.expire_sent_before(3), 2);
        assert_eq!(w.clear(), 1);
        assert!(w.is_empty());
    }

    #[test]
    fn packet_ids_stay_in_range_and_never_zero() {
        for window in [1u16, 3, 16, 1000, 65535] {
            let mut w = Inflight::new(window);
            for i in 0..200_000u64 {
                let id = w.insert(i, i).unwrap();
                assert_ne!(id, 0);
                assert_eq!(w.on_puback(id), Ack::Completed(i));
            }
        }
    }

    #[test]
    fn qos2_waits_for_pubcomp_after_pubrec() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1).unwrap();
        assert_eq!(w.on_pubrec(id), Ack::Release);
        assert_eq!(w.stage(id), Stage::AwaitComp);
        assert_eq!(
            w.on_pubrec(id),
            Ack::Release,
            "a repeated PUBREC is answered again"
        );
        assert_eq!(w.on_pubcomp(id), Ack::Completed(1));
    }
}
