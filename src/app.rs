//! The program: parse, start the broker if needed, run, report, and map the outcome to an
//! exit code (0 clean, 1 when a failure was recorded, 2 for usage or configuration errors).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::config::{self, Command, ConfigError};
use crate::plan::{HostPort, Plan};
use crate::{broker, engine, report, shard, signals, web};

pub const EXIT_USAGE: i32 = 2;

/// Entry point used by `main`: returns the process exit code.
pub fn main() -> i32 {
    match config::parse() {
        Ok(Command::Run(plan)) => run(*plan),
        Ok(Command::Init) => init(),
        Ok(Command::InitFromLocust(files)) => init_from_locust(&files),
        Ok(Command::Sink(opts)) => sink(&opts),
        Ok(Command::Report(args)) => report::commands::report(&args),
        Ok(Command::Merge(args)) => report::commands::merge(&args),
        Ok(Command::Compare(args)) => report::commands::compare(&args),
        Ok(Command::PrintDefaultConfig) => {
            print!("{}", config::DEFAULT_CONFIG);
            0
        }
        Ok(Command::PrintConfig(plan)) => {
            for note in &plan.notes {
                eprintln!("{note}");
            }
            print!("{}", config::render_effective(&plan));
            0
        }
        Err(ConfigError::Usage(e)) => e.exit(),
        Err(ConfigError::Invalid(msg)) => {
            eprintln!("mqblast: error: {msg}");
            EXIT_USAGE
        }
    }
}

/// `mqblast init`: write the documented default config.toml into the working directory.
fn init() -> i32 {
    let path = std::path::Path::new(config::DEFAULT_CONFIG_FILE);
    match config::write_default_config(path) {
        Ok(()) => {
            eprintln!("mqblast: wrote {}", path.display());
            0
        }
        Err(e) => {
            eprintln!("mqblast: error: {e}");
            EXIT_USAGE
        }
    }
}

/// `mqblast init --from-locust`: config.toml (and tokens.txt) from the old script's files.
fn init_from_locust(files: &[std::path::PathBuf]) -> i32 {
    match config::import_locust(files, std::path::Path::new("")) {
        Ok(done) => {
            let read: Vec<String> = done.read.iter().map(|p| p.display().to_string()).collect();
            let tokens = match &done.tokens_file {
                Some(path) => format!(" and {} ({} tokens)", path.display(), done.token_count),
                None => String::new(),
            };
            let payload = match &done.payload_file {
                Some(path) => format!(" and {}", path.display()),
                None => String::new(),
            };
            for note in &done.notes {
                eprintln!("mqblast: note: {note}");
            }
            eprintln!(
                "mqblast: wrote {}{tokens}{payload} from {}; check it, then run `mqblast`",
                done.config_toml.display(),
                read.join(" and ")
            );
            0
        }
        Err(e) => {
            eprintln!("mqblast: error: {e}");
            EXIT_USAGE
        }
    }
}

/// `mqblast sink`: serve until Ctrl-C or `--run-for`, then print the totals.
fn sink(opts: &crate::sink::SinkOptions) -> i32 {
    signals::install();
    match crate::sink::run(opts, &|| signals::received() > 0) {
        Ok(t) => {
            eprintln!(
                "mqblast sink: {} connections, {} CONNECTs, PUBLISH QoS0/1/2 {}/{}/{}, {} bytes",
                t.connections, t.connects, t.publishes[0], t.publishes[1], t.publishes[2], t.bytes
            );
            0
        }
        Err(e) => {
            eprintln!("mqblast sink: error: cannot listen on {}: {e}", opts.listen);
            1
        }
    }
}

