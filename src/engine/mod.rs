//! The load engine: pinned worker threads, each a mio event loop owning its connections,
//! plus the main thread's control loop (run time, signals) and the merger thread.
//!
//! ```text
//! main ── Plan ──> worker 0 (core 0) ─┐ bounded channel: one Interval per worker per second
//!   │              worker 1 (core 1) ─┤──────────────────────────────> merger ──> Summary
//!   └─ control loop: run time, Ctrl-C -> Control (phase, wakers)
//! ```

pub mod audit;
pub mod conn;
pub mod control;
pub mod dial;
pub mod drain;
pub mod inflight;
pub mod pinning;
pub mod steer;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use control::{Control, ABORTING, STOPPING};
use worker::Worker;

use crate::payload::{self, ClientVars};
use crate::plan::Plan;
use crate::stats::{self, ClientNamer, ClientRef, ErrorExample, Merger, MergerConfig, Summary};

/// How often the control loop checks the clock, signals and finished workers.
const CONTROL_TICK: Duration = Duration::from_millis(20);
/// After the stop timeout, how long workers get to disconnect before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Clients of worker `w` out of `threads`: every `threads`-th index of this process from `w`.
/// Under `--shard` these are shard-local; `Worker::new` adds `plan.client_index_offset`.
pub fn clients_of(users: u32, threads: usize, w: usize) -> Vec<u64> {
    (w as u64..users as u64).step_by(threads.max(1)).collect()
}

/// Run the plan against `addrs` (client i uses `addrs[i % len]`) and return the merged
/// results. `stop_signals` reports how many stop requests (Ctrl-C/SIGTERM) arrived so far.
pub fn run(
    plan: Arc<Plan>,
    addrs: Vec<SocketAddr>,
    stop_signals: &dyn Fn() -> u32,
) -> Result<Summary, String> {
    run_negotiated(plan, addrs, stop_signals).map(|(summary, _)| summary)
}

/// What the brokers said that changed an MQTT 5 run: recorded with the result (`mqtt5` in
/// the JSON `config`), so a report says which in-flight window was in effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The smallest Receive Maximum a broker sent in CONNACK, if any did.
    pub broker_receive_maximum: Option<u16>,
    /// The in-flight window per connection: the smaller of that and `--max-inflight`.
    pub in_flight_window: u16,
    /// Publishes acknowledged with 0x10 (No matching subscribers), counted as successes.
    pub no_matching_subscribers: u64,
}

impl Negotiated {
    /// As the JSON `config.mqtt5` object.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "broker_receive_maximum": self.broker_receive_maximum,
            "in_flight_window": self.in_flight_window,
            "no_matching_subscribers": self.no_matching_subscribers,
        })
    }

    /// Under MQTT 5, the plan whose recorded configuration also says what the brokers
    /// negotiated (`config.mqtt5`), for the result; the plan itself otherwise.
    pub fn recorded_in(self, plan: &Arc<Plan>) -> Arc<Plan> {
        if plan.mqtt_version != crate::mqtt::Version::V5 {
            return Arc::clone(plan);
        }
        let mut plan = Plan::clone(plan);
        if let Some(config) = plan.effective_config.as_object_mut() {
            config.insert("mqtt5".to_string(), self.to_json());
        }
        Arc::new(plan)
    }
}

/// [`run`], also returning what the brokers negotiated.
pub fn run_negotiated(
    plan: Arc<Plan>,
    addrs: Vec<SocketAddr>,
    stop_signals: &dyn Fn() -> u32,
) -> Result<(Summary, Negotiated), String> {
    run_with(plan, addrs, stop_signals, Control::new(), None)
}

/// [`run`], steerable through `steering` while it runs: `capacity` publishers are reserved
/// (`steer::reserved_users`) and the plan's users start; the user target and spawn rate may
/// change live up to the reserve, and a stop from the steering ends it like the run time.
/// Also returns what the brokers negotiated, as [`run_negotiated`].
pub fn run_steered(
    plan: Arc<Plan>,
    addrs: Vec<SocketAddr>,
    stop_signals: &dyn Fn() -> u32,
    steering: &steer::Steering,
    capacity: u32,
) -> Result<(Summary, Negotiated), String> {
    let control = steered_control(&plan, capacity);
    steering.board().clear();
    steering.attach(&control);
    let run = run_with(plan, addrs, stop_signals, control, Some(steering));
    steering.detach();
    if let Ok((summary, _)) = &run {
        publish_final(steering, summary);
    }
    run
}

