//! The payload file and the open-files limit.

use super::TestDir;
use crate::config::*;

#[test]
fn a_data_json_in_the_working_directory_is_used_by_default() {
    let dir = TestDir::new();
    dir.write("data.json", "[{\"a\":1},{\"a\":2}]");
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.payload.len(), 2);
    assert_eq!(plan.payload.source(), dir.path_of("data.json"));
}

#[test]
fn a_named_payload_that_is_missing_is_an_error() {
    let err = TestDir::new().error(&["--payload", "data.json"], &[]);
    assert!(err.starts_with("payload "), "{err}");
    assert!(
        err.contains("data.json: No such file or directory"),
        "{err}"
    );
}

#[test]
fn an_invalid_payload_names_file_line_and_column() {
    let dir = TestDir::new();
    dir.write("data.json", "{\n  \"a\": 1,\n    \"b\" 2\n}");
    let err = dir.error(&[], &[]);
    assert_eq!(
        err,
        format!(
            "{}: line 3 column 9: expected `:`",
            dir.path_of("data.json")
        )
    );
}

#[test]
fn users_beyond_the_open_files_limit_are_refused_with_advice() {
    let dir = TestDir::new();
    let ctx = Context {
        open_files_limit: 20_000,
        ..dir.ctx()
    };
    let err = match dir.command_in(&["-u", "25000", "-H", "broker"], &[], &ctx) {
        Err(ConfigError::Invalid(message)) => message,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(err, "--users 25000 needs 25000 sockets but this process may open at most 19936 (open-files limit 20000): run fewer users per process, or split the run over several processes or hosts (scripts/run_cluster.sh, --shard)");
    assert!(dir
        .command_in(&["-u", "19936", "-H", "broker"], &[], &ctx)
        .is_ok());
}

#[test]
fn the_embedded_broker_needs_a_second_socket_per_user() {
    let dir = TestDir::new();
    let ctx = Context {
        open_files_limit: 1_064,
        ..dir.ctx()
    };
    assert!(dir.command_in(&["-u", "500"], &[], &ctx).is_ok());
    let err = dir
        .command_in(&["-u", "501"], &[], &ctx)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--users 501 needs 1002 sockets (each client and its embedded-broker end)"),
        "{err}"
    );
}
