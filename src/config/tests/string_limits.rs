//! Strings longer than MQTT can carry (65,535 bytes) are refused by config, naming their
//! source without echoing them, instead of panicking in the encoders once the run is going.

use super::TestDir;

const LIMIT: &str = "more than the 65535 an MQTT string can hold";

fn long(byte: char, len: usize) -> String {
    std::iter::repeat_n(byte, len).collect()
}

#[test]
fn a_device_token_over_65535_bytes_is_refused_naming_its_position_without_echoing_it() {
    let dir = TestDir::new();
    let tokens = format!("a,{}", long('t', 65_536));
    assert!(dir.plan(&["--tokens", &long('t', 65_535)], &[]).is_ok());
    assert_eq!(
        dir.error(&["--tokens", &tokens], &[]),
        format!("--tokens: token 2 of 2 is 65536 bytes, {LIMIT}")
    );
}

#[test]
fn a_device_token_over_65535_bytes_in_a_tokens_file_is_refused_naming_the_file_line() {
    let dir = TestDir::new();
    dir.write(
        "tokens.txt",
        &format!("# devices\na\n\n{}\n", long('t', 70_000)),
    );
    assert_eq!(
        dir.error(&["--tokens-file", "tokens.txt"], &[]),
        format!(
            "tokens file {} line 4: token is 70000 bytes, {LIMIT}",
            dir.path_of("tokens.txt")
        )
    );
}

#[test]
fn a_username_over_65535_bytes_is_refused_naming_the_flag_or_variable_without_echoing_it() {
    let dir = TestDir::new();
    let name = long('u', 65_536);
    assert!(dir.plan(&["--username", &name[1..]], &[]).is_ok());
    assert_eq!(
        dir.error(&["--username", &name], &[]),
        format!("--username: is 65536 bytes, {LIMIT}")
    );
    assert_eq!(
        dir.error(&[], &[("MQBLAST_USERNAME", &name)]),
        format!("MQBLAST_USERNAME: is 65536 bytes, {LIMIT}")
    );
}

#[test]
fn a_password_over_65535_bytes_is_refused_naming_the_config_file_line() {
    let dir = TestDir::new();
    let config = format!("username = \"u\"\npassword = \"{}\"\n", long('p', 65_536));
    dir.write("config.toml", &config);
    assert_eq!(
        dir.error(&[], &[]),
        format!(
            "{} line 2: password: is 65536 bytes, {LIMIT}",
            dir.path_of("config.toml")
        )
    );
}

#[test]
fn a_client_id_template_that_renders_over_65535_bytes_for_the_last_client_is_refused() {
    let dir = TestDir::new();
    let template = format!("{}{{i}}", long('c', 65_533));
    // Client 99 renders to 65,535 bytes; client 100 to one more.
    assert!(dir
        .plan(&["-u", "100", "--client-id", &template], &[])
        .is_ok());
    assert_eq!(
        dir.error(&["-u", "101", "--client-id", &template], &[]),
        format!("--client-id: renders to 65536 bytes, {LIMIT} (client 100 with the longest device token)")
    );
}

#[test]
fn a_client_id_that_fits_is_refused_when_the_subscriber_id_made_from_it_would_not() {
    let dir = TestDir::new();
    let template = format!("{}{{i}}", long('c', 65_534));
    assert!(dir.plan(&["--client-id", &template], &[]).is_ok());
    let error = dir.error(&["--client-id", &template, "--sub-users", "1"], &[]);
    // 65,535 + "-sub", rendered for index users + sub_users - 1 = 10 (a bound over all shards).
    assert!(
        error.starts_with("--client-id: renders to 65540 bytes"),
        "{error}"
    );
}

#[test]
fn a_client_id_template_is_rendered_with_the_longest_device_token() {
    let dir = TestDir::new();
    let tokens = format!("a,{}", long('t', 65_000));
    let args = [
        "-u",
        "2",
        "--tokens",
        &tokens,
        "--client-id",
        "{token}-{i}-{i}",
    ];
    assert!(dir.plan(&args, &[]).is_ok());
    let args = [
        "-u",
        "2",
        "--tokens",
        &tokens,
        "--client-id",
        &format!("{}-{{token}}-{{i}}", long('c', 600)),
    ];
    let error = dir.error(&args, &[]);
    assert!(
        error.starts_with("--client-id: renders to 65603 bytes"),
        "{error}"
    );
}

#[test]
fn a_topic_template_that_renders_over_65535_bytes_with_the_longest_token_is_refused() {
    let dir = TestDir::new();
    let topic = format!("{}/{{token}}", long('y', 30_000));
    let fits = format!("a,{}", long('t', 35_000));
    assert!(dir
        .plan(&["--tokens", &fits, "--topic", &topic], &[])
        .is_ok());
    let too_long = format!("a,{}", long('t', 40_000));
    assert_eq!(
        dir.error(
            &["--tokens", &too_long, "--topic", &topic],
            &[("MQBLAST_USERS", "2")]
        ),
        format!(
            "--topic: renders to 70001 bytes, {LIMIT} (client 1 with the longest device token)"
        )
    );
}

#[test]
fn a_topic_template_is_rendered_with_the_widest_client_id() {
    let dir = TestDir::new();
    let client_id = format!("{}-{{i}}", long('c', 40_000));
    assert!(dir
        .plan(
            &["--client-id", &client_id, "--topic", "t/{client_id}"],
            &[]
        )
        .is_ok());
    let error = dir.error(
        &[
            "--client-id",
            &client_id,
            "--topic",
            "{client_id}/{client_id}",
        ],
        &[],
    );
    assert!(
        error.starts_with("--topic: renders to 80005 bytes"),
        "{error}"
    );
}

#[test]
fn an_echoed_value_is_cut_to_80_characters_with_its_length_and_control_characters_escaped() {
    use crate::config::shown;
    assert_eq!(shown("broker.example:1883"), "broker.example:1883");
    let huge = format!("{}\n{}", "h".repeat(100), "x".repeat(50 << 20));
    let cut = shown(&huge);
    assert_eq!(cut, format!("{}... ({} bytes)", "h".repeat(80), huge.len()));
    assert_eq!(shown("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
    assert_eq!(
        shown(&"é".repeat(81)).chars().filter(|&c| c == 'é').count(),
        80
    );
}

#[test]
fn a_huge_listen_address_is_not_echoed_whole() {
    let listen = "1".repeat(100_000);
    let err = match crate::config::parse_from(["mqblast", "sink", "--listen", &listen], &|_| None) {
        Err(crate::config::ConfigError::Invalid(message)) => message,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert!(err.len() < 200 && err.contains("(100000 bytes)"), "{err}");
}
