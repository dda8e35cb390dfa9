//! Subscribers, end-to-end latency and the delivery audit against a real mosquitto: every
//! QoS delivers exactly what was published, a subscriber kicked off mid-run is caught losing
//! what was published after it left, deliveries that are late (held back by a proxy) are
//! waited for rather than reported lost, and a CI-sized soak loses nothing.

mod common;

use std::time::Duration;

use common::{
    load_args, run_mqblast, with, DelayProxy, Mosquitto, Release, Subscriber, Summary, TempDir,
};

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
    assert_eq!(
        run.stderr.matches("Delivery audit").count(),
        1,
        "one verdict, no running counts, at the end of a headless run: {}",
        run.stderr
    );
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
    // Its losses are a tail after it left, not messages skipped mid-stream: no queue hint.
    assert_eq!(summary.u64("audit.skipped"), 0);
    assert!(summary.get("audit.hint").is_null());
    assert!(!run.stderr.contains("Hint:"), "{}", run.stderr);
    run.assert_code(1);
}

/// How long the proxy holds each delivery: longer than the fixed 2 s drain that reported such
/// messages as lost, so that drain would have given up on about the last second of them.
const LATE_BY: Duration = Duration::from_secs(3);

/// 2 publishers, 800 QoS 1 messages over about 4 s (longer than `LATE_BY`, so deliveries keep
/// arriving all through the drain), 1 subscriber, everything through a proxy that makes each
/// delivery `LATE_BY` late.
fn run_with_late_deliveries(label: &str, more: &[&str]) -> (common::Finished, Summary) {
    let broker = Mosquitto::start();
    let proxy = DelayProxy::start(broker.port, LATE_BY);
    let dir = TempDir::new(label);
    let json = dir.file("out.json");
    let args = with(
        load_args(&proxy.addr(), &json),
        &[
            "-u",
            "2",
            "--messages",
            "800",
            "--interval",
            "10ms",
            "--qos",
            "1",
            "--sub-users",
            "1",
        ],
    );
    let run = run_mqblast(&with(args, more), Duration::from_secs(120));
    let summary = Summary::read(&json, &run);
    (run, summary)
}

#[test]
fn deliveries_later_than_the_old_fixed_drain_are_waited_for_not_reported_lost() {
    let (run, summary) = run_with_late_deliveries("subs-late", &[]);
    assert_eq!(summary.u64("audit.published"), 800, "{}", run.describe());
    assert_eq!(summary.u64("audit.delivered"), 800, "{}", run.describe());
    assert_eq!(summary.u64("audit.lost"), 0);
    assert_eq!(summary.u64("audit.still_arriving"), 0);
    assert_eq!(summary.get("audit.verdict"), "ok");
    assert!(run.stderr.contains("0 lost"), "{}", run.describe());
    run.assert_code(0);
}

#[test]
fn deliveries_still_arriving_when_the_drain_cap_ends_are_incomplete_not_lost() {
    // The cap ends the drain 1 s after the publishers finish, while the proxy still holds
    // the last 2 s or so of deliveries.
    let (run, summary) = run_with_late_deliveries("subs-cap", &["--drain-max", "1s"]);
    let (expected, delivered) = (
        summary.u64("audit.expected"),
        summary.u64("audit.delivered"),
    );
    let arriving = summary.u64("audit.still_arriving");
    assert_eq!(expected, 800, "{}", run.describe());
    assert!(delivered > 0 && delivered < expected, "{}", run.describe());
    assert_eq!(arriving, expected - delivered);
    assert_eq!(summary.u64("audit.lost"), 0);
    assert_eq!(summary.get("audit.verdict"), "incomplete");
    assert!(
        run.stderr.contains(&format!(
            ", 0 lost, 0 duplicated, 0 out of order: incomplete: {arriving} still arriving when the drain cap ended"
        )),
        "{}",
        run.describe()
    );
    run.assert_code(1);
}

