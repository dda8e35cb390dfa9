//! Transports under the engine: plain TCP, TLS (rustls), WebSocket and WebSocket over TLS.
//!
//! Why an enum a connection owns, not a trait object: the write path runs per flush on every
//! connection, and a `match` on four variants keeps it inlined and the plain-TCP path exactly
//! what it was. The engine keeps writing pre-serialized MQTT frames into its write buffer and
//! reading MQTT bytes out of its scratch buffer; the transport sits between those buffers and
//! the socket:
//!
//! - write: TLS is rustls' own `ClientConnection`: the whole pending batch goes in with one
//!   `writer().write` (rustls seals it in records of up to 16 KiB); WebSocket frames the batch
//!   as one binary frame, masked in place ([`ws`]), written with one vectored write or one
//!   vectored TLS write.
//! - read: rustls reads the socket (`read_tls`), opens records (`process_new_packets`: also
//!   tickets, key updates, alerts) and hands out plaintext into the engine's scratch buffer
//!   (`reader`); WebSocket frames are decoded in place there; what comes out is MQTT bytes.
//!
//! Record protection (nonces, sequence numbers, key updates, alerts) is rustls' alone. Its
//! cost: rustls allocates a buffer for each record it seals and each it opens, so TLS
//! allocates per message (plain TCP and WebSocket do not); `tests/zero_alloc.rs` states the
//! figure and docs/BENCHMARKS.md the CPU cost, which measured as noise.
//!
//! Bounds per connection, all rustls': at most [`TLS_BUFFER_BYTES`] of unsent ciphertext
//! (`set_buffer_limit`; beyond it the batch waits in the engine's write buffer, as on a full
//! socket, and `writer().write` takes 0 bytes); received ciphertext in rustls' deframer
//! buffer, at most one largest record (16 KiB + 2,048 + 5 bytes) or, while a handshake
//! message is joined, 64 KiB (rustls refuses more: "message buffer full"); received plaintext
//! at most 16 KiB before rustls stops reading the socket (`read_tls` refuses; here it is
//! never called while plaintext is held, as every read hands the held plaintext out first).
//! WebSocket state is about 300 bytes ([`ws`]).

pub mod rx_stamp;
pub mod tls;
pub mod ws;

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, HandshakeKind};

pub use tls::{ClientCerts, TlsFailure, TlsOptions, TlsSetup};
pub use ws::{Ws, WsError};

/// Ciphertext rustls may hold unsent per connection (its `set_buffer_limit`); writes beyond
/// it wait in the engine's write buffer until the socket drains.
pub const TLS_BUFFER_BYTES: usize = 64 * 1024;

/// How a broker is reached (from the host's scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// `mqtt://`, `tcp://` or none.
    #[default]
    Tcp,
    /// `mqtts://`, `ssl://`, `tls://`.
    Tls,
    /// `ws://`.
    Ws,
    /// `wss://`.
    Wss,
}

impl Scheme {
    pub fn uses_tls(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Wss)
    }

    pub fn uses_ws(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Tcp => 1883,
            Scheme::Tls => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Scheme::Tcp => "mqtt://",
            Scheme::Tls => "mqtts://",
            Scheme::Ws => "ws://",
            Scheme::Wss => "wss://",
        }
    }
}

/// Why a transport gave up, beyond plain socket errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFailure {
    Tls(TlsFailure),
    Ws(WsError),
}

/// One read's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` MQTT bytes are at the front of the buffer (possibly 0: only TLS or WebSocket
    /// control traffic arrived). `drained`: the socket returned less than was asked, so it is
    /// empty for now (an edge-triggered reader may stop). `stamp`: when the last of the bytes
    /// reached this host (realtime ns, [`rx_stamp`]), for plain TCP and WebSocket sockets;
    /// None over TLS (a record may span reads) or where the kernel gave none.
    Data {
        n: usize,
        drained: bool,
        stamp: Option<u64>,
    },
    WouldBlock,
    /// End of stream (the peer closed).
    Eof,
    /// A socket error (errno).
    Io(i32),
    Failed(LinkFailure),
}

/// One flush's outcome: whether bytes went out, and whether nothing is left to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub wrote: bool,
    pub empty: bool,
}

