//! MQTT over WebSocket (RFC 6455, MQTT 3.1.1 section 6): the HTTP/1.1 upgrade, client frames
//! written around the pre-serialized bytes, and server frames decoded in place.
//!
//! Why by hand: a WebSocket library owns its buffers and copies every message into a frame of
//! its own; here the write buffer of MQTT frames *is* the frame payload. At flush time the
//! unframed tail of the write buffer becomes one binary frame: its 2 to 14 header bytes live
//! in this struct, the payload is masked in place (an XOR pass, no copy) and header and payload
//! go out with one vectored write (or one TLS encryption each). Server frames are unmasked, so
//! their payload bytes are moved to the front of the read buffer in place and handed to the
//! MQTT decoder as they are; a frame or header cut by a read is resumed on the next read.
//!
//! Bounds: the upgrade request (< 512 bytes) and the response (at most
//! [`UPGRADE_RESPONSE_MAX_BYTES`]) exist only during the upgrade; afterwards a connection holds
//! this struct only (about 300 bytes: a frame header, one control frame payload of at most
//! 125 bytes, and the pong owed for the last ping). Control frames from the server are answered
//! between our frames, never inside one.

use std::fmt::Write as _;

/// A server response to the upgrade longer than this (headers included) is refused.
pub const UPGRADE_RESPONSE_MAX_BYTES: usize = 8 * 1024;
/// RFC 6455 section 1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const FIN: u8 = 0b1000_0000;
const MASK: u8 = 0b1000_0000;
/// Close status: normal closure (section 7.4.1); also our answer to a close without a code.
const CLOSE_NORMAL: u16 = 1000;
/// Close status: protocol error (section 7.4.1), our answer to a code no endpoint may send.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// What [`Ws::close_received`] holds for a close frame without a status code (section
/// 7.1.5); never sent (section 7.4.1).
pub const CLOSE_NO_STATUS: u16 = 1005;
/// Masking keys drawn from the OS's random source at a time: one `getrandom` per this many
/// frames written, from a buffer inside the connection (no allocation).
const MASKS_PER_DRAW: usize = 32;
/// Control frames carry at most 125 bytes (section 5.5).
const CONTROL_MAX_BYTES: usize = 125;
/// Longest frame header: 2 + 8 (64-bit length) + 4 (mask key).
const HEADER_MAX_BYTES: usize = 14;

/// Why the WebSocket layer gave up; each is a failure reason of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsError {
    /// The server answered the upgrade with this HTTP status instead of 101.
    UpgradeRefused(u16),
    /// The upgrade response was not a valid WebSocket acceptance (what was wrong).
    BadUpgrade(&'static str),
    /// A frame broke RFC 6455 or cannot carry MQTT (what was wrong).
    Protocol(&'static str),
    /// The server sent a close frame with this status code (1005: none given).
    Closed(u16),
}

impl WsError {
    pub fn describe(&self) -> String {
        match self {
            WsError::UpgradeRefused(status) => {
                format!("websocket upgrade failed: HTTP {status} (is --ws-path right?)")
            }
            WsError::BadUpgrade(what) => format!("websocket upgrade failed: {what}"),
            WsError::Protocol(what) => format!("websocket protocol error: {what}"),
            WsError::Closed(code) => {
                format!("websocket closed by the broker: close frame, code {code}")
            }
        }
    }
}

/// The upgrade handshake, alive only until the 101 arrived (client) or was sent (server).
struct Upgrade {
    /// What we send: the request (client) or the 101 response (server, once known).
    request: Vec<u8>,
    request_sent: usize,
    /// What we receive: the response (client) or the request (server).
    response: Vec<u8>,
    /// Client: base64(SHA-1(key + GUID)), what Sec-WebSocket-Accept must say.
    expected_accept: String,
    /// Server: the request was read and answered; frames may follow.
    request_read: bool,
}

/// One connection's WebSocket state.
pub struct Ws {
    upgrade: Option<Box<Upgrade>>,
    /// Masking keys (section 5.3: unpredictable, from a strong source): bytes from the OS's
    /// random source, drawn [`MASKS_PER_DRAW`] keys at a time so there is no syscall per
    /// frame; `mask_next` is the next unused key (== `MASKS_PER_DRAW`: draw again).
    mask_pool: [[u8; 4]; MASKS_PER_DRAW],
    mask_next: usize,
    /// Draws from the OS's random source so far (for tests).
    mask_draws: u64,
    /// The header of the binary frame being written and how much of it went out.
    out_header: [u8; HEADER_MAX_BYTES],
    out_header_len: u8,
    out_header_sent: u8,
    /// Bytes at the front of the write buffer that are masked payload of that frame.
    out_payload_len: usize,
    /// A control frame to write before the next binary frame (a pong or our close).
    out_control: [u8; 2 + 4 + CONTROL_MAX_BYTES],
    out_control_len: u8,
    out_control_sent: u8,
    decoder: Decoder,
    /// The peer sent a close frame (answered once, then the connection ends).
    pub close_received: Option<u16>,
    /// The server side (the calibration sink): frames in are masked, frames out are not.
    server: bool,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws")
            .field("open", &self.is_open())
            .field("server", &self.server)
            .field("close_received", &self.close_received)
            .finish()
    }
}

