//! A web session: the tests this process runs one after another ("New test"), started from
//! the UI or the API, each with its own complete result. The server threads hand start
//! requests to the main thread over a channel of one; a start is accepted only when no
//! other is accepted and unfinished (one flag taken atomically), so of two starts that race
//! exactly one wins and the other is refused, not queued. Everything else goes through the
//! engine's steering surface.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::journal::Journal;
use crate::engine::control::{Refused, STOPPING};
use crate::engine::steer::{self, Steering};
use crate::plan::{HostPort, Plan};
use crate::stats::live::Snapshot;
use crate::stats::{Summary, TimelineEntry};

/// How often the session loop checks for Ctrl-C and the autoquit deadline between tests.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// What a Start asks for; None keeps the configured value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRequest {
    pub users: Option<u32>,
    pub spawn_rate: Option<f64>,
    pub host: Option<HostPort>,
    /// Some(None): run until stopped (an empty run time in the form).
    pub run_time: Option<Option<Duration>>,
}

/// Shared by the server thread and the session loop.
pub struct Session {
    pub steering: Arc<Steering>,
    /// The plan as configured (the form's defaults).
    pub base: Arc<Plan>,
    starts: Sender<StartRequest>,
    /// A start was accepted and its test has not ended: set by [`Session::start`] (only
    /// one caller can set it), cleared when that test's run returns.
    started: AtomicBool,
    /// The plan of the test running or last run, and whether one ever finished.
    current: Mutex<(Arc<Plan>, bool)>,
    /// Every start, user change, reset and stop, and the tool's own errors.
    pub journal: Arc<Journal>,
    /// The charts' history from before the running test's stats resets.
    charts: Mutex<ChartHistory>,
}

/// What the page's charts keep across stats resets, as Locust's UI keeps its charts: the
/// timeline shown before the last reset (seconds since the test's start) and where the
/// timeline since the reset starts. At most one entry per second of the test, as the
/// result's own timeline; cleared when a test starts.
#[derive(Default)]
struct ChartHistory {
    before: Vec<TimelineEntry>,
    offset_s: u64,
    /// The snapshot current at the reset: until the merger publishes a newer one, it still
    /// shows the timeline now in `before`.
    stale: Option<Arc<Snapshot>>,
}

impl ChartHistory {
    /// The timeline to chart: what came before the resets, then `snapshot`'s.
    fn timeline(&self, snapshot: &Arc<Snapshot>) -> Vec<TimelineEntry> {
        let mut all = self.before.clone();
        if self
            .stale
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
        {
            return all;
        }
        all.extend(snapshot.summary.timeline.iter().map(|e| TimelineEntry {
            second: e.second + self.offset_s,
            ..e.clone()
        }));
        all
    }
}

impl Session {
    pub fn new(base: Plan) -> (Arc<Session>, Receiver<StartRequest>) {
        let (starts, rx) = crossbeam_channel::bounded(1);
        let base = Arc::new(base);
        let session = Arc::new(Session {
            steering: Steering::new(),
            current: Mutex::new((Arc::clone(&base), false)),
            base,
            starts,
            started: AtomicBool::new(false),
            journal: Journal::new(),
            charts: Mutex::new(ChartHistory::default()),
        });
        session.journal.record_panics();
        (session, rx)
    }

    /// Change the running test's users and spawn rate (logged, refusals too).
    pub fn change_users(&self, users: u32, spawn_rate: f64) -> Result<(), Refused> {
        let before = self.steering.ramp().map(|(ramp, _)| ramp.target);
        let changed = self.steering.set_users(users, spawn_rate);
        match (&changed, before) {
            (Ok(()), Some(before)) => self
                .journal
                .log(&format!("users {before} -> {users} at {spawn_rate}/s")),
            (Ok(()), None) => {}
            (Err(refused), _) => self
                .journal
                .log(&format!("users {users} refused: {}", refused.0)),
        }
        changed
    }

    /// Stop the running test (logged); false when none runs.
    pub fn stop(&self) -> bool {
        let target = self.steering.ramp().map(|(ramp, _)| ramp.target);
        let stopped = self.steering.stop();
        if let (true, Some(target)) = (stopped, target) {
            self.journal
                .log(&format!("test stopped (Stop) at {target} users"));
        }
        stopped
    }

