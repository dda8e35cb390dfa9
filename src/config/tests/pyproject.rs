//! pyproject.toml's [tool.locust] table as the layer between the defaults and config.toml,
//! the durations whose bare numbers look like milliseconds, and `init --from-locust`.

use std::time::Duration;

use super::TestDir;
use crate::config::*;
use crate::plan::{HostPort, SourceLayer};

const LOCUST_TABLE: &str = "[project]\nname = \"loadtest\"\n\n[tool.locust]\n\
    locustfile = \"mqtt.py\"\nusers = 20\nspawn-rate = 4\nrun-time = \"5m\"\n\
    only-summary = 1\nheadless = true\nhost = \"broker\"\nexpect-workers = 2\n";

#[test]
fn pyproject_values_override_the_defaults_as_locust_reads_them() {
    let dir = TestDir::new();
    dir.write("pyproject.toml", LOCUST_TABLE);
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.users, 20);
    assert_eq!(plan.spawn_rate, 4.0);
    assert_eq!(plan.run_time, Some(Duration::from_secs(300)));
    assert!(plan.only_summary, "only-summary = 1 is true, as in Locust");
    assert_eq!(plan.hosts, vec![HostPort::tcp("broker", 1883)]);
    let users = plan.sources.iter().find(|s| s.name == "users").unwrap();
    assert_eq!(users.layer, SourceLayer::Pyproject);
    assert_eq!(
        users.place,
        format!("{} line 6", dir.path_of("pyproject.toml"))
    );
    assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
}

#[test]
fn config_toml_overrides_pyproject_and_the_environment_and_flags_override_both() {
    let dir = TestDir::new();
    dir.write("pyproject.toml", LOCUST_TABLE);
    dir.write("config.toml", "users = 30\nrun_time = \"1m\"\n");
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!((plan.users, plan.spawn_rate), (30, 4.0));
    assert_eq!(plan.run_time, Some(Duration::from_secs(60)));
    let layer_of = |plan: &crate::plan::Plan, name: &str| {
        plan.sources
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.layer)
    };
    assert_eq!(layer_of(&plan, "users"), Some(SourceLayer::ConfigFile));
    assert_eq!(layer_of(&plan, "spawn_rate"), Some(SourceLayer::Pyproject));
    assert_eq!(layer_of(&plan, "qos"), None, "defaults are not listed");

    let env = [("MQBLAST_USERS", "40"), ("MQBLAST_SPAWN_RATE", "8")];
    let plan = dir.plan(&["--users", "50"], &env).unwrap();
    assert_eq!((plan.users, plan.spawn_rate), (50, 8.0));
    assert_eq!(layer_of(&plan, "users"), Some(SourceLayer::Flag));
    assert_eq!(layer_of(&plan, "spawn_rate"), Some(SourceLayer::Env));
}

#[test]
fn a_bad_pyproject_value_names_the_file_line_and_locust_key() {
    let dir = TestDir::new();
    dir.write("pyproject.toml", "[tool.locust]\n\nspawn-rate = \"fast\"\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.starts_with(&format!(
            "{} line 3: [tool.locust] spawn-rate = fast:",
            dir.path_of("pyproject.toml")
        )),
        "{err}"
    );
}

#[test]
fn a_pyproject_without_a_locust_table_or_broken_without_one_is_ignored() {
    let dir = TestDir::new();
    dir.write("pyproject.toml", "[tool.black]\nline-length = 100\n");
    assert!(dir.plan(&[], &[]).unwrap().notes.is_empty());
    dir.write("pyproject.toml", "[project\nname = ");
    assert_eq!(dir.plan(&[], &[]).unwrap().users, 10);
    dir.write("pyproject.toml", "[tool.locust]\nusers = = 3\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.starts_with(&format!("{} line 2", dir.path_of("pyproject.toml"))),
        "{err}"
    );
}

#[test]
fn tokens_from_pyproject_yield_to_a_tokens_file_in_config_toml() {
    let dir = TestDir::new();
    dir.write("pyproject.toml", "[tool.locust]\ntokens = [\"a\", \"b\"]\n");
    dir.write("tokens.txt", "x\ny\nz\n");
    assert_eq!(dir.plan(&[], &[]).unwrap().tokens, vec!["a", "b"]);
    dir.write("config.toml", "tokens_file = \"tokens.txt\"\n");
    assert_eq!(dir.plan(&[], &[]).unwrap().tokens, vec!["x", "y", "z"]);
}