/// The layers a connection speaks over its socket.
pub enum Transport {
    Tcp,
    Tls(Box<ClientConnection>),
    Ws(Box<Ws>),
    Wss(Box<ClientConnection>, Box<Ws>),
}

/// What a new transport needs: host name (SNI, Host header), path, TLS set-up and the
/// client's own config ([`TlsSetup::client_config`]).
pub struct Dial<'a> {
    pub scheme: Scheme,
    pub host: &'a str,
    pub ws_path: &'a str,
    pub tls: Option<(&'a TlsSetup, Arc<rustls::ClientConfig>)>,
}

impl Transport {
    /// A fresh transport for one connection attempt (TLS: a new session, which offers a
    /// ticket from the config's cache when resumption is on).
    pub fn new(dial: &Dial<'_>) -> Result<Transport, String> {
        let tls = || -> Result<Box<ClientConnection>, String> {
            let (setup, config) = dial.tls.as_ref().ok_or("TLS without a TLS set-up")?;
            let name = match &setup.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(dial.host.to_string())
                    .map_err(|_| format!("{}: not a valid TLS server name", dial.host))?,
            };
            let mut conn =
                ClientConnection::new(Arc::clone(config), name).map_err(|e| format!("TLS: {e}"))?;
            conn.set_buffer_limit(Some(TLS_BUFFER_BYTES));
            Ok(Box::new(conn))
        };
        let ws = || Box::new(Ws::new(dial.host, dial.ws_path));
        Ok(match dial.scheme {
            Scheme::Tcp => Transport::Tcp,
            Scheme::Tls => Transport::Tls(tls()?),
            Scheme::Ws => Transport::Ws(ws()),
            Scheme::Wss => Transport::Wss(tls()?, ws()),
        })
    }

    /// TLS handshake still running.
    pub fn tls_handshaking(&self) -> bool {
        match self {
            Transport::Tls(t) | Transport::Wss(t, _) => t.is_handshaking(),
            _ => false,
        }
    }

    /// The TLS session was resumed from a ticket.
    pub fn tls_resumed(&self) -> bool {
        match self {
            Transport::Tls(t) | Transport::Wss(t, _) => {
                t.handshake_kind() == Some(HandshakeKind::Resumed)
            }
            _ => false,
        }
    }

    /// Reads carry the kernel's receive stamp (`ReadOutcome::Data::stamp`): plain sockets
    /// do; TLS assembles records over several reads, so its reads carry none.
    pub fn stamps_arrivals(&self) -> bool {
        matches!(self, Transport::Tcp | Transport::Ws(_))
    }

    /// Every layer is set up: MQTT may flow.
    pub fn is_open(&self) -> bool {
        match self {
            Transport::Tcp => true,
            Transport::Tls(t) => !t.is_handshaking(),
            Transport::Ws(w) => w.is_open(),
            Transport::Wss(t, w) => !t.is_handshaking() && w.is_open(),
        }
    }

    /// Read once from the socket into `buf` and return the MQTT bytes in it.
    pub fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> ReadOutcome {
        match self {
            Transport::Tcp => read_plain(stream, buf),
            Transport::Tls(t) => read_tls(t, stream, buf),
            Transport::Ws(w) => {
                let outcome = read_plain(stream, buf);
                unwrap_ws(w, buf, outcome)
            }
            Transport::Wss(t, w) => {
                let outcome = read_tls(t, stream, buf);
                unwrap_ws(w, buf, outcome)
            }
        }
    }

    /// Write what is pending (handshake bytes, then `wbuf`'s MQTT bytes) until done or the
    /// socket would block. Written MQTT bytes are removed from the front of `wbuf`.
    pub fn flush(&mut self, stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> io::Result<Flushed> {
        match self {
            Transport::Tcp => flush_plain(stream, wbuf),
            Transport::Tls(t) => flush_tls(t, stream, wbuf),
            Transport::Ws(w) => flush_ws(w, stream, wbuf),
            Transport::Wss(t, w) => flush_wss(t, w, stream, wbuf),
        }
    }

    /// Before the socket is dropped: TLS says close_notify (one best-effort write), so the
    /// broker sees a clean close rather than an unexpected end of stream; after a record
    /// failed to open, rustls sends no close_notify after the fatal alert it queued then.
    pub fn close(&mut self, stream: &mut TcpStream) {
        if let Transport::Tls(t) | Transport::Wss(t, _) = self {
            t.send_close_notify();
            let mut wrote = false;
            let _ = drain_tls(t, stream, &mut wrote);
        }
    }

    /// An orderly end over WebSocket: queue our close frame (status 1000) to go out after
    /// what was written before. True when the broker's close is worth waiting for.
    pub fn begin_close(&mut self) -> bool {
        match self {
            Transport::Ws(w) | Transport::Wss(_, w) if w.is_open() => {
                w.queue_close();
                true
            }
            _ => false,
        }
    }

    /// The transport has bytes of its own to send (a pong, a close echo, a TLS record such as
    /// a key update): the connection needs a flush even with nothing of its own queued.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Tcp => false,
            Transport::Tls(t) => t.wants_write(),
            Transport::Ws(w) => w.wants_write(),
            Transport::Wss(t, w) => t.wants_write() || w.wants_write(),
        }
    }
}

