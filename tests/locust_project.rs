//! A Locust + paho-mqtt project (tests/fixtures/locust_project: mqtt.py, config.py,
//! pyproject.toml, data.json) works as it is: `mqblast init --from-locust` writes config.toml and
//! tokens.txt from it, and mqblast run in that directory takes config.toml, pyproject.toml's
//! [tool.locust] table and data.json, connects every device token and publishes what it was
//! told to, against a real mosquitto.
//!
//! Why it exists: this is how our users arrive. If the import or the pyproject layer drifts
//! from what the old script meant (timeouts in milliseconds, tokens as user names), their first
//! run is wrong and they do not come back.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);
const TOKENS: usize = 20;

/// A copy of the fixture project in a scratch directory.
fn project(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locust_project");
    for name in ["mqtt.py", "config.py", "pyproject.toml", "data.json"] {
        let text = std::fs::read_to_string(fixture.join(name)).expect("fixture file");
        dir.write(name, &text);
    }
    dir
}

fn mqblast_in(dir: &TempDir, args: &[&str]) -> Finished {
    let mut cmd = mqblast_command(args);
    cmd.current_dir(dir.path());
    spawn(cmd).wait(LIMIT)
}

/// User names of the clients mosquitto saw connect: `... as mqblast-3 (p2, c1, k60, u'DW..').`
fn connected_usernames(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|line| line.contains("New client connected"))
        .filter_map(|line| line.split("u'").nth(1))
        .filter_map(|rest| rest.split('\'').next())
        .map(String::from)
        .collect()
}

/// Client ids of the clients mosquitto saw connect: `... as locust-3 (p2, c1, k60, ...`.
fn connected_client_ids(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|line| line.contains("New client connected"))
        .filter_map(|line| line.split(" as ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .map(String::from)
        .collect()
}

/// `mqblast init --from-locust` in `dir` with at most `bytes` of address space: a parser
/// whose memory grows past the bound aborts instead of answering.
fn init_within(dir: &TempDir, address_space_bytes: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mqblast"));
    cmd.args(["init", "--from-locust"]).current_dir(dir.path());
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: address_space_bytes,
                rlim_max: address_space_bytes,
            };
            match libc::setrlimit(libc::RLIMIT_AS, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    cmd.output().expect("run mqblast init")
}

#[test]
fn init_from_locust_on_a_config_py_of_millions_of_values_stays_within_bounded_memory() {
    let dir = TempDir::new("locust-big");
    // 12 MiB of `0,`: 6 million values, which took 80 times the file (1 GB) to parse.
    dir.write("config.py", &format!("x = [{}]\n", "0,".repeat(6 << 20)));
    let out = init_within(&dir, 512 << 20);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config.py line 1: more than 2000000 values"),
        "{stderr}"
    );
    assert!(!dir.path().join("config.toml").exists());
    // A list of a million tokens (8 MiB) is read, within the same bound.
    let tokens: String = (0..1_000_000).map(|i| format!("'t{i}',\n")).collect();
    std::fs::write(
        dir.path().join("config.py"),
        format!("device_tokens = [\n{tokens}]\n"),
    )
    .unwrap();
    let out = init_within(&dir, 512 << 20);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(dir.path().join("tokens.txt")).unwrap();
    assert_eq!(
        written.lines().filter(|l| !l.starts_with('#')).count(),
        1_000_000
    );
}

#[test]
fn init_from_locust_refuses_a_config_py_over_16_mib_naming_it() {
    let dir = TempDir::new("locust-huge");
    let path = dir.path().join("config.py");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len((16 << 20) + 1).unwrap();
    let out = init_within(&dir, 512 << 20);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config.py: 16777217 bytes, more than the 16777216"),
        "{stderr}"
    );
}

#[test]
fn init_from_locust_reads_lone_cr_line_ends_as_lines() {
    let dir = TempDir::new("locust-cr");
    dir.write(
        "config.py",
        "tb_address = 'broker.example'\rtb_port = 1884\rdevice_tokens = ['A1',\r 'B2']\r",
    );
    let out = init_within(&dir, 512 << 20);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(toml.contains("host = \"broker.example:1884\""), "{toml}");
    let tokens = std::fs::read_to_string(dir.path().join("tokens.txt")).unwrap();
    assert!(
        tokens.ends_with("A1\nB2\n") && !tokens.contains('\r'),
        "{tokens:?}"
    );
}

