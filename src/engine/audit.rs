//! The delivery audit: which messages of which publisher each subscriber received.
//!
//! Every publisher is one *stream* of sequence numbers 1, 2, 3, ... (embedded in its payloads,
//! see `payload::e2e`). Each subscriber keeps one [`Stream`] per publisher, allocated when the
//! worker is built (the number of publishers is known), so recording a message never
//! allocates. A stream is a contiguous watermark (`base`: everything below it is settled) plus
//! a [`WINDOW`]-message bitmap above it, so memory per stream is fixed (88 bytes) whatever the
//! run length.
//!
//! At the bound: a sequence number [`WINDOW`] or more beyond the watermark slides the window
//! forward, and the messages it slides past unreceived are counted as `gaps` (provisionally
//! missing). A message that arrives below the watermark is then ambiguous: if the stream has
//! unresolved gaps it is counted as a late (out-of-order) delivery that fills one, otherwise as
//! a duplicate. Within the window duplicates and reordering are exact. The final `lost` count
//! never depends on this: it is `expected - unique` per stream, where `unique` counts every
//! first arrival.
//!
//! Sequence numbers on the wire are taken modulo a fixed modulus (2^48 for the payload
//! marker); the stream unwraps them to the full value closest to the newest one seen, so
//! wrap-around is handled as long as reordering stays below half the modulus.
//!
//! A stats reset moves the audit's *cut* (`Control::audit_cut_ns`): from then on the counts
//! cover only messages whose send stamp (the marker's time, the same value the publisher's
//! in-flight slot keeps) is at or after the cut. Every message is classified by its own stamp
//! on both sides, the publisher's count and the subscriber's, so a message in flight at the
//! reset is either in both or in neither: never counted twice, never called lost. The window
//! and watermark keep running across a cut (duplicates of older messages are still known).
//! A stream restarts its counts lazily, at its first arrival after the cut moved; one that
//! has seen no arrival since counts as zero (`counts_at`).

pub use crate::stats::audit::AuditSummary;

/// Messages tracked individually above a stream's watermark.
pub const WINDOW: u64 = 256;
const WORDS: usize = (WINDOW / 64) as usize;

/// Most (subscriber, publisher) streams one run may audit: 4,194,304 streams of 88 bytes
/// (352 MiB). Larger runs are refused by the config check, which suggests `--verify false`.
pub const MAX_STREAMS: u64 = 1 << 22;

/// One publisher's sequence numbers as seen by one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Every sequence number below this is settled (received, or slid past as a gap).
    base: u64,
    /// Bit `seq % WINDOW` set: `seq` in `[base, base + WINDOW)` was received.
    bits: [u64; WORDS],
    /// Newest (full, unwrapped) sequence number seen; 0 before the first.
    newest: u64,
    /// The cut the counts below start at (ns since the run start; 0: the whole run).
    cut_ns: u64,
    /// Counts of messages stamped at or after `cut_ns`.
    pub unique: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Sequence numbers slid past the window without having arrived (not yet filled).
    pub gaps: u64,
}

impl Default for Stream {
    fn default() -> Stream {
        Stream {
            base: 1,
            bits: [0; WORDS],
            newest: 0,
            cut_ns: 0,
            unique: 0,
            duplicated: 0,
            reordered: 0,
            gaps: 0,
        }
    }
}

impl Stream {
    /// Record one arrival of wire sequence number `wire_seq` (taken modulo `modulus`),
    /// counted when it was stamped at or after the audit's current cut (`counted`).
    pub fn record(&mut self, wire_seq: u64, modulus: u64, cut: Cut) -> Arrival {
        if self.cut_ns != cut.cut_ns {
            self.restart_counts(cut.cut_ns);
        }
        let seq = self.unwrap(wire_seq, modulus);
        let arrival = if seq < self.base {
            self.below_window()
        } else {
            if seq >= self.base + WINDOW {
                self.slide_to(seq + 1 - WINDOW);
            }
            self.in_window(seq)
        };
        self.newest = self.newest.max(seq);
        if cut.counted {
            self.count(arrival);
        }
        arrival
    }

