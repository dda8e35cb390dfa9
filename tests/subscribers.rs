//! Subscribers, end-to-end latency and the delivery audit against a real mosquitto: every
//! QoS delivers exactly what was published, a subscriber kicked off mid-run is caught losing
//! what was published after it left, and a CI-sized soak loses nothing.

mod common;

use std::time::Duration;

use common::{load_args, run_mqblast, with, Mosquitto, Subscriber, Summary, TempDir};

/// Run `users` publishers and `subs` subscribers for `messages` messages at `qos`.
fn run_with_subscribers(
    broker: &Mosquitto,
    dir: &TempDir,
    qos: &str,
    messages: u64,
    more: &[&str],
) -> (common::Finished, Summary) {
    let json = dir.file("out.json");
    let messages = messages.to_string();
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "4",
            "--messages",
            &messages,
            "--interval",
            "0",
            "--qos",
            qos,
            "--sub-users",
            "2",
        ],
    );
    let args = with(args, more);
    let run = run_mqblast(&args, Duration::from_secs(120));
    let summary = Summary::read(&json, &run);
    (run, summary)
}

fn assert_delivered_exactly(qos: &str, messages: u64) {
    let broker = Mosquitto::start();
    let dir = TempDir::new("subs-exact");
    let (run, summary) = run_with_subscribers(&broker, &dir, qos, messages, &[]);
    run.assert_code(0);
    assert_eq!(summary.u64("audit.published"), messages);
    assert_eq!(summary.u64("audit.expected"), 2 * messages);
    assert_eq!(summary.u64("audit.delivered"), 2 * messages);
    assert_eq!(summary.u64("audit.lost"), 0);
    assert_eq!(summary.u64("audit.duplicated"), 0);
    assert_eq!(summary.u64("subscribe.ok"), 2);
    assert_eq!(summary.u64("e2e.latency_us.count"), 2 * messages);
    assert!(summary.u64("e2e.latency_us.p99") > 0);
    assert!(run.stderr.contains(&format!(
        "Delivery audit: {messages} published, {} expected (2 subscribers), {} delivered, 0 lost, 0 duplicated",
        2 * messages,
        2 * messages
    )));
}

#[test]
fn qos0_subscribers_receive_every_message_exactly_once() {
    assert_delivered_exactly("0", 5_000);
}

#[test]
fn qos1_subscribers_receive_every_message_exactly_once() {
    assert_delivered_exactly("1", 5_000);
}

#[test]
fn qos2_subscribers_receive_every_message_exactly_once() {
    assert_delivered_exactly("2", 3_000);
}

#[test]
fn a_shared_group_together_receives_every_message_once() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("subs-shared");
    let filter = "$share/g/v1/devices/me/telemetry";
    let (run, summary) = run_with_subscribers(&broker, &dir, "1", 4_000, &["--sub-topic", filter]);
    run.assert_code(0);
    assert_eq!(summary.u64("audit.expected"), 4_000);
    assert_eq!(summary.u64("audit.delivered"), 4_000);
    assert_eq!(summary.u64("audit.lost"), 0);
}

#[test]
fn a_subscriber_kicked_off_mid_run_is_reported_losing_what_was_published_after() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("subs-kicked");
    let json = dir.file("out.json");
    // 4 users every 5 ms: about 800 messages/s for 2.5 s.
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "4",
            "--messages",
            "2000",
            "--interval",
            "5ms",
            "--qos",
            "1",
            "--sub-users",
            "2",
        ],
    );
    let running = common::spawn(common::mqblast_command(&args));
    std::thread::sleep(Duration::from_millis(1200));
    // Same client id, clean session: mosquitto disconnects mqblast's subscriber 0, and this
    // client counts, independently, what was published after it took over.
    let taker = Subscriber::start_as(broker.port, "v1/devices/me/telemetry", 1, "mqblast-0-sub");
    let run = running.wait(Duration::from_secs(60));
    let after = taker.settle(Duration::from_millis(300), Duration::from_secs(5));
    let summary = Summary::read(&json, &run);
    let lost = summary.u64("audit.lost");
    assert!(after > 100, "the takeover happened mid-run ({after} after)");
    // Messages published between the kick and the taker's SUBACK reach neither of them.
    assert!(
        (after..=after + 40).contains(&lost),
        "audit lost {lost}, independent count after the kick {after}"
    );
    assert_eq!(summary.u64("audit.published"), 2000);
    assert_eq!(
        summary.u64("audit.delivered") + lost,
        summary.u64("audit.expected")
    );
    assert!(run.stderr.contains(&format!("{lost} lost")));
    run.assert_code(1);
}

#[test]
fn a_ci_sized_soak_of_200k_qos1_messages_loses_nothing() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("subs-soak");
    let (run, summary) =
        run_with_subscribers(&broker, &dir, "1", 200_000, &["--max-inflight", "64"]);
    run.assert_code(0);
    assert_eq!(summary.u64("audit.published"), 200_000);
    assert_eq!(summary.u64("audit.delivered"), 400_000);
    assert_eq!(summary.u64("audit.lost"), 0);
    assert_eq!(summary.u64("audit.duplicated"), 0);
}

/// A broker that accepts connections and refuses every subscription (SUBACK 0x80); it
/// ignores publishes (the refusing test publishes at QoS 0).
fn refusing_broker() -> u16 {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = Vec::new();
                while let Ok((header, body)) =
                    common::read_packet(&mut stream, &mut buf, Duration::from_secs(30))
                {
                    let reply: &[u8] = match header >> 4 {
                        common::packet::CONNECT => &[0x20, 0x02, 0x00, 0x00],
                        common::packet::SUBSCRIBE => &[0x90, 0x03, body[0], body[1], 0x80],
                        common::packet::PINGREQ => &[0xD0, 0x00],
                        _ => &[],
                    };
                    if stream.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_refused_subscription_is_a_subscribe_failure_with_its_reason() {
    let port = refusing_broker();
    let dir = TempDir::new("subs-refused");
    let json = dir.file("out.json");
    let host = format!("127.0.0.1:{port}");
    let args = with(
        load_args(&host, &json),
        &[
            "-u",
            "2",
            "--messages",
            "50",
            "--interval",
            "0",
            "--qos",
            "0",
            "--sub-users",
            "2",
        ],
    );
    let run = run_mqblast(&args, Duration::from_secs(60));
    let summary = Summary::read(&json, &run);
    run.assert_code(1);
    assert_eq!(
        summary.errors_starting_with("SUBACK refused: 0x80"),
        2,
        "{}",
        run.describe()
    );
    assert_eq!(summary.u64("subscribe.failures"), 2);
    // Publishers still ran once every subscriber had settled.
    assert_eq!(summary.u64("publish.sent"), 50);
}
