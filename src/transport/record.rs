//! One TLS connection whose records are sealed and opened in buffers the connection owns.
//!
//! Why not rustls' connection types all the way: both of rustls 0.23's connection APIs (the
//! buffered `ClientConnection`, and `UnbufferedClientConnection` as well) allocate a `Vec` for
//! every record they encrypt and for every record they decrypt. The engine sends a record per
//! flush and mosquitto answers each PUBACK in a record of its own, so that was an allocation
//! per message. Here rustls still does the whole handshake (certificate checks, SNI, ALPN,
//! client certificates, resumption) through its unbuffered API; once it is done, the session
//! becomes a rustls `KernelConnection` (which keeps the key schedule and stores the session
//! tickets the broker sends afterwards) and its traffic keys seal and open records here, in
//! place, with ring's AEAD (TLS 1.3, and TLS 1.2 with AES-GCM or ChaCha20-Poly1305).
//!
//! Bounds per connection, both buffers allocated at the first handshake and grown by doubling
//! only when a record or a handshake flight does not fit (a handful of times per connection,
//! never per message):
//! - received ciphertext ([`RX_BYTES_MAX`]): the server's handshake flight, then at most one
//!   partial record plus whatever one socket read brought; a record is opened in place and
//!   its plaintext handed to the engine from there.
//! - ciphertext to send ([`TX_BYTES_MAX`]): four full records. `seal` adds a record only while
//!   one largest record and two key updates ([`TX_RESERVE_BYTES`]) still fit: one update of
//!   our own keys before that record, and one answering the broker's update request, so that
//!   answer always has room. Beyond it the batch waits in the engine's write buffer, as on a
//!   full socket. A further request arriving before the buffer drains is answered before our
//!   next application data record (RFC 8446 4.6.3), so one update answers several.
//!
//! Post-handshake messages handled here: session tickets (to rustls' store), key updates
//! (both directions; an update of our own keys before they reach the cipher's
//! confidentiality limit; nothing may follow a key update in its record), alerts
//! (close_notify is the end of stream and records after it are ignored; a fatal alert, or in
//! TLS 1.3 any warning but user_canceled, is its named failure). A TLS 1.2 HelloRequest is
//! answered with a no_renegotiation warning, as rustls answers it. Limitation: a
//! post-handshake message split across records (brokers send each ticket whole) ends the
//! connection with internal_error rather than being reassembled.
//!
//! A record that fails to open (bad tag, oversized, malformed, out of place) ends the
//! connection: the matching fatal alert is sealed under the current keys and nothing follows
//! it (no close_notify), as RFC 8446 6.2 asks.

use std::io::{self, Read, Write};
use std::mem;
use std::sync::Arc;

use mio::net::TcpStream;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};
use rustls::{ClientConfig, ConnectionTrafficSecrets, HandshakeKind, SupportedCipherSuite};

use super::{errno, LinkFailure, ReadOutcome, TlsFailure};

/// Largest plaintext in one record (RFC 8446 5.1, RFC 5246 6.2.1).
const PLAIN_MAX: usize = 16_384;
/// Largest record a peer may send: TLS 1.2 allows 2048 bytes of expansion (RFC 5246 6.2.3).
const RECORD_IN_MAX: usize = 5 + PLAIN_MAX + 2_048;
/// TLS 1.3 allows 256 bytes of expansion (RFC 8446 5.2).
const RECORD_IN_MAX_TLS13: usize = 5 + PLAIN_MAX + 256;
/// Largest record we send: header, explicit nonce (TLS 1.2 GCM), content type (TLS 1.3), tag.
const RECORD_OUT_MAX: usize = 5 + 8 + PLAIN_MAX + 1 + TAG_BYTES;
const TAG_BYTES: usize = 16;
const HEADER_BYTES: usize = 5;
/// First size of each buffer, and its size again once the handshake is over: an idle
/// connection (CONNACK, PINGRESP) needs no more, a busy one grows its buffers by doubling.
const START_BYTES: usize = 1_024;
/// A receive buffer that a socket read fills completely doubles, up to this, so a busy
/// subscriber reads in large gulps.
const RX_READ_GROW_MAX_BYTES: usize = 32 * 1024;
/// Received ciphertext held per connection: a server flight with a long certificate chain,
/// or one largest record and the start of the next.
pub const RX_BYTES_MAX: usize = 64 * 1024;
/// Ciphertext waiting for the socket per connection: four largest records.
pub const TX_BYTES_MAX: usize = 4 * RECORD_OUT_MAX;
/// One KeyUpdate record of ours (TLS 1.3): header, message (4 + 1), content type, tag.
const KEY_UPDATE_BYTES: usize = HEADER_BYTES + 5 + 1 + TAG_BYTES;
/// Kept free by `seal` beyond the record it adds: our own key update before that record and
/// the answer to the broker's update request (or an alert: 31 bytes at most).
const TX_RESERVE_BYTES: usize = 2 * KEY_UPDATE_BYTES;

const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APP_DATA: u8 = 23;
const HS_HELLO_REQUEST: u8 = 0;
const HS_NEW_SESSION_TICKET: u8 = 4;
const HS_KEY_UPDATE: u8 = 24;

const ALERT_WARNING: u8 = 1;
const ALERT_FATAL: u8 = 2;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_UNEXPECTED_MESSAGE: u8 = 10;
const ALERT_BAD_RECORD_MAC: u8 = 20;
const ALERT_RECORD_OVERFLOW: u8 = 22;
const ALERT_DECODE_ERROR: u8 = 50;
const ALERT_INTERNAL_ERROR: u8 = 80;
const ALERT_USER_CANCELED: u8 = 90;
const ALERT_NO_RENEGOTIATION: u8 = 100;

/// One client connection's TLS.
pub struct TlsLink {
    phase: Phase,
    /// Received ciphertext; `rx[plain]` is opened application data not yet handed out,
    /// `rx[next..filled]` records not yet opened. Its length is its capacity (zeroed once).
    rx: Vec<u8>,
    filled: usize,
    plain: (usize, usize),
    next: usize,
    /// Ciphertext to send: `tx[sent..end]`.
    tx: Vec<u8>,
    sent: usize,
    end: usize,
    resumed: bool,
    /// close_notify received: no more data will come.
    peer_closed: bool,
}

enum Phase {
    Handshake(Box<UnbufferedClientConnection>),
    Open(Box<Open>),
    /// Failed or closed: nothing more to seal or open.
    Done,
}

