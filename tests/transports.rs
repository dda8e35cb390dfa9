//! TLS, mutual TLS and WebSocket against a real mosquitto: exact counts over every transport,
//! per-device certificates as the device's identity, every TLS failure named, and the
//! WebSocket control frames a broker may send.
//!
//! Why: a transport that loses or duplicates a message, or a failure that reads "connection
//! lost" when the CA is wrong, would make a TLS load test lie. The counts come from the
//! harness's plain-TCP subscriber on the same mosquitto, which shares no code with mqblast.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::TlsBroker;
use common::*;
use mqblast::sink::SinkHandle;

const SETTLE: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(20);

/// 2 users publish 2000 messages at each QoS into `host` (a sink): every one acknowledged.
fn publish_2000_each(host: &str, label: &str, qoses: &[&str], more: &[&str]) {
    let dir = TempDir::new(label);
    for qos in qoses {
        let json = dir.file(&format!("q{qos}.json"));
        let mut flags = vec![
            "-u",
            "2",
            "--messages",
            "2000",
            "--interval",
            "0",
            "--qos",
            qos,
        ];
        flags.extend_from_slice(more);
        let (run, summary) = run_over(host, &json, &flags);
        run.assert_code(0);
        assert_eq!(summary.u64("publish.ok"), 2000, "QoS {qos}");
    }
}

fn run_over(host: &str, json: &str, more: &[&str]) -> (Finished, Summary) {
    let args = with(load_args(host, json), more);
    let run = run_mqblast(&args, RUN_LIMIT);
    let summary = Summary::read(json, &run);
    (run, summary)
}

/// 300 messages at each QoS over `host`; the subscriber counts exactly 300 each time.
fn counts_are_exact(broker: &TlsBroker, host: &str, label: &str, more: &[&str]) {
    for qos in ["0", "1", "2"] {
        let topic = format!("mqblast/{label}/{qos}");
        let sub = broker.subscribe(&topic, 2);
        let dir = TempDir::new("tx");
        let json = dir.file("out.json");
        let mut flags = vec![
            "-u",
            "3",
            "--messages",
            "300",
            "--interval",
            "0",
            "--qos",
            qos,
            "--topic",
            &topic,
        ];
        flags.extend_from_slice(more);
        let (run, summary) = run_over(host, &json, &flags);
        run.assert_code(0);
        assert!(
            sub.wait_for(300, WAIT),
            "{label} QoS {qos}: {}",
            run.describe()
        );
        assert_eq!(
            sub.settle(SETTLE, WAIT),
            300,
            "{label} QoS {qos}: exactly once"
        );
        assert_eq!(summary.u64("publish.ok"), 300, "{label} QoS {qos}");
        assert_eq!(summary.u64("connect.ok"), 3, "{label} QoS {qos}");
    }
}

#[test]
fn qos_0_1_and_2_counts_are_exact_over_tls() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.tls);
    counts_are_exact(
        &broker,
        &host,
        "tls",
        &["--cafile", &broker.pki.file("ca.pem")],
    );
}

#[test]
fn qos_0_1_and_2_counts_are_exact_over_websocket() {
    let broker = TlsBroker::start(0);
    let host = format!("ws://127.0.0.1:{}/mqtt", broker.ws);
    counts_are_exact(&broker, &host, "ws", &[]);
}

#[test]
fn qos_0_1_and_2_counts_are_exact_over_websocket_over_tls() {
    let broker = TlsBroker::start(0);
    let host = format!("wss://localhost:{}", broker.wss);
    counts_are_exact(
        &broker,
        &host,
        "wss",
        &["--cafile", &broker.pki.file("ca.pem")],
    );
}

#[test]
fn qos_0_1_and_2_counts_are_exact_over_tls_1_3_with_chacha20_poly1305() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.tls13_chacha);
    let ca = broker.pki.file("ca.pem");
    counts_are_exact(&broker, &host, "tls13chacha", &["--cafile", &ca]);
}

#[test]
fn qos_0_1_and_2_counts_are_exact_over_mutual_tls_with_per_device_certificates() {
    let broker = TlsBroker::start(3);
    let host = format!("mqtts://127.0.0.1:{}", broker.mtls);
    let (ca, dir) = (broker.pki.file("ca.pem"), broker.pki.file(""));
    counts_are_exact(
        &broker,
        &host,
        "mtls",
        &["--cafile", &ca, "--cert-dir", &dir],
    );
}

