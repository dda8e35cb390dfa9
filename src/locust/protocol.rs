//! The worker's side of Locust's master/worker protocol, on its own thread so that heartbeats
//! are never starved by the load: register (`client_ready`, retried), answer `spawn` with a
//! live user change (the master paces the ramp), heartbeat every second, report stats every
//! 3 s as deltas, `stop` -> final stats, `client_stopped`, wait, `client_ready`; `quit` ->
//! stats at once, final stats when the run has ended, exit. Tests run on the main thread; this
//! thread asks for them over a channel and steers them through the engine's steering surface.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rmpv::Value;

use super::link::Link;
use super::msg::{field, printable, MapBuilder, Message};
use super::options;
use super::report::{unix, Reporter};
use super::{Ended, Start};
use crate::engine::steer::Steering;

/// Locust's timings (runners.py): heartbeats every second, stats every 3 s, `client_ready`
/// retried every 5 s up to 60 times, a worker gives up on a master silent for 60 s.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const REPORT_INTERVAL: Duration = Duration::from_secs(3);
const READY_RETRY: Duration = Duration::from_secs(5);
const READY_TRIES: u32 = 60;
const MASTER_TIMEOUT: Duration = Duration::from_secs(60);
/// A master that answered none of our heartbeats for this long has restarted or lost us (it
/// marks a worker missing after about 5 s): its test is stopped and we register again.
const REREGISTER_AFTER: Duration = Duration::from_secs(10);
/// A headless master quits its workers when its run time ends and reads no report after
/// 0.5 s; its CSV is written once a second. Publishing stops this long before that end so the
/// last report is in the master's results.
const WIND_DOWN: Duration = Duration::from_secs(3);
/// The master answers every heartbeat: quiet this long, it is not listening now.
const MASTER_QUIET: Duration = Duration::from_secs(3);
/// How soon `client_ready` is tried again while no master is connected at all.
const NOT_CONNECTED_RETRY: Duration = Duration::from_millis(100);
/// A replaced connection the master has not answered on within this is replaced again (the
/// master answers every heartbeat within a second).
const RECONNECT_CHECK: Duration = Duration::from_secs(3);
/// Longest wait for a frame before the timers are looked at.
const TICK_MS: i64 = 100;
/// Longest reason said on stderr and in the master's Exceptions tab.
const EXCEPTION_CHARS_MAX: usize = 1000;
/// Distinct unknown message types named on stderr; further ones are only counted.
const UNKNOWN_TYPES_LOGGED_MAX: usize = 16;
/// Longest message type echoed on stderr.
const UNKNOWN_TYPE_ECHO_CHARS: usize = 40;
/// Highest worker index taken from the master's `ack` (Locust numbers its workers from 0):
/// this worker's client indexes start at the index times
/// [`RESERVED_USERS_MAX`](crate::engine::steer::RESERVED_USERS_MAX), which must stay far from
/// `u64::MAX`.
const WORKER_INDEX_MAX: u64 = u32::MAX as u64;

/// Why the worker is leaving.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaving {
    MasterQuit,
    Signal,
    MasterSilent,
    NeverRegistered,
}

/// Where the current test is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Asked the main thread to start it; not attached to the steering yet.
    Starting,
    Running,
    /// Stopping; `stopped_by_master`: answer with `client_stopped` when it has ended.
    Ending {
        stopped_by_master: bool,
    },
}

struct Test {
    phase: Phase,
    classes: Vec<(String, u64)>,
    target: u32,
    spawn_rate: Option<f64>,
    reporter: Option<Reporter>,
    wind_down_at: Option<Instant>,
}

pub struct Protocol {
    link: Link,
    steering: Arc<Steering>,
    starts: Sender<Start>,
    ended: Receiver<Ended>,
    quit: Arc<AtomicBool>,
    stop_signals: Box<dyn Fn() -> u32 + Send>,
    registered: bool,
    /// When the connection was last replaced, until the master is heard on it.
    reconnected_at: Option<Instant>,
    /// `client_ready` attempts that found no master connected (tried every 100 ms).
    unconnected_tries: u32,
    /// This worker's index at the master (its `ack`).
    index: u64,
    ready_sent: Option<(Instant, u32)>,
    last_heard: Instant,
    next_heartbeat: Instant,
    next_report: Instant,
    ready_again_at: Option<Instant>,
    last_spawn_ts: f64,
    test: Option<Test>,
    pending_spawn: Option<Value>,
    last_classes: Vec<(String, u64)>,
    last_final: Option<SystemTime>,
    leaving: Option<Leaving>,
    cpu: CpuMeter,
    unknown: UnknownTypes,
}

