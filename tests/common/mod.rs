//! Shared harness for the integration tests: a real mosquitto on a free loopback port, an
//! independent MQTT subscriber that counts what the broker delivered (and, in `collector`,
//! one that keeps each delivery), a broker that never acknowledges, and a bounded runner for
//! the `mqblast` binary.
//!
//! Why it exists: mqblast's own counters are what we are testing, so the proof that messages
//! arrived must come from something that shares no code with it. The subscriber and the silent
//! broker speak MQTT 3.1.1 with a few hand-written packets (not `src/mqtt`, not a client crate),
//! and mosquitto is the broker users actually point the tool at.
//!
//! Every test binds `127.0.0.1:0` for its ports, every child process is killed on drop, and
//! every mqblast run has a wall-clock bound after which it is killed and the test fails.
#![allow(dead_code)]

pub mod collector;
pub mod platform;
pub mod strict;
pub mod tls;
pub mod web;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Temp dirs and ports
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir with a unique name, removed (with its contents) on
/// drop. std only, so the tests need no extra crate.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "mqblast-test-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name` as a String, for passing to mqblast on the command line.
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    /// Write `contents` to `self.path()/name` and return the path as a String.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.file(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port nothing listens on right now (bind port 0, read it, close). Another process
/// may take it before we use it; callers that start a server retry on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `127.0.0.1:port` accepts TCP connections, or `timeout` passes.
fn wait_for_listener(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let addr = ([127, 0, 0, 1], port).into();
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Path of an executable: PATH first, then the sbin directories that a non-root PATH often
/// lacks (Debian installs the broker as /usr/sbin/mosquitto).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/usr/local/sbin",
                "/sbin",
                "/usr/bin",
                "/usr/local/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn require_program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!("`{name}` not found; install mosquitto (scripts/test.sh does: apt-get install -y mosquitto mosquitto-clients)")
    })
}

// ---------------------------------------------------------------------------------------------
// Mosquitto
// ---------------------------------------------------------------------------------------------

/// The password every user of [`Mosquitto::start_with_auth`] shares. mosquitto 2.0.11 refuses
/// a listed username without its password (CONNACK 5), so runs pass it with `--password`.
pub const SHARED_PASSWORD: &str = "mqblast-secret";

/// A username the harness's own subscriber logs in with on an authenticating broker.
pub const HARNESS_USER: &str = "mqblast-harness";

/// A mosquitto process on a free loopback port, with a generated config in its own temp dir.
/// Killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    /// Username and password that the harness subscriber uses (auth brokers only).
    pub login: Option<(String, String)>,
    dir: TempDir,
}

impl Mosquitto {
    /// Anonymous access allowed.
    pub fn start() -> Mosquitto {
        Self::launch(None)
    }

    /// Only the listed usernames (device tokens, ThingsBoard style) plus [`HARNESS_USER`] may
    /// connect, all with `password`. Anyone else gets CONNACK 5 (not authorized).
    pub fn start_with_auth(usernames: &[&str], password: &str) -> Mosquitto {
        Self::launch(Some((usernames, password)))
    }

    /// As [`Mosquitto::start`] or [`Mosquitto::start_with_auth`], with `extra` appended to
    /// the generated configuration (later lines override the harness defaults, e.g.
    /// `max_inflight_messages 5`). `{dir}` in `extra` is the broker's directory, for files
    /// written with [`Mosquitto::start_with_files`].
    pub fn start_configured(auth: Option<(&[&str], &str)>, extra: &str) -> Mosquitto {
        Self::launch_with(auth, extra, &[])
    }

    /// As [`Mosquitto::start_configured`], writing `files` (name, contents) into the broker's
    /// directory first (an ACL file, say).
    pub fn start_with_files(
        auth: Option<(&[&str], &str)>,
        extra: &str,
        files: &[(&str, &str)],
    ) -> Mosquitto {
        Self::launch_with(auth, extra, files)
    }