struct Open {
    kernel: KernelConnection<ClientConnectionData>,
    tls13: bool,
    tx: Keys,
    rx: Keys,
    /// Records the tx keys may seal (the cipher's confidentiality limit).
    tx_limit: u64,
    /// The broker asked us to update our keys and the answer is not sealed yet.
    update_owed: bool,
}

/// Why received records cannot be taken: the failure to report, and the fatal alert owed to
/// the broker (none when its own fatal alert ended the connection).
struct Fault {
    failure: TlsFailure,
    alert: Option<u8>,
}

fn fault(alert: u8, what: &'static str) -> Fault {
    Fault {
        failure: TlsFailure::Other(what),
        alert: Some(alert),
    }
}

/// A failure of our own (key schedule, buffer bound) while taking a record.
impl From<TlsFailure> for Fault {
    fn from(failure: TlsFailure) -> Fault {
        Fault {
            failure,
            alert: Some(ALERT_INTERNAL_ERROR),
        }
    }
}

/// One direction's traffic keys.
struct Keys {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    /// TLS 1.2 AES-GCM: an 8-byte explicit nonce leads each record.
    explicit_nonce: bool,
}

impl Keys {
    fn new(secrets: ConnectionTrafficSecrets, seq: u64, tls13: bool) -> Result<Keys, TlsFailure> {
        let (algorithm, key, iv, gcm) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv, true),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv, true),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv, false)
            }
            _ => return Err(TlsFailure::Other("negotiated cipher not supported")),
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| TlsFailure::Other("unusable traffic key"))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| TlsFailure::Other("unusable traffic IV"))?;
        Ok(Keys {
            key: LessSafeKey::new(key),
            iv,
            seq,
            explicit_nonce: gcm && !tls13,
        })
    }

    /// `iv` XOR the sequence number (RFC 8446 5.3; rustls uses the same for TLS 1.2).
    fn nonce(&self) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }
}

/// TLS 1.2 additional data: sequence number, type, version, plaintext length (RFC 5246 6.2.3.3).
fn tls12_aad(seq: u64, content: u8, plain_len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = content;
    aad[9..11].copy_from_slice(&[3, 3]);
    aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
    aad
}

/// What one call into the handshake state machine asks for next.
enum Step {
    Continue,
    NeedData,
    Open,
    Closed,
    Failed(rustls::Error),
}