#[test]
fn the_connect_row_is_split_into_tcp_tls_and_connack_parts() {
    let broker = TlsBroker::start(0);
    let dir = TempDir::new("split");
    let json = dir.file("out.json");
    let host = format!("wss://localhost:{}", broker.wss);
    let ca = broker.pki.file("ca.pem");
    let flags = ["-u", "4", "--messages", "40", "--cafile", &ca];
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(0);
    for part in [
        "connect_tcp",
        "connect_tls_full",
        "connect_ws",
        "connect_mqtt",
    ] {
        assert_eq!(
            summary.u64(&format!("{part}.ok")),
            4,
            "{part}: {}",
            summary.text()
        );
    }
    assert!(
        run.stderr.contains("connect:tls-full"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("connect:ws-upgrade"),
        "{}",
        run.describe()
    );
}

#[test]
fn per_device_certificates_reach_the_broker_as_each_devices_identity() {
    // The ACL lets user device-N write only devices/device-N/t; mosquitto takes the user name
    // from the certificate's CN (use_identity_as_username).
    let broker = TlsBroker::start(3);
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let ca = broker.pki.file("ca.pem");
    let topic = "devices/device-{i}/t";
    let base = [
        "-u",
        "3",
        "--messages",
        "30",
        "--interval",
        "0",
        "--topic",
        topic,
    ];

    let sub = broker.subscribe("devices/+/t", 1);
    let cert_dir = broker.pki.file("");
    let dir = TempDir::new("identity");
    let json = dir.file("own.json");
    let own = [&base[..], &["--cafile", &ca, "--cert-dir", &cert_dir]].concat();
    let (run, _) = run_over(&host, &json, &own);
    run.assert_code(0);
    assert!(
        sub.wait_for(30, WAIT),
        "{}\n{}",
        run.describe(),
        broker.log()
    );
    assert_eq!(
        sub.settle(SETTLE, WAIT),
        30,
        "every device wrote its own topic"
    );

    // The same run with device-0's certificate for everyone: only device 0's share arrives;
    // mosquitto disconnects the two clients that wrote another device's topic.
    let sub = broker.subscribe("devices/+/t", 1);
    let json = dir.file("shared.json");
    let cert = broker.pki.file("device-0.pem");
    let key = broker.pki.file("device-0.key");
    let shared = [
        &base[..],
        &["--cafile", &ca, "--cert", &cert, "--key", &key],
    ]
    .concat();
    let (run, summary) = run_over(&host, &json, &shared);
    run.assert_code(1);
    std::thread::sleep(SETTLE);
    assert_eq!(
        sub.settle(SETTLE, WAIT),
        10,
        "only device-0's topic is its own"
    );
    let denied = summary.errors_starting_with("connection lost: closed by the broker");
    assert_eq!(denied, 2, "{:?}", summary.errors());
}

/// A run of 2 users that must fail with `reason` and exit 1.
fn fails_with(host: &str, more: &[&str], reason: &str) {
    let dir = TempDir::new("tls-fail");
    let json = dir.file("out.json");
    let flags = [
        &["-u", "2", "--messages", "10", "--timeout", "3s"][..],
        more,
    ]
    .concat();
    let (run, summary) = run_over(host, &json, &flags);
    run.assert_code(1);
    assert_eq!(
        summary.errors_starting_with(reason),
        2,
        "expected {reason:?}: {:?}\n{}",
        summary.errors(),
        run.describe()
    );
    assert!(run.stderr.contains(reason), "{}", run.describe());
}

#[test]
fn a_server_certificate_from_an_unknown_ca_fails_with_unknown_issuer() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.tls);
    let other = broker.pki.file("other-ca.pem");
    fails_with(
        &host,
        &["--cafile", &other],
        "tls: certificate verify failed: UnknownIssuer",
    );
}

#[test]
fn an_expired_server_certificate_fails_as_expired() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.expired);
    let ca = broker.pki.file("ca.pem");
    fails_with(&host, &["--cafile", &ca], "tls: certificate expired");
}

#[test]
fn a_certificate_for_another_name_fails_as_name_mismatch() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://127.0.0.1:{}", broker.tls);
    let ca = broker.pki.file("ca.pem");
    let flags = ["--cafile", &ca, "--tls-server-name", "broker.example.com"];
    fails_with(&host, &flags, "tls: name mismatch");
}

#[test]
fn a_plain_tcp_client_on_a_tls_port_is_told_so() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtt://127.0.0.1:{}", broker.tls);
    fails_with(&host, &[], "connection closed by the broker before CONNACK");
}

#[test]
fn a_tls_client_on_a_plain_port_is_told_so() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.plain);
    let ca = broker.pki.file("ca.pem");
    fails_with(&host, &["--cafile", &ca], "tls: ");
}

#[test]
fn a_broker_that_requires_a_client_certificate_refuses_a_client_without_one() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let ca = broker.pki.file("ca.pem");
    fails_with(
        &host,
        &["--cafile", &ca],
        "tls: the broker refused the connection",
    );
}

#[test]
fn an_expired_client_certificate_is_refused_by_the_broker_and_named() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let (ca, cert, key) = (
        broker.pki.file("ca.pem"),
        broker.pki.file("expired-device.pem"),
        broker.pki.file("expired-device.key"),
    );
    fails_with(
        &host,
        &["--cafile", &ca, "--cert", &cert, "--key", &key],
        "tls: the broker refused the connection: alert CertificateExpired",
    );
}

