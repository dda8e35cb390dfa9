//! config.toml + MQBLAST_* environment + command line -> a validated [`Plan`].
//!
//! All validation lives here, once, so the rest of the program trusts the plan (ripgrep's
//! "low args -> high args"). Every setting has one name used in four places: the config.toml
//! key (`spawn_rate`), the environment variable (`MQBLAST_SPAWN_RATE`), the flag
//! (`--spawn-rate`, Locust's name where Locust has one) and the built-in default. The layers are
//! resolved per setting, highest first: command line, environment, config file, default. Values
//! are kept with their origin until they are parsed, so every error is one line that says where
//! the bad value came from: `config.toml line 7: qos = 3: must be 0, 1 or 2`,
//! `MQBLAST_QOS=3: ...`, `--qos 3: ...`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::limits::RESERVED_FDS;
use crate::payload::{self, Payload};
use crate::plan::{HostPort, Plan};
use crate::shard::{self, Shard};

/// The commented default configuration (`mqblast config --default`, `mqblast init`).
pub const DEFAULT_CONFIG: &str = include_str!("../config.toml");

/// Read from the working directory when no `-f/--config` is given (and skipped if missing).
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// Read from the working directory when no payload is configured; when it is missing the
/// built-in copy is used.
pub const DEFAULT_PAYLOAD_FILE: &str = "data.json";

/// Run time when neither a run time nor a message limit is given, so a bare run ends.
pub const DEFAULT_RUN_TIME: Duration = Duration::from_secs(10);

/// Environment variable naming the config file (below `-f/--config`).
pub const CONFIG_ENV: &str = "MQBLAST_CONFIG";

/// Default MQTT broker port.
pub const DEFAULT_PORT: u16 = 1883;

const DURATION_FORMS: &str = "expected a duration like 30 (seconds), 30s, 5m, 1h30m or 250ms";

/// What the command line asked for, with everything it needs already validated.
#[derive(Debug)]
pub enum Command {
    /// Run a load test.
    Run(Box<Plan>),
    /// Write [`DEFAULT_CONFIG`] to ./config.toml unless it exists ([`write_default_config`]).
    Init,
    /// Print [`DEFAULT_CONFIG`].
    PrintDefaultConfig,
    /// Run the calibration sink.
    Sink(crate::sink::SinkOptions),
    /// Render reports from a saved result.
    Report(crate::report::commands::ReportArgs),
    /// Merge saved results.
    Merge(crate::report::commands::MergeArgs),
    /// Compare two saved results.
    Compare(crate::report::commands::CompareArgs),
}

/// Why the command line or configuration was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// Bad flags, `--help` or `--version`: clap's own message; `.exit()` prints it and exits
    /// 2 (error) or 0 (help, version).
    Usage(clap::Error),
    /// A value that parsed but is not acceptable: one line naming where it came from.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Usage(err) => write!(f, "{err}"),
            ConfigError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// mqblast command line. Run flags are accepted without a subcommand (`run` is the default).
#[derive(Debug, Parser)]
#[command(
    name = "mqblast",
    version,
    about = "MQTT load generator (Locust-style users, spawn rate and run time)",
    args_conflicts_with_subcommands = true,
    after_help = "Settings: built-in defaults < config.toml < MQBLAST_* environment < flags. \
                  `mqblast config --default` prints every setting with its documentation."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands. New ones (sink, report, merge, compare, conn) are added as variants with their
/// own `Args` struct; `RunArgs` stays untouched.
// RunArgs is parsed once per process; boxing it would only complicate the clap derive.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run a load test (the default when no subcommand is given).
    Run(RunArgs),
    /// Write the commented default configuration to ./config.toml (never overwrites).
    Init,
    /// Print configuration.
    Config(ConfigArgs),
    #[command(about = crate::sink::ABOUT, long_about = crate::sink::LONG_ABOUT)]
    Sink(SinkArgs),
    /// Render reports (HTML, CSV, HDR interval log) from a saved result file.
    Report(crate::report::commands::ReportArgs),
    /// Merge result files from several hosts or runs exactly into one.
    Merge(crate::report::commands::MergeArgs),
    /// Compare two result files: a Markdown table, optional HTML, CI regression check.
    Compare(crate::report::commands::CompareArgs),
    /// Connection storm: connect the users at --connect-rate, hold them for --hold with
    /// keep-alive pings only (no publishes), report CONNACK latency and failures.
    Conn(ConnArgs),
}

/// `mqblast conn` flags: every run flag, plus the hold time. `--connect-rate` (a run flag)
/// also sets the spawn rate when `--spawn-rate` is not given [default: 100].
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Hold every connection this long after the last one was opened [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub hold: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `mqblast sink` flags.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:1883")]
    pub listen: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Delay every PUBACK, PUBREC and PUBCOMP by exactly this long (e.g. 5ms).
    #[arg(long, value_name = "DURATION")]
    pub ack_delay: Option<String>,
    /// Stop reading all sockets for FOR every EVERY (e.g. 10s:1s).
    #[arg(long, value_name = "EVERY:FOR")]
    pub stall: Option<String>,
    /// Stop by itself after this long (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION")]
    pub run_for: Option<String>,
    /// No per-second progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// `mqblast config` flags.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the commented default config.toml.
    #[arg(long, required = true)]
    pub default: bool,
}

/// Flags of `mqblast run`. Values stay text here: they are parsed with the same code as the
/// environment and config file values, so every source gets the same checks and messages.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Config file [default: ./config.toml if it exists] [env: MQBLAST_CONFIG]
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker(s): mqtt://host:port, tcp://host:port, host:port or host (port 1883), comma-separated [default: embedded broker] [env: MQBLAST_HOST]
    #[arg(short = 'H', long, value_name = "HOSTS")]
    pub host: Option<String>,
    /// Number of users (MQTT connections) [default: 10] [env: MQBLAST_USERS]
    #[arg(short = 'u', long, value_name = "N")]
    pub users: Option<String>,
    /// Users connected per second [default: 10] [env: MQBLAST_SPAWN_RATE]
    #[arg(short = 'r', long, value_name = "PER_S")]
    pub spawn_rate: Option<String>,
    /// Stop after this long: 30, 30s, 5m, 1h30m, 250ms [default: 10s unless --messages] [env: MQBLAST_RUN_TIME]
    #[arg(short = 't', long, value_name = "DURATION")]
    pub run_time: Option<String>,
    /// Stop after this many publishes in total [env: MQBLAST_MESSAGES]
    #[arg(long, value_name = "N")]
    pub messages: Option<String>,
    /// QoS 0, 1 or 2 [default: 1] [env: MQBLAST_QOS]
    #[arg(long, value_name = "QOS")]
    pub qos: Option<String>,
    /// Topic template with {i}, {token}, {client_id} [default: v1/devices/me/telemetry] [env: MQBLAST_TOPIC]
    #[arg(long, value_name = "TEMPLATE")]
    pub topic: Option<String>,
    /// JSON payload file: an object or an array of objects [default: ./data.json, else built-in] [env: MQBLAST_PAYLOAD]
    #[arg(long, value_name = "FILE")]
    pub payload: Option<String>,
    /// Time between two publishes of a user; 0 = as fast as the in-flight window allows [default: 1s] [env: MQBLAST_INTERVAL]
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Unacknowledged publishes per connection, 1 to 65535 [default: 16] [env: MQBLAST_MAX_INFLIGHT]
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<String>,
    /// Acknowledgement and CONNACK timeout [default: 10s] [env: MQBLAST_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Device access tokens used as MQTT user names, round-robin: a,b,c [env: MQBLAST_TOKENS]
    #[arg(long, value_name = "TOKENS")]
    pub tokens: Option<String>,
    /// File with one device token per line (# comments allowed) [env: MQBLAST_TOKENS_FILE]
    #[arg(long, value_name = "FILE")]
    pub tokens_file: Option<String>,
    /// Client id template with {i}, {token} [default: mqblast-{i}] [env: MQBLAST_CLIENT_ID]
    #[arg(long, value_name = "TEMPLATE")]
    pub client_id: Option<String>,
    /// MQTT user name when no tokens are given [env: MQBLAST_USERNAME]
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// MQTT password [env: MQBLAST_PASSWORD]
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// MQTT keep-alive, whole seconds: 60 or 1m [default: 60s] [env: MQBLAST_KEEP_ALIVE]
    #[arg(long, value_name = "DURATION")]
    pub keep_alive: Option<String>,
    /// Worker threads, one per core [default: available cores] [env: MQBLAST_THREADS]
    #[arg(long, value_name = "N")]
    pub threads: Option<String>,
    /// Accepted for Locust compatibility; mqblast is always headless
    #[arg(long)]
    pub headless: bool,
    /// Print only the final summary [env: MQBLAST_ONLY_SUMMARY]
    #[arg(long)]
    pub only_summary: bool,
    /// Wait this long for outstanding acknowledgements after stopping [default: 10s] [env: MQBLAST_STOP_TIMEOUT]
    #[arg(short = 's', long, value_name = "DURATION")]
    pub stop_timeout: Option<String>,
    /// Write the JSON summary to FILE [env: MQBLAST_JSON]
    #[arg(long, value_name = "FILE")]
    pub json: Option<String>,
    /// "Type" column label of the statistics table [default: MQTT] [env: MQBLAST_REQUEST_TYPE]
    #[arg(long, value_name = "LABEL")]
    pub request_type: Option<String>,
    /// Run only the K-th of N equal parts of the plan, K in 1..=N (one per host or process): users, --messages and --spawn-rate are divided, client indexes (ids, topics) offset, device tokens split; fewer tokens than shards is an error [env: MQBLAST_SHARD]
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Wait until this wall-clock time (milliseconds since the Unix epoch) before connecting, so several hosts start together; more than 1 s in the past is an error [env: MQBLAST_START_AT]
    #[arg(long, value_name = "EPOCH_MS")]
    pub start_at: Option<String>,
    /// Write Locust-compatible CSVs PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv [env: MQBLAST_CSV]
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<String>,
    /// CSV history: a row per metric every second, not only Aggregated [env: MQBLAST_CSV_FULL_HISTORY]
    #[arg(long)]
    pub csv_full_history: bool,
    /// Write the HdrHistogram interval log (tags publish, connect, lag) to FILE [env: MQBLAST_HLOG]
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<String>,
    /// Write the self-contained HTML report to FILE [env: MQBLAST_HTML]
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// Source addresses for outgoing connections, spread over clients: 10.0.0.2,10.0.0.3 or ranges 127.0.0.2-127.0.0.40 [default: chosen by the OS] [env: MQBLAST_BIND]
    #[arg(long, value_name = "ADDRS")]
    pub bind: Option<String>,
    /// TCP connects started per second across all workers, independent of the spawn rate [default: no limit] [env: MQBLAST_CONNECT_RATE]
    #[arg(long, value_name = "PER_S")]
    pub connect_rate: Option<String>,
    /// Subscriber clients, subscribed before publishers start [default: 0] [env: MQBLAST_SUB_USERS]
    #[arg(long, value_name = "N")]
    pub sub_users: Option<String>,
    /// Subscribers' topic filter, + and # allowed, $share/group/... for a shared group [default: the topic, placeholders as +] [env: MQBLAST_SUB_TOPIC]
    #[arg(long, value_name = "FILTER")]
    pub sub_topic: Option<String>,
    /// Subscription QoS 0, 1 or 2 [default: --qos] [env: MQBLAST_SUB_QOS]
    #[arg(long, value_name = "QOS")]
    pub sub_qos: Option<String>,
    /// Embed the end-to-end marker even without subscribers [env: MQBLAST_E2E]
    #[arg(long)]
    pub e2e: bool,
    /// Delivery audit: true/false [default: true with subscribers] [env: MQBLAST_VERIFY]
    #[arg(long, value_name = "BOOL")]
    pub verify: Option<String>,
    /// After publishers stop, wait this long for messages still owed to subscribers [default: 2s] [env: MQBLAST_DRAIN_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<String>,
    /// Reconnect lost connections with back-off (100 ms doubling to 5 s) and resume [env: MQBLAST_RECONNECT]
    #[arg(long)]
    pub reconnect: bool,
    /// Each publisher disconnects and reconnects this long after connecting [env: MQBLAST_CHURN]
    #[arg(long, value_name = "DURATION")]
    pub churn: Option<String>,
}