#[test]
fn a_bare_timeout_above_an_hour_asks_whether_milliseconds_were_meant() {
    let dir = TestDir::new();
    let err = dir.error(&["--timeout", "10000"], &[]);
    assert!(
        err.starts_with("--timeout 10000: a bare number is seconds: did you mean 10000ms?"),
        "{err}"
    );
    assert!(
        err.contains(
            "interval, timeout, stop_timeout, drain_timeout, drain_max, churn, rpc_response_delay)"
        ),
        "{err}"
    );
    let err = dir.error(&[], &[("MQBLAST_STOP_TIMEOUT", "5000")]);
    assert!(err.contains("did you mean 5000ms?"), "{err}");
    dir.write("config.toml", "interval = 4500.5\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.contains("line 1: interval = 4500.5: a bare number is seconds: did you mean 4500.5ms?"),
        "{err}"
    );
}

#[test]
fn bare_seconds_up_to_an_hour_and_written_units_still_work() {
    let dir = TestDir::new();
    let plan = dir
        .plan(&["--timeout", "3600", "--stop-timeout", "10000ms"], &[])
        .unwrap();
    assert_eq!(plan.timeout, Duration::from_secs(3600));
    assert_eq!(plan.stop_timeout, Duration::from_secs(10));
    let plan = dir
        .plan(&["--timeout", "10000s", "-t", "7200"], &[])
        .unwrap();
    assert_eq!(plan.timeout, Duration::from_secs(10_000));
    assert_eq!(
        plan.run_time,
        Some(Duration::from_secs(7200)),
        "a two-hour Locust -t 7200"
    );
}

#[test]
fn a_locustfile_given_as_the_config_file_says_what_to_do() {
    let dir = TestDir::new();
    dir.write("mqtt.py", "import paho\n");
    let err = dir.error(&["-f", "mqtt.py"], &[]);
    assert!(
        err.contains("Locust locustfile") && err.contains("init --from-locust"),
        "{err}"
    );
}

#[test]
fn locust_only_flags_are_one_line_saying_what_to_do_instead() {
    let dir = TestDir::new();
    for (args, expected) in [
        (
            &["--master"][..],
            "--master is a Locust option: mqblast is not a Locust master",
        ),
        (
            &["--expect-workers", "4"][..],
            "--expect-workers is a Locust option",
        ),
        (
            &["-T", "gps"][..],
            "-T is a Locust option: mqblast has no Python user classes",
        ),
        (&["--processes=4"][..], "--processes is a Locust option"),
        (
            &["--locustfile", "mqtt.py"][..],
            "--locustfile is a Locust option",
        ),
    ] {
        match dir.command(args, &[]) {
            Err(ConfigError::Invalid(message)) => {
                assert!(message.starts_with(expected), "{args:?}: {message}");
                assert!(!message.contains('\n'), "{message}");
            }
            other => panic!("{args:?}: {other:?}"),
        }
    }
    assert!(matches!(
        dir.command(&["--no-such"], &[]),
        Err(ConfigError::Usage(_))
    ));
}

#[test]
fn init_from_locust_refuses_bad_config_py_naming_file_and_line() {
    let dir = TestDir::new();
    let config_py = dir.write("config.py", "tb_address = 'x'\nmqtt_qos = '1'\n");
    let err = import_locust(
        std::slice::from_ref(&config_py),
        config_py.parent().unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.ends_with("config.py line 2: mqtt_qos: expected an integer"),
        "{err}"
    );
    dir.write(
        "config.py",
        "tb_address = 'x'\ndevice_tokens = [\n  'a',\n  'b\n]\n",
    );
    let err = import_locust(&[], config_py.parent().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.ends_with("config.py line 4: unterminated string"),
        "{err}"
    );
    assert!(!config_py.with_file_name("config.toml").exists());
}

#[test]
fn init_from_locust_output_is_a_config_toml_that_builds_the_old_scripts_plan() {
    let dir = TestDir::new();
    let config_py = dir.write(
        "config.py",
        "tb_address = 'tb'\ntb_port = 1884\ndevice_tokens = ['t1', 't2',]\n\
         mqtt_topic = 'v1/lptrk/gps'\nmqtt_qos = 0\nPUBLISH_TIMEOUT = 2500\nOTHER = 1\n",
    );
    dir.write(
        "pyproject.toml",
        "[tool.locust]\nusers = 2\nonly-summary = 1\njson-file = \"out\"\n",
    );
    let done = import_locust(&[], config_py.parent().unwrap()).unwrap();
    assert_eq!(done.token_count, 2);
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.hosts, vec![HostPort::tcp("tb", 1884)]);
    assert_eq!(plan.tokens, vec!["t1", "t2"]);
    assert_eq!((plan.qos, plan.topic.as_str()), (0, "v1/lptrk/gps"));
    assert_eq!(plan.timeout, Duration::from_millis(2500));
    assert!(plan.only_summary);
    assert_eq!(plan.json_path, Some(dir.path_of("out.json").into()));
    let text = std::fs::read_to_string(done.config_toml).unwrap();
    assert!(
        text.contains("config.py line 7: OTHER: mqblast has no setting for it"),
        "{text}"
    );
}
