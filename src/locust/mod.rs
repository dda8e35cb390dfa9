//! mqblast as a Locust worker (`--worker --master-host H`): a `locust --master` hands out the
//! users, starts and stops the tests, and shows every worker's requests in its web UI, console
//! and CSV/HTML reports; mqblast's engine runs them. The protocol (ZeroMQ DEALER, MessagePack
//! `[type, data, node_id]`) runs on its own thread ([`protocol`]); each test the master starts
//! runs on the calling thread, steered live through the engine's steering surface, and writes
//! this worker's own exact results (`--json`, `--hlog`...) when it ends.

pub mod bucket;
pub mod link;
pub mod msg;
pub mod options;
mod protocol;
pub mod report;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use crate::engine::steer::{self, Steering};
use crate::plan::{Plan, WorkerPlan};
use crate::stats::Summary;

/// A test the master asked for: this worker's command line plus the master's settings.
pub struct Start {
    /// Flags appended to the worker's own command line (the master's values win).
    pub args: Vec<String>,
    pub users: u32,
    /// The master's spawn rate; None keeps the configured one.
    pub spawn_rate: Option<f64>,
    /// Where this worker's client indexes start: its index at the master times the most
    /// users a process holds, so two workers never share a client id (`{i}`).
    pub client_index_offset: u64,
    /// This worker's part of the device tokens among the test's workers (see
    /// [`options::token_shard`]); None: the whole list.
    pub token_shard: Option<crate::shard::Shard>,
}

/// A test has ended (after its final snapshot was published); why it could not run, if so.
pub struct Ended {
    pub error: Option<String>,
}

/// What the worker needs from the program.
pub struct Hooks<'a> {
    /// The plan of a test: the worker's command line with `extra` flags appended.
    pub plan_for: &'a dyn Fn(&[String]) -> Result<Plan, String>,
    pub resolve: &'a dyn Fn(&Plan) -> Result<Vec<SocketAddr>, String>,
    /// Write a finished test's configured outputs; returns its exit code.
    pub finish: &'a dyn Fn(Summary, &Plan) -> i32,
    pub stop_signals: fn() -> u32,
    /// One line describing a test as it starts.
    pub banner: &'a dyn Fn(&Plan, &[SocketAddr]) -> String,
}

/// How often the main thread looks at the quit flag between tests.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// Serve the master until it quits us; returns the exit code: the worst of its tests' (1 when
/// one recorded a failure or could not run) and the protocol's (1 when the master was lost).
pub fn run_worker(worker: &WorkerPlan, hooks: &Hooks<'_>) -> i32 {
    let node_id = link::node_id();
    let link = match link::Link::connect(&worker.master_host, worker.master_port, node_id.clone()) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("mqblast: error: locust: {e}");
            return 2;
        }
    };
    eprintln!(
        "mqblast {}: Locust worker {node_id}, master at {} (Ctrl-C to leave)",
        env!("CARGO_PKG_VERSION"),
        link.endpoint()
    );
    let steering = Steering::new();
    let quit = Arc::new(AtomicBool::new(false));
    let (start_tx, start_rx) = crossbeam_channel::bounded::<Start>(1);
    let (ended_tx, ended_rx) = crossbeam_channel::bounded::<Ended>(4);
    let protocol = protocol::Protocol::new(
        link,
        Arc::clone(&steering),
        (start_tx, ended_rx),
        Arc::clone(&quit),
        Box::new(hooks.stop_signals),
    );
    // The load dies with the thread that steers it: however the protocol thread ends (a
    // panic included), the guard stops the test it started and the loop below.
    let guard = StopOnExit {
        quit: Arc::clone(&quit),
        steering: Arc::clone(&steering),
    };
    let thread = std::thread::Builder::new()
        .name("locust".into())
        .spawn(move || {
            let _guard = guard;
            protocol.run()
        });
    let thread = match thread {
        Ok(thread) => thread,
        Err(e) => {
            eprintln!("mqblast: error: locust: cannot start the protocol thread: {e}");
            return 1;
        }
    };
    let stopping = || u32::from(quit.load(Ordering::Acquire)) + (hooks.stop_signals)();
    let mut code = 0;
    while !quit.load(Ordering::Acquire) {
        let start = match start_rx.recv_timeout(IDLE_TICK) {
            Ok(start) => start,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // The protocol sends the final report as soon as the run has ended, before the
        // outputs are written.
        match run_test(&start, &steering, hooks, &stopping) {
            Ok((summary, plan)) => {
                let _ = ended_tx.send(Ended { error: None });
                code = code.max((hooks.finish)(summary, &plan));
            }
            Err((test_code, error)) => {
                let _ = ended_tx.send(Ended { error: Some(error) });
                code = code.max(test_code);
            }
        }
    }
    let protocol_code = match thread.join() {
        Ok(code) => code,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            eprintln!(
                "mqblast: error: locust: the protocol thread failed ({}): its test was stopped; leaving",
                msg::printable(&what, 200)
            );
            1
        }
    };
    code.max(protocol_code)
}

