//! A strict MQTT 3.1.1 checker of what a *client* sends, and a recording TCP proxy that runs it
//! on every connection between mqblast and a real broker.
//!
//! Why it exists: mosquitto is lenient (it accepts a reused packet identifier, a late ping
//! within 1.5x the keep-alive, a QoS 2 flow left half done), so a test that only counts what
//! arrived cannot see a client breaking the rules it must keep. The proxy sees every byte in
//! both directions, parses both packet streams with its own hand-written decoder (nothing from
//! `src/mqtt`), and records each rule broken with the connection number, the packet type and
//! what was wrong, citing the normative statement of the spec.
//!
//! [`Checker`] is the state machine, free of I/O and driven by the caller's clock, so a test can
//! feed it a hand-made byte stream. [`StrictProxy`] binds `127.0.0.1:0`, opens one upstream
//! connection per accepted client, and can delay the broker's acknowledgements (a slow broker)
//! or cut every connection (a network failure). Its threads stop and are joined on drop; every
//! blocking read and write has a short timeout so that stop is never missed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Violations kept per rule and connection; past this only the count grows (a broken run
/// repeats the same mistake hundreds of times, and the first ones say what it is; a bound per
/// rule keeps a flood of one kind from hiding another).
const KEPT_PER_RULE: u64 = 10;

/// Packet type names, indexed by the upper nibble of the fixed header (section 2.2.1).
pub const NAMES: [&str; 16] = [
    "reserved(0)",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "reserved(15)",
];

/// Packet type numbers (section 2.2.1), for counters and hand-made streams.
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// One whole packet at the front of `buf`: (fixed header byte, body start, total length).
/// `Ok(None)` when more bytes are needed; `Err` when the remaining length is malformed (a
/// fifth length byte, section 2.2.3), after which the stream cannot be re-synchronised.
pub fn split_frame(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let Some(&byte) = buf.get(i) else {
            return Ok(None);
        };
        len |= ((byte & 0b0111_1111) as usize) << (7 * (i - 1));
        i += 1;
        if byte & 0b1000_0000 == 0 {
            break;
        }
        if i == 5 {
            return Err("remaining length longer than 4 bytes [MQTT-2.2.3]".into());
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    Ok(Some((buf[0], i, i + len)))
}

/// A cursor over a packet body; every read says what was missing when it runs out.
struct Body<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or_else(|| format!("body ends before {what}"))?;
        self.at += 1;
        Ok(b)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let hi = self.u8(what)?;
        let lo = self.u8(what)?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    /// A length-prefixed field (section 1.5.3 strings, and binary data such as the password).
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u16(what)? as usize;
        let field = self
            .buf
            .get(self.at..self.at + len)
            .ok_or_else(|| format!("{what}: length {len} runs past the end of the body"))?;
        self.at += len;
        Ok(field)
    }

    fn left(&self) -> usize {
        self.buf.len() - self.at
    }
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// What a client packet identifier in flight waits for (section 4.3 and 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    PubAck,
    PubRec,
    PubComp,
    SubAck,
    UnsubAck,
}

impl Awaiting {
    fn describe(self) -> &'static str {
        match self {
            Awaiting::PubAck => "a QoS 1 PUBLISH awaiting PUBACK",
            Awaiting::PubRec => "a QoS 2 PUBLISH awaiting PUBREC",
            Awaiting::PubComp => "a QoS 2 PUBLISH awaiting PUBCOMP",
            Awaiting::SubAck => "a SUBSCRIBE awaiting SUBACK",
            Awaiting::UnsubAck => "an UNSUBSCRIBE awaiting UNSUBACK",
        }
    }
}

