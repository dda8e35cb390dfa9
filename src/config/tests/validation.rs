//! Values that parse but are refused, with the reason.

use super::TestDir;
use crate::config::values::DURATION_FORMS;

#[test]
fn zero_users_with_a_message_limit_explains_both_values() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--users", "0", "--messages", "100"], &[]),
        "--users 0 with --messages 100: at least one user is needed to publish"
    );
    assert_eq!(
        dir.error(&[], &[("MQBLAST_USERS", "0")]),
        "MQBLAST_USERS=0: at least one user is needed to publish"
    );
}

#[test]
fn spawn_rate_must_be_positive_and_finite() {
    let dir = TestDir::new();
    for rate in ["0", "inf", "NaN", "fast"] {
        let err = dir.error(&["-r", rate], &[]);
        assert!(err.starts_with(&format!("--spawn-rate {rate}: ")), "{err}");
    }
    assert_eq!(
        dir.error(&[], &[("MQBLAST_SPAWN_RATE", "-1")]),
        "MQBLAST_SPAWN_RATE=-1: must be a number of users per second from 0.001 (one user every 1000 s) up"
    );
    assert_eq!(dir.plan(&["-r", "0.5"], &[]).unwrap().spawn_rate, 0.5);
}

#[test]
fn a_spawn_rate_too_slow_to_pace_is_refused_naming_it() {
    let dir = TestDir::new();
    for rate in ["1e-10", "0.0009", "5e-324"] {
        let err = dir.error(&["-r", rate], &[]);
        assert!(err.starts_with(&format!("--spawn-rate {rate}: ")), "{err}");
        assert!(err.contains("from 0.001"), "{err}");
    }
    let err = dir.error(&["conn", "--connect-rate", "1e-300"], &[]);
    assert!(
        err.contains("1e-300") && err.contains("from 0.001"),
        "{err}"
    );
    assert_eq!(dir.plan(&["-r", "0.001"], &[]).unwrap().spawn_rate, 0.001);
}

#[test]
fn max_inflight_must_fit_a_packet_identifier_window() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--max-inflight", "0"], &[]),
        "--max-inflight 0: must be between 1 and 65535"
    );
    assert_eq!(
        dir.error(&["--max-inflight", "65536"], &[]),
        "--max-inflight 65536: must be between 1 and 65535"
    );
    assert_eq!(
        dir.plan(&["--max-inflight", "65535"], &[])
            .unwrap()
            .max_inflight,
        65535
    );
}

#[test]
fn run_time_messages_and_threads_must_be_positive() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["-t", "0"], &[]),
        "--run-time 0: must be longer than 0"
    );
    assert_eq!(
        dir.error(&["--messages", "0"], &[]),
        "--messages 0: must be at least 1"
    );
    assert_eq!(
        dir.error(&["--threads", "0"], &[]),
        "--threads 0: must be at least 1"
    );
    assert_eq!(
        dir.error(&["--timeout", "0s"], &[]),
        "--timeout 0s: must be longer than 0"
    );
}

#[test]
fn a_bad_duration_lists_the_accepted_forms() {
    let err = TestDir::new().error(&["-t", "5 minutes"], &[]);
    assert_eq!(err, format!("--run-time 5 minutes: {DURATION_FORMS}"));
}

#[test]
fn threads_are_capped_at_users() {
    let dir = TestDir::new();
    assert_eq!(
        dir.plan(&["-u", "2", "--threads", "8"], &[])
            .unwrap()
            .threads,
        2
    );
    assert_eq!(dir.plan(&["-u", "1"], &[]).unwrap().threads, 1);
}

#[test]
fn keep_alive_takes_seconds_or_a_duration_in_whole_seconds() {
    let dir = TestDir::new();
    assert_eq!(
        dir.plan(&["--keep-alive", "90"], &[]).unwrap().keep_alive_s,
        90
    );
    assert_eq!(
        dir.plan(&["--keep-alive", "1m30s"], &[])
            .unwrap()
            .keep_alive_s,
        90
    );
    assert_eq!(
        dir.plan(&["--keep-alive", "0"], &[]).unwrap().keep_alive_s,
        0
    );
    assert!(dir
        .error(&["--keep-alive", "500ms"], &[])
        .starts_with("--keep-alive 500ms: must be whole seconds"));
    assert!(dir
        .error(&["--keep-alive", "65536"], &[])
        .contains("at most 65535"));
}