/// A sink whose rustls server config speaks only the ALPN protocol `mqtt`: a real TLS
/// server that refuses a client offering something else.
fn sink_with_alpn(pki: &common::tls::Pki) -> SinkHandle {
    let (cert, key) = (pki.file("server.pem"), pki.file("server.key"));
    let tls = mqblast::sink::SinkTls::load(cert.as_ref(), key.as_ref()).expect("sink TLS");
    let mut config = (*tls.0).clone();
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    mqblast::sink::start(&mqblast::sink::SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        tls: Some(mqblast::sink::SinkTls(std::sync::Arc::new(config))),
        ..Default::default()
    })
    .expect("sink starts")
}

#[test]
fn alpn_is_offered_and_a_broker_that_checks_it_accepts_the_match_and_refuses_the_rest() {
    let pki = common::tls::Pki::generate(0);
    let sink = sink_with_alpn(&pki);
    let host = format!("mqtts://localhost:{}", sink.addr().port());
    let ca = pki.file("ca.pem");
    let dir = TempDir::new("alpn");
    let json = dir.file("ok.json");
    let flags = [
        "-u",
        "2",
        "--messages",
        "100",
        "--interval",
        "0",
        "--qos",
        "1",
        "--cafile",
        &ca,
        "--alpn",
        "mqtt",
    ];
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(0);
    assert_eq!(summary.u64("publish.ok"), 100, "{}", summary.text());
    fails_with(
        &host,
        &["--cafile", &ca, "--alpn", "x-not-mqtt"],
        "tls: the broker refused the connection: alert NoApplicationProtocol",
    );
    let totals = sink.stop();
    assert_eq!(
        totals.publishes[1], 100,
        "the matching client's publishes reached the sink"
    );
}

#[test]
fn insecure_connects_to_a_self_signed_broker_and_says_so() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.self_signed);
    let sub = broker.subscribe("mqblast/insecure", 1);
    let dir = TempDir::new("insecure");
    let json = dir.file("out.json");
    let flags = [
        "-u",
        "2",
        "--messages",
        "20",
        "--topic",
        "mqblast/insecure",
        "--insecure",
    ];
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(0);
    assert!(sub.wait_for(20, WAIT));
    assert!(run
        .stderr
        .contains("certificate verification OFF (--insecure)"));
    assert!(run.stderr.contains("TLS certificate verification was OFF"));
    assert_eq!(summary.get("config.insecure"), &serde_json::json!(true));
}