impl TlsLink {
    pub fn new(config: Arc<ClientConfig>, name: ServerName<'static>) -> Result<TlsLink, String> {
        let conn =
            UnbufferedClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
        let mut link = TlsLink {
            phase: Phase::Handshake(Box::new(conn)),
            rx: vec![0; START_BYTES],
            filled: 0,
            plain: (0, 0),
            next: 0,
            tx: vec![0; START_BYTES],
            sent: 0,
            end: 0,
            resumed: false,
            peer_closed: false,
        };
        // The ClientHello, queued for the first flush.
        link.drive_handshake().map_err(|f| f.describe())?;
        Ok(link)
    }

    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshake(_))
    }

    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Ciphertext is waiting for the socket.
    pub fn wants_write(&self) -> bool {
        self.end > self.sent
    }

    /// Read from the socket at most once and return the application data that gave (and any
    /// held from before) at the front of `buf`.
    pub fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> ReadOutcome {
        let mut n = 0;
        let mut read_once = false;
        let mut short = false;
        loop {
            if self.is_handshaking() {
                match self.drive_handshake() {
                    Ok(Step::Closed) => return ReadOutcome::Eof,
                    Ok(_) => {}
                    Err(f) => return ReadOutcome::Failed(LinkFailure::Tls(f)),
                }
                if self.is_handshaking() {
                    if read_once {
                        return ReadOutcome::Data {
                            n: 0,
                            drained: short,
                            stamp: None,
                        };
                    }
                    if self.filled == self.rx.len()
                        && !grow(&mut self.rx, self.filled + 1, RX_BYTES_MAX)
                    {
                        let f = TlsFailure::Other("the broker's handshake flight exceeds 64 KiB");
                        return ReadOutcome::Failed(LinkFailure::Tls(f));
                    }
                    match self.read_socket(stream) {
                        Ok((got, was_short)) if got > 0 => (read_once, short) = (true, was_short),
                        Ok(_) => return ReadOutcome::Eof,
                        Err(outcome) => return outcome,
                    }
                    continue;
                }
            }
            n += self.take_plain(&mut buf[n..]);
            if n == buf.len() {
                return ReadOutcome::Data {
                    n,
                    drained: false,
                    stamp: None,
                };
            }
            match self.open_next() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(f) => return ReadOutcome::Failed(LinkFailure::Tls(f)),
            }
            if self.peer_closed {
                return match n {
                    0 => ReadOutcome::Eof,
                    _ => ReadOutcome::Data {
                        n,
                        drained: false,
                        stamp: None,
                    },
                };
            }
            if read_once {
                return ReadOutcome::Data {
                    n,
                    drained: short,
                    stamp: None,
                };
            }
            if let Err(f) = self.make_room() {
                return ReadOutcome::Failed(LinkFailure::Tls(self.fail(f)));
            }
            match self.read_socket(stream) {
                Ok((0, _)) if n == 0 => return ReadOutcome::Eof,
                // The end of stream is read again by the next call.
                Ok((0, _)) => {
                    return ReadOutcome::Data {
                        n,
                        drained: false,
                        stamp: None,
                    }
                }
                Ok((_, was_short)) => {
                    (read_once, short) = (true, was_short);
                    if !was_short && self.rx.len() < RX_READ_GROW_MAX_BYTES {
                        let need = self.rx.len() + 1;
                        grow(&mut self.rx, need, RX_BYTES_MAX);
                    }
                }
                Err(ReadOutcome::WouldBlock) if n > 0 => {
                    return ReadOutcome::Data {
                        n,
                        drained: true,
                        stamp: None,
                    }
                }
                Err(outcome) => return outcome,
            }
        }
    }

    /// One socket read into the free end of `rx`: (bytes, whether it was short).
    fn read_socket(&mut self, stream: &mut TcpStream) -> Result<(usize, bool), ReadOutcome> {
        let room = &mut self.rx[self.filled..];
        loop {
            return match stream.read(room) {
                Ok(got) => {
                    self.filled += got;
                    Ok((got, got < room.len()))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(ReadOutcome::Io(errno(&e))),
            };
        }
    }

    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let (start, end) = self.plain;
        let n = (end - start).min(buf.len());
        buf[..n].copy_from_slice(&self.rx[start..start + n]);
        self.plain.0 += n;
        n
    }

    /// With every opened byte handed out: move the unopened bytes to the front, and make
    /// the buffer hold the whole of the next record.
    fn make_room(&mut self) -> Result<(), Fault> {
        self.rx.copy_within(self.next..self.filled, 0);
        self.filled -= self.next;
        self.next = 0;
        self.plain = (0, 0);
        let need = match self.filled >= HEADER_BYTES {
            true => HEADER_BYTES + u16::from_be_bytes([self.rx[3], self.rx[4]]) as usize,
            false => HEADER_BYTES,
        };
        if need > RECORD_IN_MAX {
            return Err(oversized());
        }
        // Room for the rest of this record, or else for more records.
        let want = need.max(self.filled + 1);
        match want <= self.rx.len() || grow(&mut self.rx, want, RX_BYTES_MAX) {
            true => Ok(()),
            false => Err(TlsFailure::Other("receive buffer bound exceeded").into()),
        }
    }

    /// Open the next whole record in `rx`, if there is one. Ok(true): a record was opened.
    /// On a failure the broker is owed a fatal alert: it is queued, and the link is done.
    fn open_next(&mut self) -> Result<bool, TlsFailure> {
        self.open_record().map_err(|f| self.fail(f))
    }

    /// Queue the fatal alert `fault` owes (under the current keys, when the send buffer has
    /// room), and end the link there: nothing is sealed after it, close_notify included.
    fn fail(&mut self, fault: Fault) -> TlsFailure {
        if let (Phase::Open(open), Some(code)) = (&mut self.phase, fault.alert) {
            let _ = seal_alert(open, &mut self.tx, &mut self.end, [ALERT_FATAL, code]);
        }
        self.phase = Phase::Done;
        fault.failure
    }

    fn open_record(&mut self) -> Result<bool, Fault> {
        let Phase::Open(open) = &mut self.phase else {
            return Ok(false);
        };
        // Data after close_notify is ignored (RFC 8446 6.1).
        if self.peer_closed {
            return Ok(false);
        }
        let avail = &mut self.rx[self.next..self.filled];
        if avail.len() < HEADER_BYTES {
            return Ok(false);
        }
        let header: [u8; 5] = [avail[0], avail[1], avail[2], avail[3], avail[4]];
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        let record_max = match open.tls13 {
            true => RECORD_IN_MAX_TLS13,
            false => RECORD_IN_MAX,
        };
        if HEADER_BYTES + len > record_max {
            return Err(oversized());
        }
        if avail.len() < HEADER_BYTES + len {
            return Ok(false);
        }
        let record = &mut avail[HEADER_BYTES..HEADER_BYTES + len];
        let (content, plain_len) = unseal(&mut open.rx, open.tls13, header, record)?;
        let start = self.next + HEADER_BYTES;
        self.next += HEADER_BYTES + len;
        match content {
            CONTENT_APP_DATA => self.plain = (start, start + plain_len),
            CONTENT_ALERT => self.on_alert(start, plain_len)?,
            CONTENT_HANDSHAKE => self.on_handshake(start, plain_len)?,
            _ => return Err(unexpected("the broker sent a record of an unexpected type")),
        }
        Ok(true)
    }

    fn on_alert(&mut self, start: usize, len: usize) -> Result<(), Fault> {
        let tls13 = matches!(&self.phase, Phase::Open(open) if open.tls13);
        match self.rx[start..start + len] {
            [ALERT_WARNING | ALERT_FATAL, ALERT_CLOSE_NOTIFY] => {
                self.peer_closed = true;
                Ok(())
            }
            // Warnings change nothing; TLS 1.3 keeps only user_canceled (RFC 8446 6), and
            // answers the rest with decode_error, as rustls does.
            [ALERT_WARNING, ALERT_USER_CANCELED] => Ok(()),
            [ALERT_WARNING, _] if !tls13 => Ok(()),
            [ALERT_WARNING, code] => Err(Fault {
                failure: TlsFailure::Alert(code),
                alert: Some(ALERT_DECODE_ERROR),
            }),
            [ALERT_FATAL, code] => Err(Fault {
                failure: TlsFailure::Alert(code),
                alert: None,
            }),
            _ => Err(fault(
                ALERT_DECODE_ERROR,
                "the broker sent a malformed alert",
            )),
        }
    }

    /// Post-handshake messages in `rx[start..start + len]`: tickets and key updates (TLS
    /// 1.3), HelloRequest (TLS 1.2).
    fn on_handshake(&mut self, start: usize, len: usize) -> Result<(), Fault> {
        let Phase::Open(open) = &mut self.phase else {
            return Ok(());
        };
        let mut messages = &self.rx[start..start + len];
        if messages.is_empty() {
            return Err(fault(
                ALERT_DECODE_ERROR,
                "the broker sent an empty handshake record",
            ));
        }
        let split = || {
            fault(
                ALERT_INTERNAL_ERROR,
                "a post-handshake message split across records (not supported)",
            )
        };
        while !messages.is_empty() {
            let [typ, a, b, c, rest @ ..] = messages else {
                return Err(split());
            };
            let body_len = u32::from_be_bytes([0, *a, *b, *c]) as usize;
            if rest.len() < body_len {
                return Err(split());
            }
            let (body, after) = rest.split_at(body_len);
            match (open.tls13, *typ, body) {
                // Renegotiation is refused; the warning is advisory, so it is left out when
                // the send buffer is full.
                (false, HS_HELLO_REQUEST, []) => {
                    let alert = [ALERT_WARNING, ALERT_NO_RENEGOTIATION];
                    let _ = seal_alert(open, &mut self.tx, &mut self.end, alert);
                }
                (true, HS_NEW_SESSION_TICKET, _) => {
                    // A ticket the store cannot take only costs the next resumption.
                    let _ = open.kernel.handle_new_session_ticket(body);
                }
                // The keys change after this message: nothing may follow it (RFC 8446 5.1).
                (true, HS_KEY_UPDATE, [_]) if !after.is_empty() => {
                    return Err(unexpected("the broker sent more after a key update"));
                }
                (true, HS_KEY_UPDATE, [request @ (0 | 1)]) => {
                    let (seq, secrets) = open.kernel.update_rx_secret().map_err(key_failure)?;
                    open.rx = Keys::new(secrets, seq, true)?;
                    open.update_owed |= *request == 1;
                }
                (true, HS_KEY_UPDATE, _) => {
                    return Err(fault(ALERT_DECODE_ERROR, "malformed key update"));
                }
                _ => return Err(unexpected("unexpected handshake message")),
            }
            messages = after;
        }
        // The reserve `seal` keeps has room for this answer; a later one waits for `seal`.
        if open.update_owed && self.end + KEY_UPDATE_BYTES <= TX_BYTES_MAX {
            update_tx_keys(open, &mut self.tx, &mut self.end)?;
        }
        Ok(())
    }

    /// Feed received bytes to rustls' handshake and queue what it answers, until it needs
    /// more from the broker or is done.
    fn drive_handshake(&mut self) -> Result<Step, TlsFailure> {
        loop {
            let Phase::Handshake(conn) = &mut self.phase else {
                return Ok(Step::Open);
            };
            let UnbufferedStatus { discard, state } =
                conn.process_tls_records(&mut self.rx[..self.filled]);
            let step = match state {
                Err(e) => Step::Failed(e),
                Ok(ConnectionState::EncodeTlsData(mut data)) => loop {
                    match data.encode(&mut self.tx[self.end..]) {
                        Ok(n) => {
                            self.end += n;
                            break Step::Continue;
                        }
                        Err(EncodeError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => {
                            if !grow(&mut self.tx, self.end + required_size, TX_BYTES_MAX) {
                                break Step::Failed(rustls::Error::General(
                                    "handshake message over the send bound".into(),
                                ));
                            }
                        }
                        Err(_) => break Step::Continue,
                    }
                },
                // Our buffer keeps the bytes until the socket takes them.
                Ok(ConnectionState::TransmitTlsData(data)) => {
                    data.done();
                    Step::Continue
                }
                Ok(ConnectionState::BlockedHandshake) => Step::NeedData,
                Ok(ConnectionState::WriteTraffic(_)) => Step::Open,
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => Step::Closed,
                Ok(_) => Step::Failed(rustls::Error::General("data during the handshake".into())),
            };
            self.rx.copy_within(discard..self.filled, 0);
            self.filled -= discard;
            match step {
                Step::Continue => continue,
                Step::Open => return self.open().map(|_| Step::Open),
                Step::Failed(e) => {
                    self.queue_alert();
                    return Err(TlsFailure::from_error(&e));
                }
                other => return Ok(other),
            }
        }
    }

    /// After a handshake failure rustls has an alert for the broker: queue it.
    fn queue_alert(&mut self) {
        if let Phase::Handshake(conn) = &mut self.phase {
            let status = conn.process_tls_records(&mut []);
            if let Ok(ConnectionState::EncodeTlsData(mut data)) = status.state {
                if let Ok(n) = data.encode(&mut self.tx[self.end..]) {
                    self.end += n;
                }
            }
        }
        self.phase = Phase::Done;
    }

    /// The handshake is done: keep rustls' key schedule, take the traffic keys.
    fn open(&mut self) -> Result<(), TlsFailure> {
        let Phase::Handshake(conn) = mem::replace(&mut self.phase, Phase::Done) else {
            return Ok(());
        };
        self.resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let (secrets, kernel) = (*conn)
            .dangerous_into_kernel_connection()
            .map_err(key_failure)?;
        let tls13 = kernel.protocol_version() == rustls::ProtocolVersion::TLSv1_3;
        let tx_limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        shrink(&mut self.rx, self.filled);
        if self.sent == 0 {
            shrink(&mut self.tx, self.end);
        }
        self.phase = Phase::Open(Box::new(Open {
            tx: Keys::new(secrets.tx.1, secrets.tx.0, tls13)?,
            rx: Keys::new(secrets.rx.1, secrets.rx.0, tls13)?,
            kernel,
            tls13,
            tx_limit,
            update_owed: false,
        }));
        Ok(())
    }

    /// Write queued ciphertext until none is left (Ok(true)) or the socket would block.
    pub fn drain(&mut self, stream: &mut TcpStream, wrote: &mut bool) -> io::Result<bool> {
        while self.end > self.sent {
            match stream.write(&self.tx[self.sent..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    *wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        (self.sent, self.end) = (0, 0);
        Ok(true)
    }

    /// Seal as much of `parts` (one run of plaintext in pieces) as the send bound allows,
    /// in records of up to 16 KiB; return how many plaintext bytes were taken.
    pub fn seal(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let Phase::Open(open) = &mut self.phase else {
            return Ok(0);
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut taken = 0;
        while taken < total && self.end + RECORD_OUT_MAX + TX_RESERVE_BYTES <= TX_BYTES_MAX {
            if open.update_owed || open.tx.seq + 1 >= open.tx_limit {
                update_tx_keys(open, &mut self.tx, &mut self.end).map_err(seal_error)?;
            }
            let n = (total - taken).min(PLAIN_MAX);
            seal_record(
                &mut open.tx,
                open.tls13,
                &mut self.tx,
                &mut self.end,
                CONTENT_APP_DATA,
                n,
                |dst| gather(parts, taken, dst),
            )
            .map_err(seal_error)?;
            taken += n;
        }
        Ok(taken)
    }

    /// Before the socket is dropped: close_notify, with one best-effort write.
    pub fn close(&mut self, stream: &mut TcpStream) {
        if let Phase::Open(open) = &mut self.phase {
            let alert = [ALERT_WARNING, ALERT_CLOSE_NOTIFY];
            let _ = seal_alert(open, &mut self.tx, &mut self.end, alert);
        }
        self.phase = Phase::Done;
        let mut wrote = false;
        let _ = self.drain(stream, &mut wrote);
    }
}

/// Open `record` (the bytes after `header`) in place: (content type, plaintext length); the
/// plaintext starts where `record` did.
fn unseal(
    keys: &mut Keys,
    tls13: bool,
    header: [u8; 5],
    record: &mut [u8],
) -> Result<(u8, usize), Fault> {
    let broken = || fault(ALERT_BAD_RECORD_MAC, "decrypt error");
    let nonce = keys.nonce();
    let opened = match (tls13, keys.explicit_nonce) {
        (true, _) => {
            if header[0] != CONTENT_APP_DATA {
                return Err(unexpected("the broker sent a record of an unexpected type"));
            }
            let plain = keys
                .key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(header),
                    record,
                )
                .map_err(|_| broken())?;
            // Inner plaintext: content, the real content type, zero padding (RFC 8446 5.4).
            if plain.len() > PLAIN_MAX + 1 {
                return Err(oversized());
            }
            let Some(typ_at) = plain.iter().rposition(|&b| b != 0) else {
                return Err(unexpected(
                    "the broker sent a record without a content type",
                ));
            };
            (plain[typ_at], typ_at)
        }
        (false, true) => {
            if record.len() < 8 + TAG_BYTES {
                return Err(broken());
            }
            let mut explicit = [0u8; 12];
            explicit[..4].copy_from_slice(&keys.iv[..4]);
            explicit[4..].copy_from_slice(&record[..8]);
            let aad = tls12_aad(keys.seq, header[0], record.len() - 8 - TAG_BYTES);
            let nonce = Nonce::assume_unique_for_key(explicit);
            let plain = keys
                .key
                .open_within(nonce, Aad::from(aad), record, 8..)
                .map_err(|_| broken())?;
            (header[0], plain.len())
        }
        (false, false) => {
            if record.len() < TAG_BYTES {
                return Err(broken());
            }
            let aad = tls12_aad(keys.seq, header[0], record.len() - TAG_BYTES);
            let plain = keys
                .key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), record)
                .map_err(|_| broken())?;
            (header[0], plain.len())
        }
    };
    keys.seq += 1;
    if opened.1 > PLAIN_MAX {
        return Err(oversized());
    }
    Ok(opened)
}

fn oversized() -> Fault {
    fault(ALERT_RECORD_OVERFLOW, "the broker sent an oversized record")
}

fn unexpected(what: &'static str) -> Fault {
    fault(ALERT_UNEXPECTED_MESSAGE, what)
}

/// Append one alert record, `[level, description]`.
fn seal_alert(
    open: &mut Open,
    tx: &mut Vec<u8>,
    end: &mut usize,
    alert: [u8; 2],
) -> Result<(), TlsFailure> {
    let (keys, tls13) = (&mut open.tx, open.tls13);
    seal_record(keys, tls13, tx, end, CONTENT_ALERT, 2, |dst| {
        dst.copy_from_slice(&alert)
    })
}

/// Append one sealed record of `plain_len` bytes (written by `fill`) to `tx[..*end]`.
fn seal_record(
    keys: &mut Keys,
    tls13: bool,
    tx: &mut Vec<u8>,
    end: &mut usize,
    content: u8,
    plain_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), TlsFailure> {
    let explicit = if keys.explicit_nonce { 8 } else { 0 };
    let inner = plain_len + usize::from(tls13);
    let total = HEADER_BYTES + explicit + inner + TAG_BYTES;
    if *end + total > tx.len() && !grow(tx, *end + total, TX_BYTES_MAX) {
        return Err(TlsFailure::Other("send buffer bound exceeded"));
    }
    let record = &mut tx[*end..*end + total];
    let outer = if tls13 { CONTENT_APP_DATA } else { content };
    let body_len = (total - HEADER_BYTES) as u16;
    let header = [outer, 3, 3, (body_len >> 8) as u8, body_len as u8];
    record[..HEADER_BYTES].copy_from_slice(&header);
    let nonce = keys.nonce();
    let (_, body) = record.split_at_mut(HEADER_BYTES);
    let (nonce_part, rest) = body.split_at_mut(explicit);
    nonce_part.copy_from_slice(&nonce[4..4 + explicit]);
    let (sealed, tag_out) = rest.split_at_mut(inner);
    fill(&mut sealed[..plain_len]);
    if tls13 {
        sealed[plain_len] = content;
    }
    let nonce = Nonce::assume_unique_for_key(nonce);
    let tag = match tls13 {
        true => keys
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), sealed),
        false => {
            let aad = tls12_aad(keys.seq, content, plain_len);
            keys.key
                .seal_in_place_separate_tag(nonce, Aad::from(aad), sealed)
        }
    }
    .map_err(|_| TlsFailure::Other("sealing a record failed"))?;
    tag_out.copy_from_slice(tag.as_ref());
    keys.seq += 1;
    *end += total;
    Ok(())
}

