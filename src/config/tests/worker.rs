//! The Locust worker settings: off unless asked, Locust's default master address, the settings
//! a master decides refused with the reason, a repeated flag's last value winning (a worker
//! appends the master's settings to its own command line).

use super::*;

fn invalid(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid(msg) => msg,
        ConfigError::Usage(e) => panic!("expected a configuration error, got usage: {e}"),
    }
}

#[test]
fn a_worker_joins_localhost_5557_unless_told_otherwise() {
    let dir = TestDir::new();
    assert_eq!(dir.plan(&[], &[]).unwrap().worker, None);
    let worker = dir.plan(&["--worker"], &[]).unwrap().worker.unwrap();
    assert_eq!(
        (worker.master_host.as_str(), worker.master_port),
        ("127.0.0.1", 5557)
    );
    let plan = dir
        .plan(
            &[],
            &[
                ("MQBLAST_WORKER", "true"),
                ("MQBLAST_MASTER_HOST", "master.lan"),
                ("MQBLAST_MASTER_PORT", "6000"),
            ],
        )
        .unwrap();
    let worker = plan.worker.unwrap();
    assert_eq!(
        (worker.master_host.as_str(), worker.master_port),
        ("master.lan", 6000)
    );
    assert_eq!(
        plan.run_time, None,
        "a worker's tests run until the master stops them"
    );
}

#[test]
fn what_the_master_decides_is_refused_on_a_worker_with_the_reason() {
    let dir = TestDir::new();
    for (args, needle) in [
        (
            &["--worker", "--shard", "1/2"][..],
            "master hands out the users",
        ),
        (
            &["--worker", "--messages", "100"][..],
            "master sets the users",
        ),
        (&["--worker", "--master-port", "0"][..], "port number"),
    ] {
        let msg = invalid(dir.plan(args, &[]).unwrap_err());
        assert!(msg.contains(needle), "{args:?}: {msg}");
    }
    dir.write("config.toml", "headless = false\n");
    let msg = invalid(dir.plan(&["--worker"], &[]).unwrap_err());
    assert!(msg.contains("exclude each other"), "{msg}");
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &["--topic", "mine", "--qos", "0", "--topic", "masters"],
            &[],
        )
        .unwrap();
    assert_eq!((plan.topic.as_str(), plan.qos), ("masters", 0));
}

#[test]
fn tool_locust_worker_settings_make_a_worker_as_locust_reads_them() {
    let dir = TestDir::new();
    dir.write(
        "pyproject.toml",
        "[tool.locust]\nworker = true\nmaster-host = \"master.lan\"\nmaster-port = 6000\n",
    );
    let worker = dir.plan(&[], &[]).unwrap().worker.unwrap();
    assert_eq!(
        (worker.master_host.as_str(), worker.master_port),
        ("master.lan", 6000)
    );
}

#[test]
fn a_workers_own_run_time_is_ignored_with_a_note_as_the_master_owns_it() {
    let dir = TestDir::new();
    dir.write("pyproject.toml", "[tool.locust]\nrun-time = \"2m\"\n");
    for args in [&["--worker"][..], &["--worker", "--run-time", "2s"][..]] {
        let plan = dir.plan(args, &[]).unwrap();
        assert_eq!(plan.run_time, None, "{args:?}");
        assert_eq!(plan.effective_config["run_time"], serde_json::Value::Null);
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("ignored under --worker") && n.contains("run")),
            "{args:?}: {:?}",
            plan.notes
        );
    }
    // Without --worker the same settings keep their run time.
    assert!(dir.plan(&[], &[]).unwrap().run_time.is_some());
}

#[test]
fn a_masters_value_that_looks_like_a_flag_stays_a_value() {
    let dir = TestDir::new();
    let plan = dir
        .plan(&["--worker", "--topic=--tokens-file=/etc/passwd"], &[])
        .unwrap();
    assert_eq!(plan.topic, "--tokens-file=/etc/passwd");
    assert!(plan.tokens.is_empty());
}