fn run(plan: Plan) -> i32 {
    signals::install();
    for note in &plan.notes {
        eprintln!("{note}");
    }
    // Before the embedded broker and the first connect: a bad output path is a usage error.
    if let Err(err) = config::check_outputs(&plan) {
        eprintln!("mqblast: error: {err}");
        return EXIT_USAGE;
    }
    if plan.web.is_some() {
        return run_web(plan);
    }
    if plan.worker.is_some() {
        return run_worker(plan);
    }
    let addrs = match broker_addrs(&plan) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("mqblast: error: {msg}");
            return EXIT_USAGE;
        }
    };
    eprintln!("{}", banner(&plan, &addrs));
    eprintln!("{}", sources_note(&plan));
    if let Some(start_at_ms) = plan.start_at_epoch_ms {
        if let Err(code) = wait_for_start(&plan, start_at_ms) {
            return code;
        }
    }
    let plan = Arc::new(plan);
    // Steerable from the keyboard when stdin is a terminal (`keyboard`).
    let (summary, negotiated) =
        match crate::keyboard::run(Arc::clone(&plan), addrs, &signals::received) {
            Ok(run) => run,
            Err(msg) => {
                eprintln!("mqblast: error: {msg}");
                return 1;
            }
        };
    let code = report::json::exit_code(&summary).max(no_connection_code(&summary, &plan));
    insecure_warning(&plan);
    let plan = negotiated.recorded_in(&plan);
    // JSON, CSV, interval log and HTML, all rendered from the result document.
    code.max(report::commands::write_run_outputs(summary, &plan))
}

/// `--web`: serve the UI and run the tests it starts, one after another, until Ctrl-C or
/// `--autoquit` after a test. The embedded broker, when used, is started once and shared.
fn run_web(plan: Plan) -> i32 {
    let Some(web_plan) = plan.web.clone() else {
        return EXIT_USAGE;
    };
    eprintln!("{}", sources_note(&plan));
    let embedded = std::sync::OnceLock::new();
    let resolve = |plan: &Plan| resolve_once(&embedded, plan);
    let finish = finish_test;
    let (session, starts) = web::Session::new(plan);
    let server = match web::serve(&web_plan, std::sync::Arc::clone(&session)) {
        Ok(server) => server,
        Err(msg) => {
            eprintln!("mqblast: error: {msg}");
            return EXIT_USAGE;
        }
    };
    eprintln!(
        "mqblast {}: web UI on http://{}/ (Ctrl-C to quit)",
        env!("CARGO_PKG_VERSION"),
        server.addr
    );
    if web_plan.autostart {
        if let Err(msg) = session.start(web::StartRequest::default()) {
            eprintln!("mqblast: error: {msg}");
        }
    }
    let hooks = web::Hooks {
        resolve: &resolve,
        finish: &finish,
        stop_signals: &signals::received,
    };
    let code = web::run_session(&session, &starts, web_plan.autoquit, &hooks);
    drop(server);
    code
}

/// `--worker`: join the Locust master and run the tests it starts, until it quits us. Each
/// test's plan is this command line with the master's settings appended (theirs win).
fn run_worker(plan: Plan) -> i32 {
    let Some(worker) = plan.worker.clone() else {
        return EXIT_USAGE;
    };
    let base_args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let plan_for = |extra: &[String]| -> Result<Plan, String> {
        let args = base_args
            .iter()
            .cloned()
            .chain(extra.iter().map(Into::into));
        match config::parse_from(args, &|name| std::env::var(name).ok()) {
            Ok(Command::Run(plan)) => Ok(*plan),
            Ok(_) => Err("the master's settings did not make a run".to_string()),
            Err(ConfigError::Usage(e)) => Err(e.to_string().trim().to_string()),
            Err(ConfigError::Invalid(msg)) => Err(msg),
        }
    };
    let embedded = std::sync::OnceLock::new();
    let resolve = |plan: &Plan| resolve_once(&embedded, plan);
    let finish = finish_test;
    let hooks = crate::locust::Hooks {
        plan_for: &plan_for,
        resolve: &resolve,
        finish: &finish,
        stop_signals: signals::received,
        banner: &banner,
    };
    crate::locust::run_worker(&worker, &hooks)
}

