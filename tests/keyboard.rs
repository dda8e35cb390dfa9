//! Keyboard control of a terminal run (`w`/`W`/`s`/`S`, as Locust's headless runner): the
//! binary runs with a pseudo-terminal as stdin (its controlling terminal, as in a shell),
//! the test types keys into the pty's other end, and a real mosquitto's log says how many
//! clients connected and disconnected. Ctrl-C typed into the pty ends the run, and the
//! terminal's mode is back to what it was (echo and line editing on).

mod common;

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A pseudo-terminal: the end the test types into and the end the child reads.
struct Pty {
    master: std::fs::File,
    slave: OwnedFd,
}

fn open_pty() -> Pty {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills two descriptors; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(master),
            slave: OwnedFd::from_raw_fd(slave),
        }
    }
}

/// The terminal's local flags (ICANON, ECHO, ...), read from the test's end of the slave.
fn local_flags(pty: &Pty) -> libc::tcflag_t {
    use std::os::fd::AsRawFd;
    // SAFETY: termios is plain data filled by tcgetattr.
    let mut mode: libc::termios = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::tcgetattr(pty.slave.as_raw_fd(), &mut mode) };
    assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    mode.c_lflag
}

/// mqblast with the pty as stdin and controlling terminal (a session of its own, as a
/// shell's job), so Ctrl-C typed into the pty signals it.
fn spawn_on_pty(pty: &Pty, args: &[&str]) -> common::Running {
    let mut cmd = common::mqblast_command(args);
    cmd.stdin(Stdio::from(pty.slave.try_clone().expect("dup the pty")));
    // SAFETY: setsid and ioctl are async-signal-safe, the only calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    common::spawn(cmd)
}

/// Wait until mosquitto's log has `count` lines containing `needle`.
fn wait_for_log(broker: &common::Mosquitto, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = broker.log().matches(needle).count();
        if seen >= count {
            assert_eq!(
                seen,
                count,
                "more than {count} x {needle:?}:\n{}",
                broker.log()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} x {needle:?} never seen ({seen}):\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CONNECTED: &str = "New client connected";
const DISCONNECTED: &str = " disconnected.";

fn load(broker: &common::Mosquitto) -> Vec<String> {
    [
        "-H",
        &broker.addr(),
        "-u",
        "2",
        "-r",
        "100",
        "--interval",
        "200ms",
        "--run-time",
        "90s",
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn keys_typed_in_a_terminal_run_change_the_users_the_broker_sees_and_ctrl_c_restores_the_terminal()
{
    let broker = common::Mosquitto::start();
    let mut pty = open_pty();
    let before = local_flags(&pty);
    assert_ne!(before & libc::ICANON, 0, "a fresh pty edits lines");
    let args = load(&broker);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = spawn_on_pty(&pty, &args);
    wait_for_log(&broker, CONNECTED, 2);

    pty.master.write_all(b"W").unwrap();
    wait_for_log(&broker, CONNECTED, 12);
    pty.master.write_all(b"s").unwrap();
    wait_for_log(&broker, DISCONNECTED, 1);
    assert_eq!(broker.log().matches(CONNECTED).count(), 12, "no reconnect");
    let during = local_flags(&pty);
    assert_eq!(
        during & (libc::ICANON | libc::ECHO),
        0,
        "keys are read one at a time, unechoed, while the run goes on"
    );

    // Ctrl-C, typed: the terminal sends SIGINT to the run, which stops as on any Ctrl-C.
    pty.master.write_all(&[0x03]).unwrap();
    let done = run.wait(common::RUN_LIMIT);
    done.assert_code(0);
    wait_for_log(&broker, DISCONNECTED, 12);
    for line in [
        "mqblast: keys: w/W add 1/10 users, s/S remove 1/10 (up to 1002 users)",
        "mqblast: keys: W: users 2 -> 12 (at 100/s)",
        "mqblast: keys: s: users 12 -> 11 (at 100/s)",
    ] {
        assert!(done.stderr.contains(line), "{line:?}:\n{}", done.describe());
    }
    assert_eq!(
        local_flags(&pty),
        before,
        "the terminal's mode is restored after Ctrl-C"
    );
}

#[test]
fn keys_beyond_the_terminal_runs_reserve_are_refused_with_a_line_and_the_run_goes_on() {
    let broker = common::Mosquitto::start();
    let mut pty = open_pty();
    let before = local_flags(&pty);
    let args = load(&broker);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // --shard fixes this process's client range: its reserve is its users (2 of 4).
    args[3] = "4";
    args.extend(["--shard", "1/2"]);
    let run = spawn_on_pty(&pty, &args);
    wait_for_log(&broker, CONNECTED, 2);
    pty.master.write_all(b"s").unwrap();
    wait_for_log(&broker, DISCONNECTED, 1);
    pty.master.write_all(b"ww").unwrap();
    wait_for_log(&broker, CONNECTED, 3);
    run.signal(libc::SIGTERM);
    let done = run.wait(common::RUN_LIMIT);
    done.assert_code(0);
    for line in [
        "mqblast: keys: s: users 2 -> 1",
        "mqblast: keys: w: users 1 -> 2",
        "mqblast: keys: w: refused: 3 users do not fit: this run reserved 2",
    ] {
        assert!(done.stderr.contains(line), "{line:?}:\n{}", done.describe());
    }
    assert_eq!(
        broker.log().matches(CONNECTED).count(),
        3,
        "1 back, none beyond"
    );
    assert_eq!(local_flags(&pty), before, "restored after SIGTERM");
}

#[test]
fn keys_on_a_stdin_that_is_not_a_terminal_steer_nothing() {
    let broker = common::Mosquitto::start();
    let args = load(&broker);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run_time = args.len() - 3;
    args[run_time] = "3s";
    // Keys in a file given as stdin: read by nobody.
    let dir = common::TempDir::new("keys-not-a-terminal");
    let keys = dir.write("keys.txt", "WWWW\n");
    let mut cmd = common::mqblast_command(&args);
    cmd.stdin(std::fs::File::open(keys).expect("the keys file"));
    let run = common::spawn(cmd);
    let done = run.wait(common::RUN_LIMIT);
    done.assert_code(0);
    assert!(!done.stderr.contains("keys:"), "{}", done.describe());
    assert_eq!(
        broker.log().matches(CONNECTED).count(),
        2,
        "{}",
        broker.log()
    );
}

#[test]
fn a_terminal_run_with_a_fixed_message_count_refuses_keys_and_restores_the_terminal_at_its_end() {
    let broker = common::Mosquitto::start();
    let mut pty = open_pty();
    let before = local_flags(&pty);
    let args = load(&broker);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run_time = args.len() - 3;
    args[run_time] = "3s";
    args.extend(["--messages", "100000"]);
    let run = spawn_on_pty(&pty, &args);
    wait_for_log(&broker, CONNECTED, 2);
    pty.master.write_all(b"W").unwrap();
    // The run ends by itself at its run time: the normal way out.
    let done = run.wait(common::RUN_LIMIT);
    done.assert_code(0);
    for line in [
        "mqblast: keys: w/W add 1/10 users, s/S remove 1/10 (up to 2 users)",
        "mqblast: keys: W: refused: --messages splits a fixed count",
    ] {
        assert!(done.stderr.contains(line), "{line:?}:\n{}", done.describe());
    }
    assert_eq!(broker.log().matches(CONNECTED).count(), 2);
    assert_eq!(local_flags(&pty), before, "restored at the run's end");
}