/// A subscriber that fell behind finds a backlog of megabytes in its socket when the broker
/// goes quiet. It used to read at most about two buffers per readiness event (a read cut
/// short by the room left for acknowledgements was taken for an empty socket), so the rest
/// stayed unread with no further event, and the audit called it lost.
#[test]
fn a_backlog_left_in_a_subscribers_socket_when_the_broker_goes_quiet_is_read_to_the_end() {
    let broker = Mosquitto::start();
    // Everything the broker delivers reaches the subscriber in a few large bursts.
    let proxy = DelayProxy::with_release(broker.port, Release::AllEvery(Duration::from_secs(1)));
    let dir = TempDir::new("subs-backlog");
    let json = dir.file("out.json");
    let args = with(
        load_args(&proxy.addr(), &json),
        &[
            "-u",
            "4",
            "--messages",
            "20000",
            "--interval",
            "0",
            "--qos",
            "1",
            "--sub-users",
            "1",
        ],
    );
    let run = run_mqblast(&args, Duration::from_secs(120));
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("audit.published"), 20_000, "{}", run.describe());
    assert_eq!(summary.u64("audit.delivered"), 20_000, "{}", run.describe());
    assert_eq!(summary.u64("audit.lost"), 0);
    run.assert_code(0);
}

/// The repository's soak, with the default drain: on a busy 2-core machine subscribers fall
/// megabytes behind and the last messages arrive seconds after the publishers finish; the
/// drain waits while they keep arriving, and the backlog is read to the end.
#[test]
fn a_ci_sized_soak_of_200k_qos1_messages_loses_nothing() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("subs-soak");
    let more = ["--max-inflight", "64"];
    let (run, summary) = run_with_subscribers(&broker, &dir, "1", 200_000, &more);
    // The verdict in the test log (`--nocapture`), for comparing runs on loaded machines.
    let verdict = run
        .stderr
        .lines()
        .find(|l| l.starts_with("Delivery audit:"));
    eprintln!("soak: {}", verdict.unwrap_or("no verdict line"));
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

#[test]
fn losses_to_the_brokers_queue_limit_come_with_a_hint_naming_it_and_a_clean_run_has_none() {
    // mosquitto keeps 10 in flight and 10 queued per subscriber, then drops what comes in
    // for it: 4 publishers at full speed outrun 2 subscribers.
    let broker =
        Mosquitto::start_configured(None, "max_inflight_messages 10\nmax_queued_messages 10\n");
    let dir = TempDir::new("subs-queue-limit");
    let html = dir.file("report.html");
    let (run, summary) = run_with_subscribers(&broker, &dir, "1", 20_000, &["--html", &html]);
    let (lost, skipped) = (summary.u64("audit.lost"), summary.u64("audit.skipped"));
    assert!(
        lost > 0,
        "a 20-message queue at full speed lost nothing: {}",
        run.describe()
    );
    assert!(
        skipped > 0 && skipped <= lost,
        "skipped {skipped} of {lost} lost"
    );
    run.assert_code(1);
    let hint = summary.get("audit.hint").as_str().expect("audit.hint");
    assert!(
        hint.starts_with(&format!(
            "Hint: {skipped} of the {lost} lost messages were skipped"
        )),
        "{hint}"
    );
    assert!(hint.contains("mosquitto max_queued_messages"), "{hint}");
    // Said right under the verdict.
    let lines: Vec<&str> = run.stderr.lines().collect();
    let verdict = lines
        .iter()
        .position(|l| l.starts_with("Delivery audit:"))
        .expect("a verdict line");
    assert!(lines[verdict].ends_with("FAILED"), "{}", lines[verdict]);
    assert_eq!(lines.get(verdict + 1), Some(&hint));
    let report = std::fs::read_to_string(&html).unwrap();
    assert!(
        report.contains(&format!("<p>Hint: {skipped} of the {lost} lost messages")),
        "no hint in the HTML report"
    );

    // The same run against a broker without the limit: nothing lost, no hint.
    let broker = Mosquitto::start();
    let dir = TempDir::new("subs-no-limit");
    let (run, summary) = run_with_subscribers(&broker, &dir, "1", 20_000, &[]);
    run.assert_code(0);
    assert_eq!(summary.u64("audit.lost"), 0);
    assert_eq!(summary.u64("audit.skipped"), 0);
    assert!(summary.get("audit.hint").is_null());
    assert!(!run.stderr.contains("Hint:"), "{}", run.stderr);
}
