//! The one surface that steers a live run (DESIGN.md, "Steering a live run"): set the user
//! target and spawn rate, stop, reset the statistics, and read the merger's snapshots. Faces
//! (the web UI and its HTTP API) call these methods and never touch workers; the engine
//! registers each run's [`Control`] here while it runs. A new run is started by calling
//! `engine::run_steered` again with the same steering.

use std::sync::{Arc, Mutex};

use super::control::{Control, Ramp, Refused, STOPPING};
use crate::limits;
use crate::stats::live::{LiveBoard, Snapshot};

/// Clients reserved per process for live user changes when the socket budget allows more:
/// every reserved client has its frames and in-flight table built at start, so the reserve
/// is bounded by memory as well as by sockets.
pub const RESERVED_USERS_MAX: u32 = 10_000;

/// Steers whichever run is in progress in this process.
pub struct Steering {
    current: Mutex<Option<Arc<Control>>>,
    board: Arc<LiveBoard>,
    /// Whether the merger publishes a snapshot every second (a face that shows the run);
    /// one that only steers (the keyboard) spares a long run that copy.
    snapshots: bool,
}

impl Steering {
    pub fn new() -> Arc<Steering> {
        Arc::new(Steering {
            current: Mutex::new(None),
            board: LiveBoard::new(),
            snapshots: true,
        })
    }

    /// A steering for a face that changes users and stops, and reads no live snapshots
    /// (only the final result is published).
    pub fn without_snapshots() -> Arc<Steering> {
        Arc::new(Steering {
            current: Mutex::new(None),
            board: LiveBoard::new(),
            snapshots: false,
        })
    }

    /// Whether the merger of a steered run publishes live snapshots.
    pub fn wants_snapshots(&self) -> bool {
        self.snapshots
    }

    /// Where the merger of each steered run publishes its snapshots.
    pub fn board(&self) -> &Arc<LiveBoard> {
        &self.board
    }

    /// The latest snapshot of the running test, or the final result of the last one.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.board.latest()
    }

    /// Start the running test's statistics over (applied by the merger within a second)
    /// and its delivery audit (from a cut a few milliseconds ahead, see `engine::audit`).
    pub fn reset_stats(&self) -> bool {
        let Some(control) = self.running() else {
            return false;
        };
        control.cut_audit();
        self.board.request_reset();
        true
    }

    /// The running test's user target and pacing, and the users it reserved.
    pub fn ramp(&self) -> Option<(Ramp, u32)> {
        let control = self.running()?;
        Some((control.users.ramp(), control.users.capacity()))
    }

    /// Change the running test's user target and spawn rate. Refused without a running test
    /// or beyond the capacity it reserved.
    pub fn set_users(&self, users: u32, spawn_rate: f64) -> Result<(), Refused> {
        let control = self.running().ok_or_else(not_running)?;
        let now_ns = control.now_ns();
        let publish_start_ns = control.subs.publish_start_ns().unwrap_or(now_ns);
        control
            .users
            .set(users, spawn_rate, now_ns, publish_start_ns)?;
        control.wake_all();
        Ok(())
    }

    /// Stop the running test as the run time would: no new publishes, acks awaited up to the
    /// stop timeout, DISCONNECT. False when nothing runs.
    pub fn stop(&self) -> bool {
        match self.running() {
            Some(control) => {
                control.advance(STOPPING);
                true
            }
            None => false,
        }
    }

    /// The running test's control plane (None between tests).
    pub fn running(&self) -> Option<Arc<Control>> {
        self.lock().clone()
    }

    pub(super) fn attach(&self, control: &Arc<Control>) {
        *self.lock() = Some(Arc::clone(control));
    }

    pub(super) fn detach(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Control>>> {
        match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn not_running() -> Refused {
    Refused("no test is running".to_string())
}

/// How many publishers a steerable run reserves: the socket budget (open-files limit less
/// the process's own descriptors and the subscribers; half of it when the embedded broker
/// holds the other ends), at most [`RESERVED_USERS_MAX`], never fewer than `users`.
pub fn reserved_users(users: u32, sub_users: u32, embedded_broker: bool) -> u32 {
    let budget = socket_budget(sub_users, embedded_broker);
    let reserve = budget.min(u64::from(RESERVED_USERS_MAX)) as u32;
    reserve.max(users)
}

/// Publishers this process can hold open: the open-files limit less the process's own
/// descriptors and the subscribers, halved when the embedded broker holds the other ends.
pub fn socket_budget(sub_users: u32, embedded_broker: bool) -> u64 {
    let limit = limits::nofile_limit().unwrap_or(1024);
    let mut budget = limit.saturating_sub(limits::RESERVED_FDS);
    if embedded_broker {
        budget /= 2;
    }
    budget.saturating_sub(u64::from(sub_users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_without_a_running_test_is_refused_with_the_reason() {
        let steering = Steering::new();
        assert_eq!(steering.set_users(5, 1.0), Err(not_running()));
        assert!(!steering.stop());
    }

    #[test]
    fn the_reserve_never_falls_below_the_configured_users() {
        assert!(reserved_users(3, 0, false) >= 3);
        assert!(reserved_users(0, 0, false) <= RESERVED_USERS_MAX);
    }
}
