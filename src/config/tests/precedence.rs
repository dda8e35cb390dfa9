//! Defaults, and the layers overriding each other.

use std::time::Duration;

use super::TestDir;
use crate::config::*;
use crate::payload;
use crate::plan::HostPort;

#[test]
fn a_bare_run_uses_the_defaults_of_the_old_script() {
    let plan = TestDir::new().plan(&[], &[]).unwrap();
    assert!(plan.hosts.is_empty());
    assert_eq!(plan.users, 10);
    assert_eq!(plan.spawn_rate, 10.0);
    assert_eq!(plan.run_time, Some(Duration::from_secs(10)));
    assert_eq!(plan.messages, None);
    assert_eq!(plan.qos, 1);
    assert_eq!(plan.topic, "v1/devices/me/telemetry");
    assert_eq!(plan.client_id, "mqblast-{i}");
    assert_eq!(plan.payload.source(), payload::BUILTIN_SOURCE);
    assert_eq!(plan.interval, Duration::from_secs(1));
    assert_eq!(plan.max_inflight, 16);
    assert_eq!(plan.timeout, Duration::from_secs(10));
    assert_eq!(plan.keep_alive_s, 60);
    assert_eq!(plan.threads, 4);
    assert!(!plan.only_summary);
    assert_eq!(plan.stop_timeout, Duration::from_secs(10));
    assert_eq!(plan.json_path, None);
    assert_eq!(plan.request_type, "MQTT");
    assert_eq!((plan.username, plan.password), (None, None));
    assert!(plan.tokens.is_empty());
}

#[test]
fn the_shipped_config_toml_gives_the_same_plan_as_no_file() {
    let dir = TestDir::new();
    let bare = dir.plan(&[], &[]).unwrap();
    dir.write("config.toml", DEFAULT_CONFIG);
    let with_file = dir.plan(&[], &[]).unwrap();
    let mut effective = with_file.effective_config.clone();
    assert_eq!(effective["config_file"], dir.path_of("config.toml"));
    effective["config_file"] = serde_json::Value::Null;
    assert_eq!(effective, bare.effective_config);
}

#[test]
fn the_config_file_overrides_defaults() {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        "users = 20\nrun_time = \"5m\"\nhost = \"broker\"\n",
    );
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.users, 20);
    assert_eq!(plan.run_time, Some(Duration::from_secs(300)));
    assert_eq!(plan.hosts, vec![HostPort::tcp("broker", 1883)]);
}

#[test]
fn the_environment_overrides_the_config_file() {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        "users = 20\nrun_time = \"5m\"\nhost = \"broker\"\n",
    );
    let env = [
        ("MQBLAST_USERS", "30"),
        ("MQBLAST_RUN_TIME", "1h30m"),
        ("MQBLAST_HOST", "a:1,b:2"),
    ];
    let plan = dir.plan(&[], &env).unwrap();
    assert_eq!(plan.users, 30);
    assert_eq!(plan.run_time, Some(Duration::from_secs(5400)));
    assert_eq!(plan.hosts.len(), 2);
    assert_eq!(plan.hosts[1], HostPort::tcp("b", 2));
}

#[test]
fn the_command_line_overrides_the_environment_and_the_file() {
    let dir = TestDir::new();
    dir.write("config.toml", "users = 20\nonly_summary = false\n");
    let env = [("MQBLAST_USERS", "30"), ("MQBLAST_ONLY_SUMMARY", "false")];
    let plan = dir.plan(&["-u", "40", "--only-summary"], &env).unwrap();
    assert_eq!(plan.users, 40);
    assert!(plan.only_summary);
}

#[test]
fn an_empty_environment_variable_counts_as_unset() {
    let dir = TestDir::new();
    dir.write("config.toml", "users = 20\n");
    let plan = dir.plan(&[], &[("MQBLAST_USERS", "")]).unwrap();
    assert_eq!(plan.users, 20);
}

#[test]
fn the_run_subcommand_takes_the_same_flags() {
    let plan = TestDir::new()
        .plan(&["run", "-u", "3", "--headless"], &[])
        .unwrap();
    assert_eq!(plan.users, 3);
}

