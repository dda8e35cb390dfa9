//! Streams: what one user sends, as a list of (kind, topic, payload, QoS, pace), and each
//! stream compiled per client into the slot the engine schedules.
//!
//! Kinds and their default topics are ThingsBoard's device API: `telemetry`
//! (`v1/devices/me/telemetry`), `attributes` (`v1/devices/me/attributes`),
//! `attribute-request` and `rpc-call` (requests answered on a response topic), and `publish`,
//! any topic, which has no default. Each stream is its own row in every report, named by its
//! `name`, else its kind (ThingsBoard kinds) or its topic template (`publish`); the stream the
//! single-stream settings describe keeps the row name mqblast always gave the publishes,
//! `publish:{qos}:{topic}`, so outputs of runs without streams read as before.
//!
//! Under a global rate (`--rate`) the streams with a `weight` share the device's turns in the
//! rate's schedule: the worker sets the connection's next turn ([`Streams::set_rate_due`]),
//! and a smooth weighted round-robin (nginx's: each weighted stream gains its weight per turn,
//! the one with the most credit takes the turn and gives back the sum of the weights) picks the
//! stream that takes it. Over any run of turns each stream's count is within one of its exact
//! share, with no allocation and no randomness. Streams with their own pace keep it beside them.
//! A gateway connection's turns are its devices', shared per device (`workload::gateway`):
//! its slots only mirror the device clocks and take no connection-level turn.
//!
//! Bounds: at most [`MAX_STREAMS`] streams per user (a connection's slots are a boxed slice
//! scanned per send: 32 slots are a few cache lines), row names of at most
//! [`MAX_NAME_CHARS`] characters.

use std::path::Path;

use super::answers::{self, RequestKind, ID_DIGITS, ID_PLACEHOLDER};
use super::pace::{Pace, PaceRng};
use crate::payload::{self, ClientVars, Frame, FrameSpec, Payload};
use crate::plan::Plan;

/// Most streams one user may have.
pub const MAX_STREAMS: usize = 32;

/// Longest stream name (characters): a row name in tables, CSV and the web UI.
pub const MAX_NAME_CHARS: usize = 200;

/// What a stream is to ThingsBoard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Time series: `v1/devices/me/telemetry`.
    Telemetry,
    /// Client-side attributes: `v1/devices/me/attributes`.
    Attributes,
    /// Shared/client attribute request: `v1/devices/me/attributes/request/{id}`, answered on
    /// `v1/devices/me/attributes/response/{id}`.
    AttributeRequest,
    /// Client-side RPC: `v1/devices/me/rpc/request/{id}`, answered on
    /// `v1/devices/me/rpc/response/{id}`.
    RpcCall,
    /// Any topic (no default: the stream names it).
    Publish,
}

impl StreamKind {
    /// Every kind, in documentation order.
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Telemetry,
        StreamKind::Attributes,
        StreamKind::AttributeRequest,
        StreamKind::RpcCall,
        StreamKind::Publish,
    ];

    /// The kind as config.toml and `--stream` write it.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Telemetry => "telemetry",
            StreamKind::Attributes => "attributes",
            StreamKind::AttributeRequest => "attribute-request",
            StreamKind::RpcCall => "rpc-call",
            StreamKind::Publish => "publish",
        }
    }

    /// The kind named `text` (exactly as [`StreamKind::name`] writes it).
    pub fn parse(text: &str) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|kind| kind.name() == text)
    }

    /// ThingsBoard's topic for this kind; None for `publish`.
    pub fn default_topic(self) -> Option<&'static str> {
        match self {
            StreamKind::Telemetry => Some("v1/devices/me/telemetry"),
            StreamKind::Attributes => Some("v1/devices/me/attributes"),
            StreamKind::AttributeRequest => Some("v1/devices/me/attributes/request/{id}"),
            StreamKind::RpcCall => Some("v1/devices/me/rpc/request/{id}"),
            StreamKind::Publish => None,
        }
    }

    /// A request that waits for an answer (timed from the send to the answer, not the ack).
    pub fn expects_answer(self) -> bool {
        self.request_kind().is_some()
    }

    /// The kind of request this stream sends, if it sends requests (`workload::answers`).
    pub fn request_kind(self) -> Option<RequestKind> {
        match self {
            StreamKind::AttributeRequest => Some(RequestKind::Attributes),
            StreamKind::RpcCall => Some(RequestKind::Rpc),
            _ => None,
        }
    }
}