impl RunArgs {
    /// The flag's text for setting `name`, if given.
    fn value_of(&self, name: &str) -> Option<String> {
        let text = match name {
            "host" => &self.host,
            "users" => &self.users,
            "spawn_rate" => &self.spawn_rate,
            "run_time" => &self.run_time,
            "messages" => &self.messages,
            "qos" => &self.qos,
            "topic" => &self.topic,
            "payload" => &self.payload,
            "interval" => &self.interval,
            "max_inflight" => &self.max_inflight,
            "timeout" => &self.timeout,
            "tokens" => &self.tokens,
            "tokens_file" => &self.tokens_file,
            "client_id" => &self.client_id,
            "username" => &self.username,
            "password" => &self.password,
            "keep_alive" => &self.keep_alive,
            "threads" => &self.threads,
            "stop_timeout" => &self.stop_timeout,
            "json" => &self.json,
            "request_type" => &self.request_type,
            "shard" => &self.shard,
            "start_at" => &self.start_at,
            "bind" => &self.bind,
            "connect_rate" => &self.connect_rate,
            "sub_users" => &self.sub_users,
            "sub_topic" => &self.sub_topic,
            "sub_qos" => &self.sub_qos,
            "verify" => &self.verify,
            "drain_timeout" => &self.drain_timeout,
            "churn" => &self.churn,
            "e2e" => return self.e2e.then(|| "true".to_string()),
            "reconnect" => return self.reconnect.then(|| "true".to_string()),
            "only_summary" => return self.only_summary.then(|| "true".to_string()),
            "csv" => &self.csv,
            "hlog" => &self.hlog,
            "html" => &self.html,
            "csv_full_history" => return self.csv_full_history.then(|| "true".to_string()),
            _ => return None,
        };
        text.clone()
    }
}

/// What the plan builder needs from the process, injectable for tests.
#[derive(Debug, Clone)]
pub struct Context {
    /// Base of relative paths given on the command line or in the environment ("" = the
    /// process working directory).
    pub cwd: PathBuf,
    /// Soft RLIMIT_NOFILE of the process (see [`crate::limits`]).
    pub open_files_limit: u64,
    /// Default worker thread count.
    pub available_cores: usize,
}

impl Context {
    /// The running process: working directory, current open-files limit, available cores.
    pub fn current() -> Context {
        Context {
            cwd: PathBuf::new(),
            open_files_limit: crate::limits::nofile_limit().unwrap_or(u64::MAX),
            available_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Parse the process's arguments and environment, after raising the open-files limit.
pub fn parse() -> Result<Command, ConfigError> {
    let _ = crate::limits::raise_nofile_limit();
    parse_from(std::env::args_os(), &|name| std::env::var(name).ok())
}

/// Parse `args` (program name first) with `env` as the environment, in the real working
/// directory with the current open-files limit.
pub fn parse_from<I, T>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_in(args, env, &Context::current())
}

/// [`parse_from`] with every input injected.
pub fn parse_in<I, T>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(ConfigError::Usage)?;
    match cli.command {
        None => build_plan(&cli.run, env, ctx).map(|plan| Command::Run(Box::new(plan))),
        Some(CliCommand::Run(run)) => {
            build_plan(&run, env, ctx).map(|plan| Command::Run(Box::new(plan)))
        }
        Some(CliCommand::Init) => Ok(Command::Init),
        Some(CliCommand::Config(_)) => Ok(Command::PrintDefaultConfig),
        Some(CliCommand::Sink(args)) => sink_options(&args).map(Command::Sink),
        Some(CliCommand::Report(args)) => Ok(Command::Report(args)),
        Some(CliCommand::Merge(args)) => Ok(Command::Merge(args)),
        Some(CliCommand::Compare(args)) => Ok(Command::Compare(args)),
        Some(CliCommand::Conn(args)) => conn_plan(args, env, ctx).map(Command::Run),
    }
}

/// `mqblast conn`: a run plan whose users only connect and hold. The run time is the ramp
/// (users / rate) plus the hold; `--run-time` and `--messages` do not apply.
fn conn_plan(
    mut args: ConnArgs,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Box<Plan>, ConfigError> {
    if args.run.spawn_rate.is_none() {
        args.run.spawn_rate = Some(
            args.run
                .connect_rate
                .clone()
                .unwrap_or_else(|| "100".into()),
        );
    }
    let hold_text = args.hold.as_deref().unwrap_or("10s");
    let hold =
        parse_duration(hold_text).map_err(|e| invalid(format!("--hold {hold_text}: {e}")))?;
    args.run.messages = None;
    args.run.run_time = Some("1s".into()); // replaced below, once users and rate are known
    let mut plan = build_plan(&args.run, env, ctx)?;
    let ramp = Duration::from_secs_f64(f64::from(plan.users) / plan.spawn_rate);
    plan.run_time = Some(ramp + hold);
    plan.connect_only = true;
    plan.sub_users = 0;
    plan.e2e = false;
    plan.verify = false;
    if let Some(config) = plan.effective_config.as_object_mut() {
        config.insert("command".into(), json!("conn"));
        config.insert("hold".into(), json!(format_duration(hold)));
        config.insert("run_time".into(), json!(format_duration(ramp + hold)));
    }
    Ok(Box::new(plan))
}

/// Validate `mqblast sink` flags.
fn sink_options(args: &SinkArgs) -> Result<crate::sink::SinkOptions, ConfigError> {
    let listen = args.listen.parse().map_err(|_| {
        invalid(format!(
            "--listen {}: expected ADDRESS:PORT, e.g. 127.0.0.1:1883",
            args.listen
        ))
    })?;
    let duration = |flag: &str, text: &Option<String>| -> Result<Option<Duration>, ConfigError> {
        text.as_deref()
            .map(|t| parse_duration(t).map_err(|e| invalid(format!("{flag} {t}: {e}"))))
            .transpose()
    };
    let stall = args
        .stall
        .as_deref()
        .map(|t| crate::sink::parse_stall(t).map_err(|e| invalid(format!("--stall: {e}"))))
        .transpose()?;
    if args.threads == Some(0) {
        return Err(invalid(
            "--threads 0: at least one thread is needed".to_string(),
        ));
    }
    Ok(crate::sink::SinkOptions {
        listen,
        threads: args.threads.unwrap_or(0),
        ack_delay: duration("--ack-delay", &args.ack_delay)?.unwrap_or(Duration::ZERO),
        stall,
        run_for: duration("--run-for", &args.run_for)?,
        quiet: args.quiet,
    })
}

/// `mqblast init`: write [`DEFAULT_CONFIG`] to `path`, refusing to overwrite anything.
pub fn write_default_config(path: &Path) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => invalid(format!(
                "{} already exists: not overwriting it (edit it, or remove it first)",
                path.display()
            )),
            _ => invalid(format!("{}: {err}", path.display())),
        })?;
    file.write_all(DEFAULT_CONFIG.as_bytes())
        .map_err(|err| invalid(format!("{}: {err}", path.display())))
}

// ---------------------------------------------------------------------------------------
// Settings: one table, four sources.

/// One setting: its config key, flag, environment variable and textual default.
#[derive(Debug)]
struct Key {
    name: &'static str,
    flag: &'static str,
    env: &'static str,
    /// Parsed like any other value; None when the default is "unset" or computed.
    default: Option<&'static str>,
    /// Never echoed in messages.
    secret: bool,
}

const fn key(name: &'static str, flag: &'static str, env: &'static str) -> Key {
    Key {
        name,
        flag,
        env,
        default: None,
        secret: false,
    }
}

const fn with_default(mut key: Key, default: &'static str) -> Key {
    key.default = Some(default);
    key
}

const fn secret(mut key: Key) -> Key {
    key.secret = true;
    key
}

/// Every setting, in config.toml order of documentation.
const KEYS: &[Key] = &[
    key("host", "--host", "MQBLAST_HOST"),
    with_default(key("users", "--users", "MQBLAST_USERS"), "10"),
    with_default(
        key("spawn_rate", "--spawn-rate", "MQBLAST_SPAWN_RATE"),
        "10",
    ),
    key("run_time", "--run-time", "MQBLAST_RUN_TIME"),
    key("messages", "--messages", "MQBLAST_MESSAGES"),
    with_default(key("qos", "--qos", "MQBLAST_QOS"), "1"),
    with_default(
        key("topic", "--topic", "MQBLAST_TOPIC"),
        "v1/devices/me/telemetry",
    ),
    key("payload", "--payload", "MQBLAST_PAYLOAD"),
    with_default(key("interval", "--interval", "MQBLAST_INTERVAL"), "1s"),
    with_default(
        key("max_inflight", "--max-inflight", "MQBLAST_MAX_INFLIGHT"),
        "16",
    ),
    with_default(key("timeout", "--timeout", "MQBLAST_TIMEOUT"), "10s"),
    secret(key("tokens", "--tokens", "MQBLAST_TOKENS")),
    key("tokens_file", "--tokens-file", "MQBLAST_TOKENS_FILE"),
    with_default(
        key("client_id", "--client-id", "MQBLAST_CLIENT_ID"),
        "mqblast-{i}",
    ),
    key("username", "--username", "MQBLAST_USERNAME"),
    secret(key("password", "--password", "MQBLAST_PASSWORD")),
    with_default(
        key("keep_alive", "--keep-alive", "MQBLAST_KEEP_ALIVE"),
        "60s",
    ),
    key("threads", "--threads", "MQBLAST_THREADS"),
    with_default(
        key("only_summary", "--only-summary", "MQBLAST_ONLY_SUMMARY"),
        "false",
    ),
    with_default(
        key("stop_timeout", "--stop-timeout", "MQBLAST_STOP_TIMEOUT"),
        "10s",
    ),
    key("json", "--json", "MQBLAST_JSON"),
    with_default(
        key("request_type", "--request-type", "MQBLAST_REQUEST_TYPE"),
        "MQTT",
    ),
    key("shard", "--shard", "MQBLAST_SHARD"),
    key("start_at", "--start-at", "MQBLAST_START_AT"),
    key("csv", "--csv", "MQBLAST_CSV"),
    with_default(
        key(
            "csv_full_history",
            "--csv-full-history",
            "MQBLAST_CSV_FULL_HISTORY",
        ),
        "false",
    ),
    key("hlog", "--hlog", "MQBLAST_HLOG"),
    key("html", "--html", "MQBLAST_HTML"),
    key("bind", "--bind", "MQBLAST_BIND"),
    key("connect_rate", "--connect-rate", "MQBLAST_CONNECT_RATE"),
    with_default(key("sub_users", "--sub-users", "MQBLAST_SUB_USERS"), "0"),
    key("sub_topic", "--sub-topic", "MQBLAST_SUB_TOPIC"),
    key("sub_qos", "--sub-qos", "MQBLAST_SUB_QOS"),
    with_default(key("e2e", "--e2e", "MQBLAST_E2E"), "false"),
    key("verify", "--verify", "MQBLAST_VERIFY"),
    with_default(
        key("drain_timeout", "--drain-timeout", "MQBLAST_DRAIN_TIMEOUT"),
        "2s",
    ),
    with_default(
        key("reconnect", "--reconnect", "MQBLAST_RECONNECT"),
        "false",
    ),
    key("churn", "--churn", "MQBLAST_CHURN"),
];

fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// The names of every setting, for "unknown setting" messages and documentation tests.
pub fn setting_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|key| key.name)
}

/// The environment variable of every setting, in documentation order.
pub fn env_var_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|key| key.env)
}

/// Where a value came from; higher layers win.
#[derive(Debug, Clone)]
enum Origin {
    Default,
    File {
        path: PathBuf,
        line: usize,
        written_key: String,
    },
    Env,
    Cli,
}

impl Origin {
    fn layer(&self) -> u8 {
        match self {
            Origin::Default => 0,
            Origin::File { .. } => 1,
            Origin::Env => 2,
            Origin::Cli => 3,
        }
    }
}

#[derive(Debug, Clone)]
enum RawValue {
    Text(String),
    Toml(toml::Value),
}

/// A setting's value as written, with its origin, before parsing.
#[derive(Debug, Clone)]
struct Raw {
    key: &'static Key,
    origin: Origin,
    value: RawValue,
}

impl Raw {
    /// How the user wrote it: `--qos 3`, `MQBLAST_QOS=3`, `config.toml line 7: qos = 3`.
    fn describe(&self) -> String {
        let shown = match (&self.value, self.key.secret) {
            (_, true) => None,
            (RawValue::Text(text), false) if text.is_empty() => Some("\"\"".to_string()),
            (RawValue::Text(text), false) => Some(text.clone()),
            (RawValue::Toml(value), false) => Some(value.to_string()),
        };
        match (&self.origin, shown) {
            (Origin::Cli, Some(text)) => format!("{} {text}", self.key.flag),
            (Origin::Cli, None) => self.key.flag.to_string(),
            (Origin::Env, Some(text)) => format!("{}={text}", self.key.env),
            (Origin::Env, None) => self.key.env.to_string(),
            (
                Origin::File {
                    path,
                    line,
                    written_key,
                },
                shown,
            ) => match shown {
                Some(text) => format!("{} line {line}: {written_key} = {text}", path.display()),
                None => format!("{} line {line}: {written_key}", path.display()),
            },
            (Origin::Default, Some(text)) => format!("{} = {text} (default)", self.key.name),
            (Origin::Default, None) => format!("{} (default)", self.key.name),
        }
    }

    fn fail(&self, problem: impl fmt::Display) -> ConfigError {
        invalid(format!("{}: {problem}", self.describe()))
    }

    /// Directory that relative paths in this value are relative to.
    fn base_dir<'a>(&'a self, ctx: &'a Context) -> &'a Path {
        match &self.origin {
            Origin::File { path, .. } => path.parent().unwrap_or(Path::new("")),
            _ => &ctx.cwd,
        }
    }

    fn text(&self) -> Result<String, ConfigError> {
        match &self.value {
            RawValue::Text(text) | RawValue::Toml(toml::Value::String(text)) => Ok(text.clone()),
            RawValue::Toml(_) => Err(self.fail("expected a string")),
        }
    }

    fn whole(&self) -> Result<u64, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Integer(n)) => {
                u64::try_from(*n).map_err(|_| self.fail("must not be negative"))
            }
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                let text = self.text()?;
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| self.fail("expected a whole number"))
            }
            RawValue::Toml(_) => Err(self.fail("expected a whole number")),
        }
    }

    fn float(&self) -> Result<f64, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Integer(n)) => Ok(*n as f64),
            RawValue::Toml(toml::Value::Float(x)) => Ok(*x),
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                let text = self.text()?;
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| self.fail("expected a number"))
            }
            RawValue::Toml(_) => Err(self.fail("expected a number")),
        }
    }

    fn duration(&self) -> Result<Duration, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Integer(n)) => u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| self.fail(DURATION_FORMS)),
            RawValue::Toml(toml::Value::Float(x)) => {
                Duration::try_from_secs_f64(*x).map_err(|_| self.fail(DURATION_FORMS))
            }
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                parse_duration(&self.text()?).map_err(|problem| self.fail(problem))
            }
            RawValue::Toml(_) => Err(self.fail(DURATION_FORMS)),
        }
    }

    fn boolean(&self) -> Result<bool, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Boolean(b)) => Ok(*b),
            RawValue::Toml(toml::Value::String(_)) | RawValue::Text(_) => {
                match self.text()?.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Ok(true),
                    "false" | "no" | "off" | "0" => Ok(false),
                    _ => Err(self.fail("expected true or false")),
                }
            }
            RawValue::Toml(_) => Err(self.fail("expected true or false")),
        }
    }

    /// A list: a TOML array of strings, or a comma-separated string. "" is the empty list.
    fn list(&self) -> Result<Vec<String>, ConfigError> {
        match &self.value {
            RawValue::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.trim().to_string()),
                    _ => Err(self.fail("expected a list of strings")),
                })
                .collect(),
            _ => {
                let text = self.text()?;
                if text.trim().is_empty() {
                    return Ok(Vec::new());
                }
                Ok(text
                    .split(',')
                    .map(|item| item.trim().to_string())
                    .collect())
            }
        }
    }

    /// A path, relative to the config file's directory when it came from the file.
    fn path(&self, ctx: &Context) -> Result<PathBuf, ConfigError> {
        let text = self.text()?;
        if text.trim().is_empty() {
            return Err(self.fail("expected a file name"));
        }
        Ok(resolve(self.base_dir(ctx), &text))
    }

    /// The empty string, which unsets optional settings (`-H ""`: embedded broker).
    fn is_blank(&self) -> bool {
        matches!(&self.value, RawValue::Text(text) | RawValue::Toml(toml::Value::String(text)) if text.trim().is_empty())
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

/// A parsed config file: each known setting with its line.
struct ConfigFile {
    path: PathBuf,
    /// setting name -> (key as written, line, value)
    entries: BTreeMap<&'static str, (String, usize, toml::Value)>,
}

impl ConfigFile {
    fn parse(path: PathBuf, text: &str) -> Result<ConfigFile, ConfigError> {
        let table: BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|err| toml_error(&path, text, &err))?;
        let mut written: Vec<(String, toml::Spanned<toml::Value>)> = table.into_iter().collect();
        written.sort_by_key(|(_, value)| value.span().start);
        let mut entries = BTreeMap::new();
        for (written_key, spanned) in written {
            let line = line_of(text, spanned.span().start);
            let name = written_key.replace('-', "_");
            let Some(key) = find_key(&name) else {
                let known: Vec<&str> = setting_names().collect();
                return Err(invalid(format!(
                    "{} line {line}: unknown setting \"{written_key}\" (known settings: {})",
                    path.display(),
                    known.join(", ")
                )));
            };
            if let Some((first, first_line, _)) = entries.get(key.name) {
                return Err(invalid(format!(
                    "{} line {line}: {written_key} is set twice (also as {first} on line {first_line})",
                    path.display()
                )));
            }
            entries.insert(key.name, (written_key, line, spanned.into_inner()));
        }
        Ok(ConfigFile { path, entries })
    }

    fn get(&self, key: &'static Key) -> Option<Raw> {
        let (written_key, line, value) = self.entries.get(key.name)?;
        Some(Raw {
            key,
            origin: Origin::File {
                path: self.path.clone(),
                line: *line,
                written_key: written_key.clone(),
            },
            value: RawValue::Toml(value.clone()),
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim().replace('\n', "; ");
    match err.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |at| at + 1);
            let column = text[line_start..span.start.min(text.len())].chars().count() + 1;
            invalid(format!(
                "{} line {line} column {column}: {message}",
                path.display()
            ))
        }
        None => invalid(format!("{}: {message}", path.display())),
    }
}

/// The four sources, consulted per setting.
struct Layers<'a> {
    args: &'a RunArgs,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<ConfigFile>,
}

impl Layers<'_> {
    /// The winning value of a setting: command line, else environment, else file, else default.
    fn get(&self, name: &str) -> Option<Raw> {
        let key = find_key(name)?;
        let text = |origin, text: String| Raw {
            key,
            origin,
            value: RawValue::Text(text),
        };
        if let Some(value) = self.args.value_of(name) {
            return Some(text(Origin::Cli, value));
        }
        if let Some(value) = env_value(self.env, key.env) {
            return Some(text(Origin::Env, value));
        }
        if let Some(raw) = self.file.as_ref().and_then(|file| file.get(key)) {
            return Some(raw);
        }
        key.default
            .map(|default| text(Origin::Default, default.to_string()))
    }
}

/// An environment variable, treating an empty value as unset.
fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|value| !value.is_empty())
}

fn load_config_file(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Option<ConfigFile>, ConfigError> {
    let named = args
        .config
        .as_ref()
        .map(|path| resolve(&ctx.cwd, &path.to_string_lossy()))
        .or_else(|| env_value(env, CONFIG_ENV).map(|path| resolve(&ctx.cwd, &path)));
    let explicit = named.is_some();
    let path = named.unwrap_or_else(|| ctx.cwd.join(DEFAULT_CONFIG_FILE));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if !explicit && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(invalid(format!("config file {}: {err}", path.display()))),
    };
    ConfigFile::parse(path, &text).map(Some)
}

// ---------------------------------------------------------------------------------------
// Building the plan.