/// Owned by the protocol thread: when it ends, for any reason, the main thread stops
/// waiting for tests and the running one (if any) is stopped, so that no load goes on
/// without the thread that answers the master's `stop` and `quit`.
struct StopOnExit {
    quit: Arc<AtomicBool>,
    steering: Arc<Steering>,
}

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Release);
        self.steering.stop();
    }
}

/// One test the master started, built and run until stopped.
fn run_test(
    start: &Start,
    steering: &Steering,
    hooks: &Hooks<'_>,
    stopping: &dyn Fn() -> u32,
) -> Result<(Summary, Arc<Plan>), (i32, String)> {
    let mut plan = (hooks.plan_for)(&start.args).map_err(|e| (2, e))?;
    plan.users = start.users;
    plan.client_index_offset = start.client_index_offset;
    take_token_share(&mut plan, start.token_shard).map_err(|e| (2, e))?;
    take_rate_share(&mut plan, start.token_shard).map_err(|e| (2, e))?;
    per_device_certificates_again(&mut plan).map_err(|e| (2, e))?;
    if let Some(rate) = start.spawn_rate {
        plan.spawn_rate = rate;
    }
    if let Some(settings) = plan.effective_config.as_object_mut() {
        settings.insert("users".into(), plan.users.into());
        settings.insert("spawn_rate".into(), plan.spawn_rate.into());
    }
    let budget = steer::socket_budget(plan.sub_users, plan.hosts.is_empty());
    if u64::from(plan.users) > budget {
        return Err((
            1,
            format!(
                "{} users do not fit: this worker can hold {budget} connections (the open-files limit; raise `ulimit -n`, or add workers)",
                plan.users
            ),
        ));
    }
    let addrs = (hooks.resolve)(&plan).map_err(|e| (1, e))?;
    eprintln!("{}", (hooks.banner)(&plan, &addrs));
    let capacity = steer::reserved_users(plan.users, plan.sub_users, plan.hosts.is_empty());
    let plan = Arc::new(plan);
    let (summary, negotiated) =
        crate::engine::run_steered(Arc::clone(&plan), addrs, stopping, steering, capacity)
            .map_err(|e| (1, e))?;
    // The test's files carry what its brokers negotiated (MQTT 5), as a headless run's do.
    Ok((summary, negotiated.recorded_in(&plan)))
}

/// Two workers of one master must not use the same devices: each takes its part of the token
/// list as `--shard K/N` does (K its place among the test's workers, N their number), and its
/// users go round-robin over that part. A master that does not list its workers (one without
/// `scripts/locust/mqblast_master.py`) leaves every worker the whole list, which is said.
fn take_token_share(plan: &mut Plan, shard: Option<crate::shard::Shard>) -> Result<(), String> {
    if let Some(indexed) = &mut plan.token_template {
        indexed.share_for_worker(shard);
        let which = match shard {
            Some(shard) => format!("worker {shard} of the test"),
            None => format!(
                "the master did not list this worker among the test's workers ({}): every such worker uses the devices from the first",
                options::WORKERS_OPTION
            ),
        };
        eprintln!(
            "mqblast: locust: {which}: device tokens {}",
            indexed.describe_first()
        );
        return Ok(());
    }
    if plan.tokens.is_empty() {
        return Ok(());
    }
    let Some(shard) = shard else {
        eprintln!(
            "mqblast: locust: the master did not list this worker among the test's workers ({}): every such worker uses the whole token list from its first token; run the master with scripts/locust/mqblast_master.py to split the tokens between workers",
            options::WORKERS_OPTION
        );
        return Ok(());
    };
    if (plan.tokens.len() as u64) < u64::from(shard.count) {
        // No split gives every worker a token of its own; a test that ran before on shared
        // tokens (one account for all) still runs.
        eprintln!(
            "mqblast: locust: {} device tokens cannot be split over the test's {} workers: every worker uses the whole token list from its first token",
            plan.tokens.len(),
            shard.count
        );
        return Ok(());
    }
    let whole = std::mem::take(&mut plan.tokens);
    plan.token_index_offset = crate::shard::range_of(whole.len() as u64, shard).start;
    plan.tokens = crate::shard::tokens_of(&whole, shard)
        .map_err(|problem| format!("the master's workers and this worker's tokens: {problem}"))?;
    eprintln!(
        "mqblast: locust: worker {shard} of the test: device tokens {}..={} of {}",
        plan.token_index_offset + 1,
        plan.token_index_offset + plan.tokens.len() as u64,
        whole.len()
    );
    Ok(())
}