impl Protocol {
    pub fn new(
        link: Link,
        steering: Arc<Steering>,
        channels: (Sender<Start>, Receiver<Ended>),
        quit: Arc<AtomicBool>,
        stop_signals: Box<dyn Fn() -> u32 + Send>,
    ) -> Protocol {
        let now = Instant::now();
        Protocol {
            link,
            steering,
            starts: channels.0,
            ended: channels.1,
            quit,
            stop_signals,
            registered: false,
            reconnected_at: None,
            unconnected_tries: 0,
            index: 0,
            ready_sent: None,
            last_heard: now,
            next_heartbeat: now,
            next_report: now + REPORT_INTERVAL,
            ready_again_at: Some(now),
            last_spawn_ts: f64::NEG_INFINITY,
            test: None,
            pending_spawn: None,
            last_classes: Vec::new(),
            last_final: None,
            leaving: None,
            cpu: CpuMeter::new(),
            unknown: UnknownTypes::default(),
        }
    }

    /// Serve the master until it quits us, Ctrl-C, or it is gone; returns the exit code.
    pub fn run(mut self) -> i32 {
        loop {
            if let Some(frame) = self.link.recv(TICK_MS) {
                self.on_frame(&frame);
                while let Some(frame) = self.link.recv(0) {
                    self.on_frame(&frame);
                }
            }
            while let Ok(ended) = self.ended.try_recv() {
                self.on_ended(ended);
            }
            if let Some(code) = self.on_timers() {
                self.quit.store(true, Ordering::Release);
                return code;
            }
        }
    }

    fn send(&mut self, kind: &str, data: Value) {
        let message = Message::new(kind, data, &self.link.node_id);
        self.link.send(&message);
    }

    fn on_frame(&mut self, frame: &[u8]) {
        let message = match Message::decode(frame) {
            Ok(message) => message,
            Err(e) => {
                eprintln!(
                    "mqblast: locust: ignored a message from the master that is not Locust's: {e}"
                );
                return;
            }
        };
        self.last_heard = Instant::now();
        match message.kind.as_str() {
            "ack" => self.on_ack(&message.data),
            "heartbeat" => {}
            "spawn" => self.on_spawn(message.data),
            "stop" => self.on_stop(),
            "quit" => self.on_quit(),
            "reconnect" => {
                eprintln!("mqblast: locust: the master asked us to reconnect");
                self.reconnect();
            }
            // Informational (the whole ramp-up is done) or the class editor's: nothing to do.
            "spawning_complete" | "update_user_class" | "locustfile" => {}
            other => self.unknown.note(other),
        }
    }

    fn on_ack(&mut self, data: &Value) {
        if !self.registered {
            let index = field(data, "index").and_then(Value::as_u64);
            eprintln!(
                "mqblast: locust: registered with the master at {}{}",
                self.link.endpoint(),
                index.map_or(String::new(), |i| format!(" as worker {i}"))
            );
        }
        self.registered = true;
        self.ready_sent = None;
        self.unconnected_tries = 0;
        self.index = field(data, "index").and_then(Value::as_u64).unwrap_or(0);
        if self.index > WORKER_INDEX_MAX {
            eprintln!(
                "mqblast: locust: the master numbered this worker {}, above {WORKER_INDEX_MAX}: its spawns are refused",
                self.index
            );
        }
    }

