//! The RPC responder: devices answer server-side RPC, as ThingsBoard devices do.
//!
//! ThingsBoard sends a server-side RPC to a device on `v1/devices/me/rpc/request/$id` and
//! reads the device's answer on `v1/devices/me/rpc/response/$id`. With `--rpc-responder`
//! every device subscribes to `v1/devices/me/rpc/request/+` when it connects and answers each
//! request after `rpc_response_delay`, with `rpc_response`, or by default with the request's
//! own `params` value (found by [`find_params`] and copied, never parsed into values; `{}`
//! when the request has none).
//!
//! Answers wait in the connection's [`AnswerQueue`] until they are due. The delay is one per
//! run, so answers fall due in the order their requests came: the queue is a FIFO of finished
//! frames. Bounds and decisions:
//! - At most [`MAX_QUEUED_ANSWERS`] answers and [`QUEUE_BYTES`] bytes of frames wait per
//!   connection. A request beyond either is dropped and counted (`dropped`): it is never
//!   queued elsewhere nor waited for, so a flood of requests neither grows memory nor
//!   delays the device's own publishes. The buffer is allocated at the connection's first
//!   request, never grown.
//! - A request whose id is not 1 to [`MAX_REQUEST_ID_BYTES`] digits (ThingsBoard's ids are
//!   32-bit integers), or whose params cannot be delimited (not a JSON object, truncated, or
//!   deeper than [`crate::workload::params::MAX_DEPTH`] levels) is `malformed`: counted, not
//!   answered.
//! - Answers are QoS 0 PUBLISH frames, so they take no packet id from the device's in-flight
//!   window and need no acknowledgement (ThingsBoard takes RPC responses at QoS 0 or 1).
//! - Answers still queued when the connection closes, or when the run ends, are dropped
//!   (counted apart from those dropped at a full queue).
//!
//! So every request received is, by the end of a run, answered, dropped or malformed: the
//! engine records each on the `rpc-responder` row (answered: a success timed from the
//! request's arrival to its answer handed to the socket; the others failures by name).
//!
//! An answer's frame is written once, into the queue, when its request arrives: the fixed
//! header, the response topic's prefix with the request's id, and the payload bytes (the
//! configured answer, serialised once at start, or the request's params). Nothing is
//! allocated per request. A gateway's answers to its devices' RPC (`gateway_rpc`) go through
//! the same queue, with the same bounds, one queue per gateway connection.

use std::time::Duration;

use super::answers::RPC_RESPONSE_PREFIX;
use super::params::{find_params, ParamsError};
use crate::mqtt::Version;

/// Where ThingsBoard sends server-side RPC to a device; subscribe with `+` appended.
pub const RPC_REQUEST_PREFIX: &str = "v1/devices/me/rpc/request/";
/// The responder's subscription.
pub const RPC_REQUEST_FILTER: &str = "v1/devices/me/rpc/request/+";
/// Most answers waiting on one connection.
pub const MAX_QUEUED_ANSWERS: usize = 64;
/// Most bytes of answer frames waiting on one connection.
pub const QUEUE_BYTES: usize = 16 * 1024;
/// Longest request id (digits): ThingsBoard's ids are 32-bit integers.
pub const MAX_REQUEST_ID_BYTES: usize = 10;
/// The answer to a request without `params` when echoing.
pub const NO_PARAMS_ANSWER: &[u8] = b"{}";
/// Largest configured answer: its frame (with the longest topic) must fit the queue.
pub const MAX_RESPONSE_BYTES: usize = QUEUE_BYTES - 64;

/// What the responder answers with (`rpc_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponsePayload {
    /// The request's `params` value, byte for byte (the default).
    EchoParams,
    /// This JSON, serialised once; `source` names it (a file, or "inline JSON").
    Fixed { source: String, json: Box<[u8]> },
}

impl ResponsePayload {
    /// As the effective configuration shows it.
    pub fn describe(&self) -> &str {
        match self {
            ResponsePayload::EchoParams => "echo params",
            ResponsePayload::Fixed { source, .. } => source,
        }
    }
}

/// `--rpc-responder` with its delay and answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderPlan {
    /// Each answer is written this long after its request arrived (`rpc_response_delay`).
    pub delay: Duration,
    pub response: ResponsePayload,
}

