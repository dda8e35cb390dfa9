//! Requests that expect an answer: the per-connection table of pending request ids.
//!
//! ThingsBoard answers a request published on `.../request/$id` on `.../response/$id`:
//! attribute requests go to `v1/devices/me/attributes/request/$id` and are answered on
//! `v1/devices/me/attributes/response/$id`; client-side RPC goes to
//! `v1/devices/me/rpc/request/$id` and is answered on `v1/devices/me/rpc/response/$id`.
//! A connection numbers its requests with one counter shared by all its request streams,
//! written into the topic's `{id}` at a fixed width of [`ID_DIGITS`] digits, zero padded
//! (ThingsBoard reads the id as an integer, so `000000042` is request 42), and keeps each
//! request in a [`PendingRequests`] table until its answer comes or its timeout passes.
//!
//! Bounds and decisions:
//! - At most [`MAX_PENDING`] requests await an answer per connection. At the bound
//!   [`PendingRequests::issue`] refuses and the request waits, as a publish does when the
//!   in-flight window is full: the wait shows in schedule lag; nothing is dropped.
//! - A request with no answer within the timeout (the publish timeout, counted from when the
//!   request was handed to the socket) fails once, on its stream's row.
//! - An answer matching a pending id of the same kind is a success, timed from the request's
//!   scheduled send (never from when the generator got round to sending it).
//! - The last [`ID_WINDOW`] ids issued are remembered after they finish, so an answer to a
//!   request that already timed out is [`Answer::Late`] and a second answer to one already
//!   answered is [`Answer::Duplicate`]; an id never issued, one issued more than
//!   [`ID_WINDOW`] requests ago, or an answer on the other kind's topic is
//!   [`Answer::Unknown`]. None of them is ever a success; the caller counts each by name.
//! - Ids run from 1 to 10^9 - 1 and wrap (0 is skipped). An id's entry is `id % ID_WINDOW`,
//!   and [`ID_WINDOW`] divides 10^9, so the mapping holds across the wrap. An id whose
//!   entry still holds a pending request is skipped, so a long-pending request is never
//!   overwritten.
//!
//! Memory: [`ID_WINDOW`] entries of 24 bytes (12 KiB) per connection that has request
//! streams, allocated when the table is made and never grown. The table does no I/O and
//! reads no clock: the caller passes the times, so tests drive it with a fake clock.

/// Most requests awaiting an answer on one connection.
pub const MAX_PENDING: usize = 256;
/// Ids remembered per connection (pending or finished), to tell late and duplicate answers
/// from unknown ones. Divides [`ID_MODULUS`]; larger than [`MAX_PENDING`], so an id whose
/// entry is free is always found within `MAX_PENDING + 2` tries.
pub const ID_WINDOW: usize = 512;
/// Request ids wrap below this (nine digits: within ThingsBoard's 32-bit integer ids).
pub const ID_MODULUS: u64 = 1_000_000_000;
/// Width of the id written into a request topic (zero padded).
pub const ID_DIGITS: usize = 9;
/// The placeholder a request topic template holds exactly once.
pub const ID_PLACEHOLDER: &str = "{id}";

/// ThingsBoard's attribute request topic, and where it answers.
pub const ATTRIBUTE_REQUEST_TOPIC: &str = "v1/devices/me/attributes/request/{id}";
pub const ATTRIBUTE_RESPONSE_PREFIX: &str = "v1/devices/me/attributes/response/";
/// ThingsBoard's client-side RPC topic, and where it answers.
pub const RPC_REQUEST_TOPIC: &str = "v1/devices/me/rpc/request/{id}";
pub const RPC_RESPONSE_PREFIX: &str = "v1/devices/me/rpc/response/";

/// Which kind of request an id was issued for: answers arrive on the kind's own topic, and an
/// answer on the other kind's topic does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `attribute-request`: answered on `.../attributes/response/$id`.
    Attributes,
    /// `rpc-call` (client-side RPC): answered on `.../rpc/response/$id`.
    Rpc,
}

impl RequestKind {
    /// The stream kind's name, as failures name it.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Attributes => "attribute-request",
            RequestKind::Rpc => "rpc-call",
        }
    }
}