/// The users a steerable run reserves, for gateways no more than keep the process within
/// `MAX_DEVICES_PER_PROCESS` devices (every reserved client's devices are built at start),
/// and never fewer than its users (which the configuration checked).
fn gateway_capacity(plan: &Plan, capacity: u32) -> u32 {
    use crate::workload::gateway::MAX_DEVICES_PER_PROCESS;
    let Some(gateway) = &plan.gateway else {
        return capacity;
    };
    let gateways = MAX_DEVICES_PER_PROCESS / u64::from(gateway.devices_per_gateway.max(1));
    let gateways = u32::try_from(gateways).unwrap_or(u32::MAX);
    capacity.min(gateways).max(plan.users)
}

/// The control plane of a steered run: `capacity` users reserved, or none beyond the plan's
/// under `--messages` (the count is fixed) and `--rate` (users may go down and back up, not
/// beyond the devices the rate is spread over), with the reason a refusal gives.
fn steered_control(plan: &Plan, capacity: u32) -> Arc<Control> {
    match plan.messages {
        Some(_) => {
            let control = Control::with_users(plan.users, plan.users, plan.spawn_rate);
            control.users.lock(
                "--messages splits a fixed count over the users it started with: the user count of this test cannot change (use --run-time instead)".to_string(),
            );
            control
        }
        // The rate's schedule spreads its messages over the devices the test started with:
        // users may leave and come back, not be added beyond them.
        None if plan.rate.is_some() => {
            let control = Control::with_users(plan.users, plan.users, plan.spawn_rate);
            control.users.bound_by(format!(
                "--rate spreads its messages over the {} users this test started with: the user count may go down and back up to them, not beyond (start a new test with more users)",
                plan.users
            ));
            control
        }
        None => Control::with_users(
            plan.users,
            gateway_capacity(plan, capacity),
            plan.spawn_rate,
        ),
    }
}

/// The finished run's result replaces its live snapshots: downloads after the stop get the
/// complete result, audit included.
fn publish_final(steering: &steer::Steering, summary: &Summary) {
    let latest = steering.snapshot();
    let current = latest
        .as_ref()
        .map_or([(0.0, 0.0); stats::N_METRICS], |s| s.current);
    let current_streams = latest
        .map(|s| s.current_streams.clone())
        .unwrap_or_default();
    steering.board().publish(stats::live::Snapshot {
        summary: summary.clone(),
        current,
        current_streams,
        connected_users: 0,
        running: false,
    });
}

