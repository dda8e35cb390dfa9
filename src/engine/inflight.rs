//! The per-connection in-flight window: unacknowledged QoS 1/2 publishes, indexed by packet id.
//!
//! A fixed array of `window` slots, allocated once. Packet ids encode their slot
//! (`pkid = generation * window + slot + 1`), so an acknowledgement finds its entry by
//! arithmetic, not a search or a map (as rumqttc's `state.rs`). The generation part makes a
//! late acknowledgement for a publish that already timed out recognisable: its id no longer
//! matches the slot's current id, and it is ignored instead of completing a newer publish.
//! At the bound (all slots used) the next message waits; it is never dropped.

/// What an in-flight publish is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Free,
    /// QoS 1: PUBACK. QoS 2: PUBREC.
    AwaitAck,
    /// QoS 2 after PUBREC: PUBCOMP (a PUBREL was sent).
    AwaitComp,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pkid: u16,
    stage: Stage,
    /// When the publish was scheduled (ns since run start): latency starts here.
    scheduled_ns: u64,
    /// When it was handed to the socket buffer (ns since run start): timeouts start here.
    sent_ns: u64,
}

pub struct Inflight {
    slots: Box<[Slot]>,
    /// Free slot indexes (a stack, capacity `window`).
    free: Vec<u16>,
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
                scheduled_ns: 0,
                sent_ns: 0
            };
            window as usize
        ];
        Inflight {
            slots: slots.into_boxed_slice(),
            free: (0..window).rev().collect(),
            generations: (u16::MAX / window).max(1),
            next_generation: vec![0; window as usize].into_boxed_slice(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
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

    /// The stage the publish with this id is in (`Free` when unknown or stale).
    pub fn stage(&self, pkid: u16) -> Stage {
        self.slot_of(pkid)
            .map_or(Stage::Free, |s| self.slots[s].stage)
    }

    /// QoS 2: PUBREC arrived; now wait for PUBCOMP. Returns false for an unknown id.
    pub fn mark_released(&mut self, pkid: u16) -> bool {
        match self.slot_of(pkid) {
            Some(s) if self.slots[s].stage == Stage::AwaitAck => {
                self.slots[s].stage = Stage::AwaitComp;
                true
            }
            _ => false,
        }
    }

    /// The publish completed (PUBACK, or PUBCOMP at QoS 2): free its slot and return its
    /// scheduled time. None for an unknown or stale id (a late ack after a timeout).
    pub fn complete(&mut self, pkid: u16) -> Option<u64> {
        let slot = self.slot_of(pkid)?;
        let scheduled_ns = self.slots[slot].scheduled_ns;
        self.release(slot);
        Some(scheduled_ns)
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot].stage = Stage::Free;
        self.free.push(slot as u16);
    }

    /// Free every publish handed to the socket before `deadline_sent_ns`; returns how many.
    pub fn expire_sent_before(&mut self, deadline_sent_ns: u64) -> u32 {
        let mut expired = 0;
        for slot in 0..self.slots.len() {
            let s = self.slots[slot];
            if s.stage != Stage::Free && s.sent_ns < deadline_sent_ns {
                self.release(slot);
                expired += 1;
            }
        }
        expired
    }

    /// Free every slot (connection closed); returns how many publishes were outstanding.
    pub fn clear(&mut self) -> u32 {
        self.expire_sent_before(u64::MAX)
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
        assert_eq!(w.complete(b), Some(20));
        assert_eq!(w.complete(a), Some(10));
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
    fn a_late_ack_after_a_timeout_does_not_complete_a_newer_publish() {
        let mut w = Inflight::new(1);
        let old = w.insert(5, 5).unwrap();
        assert_eq!(w.expire_sent_before(6), 1);
        let new = w.insert(7, 7).unwrap();
        assert_ne!(old, new);
        assert_eq!(w.complete(old), None);
        assert_eq!(w.complete(new), Some(7));
    }

    #[test]
    fn packet_ids_stay_in_range_and_never_zero() {
        for window in [1u16, 3, 16, 1000, 65535] {
            let mut w = Inflight::new(window);
            for i in 0..200_000u64 {
                let id = w.insert(i, i).unwrap();
                assert_ne!(id, 0);
                assert_eq!(w.complete(id), Some(i));
            }
        }
    }

    #[test]
    fn qos2_waits_for_pubcomp_after_pubrec() {
        let mut w = Inflight::new(2);
        let id = w.insert(1, 1).unwrap();
        assert!(w.mark_released(id));
        assert_eq!(w.stage(id), Stage::AwaitComp);
        assert!(!w.mark_released(id));
        assert_eq!(w.complete(id), Some(1));
    }
}