impl Ws {
    /// Start an upgrade of `path` on `host` (the Host header).
    pub fn new(host: &str, path: &str) -> Ws {
        let mut seed = [0u8; 16];
        fill_random(&mut seed);
        let key = crate::stats::hdr_codec::base64_encode(&seed);
        let mut request = String::with_capacity(256);
        let _ = write!(
            request,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        Ws {
            upgrade: Some(Box::new(Upgrade {
                request: request.into_bytes(),
                request_sent: 0,
                response: Vec::new(),
                expected_accept: accept_of(&key),
                request_read: false,
            })),
            mask_pool: [[0; 4]; MASKS_PER_DRAW],
            mask_next: MASKS_PER_DRAW,
            mask_draws: 0,
            out_header: [0; HEADER_MAX_BYTES],
            out_header_len: 0,
            out_header_sent: 0,
            out_payload_len: 0,
            out_control: [0; 2 + 4 + CONTROL_MAX_BYTES],
            out_control_len: 0,
            out_control_sent: 0,
            decoder: Decoder::default(),
            close_received: None,
            server: false,
        }
    }

    /// The server side of an upgrade (`mqblast sink --websocket`): reads the request,
    /// answers 101, then reads masked frames and writes unmasked ones.
    pub fn server() -> Ws {
        let mut ws = Ws::new("", "/");
        if let Some(up) = ws.upgrade.as_mut() {
            up.request.clear();
            up.expected_accept.clear();
        }
        ws.server = true;
        ws.decoder.masked = true;
        ws
    }

    /// Server: the request is not read yet (bytes go to [`Ws::on_upgrade_bytes`]).
    pub fn awaits_request(&self) -> bool {
        self.server && self.upgrade.as_ref().is_some_and(|up| !up.request_read)
    }

    /// The upgrade is done: MQTT may flow.
    pub fn is_open(&self) -> bool {
        self.upgrade.is_none()
    }

    /// Feed bytes that arrived during the upgrade. Returns how many bytes of `buf` the upgrade
    /// response used (the rest are already WebSocket frames), or 0 and keeps them while the
    /// response is incomplete.
    pub fn on_upgrade_bytes(&mut self, buf: &[u8]) -> Result<usize, WsError> {
        let Some(up) = self.upgrade.as_mut() else {
            return Ok(0);
        };
        let before = up.response.len();
        let room = UPGRADE_RESPONSE_MAX_BYTES.saturating_sub(before);
        up.response.extend_from_slice(&buf[..buf.len().min(room)]);
        let Some(end) = find_header_end(&up.response) else {
            if up.response.len() >= UPGRADE_RESPONSE_MAX_BYTES {
                return Err(WsError::BadUpgrade("response headers too long"));
            }
            return Ok(buf.len());
        };
        if self.server {
            let key = upgrade_request_key(&up.response[..end])?;
            up.request = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                accept_of(&key)
            )
            .into_bytes();
            up.request_read = true;
            return Ok(end - before);
        }
        check_upgrade_response(&up.response[..end], &up.expected_accept)?;
        self.upgrade = None;
        Ok(end - before)
    }

