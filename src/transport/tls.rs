//! TLS with rustls: client configurations built once at start-up, and what TLS failures mean.
//!
//! Why here and not per connection: parsing a CA bundle or a device's certificate is
//! milliseconds of work and memory per copy. Every connection shares one `ClientConfig`
//! (roots, ALPN, session cache), or with per-device certificates one per device, built and
//! checked before the first connect, so a missing or bad file stops the run at start (exit 2)
//! naming the file, and a connect only clones an `Arc`.
//!
//! Session resumption: each client gets its own copy of its config at its first connect, with
//! a store that remembers one session ([`TlsSetup::client_config`]), so a reconnect
//! (`--reconnect`, `--churn`) resumes its own session instead of paying for a full handshake,
//! and a new device never borrows another's; `--tls-resume false` measures full handshakes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, Error, NamedGroup,
};

/// Client certificates: none, one for every client, or one per device from a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientCerts {
    #[default]
    None,
    /// `--cert` and `--key`.
    One { cert: PathBuf, key: PathBuf },
    /// `--cert-dir` with file-name templates (`{i}`, `{token}`) for certificate and key.
    PerDevice {
        dir: PathBuf,
        cert_name: String,
        key_name: String,
    },
}

/// TLS settings as validated from the configuration (paths not yet read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM bundle of trusted CAs; None: the system's roots.
    pub cafile: Option<PathBuf>,
    /// Skip server certificate verification (signatures of the handshake are still checked).
    pub insecure: bool,
    /// Name to send in SNI and verify the certificate against, instead of the host.
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    pub client_certs: ClientCerts,
    /// Offer session tickets from earlier connections (on by default).
    pub resume: bool,
}

/// Loaded, parsed configurations: shared, or one per device (client `i` of this process
/// uses `configs[i % len]`).
#[derive(Clone)]
pub struct TlsSetup {
    configs: Vec<Arc<ClientConfig>>,
    pub insecure: bool,
    resume: bool,
    /// `--tls-server-name`, parsed.
    pub server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TlsSetup({} configs, insecure {})",
            self.configs.len(),
            self.insecure
        )
    }
}

impl TlsSetup {
    /// Read every file the options name and build the configs. `devices` lists, per client
    /// of this process, the template variables of its certificate files (`{i}`, `{token}`).
    /// Errors name the file and what is wrong with it.
    pub fn load(opts: &TlsOptions, devices: &[(u64, &str)]) -> Result<TlsSetup, String> {
        let server_name = opts
            .server_name
            .as_deref()
            .map(|name| {
                ServerName::try_from(name.to_string()).map_err(|_| {
                    format!("--tls-server-name {name:?}: not a DNS name or IP address")
                })
            })
            .transpose()?;
        let roots = Arc::new(root_store(opts.cafile.as_deref())?);
        let build = |files: Option<(&Path, &Path)>| {
            let identity = files
                .map(|(cert, key)| load_identity(cert, key))
                .transpose()?;
            client_config(opts, Arc::clone(&roots), identity).map_err(|problem| match files {
                Some((cert, key)) => {
                    format!("{} / {}: {problem}", cert.display(), key.display())
                }
                None => problem,
            })
        };
        let configs = match &opts.client_certs {
            ClientCerts::None => vec![build(None)?],
            ClientCerts::One { cert, key } => {
                vec![build(Some((cert, key)))?]
            }
            ClientCerts::PerDevice {
                dir,
                cert_name,
                key_name,
            } => {
                let mut configs = Vec::with_capacity(devices.len());
                for &(index, token) in devices {
                    let cert = dir.join(render(cert_name, index, token));
                    let key = dir.join(render(key_name, index, token));
                    configs.push(build(Some((&cert, &key)))?);
                }
                configs
            }
        };
        Ok(TlsSetup {
            configs,
            insecure: opts.insecure,
            resume: opts.resume,
            server_name,
        })
    }

    /// The config of this process's client `local` (0-based).
    pub fn config_for(&self, local: u64) -> Arc<ClientConfig> {
        let i = (local % self.configs.len().max(1) as u64) as usize;
        Arc::clone(&self.configs[i])
    }

    /// The config one client keeps for all its connections. With resumption on, a client
    /// gets a session cache of its own, so it resumes only sessions it established itself, as
    /// a real device does; sharing the cache would let every new device resume the first
    /// one's ticket and make a storm look cheaper than it is. Made at the client's first
    /// connect (a config clone: a few hundred bytes plus the cache).
    pub fn client_config(&self, local: u64) -> Arc<ClientConfig> {
        let base = self.config_for(local);
        if !self.resume {
            return base;
        }
        let mut own = (*base).clone();
        own.resumption = Resumption::store(Arc::new(OneSession::default()));
        Arc::new(own)
    }
}

