//! Device tokens from the flag, the environment or a file, and their redaction.

use super::TestDir;
use crate::config::*;

#[test]
fn tokens_are_read_from_the_flag_or_the_file() {
    let dir = TestDir::new();
    let plan = dir.plan(&["--tokens", "a, b ,c"], &[]).unwrap();
    assert_eq!(plan.tokens, vec!["a", "b", "c"]);
    dir.write("tokens.txt", "\u{feff}# devices\nA1\n\n  B2  \r\n# end\n");
    let plan = dir.plan(&["--tokens-file", "tokens.txt"], &[]).unwrap();
    assert_eq!(plan.tokens, vec!["A1", "B2"]);
    assert_eq!(plan.username_for(3).as_deref(), Some("B2"));
}

#[test]
fn an_empty_token_in_a_list_is_refused_without_echoing_tokens() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--tokens", "sekret,,b"], &[]),
        "--tokens: token 2 of 3 is empty"
    );
    dir.write("config.toml", "tokens = [\"a\", \"\"]\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.ends_with("line 1: tokens: token 2 of 2 is empty"),
        "{err}"
    );
}

#[test]
fn an_empty_tokens_file_is_an_error_naming_it() {
    let dir = TestDir::new();
    dir.write("tokens.txt", "");
    assert_eq!(
        dir.error(&["--tokens-file", "tokens.txt"], &[]),
        format!(
            "tokens file {}: no tokens (file is empty)",
            dir.path_of("tokens.txt")
        )
    );
    dir.write("tokens.txt", "# none yet\n\n");
    assert!(dir
        .error(&["--tokens-file", "tokens.txt"], &[])
        .ends_with("no tokens (only blank lines and comments)"));
}

#[test]
fn a_missing_tokens_file_is_an_error_naming_it() {
    let err = TestDir::new().error(&["--tokens-file", "/x"], &[]);
    assert!(err.starts_with("tokens file /x: "), "{err}");
    assert!(err.contains("os error 2"), "{err}");
}

#[test]
fn tokens_and_a_tokens_file_on_the_same_layer_conflict_and_a_higher_layer_wins() {
    let dir = TestDir::new();
    dir.write("tokens.txt", "f1\n");
    let err = dir.error(&["--tokens", "a", "--tokens-file", "tokens.txt"], &[]);
    assert_eq!(
        err,
        format!(
            "--tokens and --tokens-file {}: give tokens or a tokens file, not both",
            "tokens.txt"
        )
    );
    dir.write("config.toml", "tokens = [\"c1\"]\n");
    let plan = dir.plan(&["--tokens-file", "tokens.txt"], &[]).unwrap();
    assert_eq!(plan.tokens, vec!["f1"]);
    let plan = dir.plan(&[], &[("MQBLAST_TOKENS", "e1,e2")]).unwrap();
    assert_eq!(plan.tokens, vec!["e1", "e2"]);
}

#[test]
fn tokens_and_password_are_redacted_in_the_effective_config() {
    let plan = TestDir::new()
        .plan(
            &[
                "--tokens",
                "t1,t2,t3",
                "--password",
                "pw",
                "--json",
                "out.json",
            ],
            &[],
        )
        .unwrap();
    let effective = &plan.effective_config;
    assert_eq!(effective["tokens"], "<3 tokens redacted>");
    assert_eq!(effective["password"], "<redacted>");
    assert!(!effective.to_string().contains("t1"));
    assert!(!effective.to_string().contains("\"pw\""));
    assert_eq!(effective["run_time"], "10s");
    assert_eq!(effective["qos"], 1);
    let keys: Vec<&str> = effective
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys[0], "config_file");
    assert_eq!(&keys[1..], setting_names().collect::<Vec<_>>().as_slice());
}
