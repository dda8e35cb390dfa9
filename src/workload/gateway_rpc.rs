//! Gateway RPC: a gateway answers server-side RPC for the devices it carries, as ThingsBoard's
//! gateway API has it (`--gateway --rpc-responder`).
//!
//! ThingsBoard sends a gateway device's RPC to its gateway on `v1/gateway/rpc`:
//! `{"device":"DW00000001","data":{"id":42,"method":"setGpio","params":{"pin":1}}}`, and reads
//! the answer on the same topic: `{"device":"DW00000001","id":42,"data":ANSWER}`. ANSWER is the
//! request's `params` by default, or the configured `rpc_response`, exactly as a device's
//! responder answers (`responder`). The gateway subscribes to `v1/gateway/rpc` once per
//! connection, after its CONNACK (MQTT 5: with No Local).
//!
//! Decisions:
//! - A request is a message without a top-level `id` whose `device` is a JSON string and whose
//!   `data` is an object with an `id` of 1 to 10 digits, a JSON integer with no leading zero
//!   (as for a device's RPC, [`MAX_REQUEST_ID_BYTES`]); `params` is read from `data`. A
//!   message with a top-level `id` is an answer, not a request: on a plain broker under MQTT
//!   3.1.1 the gateway receives its own answers back on `v1/gateway/rpc` (MQTT 5's No Local
//!   prevents it; ThingsBoard never sends them). Those are counted apart
//!   ([`GatewayOffer::OwnAnswer`]), never as requests.
//! - The device is looked up from its name as the request writes it (a JSON string, escapes
//!   and all): the name template's text around the number, the number in the template's
//!   width, and the number mapped back to this gateway's slot ([`GatewayDevices`]). A name
//!   written any other way, or for a device another gateway carries, is an unknown device:
//!   counted, not answered (ThingsBoard sends a gateway only its own devices' RPC). So the
//!   name copied into the answer, byte for byte, is always one of this gateway's names: at
//!   most 6 x [`MAX_DEVICE_NAME_BYTES`] + 2 bytes as JSON.
//! - The answer's `id` is the request's digits, copied; the answer goes into the
//!   connection's [`AnswerQueue`] with the device responder's bounds (64 answers, 16 KiB per
//!   connection, shared by the gateway's devices) and counters (answered, dropped,
//!   malformed), on the same `rpc-responder` row. A request that names no device, has no
//!   `data` object, a bad id, or params that cannot be delimited is malformed.
//!
//! Nothing is allocated per request: the request is scanned in place (`params`), and the
//! answer's frame is written into the queue piece by piece: the fixed text, the device name
//! and the id from the request, the answer's bytes.
//!
//! [`MAX_DEVICE_NAME_BYTES`]: super::gateway::MAX_DEVICE_NAME_BYTES
//! [`MAX_REQUEST_ID_BYTES`]: super::responder::MAX_REQUEST_ID_BYTES

use super::gateway::{DeviceLayout, GatewayPlan};
use super::params::find_members;
use super::responder::{id_ok, AnswerQueue, Malformed, Offer, ResponderPlan, QUEUE_BYTES};
use crate::mqtt::Version;

/// Where ThingsBoard sends a gateway its devices' RPC, and where the gateway answers.
pub const GATEWAY_RPC_TOPIC: &str = "v1/gateway/rpc";
/// Largest configured answer of a gateway: its frame, with the longest device name JSON can
/// write (6 bytes per byte of [`MAX_DEVICE_NAME_BYTES`], and quotes), the longest id and the
/// fixed text, must fit the queue.
///
/// [`MAX_DEVICE_NAME_BYTES`]: super::gateway::MAX_DEVICE_NAME_BYTES
pub const MAX_GATEWAY_RESPONSE_BYTES: usize =
    QUEUE_BYTES - (6 * super::gateway::MAX_DEVICE_NAME_BYTES + 2) - 64;

/// What became of a message on `v1/gateway/rpc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayOffer {
    /// A request: its answer is queued.
    Queued,
    /// A request: no room in the queue, not answered.
    Dropped,
    /// Not answerable: counted.
    Malformed(Malformed),
    /// A request for a device this gateway does not carry: counted, not answered.
    UnknownDevice,
    /// An answer (a top-level `id`): the gateway's own, sent back by a plain broker.
    OwnAnswer,
}

/// What a gateway RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message<'a> {
    Request {
        /// The device name as a JSON string, quotes included.
        device: &'a [u8],
        /// `data.id`'s digits.
        id: &'a [u8],
        /// `data.params`, if any.
        params: Option<&'a [u8]>,
    },
    Answer,
}

