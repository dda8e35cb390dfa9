//! What the broker says about itself in CONNACK (MQTT 5 properties; 3.1.1 has none, so the
//! defaults apply) and what the client sends about itself in CONNECT beyond 3.1.1.
//!
//! Kept apart from `connect` so the protocol's flow control (Receive Maximum, Server Keep
//! Alive) and the checks that a plan fits the broker (Maximum Packet Size, Maximum QoS, Topic
//! Alias Maximum, subscription features) read in one place, and fail at CONNACK, by name,
//! instead of as a broker disconnect later.

use super::Worker;
use crate::mqtt::v5::properties::Properties;
use crate::plan::Plan;
use crate::stats::Failure;

impl Worker {
    /// What an MQTT 5 CONNACK says about the server (3.1.1 has no properties: defaults).
    /// Receive Maximum caps the in-flight window, Server Keep Alive replaces ours; a plan the
    /// server cannot serve fails here, clearly, instead of by a disconnect later.
    pub(super) fn honour_connack(
        &mut self,
        ci: usize,
        server: &Properties<'_>,
    ) -> Result<(), Failure> {
        let plan = &self.plan;
        let c = &self.conns[ci];
        if let Some(maximum_qos) = server.maximum_qos {
            // The highest QoS a stream of this client publishes at.
            let wanted = match c.is_subscriber() {
                true => 0,
                false => (0..=2u8)
                    .rev()
                    .find(|q| c.qos_mask & 1 << q != 0)
                    .unwrap_or(0),
            };
            if wanted > maximum_qos {
                return Err(Failure::Unsupported("--qos above the broker's Maximum QoS"));
            }
        }
        if let Some(maximum_bytes) = server.maximum_packet_size {
            let frame_bytes = c.streams.largest_frame_bytes();
            if frame_bytes > maximum_bytes as usize {
                return Err(Failure::PacketTooLarge {
                    frame_bytes: u32::try_from(frame_bytes).unwrap_or(u32::MAX),
                    maximum_bytes,
                });
            }
        }
        if plan.v5.topic_alias && !c.is_subscriber() && server.topic_alias_maximum.unwrap_or(0) == 0
        {
            return Err(Failure::Unsupported(
                "--topic-alias, but the broker's Topic Alias Maximum is 0",
            ));
        }
        if c.is_subscriber() {
            check_subscription_support(plan, server)?;
        }
        let receive_maximum = server.receive_maximum.unwrap_or(u16::MAX);
        if server.receive_maximum.is_some() {
            self.control.note_receive_maximum(receive_maximum);
        }
        let c = &mut self.conns[ci];
        c.send_window = usize::from(plan.max_inflight.min(receive_maximum).max(1));
        c.keep_alive_s = server.server_keep_alive_s.unwrap_or(plan.keep_alive_s);
        if let Some(id) = server.assigned_client_identifier {
            // Once per connect, not per message; only when the client sent an empty id.
            c.assigned_client_id = Some(String::from_utf8_lossy(id).into());
        }
        Ok(())
    }
}

/// A subscriber's needs against the CONNACK's Wildcard/Shared Subscription Available and
/// Subscription Identifiers Available (absent: available, section 3.2.2.3).
fn check_subscription_support(plan: &Plan, server: &Properties<'_>) -> Result<(), Failure> {
    let filter = plan.sub_topic.as_str();
    if plan.shared_subscription() && server.shared_subscription_available == Some(false) {
        return Err(Failure::Unsupported(
            "a $share/ filter, but the broker has no shared subscriptions",
        ));
    }
    if (filter.contains('+') || filter.contains('#'))
        && server.wildcard_subscription_available == Some(false)
    {
        return Err(Failure::Unsupported(
            "a wildcard filter, but the broker has no wildcard subscriptions",
        ));
    }
    if plan.v5.subscription_identifier.is_some()
        && server.subscription_identifiers_available == Some(false)
    {
        return Err(Failure::Unsupported(
            "--subscription-id, but the broker has no subscription identifiers",
        ));
    }
    Ok(())
}

/// The client's MQTT 5 CONNECT user properties, templates resolved (empty for most runs).
pub(super) fn connect_properties(
    plan: &Plan,
    index: u64,
    client_id: &str,
) -> Vec<(String, String)> {
    if plan.v5.connect_user_properties.is_empty() {
        return Vec::new();
    }
    let vars = crate::payload::ClientVars {
        index,
        token: plan.token_for(index),
        client_id,
    };
    crate::payload::render_pairs(&plan.v5.connect_user_properties, &vars)
}