/// Broker addresses of one of a session's tests; the embedded broker, when used, is started
/// once and shared by every test.
fn resolve_once(
    embedded: &std::sync::OnceLock<Vec<SocketAddr>>,
    plan: &Plan,
) -> Result<Vec<SocketAddr>, String> {
    if !plan.hosts.is_empty() {
        return plan.hosts.iter().map(resolve).collect();
    }
    if let Some(addrs) = embedded.get() {
        return Ok(Vec::clone(addrs));
    }
    let addrs = broker_addrs(plan)?;
    Ok(embedded.get_or_init(|| addrs).clone())
}

/// A session's finished test: its configured outputs written; its exit code.
fn finish_test(summary: crate::stats::Summary, plan: &Plan) -> i32 {
    let code = report::json::exit_code(&summary).max(no_connection_code(&summary, plan));
    code.max(report::commands::write_run_outputs(summary, plan))
}

/// A run in which no client ever got a CONNACK measured nothing about the broker: say so in
/// one line and exit 1, whatever else was (or was not) recorded.
fn no_connection_code(summary: &crate::stats::Summary, plan: &Plan) -> i32 {
    let connect = summary.metric(crate::stats::Metric::Connect);
    // After a stats reset (web UI) the connects may predate the result: connected users count.
    let connected = connect.ok > 0 || summary.max_connected_users > 0;
    if connected || plan.users + plan.sub_users == 0 {
        return 0;
    }
    eprintln!(
        "mqblast: no client ever connected: {} connect attempts, {} failed (see the error report above)",
        connect.requests, connect.failures
    );
    1
}

/// How often the wait for `--start-at` checks for Ctrl-C.
const START_WAIT_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// Sleep until `start_at_ms` (epoch ms) so every shard of a cluster run connects at the same
/// moment. Ctrl-C while waiting ends the run before anything connected (exit 1, no report).
/// The start was checked when the plan was built; a start missed since then by more than the
/// tolerance (a slow payload load) is refused the same way (exit 2).
fn wait_for_start(plan: &Plan, start_at_ms: u64) -> Result<(), i32> {
    let who = plan
        .shard
        .map_or(String::new(), |shard| format!("shard {shard}: "));
    let wait = shard::wait_until(start_at_ms, shard::now_epoch_ms()).map_err(|msg| {
        eprintln!("mqblast: error: --start-at {start_at_ms}: {msg}");
        EXIT_USAGE
    })?;
    eprintln!(
        "mqblast: {who}waiting {:.1} s for the common start at {start_at_ms} (epoch ms)",
        wait.as_secs_f64()
    );
    loop {
        let now_ms = shard::now_epoch_ms();
        if now_ms >= start_at_ms {
            return Ok(());
        }
        if signals::received() > 0 {
            eprintln!("mqblast: {who}stopped before the start time: nothing was run");
            return Err(1);
        }
        let left = std::time::Duration::from_millis(start_at_ms - now_ms);
        std::thread::sleep(left.min(START_WAIT_TICK));
    }
}

/// Resolve the configured brokers, or start the embedded one when none is configured.
fn broker_addrs(plan: &Plan) -> Result<Vec<SocketAddr>, String> {
    if plan.hosts.is_empty() {
        let max_payload = 1 << 20;
        let users = plan.users.max(crate::keyboard::reserved_users(plan));
        let addr = broker::start(users as usize + 16, max_payload)?;
        eprintln!("mqblast: no --host given: started the embedded broker (rumqttd) on {addr}");
        return Ok(vec![addr]);
    }
    plan.hosts.iter().map(resolve).collect()
}

