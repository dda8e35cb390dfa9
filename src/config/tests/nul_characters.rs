//! U+0000 in a client id, user name, password or device token is refused at start-up, from
//! every source, naming the setting (and a token's position or line, never its text): MQTT
//! forbids it [MQTT-1.5.3-2] and a broker drops the CONNECT that carries one, so without
//! this every client of the run failed at connect time. Other control characters pass.
//!
//! A command line or an environment variable cannot carry a NUL through `exec`, but the
//! parser is called here in-process, so those sources are checked too.

use super::TestDir;

const NUL: &str = "contains a NUL character (U+0000), which MQTT forbids in strings [MQTT-1.5.3-2]";

#[test]
fn a_client_id_template_with_a_nul_is_refused_from_the_flag_the_variable_and_the_file() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--client-id", "dev\0-{i}"], &[]),
        format!("--client-id: {NUL}")
    );
    assert_eq!(
        dir.error(&[], &[("MQBLAST_CLIENT_ID", "dev\0-{i}")]),
        format!("MQBLAST_CLIENT_ID: {NUL}")
    );
    dir.write("config.toml", "client_id = \"dev\\u0000-{i}\"\n");
    assert_eq!(
        dir.error(&[], &[]),
        format!("{} line 1: client_id: {NUL}", dir.path_of("config.toml"))
    );
}

#[test]
fn a_user_name_or_password_with_a_nul_is_refused_without_echoing_it() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--username", "a\0b"], &[]),
        format!("--username: {NUL}")
    );
    assert_eq!(
        dir.error(&[], &[("MQBLAST_USERNAME", "a\0b")]),
        format!("MQBLAST_USERNAME: {NUL}")
    );
    assert_eq!(
        dir.error(&["--username", "u", "--password", "s3cr\0t"], &[]),
        format!("--password: {NUL}")
    );
    assert_eq!(
        dir.error(&["--username", "u"], &[("MQBLAST_PASSWORD", "s3cr\0t")]),
        format!("MQBLAST_PASSWORD: {NUL}")
    );
    dir.write(
        "config.toml",
        "username = \"u\"\npassword = \"s3cr\\u0000t\"\n",
    );
    assert_eq!(
        dir.error(&[], &[]),
        format!("{} line 2: password: {NUL}", dir.path_of("config.toml"))
    );
}

#[test]
fn a_device_token_with_a_nul_is_refused_naming_its_position_without_echoing_it() {
    let dir = TestDir::new();
    let tokens = "tok-a,tok\0b,tok-c";
    assert_eq!(
        dir.error(&["--tokens", tokens], &[]),
        format!("--tokens: token 2 of 3 {NUL}")
    );
    assert_eq!(
        dir.error(&[], &[("MQBLAST_TOKENS", tokens)]),
        format!("MQBLAST_TOKENS: token 2 of 3 {NUL}")
    );
    dir.write(
        "config.toml",
        "\ntokens = [\"s3cret\\u0000a\", \"s3cret-b\"]\n",
    );
    let error = dir.error(&[], &[]);
    assert_eq!(
        error,
        format!(
            "{} line 2: tokens: token 1 of 2 {NUL}",
            dir.path_of("config.toml")
        )
    );
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn a_device_token_with_a_nul_in_a_tokens_file_is_refused_naming_the_line() {
    let dir = TestDir::new();
    dir.write("tokens.txt", "# devices\ntok-a\n\ntok\0b\n");
    let error = dir.error(&["--tokens-file", "tokens.txt"], &[]);
    assert_eq!(
        error,
        format!(
            "tokens file {} line 4: token {NUL}",
            dir.path_of("tokens.txt")
        )
    );
    assert!(
        !error.contains("tok-a") && !error.contains("tok\0b"),
        "{error}"
    );
    let from_env = dir.error(&[], &[("MQBLAST_TOKENS_FILE", "tokens.txt")]);
    assert_eq!(from_env, error);
}

#[test]
fn other_control_characters_are_discouraged_by_mqtt_but_not_refused() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[
                "--client-id",
                "dev\u{1}-{i}",
                "--username",
                "u\u{7f}",
                "--password",
                "p\u{9f}",
            ],
            &[("MQBLAST_TOKENS", "tok\u{1f}a")],
        )
        .unwrap();
    assert_eq!(plan.tokens, vec!["tok\u{1f}a"]);
    assert_eq!(plan.username.as_deref(), Some("u\u{7f}"));
}
