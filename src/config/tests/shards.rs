//! `--shard` and `--start-at`.

use super::TestDir;
use crate::config::*;
use crate::shard;

#[test]
fn shards_divide_users_messages_and_spawn_rate_exactly() {
    let dir = TestDir::new();
    let plans: Vec<Plan> = (1..=3)
        .map(|k| {
            let shard = format!("{k}/3");
            let args = [
                "-u",
                "10",
                "--messages",
                "100",
                "-r",
                "30",
                "--connect-rate",
                "60",
                "--shard",
                &shard,
            ];
            dir.plan(&args, &[]).unwrap()
        })
        .collect();
    let users: Vec<u32> = plans.iter().map(|p| p.users).collect();
    assert_eq!(users, vec![4, 3, 3]);
    let messages: Vec<u64> = plans.iter().map(|p| p.messages.unwrap()).collect();
    assert_eq!(messages, vec![34, 33, 33]);
    let offsets: Vec<u64> = plans.iter().map(|p| p.client_index_offset).collect();
    assert_eq!(offsets, vec![0, 4, 7]);
    let rate: f64 = plans.iter().map(|p| p.spawn_rate).sum();
    assert!((rate - 30.0).abs() < 1e-9);
    let connect_rate: f64 = plans.iter().map(|p| p.connect_rate.unwrap()).sum();
    assert!((connect_rate - 60.0).abs() < 1e-9);
    assert_eq!(plans[1].effective_config["shard"], "2/3");
    assert_eq!(plans[1].effective_config["users"], 3);
}

#[test]
fn shards_split_the_tokens_and_keep_each_clients_token() {
    let dir = TestDir::new();
    let tokens = "t0,t1,t2,t3,t4";
    let plan = |k: &str| {
        dir.plan(&["-u", "5", "--tokens", tokens, "--shard", k], &[])
            .unwrap()
    };
    let (first, second) = (plan("1/2"), plan("2/2"));
    assert_eq!(first.tokens, vec!["t0", "t1", "t2"]);
    assert_eq!(second.tokens, vec!["t3", "t4"]);
    assert_eq!(second.client_index_offset, 3);
    assert_eq!(second.token_for(3), "t3");
    assert_eq!(second.username_for(4).as_deref(), Some("t4"));
    // Reports name a token by its position in the whole list, whatever the shard.
    assert_eq!(second.token_index_of(3), Some(3));
    assert_eq!(second.token_index_of(4), Some(4));
    assert_eq!(first.token_index_of(2), Some(2));
}

#[test]
fn without_tokens_no_client_has_a_token_index() {
    let dir = TestDir::new();
    let plan = dir.plan(&["-u", "3"], &[]).unwrap();
    assert_eq!(plan.token_index_of(1), None);
    let plan = dir.plan(&["-u", "5", "--tokens", "a,b"], &[]).unwrap();
    assert_eq!(
        plan.token_index_of(3),
        Some(1),
        "round-robin: client 3 uses token 1"
    );
}

#[test]
fn a_shard_that_would_get_nothing_is_refused() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["-u", "2", "--shard", "3/3"], &[]),
        "--shard 3/3: 2 users cannot be split over 3 shards: each shard needs at least one user"
    );
    assert!(dir
        .error(&["-u", "4", "--messages", "2", "--shard", "1/3"], &[])
        .contains("--messages 2 cannot be split over 3 shards"));
    assert!(dir
        .error(&["-u", "4", "--tokens", "a,b", "--shard", "1/3"], &[])
        .starts_with("--shard 1/3: 2 device tokens cannot be split over 3 shards"));
    assert!(dir
        .error(&["--shard", "0/3"], &[])
        .starts_with("--shard 0/3: expected K/N"));
    assert!(dir
        .error(&[], &[("MQBLAST_SHARD", "4/3")])
        .starts_with("MQBLAST_SHARD=4/3: expected K/N"));
}

#[test]
fn a_client_id_without_i_is_refused_when_the_whole_plan_has_several_users() {
    let dir = TestDir::new();
    assert!(dir
        .error(&["-u", "2", "--client-id", "dev", "--shard", "1/2"], &[])
        .contains("add {i}"));
}

#[test]
fn without_a_shard_the_plan_is_whole() {
    let plan = TestDir::new().plan(&["-u", "7"], &[]).unwrap();
    assert_eq!((plan.shard, plan.client_index_offset), (None, 0));
    assert_eq!(plan.effective_config["shard"], serde_json::Value::Null);
}

#[test]
fn a_start_time_ahead_is_kept_and_one_in_the_past_is_refused() {
    let dir = TestDir::new();
    let ahead = (shard::now_epoch_ms() + 60_000).to_string();
    let plan = dir.plan(&["--start-at", &ahead], &[]).unwrap();
    assert_eq!(plan.start_at_epoch_ms, Some(ahead.parse().unwrap()));
    assert_eq!(
        plan.effective_config["start_at"],
        ahead.parse::<u64>().unwrap()
    );
    let past = (shard::now_epoch_ms() - 5_000).to_string();
    let err = dir.error(&["--start-at", &past], &[]);
    assert!(
        err.starts_with(&format!(
            "--start-at {past}: the start time is 5.0 s in the past"
        )),
        "{err}"
    );
    dir.write("config.toml", "start_at = \"soon\"\n");
    assert!(dir
        .error(&[], &[])
        .contains("expected milliseconds since the Unix epoch"));
}