    /// `127.0.0.1:PORT`, as mqblast's `-H` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What mosquitto logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// A subscriber on this broker, logged in when the broker requires it.
    pub fn subscribe(&self, filter: &str, qos: u8) -> Subscriber {
        match &self.login {
            Some((user, pass)) => Subscriber::start_with_login(self.port, filter, qos, user, pass),
            None => Subscriber::start(self.port, filter, qos),
        }
    }

    /// CPU seconds (user + system) mosquitto has used so far, from /proc/PID/stat.
    pub fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.child.id()).unwrap_or(0.0)
    }

    fn launch(auth: Option<(&[&str], &str)>) -> Mosquitto {
        Self::launch_with(auth, "", &[])
    }

    fn launch_with(
        auth: Option<(&[&str], &str)>,
        extra: &str,
        files: &[(&str, &str)],
    ) -> Mosquitto {
        let mosquitto = require_program("mosquitto");
        let dir = TempDir::new("mosquitto");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        let mut auth_lines = String::from("allow_anonymous true\n");
        let mut login = None;
        if let Some((users, password)) = auth {
            let passwd = require_program("mosquitto_passwd");
            let file = dir.path().join("passwords");
            std::fs::write(&file, "").unwrap();
            for user in users.iter().copied().chain([HARNESS_USER]) {
                let status = Command::new(&passwd)
                    .arg("-b")
                    .arg(&file)
                    .arg(user)
                    .arg(password)
                    .stdout(Stdio::null())
                    .status()
                    .expect("running mosquitto_passwd");
                assert!(
                    status.success(),
                    "mosquitto_passwd -b {} {user} failed: {status}",
                    file.display()
                );
            }
            auth_lines = format!("allow_anonymous false\npassword_file {}\n", file.display());
            login = Some((HARNESS_USER.to_string(), password.to_string()));
        }

        // The port may be taken between free_port() and mosquitto's bind; retry a few times.
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let conf = dir.path().join("mosquitto.conf");
            // Limits are lifted so tests measure mqblast, not mosquitto's defaults (20 in flight
            // and 1000 queued per client would drop QoS 0 and stall QoS 1/2 to a slow subscriber).
            std::fs::write(
                &conf,
                format!(
                    "# generated by tests/common/mod.rs\n\
                     listener {port} 127.0.0.1\n\
                     {auth_lines}\
                     persistence false\n\
                     max_inflight_messages 0\n\
                     max_queued_messages 0\n\
                     max_queued_bytes 0\n\
                     set_tcp_nodelay true\n\
                     log_dest stderr\n\
                     log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
                     {extra}\n"
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("mosquitto.log")).unwrap();
            let mut child = Command::new(&mosquitto)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", mosquitto.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    last_log = std::fs::read_to_string(dir.path().join("mosquitto.log"))
                        .unwrap_or_default();
                    eprintln!("mosquitto exited at start ({status}), retrying:\n{last_log}");
                    break;
                }
                // Listening on the port is not enough: between free_port() and mosquitto's bind
                // another test's listener may take it, and a connect would then reach that one.
                // mosquitto logs "running" only once its own listeners are open.
                let running = std::fs::read_to_string(dir.path().join("mosquitto.log"))
                    .is_ok_and(|log| log.contains(" running"));
                if !running {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if running && wait_for_listener(port, Duration::from_millis(100)) {
                    return Mosquitto {
                        child,
                        port,
                        login,
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("mosquitto did not listen on 127.0.0.1:{port} within 10 s");
                }
            }
        }
        panic!("mosquitto failed to start 5 times; last log:\n{last_log}");
    }
}