/// What a PUBLISH to a device is, by its topic (see [`DeviceAnswers::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// An answer on a request stream's answer topic: the id text after its prefix.
    Answer { kind: RequestKind, id: &'a [u8] },
    /// A server-side RPC request (with the responder on): the id text.
    RpcRequest { id: &'a [u8] },
    /// A message on `v1/gateway/rpc` to a gateway with the responder on: a request for one of
    /// its devices, or an answer (see `gateway_rpc`).
    GatewayRpc,
    /// Anything else: the device did not subscribe to it.
    Other,
}

/// Where the answers of one request stream arrive.
#[derive(Debug)]
struct Route {
    prefix: Box<[u8]>,
    kind: RequestKind,
}

/// What one device connection listens to: the answer topics of its request streams (with
/// their pending requests) and, with `--rpc-responder`, server-side RPC requests (with the
/// answers waiting to be sent); a gateway connection with `--rpc-responder`, its devices' RPC
/// on `v1/gateway/rpc`. Built once per client; the filters are subscribed once at each
/// connect.
pub struct DeviceAnswers {
    routes: Box<[Route]>,
    /// The topic filters to subscribe to (each answer prefix with `+`, the RPC request
    /// filter), made once.
    filters: Box<[String]>,
    responds: bool,
    /// A gateway's devices, whose RPC it answers (None on a device connection).
    pub gateway: Option<super::gateway_rpc::GatewayDevices>,
    /// The requests awaiting answers (None without request streams).
    pub pending: Option<PendingRequests>,
    /// The responder's answers waiting to be sent.
    pub queue: super::responder::AnswerQueue,
}

impl DeviceAnswers {
    /// For a client whose request streams are answered under `routes` (answer prefix as
    /// rendered for this client, and the kind of request) and who answers server-side RPC
    /// when `responds`. Streams sharing an answer prefix share a route (the first one's).
    pub fn new(routes: &[(String, RequestKind)], responds: bool, timeout_ns: u64) -> DeviceAnswers {
        let mut unique: Vec<Route> = Vec::new();
        for (prefix, kind) in routes {
            if !unique.iter().any(|r| &r.prefix[..] == prefix.as_bytes()) {
                unique.push(Route {
                    prefix: prefix.as_bytes().into(),
                    kind: *kind,
                });
            }
        }
        let mut filters: Vec<String> = unique
            .iter()
            .map(|r| format!("{}+", String::from_utf8_lossy(&r.prefix)))
            .collect();
        if responds {
            filters.push(super::responder::RPC_REQUEST_FILTER.to_string());
        }
        DeviceAnswers {
            pending: (!unique.is_empty()).then(|| PendingRequests::new(timeout_ns)),
            routes: unique.into_boxed_slice(),
            filters: filters.into_boxed_slice(),
            responds,
            gateway: None,
            queue: Default::default(),
        }
    }

    /// A gateway connection that answers its devices' RPC (`--gateway --rpc-responder`): it
    /// listens to `v1/gateway/rpc` only (a gateway sends no requests of its own).
    pub fn for_gateway(devices: super::gateway_rpc::GatewayDevices) -> DeviceAnswers {
        let filter = super::gateway_rpc::GATEWAY_RPC_TOPIC.to_string();
        DeviceAnswers {
            routes: Box::new([]),
            filters: Box::new([filter]),
            responds: true,
            gateway: Some(devices),
            pending: None,
            queue: Default::default(),
        }
    }

    /// Whether this device (or gateway) answers server-side RPC.
    pub fn responds(&self) -> bool {
        self.responds
    }

    /// The topic filters this device subscribes to at connect.
    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    /// Whether a server-side RPC request's id is in fact this device's own client-side RPC
    /// request come back: written as the device writes its ids ([`ID_DIGITS`] digits) and
    /// one it issued. A plain broker sends a client's publishes back to it when it subscribed
    /// to their topic (under MQTT 3.1.1 there is no No Local); ThingsBoard never does.
    pub fn is_own_request(&self, id: &[u8]) -> bool {
        let Some(pending) = self.pending.as_ref() else {
            return false;
        };
        id.len() == ID_DIGITS && parse_id(id).is_some_and(|id| pending.issued(RequestKind::Rpc, id))
    }

    /// What a PUBLISH on `topic` is to this device.
    pub fn classify<'a>(&self, topic: &'a [u8]) -> Incoming<'a> {
        for route in self.routes.iter() {
            if let Some(id) = id_after(topic, &route.prefix) {
                return Incoming::Answer {
                    kind: route.kind,
                    id,
                };
            }
        }
        if self.gateway.is_some() {
            return match topic == super::gateway_rpc::GATEWAY_RPC_TOPIC.as_bytes() {
                true => Incoming::GatewayRpc,
                false => Incoming::Other,
            };
        }
        if self.responds {
            let prefix = super::responder::RPC_REQUEST_PREFIX.as_bytes();
            if let Some(id) = id_after(topic, prefix) {
                return Incoming::RpcRequest { id };
            }
        }
        Incoming::Other
    }
}