/// Tell the broker our keys change (TLS 1.3 KeyUpdate, no update asked of it: also the
/// answer to its request), then change them. TLS 1.2 cannot change keys: the connection must end before the limit.
fn update_tx_keys(open: &mut Open, tx: &mut Vec<u8>, end: &mut usize) -> Result<(), TlsFailure> {
    if !open.tls13 {
        return Err(TlsFailure::Other("TLS 1.2 keys used up (reconnect)"));
    }
    seal_record(&mut open.tx, true, tx, end, CONTENT_HANDSHAKE, 5, |dst| {
        dst.copy_from_slice(&[HS_KEY_UPDATE, 0, 0, 1, 0])
    })?;
    let (seq, secrets) = open.kernel.update_tx_secret().map_err(key_failure)?;
    open.tx = Keys::new(secrets, seq, true)?;
    open.update_owed = false;
    Ok(())
}

/// Copy `dst.len()` bytes starting `skip` bytes into the run `parts` into `dst`.
fn gather(parts: &[&[u8]], mut skip: usize, dst: &mut [u8]) {
    let mut at = 0;
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        let n = (part.len() - skip).min(dst.len() - at);
        dst[at..at + n].copy_from_slice(&part[skip..skip + n]);
        at += n;
        skip = 0;
        if at == dst.len() {
            return;
        }
    }
}