/// Workers of one master do not know each other's users, so under `--rate` each runs its
/// part of the rate over its own users: the messages per second (and alarms per second) split
/// as `--shard` splits a count, K its place among the test's workers and N their number, each
/// worker's users its devices in client-index order (with `--gateway`, the devices of its
/// gateways, which carry consecutive blocks in a worker). A master that does not list its workers
/// leaves every worker the whole rate, which is said.
fn take_rate_share(plan: &mut Plan, shard: Option<crate::shard::Shard>) -> Result<(), String> {
    use crate::shard::share_of;
    let devices = plan.rate_devices(plan.users);
    let first_device = plan.rate_first_device(plan.client_index_offset);
    let Some(rate) = plan.rate.as_mut() else {
        return Ok(());
    };
    rate.devices = devices;
    rate.first_device_index = first_device;
    match shard {
        Some(shard) => {
            let whole = rate.messages_per_s;
            rate.messages_per_s = share_of(whole, shard);
            rate.alarms_per_s = share_of(rate.alarms_per_s, shard);
            if rate.messages_per_s == 0 {
                return Err(format!(
                    "--rate {whole} cannot be split over the test's {} workers: each needs at least 1 message per second",
                    shard.count
                ));
            }
            eprintln!(
                "mqblast: locust: worker {shard} of the test: {} of the {whole} messages per second, over its {} devices",
                rate.messages_per_s, rate.devices
            );
        }
        None => eprintln!(
            "mqblast: locust: the master did not list this worker among the test's workers ({}): this worker runs the whole --rate over its own users; run the master with scripts/locust/mqblast_master.py to split it between workers",
            options::WORKERS_OPTION
        ),
    }
    crate::workload::rate::RateSchedule::new(rate).map_err(|e| format!("--rate: {e}"))?;
    let share = rate.messages_per_s;
    if let Some(settings) = plan.effective_config.as_object_mut() {
        settings.insert("rate".into(), share.into());
    }
    Ok(())
}