/// What an answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The answer to a pending request: a success of `stream`, timed from `scheduled_ns`.
    Matched { stream: u8, scheduled_ns: u64 },
    /// The answer to a request of `stream` past its timeout. `expired_now`: the timeout had
    /// passed but was not yet counted (no expiry check ran since); it is counted now, so the
    /// caller records the timeout failure as well.
    Late { stream: u8, expired_now: bool },
    /// A further answer to a request of `stream` already answered (or already late).
    Duplicate { stream: u8 },
    /// An id never issued on this connection, issued too long ago to be remembered, not a
    /// valid id, or issued for the other kind of request.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Free,
    Pending,
    Answered,
    Expired,
    /// Timed out, then answered late.
    ExpiredAnswered,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    stage: Stage,
    kind: RequestKind,
    stream: u8,
    /// When the request was scheduled (ns since run start): latency starts here.
    scheduled_ns: u64,
    /// When it times out: handed to the socket + the timeout.
    deadline_ns: u64,
}

const FREE: Entry = Entry {
    id: 0,
    stage: Stage::Free,
    kind: RequestKind::Attributes,
    stream: 0,
    scheduled_ns: 0,
    deadline_ns: 0,
};

/// One connection's requests awaiting answers, and the ids it remembers (see the module
/// comment for the bounds).
pub struct PendingRequests {
    entries: Box<[Entry]>,
    /// Requests in `Stage::Pending`.
    pending: usize,
    /// Sequence number of the next id to try (ids are sequence numbers modulo
    /// [`ID_MODULUS`]); a u64 never wraps.
    next_seq: u64,
    /// No request issued before this sequence number is pending: expiry starts here.
    oldest_seq: u64,
    timeout_ns: u64,
}

impl PendingRequests {
    /// An empty table whose requests time out `timeout_ns` after they were sent.
    pub fn new(timeout_ns: u64) -> PendingRequests {
        PendingRequests {
            entries: vec![FREE; ID_WINDOW].into_boxed_slice(),
            pending: 0,
            next_seq: 1,
            oldest_seq: 1,
            timeout_ns,
        }
    }

    /// Requests awaiting an answer.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// No request can be issued now: [`MAX_PENDING`] await their answers.
    pub fn is_full(&self) -> bool {
        self.pending >= MAX_PENDING
    }

