//! The HTTP/1.1 the web face speaks, and no more: one request per connection (every reply
//! says `Connection: close`), a head of at most [`MAX_HEAD_BYTES`], a body only with
//! `Content-Length` (at most `MAX_BODY_BYTES`), and replies with a known length. Parsing is
//! free of I/O so that every refusal can be tested byte for byte; `server` does the reading
//! and writing with deadlines.

use super::api::Reply;

/// Largest request line plus headers: a browser's or curl's requests are under 2 KiB; more is
/// refused (431).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What the server needs of a request's head.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    pub method: String,
    /// The request target as sent (path and query, not decoded).
    pub target: String,
    pub content_type: String,
    pub authorization: Option<String>,
    /// `Host`, `Origin` and `Sec-Fetch-Site` as sent (checked by `guard`).
    pub host: Option<String>,
    pub origin: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub content_length: u64,
    /// Whether a `Content-Length` header was seen (a second one must agree with it).
    pub has_content_length: bool,
    /// `Expect: 100-continue`: the client waits for a 100 before sending its body.
    pub expects_continue: bool,
    /// Bytes of the head, the blank line included: the body starts here in the buffer.
    pub head_bytes: usize,
}

/// The head in `buf`, if complete: `Ok(None)` while more bytes are needed, an error reply
/// when the head is malformed or too large.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Reply> {
    let Some(end) = find_blank_line(&buf[..buf.len().min(MAX_HEAD_BYTES + 4)]) else {
        return match buf.len() >= MAX_HEAD_BYTES {
            true => Err(too_large_head()),
            false => Ok(None),
        };
    };
    if end + 4 > MAX_HEAD_BYTES {
        return Err(too_large_head());
    }
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| Reply::error(400, "the request head is not valid UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut head = request_line(lines.next().unwrap_or_default())?;
    head.head_bytes = end + 4;
    for line in lines {
        header_line(&mut head, line)?;
    }
    Ok(Some(head))
}

fn too_large_head() -> Reply {
    Reply::error(
        431,
        &format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
    )
}

/// Where the head's blank line (`\r\n\r\n`) starts.
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// `METHOD TARGET HTTP/1.x`.
fn request_line(line: &str) -> Result<Head, Reply> {
    let bad = || Reply::error(400, "malformed request line");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(bad());
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        ..Head::default()
    })
}

fn header_line(head: &mut Head, line: &str) -> Result<(), Reply> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(Reply::error(400, "malformed header line"));
    };
    let value = value.trim();
    match name.to_ascii_lowercase().as_str() {
        "content-type" => head.content_type = value.to_string(),
        "authorization" => head.authorization = Some(value.to_string()),
        // Repeated, the request is ambiguous (which one a proxy used is unknown): refused.
        "host" if head.host.is_some() => {
            return Err(Reply::error(400, "more than one Host header"));
        }
        "host" => head.host = Some(value.to_string()),
        "origin" if head.origin.is_some() => {
            return Err(Reply::error(400, "more than one Origin header"));
        }
        "origin" => head.origin = Some(value.to_string()),
        "sec-fetch-site" => head.sec_fetch_site = Some(value.to_string()),
        "content-length" => {
            let length = value
                .parse()
                .map_err(|_| Reply::error(400, "Content-Length is not a number"))?;
            // Two lengths that differ leave the body's end to guesswork (request smuggling
            // through a proxy that picks the other one): refused, as RFC 9112 section 6.3 says.
            if head.has_content_length && head.content_length != length {
                return Err(Reply::error(400, "conflicting Content-Length headers"));
            }
            head.content_length = length;
            head.has_content_length = true;
        }
        "transfer-encoding" if !value.eq_ignore_ascii_case("identity") => {
            return Err(Reply::error(
                411,
                "chunked request bodies are not accepted: send Content-Length",
            ));
        }
        "expect" => head.expects_continue = value.eq_ignore_ascii_case("100-continue"),
        _ => {}
    }
    Ok(())
}

/// The reply as bytes on the wire; `HEAD` gets the headers only.
pub fn encode_reply(reply: &Reply, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    )
    .into_bytes();
    for (name, value) in &reply.headers {
        // Values are built by `api`; a line break in one would split the header: dropped.
        if !value.contains(['\r', '\n']) {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Head {
        match parse_head(text.as_bytes()) {
            Ok(Some(head)) => head,
            Ok(None) => panic!("incomplete: {text:?}"),
            Err(reply) => panic!("refused {}: {text:?}", reply.status),
        }
    }

    fn refused(text: &[u8]) -> u16 {
        match parse_head(text) {
            Err(reply) => reply.status,
            Ok(head) => panic!("accepted: {head:?}"),
        }
    }

    #[test]
    fn a_form_post_gives_its_method_target_type_length_and_body_start() {
        let text = "POST /swarm?x=1 HTTP/1.1\r\nHost: a\r\ncontent-type: application/x-www-form-urlencoded\r\nContent-Length: 12\r\nAuthorization: Basic YTpi\r\nExpect: 100-continue\r\n\r\nuser_count=5";
        let head = parsed(text);
        assert_eq!(
            (head.method.as_str(), head.target.as_str()),
            ("POST", "/swarm?x=1")
        );
        assert_eq!(head.content_type, "application/x-www-form-urlencoded");
        assert_eq!(head.content_length, 12);
        assert_eq!(head.authorization.as_deref(), Some("Basic YTpi"));
        assert!(head.expects_continue);
        assert_eq!(&text[head.head_bytes..], "user_count=5");
    }

    #[test]
    fn an_unfinished_head_waits_for_more_until_it_reaches_the_bound() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n").ok(),
            Some(None)
        );
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD_BYTES, b'a');
        assert_eq!(refused(&long), 431);
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(refused(&long), 431, "complete but beyond the bound");
    }

    #[test]
    fn malformed_heads_and_chunked_bodies_are_refused_with_their_status() {
        assert_eq!(refused(b"GET\r\n\r\n"), 400);
        assert_eq!(refused(b"get / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(b"GET / SMTP\r\n\r\n"), 400);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(refused(b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n"), 400);
        let chunked = b"POST /swarm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(refused(chunked), 411);
    }

    #[test]
    fn conflicting_content_lengths_and_repeated_hosts_are_refused() {
        let two = b"POST /stop HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n";
        assert_eq!(refused(two), 400);
        let same = "POST /stop HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(
            parsed(same).content_length,
            4,
            "the same length twice is one length"
        );
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nOrigin: a\r\nOrigin: b\r\n\r\n"),
            400
        );
        let head = parsed("POST / HTTP/1.1\r\nhost: h:1\r\norigin: http://h:1\r\nsec-fetch-site: same-origin\r\n\r\n");
        assert_eq!(head.host.as_deref(), Some("h:1"));
        assert_eq!(head.origin.as_deref(), Some("http://h:1"));
        assert_eq!(head.sec_fetch_site.as_deref(), Some("same-origin"));
    }

    #[test]
    fn a_reply_has_its_length_closes_and_head_drops_only_the_body() {
        let reply = Reply::error(503, "busy");
        let wire = String::from_utf8(encode_reply(&reply, false)).unwrap();
        assert!(
            wire.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{wire}"
        );
        assert!(wire.contains(&format!("Content-Length: {}\r\n", reply.body.len())));
        assert!(wire.contains("Connection: close\r\n"));
        assert!(
            wire.ends_with(r#"{"success":false,"message":"busy"}"#),
            "{wire}"
        );
        let head = String::from_utf8(encode_reply(&reply, true)).unwrap();
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }
}
