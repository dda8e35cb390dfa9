//! Subcommands and usage errors.

use super::TestDir;
use crate::config::*;

#[test]
fn init_and_config_default_are_commands() {
    let dir = TestDir::new();
    assert!(matches!(dir.command(&["init"], &[]), Ok(Command::Init)));
    assert!(matches!(
        dir.command(&["config", "--default"], &[]),
        Ok(Command::PrintDefaultConfig)
    ));
}

#[test]
fn config_without_default_is_a_usage_error() {
    let err = TestDir::new().command(&["config"], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Usage(_)));
}

#[test]
fn run_flags_before_a_subcommand_are_a_usage_error() {
    let err = TestDir::new()
        .command(&["-u", "5", "init"], &[])
        .unwrap_err();
    assert!(matches!(err, ConfigError::Usage(_)));
}

#[test]
fn help_is_reported_as_a_clap_usage_result() {
    match TestDir::new().command(&["--help"], &[]) {
        Err(ConfigError::Usage(err)) => {
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
            assert!(err.to_string().contains("--spawn-rate"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn init_writes_the_default_config_and_refuses_to_overwrite() {
    let dir = TestDir::new();
    let path = dir.0.join("config.toml");
    write_default_config(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_CONFIG);
    let err = write_default_config(&path).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "config.toml already exists: not overwriting it (edit it, or remove it first)"
        ),
        "{err}"
    );
}
