//! Bad usage and bad configuration: exit 2 with one clear line, never a panic.
//!
//! Why it exists: a load test is often started by a script at 3 a.m.; a typo must fail fast
//! with a message that names the flag, the file, the line or the key, and exit 2 (usage), not
//! 1 (the run found failures) or 101 (a panic). Each run also points at a dead port and has a
//! 1 s run time, so an implementation that wrongly accepts the input ends quickly with exit 1
//! and the test fails with the output in its message.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

/// `args` plus a dead broker address and a short run time.
fn bounded(args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend([
        "-H".to_string(),
        format!("127.0.0.1:{}", free_port()),
        "-t".into(),
        "1s".into(),
        "--headless".into(),
    ]);
    all
}

fn run(args: &[&str]) -> Finished {
    run_mqblast(&bounded(args), LIMIT)
}

#[test]
fn unknown_option_is_a_usage_error() {
    run(&["--no-such-flag"]).assert_usage_error(&["--no-such-flag"]);
}

#[test]
fn qos_3_is_rejected_naming_qos() {
    run(&["--qos", "3"]).assert_usage_error(&["qos"]);
}

#[test]
fn a_50_mb_host_or_10_mb_topic_is_not_echoed_whole_in_the_error() {
    let dir = TempDir::new("cli-long-values");
    let host = dir.write(
        "host.toml",
        &format!("host = \"{} x\"\n", "h".repeat(50 << 20)),
    );
    let topic = dir.write(
        "topic.toml",
        &format!("topic = \"a/{}/#\"\n", "t".repeat(10 << 20)),
    );
    for (path, key) in [(host, "host"), (topic, "topic")] {
        let run = run_mqblast(&["-f".to_string(), path.clone()], LIMIT);
        run.assert_usage_error(&[key]);
        assert!(
            run.stderr.len() < 1000 && run.stderr.contains(" bytes)"),
            "{key}: {} bytes of stderr: {}",
            run.stderr.len(),
            &run.stderr[..run.stderr.len().min(300)]
        );
    }
}

#[test]
fn missing_config_file_is_rejected_naming_the_file() {
    let dir = TempDir::new("cli-missing");
    let path = dir.file("nope.toml");
    run(&["-f", &path]).assert_usage_error(&["nope.toml"]);
}

#[test]
fn config_with_a_syntax_error_is_rejected_naming_the_file_and_line() {
    let dir = TempDir::new("cli-syntax");
    let path = dir.write(
        "broken.toml",
        "# a config with a typo on line 2\nusers = = 3\n",
    );
    let run = run(&["-f", &path]);
    run.assert_usage_error(&["broken.toml"]);
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("line 2") || lower.contains("broken.toml:2"),
        "stderr should point at line 2:\n{}",
        run.describe()
    );
}

#[test]
fn config_with_an_unknown_key_is_rejected_naming_the_file_and_key() {
    let dir = TempDir::new("cli-key");
    let path = dir.write("unknown-key.toml", "no_such_setting = 1\n");
    run(&["-f", &path]).assert_usage_error(&["unknown-key.toml", "no_such_setting"]);
}

#[test]
fn malformed_payload_json_is_rejected_naming_the_file() {
    let dir = TempDir::new("cli-payload");
    let path = dir.write("broken-data.json", "{\"temperature\": 21.5,\n");
    run(&["--payload", &path]).assert_usage_error(&["broken-data.json"]);
}

#[test]
fn missing_payload_file_is_rejected_naming_the_file() {
    let dir = TempDir::new("cli-payload-missing");
    let path = dir.file("absent-data.json");
    run(&["--payload", &path]).assert_usage_error(&["absent-data.json"]);
}

#[test]
fn empty_tokens_file_is_rejected() {
    let dir = TempDir::new("cli-tokens");
    let path = dir.write("empty-tokens.txt", "");
    run(&["--tokens-file", &path]).assert_usage_error(&["empty-tokens.txt"]);
}

#[test]
fn zero_users_is_rejected_naming_users() {
    run(&["--users", "0", "--messages", "10"]).assert_usage_error(&["users"]);
}

#[test]
fn zero_users_from_the_environment_is_rejected_too() {
    let mut cmd = mqblast_command(&bounded(&["--messages", "10"]));
    cmd.env("MQBLAST_USERS", "0");
    spawn(cmd).wait(LIMIT).assert_usage_error(&["users"]);
}

#[test]
fn unparseable_duration_is_rejected_naming_the_flag() {
    run(&["--interval", "soon"]).assert_usage_error(&["interval"]);
}