/// Double `buf` (zeroed) until it holds `need` bytes, up to `bound`.
fn grow(buf: &mut Vec<u8>, need: usize, bound: usize) -> bool {
    if need > bound {
        return false;
    }
    let mut len = buf.len().max(START_BYTES);
    while len < need {
        len *= 2;
    }
    buf.resize(len.min(bound), 0);
    true
}

/// Back to [`START_BYTES`] after the handshake flight, when the `used` front bytes fit.
fn shrink(buf: &mut Vec<u8>, used: usize) {
    if buf.len() > START_BYTES && used <= START_BYTES {
        buf.truncate(START_BYTES);
        buf.shrink_to_fit();
    }
}

fn key_failure(e: rustls::Error) -> TlsFailure {
    TlsFailure::from_error(&e)
}

fn seal_error(f: TlsFailure) -> io::Error {
    io::Error::other(f.describe())
}

#[cfg(test)]
mod tests {
    use rustls::crypto::cipher::{AeadKey, Iv};

    use super::*;

    #[test]
    fn gather_copies_across_the_parts_from_an_offset() {
        let parts: [&[u8]; 3] = [b"ab", b"cde", b"f"];
        let mut dst = [0u8; 3];
        gather(&parts, 1, &mut dst);
        assert_eq!(&dst, b"bcd");
        let mut dst = [0u8; 2];
        gather(&parts, 4, &mut dst);
        assert_eq!(&dst, b"ef");
    }