    fn on_spawn(&mut self, spawn: Value) {
        self.send("spawning", Value::Nil);
        let timestamp = field(&spawn, "timestamp")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        // NaN would pass every later comparison and turn the check below off for good.
        if !timestamp.is_finite() {
            eprintln!(
                "mqblast: locust: ignored a spawn message whose timestamp is not a finite number"
            );
            return;
        }
        if timestamp <= self.last_spawn_ts {
            eprintln!("mqblast: locust: ignored a spawn message older than the last one");
            return;
        }
        self.last_spawn_ts = timestamp;
        let Some(classes) = options::user_classes(&spawn) else {
            eprintln!("mqblast: locust: ignored a spawn message without user_classes_count");
            return;
        };
        let total = classes
            .iter()
            .try_fold(0u64, |sum, (_, n)| sum.checked_add(*n));
        let Some(target) = total.and_then(|t| u32::try_from(t).ok()) else {
            let why = format!(
                "a spawn for more than {} users refused (the class counts add up to {})",
                u32::MAX,
                total.map_or("more than 2^64".to_string(), |t| t.to_string())
            );
            self.exception(&why);
            return;
        };
        if self.leaving.is_some() {
            return;
        }
        match self.test.as_mut() {
            // No users asked for: nothing to start.
            None if target == 0 => {}
            None => self.start_test(&spawn, classes.clone(), target),
            Some(test) if matches!(test.phase, Phase::Ending { .. }) => {
                // The previous test is still ending (wind-down): this one starts after it.
                self.pending_spawn = Some(spawn);
                return;
            }
            Some(test) => {
                test.classes = classes.clone();
                test.target = target;
                test.spawn_rate = options::spawn_rate(&spawn).or(test.spawn_rate);
                if test.phase == Phase::Running {
                    self.apply_target();
                }
            }
        }
        self.last_classes = classes.clone();
        let data = MapBuilder::new()
            .put("user_classes_count", classes_value(&classes))
            .put("user_count", u64::from(target))
            .build();
        self.send("spawning_complete", data);
    }