#[test]
fn a_version_1_client_certificate_made_by_openssl_x509_req_is_accepted_by_mutual_tls() {
    let broker = TlsBroker::start(0);
    let text = common::tls::openssl_v1_client_cert(&broker.pki, "v1-device");
    assert!(
        text.contains("Version: 1 (0x0)"),
        "not a v1 certificate:\n{text}"
    );
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let (ca, cert, key) = (
        broker.pki.file("ca.pem"),
        broker.pki.file("v1-device.pem"),
        broker.pki.file("v1-device.key"),
    );
    counts_are_exact(
        &broker,
        &host,
        "v1cert",
        &["--cafile", &ca, "--cert", &cert, "--key", &key],
    );
    // The broker took the certificate as the client's identity (use_identity_as_username):
    // device topics other than its own are refused by the ACL, its own is not.
    let sub = broker.subscribe("devices/#", 1);
    let dir = TempDir::new("v1");
    let json = dir.file("out.json");
    let flags = [
        "-u",
        "1",
        "--messages",
        "5",
        "--interval",
        "0",
        "--qos",
        "1",
        "--topic",
        "devices/v1-device/t",
        "--cafile",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(0);
    assert_eq!(summary.u64("publish.ok"), 5);
    assert_eq!(sub.settle(SETTLE, WAIT), 5, "{}", broker.log());
}

#[test]
fn a_client_key_that_is_not_the_certificates_is_a_start_up_error_naming_the_files() {
    let broker = TlsBroker::start(2);
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let (cert, key) = (
        broker.pki.file("device-0.pem"),
        broker.pki.file("device-1.key"),
    );
    let ca = broker.pki.file("ca.pem");
    let run = run_mqblast(
        &[
            "-H", &host, "-u", "1", "--cafile", &ca, "--cert", &cert, "--key", &key,
        ],
        RUN_LIMIT,
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("device-0.pem") && run.stderr.contains("device-1.key"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("do not match"), "{}", run.describe());
}

#[test]
fn a_missing_device_certificate_is_a_start_up_error_naming_the_file() {
    let broker = TlsBroker::start(2);
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let dir = broker.pki.file("");
    let run = run_mqblast(
        &[
            "-H",
            &host,
            "-u",
            "3",
            "--cert-dir",
            &dir,
            "--cafile",
            &broker.pki.file("ca.pem"),
        ],
        RUN_LIMIT,
    );
    run.assert_code(2);
    assert!(run.stderr.contains("device-2.pem"), "{}", run.describe());
}

#[test]
fn reconnects_under_churn_resume_their_tls_sessions() {
    let broker = TlsBroker::start(0);
    let host = format!("mqtts://localhost:{}", broker.tls);
    let dir = TempDir::new("resume");
    let json = dir.file("out.json");
    let ca = broker.pki.file("ca.pem");
    let flags = [
        "-u",
        "2",
        // Reconnects near 1 s, 2 s and 3 s: half a second clear of the stop, so a reconnect
        // still waiting for its CONNACK at the stop (counted as aborted) is not a matter of luck.
        "-t",
        "3500ms",
        "--interval",
        "100ms",
        "--churn",
        "1s",
        "--cafile",
        &ca,
    ];
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(0);
    assert_eq!(summary.u64("connect_tls_full.ok"), 2, "{}", summary.text());
    assert!(
        summary.u64("connect_tls_resumed.ok") >= 2,
        "{}",
        summary.text()
    );
    // Without resumption every handshake is a full one.
    let json = dir.file("full.json");
    let flags = [&flags[..], &["--tls-resume", "false"]].concat();
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(0);
    assert!(
        summary.u64("connect_tls_full.ok") >= 4,
        "{}",
        summary.text()
    );
    assert!(summary.json.get("connect_tls_resumed").is_none());
}

// ---------------------------------------------------------------------------------------------
// A scripted WebSocket broker: what mosquitto never sends (pings, fragments, a close)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct WsScript {
    pong_ok: AtomicBool,
    close_echoed: AtomicBool,
    puback_sent: Mutex<u32>,
}

fn ws_accept(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    mqblast::stats::hdr_codec::base64_encode(ctx.finish().as_ref())
}

/// Read one client frame (masked); returns (opcode, unmasked payload).
fn read_frame(s: &mut std::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert!(h[1] & 0x80 != 0, "client frames are masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut key = [0u8; 4];
    s.read_exact(&mut key).ok()?;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    Some((h[0] & 0x0f, payload))
}

fn upgrade(s: &mut std::net::TcpStream, status: &str) {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        req.push(byte[0]);
    }
    let text = String::from_utf8(req).unwrap();
    assert!(text.contains("Sec-WebSocket-Protocol: mqtt"), "{text}");
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let response = match status {
        "101" => format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            ws_accept(key)
        ),
        other => format!("HTTP/1.1 {other} Nope\r\nContent-Length: 0\r\n\r\n"),
    };
    s.write_all(response.as_bytes()).unwrap();
}

/// Accept one WebSocket client: CONNACK in two fragments with a ping between them, PUBACK
/// each publish, and after `close_after` publishes a close frame (code 1001).
fn scripted_ws_broker(close_after: u32) -> (u16, Arc<WsScript>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = Arc::new(WsScript::default());
    let shared = Arc::clone(&script);
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        upgrade(&mut s, "101");
        let (op, connect) = read_frame(&mut s).unwrap();
        assert_eq!((op, connect[0] >> 4), (2, 1), "a binary frame with CONNECT");
        // CONNACK 20 02 00 00, fragmented, a ping in between.
        s.write_all(&[
            0x02, 2, 0x20, 0x02, 0x89, 3, b'a', b'b', b'c', 0x80, 2, 0, 0,
        ])
        .unwrap();
        let mut acked = 0;
        while let Some((op, payload)) = read_frame(&mut s) {
            match op {
                0xA => shared.pong_ok.store(payload == b"abc", Ordering::SeqCst),
                0x8 => {
                    shared.close_echoed.store(true, Ordering::SeqCst);
                    return;
                }
                _ => {
                    let mut at = 0;
                    while at < payload.len() {
                        let len = payload[at + 1] as usize; // short test packets
                        let (topic_len, body) = (payload[at + 2..at + 4].to_vec(), at + 2);
                        let topic_len = u16::from_be_bytes([topic_len[0], topic_len[1]]) as usize;
                        let pkid = &payload[body + 2 + topic_len..body + 4 + topic_len];
                        s.write_all(&[0x82, 4, 0x40, 2, pkid[0], pkid[1]]).unwrap();
                        acked += 1;
                        at += 2 + len;
                    }
                    *shared.puback_sent.lock().unwrap() = acked;
                    if acked >= close_after {
                        s.write_all(&[0x88, 2, 0x03, 0xE9]).unwrap();
                    }
                }
            }
        }
    });
    (port, script)
}

