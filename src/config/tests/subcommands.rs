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
fn config_alone_prints_the_effective_configuration_instead_of_a_usage_error() {
    let dir = TestDir::new();
    dir.write("config.toml", "users = 3\n");
    let plan = match dir.command(&["config", "--qos", "2"], &[("MQBLAST_TOPIC", "t/{i}")]) {
        Ok(Command::PrintConfig(plan)) => plan,
        other => panic!("unexpected {other:?}"),
    };
    let text = render_effective(&plan);
    let line = |name: &str| {
        text.lines()
            .find(|line| {
                line.starts_with(&format!("{name} = ")) || line.starts_with(&format!("# {name} = "))
            })
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
            .to_string()
    };
    assert!(line("users").starts_with("users = 3 "), "{text}");
    assert!(line("users").ends_with("config.toml line 1"), "{text}");
    assert!(line("qos").ends_with("# --qos"), "{text}");
    assert!(line("topic").starts_with("topic = \"t/{i}\""), "{text}");
    assert!(line("topic").ends_with("# MQBLAST_TOPIC"), "{text}");
    assert!(line("spawn_rate").ends_with("# default"), "{text}");
    assert!(
        line("messages").starts_with("# messages = (unset)"),
        "{text}"
    );
    // Every setting is there, and the text (less the unset ones) is a config.toml again.
    for name in setting_names() {
        line(name);
    }
    toml::from_str::<toml::Table>(&text).unwrap();
}

#[test]
fn dash_v_prints_the_version_as_in_locust_not_a_missing_value_error() {
    for flag in ["-V", "--version"] {
        match TestDir::new().command(&[flag], &[]) {
            Err(ConfigError::Usage(err)) => {
                assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion, "{flag}");
                assert!(
                    err.to_string().contains(env!("CARGO_PKG_VERSION")),
                    "{flag}"
                );
            }
            other => panic!("{flag}: unexpected {other:?}"),
        }
    }
    let plan = TestDir::new().plan(&["--mqtt-version", "5"], &[]).unwrap();
    assert_eq!(plan.mqtt_version, crate::mqtt::Version::V5);
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