    fn start_test(&mut self, spawn: &Value, classes: Vec<(String, u64)>, target: u32) {
        let reserved = u64::from(crate::engine::steer::RESERVED_USERS_MAX);
        let offset = Some(self.index)
            .filter(|i| *i <= WORKER_INDEX_MAX)
            .and_then(|i| i.checked_mul(reserved));
        let Some(client_index_offset) = offset else {
            let why = format!(
                "a spawn refused: the master numbered this worker {} (at most {WORKER_INDEX_MAX})",
                self.index
            );
            self.exception(&why);
            return;
        };
        let spawn_rate = options::spawn_rate(spawn);
        let start = Start {
            args: options::master_args(spawn),
            users: target,
            spawn_rate,
            client_index_offset,
            token_shard: options::token_shard(spawn, self.index),
        };
        match self.starts.try_send(start) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                eprintln!("mqblast: locust: a test is still starting; spawn ignored");
                return;
            }
        }
        let wind_down_at = options::headless_run_time_s(spawn).and_then(wind_down_at);
        self.test = Some(Test {
            phase: Phase::Starting,
            classes,
            target,
            spawn_rate,
            reporter: None,
            wind_down_at,
        });
    }

    /// The running test takes the latest target (a newer spawn supersedes an older one).
    fn apply_target(&mut self) {
        let Some(test) = self.test.as_ref() else {
            return;
        };
        let rate = test
            .spawn_rate
            .or_else(|| self.steering.ramp().map(|(ramp, _)| ramp.spawn_rate))
            .unwrap_or(10.0);
        if let Err(refused) = self.steering.set_users(test.target, rate) {
            let why = format!("{} users refused: {}", test.target, refused.0);
            self.exception(&why);
        }
    }

    /// Say on stderr and in the master's Exceptions tab (which also makes the master exit
    /// non-zero) what this worker could not do.
    fn exception(&mut self, why: &str) {
        // A test's error may quote the master's values (a topic it refused): one line, cut.
        let why = printable(why, EXCEPTION_CHARS_MAX);
        eprintln!("mqblast: locust: {why}");
        if self.registered {
            let data = MapBuilder::new()
                .put(
                    "msg",
                    format!("mqblast worker {}: {why}", self.link.node_id),
                )
                .put("traceback", "")
                .build();
            self.send("exception", data);
        }
    }

    fn on_stop(&mut self) {
        match self.test.as_mut() {
            Some(test) => {
                test.phase = Phase::Ending {
                    stopped_by_master: true,
                };
                self.steering.stop();
            }
            None => self.stopped(),
        }
    }

    /// `client_stopped`, then `client_ready` again after the stop timeout.
    fn stopped(&mut self) {
        self.send("client_stopped", Value::Nil);
        self.registered = false;
        self.ready_again_at = Some(Instant::now());
    }

    fn on_quit(&mut self) {
        eprintln!("mqblast: locust: the master quit the test");
        self.report(false);
        self.leave(Leaving::MasterQuit);
    }

    fn leave(&mut self, why: Leaving) {
        if self.leaving.is_none() {
            self.leaving = Some(why);
        }
        self.quit.store(true, Ordering::Release);
        if let Some(test) = self.test.as_mut() {
            if !matches!(test.phase, Phase::Ending { .. }) {
                test.phase = Phase::Ending {
                    stopped_by_master: false,
                };
            }
            self.steering.stop();
        }
    }

    /// A test has ended on the main thread: its last report, then what was waiting for it.
    fn on_ended(&mut self, ended: Ended) {
        if let Some(error) = &ended.error {
            self.exception(&format!("the test could not run: {error}"));
        }
        self.report(true);
        let stopped_by_master = matches!(
            self.test.as_ref().map(|t| t.phase),
            Some(Phase::Ending {
                stopped_by_master: true
            })
        );
        self.test = None;
        if stopped_by_master {
            self.stopped();
        }
        if let Some(spawn) = self.pending_spawn.take() {
            if self.leaving.is_none() {
                self.on_spawn_again(spawn);
            }
        }
    }

    fn on_spawn_again(&mut self, spawn: Value) {
        self.last_spawn_ts = f64::NEG_INFINITY;
        self.on_spawn(spawn);
    }

    /// Send a `stats` report: what the latest snapshot adds (`finished`: the run's final
    /// result, after which nothing more of it is reported).
    fn report(&mut self, finished: bool) {
        self.next_report = Instant::now() + REPORT_INTERVAL;
        // A master that stopped answering may be gone or restarted: what it does not get now
        // stays in the next report (reports are differences from the last one sent).
        if !finished && (!self.registered || self.last_heard.elapsed() >= MASTER_QUIET) {
            return;
        }
        let snapshot = self.steering.snapshot();
        let now = unix(SystemTime::now());
        let mut report = None;
        if let (Some(snapshot), Some(test)) = (snapshot, self.test.as_mut()) {
            let started = snapshot.summary.started_at;
            let this_run = snapshot.running || finished;
            if this_run && self.last_final != Some(started) {
                let reporter = match &mut test.reporter {
                    Some(r) if r.started_at() == started => r,
                    slot => slot.insert(Reporter::new(started)),
                };
                report = Some(reporter.report(&snapshot.summary, now));
                if finished && !snapshot.running {
                    self.last_final = Some(started);
                }
            }
        }
        let report = report.unwrap_or_else(|| super::report::Report {
            start_time: now,
            ..Default::default()
        });
        let classes = match &self.test {
            Some(test) if !finished && !matches!(test.phase, Phase::Ending { .. }) => {
                test.classes.clone()
            }
            _ => self
                .last_classes
                .iter()
                .map(|(n, _)| (n.clone(), 0))
                .collect(),
        };
        if self.registered {
            self.send("stats", report.to_value(&classes));
        }
    }

    /// Heartbeats, reports, registration, the master's silence, wind-down and leaving.
    fn on_timers(&mut self) -> Option<i32> {
        let now = Instant::now();
        if (self.stop_signals)() > 0 && self.leaving.is_none() {
            eprintln!("mqblast: locust: stopping (signal)");
            self.leave(Leaving::Signal);
        }
        self.follow_test(now);
        if let Some(at) = self.ready_again_at {
            if now >= at && self.leaving.is_none() {
                self.ready_again_at = None;
                self.ready_sent = Some((now - READY_RETRY, 0));
            }
        }
        if let Some(code) = self.register(now) {
            return Some(code);
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + HEARTBEAT_INTERVAL;
            if self.registered {
                self.heartbeat();
            }
        }
        if now >= self.next_report {
            self.report(false);
        }
        self.watch_master(now);
        self.watch_reconnect(now);
        if let Some(why) = self.leaving {
            if self.test.is_none() {
                if self.registered || why == Leaving::MasterQuit {
                    self.send("quit", Value::Nil);
                }
                self.unknown.summary();
                return Some(match why {
                    Leaving::MasterQuit | Leaving::Signal => 0,
                    Leaving::MasterSilent | Leaving::NeverRegistered => 1,
                });
            }
        }
        None
    }

    /// Attach to a test that has started, apply a newer target, stop for the wind-down.
    fn follow_test(&mut self, now: Instant) {
        let Some(test) = self.test.as_mut() else {
            return;
        };
        let running = self.steering.running().is_some();
        match test.phase {
            Phase::Starting if running => {
                test.phase = Phase::Running;
                let differs = self
                    .steering
                    .ramp()
                    .is_some_and(|(ramp, _)| ramp.target != test.target);
                if differs {
                    self.apply_target();
                }
            }
            Phase::Running if test.wind_down_at.is_some_and(|at| now >= at) => {
                eprintln!(
                    "mqblast: locust: the master's run time is nearly over: stopping publishes"
                );
                test.phase = Phase::Ending {
                    stopped_by_master: false,
                };
                self.steering.stop();
            }
            // A stop asked for before the run attached reaches it now.
            Phase::Ending { .. } if running => {
                self.steering.stop();
            }
            _ => {}
        }
    }

    /// `client_ready` until the master acks, every 5 s, 60 tries.
    fn register(&mut self, now: Instant) -> Option<i32> {
        let (sent_at, tries) = self.ready_sent?;
        if self.registered || now < sent_at + READY_RETRY {
            return None;
        }
        if tries >= READY_TRIES || self.unconnected_tries >= READY_TRIES * 50 {
            eprintln!(
                "mqblast: error: locust: no Locust master answered at {} in 5 minutes (is `locust --master` running there, with --master-bind-port as our --master-port?)",
                self.link.endpoint()
            );
            self.leave(Leaving::NeverRegistered);
            return None;
        }
        if tries > 0 && tries % 6 == 0 {
            eprintln!(
                "mqblast: locust: still waiting for the master at {} to answer",
                self.link.endpoint()
            );
        }
        // Locust accepts the integer -1 as "any version" from workers that are not Python.
        let ready = Message::new("client_ready", Value::from(-1), &self.link.node_id);
        if self.link.try_send(&ready) {
            self.ready_sent = Some((now, tries + 1));
        } else {
            // Not connected yet (nothing is queued for an absent master): try again soon.
            self.ready_sent = Some((now - READY_RETRY + NOT_CONNECTED_RETRY, tries));
            self.unconnected_tries += 1;
            if self.unconnected_tries.is_multiple_of(50) {
                eprintln!(
                    "mqblast: locust: still no master listening at {}",
                    self.link.endpoint()
                );
            }
        }
        None
    }

    /// A master silent for 10 s has lost us: stop its test and register again. Silent for
    /// 60 s: leave, as Locust's workers do.
    fn watch_master(&mut self, now: Instant) {
        let silent = now.saturating_duration_since(self.last_heard);
        if self.leaving.is_some() {
            return;
        }
        if silent >= MASTER_TIMEOUT {
            eprintln!(
                "mqblast: error: locust: no message from the master at {} for {} s: leaving",
                self.link.endpoint(),
                MASTER_TIMEOUT.as_secs()
            );
            self.leave(Leaving::MasterSilent);
            return;
        }
        if self.registered && silent >= REREGISTER_AFTER {
            eprintln!(
                "mqblast: locust: the master at {} has not answered for {} s: stopping its test (our own results keep it) and registering again",
                self.link.endpoint(),
                silent.as_secs()
            );
            self.registered = false;
            self.ready_sent = Some((now - READY_RETRY, 0));
            // A fresh connection: the old one may be parked by a master that still holds
            // our identity, or queued behind a dead one.
            self.reconnect();
            if let Some(test) = self.test.as_mut() {
                test.phase = Phase::Ending {
                    stopped_by_master: false,
                };
                self.steering.stop();
            }
        }
    }

    /// A new connection to the master, watched: one the master has not answered on within
    /// [`RECONNECT_CHECK`] is replaced again (see [`Link::reconnect`]).
    fn reconnect(&mut self) {
        if let Err(e) = self.link.reconnect() {
            eprintln!("mqblast: locust: {e}");
        }
        self.reconnected_at = Some(Instant::now());
    }

    /// Replace a new connection the master has not answered on.
    fn watch_reconnect(&mut self, now: Instant) {
        let Some(at) = self.reconnected_at else {
            return;
        };
        if self.last_heard > at {
            self.reconnected_at = None;
        } else if now >= at + RECONNECT_CHECK {
            self.reconnect();
        }
    }

    fn heartbeat(&mut self) {
        let state = match self.test.as_ref().map(|t| t.phase) {
            None => "ready",
            Some(Phase::Starting) => "spawning",
            Some(_) => "running",
        };
        let data = MapBuilder::new()
            .put("state", state)
            .put("current_cpu_usage", self.cpu.percent())
            .put("current_memory_usage", rss_bytes())
            .build();
        self.send("heartbeat", data);
    }
}