/// One stream of every user, validated (`config` builds it).
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub kind: StreamKind,
    /// Its row in every report (unique among the plan's rows).
    pub name: String,
    /// Topic template; per-client placeholders `{i}`, `{token}`, `{client_id}`.
    pub topic: String,
    pub payload: Payload,
    /// 0, 1 or 2.
    pub qos: u8,
    pub pace: Pace,
    /// Given as a `[[stream]]` table or `--stream`; false for the stream the single-stream
    /// settings (`topic`, `payload`, `qos`, `interval`) describe.
    pub declared: bool,
}

impl StreamPlan {
    /// The one stream of a run configured without streams: a `telemetry` stream with the
    /// row name publishes always had.
    pub fn single(topic: &str, payload: Payload, qos: u8, pace: Pace) -> StreamPlan {
        StreamPlan {
            kind: StreamKind::Telemetry,
            name: single_row_name(qos, topic),
            topic: topic.to_string(),
            payload,
            qos,
            pace,
            declared: false,
        }
    }

    /// The row name of a stream given no `name`: its kind for ThingsBoard's kinds, its topic
    /// template for `publish`.
    pub fn default_name(kind: StreamKind, topic: &str) -> String {
        match kind {
            StreamKind::Publish => topic.to_string(),
            kind => kind.name().to_string(),
        }
    }

    /// What the frames of this stream are built from.
    pub fn frame_spec(&self) -> FrameSpec<'_> {
        FrameSpec {
            topic: &self.topic,
            payload: &self.payload,
            qos: self.qos,
        }
    }
}

/// Each stream's share of a user's messages as its pace asks (mean rates over their sum);
/// None for all when a stream is unpaced (it takes whatever the window allows).
pub fn configured_shares(streams: &[StreamPlan]) -> Vec<Option<f64>> {
    let rates: Option<Vec<f64>> = streams.iter().map(|s| s.pace.mean_rate_per_s()).collect();
    let Some(rates) = rates else {
        return vec![None; streams.len()];
    };
    let sum: f64 = rates.iter().sum();
    rates
        .iter()
        .map(|rate| (sum > 0.0).then(|| rate / sum))
        .collect()
}

/// The row name of the single-stream settings, as Locust's MQTT users name publishes:
/// `publish:{qos}:{topic template}`.
pub fn single_row_name(qos: u8, topic: &str) -> String {
    format!("publish:{qos}:{topic}")
}

/// The end of an inline payload's source name (`stream 2 inline payload`).
pub const INLINE_PAYLOAD_SUFFIX: &str = " inline payload";

/// A stream's payload value: a preset name (`smart-meter`, `smart-tracker`, `industrial-plc`
/// with `datapoints` points, already checked; None: the default 60), inline JSON (text
/// starting with `{` or `[`) or a file path (relative to `base_dir`; `./smart-meter` reaches a
/// file of a preset's name). `what` names the stream in messages.
pub fn load_payload(
    value: &str,
    datapoints: Option<u32>,
    base_dir: &Path,
    what: &str,
) -> Result<Payload, String> {
    if let Some(preset) = super::presets::preset(value, datapoints) {
        return Ok(preset);
    }
    let text = value.trim_start();
    if text.starts_with('{') || text.starts_with('[') {
        return Payload::parse(&format!("{what}{INLINE_PAYLOAD_SUFFIX}"), text);
    }
    let path = base_dir.join(value);
    Payload::load(&path)
}

/// One stream of one connection, as the engine schedules it: the client's frames of the
/// stream (built once), the rotation position and the next due time.
#[derive(Debug)]
pub struct StreamSlot {
    /// Index of the stream in `Plan::streams`: its stats row.
    pub stream: u8,
    pub qos: u8,
    pub pace: Pace,
    /// Whether the subscribers' filter matches this stream's topic (its publishes are owed
    /// to them).
    pub matches: bool,
    /// A request stream: its kind and where its id goes (None for other streams).
    pub request: Option<RequestSlot>,
    frames: Box<[Frame]>,
    next_frame: u32,
    /// When the next message is due (ns since the run's start); latency starts there. For a
    /// weighted stream, the connection's next rate turn (`u64::MAX`: none).
    pub due_ns: u64,
    /// A weighted stream's round-robin credit (0 for the others).
    credit: i64,
}

