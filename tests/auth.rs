//! ThingsBoard-style authentication: device tokens are MQTT usernames, unknown ones are refused.
//!
//! Why it exists: the commonest mistake in a ThingsBoard load test is a wrong token list. The
//! refusal must show up as a counted, readable error ("CONNACK refused: 5 (not authorized)"),
//! must not stop the good devices, and must make the run exit 1. mosquitto 2.0.11 with a
//! password file answers CONNACK 5 to an unlisted username and needs the password even for a
//! listed one, so the runs pass one shared `--password`.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn unknown_token_is_refused_with_connack_5_while_good_tokens_keep_publishing() {
    let broker = Mosquitto::start_with_auth(&["good1", "good2"], SHARED_PASSWORD);
    let dir = TempDir::new("auth");
    let sub = broker.subscribe("mqblast/auth", 1);
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "3",
            "--tokens",
            "good1,good2,badtoken",
            "--password",
            SHARED_PASSWORD,
            "--qos",
            "1",
            "--topic",
            "mqblast/auth",
            "--interval",
            "50ms",
            "-t",
            "3s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(1);
    let summary = Summary::read(&json, &run);

    let refused = summary.errors_starting_with("CONNACK refused: 5");
    assert!(
        refused >= 1,
        "expected a CONNACK 5 refusal in errors: {:?}",
        summary.errors()
    );
    assert!(
        summary
            .errors()
            .iter()
            .any(|(k, _)| k == "CONNACK refused: 5 (not authorized)"),
        "the refusal reads with its code and meaning: {:?}",
        summary.errors()
    );
    assert!(summary.u64("connect.failures") >= 1, "{}", summary.text());
    assert!(
        run.stderr.contains("CONNACK refused: 5"),
        "the error report on stderr names the refusal:\n{}",
        run.describe()
    );

    let requests = summary.u64("publish.requests");
    let failures = summary.u64("publish.failures");
    let ok = requests.saturating_sub(failures);
    assert!(
        ok > 0,
        "the good tokens must still publish: {}",
        summary.text()
    );
    assert!(
        sub.wait_for(ok, Duration::from_secs(10)),
        "every acknowledged publish reaches the subscriber: got {} of {ok}",
        sub.count()
    );

    // Tokens and passwords are secrets: the effective config in the summary redacts them.
    let config = summary.get("config").to_string();
    for secret in ["good1", "good2", "badtoken", SHARED_PASSWORD] {
        assert!(
            !config.contains(secret),
            "summary config leaks {secret:?}: {config}"
        );
    }
}

#[test]
fn tokens_file_is_read_one_token_per_line() {
    let broker = Mosquitto::start_with_auth(&["dev-a", "dev-b"], SHARED_PASSWORD);
    let dir = TempDir::new("auth-file");
    let tokens = dir.write("tokens.txt", "dev-a\ndev-b\n");
    let sub = broker.subscribe("mqblast/auth-file", 1);
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "4",
            "--tokens-file",
            &tokens,
            "--password",
            SHARED_PASSWORD,
            "--qos",
            "1",
            "--topic",
            "mqblast/auth-file",
            "--messages",
            "400",
            "--interval",
            "0",
            "-t",
            "60s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let summary = Summary::read(&json, &run);
    assert_eq!(summary.u64("publish.requests"), 400);
    assert_eq!(summary.u64("connect.failures"), 0, "{}", summary.text());
    assert!(
        sub.wait_for(400, Duration::from_secs(10)),
        "got {}",
        sub.count()
    );
}

#[test]
fn wrong_password_is_a_counted_refusal_not_a_crash() {
    let broker = Mosquitto::start_with_auth(&["good1"], SHARED_PASSWORD);
    let dir = TempDir::new("auth-password");
    let json = dir.file("summary.json");
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "2",
            "--username",
            "good1",
            "--password",
            "wrong",
            "--qos",
            "1",
            "--interval",
            "100ms",
            "-t",
            "2s",
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(1);
    let summary = Summary::read(&json, &run);
    assert!(
        summary.errors_starting_with("CONNACK refused: 5") >= 1,
        "{:?}",
        summary.errors()
    );
    assert!(
        !summary.get("config").to_string().contains("wrong"),
        "password redacted"
    );
}