impl Mosquitto {
    /// Stop the broker (SIGKILL: connections drop at once), stay down for `down_for`, then
    /// start it again on the same port with the same configuration.
    pub fn restart(&mut self, down_for: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        let mosquitto = require_program("mosquitto");
        let conf = self.dir.path().join("mosquitto.conf");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .unwrap();
        self.child = Command::new(&mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("restarting {}: {e}", mosquitto.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !wait_for_listener(self.port, Duration::from_millis(100)) {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not come back on {}",
                self.port
            );
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// user + system CPU seconds of a process, from fields 14 and 15 of /proc/PID/stat.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / hz)
}

// ---------------------------------------------------------------------------------------------
// Minimal MQTT 3.1.1 (hand-written on purpose: independent of src/mqtt and of any client crate)
// ---------------------------------------------------------------------------------------------

/// Packet types (upper nibble of the fixed header, MQTT 3.1.1 section 2.2.1).
pub mod packet {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
}

/// Fixed header byte + remaining length + body (section 2.2.3 variable-length encoding).
pub fn frame(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0b1000_0000;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// CONNECT, clean session, keep-alive disabled (section 3.1).
pub fn connect_packet(client_id: &str, login: Option<(&str, Option<&str>)>) -> Vec<u8> {
    let mut body = Vec::new();
    push_str(&mut body, "MQTT");
    body.push(4); // protocol level 3.1.1
    let mut flags = 0b0000_0010; // clean session
    if let Some((_, password)) = login {
        flags |= 0b1000_0000;
        if password.is_some() {
            flags |= 0b0100_0000;
        }
    }
    body.push(flags);
    body.extend_from_slice(&0u16.to_be_bytes()); // keep-alive 0: no PINGREQ needed
    push_str(&mut body, client_id);
    if let Some((user, password)) = login {
        push_str(&mut body, user);
        if let Some(password) = password {
            push_str(&mut body, password);
        }
    }
    frame(packet::CONNECT << 4, &body)
}

fn ack_packet(kind: u8, pkid: u16) -> Vec<u8> {
    let header = if kind == packet::PUBREL {
        0b0110_0010
    } else {
        kind << 4
    };
    frame(header, &pkid.to_be_bytes())
}

/// Take one complete packet (fixed header byte, body) off the front of `buf`, if there is one.
pub fn take_packet(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let byte = *buf.get(i)?;
        len |= ((byte & 0x7f) as usize) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        assert!(shift <= 21, "malformed remaining length from broker");
    }
    if buf.len() < i + len {
        return None;
    }
    let header = buf[0];
    let body = buf[i..i + len].to_vec();
    buf.drain(..i + len);
    Some((header, body))
}

/// Read from `stream` until one packet is complete (or `timeout`).
pub fn read_packet(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> std::io::Result<(u8, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = take_packet(buf) {
            return Ok(p);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ErrorKind::TimedOut.into())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Connect a raw client and return the CONNACK return code (section 3.2.2.3), or the I/O error.
pub fn connack_code(
    port: u16,
    client_id: &str,
    login: Option<(&str, Option<&str>)>,
) -> std::io::Result<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(&connect_packet(client_id, login))?;
    let mut buf = Vec::new();
    let (header, body) = read_packet(&mut stream, &mut buf, Duration::from_secs(5))?;
    assert_eq!(
        header >> 4,
        packet::CONNACK,
        "expected CONNACK, got header {header:#04x}"
    );
    assert_eq!(body.len(), 2, "CONNACK body is 2 bytes");
    Ok(body[1])
}

/// A client id no other harness client of this test process uses (`harness-KIND-PID-N`): two
/// clients with one id would make the broker disconnect the first.
pub fn harness_client_id(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "harness-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connect a raw client and subscribe it to `filters`, each at `qos`; returns once the broker
/// granted every filter that QoS (SUBACK read), with the bytes read past the SUBACK. Panics,
/// failing the test, on anything else.
pub fn open_subscription(
    port: u16,
    client_id: &str,
    login: Option<(&str, Option<&str>)>,
    filters: &[&str],
    qos: u8,
) -> (TcpStream, Vec<u8>) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).expect("subscriber: connecting to the broker");
    stream.set_nodelay(true).unwrap();
    stream.write_all(&connect_packet(client_id, login)).unwrap();
    let mut buf = Vec::new();
    let (header, body) =
        read_packet(&mut stream, &mut buf, Duration::from_secs(5)).expect("subscriber: CONNACK");
    assert_eq!(header >> 4, packet::CONNACK, "subscriber: expected CONNACK");
    assert_eq!(
        body.get(1),
        Some(&0),
        "subscriber: broker refused the connection"
    );

    let mut sub = 1u16.to_be_bytes().to_vec();
    for filter in filters {
        push_str(&mut sub, filter);
        sub.push(qos);
    }
    stream.write_all(&frame(0b1000_0010, &sub)).unwrap(); // SUBSCRIBE flags are 0010 (3.8.1)
    let (header, body) =
        read_packet(&mut stream, &mut buf, Duration::from_secs(5)).expect("subscriber: SUBACK");
    assert_eq!(
        header >> 4,
        packet::SUBACK,
        "subscriber: expected SUBACK, got {header:#04x}"
    );
    assert_eq!(
        body.get(2..),
        Some(&vec![qos; filters.len()][..]),
        "subscriber: SUBACK granted {filters:?} a different QoS than {qos}"
    );
    (stream, buf)
}

/// The parts of a PUBLISH packet (section 3.3).
pub struct Publish<'a> {
    pub qos: u8,
    pub topic: &'a str,
    /// Present at QoS 1 and 2 only.
    pub pkid: Option<u16>,
    pub payload: &'a [u8],
}

/// Split a PUBLISH body (after the fixed header byte `header`); the broker's bytes are checked,
/// a short or malformed packet is an Err, not a panic.
pub fn parse_publish(header: u8, body: &[u8]) -> Result<Publish<'_>, String> {
    let qos = (header >> 1) & 0b11;
    if qos == 3 {
        return Err("PUBLISH with QoS 3".into());
    }
    let topic_len = match body {
        [high, low, ..] => usize::from(u16::from_be_bytes([*high, *low])),
        _ => return Err(format!("PUBLISH of {} bytes", body.len())),
    };
    let topic = body
        .get(2..2 + topic_len)
        .ok_or_else(|| format!("PUBLISH of {} bytes, topic of {topic_len}", body.len()))?;
    let topic = std::str::from_utf8(topic).map_err(|e| format!("PUBLISH topic: {e}"))?;
    let mut at = 2 + topic_len;
    let pkid = if qos > 0 {
        let id = body
            .get(at..at + 2)
            .ok_or("PUBLISH without its packet id")?;
        at += 2;
        Some(u16::from_be_bytes([id[0], id[1]]))
    } else {
        None
    };
    Ok(Publish {
        qos,
        topic,
        pkid,
        payload: &body[at..],
    })
}

/// Read a subscription (from [`open_subscription`]) until `stop`: each PUBLISH goes to
/// `on_publish` with the time the read that completed it returned; QoS 1 is acknowledged
/// (PUBACK), QoS 2 too (PUBREC, then PUBCOMP for the broker's PUBREL), so the broker keeps
/// sending. Ends with DISCONNECT at `stop`. The broker closing, a read or write error, a
/// malformed PUBLISH, any other packet, or an Err from `on_publish` ends it with that Err.
pub fn serve_subscription(
    mut stream: TcpStream,
    mut buf: Vec<u8>,
    stop: &AtomicBool,
    mut on_publish: impl FnMut(Instant, &Publish) -> Result<(), String>,
) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut replies = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return Err("broker closed the connection".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("read: {e}")),
        }
        let now = Instant::now();
        while let Some((header, body)) = take_packet(&mut buf) {
            match header >> 4 {
                packet::PUBLISH => {
                    let publish = parse_publish(header, &body)?;
                    match (publish.qos, publish.pkid) {
                        (1, Some(pkid)) => replies.extend(ack_packet(packet::PUBACK, pkid)),
                        (2, Some(pkid)) => replies.extend(ack_packet(packet::PUBREC, pkid)),
                        _ => {}
                    }
                    on_publish(now, &publish)?;
                }
                packet::PUBREL => {
                    let pkid = body.get(..2).ok_or("PUBREL without its packet id")?;
                    let pkid = u16::from_be_bytes([pkid[0], pkid[1]]);
                    replies.extend(ack_packet(packet::PUBCOMP, pkid));
                }
                packet::PINGRESP => {}
                other => return Err(format!("unexpected packet type {other}")),
            }
        }
        if !replies.is_empty() {
            stream
                .write_all(&replies)
                .map_err(|e| format!("write: {e}"))?;
            replies.clear();
        }
    }
    let _ = stream.write_all(&frame(packet::DISCONNECT << 4, &[]));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Subscriber