    /// Unique, duplicated and reordered at `cut_ns` (zero when no arrival since it).
    pub fn counts_at(&self, cut_ns: u64) -> (u64, u64, u64) {
        match self.cut_ns == cut_ns {
            true => (self.unique, self.duplicated, self.reordered),
            false => (0, 0, 0),
        }
    }

    fn restart_counts(&mut self, cut_ns: u64) {
        self.cut_ns = cut_ns;
        (self.unique, self.duplicated, self.reordered) = (0, 0, 0);
    }

    fn count(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::First { reordered } => {
                self.unique += 1;
                self.reordered += u64::from(reordered);
            }
            Arrival::Duplicate => self.duplicated += 1,
        }
    }

    /// The full sequence number congruent to `wire_seq` closest to the newest one seen.
    fn unwrap(&self, wire_seq: u64, modulus: u64) -> u64 {
        let wire_seq = wire_seq % modulus;
        if self.newest == 0 {
            return wire_seq;
        }
        let epoch = self.newest - self.newest % modulus;
        let candidates = [
            epoch.checked_sub(modulus).map(|e| e + wire_seq),
            Some(epoch + wire_seq),
            epoch.checked_add(modulus).map(|e| e + wire_seq),
        ];
        candidates
            .into_iter()
            .flatten()
            .min_by_key(|&c| c.abs_diff(self.newest))
            .unwrap_or(wire_seq)
    }

    fn below_window(&mut self) -> Arrival {
        if self.gaps > 0 {
            self.gaps -= 1;
            Arrival::First { reordered: true }
        } else {
            Arrival::Duplicate
        }
    }

    fn in_window(&mut self, seq: u64) -> Arrival {
        let (word, bit) = slot(seq);
        if self.bits[word] & bit != 0 {
            return Arrival::Duplicate;
        }
        self.bits[word] |= bit;
        let reordered = seq < self.newest;
        self.advance_over_received();
        Arrival::First { reordered }
    }

    /// Move the watermark over the received messages at its front.
    fn advance_over_received(&mut self) {
        loop {
            let (word, bit) = slot(self.base);
            if self.bits[word] & bit == 0 {
                return;
            }
            self.bits[word] &= !bit;
            self.base += 1;
        }
    }

    /// Move the watermark to `new_base`, counting what it passes unreceived as gaps.
    fn slide_to(&mut self, new_base: u64) {
        let distance = new_base - self.base;
        if distance >= WINDOW {
            let received: u64 = self.bits.iter().map(|w| u64::from(w.count_ones())).sum();
            self.gaps += distance - received;
            self.bits = [0; WORDS];
        } else {
            for seq in self.base..new_base {
                let (word, bit) = slot(seq);
                if self.bits[word] & bit == 0 {
                    self.gaps += 1;
                }
                self.bits[word] &= !bit;
            }
        }
        self.base = new_base;
    }
}

/// What one arrival was to its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Its first arrival; `reordered`: a newer message of the stream arrived before it.
    First {
        reordered: bool,
    },
    Duplicate,
}

/// The audit's cut as one arrival sees it: where the counts start, and whether this message
/// (by its send stamp) is at or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub cut_ns: u64,
    pub counted: bool,
}

impl Cut {
    /// No reset: every message counts.
    pub const WHOLE_RUN: Cut = Cut {
        cut_ns: 0,
        counted: true,
    };

    /// The cut at `cut_ns` for a message stamped `stamp_ns` (both ns since the run start).
    #[inline]
    pub fn of(cut_ns: u64, stamp_ns: u64) -> Cut {
        Cut {
            cut_ns,
            counted: stamp_ns >= cut_ns,
        }
    }
}

#[inline]
fn slot(seq: u64) -> (usize, u64) {
    let index = seq % WINDOW;
    ((index / 64) as usize, 1u64 << (index % 64))
}

/// One subscriber's streams, one per publisher (global publisher index).
#[derive(Debug)]
pub struct SubscriberAudit {
    pub streams: Box<[Stream]>,
    /// First arrivals over all streams (the drain's "has everything arrived" check).
    pub unique_total: u64,
    /// The drain cap ended while this subscriber was still connected: what it misses may be
    /// late rather than lost, and is reported as still arriving.
    pub cut_off: bool,
    /// The subscriber lost its connection and reconnected (`--reconnect`): what it missed
    /// meanwhile leaves gaps that are no evidence of the broker's queue (see
    /// [`AuditSummary::skipped`]).
    pub interrupted: bool,
}