fn run_with(
    plan: Arc<Plan>,
    addrs: Vec<SocketAddr>,
    stop_signals: &dyn Fn() -> u32,
    control: Arc<Control>,
    steering: Option<&steer::Steering>,
) -> Result<(Summary, Negotiated), String> {
    let threads = plan.threads.max(1);
    // Every client's socket, twice when the embedded broker holds the other ends.
    let sockets = u64::from(control.users.capacity().max(plan.users)) + u64::from(plan.sub_users);
    crate::limits::reserve_descriptors(2 * sockets + crate::limits::RESERVED_FDS);
    let (data_tx, data_rx, recycles) = stats::channels(threads);
    let (recycle_txs, recycle_rxs): (Vec<_>, Vec<_>) = recycles.into_iter().unzip();
    let merger = Merger::new(
        merger_config(&plan, &control),
        threads,
        data_rx,
        recycle_txs,
    )
    .with_client_names(client_namer(Arc::clone(&plan)));
    let merger = match steering {
        Some(steering) if steering.wants_snapshots() => {
            merger.with_live_board(Arc::clone(steering.board()))
        }
        _ => merger,
    };
    let merger = thread::Builder::new()
        .name("mqblast-merger".into())
        .spawn(move || merger.run())
        .map_err(|e| format!("cannot start the merger thread: {e}"))?;

    let mut workers = Vec::with_capacity(threads);
    let mut wakers = Vec::with_capacity(threads);
    for (w, recycle_rx) in recycle_rxs.into_iter().enumerate() {
        let streams = plan.row_names().len();
        let rec = stats::Recorder::new(w, data_tx.clone(), recycle_rx, control.start, streams);
        let clients = clients_of(control.users.capacity().max(plan.users), threads, w);
        let (worker, waker) = Worker::new(
            w,
            Arc::clone(&plan),
            Arc::clone(&control),
            &clients,
            &addrs,
            rec,
        )
        .map_err(|e| format!("cannot create worker {w}: {e}"))?;
        workers.push(worker);
        wakers.push(waker);
    }
    drop(data_tx);
    control.set_wakers(wakers);
    let handles = spawn_workers(workers, pinning::cores_for(plan.pin))?;
    supervise(&plan, &control, threads, stop_signals);
    if let Some(steering) = steering {
        // The workers are done: nothing is left to steer while the merger finishes.
        steering.detach();
    }
    for h in handles {
        if h.join().is_err() {
            eprintln!("mqblast: a worker thread panicked; its last interval is missing");
        }
    }
    let mut summary = merger
        .join()
        .map_err(|_| "the merger thread panicked".to_string())?;
    if steering.is_some() {
        // A steered test ends at the user target it was steered to, not the one it started at.
        summary.target_users = control.users.ramp().target;
    }
    for line in mqtt5_notes(&plan, &control) {
        eprintln!("{line}");
    }
    let own_answers = control.own_gateway_answers.load(Ordering::Relaxed);
    if own_answers > 0 {
        eprintln!(
            "Gateway RPC answers received back on v1/gateway/rpc by the gateways that sent them (a broker that sends a client its own messages; ThingsBoard does not; MQTT 5 subscribes with No Local): {own_answers}, ignored, not requests"
        );
    }
    if plan.verify && plan.sub_users > 0 {
        let audit = audit_summary(&plan, &control);
        eprintln!("{}", audit.verdict_line());
        if let Some(hint) = audit.hint() {
            eprintln!("{hint}");
        }
        if let Some(live) = &summary.audit {
            // The merger's sum of what workers shipped is the same count, kept as it went.
            debug_assert_eq!(
                (
                    live.published,
                    live.delivered,
                    live.duplicated,
                    live.reordered
                ),
                (
                    audit.published,
                    audit.delivered,
                    audit.duplicated,
                    audit.reordered
                ),
                "the live audit counts equal the final ones"
            );
        }
        summary.audit = Some(audit);
    }
    let broker_receive_maximum = control.receive_maximum();
    let negotiated = Negotiated {
        broker_receive_maximum,
        in_flight_window: plan
            .max_inflight
            .min(broker_receive_maximum.unwrap_or(u16::MAX)),
        no_matching_subscribers: control.unrouted.load(std::sync::atomic::Ordering::Relaxed),
    };
    Ok((summary, negotiated))
}

/// What MQTT 5 changed in the run: the in-flight window the broker's Receive Maximum
/// imposed, and the publishes no subscriber matched (0x10, counted as successes).
pub fn mqtt5_notes(plan: &Plan, control: &Control) -> Vec<String> {
    let mut notes = Vec::new();
    if plan.mqtt_version != crate::mqtt::Version::V5 {
        return notes;
    }
    let window = match control.receive_maximum() {
        Some(server) if server < plan.max_inflight => format!(
            "In-flight window: {server} per connection (the broker's Receive Maximum {server}, below --max-inflight {})",
            plan.max_inflight
        ),
        Some(server) => format!(
            "In-flight window: {} per connection (--max-inflight; the broker's Receive Maximum is {server})",
            plan.max_inflight
        ),
        None => format!(
            "In-flight window: {} per connection (--max-inflight; the broker sent no Receive Maximum)",
            plan.max_inflight
        ),
    };
    notes.push(window);
    let unrouted = control.unrouted.load(std::sync::atomic::Ordering::Relaxed);
    if unrouted > 0 {
        notes.push(format!(
            "Publishes acknowledged with 0x10 (No matching subscribers): {unrouted}, counted as successes"
        ));
    }
    notes
}