// ---------------------------------------------------------------------------------------------

/// An independent MQTT subscriber on a thread: counts received PUBLISH packets and acknowledges
/// QoS 1 (PUBACK) and QoS 2 (PUBREC, then PUBCOMP for the broker's PUBREL) so the broker keeps
/// sending. Subscribed (SUBACK received) before `start` returns. Stopped on drop.
pub struct Subscriber {
    received: Arc<AtomicU64>,
    not_json: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    pub fn start(port: u16, filter: &str, qos: u8) -> Subscriber {
        Self::connect(port, filter, qos, None)
    }

    /// A subscriber with a chosen client id (clean session): connecting with the id of a
    /// live client takes its session over, which disconnects that client.
    pub fn start_as(port: u16, filter: &str, qos: u8, client_id: &str) -> Subscriber {
        Self::connect_as(port, filter, qos, None, client_id)
    }

    pub fn start_with_login(
        port: u16,
        filter: &str,
        qos: u8,
        user: &str,
        password: &str,
    ) -> Subscriber {
        Self::connect(port, filter, qos, Some((user, Some(password))))
    }

    fn connect(
        port: u16,
        filter: &str,
        qos: u8,
        login: Option<(&str, Option<&str>)>,
    ) -> Subscriber {
        Self::connect_as(port, filter, qos, login, &harness_client_id("sub"))
    }