pub(crate) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn read_plain(stream: &mut TcpStream, buf: &mut [u8]) -> ReadOutcome {
    loop {
        return match rx_stamp::recv(stream.as_raw_fd(), buf) {
            Ok((0, _)) => ReadOutcome::Eof,
            Ok((n, stamp)) => ReadOutcome::Data {
                n,
                drained: n < buf.len(),
                stamp,
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => ReadOutcome::Io(errno(&e)),
        };
    }
}

/// A reader that remembers whether the socket gave less than asked (it is then empty).
struct Probe<'a> {
    stream: &'a mut TcpStream,
    short: bool,
}

impl Read for Probe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// Plaintext rustls already holds first; else socket reads into rustls until one gives
/// plaintext or the socket is empty. Handshake and post-handshake messages (tickets, key
/// updates) are processed on the way; what rustls answers goes out with the next flush
/// ([`Transport::wants_write`]).
fn read_tls(t: &mut ClientConnection, stream: &mut TcpStream, buf: &mut [u8]) -> ReadOutcome {
    let mut drained = false;
    loop {
        match t.reader().read(buf) {
            // close_notify, with nothing held.
            Ok(0) => return ReadOutcome::Eof,
            Ok(n) => {
                return ReadOutcome::Data {
                    n,
                    drained: drained && n < buf.len(),
                    stamp: None,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The socket ended without close_notify.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return ReadOutcome::Eof,
            Err(e) => return ReadOutcome::Io(errno(&e)),
        }
        if drained {
            // The socket is empty and what it gave held no application data.
            return ReadOutcome::Data {
                n: 0,
                drained,
                stamp: None,
            };
        }
        let mut probe = Probe {
            stream,
            short: false,
        };
        match t.read_tls(&mut probe) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(_) => drained = probe.short,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // rustls' own refusals ("message buffer full") carry no errno.
            Err(e) if e.raw_os_error().is_none() => {
                let f = TlsFailure::Other("receive buffer bound exceeded");
                return ReadOutcome::Failed(LinkFailure::Tls(f));
            }
            Err(e) => return ReadOutcome::Io(errno(&e)),
        }
        if let Err(e) = t.process_new_packets() {
            // rustls queued an alert telling the broker why; send it if the socket takes it.
            let mut wrote = false;
            let _ = drain_tls(t, stream, &mut wrote);
            return ReadOutcome::Failed(LinkFailure::Tls(TlsFailure::from_error(&e)));
        }
    }
}

/// Pass the upgrade response to the WebSocket layer, then decode frames in place.
fn unwrap_ws(w: &mut Ws, buf: &mut [u8], outcome: ReadOutcome) -> ReadOutcome {
    if let Some(code) = w.close_received {
        return ReadOutcome::Failed(LinkFailure::Ws(WsError::Closed(code)));
    }
    let ReadOutcome::Data { n, drained, stamp } = outcome else {
        return outcome;
    };
    let mut start = 0;
    if !w.is_open() {
        match w.on_upgrade_bytes(&buf[..n]) {
            Ok(used) => start = used,
            Err(e) => return ReadOutcome::Failed(LinkFailure::Ws(e)),
        }
        if !w.is_open() {
            return ReadOutcome::Data {
                n: 0,
                drained,
                stamp,
            };
        }
        buf.copy_within(start..n, 0);
    }
    match w.decode(&mut buf[..n - start]) {
        Ok(m) => ReadOutcome::Data {
            n: m,
            drained,
            stamp,
        },
        Err(e) => ReadOutcome::Failed(LinkFailure::Ws(e)),
    }
}

fn consume_front(wbuf: &mut Vec<u8>, n: usize) {
    if n == 0 {
        return;
    }
    wbuf.copy_within(n.., 0);
    wbuf.truncate(wbuf.len() - n);
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn flush_plain(stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> io::Result<Flushed> {
    let mut wrote = false;
    while !wbuf.is_empty() {
        match stream.write(wbuf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                consume_front(wbuf, n);
                wrote = true;
            }
            Err(e) if would_block(&e) => {
                return Ok(Flushed {
                    wrote,
                    empty: false,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Flushed { wrote, empty: true })
}

/// Write rustls' pending ciphertext to the socket. Ok(true) when none is left.
fn drain_tls(
    t: &mut ClientConnection,
    stream: &mut TcpStream,
    wrote: &mut bool,
) -> io::Result<bool> {
    while t.wants_write() {
        match t.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => *wrote = true,
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn flush_tls(
    t: &mut ClientConnection,
    stream: &mut TcpStream,
    wbuf: &mut Vec<u8>,
) -> io::Result<Flushed> {
    let mut wrote = false;
    loop {
        if !drain_tls(t, stream, &mut wrote)? {
            return Ok(Flushed {
                wrote,
                empty: false,
            });
        }
        if wbuf.is_empty() || t.is_handshaking() {
            return Ok(Flushed {
                wrote,
                empty: wbuf.is_empty(),
            });
        }
        // The whole batch in one call: rustls seals it in records of up to 16 KiB, as much
        // as its buffer limit allows (0 bytes when full: the socket must drain first).
        let taken = t.writer().write(wbuf)?;
        if taken == 0 {
            return Ok(Flushed {
                wrote,
                empty: false,
            });
        }
        consume_front(wbuf, taken);
    }
}

/// WebSocket over plain TCP; also the sink's write path (`mqblast sink --websocket`).
pub fn flush_ws(w: &mut Ws, stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> io::Result<Flushed> {
    let mut wrote = false;
    loop {
        let [a, b, c] = w.chunks(wbuf);
        if a.is_empty() && b.is_empty() && c.is_empty() {
            return Ok(Flushed {
                wrote,
                empty: wbuf.is_empty(),
            });
        }
        let slices = [IoSlice::new(a), IoSlice::new(b), IoSlice::new(c)];
        match stream.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let payload = w.advance(n);
                consume_front(wbuf, payload);
                wrote = true;
            }
            Err(e) if would_block(&e) => {
                return Ok(Flushed {
                    wrote,
                    empty: false,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn flush_wss(
    t: &mut ClientConnection,
    w: &mut Ws,
    stream: &mut TcpStream,
    wbuf: &mut Vec<u8>,
) -> io::Result<Flushed> {
    let mut wrote = false;
    loop {
        if !drain_tls(t, stream, &mut wrote)? {
            return Ok(Flushed {
                wrote,
                empty: false,
            });
        }
        if t.is_handshaking() {
            return Ok(Flushed {
                wrote,
                empty: wbuf.is_empty(),
            });
        }
        let [a, b, c] = w.chunks(wbuf);
        if a.is_empty() && b.is_empty() && c.is_empty() {
            return Ok(Flushed {
                wrote,
                empty: wbuf.is_empty(),
            });
        }
        // Frame header and payload sealed together.
        let slices = [IoSlice::new(a), IoSlice::new(b), IoSlice::new(c)];
        let taken = t.writer().write_vectored(&slices)?;
        if taken == 0 {
            return Ok(Flushed {
                wrote,
                empty: false,
            });
        }
        let payload = w.advance(taken);
        consume_front(wbuf, payload);
    }
}

/// The transport set-up of a run: TLS configs (when any host uses TLS) and the WebSocket path.
#[derive(Debug, Clone, Default)]
pub struct TransportPlan {
    pub tls: Option<Arc<TlsSetup>>,
    pub tls_options: TlsOptions,
    /// `--ws-path`, default `/mqtt`.
    pub ws_path: String,
}