impl StreamSlot {
    /// Stream `stream` of `plan` for the client of `vars`: its frames, built once.
    pub fn build(plan: &Plan, stream: usize, vars: &ClientVars<'_>) -> StreamSlot {
        let spec = &plan.streams[stream];
        let request = RequestSlot::of(spec, vars);
        let frames = match request {
            // The topic's {id} becomes a field of ID_DIGITS zeros, patched per request.
            Some(_) => {
                let zeros = "0".repeat(ID_DIGITS);
                let topic = spec.topic.replacen(ID_PLACEHOLDER, &zeros, 1);
                let frame_spec = FrameSpec {
                    topic: &topic,
                    ..spec.frame_spec()
                };
                payload::build_frames_of(plan, &frame_spec, vars)
            }
            None => payload::build_frames_of(plan, &spec.frame_spec(), vars),
        };
        let topic = payload::render(&spec.topic, vars);
        StreamSlot {
            stream: u8::try_from(stream).unwrap_or(u8::MAX),
            qos: spec.qos,
            pace: spec.pace,
            matches: plan.sub_users > 0 && plan.subscribers_receive(&topic),
            request,
            frames: frames.into_boxed_slice(),
            next_frame: 0,
            due_ns: 0,
            credit: 0,
        }
    }

    /// Stream `stream` of `plan` for a gateway connection: its pace and QoS only, no frames
    /// (the gateway's own are `workload::gateway`'s; the worker sets `due_ns` from its device
    /// clocks and never asks this slot for a frame).
    pub fn build_unframed(plan: &Plan, stream: usize) -> StreamSlot {
        let spec = &plan.streams[stream];
        StreamSlot {
            stream: u8::try_from(stream).unwrap_or(u8::MAX),
            qos: spec.qos,
            pace: spec.pace,
            matches: false,
            request: None,
            frames: Box::new([]),
            next_frame: 0,
            due_ns: 0,
            credit: 0,
        }
    }

    /// The frame of the next message.
    #[inline]
    pub fn frame(&self) -> &Frame {
        &self.frames[self.next_frame as usize]
    }

    /// Every frame of this slot (their sizes bound the write buffer).
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// When the next message counts as scheduled, given the time now: its due time, or now
    /// for an unpaced stream (due whenever the window has room).
    #[inline]
    pub fn scheduled_ns(&self, now_ns: u64) -> u64 {
        if self.pace.is_unpaced() {
            now_ns
        } else {
            self.due_ns
        }
    }

    /// A share of the global rate's turns (`weight = N`), not a pace of its own.
    #[inline]
    pub fn is_weighted(&self) -> bool {
        self.pace.weight() > 0
    }

    /// After a send at `sent_ns`: the next frame of the rotation, the next due time.
    #[inline]
    pub fn advance(&mut self, sent_ns: u64, rng: &mut PaceRng) {
        self.next_frame = (self.next_frame + 1) % self.frames.len().max(1) as u32;
        self.due_ns = self.pace.next_due_ns(self.due_ns, sent_ns, rng);
    }
}

/// A request stream's part of a slot (`attribute-request`, `rpc-call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSlot {
    pub kind: RequestKind,
    /// Where the id's digits start in the rendered topic (see
    /// [`answers::patch_request_id`]).
    pub id_at: u16,
}

impl RequestSlot {
    /// For a request stream (None for others): the id's place in the topic as rendered for
    /// the client of `vars`, counted on the rendered text before `{id}`, so a device token
    /// that happens to hold the text `{id}` cannot move it.
    fn of(spec: &StreamPlan, vars: &ClientVars<'_>) -> Option<RequestSlot> {
        let kind = spec.kind.request_kind()?;
        let template_at = spec.topic.find(ID_PLACEHOLDER)?;
        let id_at = payload::render(&spec.topic[..template_at], vars).len();
        Some(RequestSlot {
            kind,
            id_at: u16::try_from(id_at).ok()?,
        })
    }
}

