//! Locust's own sources, `~/.locust.conf`, `./locust.conf`, `--config FILE.conf` and `LOCUST_*`,
//! in Locust's documented order (~/.locust.conf < locust.conf < pyproject.toml [tool.locust] <
//! --config < env < CLI), placed in mqblast's (defaults < ... < config.toml < environment <
//! flags). These were ignored silently: `locust.conf` with `users = 3` ran 10 users.

use super::TestDir;
use crate::config::*;
use crate::plan::SourceLayer;

/// One source setting `users`: adds to the environment or the arguments, or writes a file.
type Step<'a> = &'a dyn Fn(&mut Vec<(&'a str, &'a str)>, &mut Vec<&'a str>);

/// `users` set in the first `n` sources of the precedence table, lowest first; returns the
/// users of the plan and where the banner says they came from.
fn users_with_sources_up_to(n: usize) -> (u32, String) {
    let dir = TestDir::new();
    let home = dir.path_of("home");
    let mut env: Vec<(&str, &str)> = vec![("HOME", home.as_str())];
    let mut args: Vec<&str> = Vec::new();
    let steps: [Step; 8] = [
        &|_, _| {
            dir.write("home/.locust.conf", "users = 1\n");
        },
        &|_, _| {
            dir.write("locust.conf", "# Locust's\nusers = 2\n");
        },
        &|_, _| {
            dir.write("pyproject.toml", "[tool.locust]\nusers = 3\n");
        },
        &|_, args| {
            dir.write("prod.conf", "users: 4\n");
            args.extend(["--config", "prod.conf"]);
        },
        &|_, _| {
            dir.write("config.toml", "users = 5\n");
        },
        &|env, _| env.push(("LOCUST_USERS", "6")),
        &|env, _| env.push(("MQBLAST_USERS", "7")),
        &|_, args| args.extend(["-u", "8"]),
    ];
    for step in &steps[..n] {
        step(&mut env, &mut args);
    }
    let plan = dir.plan(&args, &env).unwrap();
    let place = plan
        .sources
        .iter()
        .find(|source| source.name == "users")
        .map_or("default".to_string(), |source| source.place.clone());
    let place = place.replace(&format!("{}/", dir.path_of("")), "");
    (plan.users, place.replace(&dir.path_of(""), ""))
}

#[test]
fn locust_conf_and_locust_env_take_their_place_in_the_precedence_table() {
    let expected = [
        (10, "default"),
        (1, "home/.locust.conf line 1"),
        (2, "locust.conf line 2"),
        (3, "pyproject.toml line 2"),
        (4, "prod.conf line 1"),
        (5, "config.toml line 1"),
        (6, "LOCUST_USERS"),
        (7, "MQBLAST_USERS"),
        (8, "--users"),
    ];
    for (n, (users, place)) in expected.into_iter().enumerate() {
        assert_eq!(
            users_with_sources_up_to(n),
            (users, place.to_string()),
            "with the first {n} sources"
        );
    }
}

#[test]
fn a_locust_conf_with_users_3_runs_3_users_instead_of_being_ignored() {
    let dir = TestDir::new();
    dir.write("locust.conf", "users = 3\n");
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.users, 3);
    let users = plan.sources.iter().find(|s| s.name == "users").unwrap();
    assert_eq!(users.layer, SourceLayer::LocustConf);
}

#[test]
fn locust_users_3_in_the_environment_runs_3_users_instead_of_being_ignored() {
    let plan = TestDir::new().plan(&[], &[("LOCUST_USERS", "3")]).unwrap();
    assert_eq!(plan.users, 3);
    let users = plan.sources.iter().find(|s| s.name == "users").unwrap();
    assert_eq!(
        (users.layer, users.place.as_str()),
        (SourceLayer::Env, "LOCUST_USERS")
    );
}

#[test]
fn locust_conf_is_read_with_every_syntax_locusts_parser_takes() {
    let dir = TestDir::new();
    dir.write(
        "locust.conf",
        "; an ini comment\n[locust]\n---\nusers: 7\n--spawn-rate 2.5\nrun-time = \"1m\" # a minute\n\
         headless\nonly-summary = true\nrequest_type = 'MQTT#1'\ncsv_full_history = false\nqos = 2 ; two\n\
         users = 4\n",
    );
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(
        plan.users, 4,
        "a key set twice keeps its last value, as in Locust"
    );
    assert_eq!(plan.spawn_rate, 2.5);
    assert_eq!(plan.run_time, Some(std::time::Duration::from_secs(60)));
    assert!(plan.only_summary);
    assert!(plan.web.is_none());
    assert_eq!(plan.request_type, "MQTT#1");
    assert!(!plan.csv_full_history);
    assert_eq!(plan.qos, 2);
}