    fn connect_as(
        port: u16,
        filter: &str,
        qos: u8,
        login: Option<(&str, Option<&str>)>,
        client_id: &str,
    ) -> Subscriber {
        let (stream, buf) = open_subscription(port, client_id, login, &[filter], qos);

        let received = Arc::new(AtomicU64::new(0));
        let not_json = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, not_json, error, stop) = (
                received.clone(),
                not_json.clone(),
                error.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let counted = serve_subscription(stream, buf, &stop, |_, publish| {
                    if serde_json::from_slice::<serde_json::Value>(publish.payload).is_err() {
                        not_json.fetch_add(1, Ordering::SeqCst);
                    }
                    received.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
                if let Err(e) = counted {
                    *error.lock().unwrap() = Some(format!("subscriber: {e}"));
                }
            })
        };
        Subscriber {
            received,
            not_json,
            error,
            stop,
            thread: Some(thread),
        }
    }

    /// PUBLISH packets received so far (duplicates included: an excess is a finding).
    pub fn count(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Payloads that did not parse as JSON.
    pub fn not_json(&self) -> u64 {
        self.not_json.load(Ordering::SeqCst)
    }

    /// Why the receive loop ended early, if it did.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap().clone()
    }

    /// Wait until at least `n` messages arrived; false if `timeout` passed first.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() > deadline || self.error().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Wait until the count has not changed for `quiet`, bounded by `timeout`; returns it.
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut last = self.count();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.count();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        self.count()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A broker that accepts everyone and acknowledges nothing
// ---------------------------------------------------------------------------------------------