/// When publishing stops before a headless master's run time of `run_time_s` ends (started
/// now); None, said on stderr, for a run time this process cannot time: the master's `quit`
/// or `stop` ends that test.
fn wind_down_at(run_time_s: f64) -> Option<Instant> {
    let at = Duration::try_from_secs_f64(run_time_s)
        .ok()
        .and_then(|run_time| {
            let early = WIND_DOWN.min(run_time / 3);
            let at = Instant::now().checked_add(run_time - early)?;
            Some((at, early))
        });
    match at {
        Some((at, early)) => {
            eprintln!(
                "mqblast: locust: the master's run time is {run_time_s} s: publishing stops {:.1} s before it ends, so the master's report holds every message",
                early.as_secs_f64()
            );
            Some(at)
        }
        None => {
            eprintln!(
                "mqblast: locust: the master's run time of {run_time_s} s is longer than this worker can time: the test runs until the master stops it"
            );
            None
        }
    }
}

/// Message types from the master that Locust's protocol does not have: the first
/// [`UNKNOWN_TYPES_LOGGED_MAX`] distinct ones are named on stderr (escaped and cut), then
/// one line says the rest are only counted; the count is said when the worker leaves.
#[derive(Default)]
struct UnknownTypes {
    logged: HashSet<String>,
    ignored: u64,
}