/// One client's resumption memory: the latest session with the latest broker it talked to.
///
/// rustls' in-memory cache keeps up to 8 TLS 1.3 tickets per server (OpenSSL servers send 2
/// per handshake, each holding a copy of the server's certificate chain); a client needs one
/// to resume, and an idle connection should hold as little as possible, so this store keeps
/// exactly one ticket (or TLS 1.2 session) and the key-exchange hint.
#[derive(Debug, Default)]
struct OneSession {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    kx_hint: Option<(ServerName<'static>, NamedGroup)>,
    tls12: Option<(ServerName<'static>, Tls12ClientSessionValue)>,
    tls13: Option<(ServerName<'static>, Tls13ClientSessionValue)>,
}

impl OneSession {
    fn with<T>(&self, f: impl FnOnce(&mut Slot) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update: the slot is still
        // a valid (if stale) value, and resumption is an optimisation.
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut slot)
    }
}

/// Take the value out of `entry` when it belongs to `name`.
fn take_for<V>(entry: &mut Option<(ServerName<'static>, V)>, name: &ServerName<'_>) -> Option<V> {
    let matches = entry.as_ref().is_some_and(|(stored, _)| stored == name);
    match matches {
        true => entry.take().map(|(_, v)| v),
        false => None,
    }
}

impl ClientSessionStore for OneSession {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with(|s| s.kx_hint = Some((server_name, group)));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(|s| match &s.kx_hint {
            Some((name, group)) if name == server_name => Some(*group),
            _ => None,
        })
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(|s| s.tls12 = Some((server_name, value)));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(|s| match &s.tls12 {
            Some((name, value)) if name == server_name => Some(value.clone()),
            _ => None,
        })
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(|s| take_for(&mut s.tls12, server_name));
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        // The newest ticket replaces the one before (tickets are single-use in TLS 1.3).
        self.with(|s| s.tls13 = Some((server_name, value)));
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.with(|s| take_for(&mut s.tls13, server_name))
    }
}

/// `{i}` and `{token}` in a certificate file-name template.
pub fn render(template: &str, index: u64, token: &str) -> String {
    template
        .replace("{i}", &index.to_string())
        .replace("{token}", token)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(provider::default_provider())
}

fn client_config(
    opts: &TlsOptions,
    roots: Arc<rustls::RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let certified = certified_key(chain, key)?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Shared configs never resume: each client resumes with its own store (client_config).
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Our own certificate and key, checked only for what is ours to check: that the key is
/// usable and that it is the certificate's key.
///
/// Why not rustls' `with_client_auth_cert`: it checks the match by parsing the certificate
/// with webpki, which takes X.509 v3 only, and `openssl x509 -req` without an extensions file
/// writes v1, which brokers (mosquitto) accept. Validating the certificate is the broker's
/// job; a client only sends it. So the certificate's public key is read with x509-parser,
/// which reads v1 as well, and compared with the key's, as rustls compares them.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key unusable: {e}"))?;
    let leaf = chain.first().ok_or("no certificate in the chain")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    // A key type whose public key rustls cannot derive is left to the broker, as rustls does.
    if let Some(spki) = signing_key.public_key() {
        if spki.as_ref() != cert.tbs_certificate.subject_pki.raw {
            return Err("client certificate and key do not match".to_string());
        }
    }
    Ok(CertifiedKey::new(chain, signing_key))
}

fn root_store(cafile: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match cafile {
        Some(path) => {
            for cert in read_certs(path).map_err(|e| format!("--cafile {e}"))? {
                roots.add(cert).map_err(|e| {
                    format!("--cafile {}: unusable CA certificate: {e}", path.display())
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system bundle may hold certificates rustls cannot use; skip those.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(
                    "no system CA certificates found (install ca-certificates, or give --cafile PEM, or --insecure)"
                        .to_string(),
                );
            }
        }
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e:?}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = read_certs(cert)?;
    let bytes = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("{}: no usable PEM private key: {e:?}", key.display()))?;
    Ok((chain, key_der))
}

/// `--insecure`: accept any server certificate, but still check that the server signed the
/// handshake with the key of the certificate it sent.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a TLS connection failed, in terms a user can act on. `Copy`, so recording it is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The server's certificate is not signed by a trusted CA (`--cafile`?).
    UnknownIssuer,
    Expired,
    NotYetValid,
    /// The certificate is not valid for the host name (`--tls-server-name`?).
    NameMismatch,
    /// Another certificate problem (rustls' name for it).
    BadCertificate(&'static str),
    /// No handshake within `--timeout`.
    HandshakeTimeout,
    /// The broker sent a fatal alert (its code): it refused us, often our client certificate.
    Alert(u8),
    /// The peer's bytes are not TLS: a plain MQTT port?
    NotTls,
    /// Anything else rustls reports (its name for it).
    Other(&'static str),
}

impl TlsFailure {
    pub fn from_error(e: &Error) -> TlsFailure {
        match e {
            Error::InvalidCertificate(c) => from_certificate_error(c),
            Error::AlertReceived(alert) => TlsFailure::Alert(u8::from(*alert)),
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => TlsFailure::NotTls,
            Error::InappropriateHandshakeMessage { .. } => {
                TlsFailure::Other("unexpected handshake message")
            }
            Error::PeerIncompatible(_) => {
                TlsFailure::Other("no protocol version or cipher suite in common")
            }
            Error::PeerMisbehaved(_) => TlsFailure::Other("the broker broke the TLS protocol"),
            Error::NoCertificatesPresented => TlsFailure::Other("the broker sent no certificate"),
            Error::DecryptError => TlsFailure::Other("decrypt error"),
            _ => TlsFailure::Other("handshake failed"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TlsFailure::UnknownIssuer => {
                "tls: certificate verify failed: UnknownIssuer (the broker's CA is not trusted: --cafile?)".to_string()
            }
            TlsFailure::Expired => "tls: certificate expired".to_string(),
            TlsFailure::NotYetValid => "tls: certificate not yet valid".to_string(),
            TlsFailure::NameMismatch => {
                "tls: name mismatch (the certificate is not for this host: --tls-server-name?)".to_string()
            }
            TlsFailure::BadCertificate(what) => format!("tls: certificate verify failed: {what}"),
            TlsFailure::HandshakeTimeout => "tls: handshake timed out".to_string(),
            TlsFailure::Alert(code) => format!(
                "tls: the broker refused the connection: alert {:?}{}",
                AlertDescription::from(*code),
                alert_hint(*code)
            ),
            TlsFailure::NotTls => {
                "tls: the broker does not speak TLS on this port (a plain MQTT port? use mqtt://)".to_string()
            }
            TlsFailure::Other(what) => format!("tls: {what}"),
        }
    }
}

fn alert_hint(code: u8) -> &'static str {
    match AlertDescription::from(code) {
        AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure => {
            " (does it require a client certificate? --cert/--key or --cert-dir)"
        }
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateUnknown => " (it rejected the client certificate)",
        _ => "",
    }
}

fn from_certificate_error(e: &CertificateError) -> TlsFailure {
    match e {
        CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsFailure::NotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsFailure::NameMismatch
        }
        CertificateError::BadSignature => TlsFailure::BadCertificate("BadSignature"),
        CertificateError::BadEncoding => TlsFailure::BadCertificate("BadEncoding"),
        CertificateError::Revoked => TlsFailure::BadCertificate("Revoked"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            TlsFailure::BadCertificate("InvalidPurpose")
        }
        _ => TlsFailure::BadCertificate("Other"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_map_to_the_named_failures() {
        let e = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(TlsFailure::from_error(&e)
            .describe()
            .starts_with("tls: certificate verify failed: UnknownIssuer"));
        let e = Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(
            TlsFailure::from_error(&e).describe(),
            "tls: certificate expired"
        );
        let e = Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(TlsFailure::from_error(&e)
            .describe()
            .starts_with("tls: name mismatch"));
        assert_eq!(
            TlsFailure::HandshakeTimeout.describe(),
            "tls: handshake timed out"
        );
    }

    #[test]
    fn a_missing_certificate_file_is_named_in_the_error() {
        let opts = TlsOptions {
            insecure: true,
            client_certs: ClientCerts::PerDevice {
                dir: PathBuf::from("/nonexistent-dir"),
                cert_name: "device-{i}.pem".into(),
                key_name: "device-{i}.key".into(),
            },
            resume: true,
            ..TlsOptions::default()
        };
        let err = TlsSetup::load(&opts, &[(7, "")]).unwrap_err();
        assert!(err.contains("/nonexistent-dir/device-7.pem"), "{err}");
    }

    #[test]
    fn file_name_templates_take_the_index_and_token() {
        assert_eq!(render("dev-{i}-{token}.pem", 3, "abc"), "dev-3-abc.pem");
    }
}