    /// Take an id for a request of `stream` scheduled at `scheduled_ns` and handed to the
    /// socket at `sent_ns`; None when the table is full (the request waits).
    pub fn issue(
        &mut self,
        kind: RequestKind,
        stream: u8,
        scheduled_ns: u64,
        sent_ns: u64,
    ) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        // Fewer than ID_WINDOW entries are pending, so this ends within MAX_PENDING + 2 tries.
        loop {
            let seq = self.next_seq;
            self.next_seq += 1;
            let id = (seq % ID_MODULUS) as u32;
            let entry = &mut self.entries[slot_of(id)];
            if id == 0 || entry.stage == Stage::Pending {
                continue;
            }
            *entry = Entry {
                id,
                stage: Stage::Pending,
                kind,
                stream,
                scheduled_ns,
                deadline_ns: sent_ns.saturating_add(self.timeout_ns),
            };
            self.pending += 1;
            return Some(id);
        }
    }

    /// An answer for `id` arrived on `kind`'s answer topic at `now_ns`.
    pub fn answer(&mut self, kind: RequestKind, id: u32, now_ns: u64) -> Answer {
        if u64::from(id) >= ID_MODULUS || id == 0 {
            return Answer::Unknown;
        }
        let entry = &mut self.entries[slot_of(id)];
        if entry.id != id || entry.kind != kind {
            return Answer::Unknown;
        }
        let stream = entry.stream;
        match entry.stage {
            Stage::Free => Answer::Unknown,
            Stage::Pending if now_ns >= entry.deadline_ns => {
                entry.stage = Stage::ExpiredAnswered;
                self.pending -= 1;
                Answer::Late {
                    stream,
                    expired_now: true,
                }
            }
            Stage::Pending => {
                entry.stage = Stage::Answered;
                self.pending -= 1;
                Answer::Matched {
                    stream,
                    scheduled_ns: entry.scheduled_ns,
                }
            }
            Stage::Expired => {
                entry.stage = Stage::ExpiredAnswered;
                Answer::Late {
                    stream,
                    expired_now: false,
                }
            }
            Stage::Answered | Stage::ExpiredAnswered => Answer::Duplicate { stream },
        }
    }

    /// Whether `id` is one this table issued for a request of `kind` and still remembers
    /// (pending or finished).
    pub fn issued(&self, kind: RequestKind, id: u32) -> bool {
        let entry = &self.entries[slot_of(id)];
        id != 0 && entry.id == id && entry.kind == kind && entry.stage != Stage::Free
    }

    /// The next request whose timeout has passed by `now_ns`, counted as timed out now
    /// (its stream is returned); None when none is due. Requests time out in the order they
    /// were issued (their send times only grow), so this looks at the oldest pending one.
    pub fn expire_next(&mut self, now_ns: u64) -> Option<u8> {
        let slot = self.oldest_pending()?;
        let entry = &mut self.entries[slot];
        if entry.deadline_ns > now_ns {
            return None;
        }
        entry.stage = Stage::Expired;
        self.pending -= 1;
        self.oldest_seq += 1;
        Some(entry.stream)
    }

    /// The next pending request lost with its connection (its stream), or None once none is
    /// pending. Its id stays remembered: an answer to it later is late.
    pub fn lose_next(&mut self) -> Option<u8> {
        self.expire_next(u64::MAX)
    }

    /// When the oldest pending request times out; None when none is pending.
    pub fn next_deadline_ns(&mut self) -> Option<u64> {
        self.oldest_pending()
            .map(|slot| self.entries[slot].deadline_ns)
    }

    /// The entry of the oldest pending request, moving `oldest_seq` past the ids that were
    /// answered, expired or skipped. Each sequence number is passed once: amortised O(1).
    fn oldest_pending(&mut self) -> Option<usize> {
        if self.pending == 0 {
            self.oldest_seq = self.next_seq;
            return None;
        }
        while self.oldest_seq < self.next_seq {
            let id = (self.oldest_seq % ID_MODULUS) as u32;
            let slot = slot_of(id);
            let entry = &self.entries[slot];
            if entry.id == id && entry.stage == Stage::Pending {
                return Some(slot);
            }
            self.oldest_seq += 1;
        }
        None
    }
}

#[inline]
fn slot_of(id: u32) -> usize {
    id as usize % ID_WINDOW
}

