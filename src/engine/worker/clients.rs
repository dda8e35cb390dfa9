//! Building clients at start-up: each publisher's frames, source address and client id,
//! and the budget chunk, all fixed before the loop starts. `client_id_of` and
//! `subscriber_id_of` are re-exported as `engine::worker::{client_id_of, subscriber_id_of}`.

use std::net::SocketAddr;

use super::BUDGET_CHUNK_MAX;
use crate::engine::conn::{Conn, Role};
use crate::payload::{self, ClientVars};
use crate::plan::Plan;

/// A publisher connection with its frames, built once.
pub(super) fn publisher(plan: &Plan, index: u64, addrs: &[SocketAddr]) -> Conn {
    let client_id = client_id_of(plan, index);
    let vars = ClientVars {
        index,
        token: plan.token_for(index),
        client_id: &client_id,
    };
    let frames = payload::build_frames(plan, &vars);
    let addr = addrs[(index % addrs.len() as u64) as usize];
    let mut conn = Conn::new(
        index,
        addr,
        source_of(plan, index),
        frames,
        plan.max_inflight,
    );
    let matches =
        plan.sub_users > 0 && plan.subscribers_receive(&payload::render(&plan.topic, &vars));
    conn.role = Role::Publisher { matches };
    conn
}

/// `--bind`: the source address of client `index` (None: the OS chooses).
pub(super) fn source_of(plan: &Plan, index: u64) -> Option<std::net::IpAddr> {
    (!plan.bind.is_empty()).then(|| plan.bind[(index % plan.bind.len() as u64) as usize])
}

/// Resolve the client id template for client `index`.
pub fn client_id_of(plan: &Plan, index: u64) -> String {
    let vars = ClientVars {
        index,
        token: plan.token_for(index),
        client_id: "",
    };
    payload::render(&plan.client_id, &vars)
}

pub(super) fn budget_chunk(plan: &Plan) -> u64 {
    let per_user = plan.messages.unwrap_or(u64::MAX) / (plan.users as u64 * 8).max(1);
    per_user.clamp(1, BUDGET_CHUNK_MAX)
}

/// Client id of subscriber `index`: the client id template's id for that index with a
/// `-sub` suffix, so it never collides with a publisher's.
pub fn subscriber_id_of(plan: &Plan, index: u64) -> String {
    format!("{}-sub", client_id_of(plan, index))
}