/// Accepts connections, answers CONNECT with CONNACK 0, SUBSCRIBE with SUBACK and PINGREQ with
/// PINGRESP, and never acknowledges a PUBLISH: QoS 1/2 publishes stay in flight forever. Counts
/// the PUBLISH packets it received. Used to test stop timeouts and a second SIGINT.
pub struct SilentBroker {
    pub port: u16,
    publishes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentBroker {
    pub fn start() -> SilentBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let publishes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (publishes, stop) = (publishes.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (publishes, stop) = (publishes.clone(), stop.clone());
                            conns.push(std::thread::spawn(move || {
                                silent_connection(stream, &publishes, &stop)
                            }));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            })
        };
        SilentBroker {
            port,
            publishes,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::SeqCst)
    }
}

impl Drop for SilentBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn silent_connection(mut stream: TcpStream, publishes: &AtomicU64, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while let Some((header, body)) = take_packet(&mut buf) {
            let reply = match header >> 4 {
                packet::CONNECT => frame(packet::CONNACK << 4, &[0, 0]),
                packet::SUBSCRIBE => {
                    let mut b = body[..2].to_vec();
                    b.push(0);
                    frame(packet::SUBACK << 4, &b)
                }
                packet::PINGREQ => frame(packet::PINGRESP << 4, &[]),
                packet::PUBLISH => {
                    publishes.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                packet::DISCONNECT => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                _ => continue,
            };
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running mqblast
// ---------------------------------------------------------------------------------------------

/// The binary under test, built by cargo for the integration tests.
pub const MQBLAST: &str = env!("CARGO_BIN_EXE_mqblast");

/// How long any single mqblast run may take before the harness kills it (and the test fails).
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A `mqblast` command with piped output and no inherited `MQBLAST_*` or `LOCUST_*` variables
/// nor `HOME` (no ~/.locust.conf), so a developer's environment cannot change what a test runs.
pub fn mqblast_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(MQBLAST);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Locust's sources too: a developer's LOCUST_* variables or ~/.locust.conf would set users.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("MQBLAST_") || name.starts_with("LOCUST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("HOME");
    cmd
}

/// A started mqblast whose output is collected on two threads (so full pipes never block it).
pub struct Running {
    child: Child,
    started: Instant,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    command_line: String,
}

/// How one mqblast run ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit code; None if it was killed by a signal (the harness kills it after its bound).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub killed_by_harness: bool,
    pub command_line: String,
}

pub fn spawn(mut cmd: Command) -> Running {
    let command_line = format!("{:?}", cmd);
    let started = Instant::now();
    // A test runner started in the background by a non-interactive shell has SIGINT and
    // SIGQUIT ignored, and children inherit that: a shell could then never trap them and the
    // signal tests would hang. Every child starts with the default actions.
    // SAFETY: signal() is async-signal-safe, the only call between fork and exec here.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {MQBLAST}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let stderr = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    Running {
        child,
        started,
        stdout: Some(stdout),
        stderr: Some(stderr),
        command_line,
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send a signal (`libc::SIGINT`, `libc::SIGTERM`).
    pub fn signal(&self, sig: libc::c_int) {
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Wait for the exit, killing the process if `limit` (counted from the spawn) passes.
    /// Fails the test if anything panicked inside mqblast.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let mut killed_by_harness = false;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if self.started.elapsed() > limit {
                killed_by_harness = true;
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let finished = Finished {
            code: status.code(),
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
            elapsed,
            killed_by_harness,
            command_line: self.command_line.clone(),
        };
        assert!(
            !finished.stderr.contains("panicked") && !finished.stdout.contains("panicked"),
            "mqblast panicked:\n{}",
            finished.describe()
        );
        assert!(
            !killed_by_harness,
            "mqblast did not exit within {limit:?}; killed:\n{}",
            finished.describe()
        );
        finished
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Finished {
    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit code: {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command_line,
            self.code,
            self.elapsed,
            tail(&self.stdout, 6000),
            tail(&self.stderr, 6000)
        )
    }

    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code:\n{}",
            self.describe()
        );
        self
    }

    /// A usage/config error: exit 2, and stderr mentions every one of `needles`
    /// (case-insensitive).
    pub fn assert_usage_error(&self, needles: &[&str]) -> &Self {
        self.assert_code(2);
        let lower = self.stderr.to_lowercase();
        for needle in needles {
            assert!(
                lower.contains(&needle.to_lowercase()),
                "stderr should mention {needle:?}:\n{}",
                self.describe()
            );
        }
        self
    }

    /// Locust's final table was printed (its header has a "# reqs" column) on stderr.
    pub fn assert_printed_summary(&self) -> &Self {
        assert!(
            self.stderr.contains("# reqs"),
            "no final summary table on stderr:\n{}",
            self.describe()
        );
        self
    }

    /// First non-empty line of stdout or stderr (whichever has one; stdout first).
    pub fn first_line(&self) -> &str {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Run mqblast to completion (bounded by `limit`).
pub fn run_mqblast<S: AsRef<std::ffi::OsStr>>(args: &[S], limit: Duration) -> Finished {
    spawn(mqblast_command(args)).wait(limit)
}

/// The flags every load test passes: target broker, no UI, final summary only, a fast spawn
/// rate (Locust's default of 1 user/s would make every test slow), and a JSON summary path.
pub fn load_args(host: &str, json: &str) -> Vec<String> {
    [
        "-H",
        host,
        "--headless",
        "--only-summary",
        "-r",
        "1000",
        "--json",
        json,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Append more flags to an argument list.
pub fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

// ---------------------------------------------------------------------------------------------
// The JSON summary
// ---------------------------------------------------------------------------------------------

/// The `--json` summary file of a finished run.
pub struct Summary {
    pub json: serde_json::Value,
    text: String,
}

impl Summary {
    /// Read and parse the summary; on failure, the run's output is part of the message.
    pub fn read(path: &str, run: &Finished) -> Summary {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("JSON summary {path} not written ({e}):\n{}", run.describe())
        });
        let json = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "JSON summary {path} does not parse ({e}):\n{text}\n{}",
                run.describe()
            )
        });
        Summary { json, text }
    }

    /// The value at a dotted path such as `publish.latency_us.p99`.
    pub fn get(&self, dotted: &str) -> &serde_json::Value {
        let pointer = format!("/{}", dotted.replace('.', "/"));
        self.json
            .pointer(&pointer)
            .unwrap_or_else(|| panic!("JSON summary has no `{dotted}`:\n{}", self.text))
    }

    /// A whole number at a dotted path (accepts 12 and 12.0).
    pub fn u64(&self, dotted: &str) -> u64 {
        let v = self.get(dotted);
        v.as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .unwrap_or_else(|| panic!("`{dotted}` is not a whole number: {v}"))
    }

    pub fn f64(&self, dotted: &str) -> f64 {
        let v = self.get(dotted);
        v.as_f64()
            .unwrap_or_else(|| panic!("`{dotted}` is not a number: {v}"))
    }

    /// `errors`: reason text -> count.
    pub fn errors(&self) -> Vec<(String, u64)> {
        let errors = self
            .get("errors")
            .as_object()
            .unwrap_or_else(|| panic!("`errors` is not an object:\n{}", self.text));
        errors
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_u64()
                        .unwrap_or_else(|| panic!("error count for {k:?} is not a whole number")),
                )
            })
            .collect()
    }

    /// Total count of errors whose reason starts with `prefix`.
    pub fn errors_starting_with(&self, prefix: &str) -> u64 {
        self.errors()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

// ---------------------------------------------------------------------------------------------
// A proxy that makes the broker's deliveries late
// ---------------------------------------------------------------------------------------------

/// A TCP proxy in front of a broker that holds back the PUBLISH packets the broker sends to
/// clients (see [`Release`]); everything else (CONNACK, SUBACK, PUBACK, ...) and everything
/// clients send pass at once. Subscribers behind it receive messages late while publishers'
/// acknowledgements stay prompt: deliveries that are late, not lost, by construction. Stops
/// accepting on drop; open connections end with their peers.
pub struct DelayProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

/// How a [`DelayProxy`] lets the held PUBLISH packets go.
#[derive(Debug, Clone, Copy)]
pub enum Release {
    /// Each one `Duration` after the broker sent it, in order.
    EachAfter(Duration),
    /// Every `Duration`, all that arrived since the last release, in one write: the client
    /// finds a large backlog in its socket at once, and nothing more after the last one.
    AllEvery(Duration),
}

impl DelayProxy {
    /// Each PUBLISH `hold` late.
    pub fn start(upstream_port: u16, hold: Duration) -> DelayProxy {
        DelayProxy::with_release(upstream_port, Release::EachAfter(hold))
    }

    pub fn with_release(upstream_port: u16, release: Release) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => delay_connection(client, upstream_port, release),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        DelayProxy { port, stop }
    }

    /// `127.0.0.1:PORT`, as mqblast's `-H` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Pipe one client to the broker: client -> broker as is; broker -> client frame by frame,
/// PUBLISH frames released late (in order, on their own thread).
fn delay_connection(client: TcpStream, upstream_port: u16, release: Release) {
    client.set_nonblocking(false).unwrap();
    let Ok(broker) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (mut from_client, mut to_broker) =
        (client.try_clone().unwrap(), broker.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_broker);
        let _ = to_broker.shutdown(Shutdown::Write);
    });
    let to_client = Arc::new(Mutex::new(client));
    let (late_tx, late_rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let late_writer = to_client.clone();
    std::thread::spawn(move || {
        match release {
            Release::EachAfter(_) => release_each(&late_rx, &late_writer),
            Release::AllEvery(every) => release_all_every(&late_rx, &late_writer, every),
        }
        let _ = late_writer.lock().unwrap().shutdown(Shutdown::Write);
    });
    let hold = match release {
        Release::EachAfter(hold) => hold,
        Release::AllEvery(_) => Duration::ZERO,
    };
    std::thread::spawn(move || forward_frames(broker, &to_client, &late_tx, hold));
}