/// Write `id` into `field` as zero-padded decimal digits (the field's width; higher digits
/// are cut, which never happens for ids below [`ID_MODULUS`] in [`ID_DIGITS`] digits).
#[inline]
pub fn write_id(field: &mut [u8], id: u32) {
    let mut rest = id;
    for byte in field.iter_mut().rev() {
        *byte = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// The id at the end of an answer topic: 1 to [`ID_DIGITS`] ASCII digits (leading zeros
/// allowed: ThingsBoard writes `42` for our `000000042`). None for anything else.
pub fn parse_id(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > ID_DIGITS {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| match d {
        b'0'..=b'9' => Some(acc * 10 + u32::from(d - b'0')),
        _ => None,
    })
}

/// Write `id` into a request frame (as [`crate::payload::Frame`] writes it: fixed header,
/// the topic's 2-byte length, the topic) whose topic holds its id field `id_at` bytes in.
/// A frame too short for that is left as it is (never the case for frames built from a
/// [`request_topic_layout`] topic).
#[inline]
pub fn patch_request_id(frame: &mut [u8], id_at: usize, id: u32) {
    // The remaining length takes 1 to 4 bytes, each but the last with its high bit set.
    let Some(varint) = frame.iter().skip(1).take(4).position(|b| b & 0x80 == 0) else {
        return;
    };
    let at = 1 + varint + 1 + 2 + id_at;
    if let Some(field) = frame.get_mut(at..at + ID_DIGITS) {
        write_id(field, id);
    }
}

/// The id text after `prefix` in `topic`, if `topic` starts with it.
#[inline]
pub fn id_after<'a>(topic: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    topic.strip_prefix(prefix)
}

/// A request topic with its `{id}` written as [`ID_DIGITS`] zeros, and where those digits
/// start, so the id can be patched per request. The template must hold `{id}` exactly once.
pub fn request_topic_layout(template: &str) -> Result<(String, usize), String> {
    let Some(at) = template.find(ID_PLACEHOLDER) else {
        return Err(format!(
            "{template:?} has no {ID_PLACEHOLDER}: a request topic carries the request id"
        ));
    };
    if template[at + ID_PLACEHOLDER.len()..].contains(ID_PLACEHOLDER) {
        return Err(format!(
            "{template:?} holds {ID_PLACEHOLDER} more than once"
        ));
    }
    let mut topic = String::with_capacity(template.len() + ID_DIGITS);
    topic.push_str(&template[..at]);
    topic.extend(std::iter::repeat_n('0', ID_DIGITS));
    topic.push_str(&template[at + ID_PLACEHOLDER.len()..]);
    Ok((topic, at))
}

/// Where the answers to requests published on `template` arrive: ThingsBoard answers
/// `X/request/$id` on `X/response/$id`, so the template must end in `/request/{id}`; the
/// answer prefix is `X/response/` (subscribe to it with `+` appended).
pub fn answer_prefix(template: &str) -> Result<String, String> {
    const TAIL: &str = "request/{id}";
    match template.strip_suffix(TAIL) {
        Some(head) if head.is_empty() || head.ends_with('/') => Ok(format!("{head}response/")),
        _ => Err(format!(
            "{template:?} must end in /request/{{id}}: the answer comes on .../response/$id"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT_NS: u64 = 1_000;

    #[test]
    fn an_answer_to_a_pending_request_is_a_success_timed_from_its_scheduled_send() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let id = table.issue(RequestKind::Rpc, 3, 100, 150).unwrap();
        assert_eq!(id, 1);
        assert_eq!(table.pending(), 1);
        assert_eq!(
            table.answer(RequestKind::Rpc, id, 400),
            Answer::Matched {
                stream: 3,
                scheduled_ns: 100
            }
        );
        assert_eq!(table.pending(), 0);
        assert_eq!(table.next_deadline_ns(), None);
    }

    #[test]
    fn a_second_answer_is_a_duplicate_never_a_success() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let id = table.issue(RequestKind::Attributes, 1, 0, 0).unwrap();
        assert!(matches!(
            table.answer(RequestKind::Attributes, id, 10),
            Answer::Matched { .. }
        ));
        for _ in 0..3 {
            assert_eq!(
                table.answer(RequestKind::Attributes, id, 20),
                Answer::Duplicate { stream: 1 }
            );
        }
    }

    #[test]
    fn a_request_times_out_once_at_its_send_time_plus_the_timeout_and_its_answer_is_late() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let id = table.issue(RequestKind::Rpc, 2, 0, 500).unwrap();
        assert_eq!(table.next_deadline_ns(), Some(1_500));
        assert_eq!(table.expire_next(1_499), None);
        assert_eq!(table.expire_next(1_500), Some(2));
        assert_eq!(table.expire_next(10_000), None);
        assert_eq!(table.pending(), 0);
        assert_eq!(
            table.answer(RequestKind::Rpc, id, 2_000),
            Answer::Late {
                stream: 2,
                expired_now: false
            }
        );
        assert_eq!(
            table.answer(RequestKind::Rpc, id, 2_001),
            Answer::Duplicate { stream: 2 }
        );
    }

    #[test]
    fn an_answer_after_the_deadline_before_any_expiry_check_is_late_and_times_out_now() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let id = table.issue(RequestKind::Rpc, 0, 0, 0).unwrap();
        assert_eq!(
            table.answer(RequestKind::Rpc, id, TIMEOUT_NS),
            Answer::Late {
                stream: 0,
                expired_now: true
            }
        );
        assert_eq!(table.pending(), 0);
        // Already counted: the expiry check finds nothing more.
        assert_eq!(table.expire_next(u64::MAX), None);
    }

    #[test]
    fn ids_never_issued_and_answers_on_the_other_kinds_topic_are_unknown() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let id = table.issue(RequestKind::Attributes, 0, 0, 0).unwrap();
        assert_eq!(table.answer(RequestKind::Rpc, id, 1), Answer::Unknown);
        assert_eq!(
            table.answer(RequestKind::Attributes, id + 1, 1),
            Answer::Unknown
        );
        assert_eq!(table.answer(RequestKind::Attributes, 0, 1), Answer::Unknown);
        assert_eq!(
            table.answer(RequestKind::Attributes, u32::MAX, 1),
            Answer::Unknown
        );
        // The pending request is untouched by them.
        assert_eq!(table.pending(), 1);
        assert!(matches!(
            table.answer(RequestKind::Attributes, id, 2),
            Answer::Matched { .. }
        ));
    }

    #[test]
    fn at_the_bound_a_request_waits_and_an_answer_makes_room() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let ids: Vec<u32> = (0..MAX_PENDING)
            .map(|_| table.issue(RequestKind::Rpc, 0, 0, 0).unwrap())
            .collect();
        assert!(table.is_full());
        assert_eq!(table.issue(RequestKind::Rpc, 0, 0, 0), None);
        assert!(matches!(
            table.answer(RequestKind::Rpc, ids[100], 1),
            Answer::Matched { .. }
        ));
        assert!(table.issue(RequestKind::Rpc, 0, 0, 0).is_some());
        assert!(table.is_full());
    }

    #[test]
    fn a_long_pending_request_is_never_overwritten_by_later_ids() {
        let mut table = PendingRequests::new(u64::MAX / 2);
        let old = table.issue(RequestKind::Rpc, 7, 5, 5).unwrap();
        // Many more requests, each answered at once, pass the old one's entry many times.
        for _ in 0..(ID_WINDOW * 5) {
            let id = table.issue(RequestKind::Rpc, 1, 0, 0).unwrap();
            assert_ne!(id as usize % ID_WINDOW, old as usize % ID_WINDOW);
            assert!(matches!(
                table.answer(RequestKind::Rpc, id, 1),
                Answer::Matched { stream: 1, .. }
            ));
        }
        assert_eq!(
            table.answer(RequestKind::Rpc, old, 9),
            Answer::Matched {
                stream: 7,
                scheduled_ns: 5
            }
        );
    }

    #[test]
    fn late_is_told_from_unknown_for_the_last_window_of_ids_only() {
        let mut table = PendingRequests::new(10);
        let first = table.issue(RequestKind::Rpc, 0, 0, 0).unwrap();
        assert_eq!(table.expire_next(10), Some(0));
        // ID_WINDOW more ids: the first one's entry is reused, so it is forgotten.
        for _ in 0..ID_WINDOW {
            let id = table.issue(RequestKind::Rpc, 0, 20, 20).unwrap();
            table.answer(RequestKind::Rpc, id, 21);
        }
        assert_eq!(table.answer(RequestKind::Rpc, first, 30), Answer::Unknown);
    }

    #[test]
    fn requests_expire_in_the_order_they_were_sent_past_answered_ones() {
        let mut table = PendingRequests::new(100);
        let a = table.issue(RequestKind::Rpc, 1, 0, 0).unwrap();
        let b = table.issue(RequestKind::Rpc, 2, 10, 10).unwrap();
        let _c = table.issue(RequestKind::Rpc, 3, 20, 20).unwrap();
        table.answer(RequestKind::Rpc, b, 50);
        assert_eq!(table.next_deadline_ns(), Some(100));
        assert_eq!(table.expire_next(1_000), Some(1));
        // b was answered: the next to expire is c.
        assert_eq!(table.next_deadline_ns(), Some(120));
        assert_eq!(table.expire_next(1_000), Some(3));
        assert_eq!(table.expire_next(1_000), None);
        assert_eq!(
            table.answer(RequestKind::Rpc, a, 2_000),
            Answer::Late {
                stream: 1,
                expired_now: false
            }
        );
    }

    #[test]
    fn lost_requests_leave_one_by_one_and_their_answers_are_late() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        let ids: Vec<u32> = (0..5)
            .map(|i| table.issue(RequestKind::Attributes, i, 0, 0).unwrap())
            .collect();
        let lost: Vec<u8> = std::iter::from_fn(|| table.lose_next()).collect();
        assert_eq!(lost, [0, 1, 2, 3, 4]);
        assert_eq!(table.pending(), 0);
        assert!(matches!(
            table.answer(RequestKind::Attributes, ids[2], 5),
            Answer::Late { stream: 2, .. }
        ));
        // Ids go on after the loss: a new request is not confused with a lost one.
        let next = table.issue(RequestKind::Attributes, 9, 0, 0).unwrap();
        assert!(!ids.contains(&next));
    }

    #[test]
    fn ids_wrap_below_a_billion_skipping_zero() {
        let mut table = PendingRequests::new(TIMEOUT_NS);
        table.next_seq = ID_MODULUS - 1;
        table.oldest_seq = ID_MODULUS - 1;
        let last = table.issue(RequestKind::Rpc, 0, 0, 0).unwrap();
        let wrapped = table.issue(RequestKind::Rpc, 0, 0, 0).unwrap();
        assert_eq!(u64::from(last), ID_MODULUS - 1);
        assert_eq!(wrapped, 1);
        assert!(matches!(
            table.answer(RequestKind::Rpc, last, 1),
            Answer::Matched { .. }
        ));
        assert!(matches!(
            table.answer(RequestKind::Rpc, wrapped, 1),
            Answer::Matched { .. }
        ));
    }

    #[test]
    fn ids_are_written_zero_padded_and_read_back_with_or_without_the_zeros() {
        let mut field = [b'x'; ID_DIGITS];
        write_id(&mut field, 42);
        assert_eq!(&field, b"000000042");
        assert_eq!(parse_id(&field), Some(42));
        assert_eq!(parse_id(b"42"), Some(42));
        write_id(&mut field, 999_999_999);
        assert_eq!(parse_id(&field), Some(999_999_999));
        for bad in [&b""[..], b"1234567890", b"12a", b"-1", b" 1", b"+"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_request_topic_gets_a_fixed_width_id_field_at_its_placeholder() {
        let (topic, at) = request_topic_layout(RPC_REQUEST_TOPIC).unwrap();
        assert_eq!(topic, "v1/devices/me/rpc/request/000000000");
        assert_eq!(&topic[at..at + ID_DIGITS], "000000000");
        let mut bytes = topic.into_bytes();
        write_id(&mut bytes[at..at + ID_DIGITS], 7);
        assert_eq!(bytes, b"v1/devices/me/rpc/request/000000007");
        assert!(request_topic_layout("v1/devices/me/rpc/request").is_err());
        assert!(request_topic_layout("a/{id}/b/{id}").is_err());
    }

    #[test]
    fn the_id_is_patched_into_a_request_frame_whatever_the_remaining_lengths_width() {
        let (topic, at) = request_topic_layout("dev/{id}/x").unwrap();
        for payload_len in [0, 100, 200, 20_000] {
            let mut frame = Vec::new();
            crate::mqtt::publish::encode(&mut frame, &topic, 1, false, 7, &vec![b'p'; payload_len]);
            patch_request_id(&mut frame, at, 123);
            let (packet, _) = crate::mqtt::decode(&frame).unwrap().unwrap();
            match packet {
                crate::mqtt::Packet::Publish { topic, pkid, .. } => {
                    assert_eq!(topic, b"dev/000000123/x");
                    assert_eq!(pkid, 7);
                }
                other => panic!("{other:?}"),
            }
        }
        patch_request_id(&mut [0x30], 0, 1);
    }

    #[test]
    fn a_device_tells_answers_of_each_stream_from_rpc_requests_and_other_topics() {
        let routes = [
            (
                ATTRIBUTE_RESPONSE_PREFIX.to_string(),
                RequestKind::Attributes,
            ),
            (RPC_RESPONSE_PREFIX.to_string(), RequestKind::Rpc),
            (RPC_RESPONSE_PREFIX.to_string(), RequestKind::Rpc),
        ];
        let device = DeviceAnswers::new(&routes, true, 1);
        assert_eq!(
            device.filters(),
            [
                "v1/devices/me/attributes/response/+",
                "v1/devices/me/rpc/response/+",
                "v1/devices/me/rpc/request/+"
            ]
        );
        assert_eq!(
            device.classify(b"v1/devices/me/rpc/response/42"),
            Incoming::Answer {
                kind: RequestKind::Rpc,
                id: b"42"
            }
        );
        assert_eq!(
            device.classify(b"v1/devices/me/attributes/response/7"),
            Incoming::Answer {
                kind: RequestKind::Attributes,
                id: b"7"
            }
        );
        assert_eq!(
            device.classify(b"v1/devices/me/rpc/request/9"),
            Incoming::RpcRequest { id: b"9" }
        );
        assert_eq!(
            device.classify(b"v1/devices/me/attributes"),
            Incoming::Other
        );
        assert!(device.pending.is_some());
        let responder_only = DeviceAnswers::new(&[], true, 1);
        assert!(responder_only.pending.is_none());
        assert_eq!(responder_only.filters(), ["v1/devices/me/rpc/request/+"]);
        let mut calling = DeviceAnswers::new(&routes, true, 1_000);
        let id = calling
            .pending
            .as_mut()
            .unwrap()
            .issue(RequestKind::Rpc, 0, 0, 0)
            .unwrap();
        let mut own = [0u8; ID_DIGITS];
        write_id(&mut own, id);
        assert!(calling.is_own_request(&own));
        assert!(
            !calling.is_own_request(id.to_string().as_bytes()),
            "ThingsBoard's form"
        );
        write_id(&mut own, id + 1);
        assert!(!calling.is_own_request(&own), "never issued");
        let gateway = crate::workload::gateway::GatewayPlan {
            devices_per_gateway: 2,
            mode: crate::workload::gateway::GatewayMode::PerPoint,
            device_name: crate::workload::gateway::NameTemplate::parse("D{i}").unwrap(),
            device_start: 0,
            layout: crate::workload::gateway::DeviceLayout::Blocks,
        };
        let devices = crate::workload::gateway_rpc::GatewayDevices::new(&gateway, 0);
        let gateway = DeviceAnswers::for_gateway(devices);
        assert_eq!(gateway.filters(), ["v1/gateway/rpc"]);
        assert!(gateway.responds() && gateway.pending.is_none());
        assert_eq!(gateway.classify(b"v1/gateway/rpc"), Incoming::GatewayRpc);
        for other in [&b"v1/devices/me/rpc/request/9"[..], b"v1/gateway/rpc/1"] {
            assert_eq!(gateway.classify(other), Incoming::Other);
        }
        let no_responder = DeviceAnswers::new(&routes[..1], false, 1);
        assert_eq!(
            no_responder.classify(b"v1/devices/me/rpc/request/9"),
            Incoming::Other
        );
    }

    #[test]
    fn thingsboard_answers_request_topics_on_their_response_topics() {
        assert_eq!(
            answer_prefix(ATTRIBUTE_REQUEST_TOPIC).unwrap(),
            ATTRIBUTE_RESPONSE_PREFIX
        );
        assert_eq!(
            answer_prefix(RPC_REQUEST_TOPIC).unwrap(),
            RPC_RESPONSE_PREFIX
        );
        assert_eq!(answer_prefix("request/{id}").unwrap(), "response/");
        assert!(answer_prefix("v1/x/{id}").is_err());
        assert!(answer_prefix("v1/xrequest/{id}").is_err());
        assert_eq!(
            id_after(
                b"v1/devices/me/rpc/response/12",
                RPC_RESPONSE_PREFIX.as_bytes()
            ),
            Some(&b"12"[..])
        );
        assert_eq!(
            id_after(
                b"v1/devices/me/rpc/response",
                b"v1/devices/me/rpc/response/"
            ),
            None
        );
    }
}
