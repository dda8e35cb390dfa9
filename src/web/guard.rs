//! Who may use the web face. The UI starts load against any broker it is given, so a page
//! from another site must not drive it through the user's browser:
//! - every request must name this server in `Host` (the bound address, `localhost`, or, when
//!   bound beyond loopback, this host's own name and, when bound to all addresses, any IP
//!   address): a DNS name that an attacker re-points at 127.0.0.1 (DNS rebinding) arrives
//!   with the attacker's name and is refused (403);
//! - state changes (`/swarm`, `/stop`, `/stats/reset`) are POSTs of a form
//!   (`application/x-www-form-urlencoded` or `multipart/form-data`, what Locust's page and
//!   `curl -d`/`-F` send) from the page's own origin: `Origin` absent (curl) or equal to
//!   `http://` + the Host, and `Sec-Fetch-Site` absent, `same-origin` or `none`;
//! - basic auth, when configured, on every path (scheme in any case, credentials exact).
//!
//! Refusals are JSON errors that say what was refused and why; values echoed are cut short.

use std::net::IpAddr;

use base64::Engine as _;

use super::api::Reply;
use super::http::Head;

/// Longest piece of a refused header echoed in an error.
const ECHO_MAX_CHARS: usize = 64;

/// The media types a state change may carry.
pub const FORM_TYPES: [&str; 2] = ["application/x-www-form-urlencoded", "multipart/form-data"];

/// What the server checks on every request.
pub struct Guard {
    /// The address the UI listens on; unspecified (0.0.0.0, ::) accepts any IP in `Host`.
    listen_ip: IpAddr,
    /// `user:pass` base64-encoded, when `--web-auth` is set.
    credentials: Option<String>,
    /// This host's name (`gethostname`), accepted in `Host` when the UI listens beyond
    /// loopback, so that `http://loadgen1:8089/` works as it does with Locust. Only the exact
    /// name: a suffix or prefix match would let `loadgen1.attacker.example` in.
    own_name: Option<String>,
}

impl Guard {
    pub fn new(listen_ip: IpAddr, auth: Option<&(String, String)>) -> Guard {
        let credentials = auth.map(|(user, pass)| {
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        });
        let own_name = (!listen_ip.is_loopback()).then(own_host_name).flatten();
        Guard {
            listen_ip,
            credentials,
            own_name,
        }
    }

    /// Refuse a request whose `Host` does not name this server (every path).
    pub fn check_host(&self, head: &Head) -> Result<(), Reply> {
        let Some(host) = head.host.as_deref() else {
            return Err(Reply::error(400, "the request has no Host header"));
        };
        if self.host_allowed(host) {
            return Ok(());
        }
        let address = match self.listen_ip.is_unspecified() {
            true => "an IP address of this host".to_string(),
            false => bracketed(self.listen_ip),
        };
        Err(Reply::error(
            403,
            &format!(
                "Host {:?} is not this server: use {address} or localhost in the URL (other names are refused against DNS rebinding)",
                cut(host),
            ),
        ))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        if name.eq_ignore_ascii_case("localhost")
            || self
                .own_name
                .as_deref()
                .is_some_and(|own| name.eq_ignore_ascii_case(own))
        {
            return true;
        }
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        match literal.parse::<IpAddr>() {
            Ok(ip) => self.listen_ip.is_unspecified() || ip == self.listen_ip,
            Err(_) => false,
        }
    }

    /// True without auth configured, or when `Authorization` carries the configured
    /// credentials under the `Basic` scheme (its name in any case, RFC 9110 section 11.1).
    pub fn authorized(&self, head: &Head) -> bool {
        let Some(expected) = self.credentials.as_deref() else {
            return true;
        };
        let given = head.authorization.as_deref().unwrap_or_default().trim();
        let (scheme, token) = given.split_once([' ', '\t']).unwrap_or((given, ""));
        scheme.eq_ignore_ascii_case("basic") && same_bytes(token.trim(), expected)
    }
}

