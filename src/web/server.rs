//! The HTTP server: tiny_http on its own thread, one request at a time, basic auth checked
//! before anything else, every reply built by `api` and sent with the status it chose.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use tiny_http::{Header, Request, Response, Server};

use super::api::{self, Reply};
use super::session::Session;
use super::MAX_BODY_BYTES;
use crate::plan::WebPlan;

/// How often the server thread checks whether it should end.
const ACCEPT_TICK: Duration = Duration::from_millis(200);

/// A running server; dropping it stops the thread.
pub struct WebServer {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Bind `web.listen` and serve `session` until the returned server is dropped.
pub fn serve(web: &WebPlan, session: Arc<Session>) -> Result<WebServer, String> {
    let server = Server::http(web.listen)
        .map_err(|e| format!("cannot serve the web UI on {}: {e}", web.listen))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| "the web UI is not on an IP address".to_string())?;
    let expected_auth = web.auth.as_ref().map(|(user, pass)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {token}")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = thread::Builder::new()
        .name("mqblast-web".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                if let Ok(Some(request)) = server.recv_timeout(ACCEPT_TICK) {
                    handle(request, &session, expected_auth.as_deref());
                }
            }
        })
        .map_err(|e| format!("cannot start the web thread: {e}"))?;
    Ok(WebServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn handle(mut request: Request, session: &Session, expected_auth: Option<&str>) {
    let reply = match authorized(&request, expected_auth) {
        false => Reply::unauthorized(),
        true => match read_body(&mut request) {
            Ok(body) => {
                let content_type = header(&request, "Content-Type").unwrap_or_default();
                let method = request.method().as_str().to_string();
                api::route(session, &method, request.url(), &content_type, &body)
            }
            Err(reply) => reply,
        },
    };
    let _ = request.respond(response_of(reply));
}

/// True without auth configured, or when the Authorization header matches exactly.
fn authorized(request: &Request, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let given = header(request, "Authorization").unwrap_or_default();
    // Compared in full whatever the first difference, so the time says nothing about it.
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn header(request: &Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

/// The body, up to [`MAX_BODY_BYTES`]; a larger one is refused (413).
fn read_body(request: &mut Request) -> Result<Vec<u8>, Reply> {
    if request.body_length().unwrap_or(0) as u64 > MAX_BODY_BYTES {
        return Err(Reply::error(413, "the request body is too large"));
    }
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body);
    match read {
        Ok(_) if body.len() as u64 > MAX_BODY_BYTES => {
            Err(Reply::error(413, "the request body is too large"))
        }
        Ok(_) => Ok(body),
        Err(_) => Err(Reply::error(400, "the request body could not be read")),
    }
}

fn response_of(reply: Reply) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    for (name, value) in reply.headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response = response.with_header(h);
        }
    }
    response
}
