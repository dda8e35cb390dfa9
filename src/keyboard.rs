//! Keyboard control of a terminal run, as Locust's headless runner has it: `w`/`W` add 1/10
//! users, `s`/`S` remove 1/10, each change logged in one line. A face like the web UI: it
//! steers through the engine's control surface (`engine::steer`) and never touches workers.
//!
//! Only when stdin is a terminal and this process is in its foreground (a run in the
//! background or fed from a pipe or /dev/null reads nothing and changes no terminal mode).
//! The terminal is put in cbreak mode (no echo, no line buffering; Ctrl-C still signals)
//! and restored on every way out: the [`Keyboard`] guard's drop (normal end, Ctrl-C, an
//! error, a panic unwinding through `run`), and a panic hook for a panic on any thread.
//!
//! A terminal run reserves [`HEADROOM_USERS`] publishers beyond its users (fewer when the
//! open-files limit allows fewer; none under `--shard`, whose client range is fixed), as the
//! web run reserves its own: growth beyond the reserve is refused with a logged line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;

use crate::engine::{self, steer, steer::Steering, Negotiated};
use crate::plan::Plan;
use crate::stats::Summary;

/// Publishers a terminal run reserves beyond its users for `w`/`W` (100 presses of `W`):
/// every reserved client has its frames built at start, so the reserve is kept small.
pub const HEADROOM_USERS: u32 = 1_000;

/// How long the key reader waits for a key before it checks whether the run is over.
const POLL_MS: libc::c_int = 100;

/// The terminal and its mode saved before cbreak mode, for the panic hook.
static SAVED_MODE: Mutex<Option<(libc::c_int, libc::termios)>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

/// The plan's run, steerable from the keyboard when stdin is a terminal in the foreground;
/// the plain run otherwise. Returns what `engine::run_negotiated` returns.
pub fn run(
    plan: Arc<Plan>,
    addrs: Vec<SocketAddr>,
    stop_signals: &dyn Fn() -> u32,
) -> Result<(Summary, Negotiated), String> {
    if !stdin_is_foreground_terminal() {
        return engine::run_negotiated(plan, addrs, stop_signals);
    }
    // Under --messages the user count is fixed, under --rate it is bounded by the users the
    // rate is spread over (the engine refuses changes beyond, with why).
    let capacity = match (plan.messages, &plan.rate) {
        (None, None) => reserved_users(&plan),
        _ => plan.users,
    };
    // Keys only steer: no live snapshots to copy every second of a long run.
    let steering = Steering::without_snapshots();
    let keyboard = Keyboard::start(Arc::clone(&steering), plan.spawn_rate);
    if keyboard.is_some() {
        eprintln!("mqblast: keys: w/W add 1/10 users, s/S remove 1/10 (up to {capacity} users)");
    }
    let run = engine::run_steered(plan, addrs, stop_signals, &steering, capacity);
    drop(keyboard);
    run
}

/// Publishers a run reserves for the keyboard: its users plus [`HEADROOM_USERS`] within
/// the socket budget (`steer::socket_budget`); only its users under `--shard` or when
/// stdin is not a terminal in the foreground.
pub fn reserved_users(plan: &Plan) -> u32 {
    if plan.shard.is_some() || !stdin_is_foreground_terminal() {
        return plan.users;
    }
    let budget = steer::socket_budget(plan.sub_users, plan.hosts.is_empty());
    let wanted = u64::from(plan.users.saturating_add(HEADROOM_USERS));
    (wanted.min(budget) as u32).max(plan.users)
}

/// The user target after `key`, from `target`; None for keys that steer nothing.
pub fn target_after(key: u8, target: u32) -> Option<u32> {
    match key {
        b'w' => Some(target.saturating_add(1)),
        b'W' => Some(target.saturating_add(10)),
        b's' => Some(target.saturating_sub(1)),
        b'S' => Some(target.saturating_sub(10)),
        _ => None,
    }
}

/// The key reader thread and the terminal mode it changed; both ended on drop.
pub struct Keyboard {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    _mode: CbreakMode,
}

impl Keyboard {
    /// Put the terminal in cbreak mode and read keys on a thread; None when that fails.
    fn start(steering: Arc<Steering>, spawn_rate: f64) -> Option<Keyboard> {
        let mode = CbreakMode::enter(libc::STDIN_FILENO)?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("mqblast-keys".into())
                .spawn(move || read_keys(&steering, spawn_rate, &stop))
                .ok()?
        };
        Some(Keyboard {
            stop,
            reader: Some(reader),
            _mode: mode,
        })
    }
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        // `_mode` restores the terminal after this.
    }
}

/// Read keys until `stop` (or stdin ends) and apply each to the running test.
fn read_keys(steering: &Steering, spawn_rate: f64, stop: &AtomicBool) {
    let mut buf = [0u8; 16];
    while !stop.load(Ordering::Acquire) {
        let mut fd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut fd, 1, POLL_MS) };
        if ready <= 0 || !in_foreground() {
            // A run moved to the background must not read (SIGTTIN would stop it).
            if ready > 0 {
                std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
            }
            continue;
        }
        // SAFETY: reads into a buffer of its length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return; // end of input or a hang-up: no more keys
        }
        for &key in &buf[..n as usize] {
            if let Some(line) = apply(steering, key, spawn_rate) {
                eprintln!("{line}");
            }
        }
    }
}