#[test]
fn init_from_locust_writes_config_toml_naming_the_source_of_each_value() {
    let dir = project("locust-import");
    let run = mqblast_in(&dir, &["init", "--from-locust"]);
    run.assert_code(0);
    let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    for expected in [
        "# config.py line 4: tb_address and line 5: tb_port\nhost = \"127.0.0.1:1883\"",
        "# config.py line 26: PUBLISH_TIMEOUT (milliseconds)\ntimeout = \"10000ms\"",
        "# config.py line 22: mqtt_topic\ntopic = \"v1/lptrk/gps\"",
        "tokens_file = \"tokens.txt\"",
        "# pyproject.toml line 12: [tool.locust] only-summary\nonly_summary = 1",
        "# pyproject.toml line 9: [tool.locust] users\nusers = 20",
        "payload = \"data.json\"",
        "# config.py line 29: KEEPALIVE (seconds)\nkeep_alive = 60",
        "# config.py line 30: CLIENT_ID_PREFIX (the prefix, then each client's index)\nclient_id = \"locust-{i}\"",
        "pyproject.toml line 7: [tool.locust] locustfile:",
    ] {
        assert!(config.contains(expected), "{expected:?} not in:\n{config}");
    }
    let tokens = std::fs::read_to_string(dir.path().join("tokens.txt")).unwrap();
    let listed: Vec<&str> = tokens.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed.len(), TOKENS);
    assert_eq!((listed[0], listed[19]), ("DW00000001", "DW00000020"));

    // Never overwrites: a second import is refused and leaves the files as they were.
    let again = mqblast_in(
        &dir,
        &["init", "--from-locust", "config.py", "pyproject.toml"],
    );
    again.assert_usage_error(&["config.toml already exists"]);
    let after = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert_eq!(after, config);
}