/// What the run's delivery audit covers.
fn audit_shape(plan: &Plan) -> stats::audit::AuditShape {
    stats::audit::AuditShape {
        subscribers: plan.sub_users,
        // The weakest guarantee any stream publishes with (what the audit may expect).
        publish_qos: plan.streams.iter().map(|s| s.qos).min().unwrap_or(plan.qos),
        subscribe_qos: plan.sub_qos,
        shared: plan.shared_subscription(),
    }
}

/// The delivery audit from what the workers handed over: per subscriber (or once for a
/// shared group), each matching publisher's counted publishes against the first arrivals.
fn audit_summary(plan: &Plan, control: &Control) -> audit::AuditSummary {
    let mut summary = audit_shape(plan).empty();
    let Ok(board) = control.subs.board.lock() else {
        return summary;
    };
    let cut_ns = control.audit_cut_ns();
    let owed: Vec<u64> = board
        .published
        .iter()
        .zip(&board.matching)
        .map(
            |(&(published, seen_cut_ns), &matches)| match matches && seen_cut_ns == cut_ns {
                true => published,
                false => 0,
            },
        )
        .collect();
    summary.published = owed.iter().sum();
    if summary.shared {
        let mut group = audit::SubscriberAudit::new(control.users.capacity().max(plan.users));
        for sub in &board.audits {
            group.merge_from(sub, cut_ns);
        }
        summary.add_subscriber(&group, &owed, cut_ns);
    } else {
        for sub in &board.audits {
            summary.add_subscriber(sub, &owed, cut_ns);
        }
        // Subscribers that never handed over an audit (none today) would owe everything.
        let missing = (plan.sub_users as usize).saturating_sub(board.audits.len()) as u64;
        summary.expected += missing * summary.published;
        summary.lost += missing * summary.published;
    }
    summary
}

/// Names the example clients of failure reports as the broker saw them: the client id from
/// the plan's template (`-sub` for subscribers) and the position of the client's token in the
/// configured list. Never the token: a client id template with `{token}` shows the
/// placeholder there. Called by the merger, at most 10 times per failure reason.
pub fn client_namer(plan: Arc<Plan>) -> ClientNamer {
    Box::new(move |client: ClientRef| ErrorExample {
        client_id: report_id_of(&plan, client),
        token_index: plan.token_index_of(client.index),
    })
}

fn report_id_of(plan: &Plan, client: ClientRef) -> String {
    if !plan.client_id.contains("{token}") {
        return match client.subscriber {
            true => worker::subscriber_id_of(plan, client.index),
            false => worker::client_id_of(plan, client.index),
        };
    }
    let vars = ClientVars {
        index: client.index,
        token: "{token}",
        client_id: "",
    };
    let id = payload::render(&plan.client_id, &vars);
    match client.subscriber {
        // The `-sub` suffix as `worker::subscriber_id_of` adds it.
        true => format!("{id}-sub"),
        false => id,
    }
}

fn merger_config(plan: &Plan, control: &Control) -> MergerConfig {
    let mut cfg = MergerConfig::from_plan(plan, control.start, control.start_wall);
    cfg.audit = (plan.verify && plan.sub_users > 0).then(|| audit_shape(plan));
    cfg
}

/// Start the workers; worker w is pinned to `cores[w % len]` (none when empty).
fn spawn_workers(
    workers: Vec<Worker>,
    cores: Vec<core_affinity::CoreId>,
) -> Result<Vec<thread::JoinHandle<()>>, String> {
    let mut handles = Vec::with_capacity(workers.len());
    for worker in workers {
        let w = worker.id();
        let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
        let h = thread::Builder::new()
            .name(format!("mqblast-w{w}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                worker.run();
            })
            .map_err(|e| format!("cannot start worker thread {w}: {e}"))?;
        handles.push(h);
    }
    Ok(handles)
}