#[test]
fn websocket_ping_fragments_and_close_from_the_broker_are_handled() {
    let (port, script) = scripted_ws_broker(5);
    let dir = TempDir::new("ws-script");
    let json = dir.file("out.json");
    let host = format!("ws://127.0.0.1:{port}/mqtt");
    let payload = dir.write("p.json", "{\"v\":1}");
    let flags = ["-u", "1", "-t", "5s", "--interval", "50ms", "--topic", "t"];
    let args = with(
        with(load_args(&host, &json), &flags),
        &["--payload", &payload],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    let summary = Summary::read(&json, &run);
    run.assert_code(1);
    assert!(
        script.pong_ok.load(Ordering::SeqCst),
        "the ping got its pong"
    );
    assert!(
        script.close_echoed.load(Ordering::SeqCst),
        "the close was echoed"
    );
    assert!(summary.u64("publish.ok") >= 5, "{}", summary.text());
    assert_eq!(
        summary.errors_starting_with("websocket closed by the broker: close frame, code 1001"),
        1,
        "{:?}",
        summary.errors()
    );
}

/// Accept one WebSocket client, answer its CONNECT, and note how it ends: the frame that
/// carries DISCONNECT, then what follows it, whether it waits for our close, and whether it
/// closes the socket after it.
fn ws_peer_noting_the_close() -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        upgrade(&mut s, "101");
        let (_, connect) = read_frame(&mut s).unwrap();
        assert_eq!(connect[0] >> 4, 1, "CONNECT first");
        s.write_all(&[0x82, 4, 0x20, 2, 0, 0]).unwrap();
        while let Some((op, payload)) = read_frame(&mut s) {
            if op == 0x2 && payload.ends_with(&[0xE0, 0]) {
                seen.push("DISCONNECT".to_string());
                break;
            }
        }
        match read_frame(&mut s) {
            Some((0x8, code)) => seen.push(format!("close {code:?} (masked)")),
            other => seen.push(format!("not a close frame: {other:?}")),
        }
        // The client waits for our close: no end of stream before it.
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                seen.push("still open".to_string())
            }
            other => seen.push(format!("before our close: {other:?}")),
        }
        s.write_all(&[0x88, 2, 0x03, 0xE8]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        match s.read(&mut byte) {
            Ok(0) => seen.push("end of stream".to_string()),
            other => seen.push(format!("after our close: {other:?}")),
        }
        seen
    });
    (port, peer)
}

#[test]
fn an_orderly_websocket_end_sends_disconnect_then_a_close_frame_and_waits_for_the_brokers() {
    let (port, peer) = ws_peer_noting_the_close();
    let dir = TempDir::new("ws-close");
    let json = dir.file("out.json");
    let host = format!("ws://127.0.0.1:{port}/mqtt");
    let flags = [
        "-u",
        "1",
        "--messages",
        "3",
        "--interval",
        "10ms",
        "--qos",
        "0",
    ];
    let run = run_mqblast(&with(load_args(&host, &json), &flags), RUN_LIMIT);
    let summary = Summary::read(&json, &run);
    run.assert_code(0);
    assert_eq!(summary.u64("publish.ok"), 3, "{}", summary.text());
    let seen = peer.join().expect("the scripted peer");
    assert_eq!(
        seen,
        [
            "DISCONNECT",
            "close [3, 232] (masked)",
            "still open",
            "end of stream"
        ]
    );
}

#[test]
fn a_refused_websocket_upgrade_names_the_http_status() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            upgrade(&mut s, "404");
        }
    });
    let host = format!("ws://127.0.0.1:{port}");
    fails_with(&host, &[], "websocket upgrade failed: HTTP 404");
}

#[test]
fn the_sink_terminates_tls_and_acknowledges_every_publish() {
    let pki = common::tls::Pki::generate(0);
    let (cert, key) = (pki.file("server.pem"), pki.file("server.key"));
    let tls = mqblast::sink::SinkTls::load(cert.as_ref(), key.as_ref()).expect("sink TLS");
    let sink = mqblast::sink::start(&mqblast::sink::SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        tls: Some(tls),
        ..Default::default()
    })
    .expect("sink starts");
    let host = format!("mqtts://localhost:{}", sink.addr().port());
    let ca = pki.file("ca.pem");
    publish_2000_each(&host, "sink-tls", &["1", "2"], &["--cafile", &ca]);
    let totals = sink.stop();
    assert_eq!(totals.publishes[1] + totals.publishes[2], 4000);
}

#[test]
fn the_sink_speaks_websocket_and_acknowledges_every_publish() {
    let sink = mqblast::sink::start(&mqblast::sink::SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        websocket: true,
        ..Default::default()
    })
    .expect("sink starts");
    let host = format!("ws://127.0.0.1:{}/mqtt", sink.addr().port());
    publish_2000_each(&host, "sink-ws", &["0", "1", "2"], &[]);
    let totals = sink.stop();
    assert_eq!(totals.publishes, [2000, 2000, 2000]);
}

