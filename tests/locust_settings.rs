//! Locust's own settings sources, end to end: a Locust project's `locust.conf` and `LOCUST_*`
//! variables were ignored silently (`users = 3` ran 10 users); the broker now sees the users
//! they set, and the banner says where the number came from.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Clients mosquitto saw connect.
fn connections(broker: &Mosquitto) -> usize {
    broker
        .log()
        .lines()
        .filter(|line| line.contains("New client connected"))
        .count()
}

#[test]
fn a_locust_conf_with_users_3_makes_3_connections_instead_of_10() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-conf");
    dir.write(
        "locust.conf",
        "# the Locust project's\nusers = 3\nspawn-rate = 50\nrun-time = 2s\n",
    );
    let mut cmd = mqblast_command(&["-H", &broker.addr(), "--headless", "--only-summary"]);
    cmd.current_dir(dir.path());
    let run = spawn(cmd).wait(LIMIT);
    run.assert_code(0);
    assert_eq!(
        connections(&broker),
        3,
        "{}\n{}",
        run.describe(),
        broker.log()
    );
    assert!(
        run.stderr.contains("locust.conf: users (line 2)"),
        "the banner names locust.conf as the source:\n{}",
        run.describe()
    );
}

#[test]
fn locust_users_3_in_the_environment_makes_3_connections_instead_of_10() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("locust-env");
    let mut cmd = mqblast_command(&[
        "-H",
        &broker.addr(),
        "--only-summary",
        "-r",
        "50",
        "-t",
        "2s",
    ]);
    cmd.current_dir(dir.path()).env("LOCUST_USERS", "3");
    let run = spawn(cmd).wait(LIMIT);
    run.assert_code(0);
    assert_eq!(
        connections(&broker),
        3,
        "{}\n{}",
        run.describe(),
        broker.log()
    );
    assert!(
        run.stderr.contains("environment: LOCUST_USERS"),
        "{}",
        run.describe()
    );
}
