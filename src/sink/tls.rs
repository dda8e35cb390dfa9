//! TLS for the sink (`--tls-cert`, `--tls-key`), so the generator's TLS cost can be measured
//! without a broker's in the way: the sink terminates TLS with rustls and then speaks the same
//! MQTT as over TCP, or over WebSocket with `--websocket` (wss).
//!
//! Bounds: rustls holds at most [`TLS_BUFFER_BYTES`] of unsent ciphertext per connection (the
//! acks wait in the connection's write buffer beyond it, which pauses reading as over TCP).

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use crate::transport::Ws;

/// Ciphertext rustls may hold unsent per connection.
pub const TLS_BUFFER_BYTES: usize = 64 * 1024;

/// The sink's server configuration (certificate chain and key, loaded once).
#[derive(Clone)]
pub struct SinkTls(pub Arc<ServerConfig>);

impl fmt::Debug for SinkTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SinkTls")
    }
}

impl PartialEq for SinkTls {
    fn eq(&self, other: &SinkTls) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SinkTls {}

impl SinkTls {
    /// Read the PEM chain and key; errors name the file.
    pub fn load(cert: &Path, key: &Path) -> Result<SinkTls, String> {
        let bytes = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: not a PEM certificate file: {e:?}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no PEM certificate in it", cert.display()));
        }
        let bytes = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let key_der = PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| format!("{}: no usable PEM private key: {e:?}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
        Ok(SinkTls(Arc::new(config)))
    }

    /// A session for one accepted connection.
    pub fn accept(&self) -> Option<Box<ServerConnection>> {
        let mut conn = ServerConnection::new(Arc::clone(&self.0)).ok()?;
        conn.set_buffer_limit(Some(TLS_BUFFER_BYTES));
        Some(Box::new(conn))
    }
}

/// Plaintext into `buf`, reading the socket when rustls has none: `Ok(0)` at the end of the
/// stream, `WouldBlock` when the socket is empty, `InvalidData` for a TLS error.
pub fn read(
    tls: &mut ServerConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if tls.read_tls(stream)? == 0 {
            return Ok(0);
        }
        if let Err(e) = tls.process_new_packets() {
            let _ = tls.write_tls(stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// Encrypt `wbuf` (as much as the buffer limit takes; with `ws`, framed first) and write
/// ciphertext until done or the socket would block; written plaintext leaves `wbuf`.
pub fn flush(
    tls: &mut ServerConnection,
    mut ws: Option<&mut Ws>,
    stream: &mut TcpStream,
    wbuf: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if tls.is_handshaking() {
            return Ok(());
        }
        let taken = match ws.as_deref_mut() {
            Some(ws) => {
                let [a, b, c] = ws.chunks(wbuf);
                if a.is_empty() && b.is_empty() && c.is_empty() {
                    return Ok(());
                }
                let slices = [IoSlice::new(a), IoSlice::new(b), IoSlice::new(c)];
                let written = tls.writer().write_vectored(&slices)?;
                if written == 0 {
                    return Ok(());
                }
                ws.advance(written)
            }
            None if wbuf.is_empty() => return Ok(()),
            None => match tls.writer().write(wbuf)? {
                0 => return Ok(()),
                n => n,
            },
        };
        wbuf.drain(..taken);
    }
}