/// Where the answers to client `vars`'s requests on `spec` arrive: the stream's answer
/// prefix (`X/response/` for `X/request/{id}`), rendered for the client. None for streams
/// that send no requests (the configuration checked the topic of those that do).
pub fn answer_prefix_of(spec: &StreamPlan, vars: &ClientVars<'_>) -> Option<String> {
    spec.kind.request_kind()?;
    let template = answers::answer_prefix(&spec.topic).ok()?;
    Some(payload::render(&template, vars))
}

/// A connection's streams: one slot per stream of the plan and the connection's random
/// source for their paces. Built once per client; [`Streams::start`] at each connect.
#[derive(Debug)]
pub struct Streams {
    slots: Box<[StreamSlot]>,
    rng: PaceRng,
    /// The weighted stream that takes the next rate turn; None without weighted streams.
    rate_pick: Option<u8>,
    /// The next rate turn is no turn but the end of the rate's look-ahead: when it comes, the
    /// worker asks the schedule again instead of sending (`engine::worker::due`).
    rate_recheck: bool,
    /// A gateway's slots: the rate's turns are its devices' (no connection-level turn).
    device_turns: bool,
}

impl Streams {
    /// The slots of every stream of `plan` for the client of `vars` (none for a plan that
    /// never publishes).
    pub fn build(plan: &Plan, vars: &ClientVars<'_>) -> Streams {
        let slots = (0..plan.streams.len().min(MAX_STREAMS))
            .map(|stream| match plan.gateway {
                Some(_) => StreamSlot::build_unframed(plan, stream),
                None => StreamSlot::build(plan, stream, vars),
            })
            .collect();
        let mut streams = Streams {
            slots,
            rng: PaceRng::for_client(plan.seed, vars.index),
            rate_pick: None,
            rate_recheck: false,
            device_turns: plan.gateway.is_some(),
        };
        streams.start(0);
        streams
    }

    /// No streams: a subscriber, or `mqblast conn`.
    pub fn none() -> Streams {
        Streams {
            slots: Box::new([]),
            rng: PaceRng::for_client(0, 0),
            rate_pick: None,
            rate_recheck: false,
            device_turns: false,
        }
    }

    pub fn slots(&self) -> &[StreamSlot] {
        &self.slots
    }

    pub fn slot(&self, index: usize) -> &StreamSlot {
        &self.slots[index]
    }

    /// Every paced stream's first message is due at `now_ns` (a connect, or a reconnect); the
    /// weighted streams wait for [`Streams::set_rate_due`], and their round-robin starts over.
    pub fn start(&mut self, now_ns: u64) {
        for slot in self.slots.iter_mut() {
            slot.credit = 0;
            slot.due_ns = match slot.is_weighted() {
                true => u64::MAX,
                false => now_ns,
            };
        }
        self.rate_recheck = false;
        self.rate_pick = None;
        self.pick_rate_turn();
    }

    /// Whether any stream takes a share of the connection's turns in the global rate (false
    /// for a gateway, whose devices take the turns).
    pub fn has_weighted(&self) -> bool {
        self.rate_pick.is_some()
    }

    /// The connection's next rate turn (`u64::MAX`: none), for its weighted streams;
    /// `recheck`: the time is the end of the rate's look-ahead, not a turn.
    pub fn set_rate_due(&mut self, due_ns: u64, recheck: bool) {
        for slot in self.slots.iter_mut().filter(|slot| slot.is_weighted()) {
            slot.due_ns = due_ns;
        }
        self.rate_recheck = recheck;
    }

    /// The connection's next rate turn (`u64::MAX`: none, or no weighted stream).
    pub fn rate_due_ns(&self) -> u64 {
        match self.rate_pick {
            Some(pick) => self.slots[usize::from(pick)].due_ns,
            None => u64::MAX,
        }
    }

    /// Whether slot `index` is due for a look at the rate's schedule rather than a send.
    #[inline]
    pub fn is_rate_recheck(&self, index: usize) -> bool {
        self.rate_recheck && self.slots[index].is_weighted()
    }

    /// Smooth weighted round-robin: the weighted stream that takes the next turn.
    fn pick_rate_turn(&mut self) {
        if self.device_turns {
            return;
        }
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for index in 0..self.slots.len() {
            let weight = i64::from(self.slots[index].pace.weight());
            if weight == 0 {
                continue;
            }
            total += weight;
            self.slots[index].credit += weight;
            if best.is_none_or(|b| self.slots[index].credit > self.slots[b].credit) {
                best = Some(index);
            }
        }
        if let Some(best) = best {
            self.slots[best].credit -= total;
        }
        self.rate_pick = best.and_then(|best| u8::try_from(best).ok());
    }