#[test]
fn the_sink_speaks_websocket_over_tls_and_acknowledges_every_publish() {
    let pki = common::tls::Pki::generate(0);
    let (cert, key) = (pki.file("server.pem"), pki.file("server.key"));
    let tls = mqblast::sink::SinkTls::load(cert.as_ref(), key.as_ref()).expect("sink TLS");
    let sink = mqblast::sink::start(&mqblast::sink::SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        websocket: true,
        tls: Some(tls),
        ..Default::default()
    })
    .expect("sink starts");
    let host = format!("wss://localhost:{}/mqtt", sink.addr().port());
    let ca = pki.file("ca.pem");
    publish_2000_each(&host, "sink-wss", &["0", "1", "2"], &["--cafile", &ca]);
    let totals = sink.stop();
    assert_eq!(totals.publishes, [2000, 2000, 2000]);
}

/// A sink held to TLS 1.2 and one cipher suite: a real TLS 1.2 server (rustls'), since
/// mosquitto 2.0 cannot be held to 1.2 (its `tls_version` is a minimum).
fn tls12_sink(pki: &common::tls::Pki, suite: rustls::SupportedCipherSuite) -> SinkHandle {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(pki.file("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.file("server.key")).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    mqblast::sink::start(&mqblast::sink::SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        tls: Some(mqblast::sink::SinkTls(Arc::new(config))),
        ..Default::default()
    })
    .expect("sink starts")
}

/// 2000 messages at QoS 1 and 2 into `sink` over `host`: every one acknowledged and counted.
fn sink_counts_are_exact(sink: SinkHandle, host: &str, ca: &str) {
    publish_2000_each(host, "sink-counts", &["1", "2"], &["--cafile", ca]);
    let totals = sink.stop();
    assert_eq!(totals.publishes[1..], [2000, 2000]);
}

#[test]
fn qos_1_and_2_counts_are_exact_over_tls_1_2_with_aes_gcm() {
    use rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as SUITE;
    let pki = common::tls::Pki::generate(0);
    let sink = tls12_sink(&pki, SUITE);
    let host = format!("mqtts://localhost:{}", sink.addr().port());
    sink_counts_are_exact(sink, &host, &pki.file("ca.pem"));
}

#[test]
fn qos_1_and_2_counts_are_exact_over_tls_1_2_with_chacha20_poly1305() {
    use rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 as SUITE;
    let pki = common::tls::Pki::generate(0);
    let sink = tls12_sink(&pki, SUITE);
    let host = format!("mqtts://localhost:{}", sink.addr().port());
    sink_counts_are_exact(sink, &host, &pki.file("ca.pem"));
}

/// Read one MQTT packet (first byte, body) from a blocking stream.
fn read_packet(s: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first).ok()?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        len |= ((b[0] & 0x7f) as usize) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((first[0], body))
}

/// A rustls TLS 1.3 server that acks QoS 1 publishes and, after the 5th PUBACK, updates its
/// keys and asks the client to update its own (RFC 8446 4.6.3). Returns the PUBACKs sent.
fn key_updating_server(pki: &common::tls::Pki) -> (u16, std::thread::JoinHandle<u32>) {
    let (cert, key) = (pki.file("server.pem"), pki.file("server.key"));
    let config = mqblast::sink::SinkTls::load(cert.as_ref(), key.as_ref())
        .expect("server TLS")
        .0;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let (connect, _) = read_packet(&mut tls).expect("CONNECT");
        assert_eq!(connect >> 4, 1);
        tls.write_all(&[0x20, 2, 0, 0]).unwrap();
        let mut acked = 0;
        while let Some((first, body)) = read_packet(&mut tls) {
            match first >> 4 {
                3 => {
                    let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
                    let pkid = &body[2 + topic_len..4 + topic_len];
                    tls.write_all(&[0x40, 2, pkid[0], pkid[1]]).unwrap();
                    acked += 1;
                    if acked == 5 {
                        tls.conn.refresh_traffic_keys().expect("key update");
                        tls.flush().unwrap();
                    }
                }
                14 => break,
                other => panic!("unexpected packet type {other}"),
            }
        }
        acked
    });
    (port, server)
}

#[test]
fn a_key_update_from_the_broker_is_followed_in_both_directions() {
    let pki = common::tls::Pki::generate(0);
    let (port, server) = key_updating_server(&pki);
    let dir = TempDir::new("key-update");
    let json = dir.file("out.json");
    let ca = pki.file("ca.pem");
    let flags = [
        "-u",
        "1",
        "--messages",
        "20",
        "--interval",
        "10ms",
        "--qos",
        "1",
        "--cafile",
        &ca,
    ];
    let (run, summary) = run_over(&format!("mqtts://localhost:{port}"), &json, &flags);
    run.assert_code(0);
    assert_eq!(summary.u64("publish.ok"), 20, "{}", summary.text());
    assert_eq!(
        server.join().expect("the server"),
        20,
        "acked after the update too"
    );
}

#[test]
fn a_broker_that_never_answers_the_client_hello_times_the_handshake_out() {
    // Accepts TCP and reads, but never says a word of TLS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2).flatten() {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let host = format!("mqtts://localhost:{port}");
    let dir = TempDir::new("tls-timeout");
    let json = dir.file("out.json");
    let flags = [
        "-u",
        "2",
        "--messages",
        "10",
        "--timeout",
        "1s",
        "--insecure",
    ];
    let (run, summary) = run_over(&host, &json, &flags);
    run.assert_code(1);
    assert_eq!(
        summary.errors_starting_with("tls: handshake timed out"),
        2,
        "{:?}",
        summary.errors()
    );
}