#[test]
fn more_users_than_the_open_files_limit_allows_is_rejected_up_front() {
    use std::os::unix::process::CommandExt;
    // Pin both limits low so the test means the same on a machine with a huge hard limit
    // (mqblast may raise its soft limit to the hard one, as load generators usually do).
    let mut cmd = mqblast_command(&bounded(&["--users", "50000"]));
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = spawn(cmd).wait(LIMIT);
    run.assert_code(2);
    let lower = run.stderr.to_lowercase();
    assert!(
        ["open file", "open-file", "ulimit", "nofile", "rlimit"]
            .iter()
            .any(|n| lower.contains(n)),
        "stderr should mention the open-files limit:\n{}",
        run.describe()
    );
}

/// `args` with a short run time and no broker address: if mqblast wrongly accepted the
/// input it would start its embedded broker, run 1 s and exit 0, failing the test.
fn without_host(args: &[&str]) -> Command {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-t", "1s", "--headless"]);
    mqblast_command(&all)
}

/// Exit 2 and exactly one line on stderr, naming `source`.
fn assert_one_line_naming(run: &Finished, source: &str) {
    run.assert_usage_error(&[source, "embedded broker"]);
    assert_eq!(
        run.stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{}",
        run.describe()
    );
}

#[test]
fn an_empty_host_flag_is_refused_instead_of_starting_the_embedded_broker() {
    let run = spawn(without_host(&["-H", ""])).wait(LIMIT);
    assert_one_line_naming(&run, "--host \"\"");
}

#[test]
fn an_empty_host_variable_is_refused_instead_of_starting_the_embedded_broker() {
    let mut cmd = without_host(&[]);
    cmd.env("MQBLAST_HOST", "");
    let run = spawn(cmd).wait(LIMIT);
    assert_one_line_naming(&run, "MQBLAST_HOST=\"\"");
}

#[test]
fn an_empty_host_in_the_config_file_is_refused_instead_of_starting_the_embedded_broker() {
    let dir = TempDir::new("cli-empty-host");
    let path = dir.write("empty-host.toml", "users = 1\nhost = \"\"\n");
    let run = spawn(without_host(&["-f", &path])).wait(LIMIT);
    assert_one_line_naming(&run, "empty-host.toml line 2: host = \"\"");
}

/// A config file (the only source besides a tokens file that can carry a NUL through
/// `exec`) with `body`: exit 2, one line naming the file and `setting`, no secret echoed.
fn assert_nul_refused(body: &str, setting: &str) {
    let dir = TempDir::new("cli-nul");
    let path = dir.write("nul.toml", body);
    let run = run(&["-f", &path]);
    run.assert_usage_error(&["nul.toml", setting, "NUL"]);
    assert!(!run.stderr.contains("s3cret"), "{}", run.describe());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.describe());
}

#[test]
fn a_nul_in_the_client_id_is_refused_before_it_reaches_a_connect() {
    assert_nul_refused("client_id = \"dev\\u0000{i}\"\n", "line 1: client_id");
}

#[test]
fn a_nul_in_the_user_name_or_password_is_refused_before_it_reaches_a_connect() {
    assert_nul_refused("username = \"s3cret\\u0000\"\n", "line 1: username");
    assert_nul_refused(
        "username = \"u\"\npassword = \"s3cret\\u0000\"\n",
        "line 2: password",
    );
}

#[test]
fn a_nul_in_a_device_token_is_refused_naming_its_position_not_its_text() {
    assert_nul_refused(
        "tokens = [\"s3cret-a\", \"s3cret\\u0000b\"]\n",
        "tokens: token 2 of 2",
    );
    let dir = TempDir::new("cli-nul-tokens");
    let path = dir.write("nul-tokens.txt", "s3cret-a\ns3cret\0b\n");
    let run = run(&["--tokens-file", &path]);
    run.assert_usage_error(&["nul-tokens.txt line 2", "NUL"]);
    assert!(!run.stderr.contains("s3cret"), "{}", run.describe());
}

#[test]
fn help_exits_zero_and_lists_the_main_flags() {
    let run = run_mqblast(&["--help"], LIMIT);
    run.assert_code(0);
    let text = format!("{}{}", run.stdout, run.stderr);
    for flag in [
        "--users",
        "--spawn-rate",
        "--run-time",
        "--messages",
        "--qos",
        "--tokens",
        "--json",
    ] {
        assert!(
            text.contains(flag),
            "--help should list {flag}:\n{}",
            run.describe()
        );
    }
}

/// A Locust option with no meaning for mqblast: exactly one line saying what to do instead.
fn assert_one_line_instead(args: &[&str], needles: &[&str]) {
    let run = run(args);
    run.assert_usage_error(needles);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", run.stderr);
    assert!(lines[0].starts_with("mqblast: error: "), "{}", run.stderr);
}

