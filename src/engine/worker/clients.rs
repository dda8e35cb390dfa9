//! Building clients at start-up: each publisher's frames, source address and client id,
//! and its share of `--messages`, all fixed before the loop starts. `client_id_of` and
//! `subscriber_id_of` are re-exported as `engine::worker::{client_id_of, subscriber_id_of}`.

use std::net::SocketAddr;

use crate::engine::conn::{Conn, Role};
use crate::payload::Payload;
use crate::payload::{self, ClientVars};
use crate::plan::Plan;
use crate::workload::answers::{DeviceAnswers, RequestKind};
use crate::workload::gateway::{DeviceTurns, GatewayFrames, GatewaySession, PointKind};
use crate::workload::gateway_rpc::GatewayDevices;
use crate::workload::pace::PaceRng;
use crate::workload::stream::{answer_prefix_of, StreamKind, Streams};

/// A publisher connection with its streams' frames, built once.
pub(super) fn publisher(plan: &Plan, index: u64, addrs: &[SocketAddr]) -> Conn {
    let client_id = client_id_of(plan, index);
    let token = plan.token_for(index);
    let vars = ClientVars {
        index,
        token: &token,
        client_id: &client_id,
    };
    let streams = Streams::build(plan, &vars);
    let addr = addrs[(index % addrs.len() as u64) as usize];
    let matches = streams.any_matches();
    let mut conn = Conn::new(
        index,
        addr,
        source_of(plan, index),
        streams,
        plan.max_inflight,
    );
    conn.role = Role::Publisher { matches };
    conn.gateway = gateway_session(plan, &vars);
    conn.answers = device_answers(plan, &vars);
    conn
}

/// `--gateway`: the client's gateway frames (every device's name and points) and device
/// clocks, built once.
fn gateway_session(plan: &Plan, vars: &ClientVars<'_>) -> Option<Box<GatewaySession>> {
    let gateway = plan.gateway.as_ref()?;
    let streams: Vec<(PointKind, &Payload, u8)> = plan
        .streams
        .iter()
        .map(|s| {
            let kind = match s.kind {
                StreamKind::Attributes => PointKind::Attributes,
                _ => PointKind::Telemetry,
            };
            (kind, &s.payload, s.qos)
        })
        .collect();
    let objects: Vec<u32> = plan
        .streams
        .iter()
        .map(|s| s.payload.len() as u32)
        .collect();
    let frames = GatewayFrames::build(plan, gateway, vars, &streams);
    // Its own generator (the streams' draws stay theirs), seeded like them per client.
    let rng = PaceRng::for_client(plan.seed ^ GATEWAY_SEED_SALT, vars.index);
    // Under a global rate its devices are among the rate's (`workload::gateway::turns`).
    let turns = plan.rate.as_ref().map(|_| {
        let (first_device, step) = gateway.device_numbering(vars.index);
        let weights: Vec<u32> = plan.streams.iter().map(|s| s.pace.weight()).collect();
        DeviceTurns::new(first_device, step, gateway.devices_per_gateway, &weights)
    });
    Some(Box::new(GatewaySession::new(
        frames,
        gateway.mode,
        &objects,
        rng,
        turns,
    )))
}

/// Mixed into the run's seed for the device clocks' random paces.
const GATEWAY_SEED_SALT: u64 = 0x6761_7465_7761_7921;

/// What a device listens to (its request streams' answers, server-side RPC with
/// `--rpc-responder`; a gateway: its devices' RPC), built once; None when it listens to
/// nothing.
fn device_answers(plan: &Plan, vars: &ClientVars<'_>) -> Option<Box<DeviceAnswers>> {
    if let Some(gateway) = plan.gateway.as_ref() {
        let responds = plan.rpc_responder.is_some() && !plan.connect_only;
        let devices = GatewayDevices::new(gateway, vars.index);
        return responds.then(|| Box::new(DeviceAnswers::for_gateway(devices)));
    }
    let routes: Vec<(String, RequestKind)> = plan
        .streams
        .iter()
        .filter_map(|spec| Some((answer_prefix_of(spec, vars)?, spec.kind.request_kind()?)))
        .collect();
    let responds = plan.rpc_responder.is_some();
    if plan.connect_only || (routes.is_empty() && !responds) {
        return None;
    }
    let timeout_ns = u64::try_from(plan.timeout.as_nanos()).unwrap_or(u64::MAX);
    Some(Box::new(DeviceAnswers::new(&routes, responds, timeout_ns)))
}

/// `--bind`: the source address of client `index` (None: the OS chooses).
pub(super) fn source_of(plan: &Plan, index: u64) -> Option<std::net::IpAddr> {
    (!plan.bind.is_empty()).then(|| plan.bind[(index % plan.bind.len() as u64) as usize])
}

/// Resolve the client id template for client `index`.
pub fn client_id_of(plan: &Plan, index: u64) -> String {
    let token = plan.token_for(index);
    let vars = ClientVars {
        index,
        token: &token,
        client_id: "",
    };
    payload::render(&plan.client_id, &vars)
}

/// Client `index`'s share of `--messages`: the limit is split over this process's users
/// exactly (remainders to the first), as `--shard` splits it over processes, so every user
/// publishes its part whatever the timing. `u64::MAX` without a limit.
pub(super) fn quota_of(plan: &Plan, index: u64) -> u64 {
    let Some(messages) = plan.messages else {
        return u64::MAX;
    };
    let users = plan.users.max(1);
    let local = (index - plan.client_index_offset) as u32;
    crate::shard::share_of(
        messages,
        crate::shard::Shard {
            index: local + 1,
            count: users,
        },
    )
}

/// Client id of subscriber `index`: the client id template's id for that index with a
/// `-sub` suffix, so it never collides with a publisher's. Empty when the template is (MQTT 5:
/// the broker assigns every id).
pub fn subscriber_id_of(plan: &Plan, index: u64) -> String {
    let id = client_id_of(plan, index);
    if id.is_empty() {
        return id;
    }
    format!("{id}-sub")
}
