//! The global rate's settings: `rate`, `rate_order`, `seed`, `alarms_per_second`,
//! `alarm_storm`, from every source, and the conflicts refused with both settings named.

use std::time::Duration;

use super::TestDir;
use crate::workload::rate::{AlarmStorm, RateOrder, RatePlan};

fn rate_of(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> RatePlan {
    dir.plan(args, env)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .rate
        .expect("a rate")
}

#[test]
fn a_rate_is_spread_over_every_user_of_the_run() {
    let dir = TestDir::new();
    let plan = dir.plan(&["-u", "200", "--rate", "500"], &[]).unwrap();
    assert_eq!(
        plan.rate,
        Some(RatePlan {
            messages_per_s: 500,
            devices: 200,
            first_device_index: 0,
            order: RateOrder::Sequential,
            seed: 0,
            alarms_per_s: 0,
            alarm_storm: None,
        })
    );
    // The per-user pace the engine batches by: D/N seconds.
    assert_eq!(plan.publish_pace(), Duration::from_millis(400));
    assert_eq!(dir.plan(&["-u", "200"], &[]).unwrap().rate, None);
}

#[test]
fn a_shard_keeps_the_whole_runs_devices_and_sends_its_own_part() {
    let dir = TestDir::new();
    let plan = dir
        .plan(&["-u", "10", "--rate", "100", "--shard", "2/3"], &[])
        .unwrap();
    assert_eq!((plan.users, plan.client_index_offset), (3, 4));
    let rate = plan.rate.unwrap();
    assert_eq!((rate.messages_per_s, rate.devices), (100, 10));
    assert_eq!(rate.first_device_index, 0);
}

#[test]
fn with_gateways_the_rate_is_spread_over_every_gateway_device_of_the_run() {
    let dir = TestDir::new();
    let args = [
        "-u",
        "4",
        "--gateway",
        "--devices-per-gateway",
        "25",
        "--rate",
        "200",
        "--shard",
        "2/2",
    ];
    let plan = dir.plan(&args, &[]).unwrap();
    // The shard runs gateways 2 and 3 of 4: the rate still counts all 100 devices, numbered
    // as the gateways name them (device i on gateway i % 4).
    assert_eq!((plan.users, plan.client_index_offset), (2, 2));
    let rate = plan.rate.as_ref().unwrap();
    assert_eq!((rate.messages_per_s, rate.devices), (200, 100));
    assert_eq!(rate.first_device_index, 0);
    // Each device waits D/N = 0.5 s between its points on average.
    assert_eq!(plan.publish_pace(), Duration::from_millis(500));
    // Gateway 3 carries devices 3, 7, 11, ...: its first is the rate's device 3.
    assert_eq!(plan.rate_first_device(3), 3);
    assert_eq!(plan.gateway.as_ref().unwrap().device_numbering(3), (3, 4));
    assert_eq!(plan.rate_devices(2), 50);
}

#[test]
fn every_setting_comes_from_flags_environment_and_config_toml() {
    let dir = TestDir::new();
    let rate = rate_of(
        &dir,
        &[
            "-u",
            "50",
            "--rate",
            "1000",
            "--rate-order",
            "random",
            "--seed",
            "42",
            "--alarms-per-second",
            "5",
            "--alarm-storm",
            "60..120",
        ],
        &[],
    );
    assert_eq!(
        (rate.order, rate.seed, rate.alarms_per_s, rate.alarm_storm),
        (
            RateOrder::Random,
            42,
            5,
            Some(AlarmStorm {
                start_s: 60,
                end_s: 120
            })
        )
    );
    let env = [
        ("MQBLAST_RATE", "300"),
        ("MQBLAST_RATE_ORDER", "random"),
        ("MQBLAST_SEED", "7"),
        ("MQBLAST_ALARMS_PER_SECOND", "1"),
        ("MQBLAST_ALARM_STORM", "0..10"),
    ];
    let rate = rate_of(&dir, &[], &env);
    assert_eq!((rate.messages_per_s, rate.seed), (300, 7));
    dir.write(
        "config.toml",
        "rate = 20\nrate_order = \"random\"\nseed = 3\nalarms_per_second = 2\nalarm_storm = \"5..6\"\n",
    );
    let rate = rate_of(&dir, &[], &[]);
    assert_eq!(
        (rate.messages_per_s, rate.seed, rate.alarms_per_s),
        (20, 3, 2)
    );
    assert_eq!(
        rate.alarm_storm,
        Some(AlarmStorm {
            start_s: 5,
            end_s: 6
        })
    );
}

#[test]
fn a_rate_with_a_per_user_interval_is_refused_naming_both() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--rate", "500", "--interval", "2s"], &[]),
        "--rate 500 with --interval 2s: a global rate schedules every device's messages, so the per-user interval would not be used; set one of them"
    );
    let err = dir.error(&["--interval", "0"], &[("MQBLAST_RATE", "10")]);
    assert!(
        err.starts_with("MQBLAST_RATE=10 with --interval 0: "),
        "{err}"
    );
    dir.write("config.toml", "interval = \"250ms\"\n");
    let err = dir.error(&["--rate", "10"], &[]);
    assert!(
        err.contains("--rate 10 with ") && err.contains("line 1: interval = \"250ms\""),
        "{err}"
    );
}