#[test]
fn locust_env_names_are_locusts_own_not_the_option_names() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[],
            &[
                ("LOCUST_MODE_WORKER", "true"),
                ("LOCUST_MASTER_NODE_HOST", "10.1.2.3"),
                ("LOCUST_MASTER_NODE_PORT", "6000"),
                ("LOCUST_MASTER_HOST", "ignored: not a Locust variable"),
            ],
        )
        .unwrap();
    let worker = plan.worker.unwrap();
    assert_eq!(
        (worker.master_host.as_str(), worker.master_port),
        ("10.1.2.3", 6000)
    );
}

#[test]
fn a_bad_locust_conf_value_names_the_file_line_and_key() {
    let dir = TestDir::new();
    dir.write("locust.conf", "users = 3\nspawn-rate = fast\n");
    let err = dir.error(&[], &[]);
    assert_eq!(
        err,
        format!(
            "{} line 2: spawn-rate = fast: expected a number",
            dir.path_of("locust.conf")
        )
    );
    assert!(dir
        .error(&[], &[("LOCUST_USERS", "many")])
        .starts_with("LOCUST_USERS=many: "));
    dir.write("locust.conf", "users 3 = 4 = \n=oops\n");
    assert!(dir
        .error(&[], &[])
        .contains("locust.conf line 2: not a Locust config line"));
}

#[test]
fn keys_without_an_mqblast_meaning_get_one_note_per_key_across_every_locust_source() {
    let dir = TestDir::new();
    dir.write(
        "locust.conf",
        "locustfile = mqtt.py\nexpect-workers = 2\nmy-option = 1\n",
    );
    dir.write(
        "pyproject.toml",
        "[tool.locust]\nlocustfile = \"mqtt.py\"\n",
    );
    let plan = dir.plan(&[], &[("LOCUST_LOCUSTFILE", "mqtt.py")]).unwrap();
    assert_eq!(plan.notes.len(), 3, "{:#?}", plan.notes);
    let locustfile: Vec<&String> = plan
        .notes
        .iter()
        .filter(|n| n.contains("locustfile"))
        .collect();
    assert_eq!(locustfile.len(), 1, "{:#?}", plan.notes);
    assert!(
        locustfile[0].starts_with("mqblast: note: LOCUST_LOCUSTFILE: mqblast runs no locustfile")
    );
    assert!(
        plan.notes.iter().all(|n| n.contains("# Not used:")),
        "{:#?}",
        plan.notes
    );
}

#[test]
fn notes_are_not_repeated_on_every_run_after_init_from_locust_wrote_them_down() {
    let dir = TestDir::new();
    dir.write(
        "pyproject.toml",
        "[tool.locust]\nlocustfile = \"mqtt.py\"\nusers = 3\n",
    );
    dir.write(
        "locust.conf",
        "expect-workers = 2\nprocesses = 4\nspawn-rate = 2.5\nusers = 9\nheadless\n",
    );
    let before = dir.plan(&[], &[]).unwrap();
    assert_eq!(before.notes.len(), 3, "{:#?}", before.notes);
    import_locust(&[], &dir.0).unwrap();
    let config = std::fs::read_to_string(dir.0.join("config.toml")).unwrap();
    assert!(config.contains("spawn_rate = 2.5"), "{config}");
    assert!(
        config.contains("users = 3"),
        "pyproject.toml wins over locust.conf: {config}"
    );
    assert!(config.contains("headless = true"), "{config}");
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!((plan.users, plan.spawn_rate), (3, 2.5));
    assert!(plan.notes.is_empty(), "{:#?}", plan.notes);
    // A key added since is noted; one listed by hand is not.
    dir.write(
        "locust.conf",
        "expect-workers = 2\nprocesses = 4\nloglevel = DEBUG\ntags = a\n",
    );
    let mut config = config;
    config.push_str("#   locust.conf line 4: tags: not used\n");
    dir.write("config.toml", &config);
    let plan = dir.plan(&[], &[]).unwrap();
    assert_eq!(plan.notes.len(), 1, "{:#?}", plan.notes);
    assert!(
        plan.notes[0].contains("locust.conf line 3: loglevel"),
        "{:#?}",
        plan.notes
    );
}

#[test]
fn config_naming_a_conf_file_is_locusts_config_and_config_toml_is_still_read() {
    let dir = TestDir::new();
    dir.write("config.toml", "qos = 2\n");
    dir.write("team.conf", "users = 4\n");
    let plan = dir.plan(&["--config", "team.conf"], &[]).unwrap();
    assert_eq!((plan.users, plan.qos), (4, 2));
    let plan = dir.plan(&[], &[("MQBLAST_CONFIG", "team.conf")]).unwrap();
    assert_eq!((plan.users, plan.qos), (4, 2));
    assert!(dir
        .error(&["--config", "missing.conf"], &[])
        .contains("missing.conf"));
}
