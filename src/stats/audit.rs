//! The delivery audit's verdict as every report renders it (console, JSON, HTML, the web
//! UI): counts only, no per-stream state. It lives with the stats because a result carries
//! it; `engine::audit` fills it in from the subscribers' streams at the end of a run, and the
//! merger fills in the running counts of a live run from what workers ship (`LiveAudit`).

use serde_json::{json, Value};

use super::live::LiveAudit;

/// The run's verdict, as printed and written to JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Publishes that count (acknowledged at QoS 1/2, written at QoS 0), once.
    pub published: u64,
    /// Deliveries owed: `published` per subscriber, or once per shared-subscription group.
    pub expected: u64,
    /// First arrivals (duplicates excluded).
    pub delivered: u64,
    /// Owed and not delivered to a subscriber that the drain gave up on as quiet or closed.
    pub lost: u64,
    /// Owed and not delivered to a subscriber still connected when the drain cap ended,
    /// while deliveries were still arriving: neither delivered nor lost (the verdict is
    /// "incomplete"). `delivered + lost + still_arriving == expected`.
    pub still_arriving: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Of `lost`, the messages a subscriber missed while later messages of the same publisher
    /// kept reaching it: the window (256 messages) slid past them unreceived and they never
    /// came, on a subscriber whose connection was never interrupted. The broker dropped them
    /// from the middle of a stream it went on delivering, as a per-subscriber queue limit does
    /// when a subscriber falls behind. Counted for runs without a stats reset and without a
    /// shared group (whose members see gaps by design); 0 otherwise. See [`Self::hint`].
    pub skipped: u64,
    /// Subscribers audited (the ones that got their SUBACK).
    pub subscribers: u32,
    /// Publish QoS and subscription QoS; deliveries happen at the lower of the two.
    pub publish_qos: u8,
    pub subscribe_qos: u8,
    pub shared: bool,
    /// The counts so far of a test still running (the web UI, `/metrics`): nothing is called
    /// lost yet, and `still_arriving` holds what is owed and not delivered so far.
    pub running: bool,
}

/// What a run's audit covers, known before it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditShape {
    pub subscribers: u32,
    pub publish_qos: u8,
    pub subscribe_qos: u8,
    pub shared: bool,
}

impl AuditShape {
    /// An empty audit of this shape.
    pub fn empty(self) -> AuditSummary {
        AuditSummary {
            subscribers: self.subscribers,
            publish_qos: self.publish_qos,
            subscribe_qos: self.subscribe_qos,
            shared: self.shared,
            ..AuditSummary::default()
        }
    }

    /// The running audit from the workers' counts: every subscriber (or the shared group
    /// once) is owed each counted publish.
    pub fn running(self, counts: LiveAudit) -> AuditSummary {
        let owed_per_publish = match self.shared {
            true => 1,
            false => u64::from(self.subscribers),
        };
        let expected = counts.published * owed_per_publish;
        AuditSummary {
            published: counts.published,
            expected,
            delivered: counts.delivered,
            still_arriving: expected.saturating_sub(counts.delivered),
            duplicated: counts.duplicated,
            reordered: counts.reordered,
            running: true,
            ..self.empty()
        }
    }
}

