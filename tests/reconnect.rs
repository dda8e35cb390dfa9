//! `--reconnect` against a mosquitto that is restarted mid-run: with it the clients come back
//! and the run continues; without it the losses are failures and the run still ends on time.

mod common;

use std::time::{Duration, Instant};

use common::{load_args, with, Mosquitto, Summary, TempDir};

/// Run 4 users publishing every 10 ms for 4 s; restart the broker 1.5 s in (down 0.5 s).
fn run_across_a_broker_restart(more: &[&str]) -> (common::Finished, Summary, Duration) {
    let mut broker = Mosquitto::start();
    let dir = TempDir::new("reconnect");
    let json = dir.file("out.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &["-u", "4", "-t", "4s", "--interval", "10ms", "--qos", "1"],
    );
    let args = with(args, more);
    let started = Instant::now();
    let running = common::spawn(common::mqblast_command(&args));
    std::thread::sleep(Duration::from_millis(1500));
    broker.restart(Duration::from_millis(500));
    let run = running.wait(Duration::from_secs(60));
    let elapsed = started.elapsed();
    let summary = Summary::read(&json, &run);
    (run, summary, elapsed)
}

#[test]
fn with_reconnect_clients_come_back_after_a_broker_restart_and_keep_publishing() {
    let (run, summary, _) = run_across_a_broker_restart(&["--reconnect"]);
    assert_eq!(summary.u64("reconnect.ok"), 4, "{}", run.describe());
    assert!(
        summary.u64("reconnect.latency_us.min") >= 100_000,
        "back-off is at least 100 ms"
    );
    assert!(summary.errors_starting_with("connection lost") >= 4);
    // Publishing resumed: the last seconds of the timeline have acknowledged publishes.
    let timeline = summary.get("timeline").as_array().unwrap();
    let late_ok: u64 = timeline
        .iter()
        .filter(|e| e["second"].as_u64().unwrap() >= 3)
        .map(|e| e["publish_ok"].as_u64().unwrap())
        .sum();
    assert!(late_ok > 100, "publishes after the restart: {late_ok}");
    assert_eq!(summary.u64("max_connected_users"), 4);
    run.assert_code(1);
}

#[test]
fn without_reconnect_lost_connections_are_failures_and_the_run_ends_on_time() {
    let (run, summary, elapsed) = run_across_a_broker_restart(&[]);
    run.assert_code(1);
    assert!(summary.errors_starting_with("connection lost") >= 4);
    assert!(summary.json.get("reconnect").is_none());
    assert!(elapsed < Duration::from_secs(8), "ended after {elapsed:?}");
}

#[test]
fn churn_recycles_every_connection_on_schedule_without_losing_a_publish() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("churn");
    let json = dir.file("out.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "4",
            "-t",
            "3s",
            "--interval",
            "10ms",
            "--qos",
            "1",
            "--churn",
            "500ms",
        ],
    );
    let run = common::run_mqblast(&args, Duration::from_secs(30));
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    // Each user connects about every 0.5 s (plus the 100 ms housekeeping granularity).
    let connects = summary.u64("connect.ok");
    assert!((12..=28).contains(&connects), "{connects} connects");
    // Every session ended by our DISCONNECT (churn or stop): one ok connection per connect.
    assert_eq!(summary.u64("connection.ok"), connects, "{}", summary.text());
    assert_eq!(summary.u64("connection.failures"), 0);
    assert_eq!(summary.u64("publish.failures"), 0);
    assert!(summary.u64("publish.ok") > 500);
}