/// Apply one key to the running test: the line to log, None for keys that steer nothing.
pub fn apply(steering: &Steering, key: u8, spawn_rate: f64) -> Option<String> {
    let Some((ramp, _)) = steering.ramp() else {
        target_after(key, 0)?;
        return Some(format!(
            "mqblast: keys: {}: no test is running",
            key as char
        ));
    };
    let target = target_after(key, ramp.target)?;
    let rate = if ramp.spawn_rate > 0.0 {
        ramp.spawn_rate
    } else {
        spawn_rate
    };
    Some(match steering.set_users(target, rate) {
        Ok(()) => format!(
            "mqblast: keys: {}: users {} -> {target} (at {rate}/s)",
            key as char, ramp.target
        ),
        Err(refused) => format!(
            "mqblast: keys: {}: refused: {} (users stay {})",
            key as char, refused.0, ramp.target
        ),
    })
}

/// Whether stdin is a terminal and this process may read it: in its foreground process
/// group, or not this process's controlling terminal (no job control applies then).
pub fn stdin_is_foreground_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    (unsafe { libc::isatty(libc::STDIN_FILENO) } == 1) && in_foreground()
}

fn in_foreground() -> bool {
    // SAFETY: plain queries of the process group and the terminal's foreground group.
    let (foreground, own) = unsafe { (libc::tcgetpgrp(libc::STDIN_FILENO), libc::getpgrp()) };
    foreground == own || foreground == -1
}

/// The terminal in cbreak mode until dropped: echo and line buffering off, signals on.
struct CbreakMode {
    fd: libc::c_int,
    saved: libc::termios,
}

impl CbreakMode {
    fn enter(fd: libc::c_int) -> Option<CbreakMode> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut cbreak = saved;
        cbreak.c_lflag &= !(libc::ICANON | libc::ECHO);
        cbreak.c_cc[libc::VMIN] = 1;
        cbreak.c_cc[libc::VTIME] = 0;
        install_panic_hook();
        *lock_saved() = Some((fd, saved));
        if set_mode(fd, &cbreak).is_err() {
            *lock_saved() = None;
            return None;
        }
        Some(CbreakMode { fd, saved })
    }
}

impl Drop for CbreakMode {
    fn drop(&mut self) {
        let _ = set_mode(self.fd, &self.saved);
        *lock_saved() = None;
    }
}

/// Set the terminal mode with SIGTTOU blocked, so a run moved to the background still
/// restores it instead of being stopped.
fn set_mode(fd: libc::c_int, mode: &libc::termios) -> Result<(), ()> {
    // SAFETY: signal sets are plain data initialised by sigemptyset; the mask is restored.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        let rc = libc::tcsetattr(fd, libc::TCSANOW, mode);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if rc == 0 {
            Ok(())
        } else {
            Err(())
        }
    }
}

fn lock_saved() -> std::sync::MutexGuard<'static, Option<(libc::c_int, libc::termios)>> {
    match SAVED_MODE.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A panic on any thread restores the terminal before the default report (a worker's
/// panic does not unwind through the guard).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(saved) = SAVED_MODE.try_lock() {
                if let Some((fd, mode)) = saved.as_ref() {
                    let _ = set_mode(*fd, mode);
                }
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_step_the_target_as_locust_does_and_never_below_zero() {
        assert_eq!(target_after(b'w', 5), Some(6));
        assert_eq!(target_after(b'W', 5), Some(15));
        assert_eq!(target_after(b's', 5), Some(4));
        assert_eq!(target_after(b'S', 5), Some(0));
        assert_eq!(target_after(b's', 0), Some(0));
        assert_eq!(target_after(b'W', u32::MAX), Some(u32::MAX));
        assert_eq!(target_after(b'x', 5), None);
        assert_eq!(target_after(b'\n', 5), None);
    }

    /// A pseudo-terminal's two ends (the test reads the mode from the slave end).
    fn pty() -> (libc::c_int, libc::c_int) {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty fills two descriptors; the rest may be null.
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
        (master, slave)
    }

    fn local_flags(fd: libc::c_int) -> libc::tcflag_t {
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut mode: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(fd, &mut mode) }, 0);
        mode.c_lflag
    }

    #[test]
    fn a_panic_restores_the_terminal_mode_whether_it_unwinds_through_the_guard_or_not() {
        let (master, slave) = pty();
        let cooked = local_flags(slave);
        assert_ne!(cooked & libc::ICANON, 0);
        // Unwinding through the guard (a panic on the thread that holds it).
        let unwound = std::panic::catch_unwind(|| {
            let _mode = CbreakMode::enter(slave).expect("cbreak mode");
            assert_eq!(local_flags(slave) & (libc::ICANON | libc::ECHO), 0);
            panic!("a panic while the keys are read");
        });
        assert!(unwound.is_err());
        assert_eq!(local_flags(slave), cooked, "restored by the guard");
        // A panic on another thread (a worker's): the hook restores it, the guard still held.
        let mode = CbreakMode::enter(slave).expect("cbreak mode");
        let worker = std::thread::spawn(|| panic!("a worker panics"));
        assert!(worker.join().is_err());
        assert_eq!(local_flags(slave), cooked, "restored by the panic hook");
        drop(mode);
        assert_eq!(local_flags(slave), cooked);
        // SAFETY: both descriptors are this test's own.
        unsafe {
            libc::close(master);
            libc::close(slave);
        }
    }

    #[test]
    fn a_key_without_a_running_test_is_logged_not_applied() {
        let steering = Steering::new();
        let line = apply(&steering, b'W', 1.0).expect("a line");
        assert!(line.contains("no test is running"), "{line}");
        assert_eq!(apply(&steering, b'q', 1.0), None);
    }
}
