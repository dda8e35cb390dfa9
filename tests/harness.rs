//! Tests of the test harness itself (tests/common), with no mqblast involved.
//!
//! Why it exists: every other integration test trusts mosquitto's config, the independent
//! subscriber's count and the silent broker. If those were wrong, a broken mqblast could pass.
//! These tests check them against mosquitto's own tools (mosquitto_pub) and raw sockets.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::collector::Collector;
use common::*;

/// Publish `n` messages with mosquitto_pub (one process, one message per stdin line).
fn mosquitto_pub(port: u16, topic: &str, qos: u8, n: usize, login: Option<(&str, &str)>) {
    let program =
        find_program("mosquitto_pub").expect("mosquitto_pub not found (package mosquitto-clients)");
    let mut cmd = Command::new(program);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        topic,
        "-q",
        &qos.to_string(),
        "-l",
    ]);
    if let Some((user, pass)) = login {
        cmd.args(["-u", user, "-P", pass]);
    }
    let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..n {
            writeln!(stdin, "{{\"seq\":{i},\"temperature\":21.5}}").unwrap();
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "mosquitto_pub failed: {status}");
}

#[test]
fn subscriber_counts_every_message_mosquitto_pub_sends_at_each_qos() {
    let broker = Mosquitto::start();
    for qos in 0..=2u8 {
        let topic = format!("harness/q{qos}");
        let sub = broker.subscribe(&topic, qos);
        mosquitto_pub(broker.port, &topic, qos, 500, None);
        assert!(
            sub.wait_for(500, Duration::from_secs(10)),
            "QoS {qos}: got {} of 500 ({:?})\n{}",
            sub.count(),
            sub.error(),
            broker.log()
        );
        assert_eq!(
            sub.settle(Duration::from_millis(200), Duration::from_secs(2)),
            500,
            "QoS {qos}: duplicates"
        );
        assert_eq!(sub.not_json(), 0);
        assert_eq!(sub.error(), None);
    }
}

#[test]
fn subscriber_does_not_count_messages_on_other_topics() {
    let broker = Mosquitto::start();
    let sub = broker.subscribe("harness/mine", 1);
    mosquitto_pub(broker.port, "harness/other", 1, 20, None);
    mosquitto_pub(broker.port, "harness/mine", 1, 3, None);
    assert!(sub.wait_for(3, Duration::from_secs(5)));
    assert_eq!(
        sub.settle(Duration::from_millis(200), Duration::from_secs(2)),
        3
    );
}

#[test]
fn auth_broker_refuses_an_unlisted_username_with_connack_5() {
    let broker = Mosquitto::start_with_auth(&["good1", "good2"], SHARED_PASSWORD);
    let code = |user: &str, pass: Option<&str>| {
        connack_code(broker.port, &format!("raw-{user}"), Some((user, pass))).unwrap()
    };
    assert_eq!(
        code("good1", Some(SHARED_PASSWORD)),
        0,
        "a listed token with the password is accepted"
    );
    assert_eq!(code("good2", Some(SHARED_PASSWORD)), 0);
    // mosquitto 2.0.11 answers 5 (not authorized), not 4 (bad user name or password), for all
    // of these, and needs the password even for a listed username.
    assert_eq!(
        code("badtoken", Some(SHARED_PASSWORD)),
        5,
        "an unlisted token is refused"
    );
    assert_eq!(code("badtoken", None), 5);
    assert_eq!(
        code("good1", None),
        5,
        "a listed token without the password is refused"
    );
    assert_eq!(
        connack_code(broker.port, "raw-anon", None).unwrap(),
        5,
        "anonymous is refused"
    );
}

#[test]
fn subscriber_logs_in_and_receives_on_an_auth_broker() {
    let broker = Mosquitto::start_with_auth(&["good1"], SHARED_PASSWORD);
    let sub = broker.subscribe("harness/auth", 1);
    mosquitto_pub(
        broker.port,
        "harness/auth",
        1,
        10,
        Some(("good1", SHARED_PASSWORD)),
    );
    assert!(
        sub.wait_for(10, Duration::from_secs(5)),
        "got {}\n{}",
        sub.count(),
        broker.log()
    );
}

#[test]
fn anonymous_broker_accepts_a_raw_connect() {
    let broker = Mosquitto::start();
    assert_eq!(connack_code(broker.port, "raw", None).unwrap(), 0);
}

#[test]
fn silent_broker_accepts_connects_and_never_acknowledges_publishes() {
    use std::io::Write;
    let broker = SilentBroker::start();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream
        .write_all(&connect_packet("silent-test", None))
        .unwrap();
    let mut buf = Vec::new();
    let (header, body) = read_packet(&mut stream, &mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!((header >> 4, body), (packet::CONNACK, vec![0, 0]));
    // PUBLISH QoS 1, topic "t", packet id 1, payload "x".
    stream
        .write_all(&[0b0011_0010, 6, 0, 1, b't', 0, 1, b'x'])
        .unwrap();
    let err = read_packet(&mut stream, &mut buf, Duration::from_millis(300)).unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "no PUBACK may come"
    );
    assert_eq!(broker.publishes(), 1);
}