    /// Decode server frames in place: MQTT payload bytes are moved to the front of `buf`;
    /// returns how many. Pings are answered (`out_control`), a close is recorded.
    pub fn decode(&mut self, buf: &mut [u8]) -> Result<usize, WsError> {
        let mut events = Events::default();
        let n = self.decoder.decode(buf, &mut events)?;
        if let Some((len, payload)) = events.ping {
            self.queue_control(OP_PONG, &payload[..len]);
        }
        if let Some((code, reply)) = events.close {
            self.close_received = Some(code);
            self.queue_control(OP_CLOSE, &reply.to_be_bytes());
        }
        Ok(n)
    }

    /// Our close (section 5.5.1) after the last frame: status 1000, normal closure. It takes
    /// the place of a pong not yet started (the connection ends anyway).
    pub fn queue_close(&mut self) {
        if self.out_control_sent == 0 {
            self.out_control_len = 0;
        }
        self.queue_control(OP_CLOSE, &CLOSE_NORMAL.to_be_bytes());
    }

    fn queue_control(&mut self, opcode: u8, payload: &[u8]) {
        if self.out_control_len != 0 {
            // One control frame is still going out; a newer ping supersedes nothing we owe
            // beyond it (section 5.5.3 allows answering only the most recent ping).
            return;
        }
        let len = payload.len().min(CONTROL_MAX_BYTES);
        self.out_control[0] = FIN | opcode;
        let at = if self.server {
            self.out_control[1] = len as u8;
            self.out_control[2..2 + len].copy_from_slice(&payload[..len]);
            2
        } else {
            let key = self.next_mask();
            self.out_control[1] = MASK | len as u8;
            self.out_control[2..6].copy_from_slice(&key);
            for (i, &b) in payload[..len].iter().enumerate() {
                self.out_control[6 + i] = b ^ key[i & 3];
            }
            6
        };
        self.out_control_len = (at + len) as u8;
        self.out_control_sent = 0;
    }

    fn next_mask(&mut self) -> [u8; 4] {
        if self.mask_next == MASKS_PER_DRAW {
            fill_random(self.mask_pool.as_flattened_mut());
            self.mask_next = 0;
            self.mask_draws += 1;
        }
        let key = self.mask_pool[self.mask_next];
        self.mask_next += 1;
        key
    }