    /// The slot whose next message is due first (the lowest index among equals, so streams
    /// due together leave in their configured order; of the weighted streams, the one whose
    /// turn it is, or each by its own due time on a gateway); None without streams.
    #[inline]
    pub fn next_due(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.is_weighted() && self.rate_pick.is_some_and(|pick| pick != index as u8) {
                continue;
            }
            // An unpaced stream's due time is its last send: unpaced streams take turns,
            // and a paced one goes first once its due time has come.
            let due = slot.due_ns;
            if best.is_none_or(|(best_due, _)| due < best_due) {
                best = Some((due, index));
            }
        }
        best.map(|(_, index)| index)
    }

    /// Set slot `index`'s next due time (a gateway's slot mirrors its device clocks).
    #[inline]
    pub fn set_due_ns(&mut self, index: usize, due_ns: u64) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.due_ns = due_ns;
        }
    }

    /// The slot `index` after a send at `sent_ns` (see [`StreamSlot::advance`]).
    #[inline]
    pub fn advance(&mut self, index: usize, sent_ns: u64) {
        self.slots[index].advance(sent_ns, &mut self.rng);
        if self.slots[index].is_weighted() {
            self.pick_rate_turn();
        }
    }

    /// The largest frame of any stream (the write buffer holds a window of them).
    pub fn largest_frame_bytes(&self) -> usize {
        self.slots
            .iter()
            .flat_map(|slot| slot.frames.iter().map(Frame::len))
            .max()
            .unwrap_or(0)
    }

    /// Whether any stream's publishes are owed to the subscribers.
    pub fn any_matches(&self) -> bool {
        self.slots.iter().any(|slot| slot.matches)
    }

    /// The QoS flows this connection uses: bit q set when a stream publishes at QoS q.
    pub fn qos_mask(&self) -> u8 {
        self.slots.iter().fold(0, |mask, slot| mask | 1 << slot.qos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_their_names_and_only_publish_lacks_a_default_topic() {
        for kind in StreamKind::ALL {
            assert_eq!(StreamKind::parse(kind.name()), Some(kind));
            assert_eq!(kind.default_topic().is_none(), kind == StreamKind::Publish);
        }
        assert_eq!(StreamKind::parse("Telemetry"), None);
        assert_eq!(
            StreamKind::RpcCall.default_topic(),
            Some("v1/devices/me/rpc/request/{id}")
        );
    }

    #[test]
    fn default_names_are_the_kind_or_the_publish_topic_and_the_single_stream_keeps_its_row() {
        assert_eq!(
            StreamPlan::default_name(StreamKind::Attributes, "x"),
            "attributes"
        );
        assert_eq!(
            StreamPlan::default_name(StreamKind::Publish, "site/{i}/temp"),
            "site/{i}/temp"
        );
        let single = StreamPlan::single(
            "v1/devices/me/telemetry",
            Payload::builtin(),
            1,
            Pace::Interval { interval_ns: 1 },
        );
        assert_eq!(single.name, "publish:1:v1/devices/me/telemetry");
        assert!(!single.declared);
    }

    #[test]
    fn an_inline_payload_is_json_and_anything_else_is_a_file() {
        let inline = load_payload(
            r#" {"a": "{seq}"}"#,
            None,
            Path::new("/nonexistent"),
            "stream 2",
        )
        .unwrap();
        assert_eq!(inline.source(), "stream 2 inline payload");
        let meter =
            load_payload("smart-meter", None, Path::new("/nonexistent"), "stream 2").unwrap();
        assert_eq!(meter.source(), "preset smart-meter");
        let err = load_payload("[1]", None, Path::new(""), "stream 2").unwrap_err();
        assert!(err.starts_with("stream 2 inline payload: $[0]"), "{err}");
        let err =
            load_payload("attrs.json", None, Path::new("/nonexistent"), "stream 2").unwrap_err();
        assert!(
            err.starts_with("payload /nonexistent/attrs.json: "),
            "{err}"
        );
    }

    fn plan_with_streams(paces: &[Pace]) -> Plan {
        let mut plan = crate::config::tests::plan_with_payload(Payload::builtin(), 1, "t");
        plan.streams = paces
            .iter()
            .enumerate()
            .map(|(n, &pace)| StreamPlan {
                kind: StreamKind::Publish,
                name: format!("s{n}"),
                topic: format!("t/{n}"),
                payload: Payload::builtin(),
                qos: n as u8 % 3,
                pace,
                declared: true,
            })
            .collect();
        plan
    }

    fn vars() -> ClientVars<'static> {
        ClientVars {
            index: 3,
            token: "",
            client_id: "c",
        }
    }

    #[test]
    fn the_earliest_due_stream_goes_first_and_equals_leave_in_configured_order() {
        let second = 1_000_000_000;
        let plan = plan_with_streams(&[
            Pace::Interval {
                interval_ns: 3 * second,
            },
            Pace::Interval {
                interval_ns: second,
            },
        ]);
        let mut streams = Streams::build(&plan, &vars());
        assert_eq!(streams.qos_mask(), 0b011);
        streams.start(10);
        let mut order = Vec::new();
        for _ in 0..6 {
            let index = streams.next_due().unwrap();
            let due = streams.slot(index).due_ns;
            order.push((index, due));
            streams.advance(index, due);
        }
        assert_eq!(
            order,
            [
                (0, 10),
                (1, 10),
                (1, 10 + second),
                (1, 10 + 2 * second),
                (0, 10 + 3 * second),
                (1, 10 + 3 * second)
            ]
        );
    }

    #[test]
    fn an_unpaced_stream_is_always_due_and_its_frames_rotate() {
        let mut plan = plan_with_streams(&[Pace::Interval { interval_ns: 0 }]);
        plan.streams[0].payload = Payload::parse("p", r#"[{"n":0},{"n":1}]"#).unwrap();
        let mut streams = Streams::build(&plan, &vars());
        streams.start(5);
        let first = streams.slot(0).frame().template_bytes().to_vec();
        assert_eq!(streams.slot(0).scheduled_ns(99), 99);
        streams.advance(0, 99);
        assert_ne!(streams.slot(0).frame().template_bytes(), &first[..]);
        streams.advance(0, 100);
        assert_eq!(streams.slot(0).frame().template_bytes(), &first[..]);
        assert_eq!(streams.next_due(), Some(0));
    }

    #[test]
    fn weighted_streams_share_the_rate_turns_by_weight_and_a_paced_one_keeps_its_pace() {
        let second = 1_000_000_000;
        let plan = plan_with_streams(&[
            Pace::Weight { weight: 3 },
            Pace::Interval {
                interval_ns: 10 * second,
            },
            Pace::Weight { weight: 2 },
        ]);
        let mut streams = Streams::build(&plan, &vars());
        streams.start(0);
        assert!(streams.has_weighted());
        assert_eq!(
            streams.next_due(),
            Some(1),
            "no turn yet: only the paced stream"
        );
        let mut counts = [0u64; 3];
        // One rate turn per second for 100 s.
        for turn in 1..=100u64 {
            streams.set_rate_due(turn * second, false);
            loop {
                let index = streams.next_due().unwrap();
                let due = streams.slot(index).due_ns;
                if due > turn * second {
                    break;
                }
                assert!(!streams.is_rate_recheck(index));
                counts[index] += 1;
                streams.advance(index, due);
                if streams.slot(index).is_weighted() {
                    streams.set_rate_due(u64::MAX, false);
                }
            }
            let weighted = counts[0] + counts[2];
            assert_eq!(weighted, turn, "every turn is taken, once");
            for (index, weight) in [(0, 3), (2, 2)] {
                let exact = turn * weight;
                assert!(
                    (counts[index] * 5).abs_diff(exact) < 5,
                    "turn {turn}: stream {index} has {} of {turn} turns, weight {weight} of 5",
                    counts[index]
                );
            }
        }
        assert_eq!(
            counts,
            [60, 11, 40],
            "the paced stream sent at 0, 10, ..., 100 s"
        );
        streams.set_rate_due(7, true);
        let index = streams.next_due().unwrap();
        assert!(streams.is_rate_recheck(index) && streams.slot(index).is_weighted());
    }
}