#[test]
fn nothing_listens_on_a_free_port() {
    let port = free_port();
    let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn collectors_keep_every_message_mosquitto_pub_sends_each_under_its_own_client_id() {
    let broker = Mosquitto::start();
    // Two on one filter: a client id shared by both would make the broker drop the first.
    let first = Collector::start(broker.port, "harness/collect/+");
    let second = Collector::with_qos(broker.port, "harness/collect/+", 1);
    mosquitto_pub(broker.port, "harness/collect/a", 1, 200, None);
    for collector in [&first, &second] {
        let got = collector.settle(200, Duration::from_secs(10));
        assert_eq!(got.len(), 200, "{}", broker.log());
        for (i, delivery) in got.iter().enumerate() {
            assert_eq!(delivery.topic, "harness/collect/a");
            let payload = format!("{{\"seq\":{i},\"temperature\":21.5}}");
            assert_eq!(delivery.payload, payload.as_bytes(), "in order, whole");
        }
        assert!(got.windows(2).all(|pair| pair[0].at <= pair[1].at));
    }
}

/// A broker on a raw socket that accepts one client, grants its subscription and then sends
/// `after_suback` (and keeps the connection open for 10 s).
fn scripted_broker(after_suback: Vec<u8>) -> u16 {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        read_packet(&mut stream, &mut buf, Duration::from_secs(10)).expect("CONNECT");
        stream
            .write_all(&frame(packet::CONNACK << 4, &[0, 0]))
            .unwrap();
        read_packet(&mut stream, &mut buf, Duration::from_secs(10)).expect("SUBSCRIBE");
        stream
            .write_all(&frame(packet::SUBACK << 4, &[0, 1, 0]))
            .unwrap();
        stream.write_all(&after_suback).unwrap();
        std::thread::sleep(Duration::from_secs(10));
    });
    port
}

#[test]
#[should_panic(expected = "unexpected packet type 4")]
fn a_collector_fails_the_test_on_a_packet_a_subscriber_never_gets() {
    let port = scripted_broker(frame(packet::PUBACK << 4, &[0, 1]));
    Collector::start(port, "t").settle(1, Duration::from_secs(10));
}

#[test]
#[should_panic(expected = "PUBLISH of 1 bytes")]
fn a_collector_fails_the_test_on_a_malformed_publish() {
    let port = scripted_broker(frame(packet::PUBLISH << 4, &[0]));
    Collector::start(port, "t").settle(1, Duration::from_secs(10));
}

#[test]
#[should_panic(expected = "broker closed the connection")]
fn a_collector_fails_the_test_when_the_broker_goes_away() {
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port, "t");
    drop(broker);
    collector.settle(1, Duration::from_secs(10));
}

#[test]
fn temp_dir_is_removed_on_drop() {
    let dir = TempDir::new("harness");
    let file = dir.write("x.txt", "hello");
    assert!(std::path::Path::new(&file).exists());
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn mosquitto_cpu_seconds_are_readable_from_proc() {
    let broker = Mosquitto::start();
    assert!(broker.cpu_seconds() >= 0.0);
    // Burn a little CPU so this process has at least one clock tick to read back.
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    assert!(proc_cpu_seconds(std::process::id()).unwrap() > 0.0);
}

/// `sh -c script` with the pipes the runner expects.
fn shell(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn runner_returns_exit_code_and_both_outputs() {
    let run = spawn(shell("echo out; echo err >&2; exit 3")).wait(Duration::from_secs(10));
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );
}

#[test]
fn runner_delivers_signals_to_the_child() {
    let running = spawn(shell(
        "trap 'echo got-int; exit 0' INT; echo ready; while :; do sleep 0.05; done",
    ));
    // Signal until it is handled: on a busy machine the shell may not have set its trap by
    // the first one (then it dies of it and the test fails on the exit code, as it should).
    let mut running = running;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    std::thread::sleep(Duration::from_millis(300));
    while running.is_running() && std::time::Instant::now() < deadline {
        running.signal(libc::SIGINT);
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = running.wait(Duration::from_secs(10));
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("got-int"), "{}", run.describe());
}

#[test]
#[should_panic(expected = "did not exit within")]
fn runner_kills_a_run_that_outlives_its_bound() {
    spawn(shell("exec sleep 30")).wait(Duration::from_millis(300));
}

#[test]
#[should_panic(expected = "panicked")]
fn runner_fails_the_test_when_the_child_panicked() {
    spawn(shell(
        "echo \"thread 'main' panicked at src/main.rs:1:1\" >&2; exit 101",
    ))
    .wait(Duration::from_secs(10));
}
