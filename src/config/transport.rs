//! TLS and WebSocket settings: which options go together, and loading every certificate once,
//! before the run, so a missing or unreadable file is a start-up error naming it (exit 2).

use std::sync::Arc;

use super::layers::Raw;
use super::{invalid, ConfigError, Context};
use crate::plan::HostPort;
use crate::transport::{ClientCerts, TlsOptions, TlsSetup, TransportPlan};

/// The raw TLS and WebSocket settings, resolved; certificates are read by [`load_tls`].
pub(super) fn resolve_transport(
    get: &dyn Fn(&str) -> Option<Raw>,
    ctx: &Context,
    hosts: &[HostPort],
) -> Result<TransportPlan, ConfigError> {
    let required =
        |name: &str| get(name).ok_or_else(|| invalid(format!("{name}: no value and no default")));
    let path = |name: &str| {
        get(name)
            .filter(|r| !r.is_blank())
            .map(|r| r.path(ctx))
            .transpose()
    };
    let client_certs = match (path("cert")?, path("key")?, path("cert_dir")?) {
        (None, None, None) => ClientCerts::None,
        (Some(cert), Some(key), None) => ClientCerts::One { cert, key },
        (Some(_), None, _) | (None, Some(_), _) => return Err(invalid(
            "--cert and --key go together: give both (or --cert-dir for per-device certificates)"
                .to_string(),
        )),
        (_, _, Some(dir)) if get("cert").is_some() => {
            let _ = dir;
            return Err(invalid(
                "--cert/--key and --cert-dir exclude each other: one certificate for all clients, or one per device"
                    .to_string(),
            ));
        }
        (_, _, Some(dir)) => ClientCerts::PerDevice {
            dir,
            cert_name: file_template(&required("cert_name")?)?,
            key_name: file_template(&required("key_name")?)?,
        },
    };
    let alpn = match get("alpn") {
        Some(raw) => raw.list()?.into_iter().filter(|p| !p.is_empty()).collect(),
        None => Vec::new(),
    };
    let server_name = get("tls_server_name")
        .filter(|r| !r.is_blank())
        .map(|r| r.text())
        .transpose()?;
    let tls_options = TlsOptions {
        cafile: path("cafile")?,
        insecure: required("insecure")?.boolean()?,
        server_name,
        alpn,
        client_certs,
        resume: required("tls_resume")?.boolean()?,
    };
    let ws_path_raw = required("ws_path")?;
    let ws_path = ws_path_raw.text()?;
    if !ws_path.starts_with('/') || ws_path.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(ws_path_raw.fail("must start with / and contain no spaces"));
    }
    let uses_tls = hosts.iter().any(|h| h.scheme.uses_tls());
    if !uses_tls && tls_options != tls_defaults(&tls_options) {
        return Err(invalid(
            "TLS options given but no host uses TLS: use mqtts://host or wss://host".to_string(),
        ));
    }
    Ok(TransportPlan {
        tls: None,
        tls_options,
        ws_path,
    })
}

/// The options as they are when no TLS flag was given (resumption on).
fn tls_defaults(opts: &TlsOptions) -> TlsOptions {
    TlsOptions {
        resume: opts.resume,
        ..TlsOptions::default()
    }
}

fn file_template(raw: &Raw) -> Result<String, ConfigError> {
    let text = raw.text()?;
    if text.trim().is_empty() || text.contains('/') {
        return Err(raw.fail("must be a file name (no /), with {i} and {token} placeholders"));
    }
    Ok(text)
}

/// Read and parse every certificate the run needs: one set, or one per device for
/// `devices` (client index, token) of this process.
pub(super) fn load_tls(
    transport: &mut TransportPlan,
    hosts: &[HostPort],
    devices: &[(u64, &str)],
) -> Result<(), ConfigError> {
    if !hosts.iter().any(|h| h.scheme.uses_tls()) {
        return Ok(());
    }
    let setup = TlsSetup::load(&transport.tls_options, devices).map_err(invalid)?;
    transport.tls = Some(Arc::new(setup));
    Ok(())
}