/// Resolve every setting through the layers and validate it into a [`Plan`].
/// `ctx.open_files_limit` decides whether the users fit in this process.
pub fn build_plan(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Plan, ConfigError> {
    let layers = Layers {
        args,
        env,
        file: load_config_file(args, env, ctx)?,
    };
    let get = |name: &str| layers.get(name);
    let required =
        |name: &str| get(name).ok_or_else(|| invalid(format!("{name}: no value and no default")));

    let hosts = resolve_hosts(get("host"))?;
    let users_raw = required("users")?;
    let users = resolve_users(&users_raw)?;
    let spawn_rate = resolve_spawn_rate(&required("spawn_rate")?)?;
    let messages_raw = get("messages");
    let messages = resolve_messages(messages_raw.as_ref())?;
    check_users_can_publish(users, &users_raw, messages_raw.as_ref())?;
    let run_time = resolve_run_time(get("run_time"), messages)?;
    let qos = resolve_qos(&required("qos")?)?;
    let (tokens, tokens_file) = resolve_tokens(get("tokens"), get("tokens_file"), ctx)?;
    let topic = resolve_topic(&required("topic")?, &tokens)?;
    let client_id = resolve_client_id(&required("client_id")?, users, &tokens)?;
    let payload = resolve_payload(get("payload"), ctx)?;
    let interval = required("interval")?.duration()?;
    let max_inflight = resolve_max_inflight(&required("max_inflight")?)?;
    let timeout = positive_duration(&required("timeout")?)?;
    let username = get("username").map(|raw| raw.text()).transpose()?;
    let password_raw = get("password");
    let password = password_raw.as_ref().map(Raw::text).transpose()?;
    if let Some(raw) = &password_raw {
        if username.is_none() && tokens.is_empty() {
            return Err(raw.fail(
                "a password needs a user name (--username) or device tokens: MQTT 3.1.1 sends a password only with a user name",
            ));
        }
    }
    let keep_alive_s = resolve_keep_alive(&required("keep_alive")?)?;
    let threads = resolve_threads(get("threads"), ctx, users)?;
    let only_summary = required("only_summary")?.boolean()?;
    let stop_timeout = required("stop_timeout")?.duration()?;
    let json_path = optional_path(get("json"), ctx)?;
    let request_type = non_empty_text(&required("request_type")?)?;
    let start_at_epoch_ms = resolve_start_at(get("start_at"))?;
    let total_users = users;
    let part = resolve_shard(get("shard"), users, messages, spawn_rate, tokens)?;
    let (users, messages, spawn_rate, tokens) =
        (part.users, part.messages, part.spawn_rate, part.tokens);
    let threads = threads.min(users.max(1) as usize);
    let csv_prefix = optional_path(get("csv"), ctx)?;
    let csv_full_history = required("csv_full_history")?.boolean()?;
    let hlog_path = optional_path(get("hlog"), ctx)?;
    let html_path = optional_path(get("html"), ctx)?;
    check_open_files(users, &users_raw, hosts.is_empty(), ctx.open_files_limit)?;
    let bind = resolve_bind(get("bind"))?;
    // A shard paces its share of the connect rate, in proportion to its users (as spawn_rate).
    let connect_rate = resolve_connect_rate(get("connect_rate"))?
        .map(|rate| crate::shard::spawn_rate_of(rate, users.into(), total_users.into()));
    let subs = resolve_subscribers(&get, users, qos, &topic)?;
    let reconnect = required("reconnect")?.boolean()?;
    let churn = get("churn")
        .map(|raw| positive_duration(&raw))
        .transpose()?;

    let mut plan = Plan {
        hosts,
        users,
        spawn_rate,
        run_time,
        messages,
        qos,
        topic,
        client_id,
        payload,
        interval,
        max_inflight,
        timeout,
        tokens,
        username,
        password,
        keep_alive_s,
        threads,
        only_summary,
        stop_timeout,
        json_path,
        request_type,
        effective_config: serde_json::Value::Null,
        shard: part.shard,
        client_index_offset: part.client_index_offset,
        start_at_epoch_ms,
        csv_prefix,
        csv_full_history,
        hlog_path,
        html_path,
        bind,
        connect_rate,
        sub_users: subs.users,
        sub_topic: subs.topic,
        sub_qos: subs.qos,
        e2e: subs.e2e,
        verify: subs.verify,
        drain_timeout: subs.drain_timeout,
        connect_only: false,
        reconnect,
        churn,
    };
    let config_file = layers.file.as_ref().map(|file| file.path.as_path());
    plan.effective_config = effective_config(&plan, config_file, tokens_file.as_deref());
    Ok(plan)
}

/// The subscriber settings, resolved together because their defaults depend on each other.
struct Subscribers {
    users: u32,
    topic: String,
    qos: u8,
    e2e: bool,
    verify: bool,
    drain_timeout: Duration,
}

fn resolve_subscribers(
    get: &dyn Fn(&str) -> Option<Raw>,
    users: u32,
    qos: u8,
    topic: &str,
) -> Result<Subscribers, ConfigError> {
    let missing = |name: &str| invalid(format!("{name}: no value and no default"));
    let users_raw = get("sub_users").ok_or_else(|| missing("sub_users"))?;
    let sub_users = resolve_users(&users_raw)?;
    let sub_topic = match get("sub_topic") {
        Some(raw) => resolve_filter(&raw)?,
        None => default_filter(topic),
    };
    let sub_qos = match get("sub_qos") {
        Some(raw) => resolve_qos(&raw)?,
        None => qos,
    };
    let verify = match get("verify") {
        Some(raw) => raw.boolean()?,
        None => sub_users > 0,
    };
    let streams = u64::from(sub_users) * u64::from(users);
    if verify && streams > crate::engine::audit::MAX_STREAMS {
        return Err(users_raw.fail(format!(
            "with {users} users the delivery audit would track {streams} streams, more than {} (80 bytes each): use fewer subscribers or --verify false",
            crate::engine::audit::MAX_STREAMS
        )));
    }
    let e2e_raw = get("e2e").ok_or_else(|| missing("e2e"))?;
    let drain_raw = get("drain_timeout").ok_or_else(|| missing("drain_timeout"))?;
    Ok(Subscribers {
        users: sub_users,
        topic: sub_topic,
        qos: sub_qos,
        e2e: e2e_raw.boolean()? || sub_users > 0,
        verify: verify && sub_users > 0,
        drain_timeout: drain_raw.duration()?,
    })
}

/// The publish topic with every level that holds a per-client placeholder replaced by `+`,
/// so that by default the subscribers receive every publisher's messages.
fn default_filter(topic: &str) -> String {
    topic
        .split('/')
        .map(|level| if level.contains('{') { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

fn resolve_filter(raw: &Raw) -> Result<String, ConfigError> {
    let filter = raw.text()?;
    if filter.is_empty() || filter.contains('\0') || filter.len() > usize::from(u16::MAX) {
        return Err(raw.fail("must be 1 to 65535 bytes without NUL characters"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (n, level) in levels.iter().enumerate() {
        let misplaced_hash = level.contains('#') && (*level != "#" || n + 1 != levels.len());
        let misplaced_plus = level.contains('+') && *level != "+";
        if misplaced_hash || misplaced_plus {
            return Err(raw.fail(
                "+ must be a whole level and # the whole last level (MQTT 3.1.1 section 4.7)",
            ));
        }
    }
    if filter.starts_with("$share/") && levels.len() < 3 {
        return Err(raw.fail("a shared subscription is $share/GROUP/FILTER"));
    }
    Ok(filter)
}

fn resolve_hosts(raw: Option<Raw>) -> Result<Vec<HostPort>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items = raw.list()?;
    let several = items.len() > 1;
    items
        .iter()
        .map(|item| {
            parse_host(item).map_err(|problem| match several {
                true => raw.fail(format!("{item:?}: {problem}")),
                false => raw.fail(problem),
            })
        })
        .collect()
}

fn resolve_users(raw: &Raw) -> Result<u32, ConfigError> {
    let users = raw.whole()?;
    u32::try_from(users).map_err(|_| raw.fail(format!("must be at most {}", u32::MAX)))
}

fn check_users_can_publish(
    users: u32,
    users_raw: &Raw,
    messages_raw: Option<&Raw>,
) -> Result<(), ConfigError> {
    if users > 0 {
        return Ok(());
    }
    let problem = "at least one user is needed to publish";
    match messages_raw {
        Some(messages) => Err(invalid(format!(
            "{} with {}: {problem}",
            users_raw.describe(),
            messages.describe()
        ))),
        None => Err(users_raw.fail(problem)),
    }
}

fn resolve_spawn_rate(raw: &Raw) -> Result<f64, ConfigError> {
    let rate = raw.float()?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(raw.fail("must be a number greater than 0 (users per second)"))
    }
}

fn resolve_messages(raw: Option<&Raw>) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.whole()? {
        0 => Err(raw.fail("must be at least 1")),
        messages => Ok(Some(messages)),
    }
}

fn resolve_run_time(
    raw: Option<Raw>,
    messages: Option<u64>,
) -> Result<Option<Duration>, ConfigError> {
    match raw {
        Some(raw) => positive_duration(&raw).map(Some),
        None if messages.is_some() => Ok(None),
        None => Ok(Some(DEFAULT_RUN_TIME)),
    }
}

fn positive_duration(raw: &Raw) -> Result<Duration, ConfigError> {
    match raw.duration()? {
        Duration::ZERO => Err(raw.fail("must be longer than 0")),
        duration => Ok(duration),
    }
}

fn resolve_qos(raw: &Raw) -> Result<u8, ConfigError> {
    match raw.whole() {
        Ok(qos @ 0..=2) => Ok(qos as u8),
        _ => Err(raw.fail("must be 0, 1 or 2")),
    }
}

const TOPIC_PLACEHOLDERS: [&str; 3] = ["{i}", "{token}", "{client_id}"];
const CLIENT_ID_PLACEHOLDERS: [&str; 2] = ["{i}", "{token}"];

fn resolve_topic(raw: &Raw, tokens: &[String]) -> Result<String, ConfigError> {
    let topic = raw.text()?;
    if topic.is_empty() {
        return Err(raw.fail("must not be empty"));
    }
    if topic.contains(['+', '#']) {
        return Err(raw.fail("must not contain the wildcards + or # (a PUBLISH names one topic)"));
    }
    if topic.contains('\0') || topic.len() > usize::from(u16::MAX) {
        return Err(raw.fail("must be at most 65535 bytes without NUL characters"));
    }
    check_placeholders(raw, &topic, &TOPIC_PLACEHOLDERS)?;
    if topic.contains("{token}") && tokens.iter().any(|token| token.contains(['+', '#'])) {
        return Err(
            raw.fail("uses {token}, and a device token contains + or #, which a topic must not")
        );
    }
    Ok(topic)
}

fn check_placeholders(raw: &Raw, template: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    match payload::unknown_placeholder(template, allowed) {
        Some(unknown) => Err(raw.fail(format!(
            "unknown placeholder {unknown} (known: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn resolve_client_id(raw: &Raw, users: u32, tokens: &[String]) -> Result<String, ConfigError> {
    let client_id = raw.text()?;
    if client_id.is_empty() {
        return Err(raw.fail("must not be empty"));
    }
    check_placeholders(raw, &client_id, &CLIENT_ID_PLACEHOLDERS)?;
    let unique_per_token = client_id.contains("{token}") && tokens.len() >= users as usize;
    if users > 1 && !client_id.contains("{i}") && !unique_per_token {
        return Err(raw.fail(
            "clients would share client ids, and the broker disconnects the older session: add {i}",
        ));
    }
    Ok(client_id)
}

/// Tokens come from `tokens` or `tokens_file`, whichever is set on the higher layer.
fn resolve_tokens(
    list: Option<Raw>,
    file: Option<Raw>,
    ctx: &Context,
) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    let list = list.filter(|raw| !raw.is_blank());
    let file = file.filter(|raw| !raw.is_blank());
    match (list, file) {
        (Some(list), Some(file)) if list.origin.layer() == file.origin.layer() => {
            Err(invalid(format!(
                "{} and {}: give tokens or a tokens file, not both",
                list.describe(),
                file.describe()
            )))
        }
        (Some(list), Some(file)) if file.origin.layer() > list.origin.layer() => {
            tokens_from_file(&file, ctx)
        }
        (Some(list), _) => tokens_from_list(&list).map(|tokens| (tokens, None)),
        (None, Some(file)) => tokens_from_file(&file, ctx),
        (None, None) => Ok((Vec::new(), None)),
    }
}

fn tokens_from_list(raw: &Raw) -> Result<Vec<String>, ConfigError> {
    let tokens = raw.list()?;
    match tokens.iter().position(|token| token.is_empty()) {
        Some(index) => Err(raw.fail(format!("token {} of {} is empty", index + 1, tokens.len()))),
        None => Ok(tokens),
    }
}

fn tokens_from_file(
    raw: &Raw,
    ctx: &Context,
) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    let path = raw.path(ctx)?;
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|err| invalid(format!("tokens file {name}: {err}")))?;
    let tokens = parse_tokens_file(&name, &text).map_err(invalid)?;
    Ok((tokens, Some(path)))
}

/// One token per line; blank lines and `#` comments are skipped. `name` names the file in
/// the error when no token is left.
pub fn parse_tokens_file(name: &str, text: &str) -> Result<Vec<String>, String> {
    let tokens: Vec<String> = text
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect();
    if !tokens.is_empty() {
        return Ok(tokens);
    }
    let why = if text.trim().is_empty() {
        "file is empty"
    } else {
        "only blank lines and comments"
    };
    Err(format!("tokens file {name}: no tokens ({why})"))
}

/// An explicitly named payload must exist; the default ./data.json falls back to the
/// built-in copy.
fn resolve_payload(raw: Option<Raw>, ctx: &Context) -> Result<Payload, ConfigError> {
    if let Some(raw) = raw {
        return Payload::load(&raw.path(ctx)?).map_err(invalid);
    }
    let default_path = ctx.cwd.join(DEFAULT_PAYLOAD_FILE);
    if default_path.exists() {
        Payload::load(&default_path).map_err(invalid)
    } else {
        Ok(Payload::builtin())
    }
}

/// Most source addresses `--bind` may list (ranges expanded): a /16 of IPv4.
pub const MAX_BIND_ADDRS: usize = 65_536;

/// `--bind`: addresses and inclusive IPv4 ranges (`127.0.0.2-127.0.0.40`), in order.
fn resolve_bind(raw: Option<Raw>) -> Result<Vec<IpAddr>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut addrs = Vec::new();
    for item in raw.list()? {
        let more =
            parse_bind_item(&item).map_err(|problem| raw.fail(format!("{item:?}: {problem}")))?;
        if addrs.len() + more.len() > MAX_BIND_ADDRS {
            return Err(raw.fail(format!("more than {MAX_BIND_ADDRS} source addresses")));
        }
        addrs.extend(more);
    }
    Ok(addrs)
}

/// One `--bind` item: an IP address, or `FIRST-LAST` (IPv4, inclusive, FIRST <= LAST).
fn parse_bind_item(item: &str) -> Result<Vec<IpAddr>, String> {
    const FORMS: &str = "expected an IP address or an IPv4 range such as 127.0.0.2-127.0.0.40";
    let Some((first, last)) = item.split_once('-') else {
        return item
            .parse::<IpAddr>()
            .map(|ip| vec![ip])
            .map_err(|_| FORMS.to_string());
    };
    let parse = |text: &str| {
        text.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| FORMS.to_string())
    };
    let (first, last) = (u32::from(parse(first)?), u32::from(parse(last)?));
    if first > last {
        return Err("the range ends before it starts".to_string());
    }
    if (last - first) as usize >= MAX_BIND_ADDRS {
        return Err(format!("more than {MAX_BIND_ADDRS} source addresses"));
    }
    Ok((first..=last)
        .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        .collect())
}

fn resolve_connect_rate(raw: Option<Raw>) -> Result<Option<f64>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let rate = raw.float()?;
    if rate.is_finite() && rate > 0.0 {
        Ok(Some(rate))
    } else {
        Err(raw.fail("must be a number greater than 0 (TCP connects per second)"))
    }
}

fn resolve_max_inflight(raw: &Raw) -> Result<u16, ConfigError> {
    match raw.whole() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(raw.fail("must be between 1 and 65535")),
    }
}

fn resolve_keep_alive(raw: &Raw) -> Result<u16, ConfigError> {
    let keep_alive = raw.duration()?;
    let whole_seconds = keep_alive.subsec_nanos() == 0;
    match u16::try_from(keep_alive.as_secs()) {
        Ok(seconds) if whole_seconds => Ok(seconds),
        _ => Err(raw.fail("must be whole seconds, at most 65535 (0 disables keep-alive)")),
    }
}

fn resolve_threads(raw: Option<Raw>, ctx: &Context, users: u32) -> Result<usize, ConfigError> {
    let threads = match raw {
        Some(raw) => match raw.whole()? {
            0 => return Err(raw.fail("must be at least 1")),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        None => ctx.available_cores.max(1),
    };
    // More workers than users would leave workers with nothing to do.
    Ok(threads.min(users.max(1) as usize))
}

fn optional_path(raw: Option<Raw>, ctx: &Context) -> Result<Option<PathBuf>, ConfigError> {
    match raw {
        Some(raw) if !raw.is_blank() => raw.path(ctx).map(Some),
        _ => Ok(None),
    }
}

fn non_empty_text(raw: &Raw) -> Result<String, ConfigError> {
    match raw.text()? {
        text if text.trim().is_empty() => Err(raw.fail("must not be empty")),
        text => Ok(text),
    }
}

/// Each user holds one socket (two with the embedded broker, which holds the other end in
/// this process); refuse a plan that would run out of descriptors half-way through the ramp-up.
fn check_open_files(
    users: u32,
    users_raw: &Raw,
    embedded_broker: bool,
    open_files_limit: u64,
) -> Result<(), ConfigError> {
    let sockets_per_user = if embedded_broker { 2 } else { 1 };
    let sockets = u64::from(users) * sockets_per_user;
    let available = open_files_limit.saturating_sub(RESERVED_FDS);
    if sockets <= available {
        return Ok(());
    }
    let which = if embedded_broker {
        " (each client and its embedded-broker end)"
    } else {
        ""
    };
    Err(invalid(format!(
        "{} needs {sockets} sockets{which} but this process may open at most {available} (open-files limit {open_files_limit}): run fewer users per process, or split the run over several processes or hosts (scripts/run_cluster.sh, --shard)",
        users_raw.describe()
    )))
}

/// This process's part of the plan: everything when no `--shard` is given.
struct ShardPart {
    shard: Option<Shard>,
    users: u32,
    messages: Option<u64>,
    spawn_rate: f64,
    tokens: Vec<String>,
    client_index_offset: u64,
}

/// Divide users, the message limit and the spawn rate, offset client indexes and split the
/// tokens for `--shard K/N` (see [`crate::shard`]). Every shard needs at least one user, one
/// message (with a limit) and one token (with tokens), or it would run a different plan; the
/// check is on the whole split, so all shards refuse it alike instead of some running.
fn resolve_shard(
    raw: Option<Raw>,
    users: u32,
    messages: Option<u64>,
    spawn_rate: f64,
    tokens: Vec<String>,
) -> Result<ShardPart, ConfigError> {
    let Some(raw) = raw.filter(|raw| !raw.is_blank()) else {
        return Ok(ShardPart {
            shard: None,
            users,
            messages,
            spawn_rate,
            tokens,
            client_index_offset: 0,
        });
    };
    let shard = shard::parse_shard(&raw.text()?).map_err(|problem| raw.fail(problem))?;
    if users < shard.count {
        return Err(raw.fail(format!(
            "{users} users cannot be split over {} shards: each shard needs at least one user",
            shard.count
        )));
    }
    if messages.is_some_and(|total| total < u64::from(shard.count)) {
        return Err(raw.fail(format!(
            "--messages {} cannot be split over {} shards: each shard needs at least one message",
            messages.unwrap_or(0),
            shard.count
        )));
    }
    let clients = shard::range_of(users.into(), shard);
    let shard_users = clients.end - clients.start;
    let shard_messages = messages.map(|total| shard::share_of(total, shard));
    let tokens = match tokens.is_empty() {
        true => tokens,
        false => shard::tokens_of(&tokens, shard).map_err(|problem| raw.fail(problem))?,
    };
    Ok(ShardPart {
        shard: Some(shard),
        users: shard_users as u32,
        messages: shard_messages,
        spawn_rate: shard::spawn_rate_of(spawn_rate, shard_users, users.into()),
        tokens,
        client_index_offset: clients.start,
    })
}

/// Epoch milliseconds; more than [`shard::START_AT_TOLERANCE`] in the past is refused here,
/// before anything starts, because this host would start later than the others.
fn resolve_start_at(raw: Option<Raw>) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = raw.filter(|raw| !raw.is_blank()) else {
        return Ok(None);
    };
    let start_at_ms = raw.whole().map_err(|_| {
        raw.fail("expected milliseconds since the Unix epoch, e.g. $(( $(date +%s) + 10 ))000")
    })?;
    shard::wait_until(start_at_ms, shard::now_epoch_ms()).map_err(|problem| raw.fail(problem))?;
    Ok(Some(start_at_ms))
}

/// The effective settings, secrets redacted, in config.toml key names and value syntax.
fn effective_config(
    plan: &Plan,
    config_file: Option<&Path>,
    tokens_file: Option<&Path>,
) -> serde_json::Value {
    let path = |p: Option<&Path>| p.map(|p| p.display().to_string());
    let tokens = match plan.tokens.len() {
        0 => json!([]),
        count => json!(format!("<{count} tokens redacted>")),
    };
    json!({
        "config_file": path(config_file),
        "host": plan.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "run_time": plan.run_time.map(format_duration),
        "messages": plan.messages,
        "qos": plan.qos,
        "topic": plan.topic,
        "payload": plan.payload.source(),
        "interval": format_duration(plan.interval),
        "max_inflight": plan.max_inflight,
        "timeout": format_duration(plan.timeout),
        "tokens": tokens,
        "tokens_file": path(tokens_file),
        "client_id": plan.client_id,
        "username": plan.username,
        "password": plan.password.as_ref().map(|_| "<redacted>"),
        "keep_alive": format_duration(Duration::from_secs(plan.keep_alive_s.into())),
        "threads": plan.threads,
        "only_summary": plan.only_summary,
        "stop_timeout": format_duration(plan.stop_timeout),
        "json": path(plan.json_path.as_deref()),
        "request_type": plan.request_type,
        "shard": plan.shard.map(|shard| shard.to_string()),
        "start_at": plan.start_at_epoch_ms,
        "csv": path(plan.csv_prefix.as_deref()),
        "csv_full_history": plan.csv_full_history,
        "hlog": path(plan.hlog_path.as_deref()),
        "html": path(plan.html_path.as_deref()),
        "bind": plan.bind.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "connect_rate": plan.connect_rate,
        "sub_users": plan.sub_users,
        "sub_topic": plan.sub_topic,
        "sub_qos": plan.sub_qos,
        "e2e": plan.e2e,
        "verify": plan.verify,
        "drain_timeout": format_duration(plan.drain_timeout),
        "reconnect": plan.reconnect,
        "churn": plan.churn.map(format_duration),
    })
}

// ---------------------------------------------------------------------------------------
// Value syntax.

/// `30` (seconds), `30s`, `5m`, `1h30m`, `250ms`, `1.5s`; units h, m, s, ms, us, ns.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DURATION_FORMS.to_string());
    }
    let mut total_ns: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let bare_number = number_len == text.len();
        let unit_ns = unit_nanos(unit.trim(), bare_number).ok_or(DURATION_FORMS)?;
        let component_ns = number_nanos(number, unit_ns).ok_or(DURATION_FORMS)?;
        total_ns = total_ns.checked_add(component_ns).ok_or(DURATION_FORMS)?;
        rest = next.trim_start();
    }
    u64::try_from(total_ns)
        .map(Duration::from_nanos)
        .map_err(|_| "too long (at most about 584 years)".to_string())
}