#[test]
fn locust_master_options_say_to_shard_and_merge_instead() {
    assert_one_line_instead(&["--master"], &["--master is a locust option", "--shard"]);
    assert_one_line_instead(&["--expect-workers", "4"], &["--expect-workers", "merge"]);
    assert_one_line_instead(
        &["--master-bind-host=0.0.0.0"],
        &["--master-bind-host", "--shard"],
    );
}

#[test]
fn locust_user_class_options_say_there_are_no_user_classes() {
    assert_one_line_instead(
        &["-T", "gps"],
        &["-t is a locust option", "no python user classes"],
    );
    assert_one_line_instead(
        &["--class-picker"],
        &["--class-picker", "no python user classes"],
    );
    assert_one_line_instead(&["--processes", "4"], &["--processes", "--threads"]);
}

#[test]
fn a_locustfile_is_refused_pointing_at_init_from_locust() {
    assert_one_line_instead(&["--locustfile", "mqtt.py"], &["init --from-locust"]);
    let dir = TempDir::new("cli-locustfile");
    let locustfile = dir.write("mqtt.py", "from locust import User\n");
    assert_one_line_instead(
        &["-f", &locustfile],
        &["mqtt.py", "locustfile", "init --from-locust"],
    );
}

#[test]
fn a_timeout_in_milliseconds_written_as_seconds_is_refused_with_a_suggestion() {
    assert_one_line_instead(
        &["--timeout", "10000"],
        &["--timeout 10000", "did you mean 10000ms?"],
    );
    let dir = TempDir::new("cli-timeout-ms");
    let path = dir.write("config.toml", "timeout = 10000\n");
    assert_one_line_instead(
        &["-f", &path],
        &["line 1: timeout = 10000", "did you mean 10000ms?"],
    );
}

#[test]
fn web_with_shard_or_start_at_is_refused_in_one_line_naming_the_flag() {
    let port = free_port().to_string();
    let web = ["--web", "--web-port", &port, "-u", "4"];
    let cases: [(&[&str], &str); 2] = [
        (
            &["--shard", "1/2"],
            "--shard 1/2: cannot be steered from the web UI",
        ),
        (
            &["--start-at", "+5s"],
            "--start-at +5s: cannot be combined with --web",
        ),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = web.iter().chain(extra).copied().collect();
        let run = run_mqblast(&args, LIMIT);
        run.assert_usage_error(&[needle]);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.describe());
    }
}

/// Each output flag with a path that cannot be created: exit 2 before any connect (mosquitto
/// logs no client), one line naming the flag, the path and the OS error; no file or directory
/// is left behind by the check of the good outputs given beside it.
#[test]
fn a_bad_output_path_is_refused_before_the_first_connect_not_after_the_run() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("bad-outputs");
    let good_json = dir.file("fresh/dir/r.json");
    let host = broker.addr();
    for (flag, bad) in [
        ("--json", "/proc/nope/r.json"),
        ("--csv", "/proc/nope/run"),
        ("--html", "/proc/nope/r.html"),
        ("--hlog", "/proc/nope/r.hlog"),
    ] {
        let mut args = vec!["-H", host.as_str(), "-u", "2", "-t", "30s", flag, bad];
        if flag != "--json" {
            args.extend(["--json", good_json.as_str()]);
        }
        let run = run_mqblast(&args, LIMIT);
        run.assert_usage_error(&[flag, "/proc/nope", "No such file or directory"]);
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{}", run.describe());
        assert!(run.elapsed < Duration::from_secs(20), "{}", run.describe());
        assert!(
            !std::path::Path::new(&dir.file("fresh")).exists(),
            "the check left {} behind",
            dir.file("fresh")
        );
    }
    assert!(
        !broker.log().contains("New client connected"),
        "a client connected before the output paths were checked:\n{}",
        broker.log()
    );
}

/// A good output path in a directory that exists keeps nothing from the check: the run writes
/// the file when it ends, and an existing file is neither truncated nor changed by the check.
#[test]
fn checking_the_output_paths_leaves_existing_files_as_they_were() {
    let dir = TempDir::new("good-outputs");
    let html = dir.write("old.html", "old report");
    let run = run_mqblast(
        &[
            "-H",
            "127.0.0.1:1",
            "-u",
            "1",
            "-t",
            "1s",
            "--html",
            &html,
            "--csv",
            "/proc/nope/x",
        ],
        LIMIT,
    );
    run.assert_usage_error(&["--csv"]);
    assert_eq!(std::fs::read_to_string(&html).unwrap(), "old report");
}

