//! Value syntax shared by the settings and other commands: durations, broker addresses and
//! source-address ranges. Pure functions returning a problem text; callers add the origin.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::DEFAULT_PORT;
use crate::plan::HostPort;
use crate::transport::Scheme;

pub(super) const DURATION_FORMS: &str =
    "expected a duration like 30 (seconds), 30s, 5m, 1h30m or 250ms";

/// Longest string MQTT can carry (section 1.5.3: a 2-byte length prefix). The encoders panic
/// beyond it, so every user-given string that goes on the wire is checked against it here.
pub(super) const MQTT_STRING_MAX_BYTES: usize = 65_535;

/// Refuse a wire string of `len_bytes` that MQTT cannot carry.
pub(super) fn check_mqtt_string_len(len_bytes: usize) -> Result<(), String> {
    match len_bytes {
        0..=MQTT_STRING_MAX_BYTES => Ok(()),
        _ => Err(format!(
            "{len_bytes} bytes, more than the {MQTT_STRING_MAX_BYTES} an MQTT string can hold"
        )),
    }
}

/// Refuse a wire string with U+0000: MQTT forbids it in every UTF-8 string [MQTT-1.5.3-2],
/// and a broker that gets one in a CONNECT drops the connection, so every client would fail
/// at connect time with nothing said about why. U+0001..U+001F and U+007F..U+009F are only
/// discouraged (SHOULD NOT) and pass: some brokers accept them and a test may need them.
pub(super) fn check_no_nul(text: &str) -> Result<(), &'static str> {
    match text.contains('\0') {
        true => {
            Err("contains a NUL character (U+0000), which MQTT forbids in strings [MQTT-1.5.3-2]")
        }
        false => Ok(()),
    }
}

/// Most source addresses `--bind` may list (ranges expanded): a /16 of IPv4.
pub const MAX_BIND_ADDRS: usize = 65_536;

/// One `--bind` item: an IP address, or `FIRST-LAST` (IPv4, inclusive, FIRST <= LAST).
pub(super) fn parse_bind_item(item: &str) -> Result<Vec<IpAddr>, String> {
    const FORMS: &str = "expected an IP address or an IPv4 range such as 127.0.0.2-127.0.0.40";
    let Some((first, last)) = item.split_once('-') else {
        return item
            .parse::<IpAddr>()
            .map(|ip| vec![ip])
            .map_err(|_| FORMS.to_string());
    };
    let parse = |text: &str| {
        text.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| FORMS.to_string())
    };
    let (first, last) = (u32::from(parse(first)?), u32::from(parse(last)?));
    if first > last {
        return Err("the range ends before it starts".to_string());
    }
    if (last - first) as usize >= MAX_BIND_ADDRS {
        return Err(format!("more than {MAX_BIND_ADDRS} source addresses"));
    }
    Ok((first..=last)
        .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        .collect())
}

/// `30` (seconds), `30s`, `5m`, `1h30m`, `250ms`, `1.5s`; units h, m, s, ms, us, ns.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DURATION_FORMS.to_string());
    }
    let mut total_ns: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let bare_number = number_len == text.len();
        let unit_ns = unit_nanos(unit.trim(), bare_number).ok_or(DURATION_FORMS)?;
        let component_ns = number_nanos(number, unit_ns).ok_or(DURATION_FORMS)?;
        total_ns = total_ns.checked_add(component_ns).ok_or(DURATION_FORMS)?;
        rest = next.trim_start();
    }
    u64::try_from(total_ns)
        .map(Duration::from_nanos)
        .map_err(|_| "too long (at most about 584 years)".to_string())
}

pub(super) fn unit_nanos(unit: &str, bare_number: bool) -> Option<u128> {
    Some(match unit {
        "" if bare_number => 1_000_000_000,
        "h" => 3_600_000_000_000,
        "m" => 60_000_000_000,
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        _ => return None,
    })
}

/// `number` (digits, optionally one decimal point) times `unit_ns`, in integer arithmetic.
pub(super) fn number_nanos(number: &str, unit_ns: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > 9
    {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    whole
        .checked_mul(unit_ns)?
        .checked_add(fraction.checked_mul(unit_ns)? / scale)
}

/// The shortest form [`parse_duration`] reads back: `1h30m`, `10s`, `250ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let ns = duration.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if !ns.is_multiple_of(1_000_000_000) {
        return match ns {
            _ if ns.is_multiple_of(1_000_000) => format!("{}ms", ns / 1_000_000),
            _ if ns.is_multiple_of(1_000) => format!("{}us", ns / 1_000),
            _ => format!("{ns}ns"),
        };
    }
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// `mqtt://host:port`, `tcp://host:port`, `host:port`, `host` (port 1883); `mqtts://` or
/// `ssl://` (TLS, port 8883); `ws://` and `wss://` (port 80 / 443, optional path); IPv6 as
/// `[::1]:1883`.
pub fn parse_host(text: &str) -> Result<HostPort, String> {
    const FORMS: &str = "expected mqtt://host:port, mqtts://host:port, ws://host:port/path, wss://host:port/path, host:port or host";
    let text = text.trim();
    let (scheme, address) = match text.split_once("://") {
        None => (Scheme::Tcp, text),
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => (Scheme::Tcp, rest),
            "mqtts" | "ssl" | "tls" => (Scheme::Tls, rest),
            "ws" => (Scheme::Ws, rest),
            "wss" => (Scheme::Wss, rest),
            _ => return Err(format!("unknown scheme {scheme}://: {FORMS}")),
        },
    };
    let (address, path) = split_path(address, scheme)?;
    if address.contains('@') {
        return Err("credentials go in --username/--password or --tokens, not in the host".into());
    }
    let (host, port) = split_host_port(address).ok_or(FORMS)?;
    if host.is_empty() {
        return Err(format!("missing host name: {FORMS}"));
    }
    let port = match port {
        None if scheme == Scheme::Tcp => DEFAULT_PORT,
        None => scheme.default_port(),
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("port {port:?} must be a number from 1 to 65535")),
        },
    };
    Ok(HostPort {
        host: host.to_string(),
        port,
        scheme,
        path,
    })
}

