//! `--bind` spreads connections over source addresses and `-H a,b` over brokers: checked on
//! the far side, from the addresses the listeners actually saw.
//!
//! Each "broker" here is a tiny recorder: it accepts, answers the CONNECT with CONNACK 0,
//! records (client id, peer address) and discards everything after. The client id
//! (`mqblast-{i}`) ties each connection back to its client index.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(String, SocketAddr)>>>;

/// A listener on `127.0.0.1:0` that records who connected.
struct Recorder {
    addr: SocketAddr,
    seen: Seen,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let shared = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&shared);
                thread::spawn(move || serve(stream, seen));
            }
        });
        Recorder { addr, seen }
    }

    fn seen(&self) -> Vec<(String, SocketAddr)> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, seen: Seen) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let peer = stream.peer_addr().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let client_id = loop {
        if let Some(id) = connect_client_id(&buf) {
            break id;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    seen.lock().unwrap().push((client_id, peer));
    let _ = stream.write_all(&[0x20, 0x02, 0x00, 0x00]);
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
    }
}

/// The client id of a complete MQTT 3.1.1 CONNECT at the start of `buf`, if there is one.
fn connect_client_id(buf: &[u8]) -> Option<String> {
    let mut at = 1;
    let mut remaining = 0usize;
    let mut shift = 0;
    loop {
        let byte = *buf.get(at)?;
        remaining |= ((byte & 0x7f) as usize) << shift;
        at += 1;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if buf.len() < at + remaining {
        return None;
    }
    // Protocol name "MQTT" (2 + 4), level, flags, keep-alive (2), then the client id.
    let id_at = at + 10;
    let len = u16::from_be_bytes([buf[id_at], buf[id_at + 1]]) as usize;
    String::from_utf8(buf[id_at + 2..id_at + 2 + len].to_vec()).ok()
}

fn index_of(client_id: &str) -> usize {
    client_id
        .strip_prefix("mqblast-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("unexpected client id {client_id:?}"))
}

fn run_mqblast(extra: &[&str]) -> common::Finished {
    let mut args = vec![
        "run",
        "-u",
        "6",
        "-r",
        "1000",
        "--qos",
        "0",
        "--interval",
        "500ms",
        "-t",
        "1s",
        "--threads",
        "2",
        "--only-summary",
    ];
    args.extend_from_slice(extra);
    common::spawn(common::mqblast_command(&args)).wait(common::RUN_LIMIT)
}

#[test]
fn clients_bind_the_source_addresses_round_robin_and_spread_over_brokers() {
    let brokers = [Recorder::start(), Recorder::start()];
    let hosts = format!("{},{}", brokers[0].addr, brokers[1].addr);
    run_mqblast(&["-H", &hosts, "--bind", "127.0.0.2-127.0.0.4"]).assert_code(0);
    let mut clients = 0;
    for (b, broker) in brokers.iter().enumerate() {
        for (client_id, peer) in broker.seen() {
            let i = index_of(&client_id);
            clients += 1;
            assert_eq!(i % 2, b, "client {i} went to broker {b}");
            let expected: IpAddr = format!("127.0.0.{}", 2 + i % 3).parse().unwrap();
            assert_eq!(peer.ip(), expected, "client {i} source address");
        }
    }
    assert_eq!(clients, 6, "every client connected once");
}

#[test]
fn a_list_of_single_source_addresses_is_used_in_order() {
    let broker = Recorder::start();
    let host = broker.addr.to_string();
    run_mqblast(&["-H", &host, "--bind", "127.0.0.7,127.0.0.9"]).assert_code(0);
    let seen = broker.seen();
    assert_eq!(seen.len(), 6);
    for (client_id, peer) in seen {
        let i = index_of(&client_id);
        let expected = if i.is_multiple_of(2) {
            "127.0.0.7"
        } else {
            "127.0.0.9"
        };
        assert_eq!(peer.ip().to_string(), expected, "client {i}");
    }
}

#[test]
fn a_source_address_that_is_not_local_fails_the_connect_with_the_os_reason() {
    let broker = Recorder::start();
    let host = broker.addr.to_string();
    // 192.0.2.1 is TEST-NET-1: never assigned to this host, so bind() fails.
    let finished = run_mqblast(&["-H", &host, "--bind", "192.0.2.1"]);
    finished.assert_code(1);
    assert!(
        finished.stderr.contains("connect failed") && finished.stderr.contains("--bind"),
        "no actionable connect failure:\n{}",
        finished.describe()
    );
}

#[test]
fn a_bad_bind_range_is_a_usage_error() {
    let finished = run_mqblast(&["-H", "127.0.0.1:1", "--bind", "127.0.0.9-127.0.0.2"]);
    finished.assert_usage_error(&["--bind", "ends before it starts"]);
}

#[test]
fn connect_rate_spaces_the_connects() {
    let broker = Recorder::start();
    let host = broker.addr.to_string();
    // 6 clients at 10 connects/s: the last one connects ~0.5 s after the first, so a 300 ms
    // run ends before every client has connected.
    let args = [
        "run",
        "-H",
        &host,
        "-u",
        "6",
        "-r",
        "1000",
        "--connect-rate",
        "10",
        "--qos",
        "0",
        "-t",
        "300ms",
        "--threads",
        "1",
        "--only-summary",
    ];
    let _ = common::spawn(common::mqblast_command(&args)).wait(common::RUN_LIMIT);
    let connected = broker.seen().len();
    assert!(
        (2..=4).contains(&connected),
        "{connected} of 6 clients connected in 300 ms at 10 connects/s"
    );
}