fn unit_nanos(unit: &str, bare_number: bool) -> Option<u128> {
    Some(match unit {
        "" if bare_number => 1_000_000_000,
        "h" => 3_600_000_000_000,
        "m" => 60_000_000_000,
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        _ => return None,
    })
}

/// `number` (digits, optionally one decimal point) times `unit_ns`, in integer arithmetic.
fn number_nanos(number: &str, unit_ns: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > 9
    {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    whole
        .checked_mul(unit_ns)?
        .checked_add(fraction.checked_mul(unit_ns)? / scale)
}

/// The shortest form [`parse_duration`] reads back: `1h30m`, `10s`, `250ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let ns = duration.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if !ns.is_multiple_of(1_000_000_000) {
        return match ns {
            _ if ns.is_multiple_of(1_000_000) => format!("{}ms", ns / 1_000_000),
            _ if ns.is_multiple_of(1_000) => format!("{}us", ns / 1_000),
            _ => format!("{ns}ns"),
        };
    }
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// `mqtt://host:port`, `tcp://host:port`, `host:port`, `host` (port 1883); IPv6 as `[::1]:1883`.
pub fn parse_host(text: &str) -> Result<HostPort, String> {
    const FORMS: &str = "expected mqtt://host:port, tcp://host:port, host:port or host";
    let text = text.trim();
    let address = match text.split_once("://") {
        None => text,
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => rest,
            "mqtts" | "ssl" | "tls" => {
                return Err(format!(
                    "TLS ({scheme}://) is not supported yet; use mqtt:// or tcp://"
                ))
            }
            "ws" | "wss" => {
                return Err(format!(
                    "WebSocket ({scheme}://) is not supported; use mqtt:// or tcp://"
                ))
            }
            _ => return Err(format!("unknown scheme {scheme}://: {FORMS}")),
        },
    };
    let address = address.strip_suffix('/').unwrap_or(address);
    if address.contains('@') {
        return Err("credentials go in --username/--password or --tokens, not in the host".into());
    }
    if address.contains('/') {
        return Err(format!("{FORMS} (no path)"));
    }
    let (host, port) = split_host_port(address).ok_or(FORMS)?;
    if host.is_empty() {
        return Err(format!("missing host name: {FORMS}"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("port {port:?} must be a number from 1 to 65535")),
        },
    };
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