/// A WebSocket URL may carry a path (`ws://b:8080/mqtt`); other schemes may not.
fn split_path(address: &str, scheme: Scheme) -> Result<(&str, Option<String>), String> {
    let Some(slash) = address.find('/') else {
        return Ok((address, None));
    };
    let (address, path) = address.split_at(slash);
    if path == "/" {
        return Ok((address, None));
    }
    if !scheme.uses_ws() {
        return Err("only ws:// and wss:// hosts take a path (no path)".to_string());
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("the WebSocket path must not contain spaces or control characters".into());
    }
    Ok((address, Some(path.to_string())))
}

pub(super) fn split_host_port(address: &str) -> Option<(&str, Option<&str>)> {
    if let Some(bracketed) = address.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    if address.matches(':').count() > 1 {
        // A bare IPv6 address; a port needs the brackets.
        return Some((address, None));
    }
    match address.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((address, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_locust_forms_and_more() {
        let cases = [
            ("30", 30_000),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("1.5s", 1_500),
            ("1h 2m 3s", 3_723_000),
            ("0", 0),
            (" 2m ", 120_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
    }

    #[test]
    fn durations_reject_what_they_cannot_read() {
        for text in [
            "",
            "s",
            "5x",
            "-5s",
            "1h30",
            "1.2.3s",
            "5 minutes",
            "1.0000000001s",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DURATION_FORMS.to_string()),
                "{text:?}"
            );
        }
        assert!(parse_duration("999999999999h")
            .unwrap_err()
            .starts_with("too long"));
    }

    #[test]
    fn durations_format_in_a_form_they_parse_back_from() {
        for ms in [
            0, 1, 250, 1_000, 1_500, 60_000, 90_000, 3_600_000, 5_400_000, 3_723_000,
        ] {
            let duration = Duration::from_millis(ms);
            assert_eq!(
                parse_duration(&format_duration(duration)),
                Ok(duration),
                "{ms}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn hosts_accept_urls_host_port_and_bare_names() {
        let hp = |host: &str, port| HostPort::tcp(host, port);
        assert_eq!(
            parse_host("mqtt://tb.example.com:1884"),
            Ok(hp("tb.example.com", 1884))
        );
        assert_eq!(parse_host("tcp://10.0.0.1:1883/"), Ok(hp("10.0.0.1", 1883)));
        assert_eq!(parse_host("broker:2000"), Ok(hp("broker", 2000)));
        assert_eq!(parse_host("broker"), Ok(hp("broker", 1883)));
        assert_eq!(parse_host("MQTT://broker"), Ok(hp("broker", 1883)));
        assert_eq!(parse_host("[::1]:1884"), Ok(hp("::1", 1884)));
        assert_eq!(parse_host("::1"), Ok(hp("::1", 1883)));
    }

    #[test]
    fn tls_and_websocket_hosts_take_their_default_ports_and_paths() {
        let tls = parse_host("mqtts://b").unwrap();
        assert_eq!((tls.scheme, tls.port), (Scheme::Tls, 8883));
        assert_eq!(parse_host("ssl://b:9999").unwrap().scheme, Scheme::Tls);
        let ws = parse_host("ws://b:8080/mqtt").unwrap();
        assert_eq!((ws.scheme, ws.port), (Scheme::Ws, 8080));
        assert_eq!(ws.path.as_deref(), Some("/mqtt"));
        let wss = parse_host("wss://b").unwrap();
        assert_eq!((wss.scheme, wss.port, &wss.path), (Scheme::Wss, 443, &None));
        assert_eq!(wss.to_string(), "wss://b:443");
    }

    #[test]
    fn hosts_reject_unknown_schemes_paths_credentials_and_bad_ports() {
        assert!(parse_host("http://b")
            .unwrap_err()
            .starts_with("unknown scheme http://"));
        assert!(parse_host("b/x").unwrap_err().contains("no path"));
        assert!(parse_host("mqtts://b/x").unwrap_err().contains("no path"));
        assert!(parse_host("u:p@b").unwrap_err().starts_with("credentials"));
        assert!(parse_host("b:0").unwrap_err().contains("1 to 65535"));
        assert!(parse_host("b:70000").unwrap_err().contains("1 to 65535"));
        assert!(parse_host(":1883")
            .unwrap_err()
            .starts_with("missing host name"));
    }
}