#[test]
fn init_from_locust_writes_a_numeric_ts_as_the_send_time_and_says_so() {
    let dir = project("locust-ts");
    dir.write(
        "data.json",
        "{\"ts\": 1700000000000, \"values\": {\"speed\": 42.7}}\n",
    );
    let run = mqblast_in(&dir, &["init", "--from-locust"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("mqblast: note: data.json: \"ts\" is a number: the old script replaced it with each message's send time; data.mqblast.json has \"ts\": \"{ts}\" instead"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("and data.mqblast.json from"),
        "{}",
        run.describe()
    );
    let stamped = std::fs::read_to_string(dir.path().join("data.mqblast.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&stamped).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"ts": "{ts}", "values": {"speed": 42.7}})
    );
    let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(
        config.contains("payload = \"data.mqblast.json\""),
        "{config}"
    );
    let original = std::fs::read_to_string(dir.path().join("data.json")).unwrap();
    assert!(
        original.contains("1700000000000"),
        "data.json is left as it was"
    );
}

#[test]
fn the_imported_project_runs_every_token_against_mosquitto() {
    let broker = Mosquitto::start();
    let subscriber = broker.subscribe("v1/lptrk/gps", 1);
    let dir = project("locust-run");
    mqblast_in(&dir, &["init", "--from-locust"]).assert_code(0);
    // The one edit a user makes: point the broker address at the test's broker.
    let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    let config = config.replace("127.0.0.1:1883", &broker.addr());
    std::fs::write(dir.path().join("config.toml"), config).unwrap();

    let messages: u64 = 60;
    let json = dir.file("summary.json");
    let run = mqblast_in(
        &dir,
        &[
            "--messages",
            &messages.to_string(),
            "--interval",
            "100ms",
            "-r",
            "1000",
            "--json",
            &json,
        ],
    );
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(
        summary.u64("publish.requests"),
        messages,
        "{}",
        summary.text()
    );
    assert_eq!(summary.u64("publish.failures"), 0, "{}", summary.text());
    assert_eq!(
        summary.u64("connect.requests"),
        TOKENS as u64,
        "{}",
        summary.text()
    );
    assert!(
        subscriber.wait_for(messages, Duration::from_secs(30)),
        "subscriber got {} of {messages}\n{}",
        subscriber.count(),
        run.describe()
    );
    let log = broker.log();
    let expected: BTreeSet<String> = (1..=TOKENS).map(|n| format!("DW{n:08}")).collect();
    assert_eq!(connected_usernames(&log), expected);
    // CLIENT_ID_PREFIX = 'locust-' became the client id template locust-{i}, keep-alive 60 s.
    let ids = connected_client_ids(&log);
    let ours: BTreeSet<String> = (0..TOKENS).map(|i| format!("locust-{i}")).collect();
    assert!(ids.is_superset(&ours), "{ids:?}");
    assert_eq!(
        ids.len(),
        TOKENS + 1,
        "{ids:?} (ours and the test's subscriber)"
    );
    assert!(log.contains("k60, "), "{log}");

    // Where each setting came from: users from pyproject.toml, the rest from config.toml.
    let stderr = &run.stderr;
    for expected in [
        "config.toml: host (line ",
        // PUBLISH_TIMEOUT = 10000 is 10 s, the default: not in the list of changed settings,
        // but the timeout's own line still names where it came from.
        "flags: --spawn-rate, --messages, --interval, --json",
        "payload data.json (config.toml line ",
        "publish timeout 10s (config.toml line ",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    // init --from-locust wrote the unused [tool.locust] keys down under "# Not used:": their
    // notes (locustfile, expect-workers, an HTTP host) are not repeated on every run.
    for key in ["locustfile", "expect-workers", "host:"] {
        assert!(
            !stderr.contains(&format!("[tool.locust] {key}")),
            "{key} noted again after init --from-locust wrote it down:\n{stderr}"
        );
    }
    // The CSV and HTML paths came from [tool.locust] (via config.toml) and were written.
    assert!(
        dir.path().join("results/tb_stats.csv").is_file(),
        "{stderr}"
    );
    assert!(dir.path().join("results/tb.html").is_file(), "{stderr}");
}

#[test]
fn a_project_with_only_pyproject_toml_runs_with_its_locust_settings() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-pyproject-only");
    dir.write(
        "pyproject.toml",
        "[tool.locust]\nusers = 3\nspawn-rate = 100\nonly-summary = 1\nheadless = true\nrun-time = 60\n",
    );
    // headless = true is the default: the banner lists only values that differ from it.
    let json = dir.file("summary.json");
    let host = broker.addr();
    let run = mqblast_in(&dir, &["-H", &host, "--messages", "9", "--json", &json]);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("connect.requests"), 3, "{}", summary.text());
    assert_eq!(summary.u64("publish.requests"), 9, "{}", summary.text());
    assert!(
        run.stderr.contains("pyproject.toml: users (line 2), spawn_rate (line 3), run_time (line 6), only_summary (line 4)"),
        "{}",
        run.stderr
    );
}

#[test]
fn init_from_locust_maps_keepalive_and_client_id_prefix_instead_of_calling_them_unknown() {
    let dir = TempDir::new("locust-paho-settings");
    dir.write("config.py", "KEEPALIVE = 30\nCLIENT_ID_PREFIX = 'rack7-'\n");
    mqblast_in(&dir, &["init", "--from-locust"]).assert_code(0);
    let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(config.contains("\nkeep_alive = 30\n"), "{config}");
    assert!(config.contains("\nclient_id = \"rack7-{i}\"\n"), "{config}");
    assert!(!config.contains("mqblast has no setting"), "{config}");
    // That mqblast runs with them: the_imported_project_runs_every_token_against_mosquitto.

    for (line, expected) in [
        (
            "KEEPALIVE = 70000\n",
            "KEEPALIVE: expected whole seconds from 0 to 65535",
        ),
        (
            "KEEPALIVE = '60'\n",
            "KEEPALIVE: expected whole seconds from 0 to 65535",
        ),
        (
            "CLIENT_ID_PREFIX = 'a{token}'\n",
            "CLIENT_ID_PREFIX: expected a string without {, } or NUL",
        ),
    ] {
        let dir = TempDir::new("locust-paho-bad");
        dir.write("config.py", line);
        mqblast_in(&dir, &["init", "--from-locust"])
            .assert_usage_error(&["config.py line 1: ", expected]);
        assert!(!dir.path().join("config.toml").exists());
    }
}