#[test]
fn the_default_interval_written_out_does_not_conflict_with_a_rate() {
    // `mqblast init` writes `interval = "1s"`: a rate must still run from that file.
    let dir = TestDir::new();
    dir.write("config.toml", crate::config::DEFAULT_CONFIG);
    assert!(rate_of(&dir, &["--rate", "10"], &[]).messages_per_s == 10);
    assert!(rate_of(&dir, &["--rate", "10", "--interval", "1s"], &[]).messages_per_s == 10);
}

#[test]
fn a_rate_of_zero_negative_fractional_or_beyond_a_nanosecond_apart_is_refused() {
    let dir = TestDir::new();
    for bad in ["0", "-5", "1.5", "fast", "1000000001"] {
        let err = dir.error(&[&format!("--rate={bad}")], &[]);
        assert_eq!(
            err,
            format!("--rate {bad}: must be a whole number of messages per second, 1 to 1000000000")
        );
    }
    dir.write("config.toml", "users = 3\nrate = -5\n");
    let err = dir.error(&[], &[]);
    assert!(
        err.ends_with(
            "line 2: rate = -5: must be a whole number of messages per second, 1 to 1000000000"
        ),
        "{err}"
    );
}

#[test]
fn the_rates_companions_without_a_rate_are_refused_naming_them() {
    let dir = TestDir::new();
    let without =
        "has no effect without a global rate: set `rate` (--rate N messages per second) too";
    assert_eq!(
        dir.error(&["--alarms-per-second", "5"], &[]),
        format!("--alarms-per-second 5: {without}")
    );
    assert_eq!(
        dir.error(&["--rate-order", "random"], &[]),
        format!("--rate-order random: {without}")
    );
    // The seed is the run's (paces, value fields), not the rate's: accepted without one.
    assert_eq!(dir.plan(&[], &[("MQBLAST_SEED", "9")]).unwrap().seed, 9);
    assert_eq!(
        dir.error(&["--alarm-storm", "1..2"], &[]),
        format!("--alarm-storm 1..2: {without}")
    );
    // Their defaults written out change nothing and are accepted.
    dir.plan(
        &[
            "--rate-order",
            "sequential",
            "--seed",
            "0",
            "--alarms-per-second",
            "0",
        ],
        &[],
    )
    .unwrap();
}

#[test]
fn more_alarms_than_messages_are_refused_naming_both() {
    let dir = TestDir::new();
    assert_eq!(
        dir.error(&["--rate", "10", "--alarms-per-second", "11"], &[]),
        "--alarms-per-second 11 with --rate 10: more alarms per second than messages per second"
    );
    let rate = rate_of(&dir, &["--rate", "10", "--alarms-per-second", "10"], &[]);
    assert_eq!(rate.alarms_per_s, 10);
}

#[test]
fn a_storm_that_ends_before_it_starts_or_is_empty_or_misspelt_is_refused() {
    let dir = TestDir::new();
    let with = |storm: &str| {
        dir.error(
            &[
                "--rate",
                "10",
                "--alarms-per-second",
                "1",
                &format!("--alarm-storm={storm}"),
            ],
            &[],
        )
    };
    assert_eq!(
        with("120..60"),
        "--alarm-storm 120..60: the storm ends before it starts (END < START)"
    );
    assert!(
        with("60..60").contains("an empty window"),
        "{}",
        with("60..60")
    );
    for bad in ["60-120", "60..", "a..b", "-1..5", "1..2..3"] {
        assert!(
            with(bad).contains("expected START..END in whole seconds"),
            "{bad}: {}",
            with(bad)
        );
    }
    assert_eq!(
        dir.error(&["--rate", "10", "--alarm-storm", "1..2"], &[]),
        "--alarm-storm 1..2: names the seconds with alarms, but no message is one: set alarms_per_second (--alarms-per-second N) too"
    );
}

#[test]
fn a_seed_with_the_sequential_order_seeds_the_run_and_a_bad_order_is_refused() {
    let dir = TestDir::new();
    let plan = dir.plan(&["--rate", "10", "--seed", "5"], &[]).unwrap();
    assert_eq!((plan.seed, plan.rate.map(|rate| rate.seed)), (5, Some(5)));
    assert_eq!(
        dir.error(&["--rate", "10", "--rate-order", "shuffled"], &[]),
        "--rate-order shuffled: must be sequential or random"
    );
}

#[test]
fn the_effective_configuration_records_the_rate() {
    let dir = TestDir::new();
    let plan = dir
        .plan(
            &[
                "--rate",
                "100",
                "--rate-order",
                "random",
                "--seed",
                "4",
                "--alarms-per-second",
                "2",
                "--alarm-storm",
                "3..9",
            ],
            &[],
        )
        .unwrap();
    let config = &plan.effective_config;
    assert_eq!(config["rate"], 100);
    assert_eq!(config["rate_order"], "random");
    assert_eq!(config["seed"], 4);
    assert_eq!(config["alarms_per_second"], 2);
    assert_eq!(config["alarm_storm"], "3..9");
    let unset = dir.plan(&[], &[]).unwrap();
    assert!(unset.effective_config["rate"].is_null());
    assert_eq!(unset.effective_config["rate_order"], "sequential");
}
