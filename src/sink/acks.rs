//! The delayed-acknowledgement queue behind `--ack-delay`.
//!
//! Every ack is due the same fixed delay after its PUBLISH or PUBREL arrived (the kernel's
//! receive stamp, see `transport::rx_stamp`), so due times almost never decrease: a FIFO is
//! already a timer queue. Push at the back when a packet is read, pop from the front once due.
//! Two sockets read in one wakeup can carry stamps out of order; the later-read ack is then
//! due with the one before it (late by that difference, never early), so the order holds.
//! The ring is allocated once with a fixed capacity and never grows; the worker stops reading
//! before it could overflow (see `worker::ACKS_PER_READ_MAX`), so an ack is never dropped.

use std::collections::VecDeque;

/// Which acknowledgement to send (MQTT 3.1.1 sections 3.4, 3.5, 3.7).
#[allow(clippy::enum_variant_names)] // The spec's packet names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubComp,
}

/// One acknowledgement owed to a connection. `generation` tells a connection from a later one
/// that reuses its slot, so an ack owed to a closed connection is skipped, not misdelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayedAck {
    pub due_ns: u64,
    pub slot: u32,
    pub generation: u32,
    pub pkid: u16,
    pub kind: AckKind,
}

/// Fixed-capacity FIFO of [`DelayedAck`]s ordered by due time.
#[derive(Debug)]
pub struct AckQueue {
    entries: VecDeque<DelayedAck>,
    capacity: usize,
}

impl AckQueue {
    /// Allocate room for `capacity` acks now; the queue never allocates again.
    pub fn with_capacity(capacity: usize) -> AckQueue {
        AckQueue {
            entries: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Acks that can still be pushed.
    pub fn free(&self) -> usize {
        self.capacity - self.entries.len()
    }

    /// Queue an ack behind the others. At capacity the ack is handed back, never dropped
    /// silently and never stored by growing the ring.
    ///
    /// # Errors
    /// The ack itself when the queue is full.
    pub fn push(&mut self, mut ack: DelayedAck) -> Result<(), DelayedAck> {
        if self.entries.len() >= self.capacity {
            return Err(ack);
        }
        if let Some(last) = self.entries.back() {
            ack.due_ns = ack.due_ns.max(last.due_ns);
        }
        self.entries.push_back(ack);
        Ok(())
    }

    /// Due time of the oldest ack, which is the next to become due.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.entries.front().map(|ack| ack.due_ns)
    }

    /// Remove and return the oldest ack if it is due at `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<DelayedAck> {
        match self.entries.front() {
            Some(ack) if ack.due_ns <= now_ns => self.entries.pop_front(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(due_ns: u64, pkid: u16) -> DelayedAck {
        DelayedAck {
            due_ns,
            slot: 0,
            generation: 0,
            pkid,
            kind: AckKind::PubAck,
        }
    }

    #[test]
    fn acks_come_out_in_order_and_only_once_due() {
        let mut queue = AckQueue::with_capacity(4);
        queue.push(ack(10, 1)).unwrap();
        queue.push(ack(20, 2)).unwrap();
        assert_eq!(queue.next_due_ns(), Some(10));
        assert_eq!(queue.pop_due(9), None);
        assert_eq!(queue.pop_due(25).map(|a| a.pkid), Some(1));
        assert_eq!(queue.pop_due(25).map(|a| a.pkid), Some(2));
        assert_eq!(queue.pop_due(25), None);
        assert_eq!(queue.free(), 4);
    }

    #[test]
    fn an_ack_due_before_the_last_one_waits_for_it_and_is_never_early() {
        let mut queue = AckQueue::with_capacity(4);
        queue.push(ack(20, 1)).unwrap();
        queue.push(ack(15, 2)).unwrap();
        assert_eq!(queue.pop_due(15), None);
        assert_eq!(queue.pop_due(20).map(|a| a.pkid), Some(1));
        assert_eq!(queue.pop_due(20).map(|a| (a.pkid, a.due_ns)), Some((2, 20)));
    }

    #[test]
    fn a_full_queue_hands_the_ack_back_instead_of_growing() {
        let mut queue = AckQueue::with_capacity(2);
        queue.push(ack(1, 1)).unwrap();
        queue.push(ack(2, 2)).unwrap();
        assert_eq!(queue.free(), 0);
        assert_eq!(queue.push(ack(3, 3)), Err(ack(3, 3)));
        assert_eq!(queue.free(), 0);
        queue.pop_due(1);
        assert_eq!(queue.free(), 1);
        queue.push(ack(3, 3)).unwrap();
    }
}
