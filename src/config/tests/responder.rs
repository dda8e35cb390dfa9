//! `--rpc-responder`, its delay and its answer: defaults, sources, and refusals naming the key.

use std::time::Duration;

use super::TestDir;
use crate::workload::responder::{ResponsePayload, MAX_RESPONSE_BYTES};

#[test]
fn the_responder_is_off_by_default_and_echoes_params_at_once_when_on() {
    let dir = TestDir::new();
    assert_eq!(dir.plan(&[], &[]).unwrap().rpc_responder, None);
    let responder = dir
        .plan(&["--rpc-responder"], &[])
        .unwrap()
        .rpc_responder
        .unwrap();
    assert_eq!(responder.delay, Duration::ZERO);
    assert_eq!(responder.response, ResponsePayload::EchoParams);
}

#[test]
fn the_answer_is_inline_json_a_file_or_echo_serialised_once_compactly() {
    let dir = TestDir::new();
    let inline = dir
        .plan(
            &["--rpc-responder", "--rpc-response", r#"{ "ok" : true }"#],
            &[],
        )
        .unwrap()
        .rpc_responder
        .unwrap();
    assert_eq!(
        inline.response,
        ResponsePayload::Fixed {
            source: "inline JSON".into(),
            json: br#"{"ok":true}"#.to_vec().into_boxed_slice()
        }
    );
    dir.write("answers/answer.json", "[1, 2]\n");
    dir.write(
        "answers/config.toml",
        "rpc_responder = true\nrpc_response = \"answer.json\"\nrpc_response_delay = \"20ms\"\n",
    );
    // Relative to the config file's directory.
    let from_file = dir
        .plan(&["-f", "answers/config.toml"], &[])
        .unwrap()
        .rpc_responder
        .unwrap();
    assert_eq!(from_file.delay, Duration::from_millis(20));
    match from_file.response {
        ResponsePayload::Fixed { source, json } => {
            assert!(source.ends_with("answer.json"), "{source}");
            assert_eq!(&json[..], b"[1,2]");
        }
        other => panic!("{other:?}"),
    }
    let echo = dir
        .plan(
            &["-f", "answers/config.toml", "--rpc-response", "echo"],
            &[],
        )
        .unwrap()
        .rpc_responder
        .unwrap();
    assert_eq!(echo.response, ResponsePayload::EchoParams);
}

#[test]
fn bad_answers_and_delays_exit_2_naming_the_key_and_where() {
    let dir = TestDir::new();
    let err = dir.error(&["--rpc-responder", "--rpc-response", "{\"a\":"], &[]);
    assert!(
        err.starts_with("--rpc-response: inline JSON is not JSON: "),
        "{err}"
    );
    let err = dir.error(&["--rpc-responder", "--rpc-response", "missing.json"], &[]);
    assert!(
        err.starts_with("--rpc-response missing.json: cannot read ")
            && err.contains("missing.json"),
        "{err}"
    );
    let big = format!("\"{}\"", "x".repeat(MAX_RESPONSE_BYTES));
    let err = dir.error(&["--rpc-responder", "--rpc-response", &big], &[]);
    assert!(
        err.contains("more than the 16320 an answer may be"),
        "{err}"
    );
    assert_eq!(
        dir.error(&["--rpc-responder", "--rpc-response-delay", "2h"], &[]),
        "--rpc-response-delay 2h: must be at most 1h"
    );
    let err = dir.error(&["--rpc-response-delay", "soon"], &[]);
    assert!(err.starts_with("--rpc-response-delay soon: "), "{err}");
    dir.write("config.toml", "rpc_responder = \"maybe\"\n");
    let err = dir.error(&[], &[]);
    assert!(err.contains("line 1: rpc_responder"), "{err}");
    assert!(err.contains("expected true or false"), "{err}");
}

#[test]
fn a_delay_or_answer_without_the_responder_is_a_note_not_a_silent_no_op() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &["--rpc-response-delay", "20ms", "--rpc-response", "{}"],
            &[],
        )
        .unwrap();
    assert_eq!(plan.rpc_responder, None);
    let notes: Vec<&String> = plan
        .notes
        .iter()
        .filter(|note| note.contains("not used without rpc_responder"))
        .collect();
    assert_eq!(notes.len(), 2, "{:?}", plan.notes);
    assert!(notes[0].contains("--rpc-response-delay 20ms"), "{notes:?}");
    // The default delay, written out, says nothing.
    let plan = dir.plan(&["--rpc-response-delay", "0s"], &[]).unwrap();
    assert!(plan.notes.iter().all(|n| !n.contains("rpc_responder")));
}

#[test]
fn the_environment_turns_the_responder_on_and_the_effective_config_records_it() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[],
            &[
                ("MQBLAST_RPC_RESPONDER", "true"),
                ("MQBLAST_RPC_RESPONSE_DELAY", "5ms"),
            ],
        )
        .unwrap();
    assert_eq!(
        plan.rpc_responder.as_ref().unwrap().delay,
        Duration::from_millis(5)
    );
    assert_eq!(plan.effective_config["rpc_responder"], true);
    assert_eq!(plan.effective_config["rpc_response_delay"], "5ms");
    assert_eq!(plan.effective_config["rpc_response"], "echo params");
}

#[test]
fn calling_and_answering_rpc_under_3_1_1_notes_what_a_plain_broker_does() {
    let dir = TestDir::new();
    let noted = |args: &[&str]| {
        let plan = dir.plan(args, &[]).unwrap();
        plan.notes.iter().any(|note| note.contains("No Local"))
    };
    assert!(noted(&["--rpc-responder", "--stream", "rpc-call"]));
    assert!(!noted(&[
        "--rpc-responder",
        "--stream",
        "rpc-call",
        "--mqtt-version",
        "5"
    ]));
    assert!(!noted(&[
        "--rpc-responder",
        "--stream",
        "attribute-request"
    ]));
    assert!(!noted(&["--stream", "rpc-call"]));
}

#[test]
fn gateways_answer_rpc_and_their_fixed_answer_leaves_room_for_the_devices_name() {
    use crate::workload::gateway_rpc::MAX_GATEWAY_RESPONSE_BYTES;
    let dir = TestDir::new();
    let plan = dir.plan(&["--gateway", "--rpc-responder"], &[]).unwrap();
    assert!(plan.gateway.is_some());
    assert_eq!(
        plan.rpc_responder.unwrap().response,
        ResponsePayload::EchoParams
    );
    // The largest answer a gateway takes is accepted; one byte more is refused, naming it.
    let fits = format!("\"{}\"", "x".repeat(MAX_GATEWAY_RESPONSE_BYTES - 2));
    let args = ["--gateway", "--rpc-responder", "--rpc-response"];
    assert!(dir.plan(&[&args[..], &[&fits]].concat(), &[]).is_ok());
    let big = format!("\"{}\"", "x".repeat(MAX_GATEWAY_RESPONSE_BYTES - 1));
    let err = dir.error(&[&args[..], &[&big]].concat(), &[]);
    assert!(
        err.starts_with("--rpc-response: inline JSON is ")
            && err.contains(&format!(
                "more than the {MAX_GATEWAY_RESPONSE_BYTES} an answer may be (each gateway queues"
            )),
        "{err}"
    );
}