/// Refuse a state change that is not a form POST from the page's own origin (the caller
/// has checked `Host` already, so the origin compared is this server's).
pub fn check_state_change(head: &Head) -> Result<(), Reply> {
    let host = head.host.as_deref().unwrap_or_default();
    if let Some(origin) = head.origin.as_deref() {
        let served = format!("http://{host}");
        if !origin.eq_ignore_ascii_case(&served) {
            return Err(Reply::error(
                403,
                &format!(
                    "cross-origin request refused: Origin {:?} is not {served:?} (state changes come from this server's own page or from a client without Origin, such as curl)",
                    cut(origin)
                ),
            ));
        }
    }
    if let Some(site) = head.sec_fetch_site.as_deref() {
        if !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")) {
            return Err(Reply::error(
                403,
                &format!(
                    "cross-site request refused: Sec-Fetch-Site is {:?} (state changes come from this server's own page)",
                    cut(site)
                ),
            ));
        }
    }
    let media_type = head
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if !FORM_TYPES
        .iter()
        .any(|t| media_type.eq_ignore_ascii_case(t))
    {
        return Err(Reply::error(
            415,
            &format!(
                "a state change is a form POST: Content-Type must be {} or {}, got {:?} (curl -d '...' sends the first)",
                FORM_TYPES[0],
                FORM_TYPES[1],
                cut(&head.content_type)
            ),
        ));
    }
    Ok(())
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`); None when
/// the port is not a number or the value is not of that form.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) || name.is_empty() {
        return None;
    }
    Some(name)
}

/// This host's name, when the kernel has one that is not `localhost`.
fn own_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on
    // success (a truncated name is not used).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty() && !name.eq_ignore_ascii_case("localhost")).then(|| name.to_string())
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// At most [`ECHO_MAX_CHARS`] characters of a value from the request.
fn cut(value: &str) -> String {
    match value.char_indices().nth(ECHO_MAX_CHARS) {
        Some((at, _)) => format!("{}...", &value[..at]),
        None => value.to_string(),
    }
}

/// Compared in full whatever the first difference, so the time says nothing about it.
fn same_bytes(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn head(lines: &[(&str, &str)]) -> Head {
        let mut text = String::from("POST /swarm HTTP/1.1\r\n");
        for (name, value) in lines {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        super::super::http::parse_head(text.as_bytes())
            .ok()
            .flatten()
            .expect("a head")
    }

    fn loopback() -> Guard {
        Guard::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
    }

    fn status(result: Result<(), Reply>) -> u16 {
        result.err().map_or(200, |r| r.status)
    }

    #[test]
    fn a_rebound_dns_name_in_host_is_refused_on_every_request() {
        let guard = loopback();
        for host in ["127.0.0.1:8089", "localhost:8089", "LOCALHOST", "127.0.0.1"] {
            assert_eq!(
                status(guard.check_host(&head(&[("Host", host)]))),
                200,
                "{host}"
            );
        }
        for host in [
            "attacker.example:8089",
            "attacker.example",
            "127.0.0.2:8089",
            "localhost.attacker.example",
            "127.0.0.1:http",
            "[::1]:8089",
            "",
        ] {
            assert_eq!(
                status(guard.check_host(&head(&[("Host", host)]))),
                403,
                "{host}"
            );
        }
        assert_eq!(status(guard.check_host(&head(&[]))), 400, "no Host");
        let all = Guard::new("0.0.0.0".parse().unwrap(), None);
        assert_eq!(
            status(all.check_host(&head(&[("Host", "10.1.2.3:8089")]))),
            200
        );
        assert_eq!(
            status(all.check_host(&head(&[("Host", "[fe80::1]:80")]))),
            200
        );
        assert_eq!(
            status(all.check_host(&head(&[("Host", "evil.example")]))),
            403
        );
        if let Some(own) = own_host_name() {
            let with_port = format!("{own}:8089");
            assert_eq!(status(all.check_host(&head(&[("Host", &with_port)]))), 200);
            let suffixed = format!("{own}.attacker.example");
            assert_eq!(status(all.check_host(&head(&[("Host", &suffixed)]))), 403);
            assert_eq!(
                status(guard.check_host(&head(&[("Host", &with_port)]))),
                403,
                "bound to loopback, the host's name is not this server"
            );
        }
        let v6 = Guard::new("::1".parse().unwrap(), None);
        assert_eq!(status(v6.check_host(&head(&[("Host", "[::1]:8089")]))), 200);
    }

    #[test]
    fn a_cross_site_or_non_form_state_change_is_refused() {
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        let host = ("Host", "127.0.0.1:8089");
        let ok = |extra: &[(&str, &str)]| {
            let mut lines = vec![host, form];
            lines.extend_from_slice(extra);
            status(check_state_change(&head(&lines)))
        };
        assert_eq!(ok(&[]), 200, "curl: no Origin");
        assert_eq!(ok(&[("Origin", "http://127.0.0.1:8089")]), 200);
        assert_eq!(ok(&[("Sec-Fetch-Site", "same-origin")]), 200);
        assert_eq!(ok(&[("Sec-Fetch-Site", "none")]), 200);
        assert_eq!(ok(&[("Origin", "http://attacker.example")]), 403);
        assert_eq!(ok(&[("Origin", "null")]), 403);
        assert_eq!(ok(&[("Origin", "http://127.0.0.1:9999")]), 403);
        assert_eq!(ok(&[("Sec-Fetch-Site", "cross-site")]), 403);
        assert_eq!(ok(&[("Sec-Fetch-Site", "same-site")]), 403);
        let typed = |content_type: &str| {
            status(check_state_change(&head(&[
                host,
                ("Content-Type", content_type),
            ])))
        };
        assert_eq!(typed("multipart/form-data; boundary=x"), 200);
        assert_eq!(
            typed("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            200
        );
        assert_eq!(typed("text/plain"), 415);
        assert_eq!(typed("application/json"), 415);
        assert_eq!(status(check_state_change(&head(&[host]))), 415, "no type");
    }

    #[test]
    fn the_basic_auth_scheme_matches_in_any_case_and_the_credentials_exactly() {
        let auth = ("admin".to_string(), "secret".to_string());
        let guard = Guard::new(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(&auth));
        let token = base64::engine::general_purpose::STANDARD.encode("admin:secret");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let value = format!("{scheme} {token}");
            assert!(
                guard.authorized(&head(&[("Authorization", &value)])),
                "{scheme}"
            );
        }
        let wrong = base64::engine::general_purpose::STANDARD.encode("admin:secreT");
        for value in [
            format!("Basic {wrong}"),
            format!("Bearer {token}"),
            token.clone(),
            String::new(),
        ] {
            assert!(
                !guard.authorized(&head(&[("Authorization", &value)])),
                "{value}"
            );
        }
        assert!(!guard.authorized(&head(&[])));
        assert!(loopback().authorized(&head(&[])), "no auth configured");
    }
}
