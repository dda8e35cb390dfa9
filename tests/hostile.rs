//! Brokers that misbehave on purpose, and what mqblast must report about them.
//!
//! Each peer here is a scripted, hand-written MQTT server (no code shared with `src/`) that
//! does one hostile thing: never speaks, closes right after CONNACK, completes QoS 2 out of
//! order, or stops reading. Each test is a regression test for a report that once said
//! something that did not happen; they assert counts that must add up and exit codes, never
//! timings, so they hold on a busy machine.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;

/// What the scripted peer does with each connection.
#[derive(Clone, Copy)]
enum Script {
    /// Accepts the TCP connection and never sends a byte.
    Mute,
    /// Answers CONNECT with CONNACK and the end of the stream in one go.
    ConnackThenClose,
    /// Answers every QoS 2 PUBLISH with PUBCOMP, skipping PUBREC.
    PubcompWithoutPubrec,
    /// Answers CONNECT, then never reads again.
    ConnackThenStopReading,
}

/// A listener on a free loopback port running `script` on every connection, until dropped.
struct Peer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    fn start(script: Script) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let stop = stop.clone();
                            conns.push(std::thread::spawn(move || serve(stream, script, &stop)));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            })
        };
        Peer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, script: Script, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        if matches!(script, Script::Mute) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
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
            if !answer(&mut stream, script, header, &body) {
                hold_until_stopped(stop);
                return;
            }
        }
    }
}

/// Answer one packet; false when the script says to stop reading this connection.
fn answer(stream: &mut TcpStream, script: Script, header: u8, body: &[u8]) -> bool {
    let connack = frame(packet::CONNACK << 4, &[0, 0]);
    match (script, header >> 4) {
        (Script::ConnackThenClose, packet::CONNECT) => {
            // CONNACK and FIN in one TCP segment (corked until the FIN is queued), so mqblast
            // sees the data and the close in one readiness event. The socket stays open and
            // keeps accepting bytes, so later writes raise no new event.
            cork(stream, true);
            let _ = stream.write_all(&connack);
            let _ = stream.shutdown(Shutdown::Write);
            cork(stream, false);
            false
        }
        (Script::ConnackThenStopReading, packet::CONNECT) => {
            let _ = stream.write_all(&connack);
            false
        }
        (_, packet::CONNECT) => stream.write_all(&connack).is_ok(),
        (Script::PubcompWithoutPubrec, packet::PUBLISH) if (header >> 1) & 0b11 == 2 => {
            let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
            let pkid = &body[2 + topic_len..4 + topic_len];
            stream.write_all(&frame(packet::PUBCOMP << 4, pkid)).is_ok()
        }
        (_, packet::PINGREQ) => stream.write_all(&frame(packet::PINGRESP << 4, &[])).is_ok(),
        _ => true,
    }
}

