//! mqblast as the worker of a real Locust master (pinned Locust from PyPI, installed into a
//! virtualenv by scripts/test.sh), against mosquitto with an independent subscriber: what
//! Locust's CSV says was published equals what the workers counted and what the subscriber
//! received; the master's web API starts and stops tests on a worker; a worker finds a
//! restarted master again; and our bucket rule equals Locust's own function.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::web::{row_requests, WebRun};
use common::{free_port, mqblast_command, spawn, Mosquitto, Running, TempDir};

/// Lines a healthy master log never has (Locust's own warnings about its workers).
const MASTER_LOG_FORBIDDEN: &[&str] = &[
    "Traceback",
    "Uncaught exception",
    "Unhandled exception",
    "Unknown message type",
    "failed to send heartbeat",
    "Discarded report",
    "different version",
    "not all reports received",
    "old (pre 2.0)",
    "Unrecognized message",
];

fn venv() -> PathBuf {
    let venv = std::env::var_os("MQBLAST_LOCUST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/locust-venv"));
    assert!(
        venv.join("bin/locust").exists(),
        "no Locust in {} (scripts/test.sh installs the pinned version there)",
        venv.display()
    );
    venv
}

fn master_file() -> String {
    format!(
        "{}/scripts/locust/mqblast_master.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn locust(dir: &TempDir, args: &[&str]) -> Running {
    locust_with(dir, &master_file(), args)
}

fn locust_with(dir: &TempDir, locustfile: &str, args: &[&str]) -> Running {
    let mut cmd = Command::new(venv().join("bin/locust"));
    cmd.args(["-f", locustfile])
        .args(args)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    spawn(cmd)
}

/// A headless master: (expected workers, users, spawn rate, run time s), its CSVs and log.
#[allow(clippy::too_many_arguments)]
fn headless_master(
    dir: &TempDir,
    locustfile: &str,
    port: u16,
    (workers, users, rate, run_time_s): (u32, u32, u32, u32),
    host: &str,
    csv_prefix: &str,
    log: &str,
    extra: &[&str],
) -> Running {
    let (port, workers, users, rate) = (
        port.to_string(),
        workers.to_string(),
        users.to_string(),
        rate.to_string(),
    );
    let run_time = format!("{run_time_s}s");
    let mut args = vec![
        "--master",
        "--headless",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        &port,
        "--expect-workers",
        &workers,
        "--expect-workers-max-wait",
        "60",
        "-u",
        &users,
        "-r",
        &rate,
        "-t",
        &run_time,
        "-H",
        host,
        "--csv",
        csv_prefix,
        "--loglevel",
        "DEBUG",
        "--logfile",
        log,
    ];
    args.extend_from_slice(extra);
    locust_with(dir, locustfile, &args)
}

fn worker(master_port: u16, json: &str) -> Running {
    let port = master_port.to_string();
    spawn(mqblast_command(&[
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        &port,
        "--only-summary",
        "--json",
        json,
    ]))
}

/// Publish requests in a worker's own result file.
fn worker_publishes(json: &str) -> u64 {
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("worker JSON");
    doc["publish"]["requests"]
        .as_u64()
        .expect("publish.requests")
}

fn wait_for_file(path: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::fs::read_to_string(path).map_or(true, |t| {
        serde_json::from_str::<serde_json::Value>(&t).is_err()
    }) {
        assert!(Instant::now() < deadline, "{path} was never written");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (header, rows) of a CSV without quoted commas (Locust's stats files).
fn csv(path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines().map(|l| {
        l.split(',')
            .map(|c| c.trim_matches('"').to_string())
            .collect::<Vec<_>>()
    });
    let header = lines.next().expect("a header");
    (header, lines.collect())
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}: {header:?}"))
}

fn assert_clean_master_log(log: &str) {
    for bad in MASTER_LOG_FORBIDDEN {
        assert!(!log.contains(bad), "the master logged {bad:?}:\n{log}");
    }
}

#[test]
fn a_headless_master_with_two_workers_reports_every_message_the_subscriber_received() {
    let broker = Mosquitto::start();
    let subscriber = broker.subscribe("lw/#", 1);
    let dir = TempDir::new("locust-headless");
    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    let master = headless_master(
        &dir,
        &master_file(),
        port,
        (2, 20, 10, 15),
        &host,
        &csv_prefix,
        &log,
        &["--mqtt-topic", "lw/{i}", "--mqtt-interval", "200ms"],
    );
    let jsons = [dir.file("w1.json"), dir.file("w2.json")];
    let workers: Vec<Running> = jsons.iter().map(|json| worker(port, json)).collect();
    let master = master.wait(Duration::from_secs(120));
    master.assert_code(0);
    for worker in workers {
        worker.wait(Duration::from_secs(60)).assert_code(0);
    }
    let published: u64 = jsons.iter().map(|j| worker_publishes(j)).sum();
    assert!(published > 0, "the workers published nothing");
    let received = subscriber.settle(Duration::from_secs(1), Duration::from_secs(20));

    let (header, rows) = csv(&format!("{csv_prefix}_stats.csv"));
    let (name, count, fails) = (
        column(&header, "Name"),
        column(&header, "Request Count"),
        column(&header, "Failure Count"),
    );
    let publish = rows
        .iter()
        .find(|r| r[name].starts_with("publish:1:lw/"))
        .expect("a publish row");
    assert_eq!(
        publish[count].parse::<u64>().unwrap(),
        published,
        "Locust's CSV vs the workers"
    );
    assert_eq!(publish[fails], "0");
    assert_eq!(received, published, "the subscriber vs the workers");
    let total = rows
        .iter()
        .find(|r| r[name] == "Aggregated")
        .expect("an Aggregated row");
    // Aggregated adds the request rows (Type MQTT); the sessions (`MQTT session`) and any
    // connect phases (`MQTT part`) are listed apart, outside it.
    let kind = column(&header, "Type");
    let requests: Vec<&Vec<String>> = rows.iter().filter(|r| r[kind] == "MQTT").collect();
    let names: Vec<&str> = requests.iter().map(|r| r[name].as_str()).collect();
    assert!(
        names
            .iter()
            .all(|n| *n == "connect" || n.starts_with("publish:")),
        "request rows: {names:?}"
    );
    for apart in rows
        .iter()
        .filter(|r| r[kind] != "MQTT" && r[name] != "Aggregated")
    {
        assert!(
            ["MQTT session", "MQTT part"].contains(&apart[kind].as_str()),
            "{apart:?}"
        );
    }
    let rows_sum: u64 = requests
        .iter()
        .map(|r| r[count].parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        total[count].parse::<u64>().unwrap(),
        rows_sum,
        "Aggregated is the sum of the request rows"
    );

    let (header, history) = csv(&format!("{csv_prefix}_stats_history.csv"));
    let users = column(&header, "User Count");
    assert!(
        history.iter().any(|r| r[users] == "20"),
        "the master never saw 20 users"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("All users spawned") && log.contains("(20 total users)"),
        "{log}"
    );
    assert_clean_master_log(&log);
}

#[test]
fn a_workers_streams_are_rows_of_the_masters_csv_with_their_counts() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-streams");
    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    let master = headless_master(
        &dir,
        &master_file(),
        port,
        (1, 4, 10, 6),
        &host,
        &csv_prefix,
        &log,
        &[],
    );
    let json = dir.file("w.json");
    let streams = [
        "--stream",
        "telemetry,interval=200ms",
        "--stream",
        "attributes,interval=500ms,qos=0",
    ];
    let worker = worker_with(port, &json, &streams);
    master.wait(Duration::from_secs(120)).assert_code(0);
    worker.wait(Duration::from_secs(60)).assert_code(0);

    let text = std::fs::read_to_string(&json).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (header, rows) = csv(&format!("{csv_prefix}_stats.csv"));
    let (name, count, kind) = (
        column(&header, "Name"),
        column(&header, "Request Count"),
        column(&header, "Type"),
    );
    let rows_of_master: Vec<(&str, u64)> = rows
        .iter()
        .filter(|r| r[kind] == "MQTT" && r[name] != "connect")
        .map(|r| (r[name].as_str(), r[count].parse().unwrap()))
        .collect();
    let rows_of_worker: Vec<(&str, u64)> = doc["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap(),
                row["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows_of_worker.len(), 2, "{rows_of_worker:?}");
    assert!(
        rows_of_worker.iter().all(|(_, n)| *n > 0),
        "{rows_of_worker:?}"
    );
    // Locust sorts its rows by name: attributes, then telemetry.
    let mut expected = rows_of_worker.clone();
    expected.sort();
    assert_eq!(
        rows_of_master, expected,
        "the master's rows vs the worker's"
    );
    assert_clean_master_log(&std::fs::read_to_string(&log).unwrap());
}

/// A gateway's device points have no field in Locust's entries: they are an entry of their
/// own (Type `MQTT points`, the row's name) beside the row's messages, outside Aggregated.
#[test]
fn a_gateways_device_points_are_a_row_of_the_masters_csv_beside_its_messages() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-gateway-points");
    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    let master = headless_master(
        &dir,
        &master_file(),
        port,
        (1, 2, 10, 6),
        &host,
        &csv_prefix,
        &log,
        &[],
    );
    let json = dir.file("w.json");
    let gateway = [
        "--gateway",
        "--devices-per-gateway",
        "5",
        "--gateway-mode",
        "batched",
        "--interval",
        "200ms",
    ];
    let worker = worker_with(port, &json, &gateway);
    master.wait(Duration::from_secs(120)).assert_code(0);
    worker.wait(Duration::from_secs(60)).assert_code(0);

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let telemetry = doc["streams"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "gateway telemetry"))
        .unwrap_or_else(|| panic!("no gateway telemetry row: {doc}"));
    let (messages, points) = (
        telemetry["requests"].as_u64().unwrap(),
        telemetry["points"].as_u64().unwrap(),
    );
    assert!(points > messages, "batched: several points a message");

    let (header, rows) = csv(&format!("{csv_prefix}_stats.csv"));
    let (name, count, kind) = (
        column(&header, "Name"),
        column(&header, "Request Count"),
        column(&header, "Type"),
    );
    let count_of = |want_kind: &str, want_name: &str| {
        rows.iter()
            .find(|r| r[kind] == want_kind && r[name] == want_name)
            .map(|r| r[count].parse::<u64>().unwrap())
    };
    assert_eq!(count_of("MQTT", "gateway telemetry"), Some(messages));
    assert_eq!(count_of("MQTT points", "gateway telemetry"), Some(points));
    assert_eq!(count_of("MQTT points", "gateway connect"), None);
    let requests: u64 = rows
        .iter()
        .filter(|r| r[kind] == "MQTT")
        .map(|r| r[count].parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        count_of("", "Aggregated"),
        Some(requests),
        "Aggregated adds the messages, not the points"
    );
    assert_clean_master_log(&std::fs::read_to_string(&log).unwrap());
}

/// A preset is not a file: a master's `--mqtt-payload industrial-plc --mqtt-datapoints 7`
/// becomes the worker's payload (a path would be refused, see below).
#[test]
fn a_master_chooses_a_payload_preset_and_its_data_points_for_its_workers() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-preset");
    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    let master = headless_master(
        &dir,
        &master_file(),
        port,
        (1, 2, 10, 5),
        &host,
        &csv_prefix,
        &log,
        &["--mqtt-payload", "industrial-plc", "--mqtt-datapoints", "7"],
    );
    let json = dir.file("w.json");
    let worker = worker(port, &json).wait(Duration::from_secs(90));
    master.wait(Duration::from_secs(120)).assert_code(0);
    worker.assert_code(0);
    assert!(
        !worker.stderr.contains("ignored the master's"),
        "{}",
        worker.describe()
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["config"]["payload"], "industrial-plc");
    assert_eq!(doc["config"]["datapoints"], 7);
    assert!(worker_publishes(&json) > 0);
    assert_clean_master_log(&std::fs::read_to_string(&log).unwrap());
}

#[test]
fn the_masters_web_api_starts_and_stops_tests_and_a_restarted_master_is_found_again() {
    let broker = Mosquitto::start();
    let subscriber = broker.subscribe("lw2/#", 1);
    let dir = TempDir::new("locust-web");
    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let json = dir.file("w.json");
    let start_master = |log: &str| {
        let web_port = free_port();
        let running = locust(
            &dir,
            &[
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                &port.to_string(),
                "--web-host",
                "127.0.0.1",
                "--web-port",
                &web_port.to_string(),
                "-H",
                &host,
                "--mqtt-topic",
                "lw2/{i}",
                "--mqtt-interval",
                "200ms",
                "--loglevel",
                "DEBUG",
                "--logfile",
                log,
            ],
        );
        let web = WebRun {
            running,
            base: format!("http://127.0.0.1:{web_port}"),
            auth: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while web.get("/stats/requests").status != 200 {
            assert!(
                Instant::now() < deadline,
                "the master's web UI never answered"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        web
    };
    let first_log = dir.file("master1.log");
    let web = start_master(&first_log);
    let worker = worker(port, &json);
    let swarm_and_stop = |web: &WebRun, users: u64| -> u64 {
        web.wait_for(Duration::from_secs(60), |s| {
            s["worker_count"] == 1 && s["workers"][0]["state"] == "ready"
        });
        let form = format!("user_count={users}&spawn_rate={users}&host={host}");
        assert_eq!(web.post_form("/swarm", &form).status, 200);
        web.wait_for(Duration::from_secs(60), |s| {
            s["user_count"] == users && row_requests(s, "publish") > 0
        });
        let _ = std::fs::remove_file(&json);
        assert_eq!(web.post_form("/stop", "").status, 200);
        // stop -> final stats -> client_stopped -> client_ready: ready again means every
        // report of the test has reached the master.
        let stats = web.wait_for(Duration::from_secs(60), |s| {
            s["worker_count"] == 1 && s["workers"][0]["state"] == "ready" && s["state"] == "stopped"
        });
        wait_for_file(&json, Duration::from_secs(30));
        let master_count = row_requests(&stats, "publish");
        assert_eq!(
            master_count,
            worker_publishes(&json),
            "the master vs the worker"
        );
        master_count
    };
    let first = swarm_and_stop(&web, 6);
    assert_eq!(
        subscriber.settle(Duration::from_secs(1), Duration::from_secs(20)),
        first
    );
    assert_clean_master_log(&std::fs::read_to_string(&first_log).unwrap());

    // The master dies without a word; a new one comes up on the same port.
    web.running.signal(libc::SIGKILL);
    drop(web);
    let second_log = dir.file("master2.log");
    let web = start_master(&second_log);
    let second = swarm_and_stop(&web, 4);
    assert_eq!(
        subscriber.settle(Duration::from_secs(1), Duration::from_secs(20)),
        first + second
    );

    // SIGTERM: the master quits its workers, which leave with exit 0.
    web.running.signal(libc::SIGTERM);
    worker.wait(Duration::from_secs(60)).assert_code(0);
    let WebRun { running, .. } = web;
    running.wait(Duration::from_secs(60)).assert_code(0);
    assert_clean_master_log(&std::fs::read_to_string(&second_log).unwrap());
}

/// Our integer bucket rule against `locust.stats.bucket_response_time` itself, on every tie
/// point of every branch (and one microsecond either side) and a spread of other values.
#[test]
fn buckets_equal_locusts_own_function() {
    let mut values: Vec<u64> = Vec::new();
    let ties = (0..100u64)
        .map(|k| k * 1_000 + 500)
        .chain((10..100).map(|k| k * 10_000 + 5_000))
        .chain((10..100).map(|k| k * 100_000 + 50_000))
        .chain((10..200).map(|k| k * 1_000_000 + 500_000));
    for tie in ties {
        values.extend([tie.saturating_sub(1), tie, tie + 1]);
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..5_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push((x % 200_000_000) >> (x % 20));
    }
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let script = "import sys\nfrom locust.stats import bucket_response_time as b\nfor line in sys.stdin:\n    print(int(b(int(line) / 1000)))\n";
    let mut child = Command::new(venv().join("bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(theirs.len(), values.len());
    for (us, expected) in values.iter().zip(theirs) {
        assert_eq!(mqblast::locust::bucket::bucket_ms(*us), expected, "{us} us");
    }
}

/// A master that misbehaves (pyzmq's ROUTER, from the Locust virtualenv): bytes that are not
/// MessagePack, an unknown message type, a spawn without user counts, a spawn older than the
/// last; then `reconnect`, and more users than a process can hold (an `exception` to the master). The worker logs and ignores each, comes back with the same identity,
/// keeps heartbeating, and leaves cleanly on `quit`.
#[test]
fn a_misbehaving_master_is_logged_and_survived() {
    let port = free_port();
    let script = r#"
import sys, time, zmq, msgpack
port = int(sys.argv[1])
sock = zmq.Context().socket(zmq.ROUTER)
sock.bind(f"tcp://127.0.0.1:{port}")
sock.RCVTIMEO = 30000
def recv():
    ident, payload = sock.recv_multipart()[:2]
    kind, data, node = msgpack.loads(payload, raw=False, strict_map_key=False)
    print("got", kind, flush=True)
    return ident, kind, data, node
def send(ident, kind, data, node):
    sock.send_multipart([ident, msgpack.dumps((kind, data, node))])
ident, kind, data, node = recv()
assert kind == "client_ready" and data == -1 and ident.decode() == node, (kind, data)
sock.send_multipart([ident, b"\xc1\x00garbage"])
send(ident, "weird", None, node)
send(ident, "ack", {"index": 0}, node)
send(ident, "spawn", {"timestamp": 5.0, "host": None}, node)
send(ident, "spawn", {"timestamp": 1.0, "user_classes_count": {"A": 1}}, node)
send(ident, "reconnect", None, node)
# A master busy elsewhere for a moment: it sees the new connection before the old one's end,
# which parks the new one (the worker must notice and connect again).
time.sleep(0.5)
while True:
    ident, kind, data, node = recv()
    if kind == "heartbeat":
        send(ident, "heartbeat", None, node)
        break
send(ident, "spawn", {"timestamp": 7.0, "user_classes_count": {"A": 10000000}, "host": None}, node)
deadline = time.time() + 20
states = []
exceptions = []
while time.time() < deadline and (len(states) < 3 or not exceptions):
    ident, kind, data, node = recv()
    if kind == "exception":
        exceptions.append(data["msg"])
    if kind == "heartbeat":
        states.append(data["state"])
        send(ident, "heartbeat", None, node)
print("states", states[-3:], flush=True)
print("exceptions", exceptions, flush=True)
send(ident, "quit", None, node)
while True:
    ident, kind, data, node = recv()
    if kind == "quit":
        break
print("worker quit", flush=True)
"#;
    let mut master = Command::new(venv().join("bin/python"));
    master
        .args(["-c", script, &port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let master = spawn(master);
    let dir = TempDir::new("locust-hostile");
    let worker = worker(port, &dir.file("w.json")).wait(Duration::from_secs(60));
    let master = master.wait(Duration::from_secs(60));
    master.assert_code(0);
    // A test it could not run makes the worker's exit code 1.
    worker.assert_code(1);
    assert!(
        master.stdout.contains("10000000 users do not fit"),
        "{}",
        master.describe()
    );
    assert!(
        master.stdout.contains("states ['ready', 'ready', 'ready']"),
        "{}",
        master.describe()
    );
    assert!(
        master.stdout.contains("worker quit"),
        "{}",
        master.describe()
    );
    for needle in [
        "not Locust's",
        "unknown type `weird`",
        "without user_classes_count",
        "older than the last",
    ] {
        assert!(
            worker.stderr.contains(needle),
            "{needle}:\n{}",
            worker.describe()
        );
    }
}

/// The old script's own project as the master's locustfile (`mqtt.py`, class `MQTTLocust`,
/// its pyproject.toml next to it), and a worker whose config.toml `init --from-locust` wrote
/// from the same project: the master sees its class's users, and its counts are the worker's.
#[test]
fn the_old_scripts_own_locustfile_drives_an_mqblast_worker() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-old-script");
    let fixtures = format!(
        "{}/tests/fixtures/locust_project",
        env!("CARGO_MANIFEST_DIR")
    );
    for name in ["mqtt.py", "config.py", "data.json", "pyproject.toml"] {
        std::fs::copy(format!("{fixtures}/{name}"), dir.path().join(name)).expect("fixture copied");
    }
    let init = mqblast_command(&["init", "--from-locust"]);
    let mut init = init;
    init.current_dir(dir.path());
    spawn(init).wait(Duration::from_secs(30)).assert_code(0);

    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    let master = headless_master(
        &dir,
        "mqtt.py",
        port,
        (1, 6, 6, 10),
        &host,
        &csv_prefix,
        &log,
        &[],
    );
    let json = dir.file("w.json");
    let mut cmd = mqblast_command(&[
        "--worker",
        "--master-port",
        &port.to_string(),
        "--interval",
        "500ms",
        "--json",
        &json,
    ]);
    cmd.current_dir(dir.path());
    let worker = spawn(cmd);
    master.wait(Duration::from_secs(120)).assert_code(0);
    let worker = worker.wait(Duration::from_secs(60));
    worker.assert_code(0);
    let (header, rows) = csv(&format!("{csv_prefix}_stats.csv"));
    let (name, count) = (column(&header, "Name"), column(&header, "Request Count"));
    let publish = rows
        .iter()
        .find(|r| r[name].starts_with("publish:"))
        .expect("a publish row");
    let published = worker_publishes(&json);
    assert!(published > 0);
    assert_eq!(publish[count].parse::<u64>().unwrap(), published);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains(r#"All users spawned: {"MQTTLocust": 6} (6 total users)"#),
        "{log}"
    );
    assert_clean_master_log(&log);
    // The worker used the old script's device tokens (from config.toml's tokens file).
    assert!(broker.log().contains("DW00000001"), "{}", broker.log());
}

/// What every scripted master below starts with: pyzmq's ROUTER (from the Locust virtualenv)
/// on `sys.argv[1]`, the worker's `client_ready` answered with `ack`, and helpers: `send`,
/// `recv`, `wait_for(pred)` (answers heartbeats, prints exceptions, until a message matches),
/// `published` (a predicate: a stats report with a publish in it) and `beats(seconds)` (the
/// heartbeat states and stops seen meanwhile).
const SCRIPTED_MASTER_PRELUDE: &str = r#"
import sys, time, zmq, msgpack
port = int(sys.argv[1])
sock = zmq.Context().socket(zmq.ROUTER)
sock.SNDHWM = 0
sock.bind(f"tcp://127.0.0.1:{port}")
sock.RCVTIMEO = 20000
def recv():
    ident, payload = sock.recv_multipart()[:2]
    kind, data, node = msgpack.loads(payload, raw=False, strict_map_key=False)
    return ident, kind, data, node
def send(kind, data):
    sock.send_multipart([ident, msgpack.dumps((kind, data, node))])
def wait_for(pred, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        _, kind, data, _ = recv()
        if kind == "heartbeat":
            send("heartbeat", None)
        if kind == "exception":
            print("exception", data["msg"], flush=True)
        if pred(kind, data):
            return data
    raise SystemExit(f"timed out after {limit} s")
def beats(seconds):
    seen = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        _, kind, data, _ = recv()
        if kind == "heartbeat":
            seen.append(data["state"])
            send("heartbeat", None)
        if kind in ("client_stopped", "client_ready"):
            seen.append(kind)
    return seen
def published(kind, data):
    """A stats report with a publish in it: the test's load really ran (on a loaded machine
    the first connect may come seconds after the state turned "running")."""
    return kind == "stats" and any(
        e["name"].startswith("publish") and e["num_requests"] > 0 for e in data["stats"])
def leave():
    send("quit", None)
    wait_for(lambda k, d: k == "quit")
    print("worker quit", flush=True)
ident, kind, data, node = recv()
assert kind == "client_ready", kind
send("ack", {"index": 0})
"#;

/// A master that sends what a real Locust master cannot be made to send: `body` after the
/// prelude above, with `sys.argv[2]` as `host`.
fn scripted_master(port: u16, host: &str, body: &str) -> Running {
    let script = format!("{SCRIPTED_MASTER_PRELUDE}host = sys.argv[2]\n{body}");
    let mut master = Command::new(venv().join("bin/python"));
    master
        .args(["-c", &script, &port.to_string(), host])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    spawn(master)
}

fn worker_with(master_port: u16, json: &str, extra: &[&str]) -> Running {
    let port = master_port.to_string();
    let mut args = vec![
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        &port,
        "--only-summary",
        "--json",
        json,
    ];
    args.extend_from_slice(extra);
    spawn(mqblast_command(&args))
}

/// `1e300` overflowed the conversion to a Duration and `1e19` the deadline (`Instant +
/// Duration`): the protocol thread panicked while the load it had started went on, deaf to
/// `stop` and `quit`. Now each test runs until the master stops it, and the worker leaves on
/// `quit`.
#[test]
fn spawn_with_huge_run_time_does_not_panic_the_worker() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-huge-run-time");
    let port = free_port();
    let body = r#"
for ts, run_time in ((1.0, 1e300), (2.0, 1e19)):
    send("spawn", {"timestamp": ts, "user_classes_count": {"A": 2}, "host": host,
        "stop_timeout": None, "parsed_options": {"headless": True, "run_time": run_time,
        "mqtt_topic": "hr/{i}", "mqtt_interval": "200ms"}})
    wait_for(lambda k, d: k == "heartbeat" and d["state"] == "running")
    wait_for(published)
    send("stop", None)
    wait_for(lambda k, d: k == "client_stopped")
    wait_for(lambda k, d: k == "client_ready")
    send("ack", {"index": 0})
    print("stopped", run_time, flush=True)
leave()
"#;
    let master = scripted_master(port, &format!("mqtt://{}", broker.addr()), body);
    let worker = worker(port, &dir.file("w.json")).wait(Duration::from_secs(90));
    let master = master.wait(Duration::from_secs(90));
    master.assert_code(0);
    worker.assert_code(0);
    for needle in ["stopped 1e+300", "stopped 1e+19", "worker quit"] {
        assert!(
            master.stdout.contains(needle),
            "{needle}:\n{}",
            master.describe()
        );
    }
    assert!(
        worker.stderr.contains("longer than this worker can time"),
        "{}",
        worker.describe()
    );
}

/// `parsed_options` naming `mqtt_tokens_file` or `mqtt_payload` made the worker read that
/// file (`/etc/passwd` lines went out as MQTT user names). Now the worker's own files are
/// used and the master's are named as ignored.
#[test]
fn a_master_cannot_make_the_worker_read_local_files() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-local-files");
    let tokens = dir.write("secret.tokens", "SECRETTOKEN1\nSECRETTOKEN2\n");
    let payload = dir.write("secret.json", "{\"secret_field\": 42}\n");
    let port = free_port();
    let body = format!(
        r#"
send("spawn", {{"timestamp": 1.0, "user_classes_count": {{"A": 2}}, "host": host,
    "parsed_options": {{"mqtt_tokens_file": "{tokens}", "mqtt_payload": "{payload}",
    "mqtt_topic": "lf/{{i}}", "mqtt_interval": "200ms"}}}})
wait_for(lambda k, d: k == "heartbeat" and d["state"] == "running")
wait_for(published)
send("stop", None)
wait_for(lambda k, d: k == "client_stopped")
leave()
"#
    );
    let master = scripted_master(port, &format!("mqtt://{}", broker.addr()), &body);
    let json = dir.file("w.json");
    let worker = worker(port, &json).wait(Duration::from_secs(90));
    let master = master.wait(Duration::from_secs(90));
    master.assert_code(0);
    worker.assert_code(0);
    for key in ["mqtt_tokens_file", "mqtt_payload"] {
        assert!(
            worker
                .stderr
                .contains(&format!("ignored the master's {key}")),
            "{key}:\n{}",
            worker.describe()
        );
    }
    assert!(worker_publishes(&json) > 0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["config"]["tokens_file"], serde_json::Value::Null);
    assert_ne!(doc["config"]["payload"], serde_json::json!(payload));
    assert!(!broker.log().contains("SECRETTOKEN"), "{}", broker.log());
}

/// Class counts that summed past 2^64 wrapped (a panic in a debug build), a NaN timestamp
/// turned the stale-spawn check off for good, and a worker index near 2^64 overflowed the
/// client ids. Each is refused, said, and the worker stays ready.
#[test]
fn hostile_spawn_numbers_are_refused_not_wrapped() {
    let port = free_port();
    let body = r#"
def spawn(ts, classes):
    send("spawn", {"timestamp": ts, "user_classes_count": classes, "host": None})
spawn(5.0, {"A": 0})
wait_for(lambda k, d: k == "spawning_complete")
spawn(float("nan"), {"A": 0})
spawn(1.0, {"A": 0})
spawn(6.0, {"A": 2**63, "B": 2**63, "C": 5})
wait_for(lambda k, d: k == "exception")
send("ack", {"index": 2**64 - 1})
spawn(7.0, {"A": 1})
wait_for(lambda k, d: k == "exception")
print("states", beats(3.5), flush=True)
leave()
"#;
    let master = scripted_master(port, "", body);
    let dir = TempDir::new("locust-hostile-numbers");
    let worker = worker(port, &dir.file("w.json")).wait(Duration::from_secs(60));
    let master = master.wait(Duration::from_secs(60));
    master.assert_code(0);
    worker.assert_code(0);
    for needle in [
        "users refused (the class counts add up to more than 2^64)",
        "numbered this worker 18446744073709551615",
        "worker quit",
    ] {
        assert!(
            master.stdout.contains(needle),
            "{needle}:\n{}",
            master.describe()
        );
    }
    let states = master
        .stdout
        .lines()
        .find(|l| l.starts_with("states"))
        .expect("states");
    assert!(
        states.contains("'ready'") && !states.contains("running") && !states.contains("spawning"),
        "{states}"
    );
    for needle in ["timestamp is not a finite number", "older than the last"] {
        assert!(
            worker.stderr.contains(needle),
            "{needle}:\n{}",
            worker.describe()
        );
    }
}

/// 30,000 distinct unknown message types cost 18 s of CPU and 62 MB of log (a seen-list
/// searched linearly, one line each), terminal escape codes printed raw. Now a few are named,
/// escaped, then they are only counted.
#[test]
fn thirty_thousand_unknown_message_types_are_counted_not_logged() {
    let port = free_port();
    let body = r#"
for n in range(30000):
    send(f"\x1b[31mkind{n}", None)
send("spawn", {"timestamp": 1.0, "user_classes_count": {"A": 0}, "host": None})
wait_for(lambda k, d: k == "spawning_complete")
leave()
"#;
    let master = scripted_master(port, "", body);
    let dir = TempDir::new("locust-unknown-types");
    let worker = worker(port, &dir.file("w.json")).wait(Duration::from_secs(90));
    let master = master.wait(Duration::from_secs(90));
    master.assert_code(0);
    worker.assert_code(0);
    let named = worker
        .stderr
        .lines()
        .filter(|l| l.contains("of unknown type `"))
        .count();
    assert!(
        (1..=16).contains(&named),
        "{named} named:\n{}",
        worker.describe()
    );
    assert!(!worker.stderr.contains('\x1b'), "{}", worker.describe());
    assert!(
        worker.stderr.contains("\\u{1b}[31mkind0"),
        "{}",
        worker.describe()
    );
    for needle in [
        "further unknown types are counted, not logged",
        "ignored 30000 message(s) of unknown type",
    ] {
        assert!(
            worker.stderr.contains(needle),
            "{needle}:\n{}",
            worker.describe()
        );
    }
}

/// Under a master, the worker's own run time (copied from pyproject.toml, say) ended a test the
/// master had started from its web UI: the master showed 0 users and "running". The master owns
/// the run time: the worker's is ignored with a note, and the test runs until the master's stop.
#[test]
fn a_workers_own_run_time_does_not_end_the_masters_test() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-worker-run-time");
    let port = free_port();
    let body = r#"
send("spawn", {"timestamp": 1.0, "user_classes_count": {"A": 2}, "host": host,
    "parsed_options": {"headless": False, "mqtt_topic": "rt/{i}", "mqtt_interval": "200ms"}})
wait_for(lambda k, d: k == "heartbeat" and d["state"] == "running")
print("states", beats(5), flush=True)
send("stop", None)
wait_for(lambda k, d: k == "client_stopped")
leave()
"#;
    let master = scripted_master(port, &format!("mqtt://{}", broker.addr()), body);
    let worker =
        worker_with(port, &dir.file("w.json"), &["--run-time", "2s"]).wait(Duration::from_secs(90));
    let master = master.wait(Duration::from_secs(90));
    master.assert_code(0);
    worker.assert_code(0);
    let states = master
        .stdout
        .lines()
        .find(|l| l.starts_with("states"))
        .expect("states");
    assert!(
        states.contains("'running'") && !states.contains("ready") && !states.contains("stopped"),
        "{states}\n{}",
        worker.describe()
    );
    assert!(
        worker
            .stderr
            .contains("--run-time 2s: ignored under --worker"),
        "{}",
        worker.describe()
    );
}

/// (client id, user name) of every client mosquitto saw connect:
/// `New client connected from ... as mqblast-3 (p2, c1, k60, u'DW00000004').`
fn connected_clients(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter(|line| line.contains("New client connected"))
        .filter_map(|line| {
            let id = line.split(" as ").nth(1)?.split(' ').next()?;
            let user = line.split("u'").nth(1)?.split('\'').next()?;
            Some((id.to_string(), user.to_string()))
        })
        .collect()
}

/// A headless master running `USERS` users over two mqblast workers given `tokens` flags, for
/// ten seconds; returns what the workers printed and the (client id, user name) of every
/// client the broker saw connect.
fn two_workers_with_tokens(dir: &TempDir, tokens: &[&str]) -> (String, Vec<(String, String)>) {
    let broker = Mosquitto::start();
    let port = free_port();
    let host = format!("mqtt://{}", broker.addr());
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    // A ramp of several spawn messages (5 users/s): the split does not depend on the count
    // of a worker's first spawn.
    let master = headless_master(
        dir,
        &master_file(),
        port,
        (2, USERS, 5, 10),
        &host,
        &csv_prefix,
        &log,
        &["--mqtt-topic", "ld/{i}", "--mqtt-interval", "1s"],
    );
    let master_port = port.to_string();
    let workers: Vec<Running> = (0..2)
        .map(|_| {
            let mut args = vec![
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                &master_port,
                "--only-summary",
            ];
            args.extend_from_slice(tokens);
            spawn(mqblast_command(&args))
        })
        .collect();
    let master = master.wait(Duration::from_secs(120));
    master.assert_code(0);
    let mut said = String::new();
    for worker in workers {
        let worker = worker.wait(Duration::from_secs(60));
        worker.assert_code(0);
        said.push_str(&worker.stderr);
    }
    assert_clean_master_log(&std::fs::read_to_string(&log).unwrap());
    (said, connected_clients(&broker.log()))
}

/// Users of the two-worker token tests.
const USERS: u32 = 20;

/// Every client connected once, with its own client id, as one of `devices`.
fn assert_each_device_once(clients: &[(String, String)], devices: &[String]) {
    assert_eq!(clients.len(), USERS as usize, "{clients:?}");
    let users: std::collections::BTreeSet<&str> =
        clients.iter().map(|(_, user)| user.as_str()).collect();
    let all: std::collections::BTreeSet<&str> = devices.iter().map(String::as_str).collect();
    assert_eq!(users, all, "2 workers x 10 users reach 20 devices");
    let ids: std::collections::BTreeSet<&str> = clients.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), USERS as usize, "distinct client ids: {ids:?}");
}

#[test]
fn two_workers_of_one_master_connect_as_distinct_devices_not_the_same_first_tokens() {
    let dir = TempDir::new("locust-devices");
    let tokens: Vec<String> = (1..=USERS).map(|n| format!("DW{n:08}")).collect();
    let tokens_file = dir.file("tokens.txt");
    std::fs::write(&tokens_file, tokens.join("\n") + "\n").unwrap();
    let (said, clients) = two_workers_with_tokens(&dir, &["--tokens-file", &tokens_file]);
    // Each worker says its part, as a shard would have it.
    assert!(
        said.contains("worker 1/2 of the test: device tokens 1..=10 of 20"),
        "{said}"
    );
    assert!(
        said.contains("worker 2/2 of the test: device tokens 11..=20 of 20"),
        "{said}"
    );
    assert_each_device_once(&clients, &tokens);
}

#[test]
fn two_workers_of_one_master_with_a_tokens_template_use_every_device_once() {
    let dir = TempDir::new("locust-template");
    let template = ["--tokens-template", "DW{i:08}", "--tokens-start", "1"];
    let (said, clients) = two_workers_with_tokens(&dir, &template);
    // Interleaved: the master gives each worker half the users, so together they use the
    // first 20 devices.
    assert!(
        said.contains(
            "worker 1/2 of the test: device tokens DW00000001, DW00000003, DW00000005, ..."
        ),
        "{said}"
    );
    assert!(
        said.contains(
            "worker 2/2 of the test: device tokens DW00000002, DW00000004, DW00000006, ..."
        ),
        "{said}"
    );
    let devices: Vec<String> = (1..=USERS).map(|n| format!("DW{n:08}")).collect();
    assert_each_device_once(&clients, &devices);
}

#[test]
fn workers_with_per_device_certificates_connect_with_the_certificates_of_their_own_tokens() {
    // mosquitto takes each client's user name from its certificate (use_identity_as_username)
    // and lets device-N write only devices/device-N/t: a client with another device's
    // certificate than its token's is disconnected at its first publish.
    let broker = common::tls::TlsBroker::start(4);
    let dir = TempDir::new("locust-certs");
    let tokens_file = dir.file("tokens.txt");
    std::fs::write(&tokens_file, "0\n1\n2\n3\n").unwrap();
    let subscribers: Vec<common::Subscriber> = (0..4)
        .map(|n| broker.subscribe(&format!("devices/device-{n}/t"), 1))
        .collect();
    let port = free_port();
    let host = format!("mqtts://localhost:{}", broker.mtls);
    let (csv_prefix, log) = (dir.file("run"), dir.file("master.log"));
    let master = headless_master(
        &dir,
        &master_file(),
        port,
        (2, 4, 4, 8),
        &host,
        &csv_prefix,
        &log,
        &[
            "--mqtt-topic",
            "devices/device-{token}/t",
            "--mqtt-interval",
            "200ms",
        ],
    );
    let (master_port, ca, cert_dir) = (
        port.to_string(),
        broker.pki.file("ca.pem"),
        broker.pki.file(""),
    );
    let jsons = [dir.file("w1.json"), dir.file("w2.json")];
    let workers: Vec<Running> = jsons
        .iter()
        .map(|json| {
            spawn(mqblast_command(&[
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                &master_port,
                "--only-summary",
                "--json",
                json,
                "--tokens-file",
                &tokens_file,
                // The TLS options need a TLS host of the worker's own; the master's wins.
                "-H",
                &host,
                "--cafile",
                &ca,
                "--cert-dir",
                &cert_dir,
                "--cert-name",
                "device-{token}.pem",
                "--key-name",
                "device-{token}.key",
            ]))
        })
        .collect();
    let master = master.wait(Duration::from_secs(120));
    master.assert_code(0);
    for worker in workers {
        worker.wait(Duration::from_secs(60)).assert_code(0);
    }
    for json in &jsons {
        let text = std::fs::read_to_string(json).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["publish"]["failures"], 0, "{json}: {text}");
        assert_eq!(doc["connect"]["requests"], 2, "{json}: {text}");
    }
    for (n, subscriber) in subscribers.iter().enumerate() {
        assert!(
            subscriber.settle(Duration::from_millis(300), Duration::from_secs(10)) > 0,
            "device-{n} published nothing of its own\n{}",
            broker.log()
        );
    }
}