impl AuditSummary {
    /// `ok`, `failed` (lost or duplicated messages), or `incomplete` (nothing lost or
    /// duplicated so far, but messages were still arriving when the drain cap ended);
    /// `running` while the test goes on.
    pub fn verdict(&self) -> &'static str {
        if self.running {
            "running"
        } else if self.lost > 0 || self.duplicated > 0 {
            "failed"
        } else if self.still_arriving > 0 {
            "incomplete"
        } else {
            "ok"
        }
    }

    /// Whether the run's exit code must say the audit did not pass (see `report::exit_code`).
    pub fn passed(&self) -> bool {
        self.verdict() == "ok"
    }

    /// `Delivery audit: 4 published, 8 expected (2 subscribers), 8 delivered, 0 lost,
    /// 0 duplicated, 0 out of order: OK`; ends `: incomplete: N still arriving when the drain
    /// cap ended` when that is all that is wrong, `: FAILED; N still arriving ...` otherwise.
    pub fn verdict_line(&self) -> String {
        if self.running {
            return self.running_line();
        }
        let arriving = format!(
            "{} still arriving when the drain cap ended",
            self.still_arriving
        );
        let verdict = match (self.verdict(), self.still_arriving) {
            ("ok", _) => "OK".to_string(),
            ("incomplete", _) => format!("incomplete: {arriving}"),
            (_, 0) => "FAILED".to_string(),
            _ => format!("FAILED; {arriving}"),
        };
        format!(
            "Delivery audit: {} published, {} expected {}, {} delivered, {} lost, {} duplicated, {} out of order: {verdict}",
            self.published,
            self.expected,
            self.audience(),
            self.delivered,
            self.lost,
            self.duplicated,
            self.reordered,
        )
    }

    /// `Delivery audit so far: 40 published, 80 expected (2 subscribers), 78 delivered,
    /// 2 not yet delivered, 0 duplicated, 0 out of order`.
    fn running_line(&self) -> String {
        format!(
            "Delivery audit so far: {} published, {} expected {}, {} delivered, {} not yet delivered, {} duplicated, {} out of order",
            self.published,
            self.expected,
            self.audience(),
            self.delivered,
            self.still_arriving,
            self.duplicated,
            self.reordered,
        )
    }

    /// Why messages were lost, when the audit has the evidence: lost messages that were
    /// skipped (see [`Self::skipped`]) while later ones reached the same subscriber. Then the
    /// likely cause is the broker's per-subscriber queue limit, named for the brokers that
    /// have one. None for a run that lost nothing, or whose losses were not skipped ones (a
    /// subscriber that lost its connection, or a tail that never came).
    pub fn hint(&self) -> Option<String> {
        if self.running || self.lost == 0 || self.skipped == 0 {
            return None;
        }
        Some(format!(
            "Hint: {} of the {} lost messages were skipped: later messages of the same publisher kept reaching the same subscriber (connected throughout), so the broker dropped what it had queued for subscribers that fell behind. The likely limit is the broker's per-subscriber queue: mosquitto max_queued_messages (1000 by default, 0 lifts it), EMQX mqtt.max_mqueue_len (1000 by default). Raise it, or publish slower (--interval) than subscribers read.",
            self.skipped, self.lost
        ))
    }

    /// `(2 subscribers, shared)`: who the audit expected to receive.
    fn audience(&self) -> String {
        let plural = if self.subscribers == 1 { "" } else { "s" };
        let shared = if self.shared { ", shared" } else { "" };
        format!("({} subscriber{plural}{shared})", self.subscribers)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "published": self.published,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "still_arriving": self.still_arriving,
            "verdict": self.verdict(),
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "skipped": self.skipped,
            "hint": self.hint(),
            "subscribers": self.subscribers,
            "shared": self.shared,
            "publish_qos": self.publish_qos,
            "subscribe_qos": self.subscribe_qos,
            "delivery_qos": self.publish_qos.min(self.subscribe_qos),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_audit_owes_each_publish_to_every_subscriber_and_calls_nothing_lost() {
        let shape = AuditShape {
            subscribers: 2,
            publish_qos: 1,
            subscribe_qos: 1,
            shared: false,
        };
        let counts = LiveAudit {
            cut_ns: 0,
            published: 40,
            delivered: 78,
            duplicated: 0,
            reordered: 1,
        };
        let audit = shape.running(counts);
        assert_eq!(
            (audit.expected, audit.still_arriving, audit.lost),
            (80, 2, 0)
        );
        assert_eq!(audit.verdict(), "running");
        assert_eq!(
            audit.verdict_line(),
            "Delivery audit so far: 40 published, 80 expected (2 subscribers), 78 delivered, 2 not yet delivered, 0 duplicated, 1 out of order"
        );
        let shared = AuditShape {
            shared: true,
            ..shape
        };
        assert_eq!(shared.running(counts).expected, 40);
    }

    fn failed(lost: u64, skipped: u64) -> AuditSummary {
        AuditSummary {
            published: 100_000,
            expected: 200_000,
            delivered: 200_000 - lost,
            lost,
            skipped,
            subscribers: 2,
            publish_qos: 1,
            subscribe_qos: 1,
            ..AuditSummary::default()
        }
    }

    #[test]
    fn lost_messages_skipped_by_the_broker_get_a_hint_naming_its_queue_limit() {
        let audit = failed(134_157, 130_000);
        let hint = audit.hint().expect("a hint");
        assert!(
            hint.starts_with("Hint: 130000 of the 134157 lost messages were skipped"),
            "{hint}"
        );
        assert!(hint.contains("mosquitto max_queued_messages"), "{hint}");
        assert!(hint.contains("EMQX mqtt.max_mqueue_len"), "{hint}");
        assert_eq!(audit.to_json()["hint"], serde_json::json!(hint));
        assert_eq!(audit.to_json()["skipped"], 130_000);
    }

    #[test]
    fn no_hint_without_loss_or_without_skipped_messages() {
        for audit in [failed(0, 0), failed(10, 0)] {
            assert_eq!(audit.hint(), None, "{audit:?}");
            assert!(audit.to_json()["hint"].is_null());
        }
        let running = AuditSummary {
            running: true,
            ..failed(10, 10)
        };
        assert_eq!(running.hint(), None);
    }
}