// ---- Interop with OpenSSL's own TLS server ----
//
// `openssl s_server` is a TLS stack mqblast shares no code with. It is not an MQTT broker,
// so these tests drive mqblast's transport layer directly (the library's `Transport`, as a
// worker's connection does): what the client writes comes out on s_server's stdout, what is
// typed on s_server's stdin arrives at the client, and the stdin commands `K`/`k` make the
// server update its keys, requesting (or not) that the client updates its own.

/// `openssl s_server` on a free loopback port, its stdout and protocol trace collected.
struct SServer {
    child: std::process::Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    trace: String,
}

impl SServer {
    /// `flags` choose the protocol and cipher, e.g. `["-tls1_3", "-ciphersuites", ...]`.
    fn start(pki: &common::tls::Pki, flags: &[&str]) -> SServer {
        for _attempt in 0..5 {
            let port = free_port();
            let trace = pki.file(&format!("s_server-{port}.trace"));
            let accept = format!("127.0.0.1:{port}");
            let (cert, key) = (pki.file("server.pem"), pki.file("server.key"));
            let mut child = std::process::Command::new(common::tls::openssl())
                .args(["s_server", "-accept", &accept, "-naccept", "1"])
                .args(["-cert", &cert, "-key", &key, "-msg", "-msgfile", &trace])
                .args(flags)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starting openssl s_server");
            let stdout = Arc::new(Mutex::new(String::new()));
            let mut pipe = child.stdout.take().unwrap();
            let sink = Arc::clone(&stdout);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            let mut server = SServer {
                child,
                port,
                stdout,
                trace,
            };
            if server.wait_stdout("ACCEPT") {
                return server;
            }
            let mut err = String::new();
            let _ = server.child.kill();
            if let Some(mut e) = server.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            eprintln!("openssl s_server did not start, retrying: {err}");
        }
        panic!("openssl s_server failed to start 5 times");
    }

    fn wait_stdout(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if self.stdout.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The end of s_server's stdout, for failure messages (the bulk lines are long).
    fn stdout_tail(&self) -> String {
        let out = self.stdout();
        let chars: Vec<char> = out.chars().collect();
        chars[chars.len().saturating_sub(1500)..].iter().collect()
    }

    /// Type a line on s_server's stdin: data for the client, or a command (`K`, `k`).
    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The protocol messages s_server received (`<<<` lines of its `-msg` trace).
    fn received_messages(&self) -> Vec<String> {
        self.trace_lines("<<<")
    }

    /// Lines of the `-msg` trace starting with `direction` (`<<<` received, `>>>` sent).
    fn trace_lines(&self, direction: &str) -> Vec<String> {
        std::fs::read_to_string(&self.trace)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(direction))
            .map(str::to_string)
            .collect()
    }