impl SubscriberAudit {
    pub fn new(publishers: u32) -> SubscriberAudit {
        SubscriberAudit {
            streams: vec![Stream::default(); publishers as usize].into_boxed_slice(),
            unique_total: 0,
            cut_off: false,
            interrupted: false,
        }
    }

    /// Adds another subscriber's per-stream counts at the cut `cut_ns` (a shared group
    /// audits as one; duplicates across its members are not detected).
    pub fn merge_from(&mut self, other: &SubscriberAudit, cut_ns: u64) {
        for (mine, theirs) in self.streams.iter_mut().zip(other.streams.iter()) {
            if mine.cut_ns != cut_ns {
                mine.restart_counts(cut_ns);
            }
            let (unique, duplicated, reordered) = theirs.counts_at(cut_ns);
            mine.unique += unique;
            mine.duplicated += duplicated;
            mine.reordered += reordered;
        }
        self.unique_total += other.unique_total;
        self.cut_off |= other.cut_off;
        self.interrupted |= other.interrupted;
    }

    /// Record a message of publisher `publisher`; ids outside the run are ignored (None).
    #[inline]
    pub fn record(
        &mut self,
        publisher: u32,
        wire_seq: u64,
        modulus: u64,
        cut: Cut,
    ) -> Option<Arrival> {
        let stream = self.streams.get_mut(publisher as usize)?;
        let arrival = stream.record(wire_seq, modulus, cut);
        if let Arrival::First { .. } = arrival {
            self.unique_total += 1;
        }
        Some(arrival)
    }
}

impl AuditSummary {
    /// Adds one subscriber's streams against `expected[p]` (per publisher, matching ones
    /// only, counted from the cut `cut_ns`).
    pub fn add_subscriber(&mut self, audit: &SubscriberAudit, expected: &[u64], cut_ns: u64) {
        // Gaps are kept across a stats reset, so they are evidence only without one.
        let evidence = !audit.cut_off && !audit.interrupted && !self.shared && cut_ns == 0;
        for (stream, &owed) in audit.streams.iter().zip(expected) {
            self.add_stream(stream, owed, audit.cut_off, cut_ns);
            if evidence {
                let missing = owed.saturating_sub(stream.counts_at(cut_ns).0);
                self.skipped += stream.gaps.min(missing);
            }
        }
    }