/// The rules one client connection must keep, checked packet by packet. Client packets are
/// timed when the proxy read them; broker packets count from the moment they are handed to
/// the client (after any delay), since the client cannot know of them before.
pub struct Checker {
    conn: u32,
    client_buf: Vec<u8>,
    broker_buf: Vec<u8>,
    /// A malformed remaining length: the rest of that stream is not parsed.
    client_unframed: bool,
    broker_unframed: bool,
    connect_seen: bool,
    keep_alive: Duration,
    last_client_at: Option<Duration>,
    disconnect_seen: bool,
    /// The connection ended (client closed, proxy cut, broker closed): nothing more is checked.
    ended: bool,
    cut: bool,
    /// Client packet identifiers in flight, with how many publishes use each (more than one
    /// only after a reuse, which was reported: keeps later acks from confusing the count).
    in_flight: HashMap<u16, (Awaiting, u32)>,
    /// PUBRECs handed to the client and not yet answered with a PUBREL, with when.
    owed_pubrel: HashMap<u16, Duration>,
    client_counts: [u64; 16],
    broker_counts: [u64; 16],
    max_gap: Duration,
    violations: Vec<String>,
    violation_count: u64,
    /// Violations per rule (the `[MQTT-...]` citation that ends each message).
    per_rule: BTreeMap<String, u64>,
}

impl Checker {
    /// A checker for connection number `conn` (used in every message).
    pub fn new(conn: u32) -> Checker {
        Checker {
            conn,
            client_buf: Vec::new(),
            broker_buf: Vec::new(),
            client_unframed: false,
            broker_unframed: false,
            connect_seen: false,
            keep_alive: Duration::ZERO,
            last_client_at: None,
            disconnect_seen: false,
            ended: false,
            cut: false,
            in_flight: HashMap::new(),
            owed_pubrel: HashMap::new(),
            client_counts: [0; 16],
            broker_counts: [0; 16],
            max_gap: Duration::ZERO,
            violations: Vec::new(),
            violation_count: 0,
            per_rule: BTreeMap::new(),
        }
    }

