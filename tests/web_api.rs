//! Locust's HTTP API on `mqblast --web` against mosquitto: the same paths, parameters and
//! field names, live user changes, 4xx JSON errors for malformed requests, basic auth off
//! loopback, and `/metrics` read by a Prometheus text-format parser. Counts and structure
//! only, never latency thresholds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::web::{row_requests, start_web, start_web_with_auth};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn locust_api_starts_changes_stops_and_reports_a_test() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "3", "-r", "50", "--interval", "100ms"]);
    assert_eq!(web.get("/stats/requests").json()["state"], "ready");

    let started = web.post_form("/swarm", "user_count=5&spawn_rate=50&host=&run_time=");
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.json()["success"], true);
    let stats = web.wait_for(WAIT, |s| {
        s["user_count"] == 5 && row_requests(s, "publish:") > 0
    });
    for field in [
        "current_response_time_percentiles",
        "errors",
        "fail_ratio",
        "state",
        "stats",
        "total_rps",
        "total_fail_per_sec",
        "user_count",
    ] {
        assert!(stats.get(field).is_some(), "{field} missing: {stats}");
    }
    let row = &stats["stats"][0];
    for field in [
        "method",
        "name",
        "num_requests",
        "num_failures",
        "avg_response_time",
        "min_response_time",
        "max_response_time",
        "current_rps",
        "median_response_time",
        "ninetieth_response_time",
        "ninety_ninth_response_time",
        "avg_content_length",
        "response_time_percentile_0.95",
    ] {
        assert!(row.get(field).is_some(), "{field} missing: {row}");
    }
    let last = stats["stats"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "Aggregated");

    // A multipart form (curl -F) is accepted too; while running, /swarm changes the users.
    let raised = web.post_multipart("/swarm", &["user_count=8", "spawn_rate=50"]);
    assert_eq!(raised.status, 200, "{}", raised.body);
    web.wait_for(WAIT, |s| s["user_count"] == 8);

    assert_eq!(web.post_form("/stats/reset", "").status, 200);
    assert_eq!(
        web.get("/stats/reset").status,
        405,
        "a state change is a POST"
    );
    let csv = web.get("/stats/requests/csv");
    assert!(
        csv.body.starts_with("Type,Name,Request Count"),
        "{}",
        csv.body
    );
    let failures = web.get("/stats/failures/csv");
    assert!(
        failures.body.starts_with("Method,Name,Error,Occurrences"),
        "{}",
        failures.body
    );

    assert_eq!(web.post_form("/stop", "").status, 200);
    let stopped = web.wait_for(WAIT, |s| s["state"] == "stopped");
    assert_eq!(stopped["user_count"], 0);
    let report = web.get("/stats/report");
    assert!(report.body.contains("<svg") && report.body.contains("Aggregated"));
    let result = web.get("/stats/result.json").json();
    assert!(result["publish"]["requests"].as_u64() > Some(0), "{result}");
    assert_eq!(
        result["config"]["users"], 5,
        "the result records the test as started"
    );
    assert_eq!(
        web.post_form("/stop", "").status,
        409,
        "nothing left to stop"
    );

    // New test: a second run in the same process, complete on its own.
    let again = web.post_form("/swarm", "user_count=2&spawn_rate=50&run_time=2s");
    assert_eq!(again.status, 200, "{}", again.body);
    let second = web.wait_for(WAIT, |s| {
        s["state"] == "stopped" && row_requests(s, "connect") == 2
    });
    assert!(row_requests(&second, "publish:") > 0);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn each_stream_is_a_row_and_the_current_ratio_shows_its_share() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&[
        "-H",
        &host,
        "-u",
        "2",
        "-r",
        "50",
        "--stream",
        "telemetry,interval=100ms",
        "--stream",
        "attributes,interval=400ms,qos=0",
    ]);
    let started = web.post_form("/swarm", "user_count=2&spawn_rate=50&host=&run_time=");
    assert_eq!(started.status, 200, "{}", started.body);
    let stats = web.wait_for(WAIT, |s| {
        row_requests(s, "telemetry") > 0 && row_requests(s, "attributes") > 0
    });
    let rows = stats["stats"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("publish")),
        "the stream rows stand in for publish: {names:?}"
    );
    let live = web.get("/ui/live").json();
    let section = live["sections"]["stats"].as_str().unwrap();
    let ratio = section
        .split_once("<h2>Current ratio</h2>")
        .expect("a Current ratio table")
        .1;
    // The paces ask for 10/s and 2.5/s per user: 80% and 20% of the messages.
    for cells in [
        "<td class=\"l\">telemetry</td><td>80.0%</td>",
        "<td class=\"l\">attributes</td><td>20.0%</td>",
    ] {
        assert!(ratio.contains(cells), "{cells} missing from {ratio}");
    }
    assert_eq!(web.post_form("/stop", "").status, 200);
}

