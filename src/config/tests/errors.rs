//! Errors name their source: file and line, variable or flag.

use super::TestDir;

#[test]
fn a_bad_qos_in_the_file_names_file_line_and_key() {
    let dir = TestDir::new();
    dir.write("config.toml", "# comment\n\nusers = 1\n\n\n\nqos = 3\n");
    let err = dir.error(&[], &[]);
    assert_eq!(
        err,
        format!(
            "{} line 7: qos = 3: must be 0, 1 or 2",
            dir.path_of("config.toml")
        )
    );
}

#[test]
fn a_bad_qos_in_the_environment_or_flags_names_the_variable_or_flag() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&[], &[("MQBLAST_QOS", "3")]),
        "MQBLAST_QOS=3: must be 0, 1 or 2"
    );
    assert_eq!(
        dir.error(&["--qos", "x"], &[]),
        "--qos x: must be 0, 1 or 2"
    );
}

#[test]
fn an_unknown_key_names_the_key_file_and_line() {
    let dir = TestDir::new();
    dir.write("config.toml", "users = 1\nusrs = 2\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.starts_with(&format!(
            "{} line 2: unknown setting \"usrs\"",
            dir.path_of("config.toml")
        )),
        "{err}"
    );
}

#[test]
fn a_section_is_an_unknown_key() {
    let dir = TestDir::new();
    dir.write("config.toml", "[run]\nusers = 2\n");
    assert!(dir.error(&[], &[]).contains("unknown setting \"run\""));
}

#[test]
fn a_key_set_twice_through_an_alias_is_an_error() {
    let dir = TestDir::new();
    dir.write("config.toml", "run_time = 1\nrun-time = 2\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.contains("line 2: run-time is set twice (also as run_time on line 1)"),
        "{err}"
    );
}

#[test]
fn a_toml_syntax_error_names_file_line_and_column() {
    let dir = TestDir::new();
    dir.write("config.toml", "users = 1\nqos = = 2\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.starts_with(&format!("{} line 2 column ", dir.path_of("config.toml"))),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn a_wrong_type_in_the_file_is_explained() {
    let dir = TestDir::new();
    dir.write("config.toml", "users = \"many\"\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.ends_with("line 1: users = \"many\": expected a whole number"),
        "{err}"
    );
}

#[test]
fn a_named_config_file_that_is_missing_is_an_error() {
    let err = TestDir::new().error(&["-f", "/nonexistent/mq.toml"], &[]);
    assert!(
        err.starts_with("config file /nonexistent/mq.toml: "),
        "{err}"
    );
}

#[test]
fn a_bad_host_in_a_list_is_named() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["-H", "a:1,b:0"], &[]),
        "--host a:1,b:0: \"b:0\": port \"0\" must be a number from 1 to 65535"
    );
    assert_eq!(dir.error(&["-H", "a,,b"], &[]), "--host a,,b: \"\": missing host name: expected mqtt://host:port, mqtts://host:port, ws://host:port/path, wss://host:port/path, host:port or host");
}