fn resolve(host: &HostPort) -> Result<SocketAddr, String> {
    let shown = crate::config::shown(&host.to_string());
    let mut found = (host.host.as_str(), host.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve broker host {shown}: {e}"))?;
    found
        .next()
        .ok_or_else(|| format!("cannot resolve broker host {shown}: no address"))
}

fn banner(plan: &Plan, addrs: &[SocketAddr]) -> String {
    // The resolved address, with the transport when it is not plain TCP (mqtts://1.2.3.4:8883).
    let scheme_of = |i: usize| plan.hosts.get(i).map(|h| h.scheme).unwrap_or_default();
    let target: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| match scheme_of(i) {
            crate::transport::Scheme::Tcp => a.to_string(),
            scheme => format!("{}{a}", scheme.prefix()),
        })
        .collect();
    let mut stop = Vec::new();
    if let Some(t) = plan.run_time {
        stop.push(format!("run time {t:?}"));
    }
    if let Some(m) = plan.messages {
        stop.push(format!("{m} messages"));
    }
    let what = match plan.streams.iter().filter(|s| s.declared).count() {
        0 => format!(
            "QoS {} | topic {} | {}",
            plan.qos,
            plan.topic,
            pace_note(plan)
        ),
        streams => format!("{streams} streams per user (below){}", rate_note(plan)),
    };
    format!(
        "mqblast {}: {} users at {}/s -> {} | {what} | {} threads ({}) | stop after {}",
        env!("CARGO_PKG_VERSION"),
        plan.users,
        plan.spawn_rate,
        target.join(","),
        plan.threads,
        pin_note(plan),
        stop.join(" or "),
    ) + &protocol_note(plan)
        + &shard_note(plan)
        + &tls_note(plan)
        + &streams_note(plan)
        + &gateway_note(plan)
}

/// `--gateway`, one line: `gateways: 10 devices each (DW00000000 ..., 100 in all),
/// per-point`; empty without.
fn gateway_note(plan: &Plan) -> String {
    let Some(gateway) = &plan.gateway else {
        return String::new();
    };
    let devices = u64::from(plan.users) * u64::from(gateway.devices_per_gateway);
    let first = gateway.device_name(plan.client_index_offset, 0);
    format!(
        "\nmqblast: gateways: {} devices each ({first} ..., {devices} in this process), {}; rows gateway connect / disconnect count the announcements",
        gateway.devices_per_gateway,
        gateway.mode.name()
    )
}

/// The declared streams, one line: `streams: telemetry (v1/devices/me/telemetry, QoS 1,
/// interval 1s) | ...`; empty without `[[stream]]`/`--stream` (the first line says it all).
fn streams_note(plan: &Plan) -> String {
    if !plan.streams.iter().any(|s| s.declared) {
        return String::new();
    }
    let streams: Vec<String> = plan
        .streams
        .iter()
        .map(|s| {
            format!(
                "{} ({}, QoS {}, {}, payload {})",
                s.name,
                s.topic,
                s.qos,
                config::pace_text(&s.pace),
                s.payload.source()
            )
        })
        .collect();
    format!("\nmqblast: streams per user: {}", streams.join(" | "))
}

/// How users are paced: the per-user interval, or the global rate with its order and alarms.
fn pace_note(plan: &Plan) -> String {
    match &plan.rate {
        Some(_) => rate_note(plan).trim_start_matches(" | ").to_string(),
        None => format!("interval {:?}", plan.interval),
    }
}

/// The global rate with its order and alarms (` | rate ...`); empty without a rate.
fn rate_note(plan: &Plan) -> String {
    use crate::workload::rate::RateOrder;
    let Some(rate) = &plan.rate else {
        return String::new();
    };
    let order = match rate.order {
        RateOrder::Sequential => "sequential".to_string(),
        RateOrder::Random => format!("random, seed {}", rate.seed),
    };
    let alarms = match (rate.alarms_per_s, rate.alarm_storm) {
        (0, _) => String::new(),
        (n, None) => format!(", alarms {n}/s"),
        (n, Some(storm)) => format!(", alarms {n}/s in seconds {storm}"),
    };
    // With gateways the rate counts device points, over the gateways' devices.
    let (unit, devices) = match plan.gateway {
        Some(_) => ("device points/s", "gateway devices"),
        None => ("msg/s", "devices"),
    };
    format!(
        " | rate {} {unit} over {} {devices} ({order}{alarms})",
        rate.messages_per_s, rate.devices
    )
}