/// Certificates named per device (`--cert-dir` with `{i}`, `{token}`) were read for the
/// worker's own plan, before the master placed it: read them again for the client indexes and
/// tokens this test's clients really have, so each connects with its own device's files.
fn per_device_certificates_again(plan: &mut Plan) -> Result<(), String> {
    use crate::transport::tls::{ClientCerts, TlsSetup};
    let transport = &mut plan.transport;
    if transport.tls.is_none()
        || !matches!(
            transport.tls_options.client_certs,
            ClientCerts::PerDevice { .. }
        )
    {
        return Ok(());
    }
    let owned: Vec<(u64, std::borrow::Cow<'_, str>)> =
        (0..u64::from(plan.users.max(plan.sub_users)))
            .map(|local| {
                let token =
                    crate::plan::token_of_local(&plan.tokens, plan.token_template.as_ref(), local);
                (plan.client_index_offset + local, token)
            })
            .collect();
    let devices: Vec<(u64, &str)> = owned
        .iter()
        .map(|(index, token)| (*index, &**token))
        .collect();
    let setup = TlsSetup::load(&transport.tls_options, &devices)?;
    transport.tls = Some(Arc::new(setup));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with_tokens(tokens: &str) -> Plan {
        let dir = crate::config::tests::TestDir::new();
        dir.plan(&["-H", "127.0.0.1:1883", "--tokens", tokens], &[])
            .unwrap()
    }

    #[test]
    fn each_worker_of_a_test_takes_its_own_slice_of_the_tokens_as_a_shard_does() {
        use crate::shard::Shard;
        let tokens = "t1,t2,t3,t4,t5";
        let mut parts = Vec::new();
        for index in 1..=2 {
            let mut plan = plan_with_tokens(tokens);
            take_token_share(&mut plan, Some(Shard { index, count: 2 })).unwrap();
            let first = plan.client_index_offset;
            parts.push((plan.tokens.clone(), plan.token_index_of(first)));
        }
        assert_eq!(
            parts[0],
            (vec!["t1".into(), "t2".into(), "t3".into()], Some(0))
        );
        assert_eq!(parts[1], (vec!["t4".into(), "t5".into()], Some(3)));
        // Not listed by the master: the whole list, as before.
        let mut plan = plan_with_tokens(tokens);
        take_token_share(&mut plan, None).unwrap();
        assert_eq!(plan.tokens.len(), 5);
    }

    #[test]
    fn fewer_tokens_than_workers_leave_every_worker_the_whole_list_rather_than_no_test() {
        let mut plan = plan_with_tokens("shared-account");
        let shard = crate::shard::Shard { index: 2, count: 3 };
        take_token_share(&mut plan, Some(shard)).unwrap();
        assert_eq!(plan.tokens, vec!["shared-account".to_string()]);
        assert_eq!(plan.token_index_offset, 0);
    }

    #[test]
    fn each_worker_of_a_test_runs_its_share_of_the_rate_over_its_own_users() {
        use crate::shard::Shard;
        let mut shares = Vec::new();
        for index in 1..=3 {
            let dir = crate::config::tests::TestDir::new();
            let mut plan = dir
                .plan(
                    &[
                        "-H",
                        "127.0.0.1:1883",
                        "--rate",
                        "100",
                        "--alarms-per-second",
                        "4",
                    ],
                    &[],
                )
                .unwrap();
            // What `run_test` sets from the master's spawn before the share is taken.
            plan.users = 7;
            plan.client_index_offset = u64::from(index) * 10_000;
            take_rate_share(&mut plan, Some(Shard { index, count: 3 })).unwrap();
            let rate = plan.rate.unwrap();
            assert_eq!(
                (rate.devices, rate.first_device_index),
                (7, plan.client_index_offset)
            );
            assert_eq!(plan.effective_config["rate"], rate.messages_per_s);
            shares.push((rate.messages_per_s, rate.alarms_per_s));
        }
        assert_eq!(shares, [(34, 2), (33, 1), (33, 1)]);
        // Gateways: the worker's rate is over its gateways' devices, which in a live run are
        // consecutive blocks from its first gateway's.
        let dir = crate::config::tests::TestDir::new();
        let args = ["-H", "127.0.0.1:1883", "--rate", "100", "--gateway"];
        let mut plan = dir
            .plan(&[&args[..], &["--devices-per-gateway", "5"]].concat(), &[])
            .unwrap();
        if let Some(gateway) = plan.gateway.as_mut() {
            // What a worker's plan has (a live run's layout).
            gateway.layout = crate::workload::gateway::DeviceLayout::Blocks;
        }
        plan.users = 7;
        plan.client_index_offset = 20;
        take_rate_share(&mut plan, Some(Shard { index: 2, count: 3 })).unwrap();
        let rate = plan.rate.unwrap();
        assert_eq!((rate.devices, rate.first_device_index), (35, 100));
        // More workers than messages per second: one would have none.
        let dir = crate::config::tests::TestDir::new();
        let mut plan = dir
            .plan(&["-H", "127.0.0.1:1883", "--rate", "2"], &[])
            .unwrap();
        let err = take_rate_share(&mut plan, Some(Shard { index: 3, count: 3 })).unwrap_err();
        assert!(
            err.contains("--rate 2 cannot be split over the test's 3 workers"),
            "{err}"
        );
    }

    #[test]
    fn a_panicking_protocol_thread_stops_the_load_it_steers() {
        let quit = Arc::new(AtomicBool::new(false));
        let guard = StopOnExit {
            quit: Arc::clone(&quit),
            steering: Steering::new(),
        };
        let thread = std::thread::spawn(move || {
            let _guard = guard;
            panic!("a master's number");
        });
        assert!(thread.join().is_err());
        assert!(
            quit.load(Ordering::Acquire),
            "the main thread would wait on"
        );
    }
}