impl UnknownTypes {
    fn note(&mut self, kind: &str) {
        self.ignored = self.ignored.saturating_add(1);
        if self.logged.len() >= UNKNOWN_TYPES_LOGGED_MAX || self.logged.contains(kind) {
            return;
        }
        eprintln!(
            "mqblast: locust: ignored a message of unknown type `{}` from the master",
            printable(kind, UNKNOWN_TYPE_ECHO_CHARS)
        );
        self.logged.insert(kind.to_string());
        if self.logged.len() == UNKNOWN_TYPES_LOGGED_MAX {
            eprintln!(
                "mqblast: locust: {UNKNOWN_TYPES_LOGGED_MAX} unknown message types named: further unknown types are counted, not logged"
            );
        }
    }

    fn summary(&self) {
        if self.ignored > 0 {
            eprintln!(
                "mqblast: locust: ignored {} message(s) of unknown type from the master",
                self.ignored
            );
        }
    }
}

fn classes_value(classes: &[(String, u64)]) -> Value {
    Value::Map(
        classes
            .iter()
            .map(|(name, count)| (Value::from(name.as_str()), Value::from(*count)))
            .collect(),
    )
}

/// Process CPU since the previous heartbeat, as a share of the whole machine (0-100): a
/// worker uses every core, and Locust warns above 90% of one.
struct CpuMeter {
    last_cpu_s: f64,
    last_wall: Instant,
    cores: f64,
}

impl CpuMeter {
    fn new() -> CpuMeter {
        CpuMeter {
            last_cpu_s: process_cpu_s(),
            last_wall: Instant::now(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        }
    }

    fn percent(&mut self) -> f64 {
        let cpu = process_cpu_s();
        let wall = self.last_wall.elapsed().as_secs_f64();
        let used = cpu - self.last_cpu_s;
        self.last_cpu_s = cpu;
        self.last_wall = Instant::now();
        if wall <= 0.0 {
            return 0.0;
        }
        (100.0 * used / wall / self.cores).clamp(0.0, 100.0)
    }
}

fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Resident memory of this process in bytes (0 where /proc cannot be read).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