/// `--help` was one flat list of about 80 options, 13 lines over 160 columns: now grouped under
/// headings as Locust's is, and wrapped at 100 columns even on a wider terminal.
#[test]
fn help_is_grouped_under_headings_and_no_line_is_over_100_columns() {
    let mut cmd = mqblast_command(&["--help"]);
    cmd.env("COLUMNS", "300");
    let run = spawn(cmd).wait(LIMIT);
    run.assert_code(0);
    let headings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.ends_with(':') && !line.starts_with(' '))
        .collect();
    assert_eq!(
        headings,
        [
            "Commands:",
            "Options:",
            "Common options:",
            "MQTT:",
            "MQTT 5:",
            "TLS and WebSocket:",
            "Pacing and connections:",
            "ThingsBoard workloads:",
            "Subscribers and delivery audit:",
            "Outputs:",
            "Web UI:",
            "Distributed:",
            "Gateways:",
        ],
        "{}",
        run.stdout
    );
    let long: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.chars().count() > 100)
        .collect();
    assert!(long.is_empty(), "lines over 100 columns: {long:#?}");
    for flag in [
        "--users",
        "--mqtt-version",
        "--cafile",
        "--json",
        "--web-port",
        "--worker",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing from --help");
    }
}

/// `-V` was the MQTT version, so `mqblast -V` said "a value is required"; as in Locust it
/// prints the version, and exits 0.
#[test]
fn dash_v_prints_the_version_instead_of_a_value_is_required() {
    for flag in ["-V", "--version"] {
        let run = spawn(mqblast_command(&[flag])).wait(LIMIT);
        run.assert_code(0);
        assert_eq!(
            run.stdout.trim(),
            format!("mqblast {}", env!("CARGO_PKG_VERSION")),
            "{}",
            run.describe()
        );
    }
}

#[test]
fn a_tokens_template_without_its_index_or_with_a_bad_width_is_a_usage_error() {
    run(&["--tokens-template", "DW"]).assert_usage_error(&["--tokens-template DW: has no {i}"]);
    run(&["--tokens-template", "DW{i:8}"]).assert_usage_error(&["--tokens-template", "{i:8}"]);
}

#[test]
fn a_tokens_template_with_a_token_list_is_a_usage_error_naming_both() {
    run(&["--tokens", "a", "--tokens-template", "DW{i:08}"]).assert_usage_error(&[
        "--tokens-template DW{i:08} and --tokens: give a tokens template or a token list, not both",
    ]);
}

#[test]
fn datapoints_beyond_the_bound_or_without_the_plc_preset_are_usage_errors() {
    run(&["--payload", "industrial-plc", "--datapoints", "1000"])
        .assert_usage_error(&["--datapoints 1000: must be 1 to 999"]);
    run(&["--payload", "smart-meter", "--datapoints", "10"])
        .assert_usage_error(&["--datapoints 10: only the industrial-plc payload has data points"]);
    run(&["--stream", "telemetry,payload=smart-meter,datapoints=5"]).assert_usage_error(&[
        "--stream telemetry,payload=smart-meter,datapoints=5: datapoints = 5: only the industrial-plc payload has data points",
    ]);
    run(&["--stream", "telemetry,payload=industrial-plc,datapoints=0"])
        .assert_usage_error(&["datapoints = 0: must be 1 to 999"]);
}

#[test]
fn gateway_conflicts_exit_2_naming_the_settings() {
    run(&["--gateway", "--devices-per-gateway", "0"])
        .assert_usage_error(&["--devices-per-gateway 0", "at least 1 device"]);
    run(&["--gateway", "--sub-users", "1"]).assert_usage_error(&["--gateway", "--sub-users 1"]);
    run(&["--gateway-mode", "batched"]).assert_usage_error(&["--gateway-mode", "add --gateway"]);
    let dir = TempDir::new("cli-gateway");
    let config = dir.write("gw.toml", "gateway = true\n\ndevice_name = \"meter\"\n");
    run(&["-f", &config]).assert_usage_error(&["line 3", "device_name", "{i}"]);
}

/// The RPC responder's answer and delay are checked before anything starts: exit 2, naming
/// the flag.
#[test]
fn a_bad_rpc_response_or_delay_exits_2_naming_the_flag() {
    let run = run_mqblast(
        &["--rpc-responder", "--rpc-response", "{\"status\":"],
        LIMIT,
    );
    run.assert_usage_error(&["--rpc-response", "inline JSON is not JSON"]);
    let run = run_mqblast(&["--rpc-responder", "--rpc-response-delay", "2h"], LIMIT);
    run.assert_usage_error(&["--rpc-response-delay 2h: must be at most 1h"]);
}