    /// Adds one stream against `owed` deliveries; `cut_off`: its subscriber was still
    /// receiving when the drain cap ended, so what is missing is still arriving, not lost.
    pub fn add_stream(&mut self, stream: &Stream, owed: u64, cut_off: bool, cut_ns: u64) {
        let (unique, duplicated, reordered) = stream.counts_at(cut_ns);
        let missing = owed.saturating_sub(unique);
        self.expected += owed;
        self.delivered += unique;
        match cut_off {
            true => self.still_arriving += missing,
            false => self.lost += missing,
        }
        self.duplicated += duplicated;
        self.reordered += reordered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 48;

    fn fed(seqs: impl IntoIterator<Item = u64>, modulus: u64) -> Stream {
        let mut s = Stream::default();
        for seq in seqs {
            s.record(seq, modulus, Cut::WHOLE_RUN);
        }
        s
    }

    #[test]
    fn an_in_order_stream_is_all_unique_and_keeps_no_window_bits() {
        let s = fed(1..=100_000, M);
        assert_eq!(
            (s.unique, s.duplicated, s.reordered, s.gaps),
            (100_000, 0, 0, 0)
        );
        assert_eq!(s.base, 100_001);
        assert_eq!(s.bits, [0; WORDS]);
    }

    #[test]
    fn duplicates_within_the_window_are_counted_and_not_delivered_twice() {
        let s = fed([1, 2, 2, 3, 1, 3], M);
        assert_eq!((s.unique, s.duplicated, s.reordered), (3, 3, 0));
    }

    #[test]
    fn reordering_within_the_window_is_counted_once_per_late_message() {
        let s = fed([1, 3, 2, 5, 4, 6], M);
        assert_eq!((s.unique, s.duplicated, s.reordered, s.gaps), (6, 0, 2, 0));
        assert_eq!(s.base, 7);
    }

    #[test]
    fn a_missing_message_keeps_the_watermark_and_counts_as_lost_against_expected() {
        let s = fed((1..=10).filter(|&n| n != 4), M);
        assert_eq!(s.base, 4, "the watermark waits at the gap");
        let mut summary = AuditSummary::default();
        summary.add_stream(&s, 10, false, 0);
        assert_eq!((summary.delivered, summary.lost), (9, 1));
    }

    #[test]
    fn a_jump_beyond_the_window_slides_it_and_records_the_gaps() {
        let s = fed([1, 2, 3, 1000], M);
        assert_eq!(s.base, 1000 + 1 - WINDOW);
        assert_eq!(s.gaps, 741, "4..=744 slid out of the window unreceived");
        assert_eq!(s.unique, 4);
    }

    #[test]
    fn a_late_arrival_below_the_window_fills_a_gap_and_a_repeat_without_gaps_is_a_duplicate() {
        let mut s = fed([1, 2, 3, 1000], M);
        s.record(500, M, Cut::WHOLE_RUN);
        assert_eq!(
            (s.unique, s.reordered, s.gaps, s.duplicated),
            (5, 1, 740, 0)
        );
        let mut clean = fed(1..=1000, M);
        clean.record(3, M, Cut::WHOLE_RUN);
        assert_eq!((clean.unique, clean.duplicated), (1000, 1));
    }

    #[test]
    fn sequence_numbers_wrap_around_the_modulus() {
        let modulus = 1000;
        let wire = (990..1000).chain(0..20);
        let mut s = Stream {
            base: 990,
            ..Stream::default()
        };
        for seq in wire {
            s.record(seq, modulus, Cut::WHOLE_RUN);
        }
        assert_eq!((s.unique, s.duplicated, s.reordered, s.gaps), (30, 0, 0, 0));
        assert_eq!(s.base, 1020);
        s.record(995, modulus, Cut::WHOLE_RUN);
        assert_eq!(s.duplicated, 1, "995 from before the wrap is a duplicate");
    }

    #[test]
    fn memory_stays_fixed_however_far_a_stream_runs() {
        assert_eq!(std::mem::size_of::<Stream>(), 88);
        let s = fed((1..=2_000_000).step_by(2), M);
        assert_eq!(s.unique, 1_000_000);
        let settled = s.gaps + s.unique;
        assert!(
            2_000_000 - settled <= WINDOW,
            "every even number below the window is a gap"
        );
    }

    #[test]
    fn a_cut_counts_only_messages_stamped_after_it_on_both_sides_whenever_they_arrive() {
        // Message n is stamped at n * 10 ns; the reset's cut is at 55: 6..=10 are after it.
        let cut_ns = 55;
        let stamp = |seq: u64| seq * 10;
        let mut s = Stream::default();
        // 1..=4 arrive before the cut is placed; 5 (in flight at the cut) and the rest
        // after, with a duplicate of 3 and of 7 among them.
        for seq in 1..=4 {
            s.record(seq, M, Cut::WHOLE_RUN);
        }
        for seq in [5, 6, 3, 8, 7, 7, 9, 10] {
            s.record(seq, M, Cut::of(cut_ns, stamp(seq)));
        }
        // The publisher counts its acks by the same stamps: 6..=10.
        let owed = (1..=10).filter(|&seq| stamp(seq) >= cut_ns).count() as u64;
        assert_eq!(s.counts_at(cut_ns), (5, 1, 1), "7 twice, 7 after 8");
        let mut summary = AuditSummary::default();
        summary.add_stream(&s, owed, false, cut_ns);
        assert_eq!(
            (summary.expected, summary.delivered, summary.lost),
            (5, 5, 0)
        );
        assert_eq!(
            summary.duplicated, 1,
            "the repeat of 3 is from before the cut"
        );
    }

    #[test]
    fn a_stream_without_arrivals_since_the_cut_counts_nothing_at_it() {
        let s = fed(1..=10, M);
        assert_eq!(s.counts_at(0), (10, 0, 0));
        assert_eq!(s.counts_at(55), (0, 0, 0));
    }

    #[test]
    fn a_subscriber_ignores_publisher_ids_outside_the_run() {
        let mut audit = SubscriberAudit::new(2);
        assert!(audit.record(1, 1, M, Cut::WHOLE_RUN).is_some());
        assert!(audit.record(2, 1, M, Cut::WHOLE_RUN).is_none());
        assert_eq!(audit.unique_total, 1);
    }

    /// One subscriber of one publisher that published 1000: it got 1..=100 and 601..=1000
    /// (the broker dropped 500 from the middle), `interrupted` and audited at `cut_ns`.
    fn skipped_of(interrupted: bool, shared: bool, cut_ns: u64) -> (u64, u64) {
        let mut audit = SubscriberAudit::new(1);
        for seq in (1..=100).chain(601..=1000) {
            audit.record(0, seq, M, Cut::WHOLE_RUN);
        }
        audit.interrupted = interrupted;
        let mut summary = AuditSummary {
            shared,
            ..AuditSummary::default()
        };
        summary.add_subscriber(&audit, &[1000], cut_ns);
        (summary.lost, summary.skipped)
    }

    #[test]
    fn messages_dropped_mid_stream_are_skipped_only_with_evidence_the_queue_dropped_them() {
        assert_eq!(skipped_of(false, false, 0), (500, 500));
        // A subscriber that reconnected missed them while away.
        assert_eq!(skipped_of(true, false, 0), (500, 0));
        // Shared group members see gaps by design; after a reset the windows span the cut.
        assert_eq!(skipped_of(false, true, 0).1, 0);
        assert_eq!(skipped_of(false, false, 1).1, 0);
        // A tail that never came is lost, not skipped; holes in the last window are not counted.
        let mut tail = SubscriberAudit::new(1);
        for seq in (1..=400).filter(|seq| *seq != 300) {
            tail.record(0, seq, M, Cut::WHOLE_RUN);
        }
        let mut summary = AuditSummary::default();
        summary.add_subscriber(&tail, &[1000], 0);
        assert_eq!((summary.lost, summary.skipped), (601, 0));
        assert_eq!(summary.hint(), None);
    }

    #[test]
    fn the_verdict_line_names_every_count() {
        let mut summary = AuditSummary {
            published: 4,
            subscribers: 1,
            ..AuditSummary::default()
        };
        summary.add_stream(&fed([1, 2, 2, 4], M), 4, false, 0);
        assert_eq!(
            summary.verdict_line(),
            "Delivery audit: 4 published, 4 expected (1 subscriber), 3 delivered, 1 lost, 1 duplicated, 0 out of order: FAILED"
        );
    }

    #[test]
    fn messages_missing_when_the_drain_cap_cut_a_subscriber_off_are_still_arriving_not_lost() {
        let mut summary = AuditSummary {
            published: 10,
            subscribers: 2,
            ..AuditSummary::default()
        };
        summary.add_stream(&fed(1..=10, M), 10, false, 0);
        summary.add_stream(&fed(1..=7, M), 10, true, 0);
        assert_eq!((summary.lost, summary.still_arriving), (0, 3));
        assert_eq!(summary.verdict(), "incomplete");
        assert!(!summary.passed());
        assert_eq!(
            summary.verdict_line(),
            "Delivery audit: 10 published, 20 expected (2 subscribers), 17 delivered, 0 lost, 0 duplicated, 0 out of order: incomplete: 3 still arriving when the drain cap ended"
        );
        assert_eq!(summary.to_json()["verdict"], "incomplete");
        assert_eq!(summary.to_json()["still_arriving"], 3);
    }

    #[test]
    fn a_loss_elsewhere_fails_the_audit_even_when_another_subscriber_was_cut_off() {
        let mut summary = AuditSummary::default();
        summary.add_stream(&fed(1..=9, M), 10, false, 0);
        summary.add_stream(&fed(1..=8, M), 10, true, 0);
        assert_eq!(summary.verdict(), "failed");
        assert!(summary
            .verdict_line()
            .ends_with(": FAILED; 2 still arriving when the drain cap ended"));
    }
}