#[test]
fn a_message_limit_alone_means_no_time_limit() {
    let plan = TestDir::new().plan(&["--messages", "100"], &[]).unwrap();
    assert_eq!(plan.messages, Some(100));
    assert_eq!(plan.run_time, None);
}

#[test]
fn keys_may_be_written_with_dashes_as_in_tool_locust() {
    let dir = TestDir::new();
    dir.write("config.toml", "spawn-rate = 2.5\nrun-time = 30\n");
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.spawn_rate, 2.5);
    assert_eq!(plan.run_time, Some(Duration::from_secs(30)));
}

#[test]
fn a_config_file_named_with_f_or_the_environment_is_read() {
    let dir = TestDir::new();
    dir.write("other.toml", "users = 7\n");
    dir.write("env.toml", "users = 8\n");
    assert_eq!(dir.plan(&["-f", "other.toml"], &[]).unwrap().users, 7);
    let env = [("MQBLAST_CONFIG", "env.toml")];
    assert_eq!(dir.plan(&[], &env).unwrap().users, 8);
    assert_eq!(
        dir.plan(&["--config", "other.toml"], &env).unwrap().users,
        7
    );
}

#[test]
fn relative_paths_in_the_config_file_are_relative_to_its_directory() {
    let dir = TestDir::new();
    dir.write(
        "runs/soak.toml",
        "tokens_file = \"tokens.txt\"\npayload = \"p.json\"\n",
    );
    dir.write("runs/tokens.txt", "t1\nt2\n");
    dir.write("runs/p.json", "{\"a\":1}");
    let plan = dir.plan(&["-f", "runs/soak.toml"], &[]).unwrap();
    assert_eq!(plan.tokens, vec!["t1", "t2"]);
    assert_eq!(plan.payload.source(), dir.path_of("runs/p.json"));
}

#[test]
fn only_an_absent_host_selects_the_embedded_broker_and_an_empty_one_is_refused() {
    let dir = TestDir::new();
    assert!(dir.plan(&[], &[]).unwrap().hosts.is_empty());
    let refused = "names no broker; leave the host unset to use the embedded broker";
    assert_eq!(
        dir.error(&["-H", ""], &[]),
        format!("--host \"\": {refused}")
    );
    assert_eq!(
        dir.error(&[], &[("MQBLAST_HOST", "")]),
        format!("MQBLAST_HOST=\"\": {refused}")
    );
    dir.write("config.toml", "host = [\"a\", \"mqtt://b:1\"]\n");
    assert_eq!(dir.plan(&[], &[]).unwrap().hosts.len(), 2);
    assert!(dir.error(&["-H", " "], &[]).ends_with(refused));
    dir.write("config.toml", "\nhost = []\n");
    assert_eq!(
        dir.error(&[], &[]),
        format!(
            "{} line 2: host = []: {refused}",
            dir.path_of("config.toml")
        )
    );
}

#[test]
fn the_banner_does_not_list_the_shipped_config_tomls_default_values() {
    let dir = TestDir::new();
    dir.write("config.toml", DEFAULT_CONFIG);
    let plan = dir.plan(&[], &[]).unwrap();
    // Where a value came from is still known (the banner's payload and timeout line).
    let timeout = plan.sources.iter().find(|s| s.name == "timeout").unwrap();
    let line = DEFAULT_CONFIG
        .lines()
        .position(|l| l.starts_with("timeout = "))
        .unwrap()
        + 1;
    assert!(
        timeout.place.ends_with(&format!("config.toml line {line}")),
        "{timeout:?}"
    );
    let listed: Vec<&str> = plan
        .sources
        .iter()
        .filter(|source| !source.same_as_default)
        .map(|source| source.name)
        .collect();
    assert!(listed.is_empty(), "listed as set: {listed:?}");
}

#[test]
fn the_banner_lists_values_that_differ_from_the_default_however_written() {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        "users = 10\nkeep_alive = \"1m\"\nspawn_rate = 10.0\nqos = 2\ninterval = \"500ms\"\n",
    );
    let plan = dir
        .plan(&["--only-summary"], &[("MQBLAST_PIN", "owned")])
        .unwrap();
    let listed: Vec<&str> = plan
        .sources
        .iter()
        .filter(|source| !source.same_as_default)
        .map(|source| source.name)
        .collect();
    assert_eq!(listed, ["qos", "interval", "only_summary"]);
}