/// Read a message on `v1/gateway/rpc` (see the module documentation for what a request is).
fn read_message(payload: &[u8]) -> Result<Message<'_>, Malformed> {
    let keys: [&[u8]; 3] = [b"\"id\"", b"\"device\"", b"\"data\""];
    let [id, device, data] = find_members(payload, keys).map_err(Malformed::Params)?;
    if id.is_some() {
        return Ok(Message::Answer);
    }
    let device = device
        .filter(|d| d.first() == Some(&b'"'))
        .ok_or(Malformed::NoDevice)?;
    let data = data
        .filter(|d| d.first() == Some(&b'{'))
        .ok_or(Malformed::NoData)?;
    let [id, params] = find_members(data, [b"\"id\"", b"\"params\""]).map_err(Malformed::Params)?;
    // Copied into the answer as a JSON number: no leading zero.
    let number = |id: &[u8]| id_ok(id) && (id.len() == 1 || id[0] != b'0');
    let id = id.filter(|id| number(id)).ok_or(Malformed::BadId)?;
    Ok(Message::Request { device, id, params })
}

/// Which of a gateway's devices a name is: the name template's parts as JSON writes them,
/// and how device numbers map to this gateway's slots. Built once per gateway connection.
#[derive(Debug, Clone)]
pub struct GatewayDevices {
    /// The template's text before the number, JSON-escaped, without quotes.
    prefix: Box<[u8]>,
    /// The text after the number, likewise.
    suffix: Box<[u8]>,
    /// Zero-padded width of the number (0: as many digits as it has).
    width: usize,
    device_start: u64,
    layout: DeviceLayout,
    devices: u32,
    /// This gateway's client index.
    gateway: u64,
}

impl GatewayDevices {
    /// The devices of gateway `gateway` (its global client index) under `plan`.
    pub fn new(plan: &GatewayPlan, gateway: u64) -> GatewayDevices {
        let (prefix, width, suffix) = plan.device_name.parts();
        GatewayDevices {
            prefix: json_inner(prefix),
            suffix: json_inner(suffix),
            width,
            device_start: plan.device_start,
            layout: plan.layout,
            devices: plan.devices_per_gateway,
            gateway,
        }
    }

    /// The slot of the device named `name` (a JSON string, quotes included, as a request
    /// writes it), or None when this gateway carries no device of that name.
    pub fn slot_of(&self, name: &[u8]) -> Option<u32> {
        let inner = name.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        let digits = inner
            .strip_prefix(&self.prefix[..])?
            .strip_suffix(&self.suffix[..])?;
        let number = read_number(digits)?;
        // Only the template's own writing: no more zeros than its width pads with.
        let natural = number.checked_ilog10().map_or(1, |log| log as usize + 1);
        if digits.len() != natural.max(self.width) {
            return None;
        }
        let index = number.checked_sub(self.device_start)?;
        let slot = match self.layout {
            DeviceLayout::Interleaved { gateways } => {
                (index.checked_rem(gateways)? == self.gateway).then_some(index / gateways)?
            }
            DeviceLayout::Blocks => {
                let devices = u64::from(self.devices);
                (index.checked_div(devices)? == self.gateway).then_some(index % devices)?
            }
        };
        u32::try_from(slot).ok().filter(|&slot| slot < self.devices)
    }
}

/// `text` as JSON writes it inside a string (escaped, no quotes).
fn json_inner(text: &str) -> Box<[u8]> {
    let quoted = serde_json::to_vec(text).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .into()
}

/// 1 to 20 ASCII digits as a number; None for anything else or beyond `u64::MAX`.
fn read_number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A message arrived on `v1/gateway/rpc` at `now_ns`: a request of one of `devices` gets its
/// answer queued in `queue` (see the module documentation for everything else).
pub fn offer(
    queue: &mut AnswerQueue,
    plan: &ResponderPlan,
    version: Version,
    devices: &GatewayDevices,
    payload: &[u8],
    now_ns: u64,
) -> GatewayOffer {
    let (device, id, params) = match read_message(payload) {
        Ok(Message::Request { device, id, params }) => (device, id, params),
        Ok(Message::Answer) => return GatewayOffer::OwnAnswer,
        Err(why) => return GatewayOffer::Malformed(why),
    };
    if devices.slot_of(device).is_none() {
        return GatewayOffer::UnknownDevice;
    }
    let answer: [&[u8]; 7] = [
        b"{\"device\":",
        device,
        b",\"id\":",
        id,
        b",\"data\":",
        plan.echo(params),
        b"}",
    ];
    let topic = [GATEWAY_RPC_TOPIC.as_bytes(), b""];
    match queue.enqueue(version, topic, &answer, now_ns, plan.delay_ns()) {
        Offer::Queued => GatewayOffer::Queued,
        Offer::Dropped => GatewayOffer::Dropped,
        Offer::Malformed(why) => GatewayOffer::Malformed(why),
    }
}

#[cfg(test)]
mod tests;