    /// What to write next, in order: the pending upgrade request, or a control frame, the
    /// current frame's header and its masked payload (the front of `wbuf`). Frames the
    /// unframed bytes of `wbuf` when no frame is in progress.
    pub fn chunks<'a>(&'a mut self, wbuf: &'a mut [u8]) -> [&'a [u8]; 3] {
        if self.upgrade.is_some() {
            let up = self
                .upgrade
                .as_deref()
                .map_or(&[][..], |up| &up.request[up.request_sent..]);
            return [up, &[], &[]];
        }
        if self.out_payload_len == 0 && self.out_header_len == 0 && !wbuf.is_empty() {
            let key = (!self.server).then(|| self.next_mask());
            self.out_header_len = binary_header(&mut self.out_header, wbuf.len(), key) as u8;
            self.out_header_sent = 0;
            if let Some(key) = key {
                mask(wbuf, key);
            }
            self.out_payload_len = wbuf.len();
        }
        let control =
            &self.out_control[self.out_control_sent as usize..self.out_control_len as usize];
        // A control frame goes out only between frames: while a frame is half written, the
        // control frame waits behind it.
        let frame_started = self.out_header_sent > 0;
        let (control, header, payload) = if frame_started || control.is_empty() {
            (
                &[][..],
                &self.out_header[self.out_header_sent as usize..self.out_header_len as usize],
                &wbuf[..self.out_payload_len],
            )
        } else {
            (control, &[][..], &[][..])
        };
        [control, header, payload]
    }

    /// `n` bytes of [`Ws::chunks`] were written: returns how many came from the front of
    /// `wbuf` (the caller drops those).
    pub fn advance(&mut self, mut n: usize) -> usize {
        if let Some(up) = self.upgrade.as_mut() {
            up.request_sent += n;
            if self.server && up.request_read && up.request_sent >= up.request.len() {
                self.upgrade = None; // the 101 is out: frames may go now
            }
            return 0;
        }
        let frame_started = self.out_header_sent > 0;
        let control_left = (self.out_control_len - self.out_control_sent) as usize;
        if !frame_started && control_left > 0 {
            let c = n.min(control_left);
            self.out_control_sent += c as u8;
            if self.out_control_sent == self.out_control_len {
                self.out_control_len = 0;
                self.out_control_sent = 0;
            }
            return 0;
        }
        let header_left = (self.out_header_len - self.out_header_sent) as usize;
        let h = n.min(header_left);
        self.out_header_sent += h as u8;
        n -= h;
        let p = n.min(self.out_payload_len);
        self.out_payload_len -= p;
        if self.out_payload_len == 0 && self.out_header_sent == self.out_header_len {
            self.out_header_len = 0;
            self.out_header_sent = 0;
        }
        p
    }

    /// Whether anything of this layer's own (request, control frame, a header) is unwritten.
    pub fn wants_write(&self) -> bool {
        match self.upgrade.as_ref() {
            Some(up) => up.request_sent < up.request.len(),
            None => self.out_control_len > 0 || self.out_header_len > 0,
        }
    }
}

/// Encode a binary frame header for `len` payload bytes, masked with `key` (a client's) or
/// not (a server's); returns its length.
fn binary_header(out: &mut [u8; HEADER_MAX_BYTES], len: usize, key: Option<[u8; 4]>) -> usize {
    let mask_bit = if key.is_some() { MASK } else { 0 };
    out[0] = FIN | OP_BINARY;
    let at = if len < 126 {
        out[1] = mask_bit | len as u8;
        2
    } else if len <= u16::MAX as usize {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    match key {
        Some(key) => {
            out[at..at + 4].copy_from_slice(&key);
            at + 4
        }
        None => at,
    }
}

/// Server: the `Sec-WebSocket-Key` of an upgrade request (a GET asking for websocket).
fn upgrade_request_key(head: &[u8]) -> Result<String, WsError> {
    let text = std::str::from_utf8(head).map_err(|_| WsError::BadUpgrade("request not text"))?;
    if !text.starts_with("GET ") {
        return Err(WsError::BadUpgrade("not a GET request"));
    }
    text.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim().to_string())
        .ok_or(WsError::BadUpgrade("no Sec-WebSocket-Key"))
}