impl ResponderPlan {
    pub(super) fn delay_ns(&self) -> u64 {
        u64::try_from(self.delay.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The answer to a request whose params (when echoing) are `params`: the configured
    /// answer, the params themselves, or [`NO_PARAMS_ANSWER`] when there are none.
    pub(super) fn echo<'a>(&'a self, params: Option<&'a [u8]>) -> &'a [u8] {
        match &self.response {
            ResponsePayload::Fixed { json, .. } => json,
            ResponsePayload::EchoParams => params.unwrap_or(NO_PARAMS_ANSWER),
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Its answer is queued.
    Queued,
    /// No room: not answered.
    Dropped,
    /// Not answerable: counted.
    Malformed(Malformed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The id after the request prefix (a gateway request: `data.id`) is not 1 to 10 digits.
    BadId,
    Params(ParamsError),
    /// A gateway request whose `device` is not a JSON string.
    NoDevice,
    /// A gateway request whose `data` is not a JSON object.
    NoData,
}

impl Malformed {
    pub fn describe(self) -> &'static str {
        match self {
            Malformed::BadId => "its id is not 1 to 10 digits",
            Malformed::Params(e) => e.describe(),
            Malformed::NoDevice => "its device is not a JSON string",
            Malformed::NoData => "its data is not a JSON object",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Due {
    due_ns: u64,
    /// When the request arrived: the answer's time starts here.
    arrived_ns: u64,
    bytes: u32,
}

/// The queued frames: `frames[head..]` holds `len` frames back to back, the oldest first;
/// `due` is a ring of their due times and lengths starting at `first`.
struct Queued {
    frames: Vec<u8>,
    head: usize,
    due: [Due; MAX_QUEUED_ANSWERS],
    first: usize,
    len: usize,
}

/// One connection's answers waiting to be written (see the module comment for the bounds).
#[derive(Default)]
pub struct AnswerQueue {
    queued: Option<Box<Queued>>,
}

impl AnswerQueue {
    /// A request arrived at `now_ns`: `id` is the topic's text after [`RPC_REQUEST_PREFIX`].
    pub fn offer(
        &mut self,
        plan: &ResponderPlan,
        version: Version,
        id: &[u8],
        request: &[u8],
        now_ns: u64,
    ) -> Offer {
        match answer_body(plan, id, request) {
            Ok(body) => {
                let topic = [RPC_RESPONSE_PREFIX.as_bytes(), id];
                self.enqueue(version, topic, &[body], now_ns, plan.delay_ns())
            }
            Err(why) => Offer::Malformed(why),
        }
    }

    /// Queue the answer on `topic` (its two pieces back to back) whose payload is `payload`'s
    /// pieces back to back, due `delay_ns` after `arrived_ns`; dropped at the queue's bounds.
    pub(super) fn enqueue(
        &mut self,
        version: Version,
        topic: [&[u8]; 2],
        payload: &[&[u8]],
        arrived_ns: u64,
        delay_ns: u64,
    ) -> Offer {
        let topic_len = topic[0].len() + topic[1].len();
        let payload_len = payload.iter().map(|part| part.len()).sum();
        let frame_bytes = version.answer_len(topic_len, payload_len);
        let q = self.queued.get_or_insert_with(|| {
            Box::new(Queued {
                frames: Vec::with_capacity(QUEUE_BYTES),
                head: 0,
                due: [Due::default(); MAX_QUEUED_ANSWERS],
                first: 0,
                len: 0,
            })
        });
        let held = q.frames.len() - q.head;
        if q.len == MAX_QUEUED_ANSWERS || held + frame_bytes > QUEUE_BYTES {
            return Offer::Dropped;
        }
        if q.frames.len() + frame_bytes > QUEUE_BYTES {
            // Move the queued frames to the front: the room was there, behind the head.
            q.frames.copy_within(q.head.., 0);
            q.frames.truncate(held);
            q.head = 0;
        }
        version.encode_answer_parts(&mut q.frames, topic, payload);
        let slot = (q.first + q.len) % MAX_QUEUED_ANSWERS;
        q.due[slot] = Due {
            due_ns: arrived_ns.saturating_add(delay_ns),
            arrived_ns,
            bytes: frame_bytes as u32,
        };
        q.len += 1;
        Offer::Queued
    }

    /// Answers waiting.
    pub fn len(&self) -> usize {
        self.queued.as_ref().map_or(0, |q| q.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the oldest answer is due; None when none waits.
    pub fn next_due_ns(&self) -> Option<u64> {
        let q = self.queued.as_ref()?;
        (q.len > 0).then(|| q.due[q.first].due_ns)
    }

    /// The oldest answer's frame and when its request arrived, if it is due by `now_ns`.
    /// Write it, then [`AnswerQueue::pop`].
    pub fn due_frame(&self, now_ns: u64) -> Option<(&[u8], u64)> {
        let q = self.queued.as_ref()?;
        let due = q.due[q.first];
        if q.len == 0 || due.due_ns > now_ns {
            return None;
        }
        Some((
            &q.frames[q.head..q.head + due.bytes as usize],
            due.arrived_ns,
        ))
    }

    /// The oldest answer was written: let it go.
    pub fn pop(&mut self) {
        let Some(q) = self.queued.as_mut().filter(|q| q.len > 0) else {
            return;
        };
        q.head += q.due[q.first].bytes as usize;
        q.first = (q.first + 1) % MAX_QUEUED_ANSWERS;
        q.len -= 1;
        if q.len == 0 {
            q.frames.clear();
            q.head = 0;
        }
    }

    /// The connection closed (or the run ended): what is queued is dropped; returns how many
    /// answers were. The buffer is kept for the next connection of this client.
    pub fn close(&mut self) -> usize {
        let Some(q) = self.queued.as_mut() else {
            return 0;
        };
        let dropped = q.len;
        q.frames.clear();
        q.head = 0;
        q.first = 0;
        q.len = 0;
        dropped
    }
}

/// The answer's payload for a request, or why it cannot be answered.
fn answer_body<'a>(
    plan: &'a ResponderPlan,
    id: &[u8],
    request: &'a [u8],
) -> Result<&'a [u8], Malformed> {
    if !id_ok(id) {
        return Err(Malformed::BadId);
    }
    match &plan.response {
        ResponsePayload::Fixed { json, .. } => Ok(json),
        ResponsePayload::EchoParams => match find_params(request) {
            Ok(params) => Ok(plan.echo(params)),
            Err(e) => Err(Malformed::Params(e)),
        },
    }
}

/// A request id: 1 to [`MAX_REQUEST_ID_BYTES`] digits.
pub(super) fn id_ok(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len()) && id.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::Packet;

    fn echo(delay_ms: u64) -> ResponderPlan {
        ResponderPlan {
            delay: Duration::from_millis(delay_ms),
            response: ResponsePayload::EchoParams,
        }
    }

    /// (topic, payload) of a frame, decoded by the codec.
    fn published(version: Version, frame: &[u8]) -> (String, String) {
        let (packet, used) = version.decode(frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        match packet {
            Packet::Publish {
                topic,
                payload,
                qos,
                ..
            } => {
                assert_eq!(qos, 0);
                (
                    String::from_utf8(topic.to_vec()).unwrap(),
                    String::from_utf8(payload.to_vec()).unwrap(),
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_is_answered_on_its_response_topic_with_its_params_after_the_delay() {
        for version in [Version::V311, Version::V5] {
            let plan = echo(20);
            let mut queue = AnswerQueue::default();
            let request = br#"{"method":"setGpio","params":{"pin":4,"value":1}}"#;
            assert_eq!(
                queue.offer(&plan, version, b"17", request, 1_000),
                Offer::Queued
            );
            assert_eq!(queue.next_due_ns(), Some(20_001_000));
            assert_eq!(queue.due_frame(20_000_999), None);
            let (frame, arrived_ns) = queue.due_frame(20_001_000).unwrap();
            assert_eq!(arrived_ns, 1_000);
            assert_eq!(
                published(version, frame),
                (
                    "v1/devices/me/rpc/response/17".to_string(),
                    r#"{"pin":4,"value":1}"#.to_string()
                )
            );
            queue.pop();
            assert!(queue.is_empty());
            assert_eq!(queue.next_due_ns(), None);
        }
    }

    #[test]
    fn a_configured_answer_replaces_the_echo_and_a_request_without_params_gets_an_empty_object() {
        let fixed = ResponderPlan {
            delay: Duration::ZERO,
            response: ResponsePayload::Fixed {
                source: "inline JSON".into(),
                json: br#"{"ok":true}"#.to_vec().into_boxed_slice(),
            },
        };
        let mut queue = AnswerQueue::default();
        queue.offer(&fixed, Version::V311, b"1", b"not even json", 0);
        let (_, payload) = published(Version::V311, queue.due_frame(0).unwrap().0);
        assert_eq!(payload, r#"{"ok":true}"#);
        queue.pop();
        queue.offer(&echo(0), Version::V311, b"2", br#"{"method":"reboot"}"#, 0);
        let (topic, payload) = published(Version::V311, queue.due_frame(0).unwrap().0);
        assert_eq!(
            (topic.as_str(), payload.as_str()),
            ("v1/devices/me/rpc/response/2", "{}")
        );
    }

    #[test]
    fn bad_ids_and_undelimited_params_are_malformed_and_not_answered() {
        let plan = echo(0);
        let mut queue = AnswerQueue::default();
        for id in [&b""[..], b"12345678901", b"1a", b"+", b"1/2"] {
            assert_eq!(
                queue.offer(&plan, Version::V311, id, br#"{"params":1}"#, 0),
                Offer::Malformed(Malformed::BadId),
                "{id:?}"
            );
        }
        assert_eq!(
            queue.offer(&plan, Version::V311, b"3", b"[1,2]", 0),
            Offer::Malformed(Malformed::Params(ParamsError::NotAnObject))
        );
        assert!(queue.is_empty());
        assert_eq!(
            Malformed::Params(ParamsError::NotAnObject).describe(),
            "payload is not a JSON object"
        );
    }

    #[test]
    fn a_flood_beyond_sixty_four_answers_is_dropped_in_bounded_memory() {
        let plan = echo(1_000);
        let mut queue = AnswerQueue::default();
        let mut dropped = 0;
        for i in 0..10_000u32 {
            let id = i.to_string();
            let offer = queue.offer(&plan, Version::V311, id.as_bytes(), br#"{"params":{}}"#, 0);
            dropped += u32::from(offer == Offer::Dropped);
        }
        assert_eq!(queue.len(), MAX_QUEUED_ANSWERS);
        assert_eq!(dropped, 10_000 - MAX_QUEUED_ANSWERS as u32);
        // The first 64 are the ones kept, in order.
        let (topic, _) = published(Version::V311, queue.due_frame(u64::MAX).unwrap().0);
        assert_eq!(topic, "v1/devices/me/rpc/response/0");
    }

    #[test]
    fn answers_beyond_the_queue_bytes_are_dropped_and_the_room_behind_the_head_is_reused() {
        let plan = echo(0);
        let mut queue = AnswerQueue::default();
        let big = format!(r#"{{"params":"{}"}}"#, "p".repeat(6_000));
        let offer = |queue: &mut AnswerQueue, id: &[u8], request: &str| {
            queue.offer(&plan, Version::V311, id, request.as_bytes(), 0)
        };
        assert_eq!(offer(&mut queue, b"1", &big), Offer::Queued);
        assert_eq!(offer(&mut queue, b"2", &big), Offer::Queued);
        // A third would pass 16 KiB.
        assert_eq!(offer(&mut queue, b"3", &big), Offer::Dropped);
        let capacity = queue.queued.as_ref().unwrap().frames.capacity();
        // Writing the first frees its room; the next frame goes in after moving the second.
        queue.pop();
        assert_eq!(offer(&mut queue, b"4", &big), Offer::Queued);
        let mut topics = Vec::new();
        while let Some((frame, _)) = queue.due_frame(0) {
            topics.push(published(Version::V311, frame).0);
            queue.pop();
        }
        assert_eq!(
            topics,
            [
                "v1/devices/me/rpc/response/2",
                "v1/devices/me/rpc/response/4"
            ]
        );
        assert_eq!(queue.queued.as_ref().unwrap().frames.capacity(), capacity);
        let too_big = format!(r#"{{"params":"{}"}}"#, "p".repeat(QUEUE_BYTES));
        assert_eq!(offer(&mut queue, b"5", &too_big), Offer::Dropped);
    }

    #[test]
    fn answers_queued_when_the_connection_closes_are_dropped_and_counted_once() {
        let plan = echo(50);
        let mut queue = AnswerQueue::default();
        for id in [b"1", b"2", b"3"] {
            queue.offer(&plan, Version::V5, id, br#"{"params":[1]}"#, 0);
        }
        assert!(queue.due_frame(50_000_000).is_some());
        queue.pop();
        assert_eq!(queue.close(), 2);
        assert!(queue.is_empty());
        assert_eq!(queue.due_frame(u64::MAX), None);
        assert_eq!(queue.close(), 0);
    }
}