/// The main thread's loop: stop at the run time or on the first signal, abort on the second
/// (or when workers overrun the stop timeout plus the subscribers' drain cap), return when
/// every worker has finished.
fn supervise(plan: &Plan, control: &Control, threads: usize, stop_signals: &dyn Fn() -> u32) {
    let mut stop_requested_at = None;
    // Workers end their drain by the cap on their own; the abort is only for a worker stuck
    // beyond it (the drain starts at most `stop_timeout` after the stop).
    let drain = if plan.sub_users > 0 {
        plan.drain_max
    } else {
        Duration::ZERO
    };
    while control.finished_workers() < threads {
        thread::sleep(CONTROL_TICK);
        let elapsed = control.start.elapsed();
        let signals = stop_signals();
        let run_over = plan.run_time.is_some_and(|t| elapsed >= t);
        if control.phase() >= STOPPING && stop_requested_at.is_none() {
            // Stopped through the steering (a face): the same grace as any stop.
            stop_requested_at = Some(elapsed);
        }
        if (signals >= 1 || run_over) && stop_requested_at.is_none() {
            if signals >= 1 {
                eprintln!("mqblast: stopping: waiting up to {:?} for acknowledgements{} (Ctrl-C again to stop at once)", plan.stop_timeout, drain_note(plan));
            }
            stop_requested_at = Some(elapsed);
            control.advance(STOPPING);
        }
        let overran = stop_requested_at
            .is_some_and(|t| elapsed > t + plan.stop_timeout + drain + SHUTDOWN_GRACE);
        if signals >= 2 || overran {
            control.advance(ABORTING);
        }
    }
}

/// What the stop message adds about subscribers: they wait longer than the acks.
fn drain_note(plan: &Plan) -> String {
    if plan.sub_users == 0 {
        return String::new();
    }
    format!(
        ", then until subscribers receive nothing for {:?} (at most {:?})",
        plan.drain_quiet, plan.drain_max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_split_evenly_and_disjointly_over_workers() {
        let all: Vec<u64> = (0..3).flat_map(|w| clients_of(10, 3, w)).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(clients_of(10, 3, 0), vec![0, 3, 6, 9]);
    }

    #[test]
    fn a_live_gateway_run_reserves_no_more_gateways_than_the_device_bound_allows() {
        let mut plan =
            crate::config::tests::plan_with_payload(crate::payload::Payload::builtin(), 1, "t");
        assert_eq!(gateway_capacity(&plan, 10_000), 10_000, "not a gateway run");
        plan.gateway = Some(crate::workload::gateway::GatewayPlan {
            devices_per_gateway: 10_000,
            mode: crate::workload::gateway::GatewayMode::PerPoint,
            device_name: crate::workload::gateway::NameTemplate::parse("d{i}").unwrap(),
            device_start: 0,
            layout: crate::workload::gateway::DeviceLayout::Blocks,
        });
        plan.users = 10;
        assert_eq!(
            gateway_capacity(&plan, 10_000),
            500,
            "5,000,000 devices / 10,000"
        );
        plan.users = 600;
        assert_eq!(
            gateway_capacity(&plan, 10_000),
            600,
            "never below the users"
        );
    }

    #[test]
    fn under_a_rate_users_go_down_and_back_up_but_not_beyond_the_rates_devices() {
        let dir = crate::config::tests::TestDir::new();
        let plan = dir.plan(&["-u", "10", "--rate", "50"], &[]).unwrap();
        let control = steered_control(&plan, 1_000);
        assert!(control.users.set(4, 10.0, 0, 0).is_ok());
        assert!(control.users.set(10, 10.0, 0, 0).is_ok());
        let refused = control.users.set(11, 10.0, 0, 0).unwrap_err();
        assert!(
            refused
                .0
                .contains("--rate spreads its messages over the 10 users"),
            "{}",
            refused.0
        );
        // Without a rate the reserve is the limit.
        let plan = dir.plan(&["-u", "10"], &[]).unwrap();
        assert!(steered_control(&plan, 1_000)
            .users
            .set(11, 10.0, 0, 0)
            .is_ok());
    }
}