#[test]
fn malformed_api_requests_get_a_4xx_json_error_and_the_server_goes_on() {
    let web = start_web(&["-u", "1"]);
    let cases = [
        web.post_form("/swarm", "user_count=lots"),
        web.post_form("/swarm", "user_count=5&spawn_rate=0"),
        web.post_form("/swarm", "user_count=5&run_time=soon"),
        web.post_form("/swarm", "user_count=5&host=ftp://x"),
        web.post_json("/swarm", "{not json"),
        web.post_json("/swarm", r#"{"user_count": [1]}"#),
        web.request("POST", "/swarm", Some(&"x".repeat(70_000)), &[]),
        web.get("/swarm"),
        web.request("DELETE", "/stop", None, &[]),
        web.get("/no/such/path"),
        web.post_form("/stop", ""),
        web.post_form("/stats/reset", ""),
    ];
    for reply in &cases {
        assert!(
            (400..500).contains(&reply.status),
            "{} {}",
            reply.status,
            reply.body
        );
        assert_eq!(reply.json()["success"], false, "{}", reply.body);
        assert!(reply.json()["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(web.get("/stats/requests").status, 200, "still serving");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn a_user_count_beyond_the_reserve_or_the_socket_budget_is_refused_with_the_reason() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "2", "-r", "50", "--autostart"]);
    web.wait_for(WAIT, |s| s["user_count"] == 2);
    let refused = web.post_form("/swarm", "user_count=4000000000&spawn_rate=1");
    assert_eq!(refused.status, 409, "{}", refused.body);
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("reserved"), "{message}");
    assert_eq!(web.post_form("/stop", "").status, 200);
    web.wait_for(WAIT, |s| s["state"] == "stopped");
    let too_many = web.post_form("/swarm", "user_count=4000000000&spawn_rate=1");
    assert_eq!(too_many.status, 409, "{}", too_many.body);
    let message = too_many.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("open-files limit"), "{message}");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn the_web_ui_off_loopback_without_auth_is_refused_in_one_line() {
    let out = common::mqblast_command(&["--web", "--web-host", "0.0.0.0", "-u", "1"])
        .output()
        .expect("mqblast runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--web-auth"), "{stderr}");
}

#[test]
fn with_auth_every_path_needs_it_and_the_password_never_shows() {
    let password = "pa55-secret-word";
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let args = [
        "-H",
        &host,
        "-u",
        "2",
        "-r",
        "50",
        "--password",
        password,
        "--username",
        "dev",
    ];
    let auth = format!("admin:{password}");
    let web = start_web_with_auth(&args, Some(&auth));
    let mut anonymous = common::web::WebRun {
        running: common::spawn(common::mqblast_command(&["--version"])),
        base: web.base.clone(),
        auth: None,
    };
    for path in ["/", "/stats/requests", "/metrics", "/ui/live"] {
        let reply = anonymous.get(path);
        assert_eq!(reply.status, 401, "{path}");
    }
    anonymous.auth = Some(format!("admin:wrong-{password}"));
    assert_eq!(anonymous.get("/stats/requests").status, 401);
    assert_eq!(
        web.post_form("/swarm", "user_count=2&spawn_rate=50").status,
        200
    );
    web.wait_for(WAIT, |s| s["user_count"] == 2);
    for path in [
        "/",
        "/stats/requests",
        "/metrics",
        "/ui/live",
        "/stats/result.json",
        "/stats/report",
    ] {
        let reply = web.get(path);
        assert_eq!(reply.status, 200, "{path}");
        assert!(!reply.body.contains(password), "{path} shows the password");
    }
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

/// One sample of the exposition format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A small parser of the Prometheus text format (0.0.4): `# HELP`/`# TYPE` lines, then
/// `name{label="value",...} number` samples with escaped label values. Panics on anything
/// else, so a malformed line fails the test.
fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind));
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => (
                name.to_string(),
                parse_labels(rest.strip_suffix('}').expect("}")),
            ),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| types.contains_key(*base))
            .unwrap_or(&name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        samples.push((name, labels, value));
    }
    (types, samples)
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value opens with a quote");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => match chars.next().expect("escape") {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name.trim().to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