/// XOR `buf` with the repeating 4-byte key, in place.
fn mask(buf: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = buf.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

/// The status code to answer a close that carried `received` with (section 5.5.1: echo it):
/// 1002 for a code no endpoint may send (sections 7.4.1 and 7.4.2: under 1000, 1004, 1005,
/// 1006, 1015, 1016-2999 unassigned, 5000 and above), the code itself otherwise. A close
/// without a code is answered 1000 (1005 may not be sent).
fn close_reply(received: u16) -> u16 {
    match received {
        1000..=1003 | 1007..=1014 | 3000..=4999 => received,
        _ => CLOSE_PROTOCOL_ERROR,
    }
}

fn fill_random(out: &mut [u8]) {
    use ring::rand::SecureRandom;
    if ring::rand::SystemRandom::new().fill(out).is_err() {
        // No secure source (never on Linux): fall back to the clock, still unique per call.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        for (i, b) in out.iter_mut().enumerate() {
            *b = (nanos >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }
}

fn accept_of(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(ACCEPT_GUID.as_bytes());
    crate::stats::hdr_codec::base64_encode(ctx.finish().as_ref())
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The status line must say 101 and the headers must accept the key and the `mqtt` protocol.
fn check_upgrade_response(head: &[u8], expected_accept: &str) -> Result<(), WsError> {
    let text = std::str::from_utf8(head).map_err(|_| WsError::BadUpgrade("response not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(WsError::BadUpgrade("no HTTP status line"))?;
    if status != 101 {
        return Err(WsError::UpgradeRefused(status));
    }
    let mut accept_ok = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept_ok = value == expected_accept;
        }
        if name.eq_ignore_ascii_case("sec-websocket-protocol")
            && !value.eq_ignore_ascii_case("mqtt")
        {
            return Err(WsError::BadUpgrade(
                "server chose a subprotocol other than mqtt",
            ));
        }
    }
    if !accept_ok {
        return Err(WsError::BadUpgrade("missing or wrong Sec-WebSocket-Accept"));
    }
    Ok(())
}

/// What one decode call found besides MQTT bytes.
#[derive(Default)]
struct Events {
    ping: Option<(usize, [u8; CONTROL_MAX_BYTES])>,
    /// The status code received ([`CLOSE_NO_STATUS`] when none) and the one to answer.
    close: Option<(u16, u16)>,
}

/// Server frame decoder; resumable at any byte.
struct Decoder {
    header: [u8; HEADER_MAX_BYTES],
    header_len: usize,
    in_frame: bool,
    opcode: u8,
    fin: bool,
    remaining: u64,
    /// A fragmented binary message is in progress (continuations allowed).
    in_message: bool,
    control: [u8; CONTROL_MAX_BYTES],
    control_len: usize,
    /// Server side: frames must be masked; the current frame's key and position in it.
    masked: bool,
    mask_key: [u8; 4],
    mask_pos: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            header: [0; HEADER_MAX_BYTES],
            header_len: 0,
            in_frame: false,
            opcode: 0,
            fin: false,
            remaining: 0,
            in_message: false,
            control: [0; CONTROL_MAX_BYTES],
            control_len: 0,
            masked: false,
            mask_key: [0; 4],
            mask_pos: 0,
        }
    }
}

impl Decoder {
    fn decode(&mut self, buf: &mut [u8], events: &mut Events) -> Result<usize, WsError> {
        let (mut read, mut written) = (0, 0);
        while read < buf.len() {
            if !self.in_frame {
                let need = header_size(&self.header[..self.header_len]);
                let take = (need - self.header_len).min(buf.len() - read);
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&buf[read..read + take]);
                self.header_len += take;
                read += take;
                // Complete (the length bytes may have asked for more): start the frame now,
                // so a frame without payload at the end of a read is not left for later.
                let complete = self.header_len >= 2
                    && self.header_len == header_size(&self.header[..self.header_len]);
                if complete {
                    self.start_frame()?;
                    if self.remaining == 0 {
                        self.end_frame(events)?;
                    }
                }
                continue;
            }
            let take = (self.remaining.min((buf.len() - read) as u64)) as usize;
            if self.masked {
                self.unmask(&mut buf[read..read + take]);
            }
            if self.opcode == OP_BINARY || self.opcode == OP_CONTINUATION {
                buf.copy_within(read..read + take, written);
                written += take;
            } else {
                self.control[self.control_len..self.control_len + take]
                    .copy_from_slice(&buf[read..read + take]);
                self.control_len += take;
            }
            read += take;
            self.remaining -= take as u64;
            if self.remaining == 0 {
                self.end_frame(events)?;
            }
        }
        Ok(written)
    }

    /// Server side: undo the client's mask, continuing where the last part of the frame ended.
    fn unmask(&mut self, part: &mut [u8]) {
        for b in part.iter_mut() {
            *b ^= self.mask_key[self.mask_pos & 3];
            self.mask_pos += 1;
        }
    }

    fn start_frame(&mut self) -> Result<(), WsError> {
        let h = &self.header[..self.header_len];
        if h[0] & 0b0111_0000 != 0 {
            return Err(WsError::Protocol(
                "reserved bits set (no extension was agreed)",
            ));
        }
        match (h[1] & MASK != 0, self.masked) {
            (true, false) => return Err(WsError::Protocol("masked frame from the server")),
            (false, true) => return Err(WsError::Protocol("unmasked frame from a client")),
            (true, true) => {
                let at = self.header_len - 4;
                self.mask_key.copy_from_slice(&h[at..at + 4]);
                self.mask_pos = 0;
            }
            (false, false) => {}
        }
        let (fin, opcode) = (h[0] & FIN != 0, h[0] & 0x0f);
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            short => u64::from(short),
        };
        match opcode {
            OP_BINARY if self.in_message => {
                return Err(WsError::Protocol("new message inside a fragmented one"))
            }
            OP_BINARY => self.in_message = !fin,
            OP_CONTINUATION if !self.in_message => {
                return Err(WsError::Protocol("continuation without a message"))
            }
            OP_CONTINUATION => self.in_message = !fin,
            OP_TEXT => return Err(WsError::Protocol("text frame (MQTT needs binary frames)")),
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > CONTROL_MAX_BYTES as u64 {
                    return Err(WsError::Protocol("fragmented or oversized control frame"));
                }
            }
            _ => return Err(WsError::Protocol("unknown opcode")),
        }
        self.in_frame = true;
        self.opcode = opcode;
        self.fin = fin;
        self.remaining = len;
        self.header_len = 0;
        self.control_len = 0;
        Ok(())
    }

    fn end_frame(&mut self, events: &mut Events) -> Result<(), WsError> {
        self.in_frame = false;
        match self.opcode {
            OP_PING => {
                let mut payload = [0u8; CONTROL_MAX_BYTES];
                payload[..self.control_len].copy_from_slice(&self.control[..self.control_len]);
                events.ping = Some((self.control_len, payload));
            }
            OP_CLOSE => {
                events.close = Some(match self.control_len {
                    0 => (CLOSE_NO_STATUS, CLOSE_NORMAL),
                    1 => return Err(WsError::Protocol("close frame with a 1-byte body")),
                    _ => {
                        let code = u16::from_be_bytes([self.control[0], self.control[1]]);
                        (code, close_reply(code))
                    }
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Bytes of a frame header given its first bytes (2 until the length byte is known).
fn header_size(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if h[1] & MASK != 0 { 4 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_ws() -> Ws {
        let mut ws = Ws::new("localhost", "/mqtt");
        ws.upgrade = None;
        ws
    }

    #[test]
    fn the_accept_value_matches_the_rfc_example() {
        assert_eq!(
            accept_of("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_binary_frame_is_masked_in_place_and_unmasks_to_the_payload() {
        let mut ws = open_ws();
        let mut wbuf = b"\x30\x03a/bxyz".to_vec();
        let original = wbuf.clone();
        let [control, header, payload] = ws.chunks(&mut wbuf);
        assert!(control.is_empty());
        assert_eq!(header[0], FIN | OP_BINARY);
        assert_eq!(header[1], MASK | original.len() as u8);
        let key = [header[2], header[3], header[4], header[5]];
        let unmasked: Vec<u8> = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i & 3])
            .collect();
        assert_eq!(unmasked, original);
        assert_eq!(ws.advance(6 + original.len()), original.len());
        assert!(!ws.wants_write());
    }

    #[test]
    fn long_frames_use_the_16_and_64_bit_lengths() {
        let mut h = [0u8; HEADER_MAX_BYTES];
        assert_eq!(binary_header(&mut h, 300, Some([0; 4])), 8);
        assert_eq!((h[1], h[2], h[3]), (MASK | 126, 1, 44));
        assert_eq!(binary_header(&mut h, 70_000, Some([0; 4])), 14);
        assert_eq!(h[1], MASK | 127);
    }

    #[test]
    fn fragmented_binary_frames_split_anywhere_decode_to_the_payload() {
        // "ab" + "cd" as a fragmented message, then a ping, then "e" alone.
        let stream = [
            &[OP_BINARY, 2, b'a', b'b'][..],
            &[FIN | OP_CONTINUATION, 2, b'c', b'd'],
            &[FIN | OP_PING, 1, b'!'],
            &[FIN | OP_BINARY, 1, b'e'],
        ]
        .concat();
        for cut in 0..stream.len() {
            let mut ws = open_ws();
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                let mut buf = part.to_vec();
                let n = ws.decode(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"abcde", "cut at {cut}");
            assert_eq!(ws.out_control_len, 7, "a pong is owed");
        }
    }

    #[test]
    fn a_close_frame_is_recorded_and_echoed() {
        let mut ws = open_ws();
        let mut buf = vec![FIN | OP_CLOSE, 2, 0x03, 0xe8];
        assert_eq!(ws.decode(&mut buf), Ok(0));
        assert_eq!(ws.close_received, Some(1000));
        let mut wbuf = Vec::new();
        let [control, _, _] = ws.chunks(&mut wbuf);
        assert_eq!(control[0], FIN | OP_CLOSE);
    }

    /// The status code of the close frame `ws` answers with (client side: unmasked here).
    fn answered_close_code(ws: &mut Ws) -> u16 {
        let mut wbuf = Vec::new();
        let [control, _, _] = ws.chunks(&mut wbuf);
        assert_eq!(control[0], FIN | OP_CLOSE);
        assert_eq!(control[1], MASK | 2, "a 2-byte status code, masked");
        let key = [control[2], control[3], control[4], control[5]];
        u16::from_be_bytes([control[6] ^ key[0], control[7] ^ key[1]])
    }

    #[test]
    fn an_empty_close_frame_is_answered_with_1000_never_1005() {
        let mut ws = open_ws();
        let mut buf = vec![FIN | OP_CLOSE, 0];
        assert_eq!(ws.decode(&mut buf), Ok(0));
        assert_eq!(ws.close_received, Some(CLOSE_NO_STATUS));
        assert_eq!(answered_close_code(&mut ws), 1000);
    }

    #[test]
    fn a_close_with_an_invalid_code_is_answered_with_1002_and_a_valid_one_echoed() {
        for (received, answer) in [
            (999, 1002),
            (0, 1002),
            (1004, 1002),
            (1005, 1002),
            (1006, 1002),
            (1015, 1002),
            (1016, 1002),
            (2999, 1002),
            (5000, 1002),
            (1001, 1001),
            (1011, 1011),
            (3000, 3000),
            (4999, 4999),
        ] {
            let mut ws = open_ws();
            let [hi, lo] = u16::to_be_bytes(received);
            let mut buf = vec![FIN | OP_CLOSE, 2, hi, lo];
            assert_eq!(ws.decode(&mut buf), Ok(0));
            assert_eq!(answered_close_code(&mut ws), answer, "close {received}");
        }
        // The sink's side answers the same, unmasked.
        let mut server = Ws::server();
        server.upgrade = None;
        let mut buf = vec![FIN | OP_CLOSE, MASK, 1, 2, 3, 4];
        assert_eq!(server.decode(&mut buf), Ok(0));
        let mut wbuf = Vec::new();
        let [control, _, _] = server.chunks(&mut wbuf);
        assert_eq!(control, [FIN | OP_CLOSE, 2, 0x03, 0xe8]);
    }

    #[test]
    fn masking_keys_come_from_the_os_random_source_in_batches() {
        let mut ws = open_ws();
        let mut keys = Vec::new();
        for _ in 0..MASKS_PER_DRAW * 3 + 1 {
            let mut wbuf = b"\x30\x03a/bxyz".to_vec();
            let [_, header, _] = ws.chunks(&mut wbuf);
            keys.push([header[2], header[3], header[4], header[5]]);
            ws.advance(6 + 8);
        }
        // One draw per MASKS_PER_DRAW frames, and the keys are the bytes drawn.
        assert_eq!(ws.mask_draws, 4);
        assert_eq!(keys[3 * MASKS_PER_DRAW], ws.mask_pool[0]);
        assert_eq!(
            keys[2 * MASKS_PER_DRAW..3 * MASKS_PER_DRAW].len(),
            MASKS_PER_DRAW
        );
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(distinct.len() > keys.len() - 2, "{keys:?}");
    }

    #[test]
    fn text_masked_and_oversized_control_frames_are_protocol_errors() {
        for bad in [
            vec![FIN | OP_TEXT, 1, b'x'],
            vec![FIN | OP_BINARY, MASK | 1, 0, 0, 0, 0, b'x'],
            vec![FIN | OP_PING, 126, 0, 200],
            vec![FIN | OP_CONTINUATION, 0],
        ] {
            let mut buf = bad.clone();
            assert!(open_ws().decode(&mut buf).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_server_answers_the_upgrade_and_unmasks_what_a_client_framed() {
        let mut client = Ws::new("h", "/mqtt");
        let mut server = Ws::server();
        let request = client.upgrade.as_ref().unwrap().request.clone();
        assert_eq!(server.on_upgrade_bytes(&request), Ok(request.len()));
        let mut none = Vec::new();
        let [response, _, _] = server.chunks(&mut none);
        let response = response.to_vec();
        server.advance(response.len());
        assert!(server.is_open());
        assert_eq!(client.on_upgrade_bytes(&response), Ok(response.len()));
        // Client frame -> server, cut in the middle of the mask key and of the payload.
        let mut wbuf = b"\x30\x05\x00\x01tab".to_vec();
        let [_, header, payload] = client.chunks(&mut wbuf);
        let wire = [header, payload].concat();
        let mut got = Vec::new();
        for part in [&wire[..4], &wire[4..9], &wire[9..]] {
            let mut part = part.to_vec();
            let n = server.decode(&mut part).unwrap();
            got.extend_from_slice(&part[..n]);
        }
        assert_eq!(got, b"\x30\x05\x00\x01tab");
        // Server frames are not masked, and the client reads them.
        let mut ack = b"\x40\x02\x00\x01".to_vec();
        let [_, header, payload] = server.chunks(&mut ack);
        assert_eq!(header, [FIN | OP_BINARY, 4]);
        let mut wire = [header, payload].concat();
        let n = client.decode(&mut wire).unwrap();
        assert_eq!(&wire[..n], b"\x40\x02\x00\x01");
    }

    #[test]
    fn an_upgrade_response_other_than_101_names_its_status() {
        let mut ws = Ws::new("h", "/mqtt");
        let r = ws.on_upgrade_bytes(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r, Err(WsError::UpgradeRefused(404)));
    }

    #[test]
    fn a_101_with_the_right_accept_opens_and_leaves_the_frames_after_it() {
        let mut ws = Ws::new("h", "/mqtt");
        let accept = ws.upgrade.as_ref().unwrap().expected_accept.clone();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        let mut bytes = response.clone().into_bytes();
        bytes.extend_from_slice(&[FIN | OP_BINARY, 1, 0x20]);
        // Cut in two: the first part is kept, the second completes it.
        assert_eq!(ws.on_upgrade_bytes(&bytes[..10]), Ok(10));
        let used = ws.on_upgrade_bytes(&bytes[10..]).unwrap();
        assert_eq!(used, response.len() - 10);
        assert!(ws.is_open());
    }

    #[test]
    fn a_101_with_a_wrong_accept_is_refused() {
        let mut ws = Ws::new("h", "/mqtt");
        let r = ws.on_upgrade_bytes(
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n",
        );
        assert!(matches!(r, Err(WsError::BadUpgrade(_))));
    }
}