type Held = std::sync::mpsc::Receiver<(Instant, Vec<u8>)>;

fn release_each(held: &Held, to_client: &Mutex<TcpStream>) {
    for (due, frame) in held {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if to_client.lock().unwrap().write_all(&frame).is_err() {
            return;
        }
    }
}

fn release_all_every(held: &Held, to_client: &Mutex<TcpStream>, every: Duration) {
    loop {
        std::thread::sleep(every);
        let mut batch = Vec::new();
        let open = loop {
            match held.try_recv() {
                Ok((_, frame)) => batch.extend_from_slice(&frame),
                Err(std::sync::mpsc::TryRecvError::Empty) => break true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break false,
            }
        };
        if to_client.lock().unwrap().write_all(&batch).is_err() || !open {
            return;
        }
    }
}

/// Read the broker's frames; PUBLISH goes to the late writer, the rest straight to the client.
fn forward_frames(
    mut broker: TcpStream,
    to_client: &Mutex<TcpStream>,
    late: &std::sync::mpsc::Sender<(Instant, Vec<u8>)>,
    hold: Duration,
) {
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 16 * 1024]);
    loop {
        while let Some(len) = frame_len(&buf) {
            let frame: Vec<u8> = buf.drain(..len).collect();
            let sent = if frame[0] >> 4 == packet::PUBLISH {
                late.send((Instant::now() + hold, frame)).is_ok()
            } else {
                to_client.lock().unwrap().write_all(&frame).is_ok()
            };
            if !sent {
                return;
            }
        }
        match broker.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Length of the complete MQTT frame at the front of `buf` (fixed header, remaining length,
/// body), if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut body_len = 0usize;
    for i in 1..=4 {
        let byte = *buf.get(i)?;
        body_len |= usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            let total = 1 + i + body_len;
            return (buf.len() >= total).then_some(total);
        }
    }
    None
}