#[test]
fn metrics_parse_as_prometheus_text_with_requests_users_latency_and_lag() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&[
        "-H",
        &host,
        "-u",
        "3",
        "-r",
        "50",
        "--interval",
        "100ms",
        "--autostart",
    ]);
    web.wait_for(WAIT, |s| {
        s["user_count"] == 3 && row_requests(s, "publish:") > 0
    });
    let metrics = web.get("/metrics");
    assert_eq!(metrics.status, 200);
    let (types, samples) = parse_prometheus(&metrics.body);
    let value = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.get(k).is_some_and(|x| x.starts_with(v)))
            })
            .map(|s| s.2)
    };
    assert_eq!(value("mqblast_connected_users", None), Some(3.0));
    assert_eq!(value("mqblast_target_users", None), Some(3.0));
    assert!(value("mqblast_requests_total", Some(("name", "publish:"))).unwrap() > 0.0);
    let kind_of = |name: &str| {
        let sample = samples
            .iter()
            .find(|(n, l, _)| n == "mqblast_requests_total" && l["name"] == name);
        sample.map(|(_, l, _)| l["kind"].clone())
    };
    assert_eq!(kind_of("connect").as_deref(), Some("request"));
    assert_eq!(kind_of("connection").as_deref(), Some("session"));
    assert_eq!(types["mqblast_publish_latency_seconds"], "summary");
    assert!(value(
        "mqblast_publish_latency_seconds",
        Some(("quantile", "0.99"))
    )
    .is_some());
    assert!(value("mqblast_schedule_lag_seconds_count", None).is_some());
    assert!(types.contains_key("mqblast_failures_by_reason_total"));
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn failures_by_reason_appear_in_metrics_with_escaped_labels() {
    let text = "# TYPE x counter\nx{reason=\"a \\\"quoted\\\" \\\\ reason\\n\"} 2\n";
    let (_, samples) = parse_prometheus(text);
    assert_eq!(samples[0].1["reason"], "a \"quoted\" \\ reason\n");
}

#[test]
fn autostart_runs_the_configured_test_and_autoquit_exits_after_it() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let dir = common::TempDir::new("web-autoquit");
    let json = dir.file("result.json");
    let port = common::free_port().to_string();
    let args = [
        "--web",
        "--web-port",
        &port,
        "--autostart",
        "--autoquit",
        "1",
        "-H",
        &host,
        "-u",
        "2",
        "-r",
        "50",
        "-t",
        "2s",
        "--interval",
        "100ms",
        "--only-summary",
        "--json",
        &json,
    ];
    let finished = common::spawn(common::mqblast_command(&args)).wait(WAIT);
    assert_eq!(finished.code, Some(0), "{}", finished.describe());
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the test's --json")).unwrap();
    assert_eq!(result["connect"]["ok"], 2);
    assert!(result["publish"]["ok"].as_u64() > Some(0));
}

/// The audit part of `/stats/result.json` now.
fn audit_now(web: &common::web::WebRun) -> serde_json::Value {
    web.get("/stats/result.json").json()["audit"].clone()
}