/// The banner's second line: which settings came from where (defaults unnamed), the payload
/// file and the publish timeout, so a run of a Locust project shows what it took from where.
fn sources_note(plan: &Plan) -> String {
    use crate::plan::SourceLayer;
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let layers = [
        SourceLayer::LocustConf,
        SourceLayer::Pyproject,
        SourceLayer::ConfigFile,
        SourceLayer::Env,
        SourceLayer::Flag,
    ];
    for layer in layers {
        // Only values that change something: a file that repeats a default names none.
        let changed = |source: &&crate::plan::SettingSource| !source.same_as_default;
        for source in plan
            .sources
            .iter()
            .filter(changed)
            .filter(|s| s.layer == layer)
        {
            let (group, item) = match source.layer {
                SourceLayer::LocustConf | SourceLayer::Pyproject | SourceLayer::ConfigFile => {
                    let (file, line) = source
                        .place
                        .rsplit_once(" line ")
                        .unwrap_or((source.place.as_str(), "?"));
                    (file.to_string(), format!("{} (line {line})", source.name))
                }
                SourceLayer::Env => ("environment".to_string(), source.place.clone()),
                SourceLayer::Flag => ("flags".to_string(), source.place.clone()),
            };
            match groups.iter_mut().find(|(name, _)| *name == group) {
                Some((_, items)) => items.push(item),
                None => groups.push((group, vec![item])),
            }
        }
    }
    let mut parts: Vec<String> = groups
        .into_iter()
        .map(|(group, items)| format!("{group}: {}", items.join(", ")))
        .collect();
    parts.push("everything else: defaults".to_string());
    let origin_of = |name: &str| {
        plan.sources
            .iter()
            .find(|source| source.name == name)
            .map_or("default", |source| source.place.as_str())
    };
    format!(
        "mqblast: settings from {}\nmqblast: payload {} ({}) | publish timeout {} ({})",
        parts.join(" | "),
        plan.payload.source(),
        origin_of("payload"),
        config::format_duration(plan.timeout),
        origin_of("timeout"),
    )
}

/// ` | TLS: certificate verification OFF (--insecure)` and the client certificates in use.
fn tls_note(plan: &Plan) -> String {
    let Some(tls) = &plan.transport.tls else {
        return String::new();
    };
    let opts = &plan.transport.tls_options;
    let certs = match &opts.client_certs {
        crate::transport::ClientCerts::None => "no client certificate",
        crate::transport::ClientCerts::One { .. } => "one client certificate",
        crate::transport::ClientCerts::PerDevice { .. } => "per-device client certificates",
    };
    let verify = match tls.insecure {
        true => "certificate verification OFF (--insecure)",
        false => "server verified",
    };
    let resume = if opts.resume {
        "resumption on"
    } else {
        "resumption off"
    };
    format!(" | TLS: {verify}, {certs}, {resume}")
}

/// The last line of the report when the broker's certificate was not verified.
fn insecure_warning(plan: &Plan) {
    if plan.transport.tls.as_ref().is_some_and(|tls| tls.insecure) {
        eprintln!("mqblast: warning: TLS certificate verification was OFF (--insecure): the broker was not authenticated");
    }
}

/// `pinned` or `unpinned`, with the `--pin` rule that decided it.
fn pin_note(plan: &Plan) -> String {
    let pinned = !engine::pinning::cores_for(plan.pin).is_empty();
    let state = if pinned { "pinned" } else { "unpinned" };
    format!("{state}, --pin {}", plan.pin.name())
}

/// ` | MQTT 5 | max in-flight 16 (or the broker's Receive Maximum, if smaller)` under MQTT 5;
/// nothing under 3.1.1, whose banner is unchanged.
fn protocol_note(plan: &Plan) -> String {
    match plan.mqtt_version {
        crate::mqtt::Version::V311 => String::new(),
        crate::mqtt::Version::V5 => format!(
            " | MQTT 5 | max in-flight {} (or the broker's Receive Maximum, if smaller)",
            plan.max_inflight
        ),
    }
}

/// ` | shard 2/4: clients 250..500` under `--shard`, so each host's log says which part it ran.
fn shard_note(plan: &Plan) -> String {
    match plan.shard {
        Some(shard) => format!(
            " | shard {shard}: clients {}..{}",
            plan.client_index_offset,
            plan.client_index_offset + u64::from(plan.users)
        ),
        None => String::new(),
    }
}