fn split_host_port(address: &str) -> Option<(&str, Option<&str>)> {
    if let Some(bracketed) = address.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    if address.matches(':').count() > 1 {
        // A bare IPv6 address; a port needs the brackets.
        return Some((address, None));
    }
    match address.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((address, None)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A Plan with built-in defaults and the given payload, for payload tests.
    pub(crate) fn plan_with_payload(payload: Payload, qos: u8, topic: &str) -> Plan {
        let dir = TestDir::new();
        let mut plan = dir.plan(&["--qos", &qos.to_string()], &[]).unwrap();
        plan.payload = payload;
        plan.topic = topic.to_string();
        plan
    }

    /// A scratch working directory, removed when dropped.
    pub(crate) struct TestDir(PathBuf);

    impl TestDir {
        pub(crate) fn new() -> TestDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("mqblast-config-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TestDir(path)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(&path, text).unwrap();
            path
        }

        fn ctx(&self) -> Context {
            Context {
                cwd: self.0.clone(),
                open_files_limit: 1_000_000,
                available_cores: 4,
            }
        }

        fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
            self.command_in(args, env, &self.ctx())
        }

        fn command_in(
            &self,
            args: &[&str],
            env: &[(&str, &str)],
            ctx: &Context,
        ) -> Result<Command, ConfigError> {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup =
                move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let argv = std::iter::once("mqblast").chain(args.iter().copied());
            parse_in(argv, &lookup, ctx)
        }

        fn plan(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Plan, ConfigError> {
            match self.command(args, env)? {
                Command::Run(plan) => Ok(*plan),
                other => panic!("expected a run, got {other:?}"),
            }
        }

        fn error(&self, args: &[&str], env: &[(&str, &str)]) -> String {
            match self.plan(args, env) {
                Ok(_) => panic!("expected an error for {args:?} {env:?}"),
                Err(ConfigError::Invalid(message)) => message,
                Err(ConfigError::Usage(err)) => panic!("usage error: {err}"),
            }
        }

        fn path_of(&self, name: &str) -> String {
            self.0.join(name).display().to_string()
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    // ---- defaults and precedence ----

    #[test]
    fn subscribers_default_to_the_topic_with_placeholder_levels_as_plus_and_audit_on() {
        let dir = TestDir::new();
        let plan = dir
            .plan(
                &["--sub-users", "3", "--topic", "dev/{i}/t", "--qos", "2"],
                &[],
            )
            .unwrap();
        assert_eq!((plan.sub_users, plan.sub_qos), (3, 2));
        assert_eq!(plan.sub_topic, "dev/+/t");
        assert!(plan.e2e && plan.verify);
        assert_eq!(plan.drain_timeout, Duration::from_secs(2));
        let plain = dir.plan(&[], &[]).unwrap();
        assert!(
            !plain.e2e && !plain.verify,
            "plain runs send the payload as written"
        );
        let off = dir
            .plan(&["--sub-users", "1", "--verify", "false"], &[])
            .unwrap();
        assert!(off.e2e && !off.verify);
    }

    #[test]
    fn sub_topic_wildcards_must_be_whole_levels() {
        let dir = TestDir::new();
        assert!(dir.plan(&["--sub-topic", "a/#"], &[]).is_ok());
        assert!(dir.plan(&["--sub-topic", "a/+/b"], &[]).is_ok());
        assert!(dir.error(&["--sub-topic", "a/#/b"], &[]).contains("whole"));
        assert!(dir.error(&["--sub-topic", "a+"], &[]).contains("whole"));
        assert!(dir
            .error(&["--sub-topic", "$share/g"], &[])
            .contains("$share"));
    }

    #[test]
    fn an_audit_beyond_its_memory_bound_is_refused_with_advice() {
        let dir = TestDir::new();
        let error = dir.error(&["-u", "100000", "--sub-users", "100"], &[]);
        assert!(error.contains("--verify false"), "{error}");
    }

    #[test]
    fn a_bare_run_uses_the_defaults_of_the_old_script() {
        let plan = TestDir::new().plan(&[], &[]).unwrap();
        assert!(plan.hosts.is_empty());
        assert_eq!(plan.users, 10);
        assert_eq!(plan.spawn_rate, 10.0);
        assert_eq!(plan.run_time, Some(Duration::from_secs(10)));
        assert_eq!(plan.messages, None);
        assert_eq!(plan.qos, 1);
        assert_eq!(plan.topic, "v1/devices/me/telemetry");
        assert_eq!(plan.client_id, "mqblast-{i}");
        assert_eq!(plan.payload.source(), payload::BUILTIN_SOURCE);
        assert_eq!(plan.interval, Duration::from_secs(1));
        assert_eq!(plan.max_inflight, 16);
        assert_eq!(plan.timeout, Duration::from_secs(10));
        assert_eq!(plan.keep_alive_s, 60);
        assert_eq!(plan.threads, 4);
        assert!(!plan.only_summary);
        assert_eq!(plan.stop_timeout, Duration::from_secs(10));
        assert_eq!(plan.json_path, None);
        assert_eq!(plan.request_type, "MQTT");
        assert_eq!((plan.username, plan.password), (None, None));
        assert!(plan.tokens.is_empty());
    }

    #[test]
    fn the_shipped_config_toml_gives_the_same_plan_as_no_file() {
        let dir = TestDir::new();
        let bare = dir.plan(&[], &[]).unwrap();
        dir.write("config.toml", DEFAULT_CONFIG);
        let with_file = dir.plan(&[], &[]).unwrap();
        let mut effective = with_file.effective_config.clone();
        assert_eq!(effective["config_file"], dir.path_of("config.toml"));
        effective["config_file"] = serde_json::Value::Null;
        assert_eq!(effective, bare.effective_config);
    }

    #[test]
    fn the_shipped_config_toml_documents_every_setting_and_env_var() {
        for key in KEYS {
            let plain = format!("\n{} = ", key.name);
            let commented = format!("\n# {} = ", key.name);
            assert!(
                DEFAULT_CONFIG.contains(&plain) || DEFAULT_CONFIG.contains(&commented),
                "{} missing from config.toml",
                key.name
            );
            assert!(DEFAULT_CONFIG.contains(key.env), "{} undocumented", key.env);
            assert!(
                DEFAULT_CONFIG.contains(key.flag),
                "{} undocumented",
                key.flag
            );
        }
    }

    #[test]
    fn the_settings_guide_documents_every_setting_and_env_var() {
        let guide = include_str!("../docs/CONFIG.md");
        for key in KEYS {
            assert!(
                guide.contains(&format!("`{}", key.name)),
                "{} undocumented",
                key.name
            );
            assert!(guide.contains(key.env), "{} undocumented", key.env);
            assert!(guide.contains(key.flag), "{} undocumented", key.flag);
        }
    }

    #[test]
    fn the_config_file_overrides_defaults() {
        let dir = TestDir::new();
        dir.write(
            "config.toml",
            "users = 20\nrun_time = \"5m\"\nhost = \"broker\"\n",
        );
        let plan = dir.plan(&[], &[]).unwrap();
        assert_eq!(plan.users, 20);
        assert_eq!(plan.run_time, Some(Duration::from_secs(300)));
        assert_eq!(
            plan.hosts,
            vec![HostPort {
                host: "broker".into(),
                port: 1883
            }]
        );
    }

    #[test]
    fn the_environment_overrides_the_config_file() {
        let dir = TestDir::new();
        dir.write(
            "config.toml",
            "users = 20\nrun_time = \"5m\"\nhost = \"broker\"\n",
        );
        let env = [
            ("MQBLAST_USERS", "30"),
            ("MQBLAST_RUN_TIME", "1h30m"),
            ("MQBLAST_HOST", "a:1,b:2"),
        ];
        let plan = dir.plan(&[], &env).unwrap();
        assert_eq!(plan.users, 30);
        assert_eq!(plan.run_time, Some(Duration::from_secs(5400)));
        assert_eq!(plan.hosts.len(), 2);
        assert_eq!(
            plan.hosts[1],
            HostPort {
                host: "b".into(),
                port: 2
            }
        );
    }

    #[test]
    fn the_command_line_overrides_the_environment_and_the_file() {
        let dir = TestDir::new();
        dir.write("config.toml", "users = 20\nonly_summary = false\n");
        let env = [("MQBLAST_USERS", "30"), ("MQBLAST_ONLY_SUMMARY", "false")];
        let plan = dir.plan(&["-u", "40", "--only-summary"], &env).unwrap();
        assert_eq!(plan.users, 40);
        assert!(plan.only_summary);
    }

    #[test]
    fn an_empty_environment_variable_counts_as_unset() {
        let dir = TestDir::new();
        dir.write("config.toml", "users = 20\n");
        let plan = dir.plan(&[], &[("MQBLAST_USERS", "")]).unwrap();
        assert_eq!(plan.users, 20);
    }

    #[test]
    fn the_run_subcommand_takes_the_same_flags() {
        let plan = TestDir::new()
            .plan(&["run", "-u", "3", "--headless"], &[])
            .unwrap();
        assert_eq!(plan.users, 3);
    }

    #[test]
    fn a_message_limit_alone_means_no_time_limit() {
        let plan = TestDir::new().plan(&["--messages", "100"], &[]).unwrap();
        assert_eq!(plan.messages, Some(100));
        assert_eq!(plan.run_time, None);
    }

    #[test]
    fn keys_may_be_written_with_dashes_as_in_tool_locust() {
        let dir = TestDir::new();
        dir.write("config.toml", "spawn-rate = 2.5\nrun-time = 30\n");
        let plan = dir.plan(&[], &[]).unwrap();
        assert_eq!(plan.spawn_rate, 2.5);
        assert_eq!(plan.run_time, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_config_file_named_with_f_or_the_environment_is_read() {
        let dir = TestDir::new();
        dir.write("other.toml", "users = 7\n");
        dir.write("env.toml", "users = 8\n");
        assert_eq!(dir.plan(&["-f", "other.toml"], &[]).unwrap().users, 7);
        let env = [("MQBLAST_CONFIG", "env.toml")];
        assert_eq!(dir.plan(&[], &env).unwrap().users, 8);
        assert_eq!(
            dir.plan(&["--config", "other.toml"], &env).unwrap().users,
            7
        );
    }

    #[test]
    fn relative_paths_in_the_config_file_are_relative_to_its_directory() {
        let dir = TestDir::new();
        dir.write(
            "runs/soak.toml",
            "tokens_file = \"tokens.txt\"\npayload = \"p.json\"\n",
        );
        dir.write("runs/tokens.txt", "t1\nt2\n");
        dir.write("runs/p.json", "{\"a\":1}");
        let plan = dir.plan(&["-f", "runs/soak.toml"], &[]).unwrap();
        assert_eq!(plan.tokens, vec!["t1", "t2"]);
        assert_eq!(plan.payload.source(), dir.path_of("runs/p.json"));
    }

    // ---- subcommands ----

    #[test]
    fn init_and_config_default_are_commands() {
        let dir = TestDir::new();
        assert!(matches!(dir.command(&["init"], &[]), Ok(Command::Init)));
        assert!(matches!(
            dir.command(&["config", "--default"], &[]),
            Ok(Command::PrintDefaultConfig)
        ));
    }

    #[test]
    fn config_without_default_is_a_usage_error() {
        let err = TestDir::new().command(&["config"], &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Usage(_)));
    }

    #[test]
    fn run_flags_before_a_subcommand_are_a_usage_error() {
        let err = TestDir::new()
            .command(&["-u", "5", "init"], &[])
            .unwrap_err();
        assert!(matches!(err, ConfigError::Usage(_)));
    }

    #[test]
    fn help_is_reported_as_a_clap_usage_result() {
        match TestDir::new().command(&["--help"], &[]) {
            Err(ConfigError::Usage(err)) => {
                assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
                assert!(err.to_string().contains("--spawn-rate"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn init_writes_the_default_config_and_refuses_to_overwrite() {
        let dir = TestDir::new();
        let path = dir.0.join("config.toml");
        write_default_config(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_CONFIG);
        let err = write_default_config(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "config.toml already exists: not overwriting it (edit it, or remove it first)"
            ),
            "{err}"
        );
    }

    // ---- errors name their source ----

    #[test]
    fn a_bad_qos_in_the_file_names_file_line_and_key() {
        let dir = TestDir::new();
        dir.write("config.toml", "# comment\n\nusers = 1\n\n\n\nqos = 3\n");
        let err = dir.error(&[], &[]);
        assert_eq!(
            err,
            format!(
                "{} line 7: qos = 3: must be 0, 1 or 2",
                dir.path_of("config.toml")
            )
        );
    }

    #[test]
    fn a_bad_qos_in_the_environment_or_flags_names_the_variable_or_flag() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&[], &[("MQBLAST_QOS", "3")]),
            "MQBLAST_QOS=3: must be 0, 1 or 2"
        );
        assert_eq!(
            dir.error(&["--qos", "x"], &[]),
            "--qos x: must be 0, 1 or 2"
        );
    }

    #[test]
    fn an_unknown_key_names_the_key_file_and_line() {
        let dir = TestDir::new();
        dir.write("config.toml", "users = 1\nusrs = 2\n");
        let err = dir.error(&[], &[]);
        assert!(
            err.starts_with(&format!(
                "{} line 2: unknown setting \"usrs\"",
                dir.path_of("config.toml")
            )),
            "{err}"
        );
    }

    #[test]
    fn a_section_is_an_unknown_key() {
        let dir = TestDir::new();
        dir.write("config.toml", "[run]\nusers = 2\n");
        assert!(dir.error(&[], &[]).contains("unknown setting \"run\""));
    }

    #[test]
    fn a_key_set_twice_through_an_alias_is_an_error() {
        let dir = TestDir::new();
        dir.write("config.toml", "run_time = 1\nrun-time = 2\n");
        let err = dir.error(&[], &[]);
        assert!(
            err.contains("line 2: run-time is set twice (also as run_time on line 1)"),
            "{err}"
        );
    }

    #[test]
    fn a_toml_syntax_error_names_file_line_and_column() {
        let dir = TestDir::new();
        dir.write("config.toml", "users = 1\nqos = = 2\n");
        let err = dir.error(&[], &[]);
        assert!(
            err.starts_with(&format!("{} line 2 column ", dir.path_of("config.toml"))),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_wrong_type_in_the_file_is_explained() {
        let dir = TestDir::new();
        dir.write("config.toml", "users = \"many\"\n");
        let err = dir.error(&[], &[]);
        assert!(
            err.ends_with("line 1: users = \"many\": expected a whole number"),
            "{err}"
        );
    }

    #[test]
    fn a_named_config_file_that_is_missing_is_an_error() {
        let err = TestDir::new().error(&["-f", "/nonexistent/mq.toml"], &[]);
        assert!(
            err.starts_with("config file /nonexistent/mq.toml: "),
            "{err}"
        );
    }

    #[test]
    fn zero_users_with_a_message_limit_explains_both_values() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["--users", "0", "--messages", "100"], &[]),
            "--users 0 with --messages 100: at least one user is needed to publish"
        );
        assert_eq!(
            dir.error(&[], &[("MQBLAST_USERS", "0")]),
            "MQBLAST_USERS=0: at least one user is needed to publish"
        );
    }

    #[test]
    fn spawn_rate_must_be_positive_and_finite() {
        let dir = TestDir::new();
        for rate in ["0", "inf", "NaN", "fast"] {
            let err = dir.error(&["-r", rate], &[]);
            assert!(err.starts_with(&format!("--spawn-rate {rate}: ")), "{err}");
        }
        assert_eq!(
            dir.error(&[], &[("MQBLAST_SPAWN_RATE", "-1")]),
            "MQBLAST_SPAWN_RATE=-1: must be a number greater than 0 (users per second)"
        );
        assert_eq!(dir.plan(&["-r", "0.5"], &[]).unwrap().spawn_rate, 0.5);
    }

    #[test]
    fn max_inflight_must_fit_a_packet_identifier_window() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["--max-inflight", "0"], &[]),
            "--max-inflight 0: must be between 1 and 65535"
        );
        assert_eq!(
            dir.error(&["--max-inflight", "65536"], &[]),
            "--max-inflight 65536: must be between 1 and 65535"
        );
        assert_eq!(
            dir.plan(&["--max-inflight", "65535"], &[])
                .unwrap()
                .max_inflight,
            65535
        );
    }

    #[test]
    fn run_time_messages_and_threads_must_be_positive() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["-t", "0"], &[]),
            "--run-time 0: must be longer than 0"
        );
        assert_eq!(
            dir.error(&["--messages", "0"], &[]),
            "--messages 0: must be at least 1"
        );
        assert_eq!(
            dir.error(&["--threads", "0"], &[]),
            "--threads 0: must be at least 1"
        );
        assert_eq!(
            dir.error(&["--timeout", "0s"], &[]),
            "--timeout 0s: must be longer than 0"
        );
    }

    #[test]
    fn a_bad_duration_lists_the_accepted_forms() {
        let err = TestDir::new().error(&["-t", "5 minutes"], &[]);
        assert_eq!(err, format!("--run-time 5 minutes: {DURATION_FORMS}"));
    }

    #[test]
    fn threads_are_capped_at_users() {
        let dir = TestDir::new();
        assert_eq!(
            dir.plan(&["-u", "2", "--threads", "8"], &[])
                .unwrap()
                .threads,
            2
        );
        assert_eq!(dir.plan(&["-u", "1"], &[]).unwrap().threads, 1);
    }

    #[test]
    fn keep_alive_takes_seconds_or_a_duration_in_whole_seconds() {
        let dir = TestDir::new();
        assert_eq!(
            dir.plan(&["--keep-alive", "90"], &[]).unwrap().keep_alive_s,
            90
        );
        assert_eq!(
            dir.plan(&["--keep-alive", "1m30s"], &[])
                .unwrap()
                .keep_alive_s,
            90
        );
        assert_eq!(
            dir.plan(&["--keep-alive", "0"], &[]).unwrap().keep_alive_s,
            0
        );
        assert!(dir
            .error(&["--keep-alive", "500ms"], &[])
            .starts_with("--keep-alive 500ms: must be whole seconds"));
        assert!(dir
            .error(&["--keep-alive", "65536"], &[])
            .contains("at most 65535"));
    }

    #[test]
    fn topics_must_be_non_empty_without_wildcards_or_unknown_placeholders() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["--topic", ""], &[]),
            "--topic \"\": must not be empty"
        );
        assert!(dir
            .error(&["--topic", "a/+/b"], &[])
            .starts_with("--topic a/+/b: must not contain the wildcards"));
        assert!(dir.error(&["--topic", "a/#"], &[]).contains("wildcards"));
        assert_eq!(
            dir.error(&["--topic", "v1/{tokn}"], &[]),
            "--topic v1/{tokn}: unknown placeholder {tokn} (known: {i}, {token}, {client_id})"
        );
        let plan = dir
            .plan(&["--topic", "v1/lptrk/gps/{i}/{token}/{client_id}"], &[])
            .unwrap();
        assert_eq!(plan.topic, "v1/lptrk/gps/{i}/{token}/{client_id}");
    }

    #[test]
    fn client_ids_must_be_non_empty_and_distinct_per_client() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["--client-id", ""], &[]),
            "--client-id \"\": must not be empty"
        );
        assert!(dir.error(&["--client-id", "dev"], &[]).contains("add {i}"));
        assert!(dir
            .error(&["--client-id", "{client_id}"], &[])
            .contains("unknown placeholder {client_id}"));
        assert!(dir.plan(&["--client-id", "dev", "-u", "1"], &[]).is_ok());
        assert!(dir
            .plan(
                &["--client-id", "{token}", "-u", "2", "--tokens", "a,b"],
                &[]
            )
            .is_ok());
        assert!(dir
            .error(
                &["--client-id", "{token}", "-u", "3", "--tokens", "a,b"],
                &[]
            )
            .contains("add {i}"));
    }

    #[test]
    fn a_password_without_a_user_name_is_refused_without_echoing_it() {
        let dir = TestDir::new();
        let err = dir.error(&["--password", "hunter2"], &[]);
        assert!(
            err.starts_with("--password: a password needs a user name"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        assert!(dir
            .plan(&["--password", "p", "--username", "u"], &[])
            .is_ok());
    }

    // ---- shards ----

    #[test]
    fn shards_divide_users_messages_and_spawn_rate_exactly() {
        let dir = TestDir::new();
        let plans: Vec<Plan> = (1..=3)
            .map(|k| {
                let shard = format!("{k}/3");
                let args = [
                    "-u",
                    "10",
                    "--messages",
                    "100",
                    "-r",
                    "30",
                    "--connect-rate",
                    "60",
                    "--shard",
                    &shard,
                ];
                dir.plan(&args, &[]).unwrap()
            })
            .collect();
        let users: Vec<u32> = plans.iter().map(|p| p.users).collect();
        assert_eq!(users, vec![4, 3, 3]);
        let messages: Vec<u64> = plans.iter().map(|p| p.messages.unwrap()).collect();
        assert_eq!(messages, vec![34, 33, 33]);
        let offsets: Vec<u64> = plans.iter().map(|p| p.client_index_offset).collect();
        assert_eq!(offsets, vec![0, 4, 7]);
        let rate: f64 = plans.iter().map(|p| p.spawn_rate).sum();
        assert!((rate - 30.0).abs() < 1e-9);
        let connect_rate: f64 = plans.iter().map(|p| p.connect_rate.unwrap()).sum();
        assert!((connect_rate - 60.0).abs() < 1e-9);
        assert_eq!(plans[1].effective_config["shard"], "2/3");
        assert_eq!(plans[1].effective_config["users"], 3);
    }

    #[test]
    fn shards_split_the_tokens_and_keep_each_clients_token() {
        let dir = TestDir::new();
        let tokens = "t0,t1,t2,t3,t4";
        let plan = |k: &str| {
            dir.plan(&["-u", "5", "--tokens", tokens, "--shard", k], &[])
                .unwrap()
        };
        let (first, second) = (plan("1/2"), plan("2/2"));
        assert_eq!(first.tokens, vec!["t0", "t1", "t2"]);
        assert_eq!(second.tokens, vec!["t3", "t4"]);
        assert_eq!(second.client_index_offset, 3);
        assert_eq!(second.token_for(3), "t3");
        assert_eq!(second.username_for(4), Some("t4"));
    }

    #[test]
    fn a_shard_that_would_get_nothing_is_refused() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["-u", "2", "--shard", "3/3"], &[]),
            "--shard 3/3: 2 users cannot be split over 3 shards: each shard needs at least one user"
        );
        assert!(dir
            .error(&["-u", "4", "--messages", "2", "--shard", "1/3"], &[])
            .contains("--messages 2 cannot be split over 3 shards"));
        assert!(dir
            .error(&["-u", "4", "--tokens", "a,b", "--shard", "1/3"], &[])
            .starts_with("--shard 1/3: 2 device tokens cannot be split over 3 shards"));
        assert!(dir
            .error(&["--shard", "0/3"], &[])
            .starts_with("--shard 0/3: expected K/N"));
        assert!(dir
            .error(&[], &[("MQBLAST_SHARD", "4/3")])
            .starts_with("MQBLAST_SHARD=4/3: expected K/N"));
    }

    #[test]
    fn a_client_id_without_i_is_refused_when_the_whole_plan_has_several_users() {
        let dir = TestDir::new();
        assert!(dir
            .error(&["-u", "2", "--client-id", "dev", "--shard", "1/2"], &[])
            .contains("add {i}"));
    }

    #[test]
    fn without_a_shard_the_plan_is_whole() {
        let plan = TestDir::new().plan(&["-u", "7"], &[]).unwrap();
        assert_eq!((plan.shard, plan.client_index_offset), (None, 0));
        assert_eq!(plan.effective_config["shard"], serde_json::Value::Null);
    }

    #[test]
    fn a_start_time_ahead_is_kept_and_one_in_the_past_is_refused() {
        let dir = TestDir::new();
        let ahead = (shard::now_epoch_ms() + 60_000).to_string();
        let plan = dir.plan(&["--start-at", &ahead], &[]).unwrap();
        assert_eq!(plan.start_at_epoch_ms, Some(ahead.parse().unwrap()));
        assert_eq!(
            plan.effective_config["start_at"],
            ahead.parse::<u64>().unwrap()
        );
        let past = (shard::now_epoch_ms() - 5_000).to_string();
        let err = dir.error(&["--start-at", &past], &[]);
        assert!(
            err.starts_with(&format!(
                "--start-at {past}: the start time is 5.0 s in the past"
            )),
            "{err}"
        );
        dir.write("config.toml", "start_at = \"soon\"\n");
        assert!(dir
            .error(&[], &[])
            .contains("expected milliseconds since the Unix epoch"));
    }

    // ---- tokens ----

    #[test]
    fn tokens_are_read_from_the_flag_or_the_file() {
        let dir = TestDir::new();
        let plan = dir.plan(&["--tokens", "a, b ,c"], &[]).unwrap();
        assert_eq!(plan.tokens, vec!["a", "b", "c"]);
        dir.write("tokens.txt", "\u{feff}# devices\nA1\n\n  B2  \r\n# end\n");
        let plan = dir.plan(&["--tokens-file", "tokens.txt"], &[]).unwrap();
        assert_eq!(plan.tokens, vec!["A1", "B2"]);
        assert_eq!(plan.username_for(3), Some("B2"));
    }

    #[test]
    fn an_empty_token_in_a_list_is_refused_without_echoing_tokens() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["--tokens", "sekret,,b"], &[]),
            "--tokens: token 2 of 3 is empty"
        );
        dir.write("config.toml", "tokens = [\"a\", \"\"]\n");
        let err = dir.error(&[], &[]);
        assert!(
            err.ends_with("line 1: tokens: token 2 of 2 is empty"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_tokens_file_is_an_error_naming_it() {
        let dir = TestDir::new();
        dir.write("tokens.txt", "");
        assert_eq!(
            dir.error(&["--tokens-file", "tokens.txt"], &[]),
            format!(
                "tokens file {}: no tokens (file is empty)",
                dir.path_of("tokens.txt")
            )
        );
        dir.write("tokens.txt", "# none yet\n\n");
        assert!(dir
            .error(&["--tokens-file", "tokens.txt"], &[])
            .ends_with("no tokens (only blank lines and comments)"));
    }

    #[test]
    fn a_missing_tokens_file_is_an_error_naming_it() {
        let err = TestDir::new().error(&["--tokens-file", "/x"], &[]);
        assert!(err.starts_with("tokens file /x: "), "{err}");
        assert!(err.contains("os error 2"), "{err}");
    }

    #[test]
    fn tokens_and_a_tokens_file_on_the_same_layer_conflict_and_a_higher_layer_wins() {
        let dir = TestDir::new();
        dir.write("tokens.txt", "f1\n");
        let err = dir.error(&["--tokens", "a", "--tokens-file", "tokens.txt"], &[]);
        assert_eq!(
            err,
            format!(
                "--tokens and --tokens-file {}: give tokens or a tokens file, not both",
                "tokens.txt"
            )
        );
        dir.write("config.toml", "tokens = [\"c1\"]\n");
        let plan = dir.plan(&["--tokens-file", "tokens.txt"], &[]).unwrap();
        assert_eq!(plan.tokens, vec!["f1"]);
        let plan = dir.plan(&[], &[("MQBLAST_TOKENS", "e1,e2")]).unwrap();
        assert_eq!(plan.tokens, vec!["e1", "e2"]);
    }

    #[test]
    fn tokens_and_password_are_redacted_in_the_effective_config() {
        let plan = TestDir::new()
            .plan(
                &[
                    "--tokens",
                    "t1,t2,t3",
                    "--password",
                    "pw",
                    "--json",
                    "out.json",
                ],
                &[],
            )
            .unwrap();
        let effective = &plan.effective_config;
        assert_eq!(effective["tokens"], "<3 tokens redacted>");
        assert_eq!(effective["password"], "<redacted>");
        assert!(!effective.to_string().contains("t1"));
        assert!(!effective.to_string().contains("\"pw\""));
        assert_eq!(effective["run_time"], "10s");
        assert_eq!(effective["qos"], 1);
        let keys: Vec<&str> = effective
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys[0], "config_file");
        assert_eq!(&keys[1..], setting_names().collect::<Vec<_>>().as_slice());
    }

    // ---- payload ----

    #[test]
    fn a_data_json_in_the_working_directory_is_used_by_default() {
        let dir = TestDir::new();
        dir.write("data.json", "[{\"a\":1},{\"a\":2}]");
        let plan = dir.plan(&[], &[]).unwrap();
        assert_eq!(plan.payload.len(), 2);
        assert_eq!(plan.payload.source(), dir.path_of("data.json"));
    }

    #[test]
    fn a_named_payload_that_is_missing_is_an_error() {
        let err = TestDir::new().error(&["--payload", "data.json"], &[]);
        assert!(err.starts_with("payload "), "{err}");
        assert!(
            err.contains("data.json: No such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_payload_names_file_line_and_column() {
        let dir = TestDir::new();
        dir.write("data.json", "{\n  \"a\": 1,\n    \"b\" 2\n}");
        let err = dir.error(&[], &[]);
        assert_eq!(
            err,
            format!(
                "{}: line 3 column 9: expected `:`",
                dir.path_of("data.json")
            )
        );
    }

    // ---- open files ----

    #[test]
    fn users_beyond_the_open_files_limit_are_refused_with_advice() {
        let dir = TestDir::new();
        let ctx = Context {
            open_files_limit: 20_000,
            ..dir.ctx()
        };
        let err = match dir.command_in(&["-u", "25000", "-H", "broker"], &[], &ctx) {
            Err(ConfigError::Invalid(message)) => message,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(err, "--users 25000 needs 25000 sockets but this process may open at most 19936 (open-files limit 20000): run fewer users per process, or split the run over several processes or hosts (scripts/run_cluster.sh, --shard)");
        assert!(dir
            .command_in(&["-u", "19936", "-H", "broker"], &[], &ctx)
            .is_ok());
    }

    #[test]
    fn the_embedded_broker_needs_a_second_socket_per_user() {
        let dir = TestDir::new();
        let ctx = Context {
            open_files_limit: 1_064,
            ..dir.ctx()
        };
        assert!(dir.command_in(&["-u", "500"], &[], &ctx).is_ok());
        let err = dir
            .command_in(&["-u", "501"], &[], &ctx)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "--users 501 needs 1002 sockets (each client and its embedded-broker end)"
            ),
            "{err}"
        );
    }

    // ---- value syntax ----

    #[test]
    fn durations_accept_the_locust_forms_and_more() {
        let cases = [
            ("30", 30_000),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("1.5s", 1_500),
            ("1h 2m 3s", 3_723_000),
            ("0", 0),
            (" 2m ", 120_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
    }

    #[test]
    fn durations_reject_what_they_cannot_read() {
        for text in [
            "",
            "s",
            "5x",
            "-5s",
            "1h30",
            "1.2.3s",
            "5 minutes",
            "1.0000000001s",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DURATION_FORMS.to_string()),
                "{text:?}"
            );
        }
        assert!(parse_duration("999999999999h")
            .unwrap_err()
            .starts_with("too long"));
    }

    #[test]
    fn durations_format_in_a_form_they_parse_back_from() {
        for ms in [
            0, 1, 250, 1_000, 1_500, 60_000, 90_000, 3_600_000, 5_400_000, 3_723_000,
        ] {
            let duration = Duration::from_millis(ms);
            assert_eq!(
                parse_duration(&format_duration(duration)),
                Ok(duration),
                "{ms}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn hosts_accept_urls_host_port_and_bare_names() {
        let hp = |host: &str, port| HostPort {
            host: host.into(),
            port,
        };
        assert_eq!(
            parse_host("mqtt://tb.example.com:1884"),
            Ok(hp("tb.example.com", 1884))
        );
        assert_eq!(parse_host("tcp://10.0.0.1:1883/"), Ok(hp("10.0.0.1", 1883)));
        assert_eq!(parse_host("broker:2000"), Ok(hp("broker", 2000)));
        assert_eq!(parse_host("broker"), Ok(hp("broker", 1883)));
        assert_eq!(parse_host("MQTT://broker"), Ok(hp("broker", 1883)));
        assert_eq!(parse_host("[::1]:1884"), Ok(hp("::1", 1884)));
        assert_eq!(parse_host("::1"), Ok(hp("::1", 1883)));
    }

    #[test]
    fn hosts_reject_tls_paths_credentials_and_bad_ports() {
        assert!(parse_host("mqtts://b:8883")
            .unwrap_err()
            .starts_with("TLS (mqtts://) is not supported"));
        assert!(parse_host("ws://b").unwrap_err().starts_with("WebSocket"));
        assert!(parse_host("http://b")
            .unwrap_err()
            .starts_with("unknown scheme http://"));
        assert!(parse_host("b/x").unwrap_err().contains("no path"));
        assert!(parse_host("u:p@b").unwrap_err().starts_with("credentials"));
        assert!(parse_host("b:0").unwrap_err().contains("1 to 65535"));
        assert!(parse_host("b:70000").unwrap_err().contains("1 to 65535"));
        assert!(parse_host(":1883")
            .unwrap_err()
            .starts_with("missing host name"));
    }

    #[test]
    fn a_bad_host_in_a_list_is_named() {
        let dir = TestDir::new();
        assert_eq!(
            dir.error(&["-H", "a:1,b:0"], &[]),
            "--host a:1,b:0: \"b:0\": port \"0\" must be a number from 1 to 65535"
        );
        assert_eq!(dir.error(&["-H", "a,,b"], &[]), "--host a,,b: \"\": missing host name: expected mqtt://host:port, tcp://host:port, host:port or host");
    }

    #[test]
    fn an_empty_host_on_the_command_line_selects_the_embedded_broker() {
        let dir = TestDir::new();
        dir.write("config.toml", "host = [\"a\", \"mqtt://b:1\"]\n");
        assert_eq!(dir.plan(&[], &[]).unwrap().hosts.len(), 2);
        assert!(dir.plan(&["-H", ""], &[]).unwrap().hosts.is_empty());
    }

    #[test]
    fn tokens_files_skip_blank_lines_and_comments() {
        assert_eq!(
            parse_tokens_file("t", "a\n# b\n\n c \n"),
            Ok(vec!["a".to_string(), "c".to_string()])
        );
        assert_eq!(
            parse_tokens_file("t", "\n\n"),
            Err("tokens file t: no tokens (file is empty)".to_string())
        );
    }
}