    /// Type `K` or `k` and wait until the server has sent its KeyUpdate. s_server takes a
    /// command only at the start of what one read of its stdin returns and drops the rest
    /// of that read, so nothing else is typed until the update went out.
    fn update_keys(&mut self, command: &str) {
        let sent = |s: &SServer| {
            s.trace_lines(">>>")
                .iter()
                .filter(|l| l.contains("KeyUpdate"))
                .count()
        };
        let before = sent(self);
        self.type_line(command);
        let deadline = std::time::Instant::now() + WAIT;
        while sent(self) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server sent no KeyUpdate after {command:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client connection through mqblast's transport, driven by hand: flush what is queued,
/// read what arrives, until a condition holds.
struct Client {
    transport: mqblast::transport::Transport,
    stream: mio::net::TcpStream,
    wbuf: Vec<u8>,
    received: Vec<u8>,
}

impl Client {
    fn connect(pki: &common::tls::Pki, port: u16) -> Client {
        use mqblast::transport::{Dial, Scheme, TlsOptions, TlsSetup, Transport};
        let opts = TlsOptions {
            cafile: Some(pki.file("ca.pem").into()),
            resume: true,
            ..TlsOptions::default()
        };
        let setup = TlsSetup::load(&opts, &[(0, "")]).expect("TLS set-up");
        let dial = Dial {
            scheme: Scheme::Tls,
            host: "localhost",
            ws_path: "/mqtt",
            tls: Some((&setup, setup.client_config(0))),
        };
        let transport = Transport::new(&dial).expect("TLS transport");
        let std_stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std_stream.set_nonblocking(true).unwrap();
        let mut client = Client {
            transport,
            stream: mio::net::TcpStream::from_std(std_stream),
            wbuf: Vec::new(),
            received: Vec::new(),
        };
        assert!(client.pump_until("the TLS handshake", |c| c.transport.is_open()));
        client
    }

    /// Flush and read until `done` holds; false when it did not within WAIT.
    fn pump_until(&mut self, what: &str, done: impl Fn(&Client) -> bool) -> bool {
        use mqblast::transport::ReadOutcome;
        let deadline = std::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 4096];
        loop {
            self.transport
                .flush(&mut self.stream, &mut self.wbuf)
                .expect("flush");
            loop {
                match self.transport.read(&mut self.stream, &mut buf) {
                    ReadOutcome::Data { n, drained, .. } => {
                        self.received.extend_from_slice(&buf[..n]);
                        if drained {
                            break;
                        }
                    }
                    ReadOutcome::WouldBlock => break,
                    other => panic!("waiting for {what}: {other:?}"),
                }
            }
            if self.transport.wants_write() {
                continue;
            }
            if done(self) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
        assert!(self.pump_until("the write", |c| c.wbuf.is_empty()));
    }

    /// Wait for `needle` from `server` (whose output and trace a failure shows).
    fn wait_received(&mut self, needle: &str, server: &SServer) {
        let what = format!("{needle:?} from s_server");
        let arrived = self.pump_until(&what, |c| {
            String::from_utf8_lossy(&c.received).contains(needle)
        });
        assert!(
            arrived,
            "no {what} within {WAIT:?}; the client has {:?}\ns_server received: {:?}",
            String::from_utf8_lossy(&self.received),
            server.received_messages()
        );
    }
}

/// Lines both ways, a payload of many records, then a key update the server requests and one
/// it does not, each followed by data both ways under the new keys. `cipher` is what
/// s_server's "CIPHER is" line must name; `tls13` whether key updates apply.
fn interop_with_s_server(flags: &[&str], cipher: &str, tls13: bool) {
    let pki = common::tls::Pki::generate(0);
    let mut server = SServer::start(&pki, flags);
    let mut client = Client::connect(&pki, server.port);
    client.send(b"hello from mqblast\n");
    assert!(
        server.wait_stdout("hello from mqblast\n"),
        "{}",
        server.stdout()
    );
    assert!(
        server.stdout().contains(&format!("CIPHER is {cipher}")),
        "{}",
        server.stdout()
    );
    server.type_line("hello from s_server");
    client.wait_received("hello from s_server\n", &server);

    // 100 lines of 1,000 bytes: several full records in one flush.
    let mut bulk = Vec::new();
    for i in 0..100 {
        bulk.extend_from_slice(format!("{i:04}:").as_bytes());
        bulk.extend(std::iter::repeat_n(b'x', 994));
        bulk.push(b'\n');
    }
    client.send(&bulk);
    assert!(
        server.wait_stdout(&format!("0099:{}\n", "x".repeat(994))),
        "the last bulk line did not arrive"
    );
    let x_lines = server.stdout().matches(&"x".repeat(994)).count();
    assert_eq!(x_lines, 100, "every bulk line arrives once");

    if !tls13 {
        return;
    }
    let updates_received = |s: &SServer| {
        s.received_messages()
            .iter()
            .filter(|l| l.contains("KeyUpdate"))
            .count()
    };
    assert_eq!(updates_received(&server), 0);
    // `K`: the server updates its keys and requests that the client updates its own.
    server.update_keys("K");
    server.type_line("after the requested update");
    client.wait_received("after the requested update\n", &server);
    client.send(b"client after the requested update\n");
    assert!(
        server.wait_stdout("client after the requested update\n"),
        "{}",
        server.stdout_tail()
    );
    assert_eq!(
        updates_received(&server),
        1,
        "the client answers a requested key update with its own: {:?}",
        server.received_messages()
    );
    // `k`: the server updates its keys only; the client must follow but owes no update.
    server.update_keys("k");
    server.type_line("after the unrequested update");
    client.wait_received("after the unrequested update\n", &server);
    client.send(b"client after the unrequested update\n");
    assert!(
        server.wait_stdout("client after the unrequested update\n"),
        "{}",
        server.stdout_tail()
    );
    assert_eq!(
        updates_received(&server),
        1,
        "{:?}",
        server.received_messages()
    );
}

#[test]
fn interop_with_openssl_s_server_over_tls_1_3_with_aes_256_gcm_and_key_updates() {
    interop_with_s_server(
        &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
        "TLS_AES_256_GCM_SHA384",
        true,
    );
}

#[test]
fn interop_with_openssl_s_server_over_tls_1_3_with_chacha20_poly1305_and_key_updates() {
    interop_with_s_server(
        &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
        "TLS_CHACHA20_POLY1305_SHA256",
        true,
    );
}

#[test]
fn interop_with_openssl_s_server_over_tls_1_2_with_aes_128_gcm() {
    interop_with_s_server(
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        false,
    );
}

#[test]
fn interop_with_openssl_s_server_over_tls_1_2_with_chacha20_poly1305() {
    interop_with_s_server(
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        false,
    );
}