    #[test]
    fn buffers_grow_by_doubling_and_stop_at_the_bound() {
        let mut buf = vec![0u8; START_BYTES];
        assert!(grow(&mut buf, START_BYTES + 1, RX_BYTES_MAX));
        assert_eq!(buf.len(), 2 * START_BYTES);
        assert!(grow(&mut buf, RX_BYTES_MAX, RX_BYTES_MAX));
        assert_eq!(buf.len(), RX_BYTES_MAX);
        assert!(!grow(&mut buf, RX_BYTES_MAX + 1, RX_BYTES_MAX));
    }

    /// The same traffic secret on both ends, as after a handshake: (our tx, the peer's rx).
    fn key_pair(chacha: bool, tls13: bool, seq: u64) -> (Keys, Keys) {
        let secrets = || {
            let (key, iv) = (AeadKey::from([7u8; 32]), Iv::new([9u8; 12]));
            match chacha {
                true => ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv },
                false => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
            }
        };
        let keys = || Keys::new(secrets(), seq, tls13).unwrap();
        (keys(), keys())
    }

    /// Seal `plain` as one application-data record; return the record bytes.
    fn sealed(keys: &mut Keys, tls13: bool, plain: &[u8]) -> Vec<u8> {
        let (mut tx, mut end) = (vec![0u8; START_BYTES], 0);
        seal_record(
            keys,
            tls13,
            &mut tx,
            &mut end,
            CONTENT_APP_DATA,
            plain.len(),
            |dst| dst.copy_from_slice(plain),
        )
        .unwrap();
        tx.truncate(end);
        tx
    }

    fn opened(keys: &mut Keys, tls13: bool, record: &mut [u8]) -> Option<Vec<u8>> {
        let header: [u8; 5] = record[..5].try_into().unwrap();
        let body = &mut record[5..];
        let (content, len) = unseal(keys, tls13, header, body).ok()?;
        assert_eq!(content, CONTENT_APP_DATA);
        Some(body[..len].to_vec())
    }

    #[test]
    fn records_round_trip_in_every_mode_with_the_stated_overhead() {
        // (ChaCha20, TLS 1.3, bytes beyond the plaintext: header, explicit nonce, type, tag)
        for (chacha, tls13, overhead) in [
            (false, true, 5 + 1 + 16),
            (true, true, 5 + 1 + 16),
            (false, false, 5 + 8 + 16),
            (true, false, 5 + 16),
        ] {
            let (mut ours, mut theirs) = key_pair(chacha, tls13, 41);
            for plain in [&b"PUBLISH"[..], &b"PUBACK"[..]] {
                let mut record = sealed(&mut ours, tls13, plain);
                assert_eq!(record.len(), plain.len() + overhead);
                assert_eq!(record[0], CONTENT_APP_DATA);
                assert_eq!(&record[1..3], &[3, 3]);
                let body_len = u16::from_be_bytes([record[3], record[4]]) as usize;
                assert_eq!(body_len, record.len() - 5);
                assert_eq!(opened(&mut theirs, tls13, &mut record).unwrap(), plain);
            }
            assert_eq!((ours.seq, theirs.seq), (43, 43));
        }
    }

    #[test]
    fn a_changed_byte_or_a_skipped_record_fails_to_open() {
        for (chacha, tls13) in [(false, true), (true, true), (false, false), (true, false)] {
            let (mut ours, mut theirs) = key_pair(chacha, tls13, 0);
            let mut record = sealed(&mut ours, tls13, b"CONNECT");
            let last = record.len() - 1;
            record[last] ^= 1;
            assert!(opened(&mut theirs, tls13, &mut record).is_none());
            let (mut ours, mut theirs) = key_pair(chacha, tls13, 0);
            let _skipped = sealed(&mut ours, tls13, b"one");
            let mut second = sealed(&mut ours, tls13, b"two");
            assert!(opened(&mut theirs, tls13, &mut second).is_none());
        }
    }

    #[test]
    fn the_tls12_additional_data_is_seq_type_version_length() {
        let aad = tls12_aad(1, CONTENT_APP_DATA, 300);
        assert_eq!(aad, [0, 0, 0, 0, 0, 0, 0, 1, 23, 3, 3, 1, 44]);
    }

    /// A link after a real handshake with an in-memory rustls server (TLS 1.3 or 1.2), and
    /// the server's keys: (link, server tx, server rx). Records of the server are then forged
    /// with its tx keys and fed to the link; what the link queues is opened with its rx keys.
    fn linked(tls13: bool) -> (TlsLink, Keys, Keys) {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = made.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let version = match tls13 {
            true => &rustls::version::TLS13,
            false => &rustls::version::TLS12,
        };
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key))
            .unwrap();
        server_config.enable_secret_extraction = true;
        server_config.send_tls13_tickets = 0;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.enable_secret_extraction = true;
        let name = ServerName::try_from("localhost").unwrap();
        let mut link = TlsLink::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        for _ in 0..10 {
            let mut out = &link.tx[link.sent..link.end];
            while !out.is_empty() {
                server.read_tls(&mut out).unwrap();
                server.process_new_packets().unwrap();
            }
            (link.sent, link.end) = (0, 0);
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            feed(&mut link, &wire);
            if link.is_handshaking() {
                link.drive_handshake().unwrap();
            }
            if !link.is_handshaking() && !server.is_handshaking() && !link.wants_write() {
                break;
            }
        }
        assert!(matches!(link.phase, Phase::Open(_)), "handshake done");
        let secrets = server.dangerous_extract_secrets().unwrap();
        let server_tx = Keys::new(secrets.tx.1, secrets.tx.0, tls13).unwrap();
        let server_rx = Keys::new(secrets.rx.1, secrets.rx.0, tls13).unwrap();
        (link, server_tx, server_rx)
    }

    /// Bytes as if a socket read brought them.
    fn feed(link: &mut TlsLink, bytes: &[u8]) {
        let need = link.filled + bytes.len();
        assert!(need <= link.rx.len() || grow(&mut link.rx, need, RX_BYTES_MAX));
        link.rx[link.filled..need].copy_from_slice(bytes);
        link.filled = need;
    }

    /// One record of the server: `plain` as `content`.
    fn forged(keys: &mut Keys, tls13: bool, content: u8, plain: &[u8]) -> Vec<u8> {
        let (mut tx, mut end) = (vec![0u8; START_BYTES], 0);
        seal_record(
            keys,
            tls13,
            &mut tx,
            &mut end,
            content,
            plain.len(),
            |dst| dst.copy_from_slice(plain),
        )
        .unwrap();
        tx.truncate(end);
        tx
    }

    /// Open every fed record the link can: the application data it hands out, or its failure.
    fn deliver(link: &mut TlsLink) -> Result<Vec<u8>, TlsFailure> {
        let (mut got, mut buf) = (Vec::new(), vec![0u8; RX_BYTES_MAX]);
        loop {
            let n = link.take_plain(&mut buf);
            got.extend_from_slice(&buf[..n]);
            if !link.open_next()? {
                return Ok(got);
            }
        }
    }

    /// The records the link queued for the server, opened: (content type, plaintext).
    fn queued(link: &TlsLink, keys: &mut Keys, tls13: bool) -> Records {
        let mut wire = link.tx[link.sent..link.end].to_vec();
        let mut records = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let header: [u8; 5] = wire[at..at + 5].try_into().unwrap();
            let len = u16::from_be_bytes([header[3], header[4]]) as usize;
            let body = &mut wire[at + 5..at + 5 + len];
            let (content, plain_len) = unseal(keys, tls13, header, body).ok().unwrap();
            records.push((content, body[..plain_len].to_vec()));
            at += 5 + len;
        }
        records
    }

    #[test]
    fn a_key_update_request_is_answered_when_sealing_left_the_send_buffer_nearly_full() {
        let big = vec![b'x'; 5 * PLAIN_MAX];
        // 1 byte, then full records: with only a record's room checked, 9 bytes were left.
        for first in [1, 2, 5, 30] {
            let (mut link, mut server_tx, mut server_rx) = linked(true);
            assert_eq!(link.seal(&[&big[..first]]).unwrap(), first);
            let taken = link.seal(&[&big]).unwrap();
            assert!(taken > 0 && taken < big.len());
            let request = forged(&mut server_tx, true, CONTENT_HANDSHAKE, &[24, 0, 0, 1, 1]);
            feed(&mut link, &request);
            assert_eq!(deliver(&mut link).unwrap(), b"");
            let records = queued(&link, &mut server_rx, true);
            let sealed: usize = records[..records.len() - 1].iter().map(|r| r.1.len()).sum();
            assert_eq!(sealed, first + taken);
            let answer = records.last().unwrap();
            assert_eq!(answer, &(CONTENT_HANDSHAKE, vec![24, 0, 0, 1, 0]));
            assert!(link.end <= TX_BYTES_MAX);
        }
    }

    #[test]
    fn our_own_key_updates_leave_room_for_answering_the_brokers_request() {
        let big = vec![b'x'; 5 * PLAIN_MAX];
        // [8000, 8270]: 49,234 bytes queued after two full records, where an update and a
        // full record (16,433 bytes) overran a bound that kept room for the record only.
        for firsts in [&[1][..], &[30], &[8000, 8270]] {
            let (mut link, mut server_tx, _) = linked(true);
            // Every record needs fresh keys first.
            if let Phase::Open(open) = &mut link.phase {
                open.tx_limit = 1;
            }
            for &first in firsts {
                link.seal(&[&big[..first]]).unwrap();
            }
            assert!(link.seal(&[&big]).unwrap() > 0);
            let before = link.end;
            let request = forged(&mut server_tx, true, CONTENT_HANDSHAKE, &[24, 0, 0, 1, 1]);
            feed(&mut link, &request);
            assert_eq!(deliver(&mut link).unwrap(), b"");
            assert_eq!(link.end - before, 27, "one KeyUpdate record queued");
        }
    }

    #[test]
    fn records_after_close_notify_are_not_delivered() {
        for tls13 in [true, false] {
            let (mut link, mut server_tx, _) = linked(tls13);
            let mut wire = forged(&mut server_tx, tls13, CONTENT_APP_DATA, b"before");
            wire.extend(forged(&mut server_tx, tls13, CONTENT_ALERT, &[1, 0]));
            wire.extend(forged(&mut server_tx, tls13, CONTENT_APP_DATA, b"after"));
            feed(&mut link, &wire);
            assert_eq!(deliver(&mut link).unwrap(), b"before");
            assert!(link.peer_closed);
        }
    }

    /// Records as (content type, plaintext).
    type Records = Vec<(u8, Vec<u8>)>;

    /// What the link answers `wire` with: its failure and the records it queued.
    fn answer_to(
        tls13: bool,
        wire: impl Fn(&mut Keys) -> Vec<u8>,
    ) -> (Result<Vec<u8>, TlsFailure>, Records) {
        let (mut link, mut server_tx, mut server_rx) = linked(tls13);
        feed(&mut link, &wire(&mut server_tx));
        let outcome = deliver(&mut link);
        (outcome, queued(&link, &mut server_rx, tls13))
    }

    fn assert_fatal(tls13: bool, wire: impl Fn(&mut Keys) -> Vec<u8>, alert: u8, what: &str) {
        let (outcome, queued) = answer_to(tls13, wire);
        let failure = outcome.expect_err(what);
        assert!(failure.describe().contains(what), "{}", failure.describe());
        assert_eq!(queued, vec![(CONTENT_ALERT, vec![2, alert])], "{what}");
    }

    #[test]
    fn a_record_that_fails_to_open_is_answered_with_bad_record_mac_and_no_close_notify() {
        for tls13 in [true, false] {
            let tampered = |keys: &mut Keys| {
                let mut record = forged(keys, tls13, CONTENT_APP_DATA, b"PUBACK");
                *record.last_mut().unwrap() ^= 1;
                record
            };
            assert_fatal(tls13, tampered, 20, "decrypt error");
        }
        // The engine then closes the link: the alert goes out, and nothing after it.
        let (mut link, mut server_tx, mut server_rx) = linked(true);
        let mut record = forged(&mut server_tx, true, CONTENT_APP_DATA, b"PUBACK");
        record[5] ^= 1;
        feed(&mut link, &record);
        assert!(deliver(&mut link).is_err());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut theirs, _) = listener.accept().unwrap();
        let mut stream = TcpStream::from_std(ours);
        link.close(&mut stream);
        drop(stream);
        let mut wire = Vec::new();
        theirs.read_to_end(&mut wire).unwrap();
        let (content, plain) = unseal(&mut server_rx, true, wire[..5].try_into().unwrap(), {
            let len = u16::from_be_bytes([wire[3], wire[4]]) as usize;
            assert_eq!(wire.len(), 5 + len, "one record only");
            &mut wire[5..]
        })
        .ok()
        .unwrap();
        assert_eq!(
            (content, &wire[5..5 + plain]),
            (CONTENT_ALERT, &[2u8, 20][..])
        );
    }

    #[test]
    fn out_of_place_or_malformed_records_are_answered_with_the_matching_fatal_alert() {
        for tls13 in [true, false] {
            let unknown_type = |keys: &mut Keys| forged(keys, tls13, 99, b"?");
            assert_fatal(tls13, unknown_type, 10, "unexpected type");
            let long_alert = |keys: &mut Keys| forged(keys, tls13, CONTENT_ALERT, &[2, 40, 0]);
            assert_fatal(tls13, long_alert, 50, "malformed alert");
            let empty = |keys: &mut Keys| forged(keys, tls13, CONTENT_HANDSHAKE, &[]);
            assert_fatal(tls13, empty, 50, "empty handshake record");
        }
        // An outer type other than application data, under TLS 1.3.
        let outer_handshake = |keys: &mut Keys| {
            let mut record = forged(keys, true, CONTENT_APP_DATA, b"x");
            record[0] = CONTENT_HANDSHAKE;
            record
        };
        assert_fatal(true, outer_handshake, 10, "unexpected type");
    }

    #[test]
    fn oversized_records_are_answered_with_record_overflow() {
        // 2^14 + 1 bytes of plaintext, in both versions.
        for tls13 in [true, false] {
            let long =
                |keys: &mut Keys| forged(keys, tls13, CONTENT_APP_DATA, &vec![b'x'; PLAIN_MAX + 1]);
            assert_fatal(tls13, long, 22, "oversized record");
        }
        // TLS 1.3: 100 bytes of data padded past 2^14 + 256 bytes of ciphertext. Sealed as
        // content type 0 so that the real type and the padding are ours to write.
        let padded = |keys: &mut Keys| {
            let mut inner = vec![b'x'; 100];
            inner.push(CONTENT_APP_DATA);
            inner.resize(PLAIN_MAX + 256 - 16, 0);
            let record = forged(keys, true, 0, &inner);
            assert_eq!(record.len(), 5 + PLAIN_MAX + 256 + 1);
            record
        };
        assert_fatal(true, padded, 22, "oversized record");
        // The same padding within the bound is fine.
        let within = |keys: &mut Keys| {
            let mut inner = vec![b'x'; 100];
            inner.push(CONTENT_APP_DATA);
            inner.resize(PLAIN_MAX, 0);
            forged(keys, true, 0, &inner)
        };
        let (outcome, queued) = answer_to(true, within);
        assert_eq!(outcome.unwrap(), vec![b'x'; 100]);
        assert!(queued.is_empty());
    }

    #[test]
    fn tls13_warnings_other_than_user_canceled_are_fatal_and_tls12_warnings_are_not() {
        // bad_certificate (42) as a warning.
        let warning = |tls13: bool| {
            move |keys: &mut Keys| {
                let mut wire = forged(keys, tls13, CONTENT_ALERT, &[1, 42]);
                wire.extend(forged(keys, tls13, CONTENT_APP_DATA, b"more"));
                wire
            }
        };
        let (outcome, queued) = answer_to(true, warning(true));
        assert_eq!(outcome.unwrap_err(), TlsFailure::Alert(42));
        assert_eq!(queued, vec![(CONTENT_ALERT, vec![2, 50])]);
        let (outcome, queued) = answer_to(false, warning(false));
        assert_eq!(outcome.unwrap(), b"more");
        assert!(queued.is_empty());
        let user_canceled = |keys: &mut Keys| {
            let mut wire = forged(keys, true, CONTENT_ALERT, &[1, 90]);
            wire.extend(forged(keys, true, CONTENT_APP_DATA, b"more"));
            wire
        };
        let (outcome, queued) = answer_to(true, user_canceled);
        assert_eq!(outcome.unwrap(), b"more");
        assert!(queued.is_empty());
        // A fatal alert is the broker's: nothing is sent back.
        let fatal = |keys: &mut Keys| forged(keys, true, CONTENT_ALERT, &[2, 42]);
        let (outcome, queued) = answer_to(true, fatal);
        assert_eq!(outcome.unwrap_err(), TlsFailure::Alert(42));
        assert!(queued.is_empty());
    }

    #[test]
    fn nothing_may_follow_a_key_update_in_its_record() {
        let update_then_ticket = |keys: &mut Keys| {
            let mut messages = vec![24, 0, 0, 1, 0];
            messages.extend([4, 0, 0, 2, 0, 0]);
            forged(keys, true, CONTENT_HANDSHAKE, &messages)
        };
        assert_fatal(true, update_then_ticket, 10, "after a key update");
        // A ticket before the update is fine, and the next record uses the new keys.
        let (mut link, mut server_tx, _) = linked(true);
        let mut messages = vec![4, 0, 0, 2, 0, 0];
        messages.extend([24, 0, 0, 1, 0]);
        feed(
            &mut link,
            &forged(&mut server_tx, true, CONTENT_HANDSHAKE, &messages),
        );
        assert_eq!(deliver(&mut link).unwrap(), b"");
        assert!(deliver(&mut link).is_ok());
    }

    #[test]
    fn a_post_handshake_message_split_across_records_is_refused_with_internal_error() {
        let split_ticket = |keys: &mut Keys| {
            let mut wire = forged(keys, true, CONTENT_HANDSHAKE, &[4, 0, 0, 4, 0]);
            wire.extend(forged(keys, true, CONTENT_HANDSHAKE, &[0, 0, 0]));
            wire
        };
        assert_fatal(true, split_ticket, 80, "split across records");
    }

    #[test]
    fn a_tls12_hello_request_is_answered_with_no_renegotiation_and_data_continues() {
        let hello_request = |keys: &mut Keys| {
            let mut wire = forged(keys, false, CONTENT_HANDSHAKE, &[0, 0, 0, 0]);
            wire.extend(forged(keys, false, CONTENT_APP_DATA, b"CONNACK"));
            wire
        };
        let (outcome, queued) = answer_to(false, hello_request);
        assert_eq!(outcome.unwrap(), b"CONNACK");
        assert_eq!(queued, vec![(CONTENT_ALERT, vec![1, 100])]);
    }
}