#[test]
fn topics_must_be_non_empty_without_wildcards_or_unknown_placeholders() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--topic", ""], &[]),
        "--topic \"\": must not be empty"
    );
    assert!(dir
        .error(&["--topic", "a/+/b"], &[])
        .starts_with("--topic a/+/b: must not contain the wildcards"));
    assert!(dir.error(&["--topic", "a/#"], &[]).contains("wildcards"));
    assert_eq!(
        dir.error(&["--topic", "v1/{tokn}"], &[]),
        "--topic v1/{tokn}: unknown placeholder {tokn} (known: {i}, {token}, {client_id})"
    );
    let plan = dir
        .plan(&["--topic", "v1/lptrk/gps/{i}/{token}/{client_id}"], &[])
        .unwrap();
    assert_eq!(plan.topic, "v1/lptrk/gps/{i}/{token}/{client_id}");
}

#[test]
fn client_ids_must_be_non_empty_and_distinct_per_client() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--client-id", ""], &[]),
        "--client-id \"\": must not be empty (under --mqtt-version 5 an empty id lets the broker assign one)"
    );
    assert!(dir
        .plan(&["--client-id", "", "-u", "3", "--mqtt-version", "5"], &[])
        .is_ok());
    assert!(dir.error(&["--client-id", "dev"], &[]).contains("add {i}"));
    assert!(dir
        .error(&["--client-id", "{client_id}"], &[])
        .contains("unknown placeholder {client_id}"));
    assert!(dir.plan(&["--client-id", "dev", "-u", "1"], &[]).is_ok());
    assert!(dir
        .plan(
            &["--client-id", "{token}", "-u", "2", "--tokens", "a,b"],
            &[]
        )
        .is_ok());
    assert!(dir
        .error(
            &["--client-id", "{token}", "-u", "3", "--tokens", "a,b"],
            &[]
        )
        .contains("add {i}"));
}

#[test]
fn a_password_without_a_user_name_is_refused_without_echoing_it() {
    let dir = TestDir::new();
    let err = dir.error(&["--password", "hunter2"], &[]);
    assert!(
        err.starts_with("--password: a password needs a user name"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
    assert!(dir
        .plan(&["--password", "p", "--username", "u"], &[])
        .is_ok());
}

#[test]
fn mqtt_5_settings_are_checked_and_refused_under_3_1_1() {
    let dir = TestDir::new();
    assert!(dir
        .error(&["--topic-alias"], &[])
        .contains("is an MQTT 5 setting: add --mqtt-version 5"));
    assert!(dir
        .error(&["--mqtt-version", "6"], &[])
        .contains("expected 3.1.1 or 5"));
    assert!(dir
        .error(&["--mqtt-version", "5", "--retain-handling", "3"], &[])
        .contains("expected 0 (send retained messages)"));
    assert!(dir
        .error(&["--mqtt-version", "5", "--subscription-id", "0"], &[])
        .contains("between 1 and 268435455"));
    assert!(dir
        .error(
            &["--mqtt-version", "5", "--maximum-packet-size", "2000000"],
            &[]
        )
        .contains("the largest packet mqblast reads"));
    assert!(dir
        .error(
            &["--mqtt-version", "5", "--user-properties", "novalue"],
            &[]
        )
        .contains("expected name=value"));
    assert!(dir
        .error(
            &["--mqtt-version", "5", "--connect-properties", "a={seq}"],
            &[]
        )
        .contains("unknown placeholder {seq}"));
    assert!(dir
        .error(&["--mqtt-version", "5", "--session-expiry", "1.5s"], &[])
        .contains("whole seconds"));
    let plan = dir
        .plan(
            &[
                "--mqtt-version",
                "5",
                "--user-properties",
                "a=1,b={i}",
                "--payload-format",
                "utf8",
                "--message-expiry",
                "1m",
                "--receive-maximum",
                "10",
            ],
            &[],
        )
        .unwrap();
    assert_eq!(plan.mqtt_version, crate::mqtt::Version::V5);
    assert_eq!(plan.v5.user_properties.len(), 2);
    assert_eq!(plan.v5.payload_format_indicator, Some(1));
    assert_eq!(plan.v5.message_expiry_s, Some(60));
    assert_eq!(plan.v5.receive_maximum, Some(10));
    assert_eq!(plan.v5.maximum_packet_size, Some(1 << 20), "always sent");
}

#[test]
fn mqtt_version_comes_from_the_environment_and_a_flag_overrides_it() {
    let dir = TestDir::new();
    let plan = dir.plan(&[], &[("MQBLAST_MQTT_VERSION", "5")]).unwrap();
    assert_eq!(plan.mqtt_version, crate::mqtt::Version::V5);
    let plan = dir
        .plan(
            &["--mqtt-version", "3.1.1"],
            &[("MQBLAST_MQTT_VERSION", "5")],
        )
        .unwrap();
    assert_eq!(plan.mqtt_version, crate::mqtt::Version::V311);
}
