//! Transports under the engine: plain TCP, TLS (rustls), WebSocket and WebSocket over TLS.
//!
//! Why an enum a connection owns, not a trait object: the write path runs per flush on every
//! connection, and a `match` on four variants keeps it inlined and the plain-TCP path exactly
//! what it was. The engine keeps writing pre-serialized MQTT frames into its write buffer and
//! reading MQTT bytes out of its scratch buffer; the transport sits between those buffers and
//! the socket:
//!
//! - write: TLS seals the whole pending batch in records of up to 16 KiB, in the
//!   connection's own send buffer ([`record`]); WebSocket frames the batch as one binary
//!   frame, masked in place ([`ws`]), written with one vectored write or sealed as above.
//! - read: TLS opens records in place in the connection's receive buffer and copies the
//!   plaintext into the engine's scratch buffer; WebSocket frames are decoded in place there;
//!   what comes out is MQTT bytes.
//!
//! Bounds per connection: TLS holds at most [`record::TX_BYTES_MAX`] of unsent ciphertext
//! (beyond it the batch waits in the engine's write buffer, as on a full socket) and at most
//! [`record::RX_BYTES_MAX`] of received ciphertext (a handshake flight, or one record and the
//! start of the next); both start at 1 KiB and double only when a record does not fit.
//! WebSocket state is about 300 bytes ([`ws`]).

pub mod record;
pub mod rx_stamp;
pub mod tls;
pub mod ws;

use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;

pub use record::TlsLink;
pub use tls::{ClientCerts, TlsFailure, TlsOptions, TlsSetup};
pub use ws::{Ws, WsError};

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
    Tls(Box<TlsLink>),
    Ws(Box<Ws>),
    Wss(Box<TlsLink>, Box<Ws>),
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
        let tls = || -> Result<Box<TlsLink>, String> {
            let (setup, config) = dial.tls.as_ref().ok_or("TLS without a TLS set-up")?;
            let name = match &setup.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(dial.host.to_string())
                    .map_err(|_| format!("{}: not a valid TLS server name", dial.host))?,
            };
            Ok(Box::new(TlsLink::new(Arc::clone(config), name)?))
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
            Transport::Tls(t) | Transport::Wss(t, _) => t.resumed(),
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
            Transport::Tls(t) => t.read(stream, buf),
            Transport::Ws(w) => {
                let outcome = read_plain(stream, buf);
                unwrap_ws(w, buf, outcome)
            }
            Transport::Wss(t, w) => {
                let outcome = t.read(stream, buf);
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
    /// failed to open, the fatal alert queued then goes instead.
    pub fn close(&mut self, stream: &mut TcpStream) {
        if let Transport::Tls(t) | Transport::Wss(t, _) = self {
            t.close(stream);
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

fn flush_tls(t: &mut TlsLink, stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> io::Result<Flushed> {
    let mut wrote = false;
    loop {
        if !t.drain(stream, &mut wrote)? {
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
        // The whole batch at once: sealed in records of up to 16 KiB, as much as the send
        // bound allows.
        let taken = t.seal(&[wbuf])?;
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
    t: &mut TlsLink,
    w: &mut Ws,
    stream: &mut TcpStream,
    wbuf: &mut Vec<u8>,
) -> io::Result<Flushed> {
    let mut wrote = false;
    loop {
        if !t.drain(stream, &mut wrote)? {
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
        let taken = t.seal(&[a, b, c])?;
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