/// Regression: `CONNACK refused: 5 (not authorized)` x 2 among thousands of tokens did not say
/// which devices were refused. The reports name them by client id and token position, and
/// never print the tokens themselves.
#[test]
fn a_refused_device_is_named_by_client_id_and_token_index_never_by_its_token() {
    let broker = Mosquitto::start_with_auth(&["good-a", "good-b", "good-c"], SHARED_PASSWORD);
    let dir = TempDir::new("auth-examples");
    let json = dir.file("summary.json");
    let (csv, html, hlog) = (dir.file("out"), dir.file("out.html"), dir.file("out.hlog"));
    // Client i uses token i % 5: clients 1 and 3 have the bad tokens 1 and 3.
    let tokens = "good-a,bad-secret-one,good-b,bad-secret-two,good-c";
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "6",
            "--tokens",
            tokens,
            "--password",
            SHARED_PASSWORD,
            "--client-id",
            "dev-{i}",
            "--qos",
            "1",
            "--interval",
            "100ms",
            "-t",
            "2s",
            "--csv",
            &csv,
            "--html",
            &html,
            "--hlog",
            &hlog,
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(1);
    let summary = Summary::read(&json, &run);
    let refusal = summary
        .get("error_details")
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reason"] == "CONNACK refused: 5 (not authorized)")
        .unwrap_or_else(|| panic!("no refusal in {}", summary.text()))
        .clone();
    assert_eq!(refusal["count"], 2, "{refusal}");
    assert_eq!(
        refusal["examples"],
        serde_json::json!([
            {"client_id": "dev-1", "token_index": 1},
            {"client_id": "dev-3", "token_index": 3},
        ]),
        "{refusal}"
    );
    assert!(
        run.stderr
            .contains("clients: dev-1 (token #1), dev-3 (token #3)"),
        "the console error report names the refused devices:\n{}",
        run.describe()
    );

    // The same from the saved file, and after a merge (the union, each client once).
    let report = run_mqblast(&["report", &json], RUN_LIMIT);
    assert!(report
        .stdout
        .contains("clients: dev-1 (token #1), dev-3 (token #3)"));
    let merged = dir.file("merged.json");
    run_mqblast(&["merge", &json, &json, "-o", &merged], RUN_LIMIT).assert_code(0);
    let merged_text = std::fs::read_to_string(&merged).unwrap();
    let merged_doc: serde_json::Value = serde_json::from_str(&merged_text).unwrap();
    let merged_refusal = merged_doc["error_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reason"] == "CONNACK refused: 5 (not authorized)")
        .unwrap();
    assert_eq!(merged_refusal["count"], 4);
    assert_eq!(merged_refusal["examples"], refusal["examples"]);

    let failures_csv = std::fs::read_to_string(format!("{csv}_failures.csv")).unwrap();
    assert!(
        failures_csv.contains("dev-1 (token #1); dev-3 (token #3)"),
        "{failures_csv}"
    );
    let html_text = std::fs::read_to_string(&html).unwrap();
    assert!(html_text.contains("dev-1 (token #1), dev-3 (token #3)"));

    let mut outputs = vec![
        ("stdout".to_string(), run.stdout.clone()),
        ("stderr".to_string(), run.stderr.clone()),
        ("report".to_string(), report.stdout.clone() + &report.stderr),
        (merged.clone(), merged_text),
    ];
    let files = [json.clone(), html.clone(), hlog.clone()];
    let csv_files =
        ["stats", "stats_history", "failures", "exceptions"].map(|s| format!("{csv}_{s}.csv"));
    for path in files.iter().chain(&csv_files) {
        outputs.push((path.clone(), std::fs::read_to_string(path).unwrap()));
    }
    for (name, text) in &outputs {
        for secret in [
            "bad-secret-one",
            "bad-secret-two",
            "good-a",
            SHARED_PASSWORD,
        ] {
            assert!(!text.contains(secret), "{name} leaks {secret:?}");
        }
    }
}