    /// Start the running test's statistics over (logged); the charts keep their history.
    pub fn reset_stats(&self) -> bool {
        let Some(control) = self.steering.running() else {
            return false;
        };
        {
            let mut charts = lock(&self.charts);
            let snapshot = self.steering.snapshot();
            if let Some(snapshot) = &snapshot {
                charts.before = charts.timeline(snapshot);
            }
            let next_s = charts.before.last().map_or(0, |e| e.second + 1);
            charts.offset_s = (control.now_ns() / 1_000_000_000).max(next_s);
            charts.stale = snapshot;
        }
        let reset = self.steering.reset_stats();
        if reset {
            self.journal.log("statistics reset (Reset stats)");
        }
        reset
    }

    /// The latest snapshot's summary with the charts' history from before the resets.
    pub fn charted(&self, snapshot: &Arc<Snapshot>) -> Summary {
        let mut summary = snapshot.summary.clone();
        summary.timeline = lock(&self.charts).timeline(snapshot);
        summary
    }

    /// The running test's user target; after a test, the target it ended at; before any,
    /// the configured users.
    pub fn target_users(&self) -> u32 {
        if let Some((ramp, _)) = self.steering.ramp() {
            return ramp.target;
        }
        let finished = self.lock().1;
        match (finished, self.steering.snapshot()) {
            (true, Some(snapshot)) if !snapshot.running => snapshot.summary.target_users,
            _ => self.plan().users,
        }
    }

    /// Start a test, or refuse with the reason (one is running or about to).
    pub fn start(&self, request: StartRequest) -> Result<(), String> {
        let users = request.users.unwrap_or(self.base.users);
        let embedded = request.host.is_none() && self.base.hosts.is_empty();
        let budget = steer::socket_budget(self.base.sub_users, embedded);
        if u64::from(users) > budget {
            return Err(format!(
                "{users} users do not fit: this process can hold {budget} connections (the open-files limit; raise `ulimit -n`)"
            ));
        }
        // Taken, not tested then set: of two starts at once, one sees the other's.
        if self
            .started
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(match self.steering.running() {
                Some(_) => "a test is running: stop it first, or change its users".to_string(),
                None => "a test is already starting (or ending): wait for it".to_string(),
            });
        }
        match self.starts.try_send(request) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.started.store(false, Ordering::Release);
                Err(match e {
                    TrySendError::Full(_) => "a test is already starting".to_string(),
                    TrySendError::Disconnected(_) => "the session has ended".to_string(),
                })
            }
        }
    }

    /// The accepted start's test has ended (or never ran): the next start may be accepted.
    fn ended(&self) {
        self.started.store(false, Ordering::Release);
    }

    /// The plan of the test running or last run (the configured one before any).
    pub fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.lock().0)
    }

    /// Locust's state names: ready, spawning, running, stopping, stopped.
    pub fn state(&self) -> &'static str {
        if let Some(control) = self.steering.running() {
            if control.phase() >= STOPPING {
                return "stopping";
            }
            let target = control.users.ramp().target;
            let connected = self.steering.snapshot().map_or(0, |s| s.connected_users);
            return if connected < target {
                "spawning"
            } else {
                "running"
            };
        }
        if !self.starts.is_empty() {
            return "spawning";
        }
        if self.lock().1 {
            "stopped"
        } else {
            "ready"
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Arc<Plan>, bool)> {
        lock(&self.current)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What the session loop needs from the program: broker addresses for a plan, and writing a
/// finished test's configured outputs (returns its exit code).
pub struct Hooks<'a> {
    pub resolve: &'a dyn Fn(&Plan) -> Result<Vec<SocketAddr>, String>,
    pub finish: &'a dyn Fn(Summary, &Plan) -> i32,
    pub stop_signals: &'a dyn Fn() -> u32,
}

/// Run tests as they are asked for until Ctrl-C, or `autoquit` after a test ends. Returns
/// the exit code of the last test (0 when none ran).
pub fn run_session(
    session: &Session,
    starts: &Receiver<StartRequest>,
    autoquit: Option<Duration>,
    hooks: &Hooks<'_>,
) -> i32 {
    let mut code = 0;
    let mut quit_at: Option<Instant> = None;
    loop {
        if (hooks.stop_signals)() > 0 || quit_at.is_some_and(|t| Instant::now() >= t) {
            return code;
        }
        let request = match starts.recv_timeout(IDLE_TICK) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return code,
        };
        code = run_one(session, request, hooks);
        quit_at = autoquit.map(|after| Instant::now() + after);
    }
}