    /// Bytes the client sent, read at `now` (any clock, as long as it only moves forward).
    pub fn client_bytes(&mut self, bytes: &[u8], now: Duration) {
        if self.client_unframed || self.ended {
            return;
        }
        self.client_buf.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            match split_frame(&self.client_buf[used..]) {
                Ok(Some((header, start, end))) => {
                    let packet = self.client_buf[used..used + end].to_vec();
                    used += end;
                    self.client_packet(header, &packet[start..], now);
                }
                Ok(None) => break,
                Err(e) => {
                    let header = self.client_buf[used];
                    self.violate(header >> 4, e);
                    self.client_unframed = true;
                    break;
                }
            }
        }
        self.client_buf.drain(..used);
    }

    /// Bytes from the broker, handed to the client now (a stream; see [`Self::broker_packet`]).
    pub fn broker_bytes(&mut self, bytes: &[u8], now: Duration) {
        if self.broker_unframed {
            return;
        }
        self.broker_buf.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            match split_frame(&self.broker_buf[used..]) {
                Ok(Some((header, start, end))) => {
                    let packet = self.broker_buf[used..used + end].to_vec();
                    used += end;
                    self.broker_packet(header, &packet[start..], now);
                }
                Ok(None) => break,
                Err(_) => {
                    self.broker_unframed = true;
                    break;
                }
            }
        }
        self.broker_buf.drain(..used);
    }

    /// One whole broker packet, about to be handed to the client: acknowledgements end the
    /// flight of a client packet identifier; a PUBREC puts a PUBREL on what the client owes.
    pub fn broker_packet(&mut self, header: u8, body: &[u8], now: Duration) {
        let kind = header >> 4;
        self.broker_counts[kind as usize] += 1;
        if body.len() < 2 {
            return;
        }
        let pkid = u16::from_be_bytes([body[0], body[1]]);
        match kind {
            kind::PUBACK | kind::PUBCOMP | kind::SUBACK | kind::UNSUBACK => self.land(pkid),
            kind::PUBREC => {
                if let Some((awaiting, _)) = self.in_flight.get_mut(&pkid) {
                    if *awaiting == Awaiting::PubRec {
                        *awaiting = Awaiting::PubComp;
                    }
                }
                self.owed_pubrel.entry(pkid).or_insert(now);
            }
            _ => {}
        }
    }

    /// The client closed its side of the connection at `now` (EOF or reset).
    pub fn client_closed(&mut self, now: Duration) {
        if self.ended {
            return;
        }
        if !self.disconnect_seen {
            self.check_gap(
                kind::DISCONNECT,
                "closed the connection (no DISCONNECT)",
                now,
            );
            self.check_owed_pubrels("closed the connection without DISCONNECT");
        }
        self.ended = true;
    }

    /// The proxy or the broker ended the connection: what the client still owed is not its
    /// fault, so nothing more is checked.
    pub fn cut(&mut self) {
        if !self.ended {
            self.cut = true;
        }
        self.ended = true;
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Every violation kept (at most [`KEPT_PER_RULE`] per rule), in the order seen.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// All violations, kept or not.
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    /// Client packets of this type seen (`kind::PUBLISH`...).
    pub fn client_count(&self, kind: u8) -> u64 {
        self.client_counts[kind as usize]
    }

    /// Broker packets of this type handed to the client.
    pub fn broker_count(&self, kind: u8) -> u64 {
        self.broker_counts[kind as usize]
    }

    /// The longest silence between two client packets.
    pub fn max_gap(&self) -> Duration {
        self.max_gap
    }

    fn violate(&mut self, kind: u8, detail: String) {
        self.violation_count += 1;
        let rule = detail.rfind('[').map_or("", |at| &detail[at..]).to_string();
        let seen = self.per_rule.entry(rule).or_insert(0);
        *seen += 1;
        if *seen <= KEPT_PER_RULE {
            self.violations.push(format!(
                "conn {}: {}: {detail}",
                self.conn, NAMES[kind as usize]
            ));
        }
    }

    /// Violations per rule citation (`[MQTT-2.3.1-2]` -> count), kept or not.
    pub fn per_rule(&self) -> &BTreeMap<String, u64> {
        &self.per_rule
    }

    fn land(&mut self, pkid: u16) {
        if let Some((_, n)) = self.in_flight.get_mut(&pkid) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&pkid);
            }
        }
    }

    /// The client must send a packet before the keep-alive interval is over [MQTT-3.1.2-23].
    fn check_gap(&mut self, kind: u8, what: &str, now: Duration) {
        let Some(last) = self.last_client_at else {
            return;
        };
        let gap = now.saturating_sub(last);
        self.max_gap = self.max_gap.max(gap);
        if !self.keep_alive.is_zero() && gap > self.keep_alive {
            self.violate(
                kind,
                format!(
                    "{what} {:.6} s after the previous client packet; keep-alive is {} s \
                     [MQTT-3.1.2-23]",
                    gap.as_secs_f64(),
                    self.keep_alive.as_secs()
                ),
            );
        }
    }

    fn check_owed_pubrels(&mut self, how: &str) {
        let mut owed: Vec<u16> = self.owed_pubrel.keys().copied().collect();
        owed.sort_unstable();
        for pkid in owed {
            self.violate(
                kind::PUBREC,
                format!("{how} with the PUBREC for packet id {pkid} never answered by PUBREL [MQTT-4.3.3-1]"),
            );
        }
        self.owed_pubrel.clear();
    }

    /// Valid UTF-8 without U+0000 [MQTT-1.5.3-1, MQTT-1.5.3-2]; returns it (lossy) for more
    /// checks.
    fn check_str(&mut self, kind: u8, what: &str, bytes: &[u8]) -> String {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                if s.contains('\0') {
                    self.violate(kind, format!("{what} {s:?} contains U+0000 [MQTT-1.5.3-2]"));
                }
                s.to_string()
            }
            Err(e) => {
                let lossy = String::from_utf8_lossy(bytes).into_owned();
                self.violate(
                    kind,
                    format!("{what} {lossy:?} is not valid UTF-8 ({e}) [MQTT-1.5.3-1]"),
                );
                lossy
            }
        }
    }

    /// A new packet identifier must be non-zero [MQTT-2.3.1-1] and not in flight
    /// [MQTT-2.3.1-2].
    fn take_pkid(&mut self, kind: u8, pkid: u16, awaiting: Awaiting) {
        if pkid == 0 {
            self.violate(kind, "packet id 0 [MQTT-2.3.1-1]".into());
            return;
        }
        match self.in_flight.get_mut(&pkid) {
            Some((old, n)) => {
                let old = *old;
                *n += 1;
                self.violate(
                    kind,
                    format!(
                        "packet id {pkid} reused while still in flight as {} [MQTT-2.3.1-2]",
                        old.describe()
                    ),
                );
            }
            None => {
                self.in_flight.insert(pkid, (awaiting, 1));
            }
        }
    }

    fn client_packet(&mut self, header: u8, body: &[u8], now: Duration) {
        let kind = header >> 4;
        let flags = header & 0b0000_1111;
        self.client_counts[kind as usize] += 1;
        self.check_gap(kind, "sent", now);
        self.last_client_at = Some(now);
        if self.disconnect_seen {
            self.violate(kind, "sent after DISCONNECT [MQTT-3.14.4-2]".into());
        }
        if kind == kind::CONNECT {
            if self.connect_seen {
                self.violate(kind, "a second CONNECT [MQTT-3.1.0-2]".into());
            }
        } else if !self.connect_seen {
            self.violate(
                kind,
                "the first packet is not CONNECT [MQTT-3.1.0-1]".into(),
            );
        }

        // Fixed header flags (section 2.2.2, table 2.2).
        let expected_flags = match kind {
            kind::PUBLISH => None,
            kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => Some(0b0010),
            kind::CONNECT
            | kind::PUBACK
            | kind::PUBREC
            | kind::PUBCOMP
            | kind::PINGREQ
            | kind::DISCONNECT => Some(0),
            _ => {
                self.violate(
                    kind,
                    "a packet type a client never sends [MQTT-2.2.1]".into(),
                );
                return;
            }
        };
        if let Some(expected) = expected_flags.filter(|&e| e != flags) {
            self.violate(
                kind,
                format!("fixed header flags {flags:#06b}, must be {expected:#06b} [MQTT-2.2.2-1]"),
            );
        }

        let mut b = Body { buf: body, at: 0 };
        let result = match kind {
            kind::CONNECT => self.connect(&mut b),
            kind::PUBLISH => self.publish(flags, &mut b),
            kind::PUBACK | kind::PUBREC | kind::PUBCOMP => b.u16("the packet id").map(|_| ()),
            kind::PUBREL => b.u16("the packet id").map(|pkid| {
                self.owed_pubrel.remove(&pkid);
            }),
            kind::SUBSCRIBE => self.subscribe(&mut b),
            kind::UNSUBSCRIBE => self.unsubscribe(&mut b),
            kind::PINGREQ => Ok(()),
            kind::DISCONNECT => {
                self.check_owed_pubrels("sent DISCONNECT");
                self.disconnect_seen = true;
                Ok(())
            }
            _ => unreachable!(),
        };
        match result {
            Err(e) => self.violate(kind, format!("malformed: {e} [MQTT-1.5, 2.2.3]")),
            Ok(()) if b.left() > 0 && kind != kind::PUBLISH => {
                let left = b.left();
                self.violate(
                    kind,
                    format!("{left} bytes past the end of the packet (remaining length {}) [MQTT-2.2.3]", body.len()),
                );
            }
            Ok(()) => {}
        }
    }

    /// Section 3.1: protocol name and level, flags, keep-alive, then the payload fields in
    /// order, each present exactly when its flag says so.
    fn connect(&mut self, b: &mut Body) -> Result<(), String> {
        const K: u8 = kind::CONNECT;
        self.connect_seen = true;
        let name = b.bytes("the protocol name")?;
        if name != b"MQTT" {
            let name = String::from_utf8_lossy(name).into_owned();
            self.violate(
                K,
                format!("protocol name {name:?}, must be \"MQTT\" [MQTT-3.1.2-1]"),
            );
        }
        let level = b.u8("the protocol level")?;
        if level != 4 {
            self.violate(
                K,
                format!("protocol level {level}, 3.1.1 is 4 [MQTT-3.1.2-2]"),
            );
        }
        let flags = b.u8("the connect flags")?;
        if flags & 0b0000_0001 != 0 {
            self.violate(K, "reserved connect flag set [MQTT-3.1.2-3]".into());
        }
        let will = flags & 0b0000_0100 != 0;
        let will_qos = (flags >> 3) & 0b11;
        let will_retain = flags & 0b0010_0000 != 0;
        let password = flags & 0b0100_0000 != 0;
        let user = flags & 0b1000_0000 != 0;
        if will_qos == 3 {
            self.violate(K, "will QoS 3 [MQTT-3.1.2-14]".into());
        }
        if !will && (will_qos != 0 || will_retain) {
            self.violate(
                K,
                "will QoS or will retain set without the will flag [MQTT-3.1.2-13, MQTT-3.1.2-15]"
                    .into(),
            );
        }
        if password && !user {
            self.violate(
                K,
                "password flag without user name flag [MQTT-3.1.2-22]".into(),
            );
        }
        self.keep_alive = Duration::from_secs(b.u16("the keep-alive")?.into());
        let id = b.bytes("the client id")?;
        self.check_str(K, "client id", id);
        if will {
            let topic = b.bytes("the will topic")?;
            let topic = self.check_str(K, "will topic", topic);
            self.check_topic_name(K, "will topic", &topic);
            b.bytes("the will message")?;
        }
        if user {
            let name = b.bytes("the user name")?;
            self.check_str(K, "user name", name);
        }
        if password {
            b.bytes("the password")?;
        }
        Ok(())
    }

    /// Topic names are at least one character [MQTT-4.7.3-1] with no wildcard [MQTT-3.3.2-2].
    fn check_topic_name(&mut self, kind: u8, what: &str, topic: &str) {
        if topic.is_empty() {
            self.violate(kind, format!("empty {what} [MQTT-4.7.3-1]"));
        }
        if topic.contains(['+', '#']) {
            self.violate(
                kind,
                format!("{what} {topic:?} contains a wildcard [MQTT-3.3.2-2]"),
            );
        }
    }

    fn publish(&mut self, flags: u8, b: &mut Body) -> Result<(), String> {
        const K: u8 = kind::PUBLISH;
        let dup = flags & 0b1000 != 0;
        let qos = (flags >> 1) & 0b11;
        if qos == 3 {
            self.violate(K, "QoS 3 [MQTT-3.3.1-4]".into());
        }
        if qos == 0 && dup {
            self.violate(K, "DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]".into());
        }
        let topic = b.bytes("the topic name")?;
        let topic = self.check_str(K, "topic name", topic);
        self.check_topic_name(K, "topic name", &topic);
        if qos == 1 || qos == 2 {
            let pkid = b.u16("the packet id")?;
            let awaiting = if qos == 1 {
                Awaiting::PubAck
            } else {
                Awaiting::PubRec
            };
            // A retransmission (DUP) may carry an id in flight; a new message may not.
            if !dup || !self.in_flight.contains_key(&pkid) {
                self.take_pkid(K, pkid, awaiting);
            }
        }
        Ok(())
    }

    /// Section 3.8: packet id, then at least one (filter, requested QoS) [MQTT-3.8.3-3].
    fn subscribe(&mut self, b: &mut Body) -> Result<(), String> {
        const K: u8 = kind::SUBSCRIBE;
        let pkid = b.u16("the packet id")?;
        self.take_pkid(K, pkid, Awaiting::SubAck);
        if b.left() == 0 {
            self.violate(K, "no topic filter [MQTT-3.8.3-3]".into());
        }
        while b.left() > 0 {
            let filter = b.bytes("a topic filter")?;
            let filter = self.check_str(K, "topic filter", filter);
            if filter.is_empty() {
                self.violate(K, "empty topic filter [MQTT-4.7.3-1]".into());
            }
            let qos = b.u8("the requested QoS")?;
            if qos > 2 {
                self.violate(
                    K,
                    format!("requested QoS byte {qos:#010b} for {filter:?} [MQTT-3.8.3-4]"),
                );
            }
        }
        Ok(())
    }

    /// Section 3.10: packet id, then at least one filter [MQTT-3.10.3-2].
    fn unsubscribe(&mut self, b: &mut Body) -> Result<(), String> {
        const K: u8 = kind::UNSUBSCRIBE;
        let pkid = b.u16("the packet id")?;
        self.take_pkid(K, pkid, Awaiting::UnsubAck);
        if b.left() == 0 {
            self.violate(K, "no topic filter [MQTT-3.10.3-2]".into());
        }
        while b.left() > 0 {
            let filter = b.bytes("a topic filter")?;
            let filter = self.check_str(K, "topic filter", filter);
            if filter.is_empty() {
                self.violate(K, "empty topic filter [MQTT-4.7.3-1]".into());
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// How long a blocked read or write waits before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(50);

/// One proxied connection: its checker and both sockets (clones, so it can be cut).
struct Link {
    checker: Mutex<Checker>,
    client: TcpStream,
    broker: TcpStream,
}

impl Link {
    fn cut(&self) -> bool {
        let cut = {
            let mut checker = self.checker.lock().unwrap();
            let was_open = !checker.is_ended();
            checker.cut();
            was_open
        };
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.broker.shutdown(Shutdown::Both);
        cut
    }
}

struct Shared {
    upstream: u16,
    ack_delay: Duration,
    started: Instant,
    stop: AtomicBool,
    links: Mutex<Vec<Arc<Link>>>,
    upstream_failures: Mutex<Vec<String>>,
}

impl Shared {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A TCP proxy on `127.0.0.1:port` in front of a broker on `127.0.0.1:upstream`, checking
/// every client connection with a [`Checker`]. Stopped and joined on drop.
pub struct StrictProxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl StrictProxy {
    /// Forward everything as it comes.
    pub fn start(upstream: u16) -> StrictProxy {
        Self::with_ack_delay(upstream, Duration::ZERO)
    }

    /// Hold every PUBACK, PUBREC and PUBCOMP from the broker for `ack_delay` before handing
    /// it to the client: a slow broker. Packets keep their order (one behind a delayed ack
    /// waits for it).
    pub fn with_ack_delay(upstream: u16, ack_delay: Duration) -> StrictProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            ack_delay,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
            upstream_failures: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, &shared))
        };
        StrictProxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`, as mqblast's `-H` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cut every open connection (both sockets shut down at once, as a network failure
    /// would); returns how many were open.
    pub fn cut_all(&self) -> usize {
        let links = self.shared.links.lock().unwrap().clone();
        links.iter().filter(|l| l.cut()).count()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.links.lock().unwrap().len()
    }

    /// Connections that ended by a cut (the proxy's, or the broker closing first).
    pub fn cut_connections(&self) -> usize {
        self.each(|c| u64::from(c.was_cut())) as usize
    }

    /// Wait until every connection has ended (client closed or cut), at most `timeout`;
    /// true when they all had. Call after mqblast exited, before reading the verdict.
    pub fn wait_until_all_ended(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let open = self.each(|c| u64::from(!c.is_ended()));
            if open == 0 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every violation kept, connection by connection.
    pub fn violations(&self) -> Vec<String> {
        let links = self.shared.links.lock().unwrap().clone();
        let mut all: Vec<String> = links
            .iter()
            .flat_map(|l| l.checker.lock().unwrap().violations().to_vec())
            .collect();
        all.extend(
            self.shared
                .upstream_failures
                .lock()
                .unwrap()
                .iter()
                .cloned(),
        );
        all
    }

    pub fn violation_count(&self) -> u64 {
        self.each(|c| c.violation_count())
    }

    /// Client packets of a type (`kind::PUBLISH`...) over all connections.
    pub fn client_packets(&self, kind: u8) -> u64 {
        self.each(|c| c.client_count(kind))
    }

    /// Broker packets of a type handed to clients over all connections.
    pub fn broker_packets(&self, kind: u8) -> u64 {
        self.each(|c| c.broker_count(kind))
    }

    /// The longest silence between two client packets on any connection.
    pub fn max_client_gap(&self) -> Duration {
        let links = self.shared.links.lock().unwrap().clone();
        links
            .iter()
            .map(|l| l.checker.lock().unwrap().max_gap())
            .max()
            .unwrap_or_default()
    }

    /// Packet counts both ways, the longest gap and the first violations, for messages.
    pub fn report(&self) -> String {
        let mut out = format!(
            "strict proxy: {} connections ({} cut), {} violations, longest client gap {:.3} s\n",
            self.connections(),
            self.cut_connections(),
            self.violation_count(),
            self.max_client_gap().as_secs_f64()
        );
        for k in 1..15u8 {
            let (c, b) = (self.client_packets(k), self.broker_packets(k));
            if c + b > 0 {
                out += &format!(
                    "  {:<11} client->broker {c:>7}  broker->client {b:>7}\n",
                    NAMES[k as usize]
                );
            }
        }
        let violations = self.violations();
        for (rule, n) in self.per_rule() {
            out += &format!("  {n} x {rule}, for example:\n");
            for v in violations.iter().filter(|v| v.ends_with(&rule)).take(5) {
                out += &format!("    {v}\n");
            }
        }
        out
    }

    /// Violations per rule citation over all connections.
    pub fn per_rule(&self) -> BTreeMap<String, u64> {
        let links = self.shared.links.lock().unwrap().clone();
        let mut all = BTreeMap::new();
        for l in &links {
            for (rule, n) in l.checker.lock().unwrap().per_rule() {
                *all.entry(rule.clone()).or_insert(0) += n;
            }
        }
        all
    }

    /// Assert that no rule was broken, with the run's output and the report when one was.
    pub fn assert_clean(&self, run: &super::Finished) {
        assert!(
            self.wait_until_all_ended(Duration::from_secs(5)),
            "connections still open 5 s after mqblast exited:\n{}",
            self.report()
        );
        assert!(
            self.violation_count() == 0 && self.violations().is_empty(),
            "mqblast broke MQTT 3.1.1 client rules:\n{}\n{}",
            self.report(),
            run.describe()
        );
    }

    fn each(&self, f: impl Fn(&Checker) -> u64) -> u64 {
        let links = self.shared.links.lock().unwrap().clone();
        links.iter().map(|l| f(&l.checker.lock().unwrap())).sum()
    }
}

impl Drop for StrictProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for link in self.shared.links.lock().unwrap().iter() {
            link.cut();
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    let mut threads = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        let addr = ([127, 0, 0, 1], shared.upstream).into();
        let broker = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(broker) => broker,
            Err(e) => {
                // Not the client's fault; reported so the test does not pass on nothing.
                shared
                    .upstream_failures
                    .lock()
                    .unwrap()
                    .push(format!("proxy: connecting upstream {addr}: {e}"));
                continue;
            }
        };
        for s in [&client, &broker] {
            let _ = s.set_nonblocking(false);
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(POLL));
        }
        let link = {
            let mut links = shared.links.lock().unwrap();
            let link = Arc::new(Link {
                checker: Mutex::new(Checker::new(links.len() as u32 + 1)),
                client: client.try_clone().unwrap(),
                broker: broker.try_clone().unwrap(),
            });
            links.push(link.clone());
            link
        };
        let (s, l) = (shared.clone(), link.clone());
        threads.push(std::thread::spawn(move || client_to_broker(client, &s, &l)));
        let (s, l) = (shared.clone(), link);
        threads.push(std::thread::spawn(move || broker_to_client(broker, &s, &l)));
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Write all of `bytes`, looking at the stop flag between timeouts. False when the peer is
/// gone or the proxy stops.
fn write_all(stream: &mut TcpStream, mut bytes: &[u8], stop: &AtomicBool) -> bool {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Client -> broker: check, then forward. A client EOF is checked (owed PUBRELs, the last
/// silence) and passed on as a half-close, so the broker sees the client go.
fn client_to_broker(mut client: TcpStream, shared: &Shared, link: &Link) {
    let mut broker = link.broker.try_clone().unwrap();
    let _ = client.set_read_timeout(Some(POLL));
    let mut chunk = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        match client.read(&mut chunk) {
            Ok(0) => {
                link.checker.lock().unwrap().client_closed(shared.now());
                let _ = broker.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                link.checker
                    .lock()
                    .unwrap()
                    .client_bytes(&chunk[..n], shared.now());
                if !write_all(&mut broker, &chunk[..n], &shared.stop) {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                // A reset by the client is the client closing (unless it was cut).
                link.checker.lock().unwrap().client_closed(shared.now());
                let _ = broker.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn is_ack(header: u8) -> bool {
    matches!(header >> 4, kind::PUBACK | kind::PUBREC | kind::PUBCOMP)
}

/// Broker -> client: split into packets, hold acks for the delay (keeping order), and tell the
/// checker about each packet just before the client can read it. The broker closing first is
/// a cut: the client owed nothing more.
fn broker_to_client(mut broker: TcpStream, shared: &Shared, link: &Link) {
    let mut client = link.client.try_clone().unwrap();
    let mut buf: Vec<u8> = Vec::new();
    // (release at, fixed header, body start, packet bytes)
    let mut queue: VecDeque<(Duration, u8, usize, Vec<u8>)> = VecDeque::new();
    let mut unframed = false;
    let mut broker_eof = false;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let now = shared.now();
        // Hand over what is due, checker first (the client cannot act on it before).
        {
            let mut checker = link.checker.lock().unwrap();
            while let Some((at, header, start, _)) = queue.front() {
                if *at > now {
                    break;
                }
                let (header, start) = (*header, *start);
                let (_, _, _, bytes) = queue.pop_front().unwrap();
                // Header 0 marks bytes passed through unparsed (no packet has type 0).
                if header != 0 {
                    checker.broker_packet(header, &bytes[start..], now);
                }
                out.extend_from_slice(&bytes);
            }
            if checker.was_cut() {
                return;
            }
        }
        if !out.is_empty() {
            if !write_all(&mut client, &out, &shared.stop) {
                return;
            }
            out.clear();
        }
        if broker_eof {
            if queue.is_empty() {
                link.checker.lock().unwrap().cut();
                let _ = client.shutdown(Shutdown::Write);
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let wait = queue
            .front()
            .map_or(POLL, |(at, ..)| at.saturating_sub(now).min(POLL))
            .max(Duration::from_millis(1));
        let _ = broker.set_read_timeout(Some(wait));
        match broker.read(&mut chunk) {
            Ok(0) => broker_eof = true,
            Ok(n) if unframed => queue.push_back((now, 0, 0, chunk[..n].to_vec())),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let now = shared.now();
                let mut used = 0;
                loop {
                    match split_frame(&buf[used..]) {
                        Ok(Some((header, start, end))) => {
                            let delay = if is_ack(header) {
                                shared.ack_delay
                            } else {
                                Duration::ZERO
                            };
                            let last = queue.back().map_or(Duration::ZERO, |q| q.0);
                            let at = (now + delay).max(last);
                            queue.push_back((at, header, start, buf[used..used + end].to_vec()));
                            used += end;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            // Not ours to judge: pass the rest through unparsed.
                            unframed = true;
                            let rest = buf[used..].to_vec();
                            queue.push_back((now, 0, 0, rest));
                            used = buf.len();
                            break;
                        }
                    }
                }
                buf.drain(..used);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => broker_eof = true,
        }
    }
}