/// TCP_CORK: hold partial segments until uncorked (or until a FIN is queued behind them).
fn cork(stream: &TcpStream, on: bool) {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = on.into();
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Keep the connection open (and unread) until the test is over.
fn hold_until_stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_against(peer: &Peer, label: &str, more: &[&str]) -> (Finished, Summary) {
    let dir = TempDir::new(label);
    let json = dir.file("summary.json");
    let mut args = load_args(&peer.addr(), &json);
    // A `-r` in `more` replaces the harness's fast spawn rate.
    if let Some(at) = more.iter().position(|&a| a == "-r") {
        let base = args.iter().position(|a| a == "-r").unwrap();
        args[base + 1] = more[at + 1].to_string();
        let rest: Vec<&str> = more[..at].iter().chain(&more[at + 2..]).copied().collect();
        args = with(args, &rest);
    } else {
        args = with(args, more);
    }
    let run = run_mqblast(&args, RUN_LIMIT);
    let summary = Summary::read(&json, &run);
    (run, summary)
}

#[test]
fn a_close_that_arrives_with_the_connack_is_reported_as_a_lost_connection() {
    let peer = Peer::start(Script::ConnackThenClose);
    let (run, summary) = run_against(
        &peer,
        "connack-close",
        &[
            "-u",
            "50",
            "--qos",
            "1",
            "--interval",
            "100ms",
            "-t",
            "3s",
            "--timeout",
            "1s",
        ],
    );
    run.assert_code(1);
    assert_eq!(summary.u64("connect.ok"), 50, "{}", run.describe());
    assert_eq!(
        summary.errors_starting_with("connection lost"),
        50,
        "every close must be seen, none left counted as connected: {:?}",
        summary.errors()
    );
    assert_eq!(
        summary.errors_starting_with("publish timed out"),
        0,
        "a closed connection's publishes are lost, not timed out: {:?}",
        summary.errors()
    );
}

#[test]
fn pubcomp_without_pubrec_is_a_protocol_error_not_a_success() {
    let peer = Peer::start(Script::PubcompWithoutPubrec);
    let (run, summary) = run_against(
        &peer,
        "pubcomp-first",
        &[
            "-u",
            "1",
            "--qos",
            "2",
            "--interval",
            "0",
            "--messages",
            "5",
        ],
    );
    run.assert_code(1);
    assert_eq!(summary.u64("publish.ok"), 0, "{:?}", summary.errors());
    assert_eq!(
        summary.errors_starting_with("protocol error: PUBCOMP for a packet id not waiting"),
        1,
        "{:?}",
        summary.errors()
    );
}

/// Connect attempts that were started must all be in the report: `users` of them.
fn assert_every_connect_counted(run: &Finished, summary: &Summary, users: u64) {
    run.assert_code(1);
    assert_eq!(summary.u64("connect.requests"), users, "{}", run.describe());
    assert_eq!(
        summary.u64("connect.failures"),
        users,
        "{:?}",
        summary.errors()
    );
    assert_eq!(summary.u64("connect.ok"), 0);
    assert!(
        run.stderr.contains("no client ever connected"),
        "one line must say that nothing connected:\n{}",
        run.describe()
    );
}

#[test]
fn connects_pending_when_the_run_time_ends_are_counted_as_aborted() {
    let peer = Peer::start(Script::Mute);
    let (run, summary) = run_against(&peer, "mute-stop", &["-u", "6", "-t", "2s"]);
    assert_every_connect_counted(&run, &summary, 6);
    assert_eq!(
        summary.errors_starting_with("connect aborted: run stopped before CONNACK"),
        6,
        "{:?}",
        summary.errors()
    );
}

#[test]
fn connects_that_time_out_and_connects_still_pending_add_up_to_the_users() {
    let peer = Peer::start(Script::Mute);
    // Users spawn over 1.2 s and time out after 1 s; the run stops at 2 s with some still
    // pending. However the machine schedules it, timed out + aborted = users.
    let (run, summary) = run_against(
        &peer,
        "mute-mixed",
        &["-u", "6", "-r", "5", "-t", "2s", "--timeout", "1s"],
    );
    assert_every_connect_counted(&run, &summary, 6);
    let timed_out = summary.errors_starting_with("connect timed out");
    let aborted = summary.errors_starting_with("connect aborted");
    assert_eq!(timed_out + aborted, 6, "{:?}", summary.errors());
}

#[test]
fn connects_pending_at_ctrl_c_are_counted_as_aborted() {
    let peer = Peer::start(Script::Mute);
    let dir = TempDir::new("mute-sigint");
    let json = dir.file("summary.json");
    let running = spawn(mqblast_command(&with(
        load_args(&peer.addr(), &json),
        &["-u", "4", "-t", "60s"],
    )));
    std::thread::sleep(Duration::from_millis(1500));
    running.signal(libc::SIGINT);
    let run = running.wait(RUN_LIMIT);
    let summary = Summary::read(&json, &run);
    assert_every_connect_counted(&run, &summary, 4);
}

#[test]
fn a_qos0_run_ends_by_itself_when_the_broker_stops_reading() {
    let peer = Peer::start(Script::ConnackThenStopReading);
    // No run time: only the message limit would end this run, and the broker never takes
    // the messages. The write timeout must end it, with what was measured.
    let (run, summary) = run_against(
        &peer,
        "stop-reading",
        &[
            "-u",
            "2",
            "--qos",
            "0",
            "--interval",
            "0",
            "--messages",
            "200000000",
            "--timeout",
            "1s",
        ],
    );
    run.assert_code(1);
    assert_eq!(
        summary.errors_starting_with("write timed out"),
        2,
        "{:?}",
        summary.errors()
    );
    assert!(
        summary.u64("publish.sent") > 0,
        "what was sent is still reported"
    );
}