/// One test: the configured plan with the request's changes, steerable while it runs.
fn run_one(session: &Session, request: StartRequest, hooks: &Hooks<'_>) -> i32 {
    let plan = Arc::new(plan_for(&session.base, &request));
    // Not "stopped" until this test has its result (a previous test's does not count).
    *session.lock() = (Arc::clone(&plan), false);
    *lock(&session.charts) = ChartHistory::default();
    let addrs = match (hooks.resolve)(&plan) {
        Ok(addrs) => addrs,
        Err(msg) => {
            session.ended();
            session.journal.exception(
                &format!("the test could not start: {msg}"),
                "starting a test: resolving its broker",
            );
            return 1;
        }
    };
    let capacity = steer::reserved_users(plan.users, plan.sub_users, plan.hosts.is_empty());
    session.journal.log(&format!(
        "test started: {} users at {}/s ({capacity} reserved)",
        plan.users, plan.spawn_rate
    ));
    let result = crate::engine::run_steered(
        Arc::clone(&plan),
        addrs,
        hooks.stop_signals,
        &session.steering,
        capacity,
    );
    match result {
        Ok((summary, negotiated)) => {
            // Downloads after the test carry what its brokers negotiated, as its files do.
            let plan = negotiated.recorded_in(&plan);
            *session.lock() = (Arc::clone(&plan), true);
            // The next start may be accepted while this one's files are written: it waits
            // in the channel (of one) until the loop is back.
            session
                .journal
                .log(&format!("test ended at {} users", summary.target_users));
            session.ended();
            (hooks.finish)(summary, &plan)
        }
        Err(msg) => {
            session.lock().1 = true;
            session.ended();
            session.journal.exception(
                &format!("the test could not run: {msg}"),
                "running a test: starting its threads",
            );
            1
        }
    }
}

/// The configured plan with what the Start form changed.
pub fn plan_for(base: &Plan, request: &StartRequest) -> Plan {
    let mut plan = base.clone();
    if let Some(users) = request.users {
        plan.users = users;
        // A global rate is spread over the users the test starts with (their devices, for
        // gateways).
        let devices = plan.rate_devices(users);
        if let Some(rate) = plan.rate.as_mut() {
            rate.devices = devices;
        }
    }
    if let Some(rate) = request.spawn_rate {
        plan.spawn_rate = rate;
    }
    if let Some(host) = &request.host {
        plan.hosts = vec![host.clone()];
    }
    if let Some(run_time) = request.run_time {
        plan.run_time = run_time;
    }
    record_changes(&mut plan);
    plan
}

/// The result's effective configuration says what this test ran with, not the defaults.
fn record_changes(plan: &mut Plan) {
    let hosts: Vec<String> = plan.hosts.iter().map(|h| h.to_string()).collect();
    let run_time = plan.run_time.map(crate::config::format_duration);
    if let Some(settings) = plan.effective_config.as_object_mut() {
        settings.insert("users".into(), plan.users.into());
        settings.insert("spawn_rate".into(), plan.spawn_rate.into());
        settings.insert("host".into(), hosts.into());
        settings.insert("run_time".into(), run_time.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TestDir;

    fn session() -> (Arc<Session>, Receiver<StartRequest>) {
        let plan = TestDir::new().plan(&["-u", "1"], &[]).unwrap();
        Session::new(plan)
    }

    #[test]
    fn two_starts_while_idle_are_not_both_accepted_when_the_loop_took_the_first() {
        let (session, starts) = session();
        assert_eq!(session.start(StartRequest::default()), Ok(()));
        // The session loop has taken the first request and is about to run it: nothing is
        // in the channel and no test is registered as running yet.
        let first = starts.try_recv().expect("the first start is handed over");
        assert_eq!(first, StartRequest::default());
        let second = session.start(StartRequest::default());
        let refused = second.expect_err("the second start is refused, not queued");
        assert!(refused.contains("already starting"), "{refused}");
        assert!(
            starts.try_recv().is_err(),
            "nothing queued behind the first"
        );
        session.ended();
        assert_eq!(
            session.start(StartRequest::default()),
            Ok(()),
            "after it ends"
        );
    }

    #[test]
    fn of_many_starts_racing_while_idle_exactly_one_is_accepted() {
        let (session, starts) = session();
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (session, barrier) = (Arc::clone(&session), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    session.start(StartRequest::default()).is_ok()
                })
            })
            .collect();
        // The session loop takes requests as they come, as it does between tests.
        let taken = std::thread::spawn(move || {
            std::iter::from_fn(|| starts.recv_timeout(Duration::from_secs(2)).ok()).count()
        });
        let accepted = racers
            .into_iter()
            .map(|r| r.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(accepted, 1);
        drop(session);
        assert_eq!(taken.join().unwrap(), 1, "one test run");
    }
}