/// Poll `/stats/result.json` until its audit satisfies `done`.
fn wait_for_audit(
    web: &common::web::WebRun,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let audit = audit_now(web);
        if done(&audit) {
            return audit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit condition never held; last: {audit}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(audit: &serde_json::Value, key: &str) -> u64 {
    audit[key]
        .as_u64()
        .unwrap_or_else(|| panic!("audit.{key} missing: {audit}"))
}

/// `mqblast_audit_messages{kind="..."}` from `/metrics`.
fn metrics_audit(web: &common::web::WebRun, kind: &str) -> u64 {
    let (_, samples) = parse_prometheus(&web.get("/metrics").body);
    samples
        .iter()
        .find(|(name, labels, _)| {
            name == "mqblast_audit_messages" && labels.get("kind").map(String::as_str) == Some(kind)
        })
        .map(|(_, _, value)| *value as u64)
        .unwrap_or_else(|| panic!("no audit sample of kind {kind}"))
}

/// A web test with subscribers, publishing at QoS 1 until stopped.
fn start_audited(broker: &common::Mosquitto, users: &str, interval: &str) -> common::web::WebRun {
    let web = start_web(&[
        "-H",
        &broker.addr(),
        "-u",
        users,
        "-r",
        "100",
        "--interval",
        interval,
        "--qos",
        "1",
        "--sub-users",
        "2",
    ]);
    let started = web.post_form("/swarm", "run_time=");
    assert_eq!(started.status, 200, "{}", started.body);
    web
}

#[test]
fn the_delivery_audit_counts_live_while_running_and_end_at_the_final_verdict() {
    let broker = common::Mosquitto::start();
    let web = start_audited(&broker, "2", "50ms");
    let live = wait_for_audit(&web, |a| {
        a["verdict"] == "running" && a["delivered"].as_u64() > Some(0)
    });
    assert_eq!(count(&live, "subscribers"), 2);
    assert_eq!(count(&live, "lost"), 0, "nothing is lost while running");
    let later = wait_for_audit(&web, |a| {
        a["published"].as_u64() > live["published"].as_u64()
    });
    assert!(count(&later, "delivered") >= count(&live, "delivered"));
    assert!(metrics_audit(&web, "delivered") > 0, "/metrics has it live");
    let page = web.get("/ui/live").body;
    assert!(page.contains("Delivery audit so far"), "{page}");

    assert_eq!(web.post_form("/stop", "").status, 200);
    web.wait_for(WAIT, |s| s["state"] == "stopped");
    // The binary checks (debug build) that the counts it kept live equal the final ones;
    // here: the final verdict follows on from what was shown live.
    let last = audit_now(&web);
    assert_eq!(last["verdict"], "ok", "{last}");
    assert!(count(&last, "published") >= count(&later, "published"));
    assert_eq!(count(&last, "delivered"), count(&last, "expected"));
    assert_eq!(count(&last, "expected"), 2 * count(&last, "published"));
    assert_eq!(metrics_audit(&web, "delivered"), count(&last, "delivered"));
    assert_eq!(metrics_audit(&web, "published"), count(&last, "published"));
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn reset_stats_restarts_the_audit_and_messages_in_flight_at_the_reset_are_neither_lost_nor_doubled()
{
    let broker = common::Mosquitto::start();
    // 4 publishers every 5 ms at QoS 1: messages are always in flight at the reset.
    let web = start_audited(&broker, "4", "5ms");
    let before = wait_for_audit(&web, |a| a["published"].as_u64() >= Some(4_000));
    assert_eq!(web.post_form("/stats/reset", "").status, 200);
    let restarted = wait_for_audit(&web, |a| {
        a["published"].as_u64() < before["published"].as_u64()
    });
    assert_eq!(restarted["verdict"], "running");
    wait_for_audit(&web, |a| a["delivered"].as_u64() > Some(0));

    assert_eq!(web.post_form("/stop", "").status, 200);
    web.wait_for(WAIT, |s| s["state"] == "stopped");
    let last = audit_now(&web);
    assert_eq!(last["verdict"], "ok", "{last}");
    assert_eq!(count(&last, "lost"), 0);
    assert_eq!(count(&last, "duplicated"), 0);
    assert_eq!(count(&last, "delivered"), count(&last, "expected"));
    assert_eq!(count(&last, "expected"), 2 * count(&last, "published"));
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn a_web_test_under_mqtt5_records_what_the_broker_negotiated_like_a_headless_run() {
    let broker = common::Mosquitto::start();
    let web = start_web(&[
        "-H",
        &broker.addr(),
        "-u",
        "2",
        "--mqtt-version",
        "5",
        "--max-inflight",
        "7",
    ]);
    let started = web.post_form("/swarm", "run_time=2s");
    assert_eq!(started.status, 200, "{}", started.body);
    web.wait_for(WAIT, |s| s["state"] == "stopped");
    let result = web.get("/stats/result.json").json();
    let mqtt5 = &result["config"]["mqtt5"];
    assert_eq!(mqtt5["in_flight_window"], 7, "{result}");
    assert!(mqtt5.get("broker_receive_maximum").is_some(), "{mqtt5}");
    assert!(mqtt5["no_matching_subscribers"].is_u64(), "{mqtt5}");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

/// Send `request` on a fresh connection and read the reply to its end.
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the web UI");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).expect("send the request");
    read_reply(&mut stream)
}

fn read_reply(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// The JSON error at the end of a raw reply.
fn error_body(reply: &str) -> serde_json::Value {
    let (_, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no body: {reply:?}"));
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply:?}"));
    assert_eq!(json["success"], false, "{json}");
    json
}

#[test]
fn connections_beyond_the_handlers_and_queue_get_a_503_and_silent_clients_a_408() {
    let web = start_web(&["-u", "1"]);
    let addr = web.base.trim_start_matches("http://").to_string();
    // Every handler (4) and queue place (16) taken by clients that send nothing.
    let mut silent: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    // The server takes connections on its own thread: on a busy machine it may not have taken
    // all 20 yet, so a probe can still find a place (and wait there, silent too). Probe until
    // one is answered at once; a few extra places at most can be free.
    let mut busy = String::new();
    for _ in 0..10 {
        let mut probe = std::net::TcpStream::connect(&addr).expect("connect");
        probe
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut head = [0u8; 4096];
        match std::io::Read::read(&mut probe, &mut head) {
            Ok(n) if n > 0 => {
                busy = String::from_utf8_lossy(&head[..n]).into_owned();
                busy.push_str(&read_reply(&mut probe));
                break;
            }
            _ => silent.push(probe),
        }
    }
    assert!(busy.starts_with("HTTP/1.1 503 "), "{busy:?}");
    assert!(error_body(&busy)["message"]
        .as_str()
        .unwrap()
        .contains("busy"));
    // The ones a handler holds get 408 at the read timeout; the rest wait their turn.
    let late = read_reply(&mut silent[0]);
    assert!(late.starts_with("HTTP/1.1 408 "), "{late:?}");
    error_body(&late);
    silent.clear();
    // Freed: the server answers again, and refuses oversized and chunked requests by status.
    let web_ok = web.get("/stats/requests");
    assert_eq!(web_ok.status, 200, "{}", web_ok.body);
    let mut huge = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.resize(20 * 1024, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let too_large = raw_exchange(&addr, &huge);
    assert!(too_large.starts_with("HTTP/1.1 431 "), "{too_large:?}");
    error_body(&too_large);
    let chunked = raw_exchange(
        &addr,
        b"POST /swarm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 411 "), "{chunked:?}");
    let big_body = raw_exchange(
        &addr,
        b"POST /swarm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nuser_count=1",
    );
    assert!(big_body.starts_with("HTTP/1.1 413 "), "{big_body:?}");
    assert_eq!(web.get("/stats/requests").status, 200, "still serving");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn a_cross_site_form_a_rebound_host_or_a_text_plain_post_cannot_start_or_stop_load() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "2", "-r", "50"]);
    let form = "Content-Type: application/x-www-form-urlencoded";
    let swarm = "user_count=3&spawn_rate=50&host=127.0.0.1:1";
    // What another site's page can send through the user's browser: refused, nothing starts.
    let refused = [
        (
            415,
            web.request("POST", "/swarm", Some(swarm), &["Content-Type: text/plain"]),
        ),
        (415, web.post_json("/swarm", r#"{"user_count": 3}"#)),
        (
            403,
            web.request(
                "POST",
                "/swarm",
                Some(swarm),
                &[form, "Origin: http://attacker.example"],
            ),
        ),
        (
            403,
            web.request("POST", "/swarm", Some(swarm), &[form, "Origin: null"]),
        ),
        (
            403,
            web.request(
                "POST",
                "/swarm",
                Some(swarm),
                &[form, "Sec-Fetch-Site: cross-site"],
            ),
        ),
        (
            403,
            web.request(
                "POST",
                "/swarm",
                Some(swarm),
                &[form, "Host: rebound.attacker.example:8089"],
            ),
        ),
        (405, web.get("/stop")),
        (405, web.get("/stats/reset")),
    ];
    for (status, reply) in &refused {
        assert_eq!(reply.status, *status, "{}", reply.body);
        let message = reply.json()["message"].as_str().unwrap().to_string();
        assert!(!message.is_empty(), "{}", reply.body);
    }
    assert!(
        refused[2].1.body.contains("attacker.example"),
        "names the origin"
    );
    assert_eq!(web.get("/stats/requests").json()["state"], "ready");
    // DNS rebinding: a name that is not this server is refused on every path, reads too.
    for path in ["/", "/stats/requests", "/stats/result.json", "/metrics"] {
        let rebound = web.request("GET", path, None, &["Host: rebound.attacker.example:8089"]);
        assert_eq!(rebound.status, 403, "{path}: {}", rebound.body);
        assert!(
            rebound.body.contains("rebound.attacker.example"),
            "{}",
            rebound.body
        );
    }
    let localhost = web.request("GET", "/stats/requests", None, &["Host: localhost:1234"]);
    assert_eq!(
        localhost.status, 200,
        "localhost (an ssh tunnel's port) is this server"
    );

    // The page's own origin, or curl without one, still works.
    let origin = format!("Origin: {}", web.base);
    let started = web.request(
        "POST",
        "/swarm",
        Some("user_count=2&spawn_rate=50"),
        &[form, &origin, "Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(started.status, 200, "{}", started.body);
    web.wait_for(WAIT, |s| s["user_count"] == 2);
    let cross_stop = web.request(
        "POST",
        "/stop",
        Some(""),
        &[form, "Origin: http://x.example"],
    );
    assert_eq!(cross_stop.status, 403, "{}", cross_stop.body);
    let bare_stop = web.request("POST", "/stop", None, &[]);
    assert_eq!(
        bare_stop.status, 415,
        "a POST without a form: {}",
        bare_stop.body
    );
    assert!(web.get("/stats/requests").json()["state"] != "stopped");
    assert_eq!(web.post_form("/stop", "").status, 200);
    web.wait_for(WAIT, |s| s["state"] == "stopped");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn pages_cannot_be_framed_and_conflicting_content_lengths_are_refused() {
    let web = start_web(&["-u", "1"]);
    let addr = web.base.trim_start_matches("http://").to_string();
    let page = raw_exchange(
        &addr,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    assert!(page.starts_with("HTTP/1.1 200 "), "{page:?}");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("\r\ncontent-security-policy: frame-ancestors 'none'\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-frame-options: deny\r\n"), "{head}");
    let smuggled = raw_exchange(
        &addr,
        format!("POST /stop HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n").as_bytes(),
    );
    assert!(smuggled.starts_with("HTTP/1.1 400 "), "{smuggled:?}");
    assert!(error_body(&smuggled)["message"]
        .as_str()
        .unwrap()
        .contains("Content-Length"));
    let no_host = raw_exchange(&addr, b"GET /stats/requests HTTP/1.1\r\n\r\n");
    assert!(no_host.starts_with("HTTP/1.1 400 "), "{no_host:?}");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn the_basic_auth_scheme_is_matched_in_any_case() {
    let web = start_web_with_auth(&["-u", "1"], Some("admin:secret"));
    let token = "YWRtaW46c2VjcmV0"; // admin:secret
    let mut anonymous = common::web::WebRun {
        running: common::spawn(common::mqblast_command(&["--version"])),
        base: web.base.clone(),
        auth: None,
    };
    for scheme in ["basic", "BASIC", "Basic"] {
        let header = format!("Authorization: {scheme} {token}");
        let reply = anonymous.request("GET", "/stats/requests", None, &[&header]);
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
    }
    anonymous.auth = None;
    let wrong = anonymous.request(
        "GET",
        "/stats/requests",
        None,
        &["Authorization: basic YWRtaW46"],
    );
    assert_eq!(wrong.status, 401);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn raising_users_live_at_a_spawn_rate_too_slow_to_pace_is_refused_naming_it() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "2", "-r", "50", "--autostart"]);
    web.wait_for(WAIT, |s| s["user_count"] == 2);
    let slow = web.post_form("/swarm", "user_count=6&spawn_rate=1e-10");
    assert_eq!(slow.status, 400, "{}", slow.body);
    let message = slow.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("1e-10") && message.contains("0.001"),
        "{message}"
    );
    // Still paced as before, still 2 users, and the slowest accepted rate is taken.
    let stats = web.get("/stats/requests").json();
    assert_eq!(
        (
            stats["user_count"].as_u64(),
            stats["target_user_count"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let slowest = web.post_form("/swarm", "user_count=3&spawn_rate=0.001");
    assert_eq!(slowest.status, 200, "{}", slowest.body);
    // The first added user is due at once; the next would come 1,000 s later.
    web.wait_for(WAIT, |s| s["user_count"] == 3);
    assert_eq!(web.post_form("/stop", "").status, 200);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn a_prompt_client_behind_nineteen_stalled_ones_is_answered_within_the_read_timeout() {
    use std::io::Write;
    let web = start_web(&["-u", "1"]);
    let addr = web.base.trim_start_matches("http://").to_string();
    // Every handler (4) and all but one queue place (15) held by clients that send half a
    // head and stall. The four for the handlers first, so that the handlers have taken them
    // before the queue fills (a handler woken late would leave its client queued).
    let stall = || {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET /stats/requests HTTP/1.1\r\n").unwrap();
        s
    };
    let mut stalled: Vec<std::net::TcpStream> = (0..4).map(|_| stall()).collect();
    std::thread::sleep(Duration::from_millis(500));
    stalled.extend((0..15).map(|_| stall()));
    // On a busy machine a handler may still not have taken its client: then the queue is
    // full and the answer is 503 at once; ask again, timing the attempt that got a place.
    let request = format!("GET /stats/requests HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (prompt, waited) = (0..50)
        .map(|_| {
            let began = std::time::Instant::now();
            let reply = raw_exchange(&addr, request.as_bytes());
            if reply.starts_with("HTTP/1.1 503 ") {
                std::thread::sleep(Duration::from_millis(100));
            }
            (reply, began.elapsed())
        })
        .find(|(reply, _)| !reply.starts_with("HTTP/1.1 503 "))
        .expect("a place in the queue");
    assert!(prompt.starts_with("HTTP/1.1 200 "), "{prompt:?}");
    eprintln!(
        "answered after {waited:?} behind {} stalled clients",
        stalled.len()
    );
    // Deadlines count from each accept: the stalled ones expire together at the read timeout
    // (5 s), not in turns of four (which answered this one after 20 s). Bound with room for
    // a busy machine: under three read timeouts, far from four.
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");
    drop(stalled);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

/// The lines of `/logs` (Locust's `{"master": [...]}`).
fn log_lines(web: &common::web::WebRun) -> Vec<String> {
    let logs = web.get("/logs").json();
    logs["master"]
        .as_array()
        .unwrap_or_else(|| panic!("no master log: {logs}"))
        .iter()
        .map(|line| line.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn after_stop_the_users_and_the_report_header_keep_the_last_target_and_every_change_is_logged() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "3", "-r", "50", "--interval", "100ms"]);
    let started = web.post_form("/swarm", "user_count=3&spawn_rate=50&run_time=");
    assert_eq!(started.status, 200, "{}", started.body);
    web.wait_for(WAIT, |s| s["user_count"] == 3);
    assert_eq!(
        web.post_form("/swarm", "user_count=6&spawn_rate=50").status,
        200
    );
    web.wait_for(WAIT, |s| s["user_count"] == 6);
    let refused = web.post_form("/swarm", "user_count=999999999&spawn_rate=50");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(web.post_form("/stats/reset", "").status, 200);
    assert_eq!(web.post_form("/stop", "").status, 200);
    let stopped = web.wait_for(WAIT, |s| s["state"] == "stopped");

    assert_eq!(
        stopped["target_user_count"], 6,
        "the last target, not the 3 it started at"
    );
    let page = web.get("/");
    assert!(
        page.body.contains("id=\"user_count\" value=\"6\""),
        "the users field keeps 6"
    );
    let report = web.get("/stats/report");
    assert!(
        report.body.contains(" · 6 users · "),
        "the report header says 6 users"
    );
    let result = web.get("/stats/result.json").json();
    assert_eq!(result["users"], 6, "the test ended at 6 users");
    assert_eq!(result["config"]["users"], 3, "as configured at its start");

    let lines = log_lines(&web);
    let expected = [
        "test started: 3 users at 50/s",
        "users 3 -> 6 at 50/s",
        "users 999999999 refused: ",
        "statistics reset (Reset stats)",
        "test stopped (Stop) at 6 users",
        "test ended at 6 users",
    ];
    let mut at = 0;
    for needle in expected {
        let found = lines[at..]
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not logged in order: {lines:#?}"));
        assert!(lines[at + found].starts_with('['), "timestamped");
        at += found + 1;
    }
    web.running.signal(libc::SIGINT);
    let done = web.running.wait(WAIT);
    for needle in expected {
        assert!(
            done.stderr.contains(&format!("mqblast: web: {needle}")),
            "{needle:?} on the console:\n{}",
            done.stderr
        );
    }
}

#[test]
fn reset_stats_keeps_the_charts_history_of_the_running_test() {
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "2", "-r", "50", "--interval", "100ms"]);
    assert_eq!(
        web.post_form("/swarm", "user_count=2&run_time=").status,
        200
    );
    let seconds = |web: &common::web::WebRun| web.get("/ui/live").json()["chart_seconds"].as_u64();
    let deadline = std::time::Instant::now() + WAIT;
    while seconds(&web) < Some(3) {
        assert!(std::time::Instant::now() < deadline, "no 3 s of charts");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = seconds(&web).unwrap();
    assert_eq!(web.post_form("/stats/reset", "").status, 200);
    // The merger applies the reset within a second; the charts keep what they showed.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        let now = seconds(&web).unwrap();
        assert!(
            now >= before,
            "the charts lost their history: {now} < {before}"
        );
    }
    let stats = web.get("/stats/requests").json();
    assert!(
        row_requests(&stats, "connect") == 0,
        "the statistics themselves start over: {stats}"
    );
    assert_eq!(web.post_form("/stop", "").status, 200);
    web.wait_for(WAIT, |s| s["state"] == "stopped");
    assert!(seconds(&web).unwrap() > before, "kept after the stop too");
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn a_test_that_cannot_start_is_listed_in_exceptions_and_their_csv() {
    let web = start_web(&["-u", "1", "-r", "50"]);
    let empty = web.get("/exceptions/csv");
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, "Count,Message,Traceback,Nodes\r\n");
    let started = web.post_form("/swarm", "user_count=1&host=nonexistent.invalid:1883");
    assert_eq!(started.status, 200, "{}", started.body);
    let deadline = std::time::Instant::now() + WAIT;
    let exceptions = loop {
        let reply = web.get("/exceptions").json();
        if reply["exceptions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exception: {reply}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = &exceptions["exceptions"][0];
    assert_eq!(first["count"], 1);
    assert_eq!(first["nodes"], "local");
    let msg = first["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(
            "the test could not start: cannot resolve broker host nonexistent.invalid:1883"
        ),
        "{msg}"
    );
    let csv = web.get("/exceptions/csv").body;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("Count,Message,Traceback,Nodes"));
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with("1,") && row.ends_with(",local"), "{row}");
    assert_eq!(lines.next(), None, "one exception: {csv}");
    assert_eq!(web.get("/ui/live").json()["exception_count"], 1);
    assert!(log_lines(&web)
        .iter()
        .any(|l| l.contains("error: the test could not start")));
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}