/// Regression: a connection lost after its CONNACK was counted on the `connect` row as
/// another (failed) connect request, so N lost connections read as about 2N connects.
#[test]
fn a_connection_lost_after_connack_is_not_counted_as_another_connect_request() {
    const USERS: u64 = 6;
    let mut broker = Mosquitto::start();
    let dir = TempDir::new("lost-after-connack");
    let json = dir.file("out.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &["-u", "6", "-t", "10s", "--interval", "50ms", "--qos", "1"],
    );
    let mut running = common::spawn(common::mqblast_command(&args));
    // Every user connects within milliseconds (-r 1000); give a loaded machine time.
    std::thread::sleep(Duration::from_millis(1500));
    broker.restart(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(30);
    while running.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = running.wait(Duration::from_secs(30));
    run.assert_code(1);
    let summary = Summary::read(&json, &run);
    let context = summary.text();
    assert_eq!(summary.u64("connect.requests"), USERS, "{context}");
    assert_eq!(summary.u64("connect.ok"), USERS, "{context}");
    assert_eq!(summary.u64("connect.failures"), 0, "{context}");
    assert_eq!(summary.u64("connection.requests"), USERS, "{context}");
    assert_eq!(summary.u64("connection.failures"), USERS, "{context}");
    assert_eq!(summary.u64("connection.ok"), 0, "{context}");
    assert_eq!(summary.errors_starting_with("connection lost"), USERS);
    let details = summary.get("error_details").as_array().unwrap();
    for detail in details
        .iter()
        .filter(|d| d["reason"].as_str().unwrap().starts_with("connection lost"))
    {
        assert_eq!(detail["metric"], "connection", "{detail}");
    }
    assert!(
        run.stderr.contains("MQTT connection: connection lost"),
        "the error report names the connection row:\n{}",
        run.describe()
    );
}

/// A listener in front of `target` that closes the first `refuse` connections as soon as
/// they arrive, then relays every later one to `target` byte for byte: a broker whose
/// listener comes back after a restart. Returns the listener's address.
fn flaky_front(target: String, refuse: usize) -> String {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the front");
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            if n < refuse {
                drop(client);
                continue;
            }
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let pump = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pump(client.try_clone().unwrap(), server.try_clone().unwrap());
            pump(server, client);
        }
    });
    addr
}

/// 2 users publish 40 messages through `front` (which refuses its first 3 connections):
/// with `--reconnect` every refused attempt is counted under its own name and retried, and
/// every publish is acknowledged in the end.
fn refused_attempts_are_retried(host: &str, more: &[&str], failure: &str) {
    let dir = TempDir::new("reconnect-transport");
    let json = dir.file("out.json");
    let args = with(
        load_args(host, &json),
        &[
            "-u",
            "2",
            "--messages",
            "40",
            "--interval",
            "10ms",
            "--qos",
            "1",
            "--reconnect",
        ],
    );
    let run = common::run_mqblast(&with(args, more), Duration::from_secs(60));
    let summary = Summary::read(&json, &run);
    assert_eq!(
        summary.errors_starting_with(failure),
        3,
        "{:?}\n{}",
        summary.errors(),
        run.describe()
    );
    assert_eq!(summary.u64("publish.requests"), 40, "{}", summary.text());
    assert_eq!(summary.u64("publish.failures"), 0, "{}", summary.text());
    assert_eq!(summary.u64("connect.failures"), 3, "{}", summary.text());
    run.assert_code(1);
}

#[test]
fn with_reconnect_a_tls_handshake_cut_short_is_retried_until_the_listener_answers() {
    let broker = common::tls::TlsBroker::start(0);
    let front = flaky_front(format!("127.0.0.1:{}", broker.tls), 3);
    let host = format!("mqtts://{}", front.replace("127.0.0.1", "localhost"));
    let ca = broker.pki.file("ca.pem");
    let failure = "tls: the broker closed the connection during the handshake";
    refused_attempts_are_retried(&host, &["--cafile", &ca], failure);
}

#[test]
fn with_reconnect_a_websocket_upgrade_cut_short_is_retried_until_the_listener_answers() {
    let broker = common::tls::TlsBroker::start(0);
    let front = flaky_front(format!("127.0.0.1:{}", broker.ws), 3);
    let failure = "websocket upgrade failed: the broker closed the connection";
    refused_attempts_are_retried(&format!("ws://{front}/mqtt"), &[], failure);
}

#[test]
fn with_reconnect_a_close_before_connack_is_retried_until_the_listener_answers() {
    let broker = Mosquitto::start();
    let front = flaky_front(broker.addr(), 3);
    let failure = "connection closed by the broker before CONNACK";
    refused_attempts_are_retried(&front, &[], failure);
}
