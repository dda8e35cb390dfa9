//! The clap types: the command line as text. Run flags stay strings so that they are parsed
//! by the same code, with the same messages, as environment and config file values.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::keys::KEYS;
use super::layers::{Layer, Origin, Raw, RawValue};

/// mqblast command line. Run flags are accepted without a subcommand (`run` is the default).
#[derive(Debug, Parser)]
#[command(
    name = "mqblast",
    version,
    about = "MQTT load generator (Locust-style users, spawn rate and run time)",
    args_conflicts_with_subcommands = true,
    // The last of a repeated flag wins (as argparse's): a Locust worker appends the master's
    // settings to its own command line.
    args_override_self = true,
    // Wrapped to the terminal, at most 100 columns (100 when not a terminal): a wider help
    // is hard to read, and one line per option ran to 400 columns.
    max_term_width = 100,
    // `-V`/`--version` print the version, as Locust's do; the MQTT version is
    // `--mqtt-version` only.
    after_help = "Settings: built-in defaults < ~/.locust.conf < ./locust.conf < \
                  pyproject.toml [tool.locust] < --config FILE.conf < config.toml < LOCUST_* \
                  environment < MQBLAST_* environment < flags. \
                  `mqblast config` prints the effective settings and where each came from; \
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
    Init(InitArgs),
    /// Print the effective configuration (what a run with these flags would use, and where
    /// each setting came from), or with --default the commented default config.toml.
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
    /// Address to listen on: loopback by default. Another address (e.g. 0.0.0.0:1883, every
    /// interface) lets other hosts connect; the sink has no authentication.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Send every PUBACK, PUBREC and PUBCOMP this long (e.g. 5ms) after its packet arrived.
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
    /// Terminate TLS with this certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<String>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<String>,
    /// Speak MQTT over WebSocket (upgrade, then binary frames); with --tls-cert, over TLS (wss)
    #[arg(long)]
    pub websocket: bool,
}

/// `mqblast init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write ./config.toml (and ./tokens.txt) from a Locust project instead: its config.py
    /// (read as data, never run), pyproject.toml [tool.locust] and locust.conf, in any order
    /// [default: ./config.py ./pyproject.toml ./locust.conf]
    #[arg(long = "from-locust", value_name = "FILE", num_args = 0..=3)]
    pub from_locust: Option<Vec<PathBuf>>,
}

/// `mqblast config` flags: every run flag (the configuration printed is the one a run with
/// them would use), or `--default`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the commented default config.toml instead.
    #[arg(long)]
    pub default: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of `mqblast run`. Values stay text here: they are parsed with the same code as the
/// environment and config file values, so every source gets the same checks and messages.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Config file: config.toml, or a Locust config file (*.conf, read as Locust's --config)
    /// [default: ./config.toml if it exists] [env: MQBLAST_CONFIG]
    #[arg(
        short = 'f',
        long = "config",
        value_name = "FILE",
        help_heading = "Common options"
    )]
    pub config: Option<PathBuf>,
    /// Broker(s), comma-separated: mqtt://host:port (port 1883), mqtts:// or ssl:// (TLS, 8883), ws://host:port/path, wss://host:port/path, host:port or host [default: embedded broker; an empty value is refused] [env: MQBLAST_HOST]
    #[arg(
        short = 'H',
        long,
        value_name = "HOSTS",
        help_heading = "Common options"
    )]
    pub host: Option<String>,
    /// Number of users (MQTT connections) [default: 10] [env: MQBLAST_USERS]
    #[arg(short = 'u', long, value_name = "N", help_heading = "Common options")]
    pub users: Option<String>,
    /// Users connected per second [default: 10] [env: MQBLAST_SPAWN_RATE]
    #[arg(
        short = 'r',
        long,
        value_name = "PER_S",
        help_heading = "Common options"
    )]
    pub spawn_rate: Option<String>,
    /// Stop after this long: 30, 30s, 5m, 1h30m, 250ms [default: 10s unless --messages] [env: MQBLAST_RUN_TIME]
    #[arg(
        short = 't',
        long,
        value_name = "DURATION",
        help_heading = "Common options"
    )]
    pub run_time: Option<String>,
    /// Stop after this many publishes in total [env: MQBLAST_MESSAGES]
    #[arg(long, value_name = "N", help_heading = "Common options")]
    pub messages: Option<String>,
    /// Worker threads, one per core [default: available cores] [env: MQBLAST_THREADS]
    #[arg(long, value_name = "N", help_heading = "Common options")]
    pub threads: Option<String>,
    /// Pin worker threads to cores: never, always, or owned (only when this process was given
    /// cores of its own) [default: owned] [env: MQBLAST_PIN]
    #[arg(long, value_name = "WHEN", help_heading = "Common options")]
    pub pin: Option<String>,
    /// Wait this long for outstanding acknowledgements after stopping [default: 10s] [env: MQBLAST_STOP_TIMEOUT]
    #[arg(
        short = 's',
        long,
        value_name = "DURATION",
        help_heading = "Common options"
    )]
    pub stop_timeout: Option<String>,
    /// QoS 0, 1 or 2 [default: 1] [env: MQBLAST_QOS]
    #[arg(long, value_name = "QOS", help_heading = "MQTT")]
    pub qos: Option<String>,
    /// Topic template with {i}, {token}, {client_id} [default: v1/devices/me/telemetry] [env: MQBLAST_TOPIC]
    #[arg(long, value_name = "TEMPLATE", help_heading = "MQTT")]
    pub topic: Option<String>,
    /// JSON payload file (an object or an array of objects), or a preset: smart-meter,
    /// smart-tracker, industrial-plc (a file of such a name: ./NAME) [default: ./data.json, else built-in] [env: MQBLAST_PAYLOAD]
    #[arg(long, value_name = "FILE|PRESET", help_heading = "MQTT")]
    pub payload: Option<String>,
    /// Data points (keys line000..) of --payload industrial-plc, 1 to 999 [default: 60] [env: MQBLAST_DATAPOINTS]
    #[arg(long, value_name = "N", help_heading = "MQTT")]
    pub datapoints: Option<String>,
    /// Acknowledgement and CONNACK timeout [default: 10s] [env: MQBLAST_TIMEOUT]
    #[arg(long, value_name = "DURATION", help_heading = "MQTT")]
    pub timeout: Option<String>,
    /// Device access tokens used as MQTT user names, round-robin: a,b,c [env: MQBLAST_TOKENS]
    #[arg(long, value_name = "TOKENS", help_heading = "MQTT")]
    pub tokens: Option<String>,
    /// File with one device token per line (# comments allowed) [env: MQBLAST_TOKENS_FILE]
    #[arg(long, value_name = "FILE", help_heading = "MQTT")]
    pub tokens_file: Option<String>,
    /// Device tokens named by index, as ThingsBoard's performance tests name them: DW{i:08}
    /// gives DW00000000, DW00000001, ... (instead of --tokens/--tokens-file) [env: MQBLAST_TOKENS_TEMPLATE]
    #[arg(long, value_name = "TEMPLATE", help_heading = "MQTT")]
    pub tokens_template: Option<String>,
    /// Number of the first device --tokens-template names (ThingsBoard's DEVICE_START_IDX) [default: 0] [env: MQBLAST_TOKENS_START]
    #[arg(long, value_name = "N", help_heading = "MQTT")]
    pub tokens_start: Option<String>,
    /// Client id template with {i}, {token} [default: mqblast-{i}] [env: MQBLAST_CLIENT_ID]
    #[arg(long, value_name = "TEMPLATE", help_heading = "MQTT")]
    pub client_id: Option<String>,
    /// MQTT user name when no tokens are given [env: MQBLAST_USERNAME]
    #[arg(long, value_name = "NAME", help_heading = "MQTT")]
    pub username: Option<String>,
    /// MQTT password [env: MQBLAST_PASSWORD]
    #[arg(long, value_name = "PASSWORD", help_heading = "MQTT")]
    pub password: Option<String>,
    /// MQTT keep-alive, whole seconds: 60 or 1m [default: 60s] [env: MQBLAST_KEEP_ALIVE]
    #[arg(long, value_name = "DURATION", help_heading = "MQTT")]
    pub keep_alive: Option<String>,
    /// MQTT protocol version: 3.1.1 or 5 [default: 3.1.1] [env: MQBLAST_MQTT_VERSION]
    #[arg(long, value_name = "VERSION", help_heading = "MQTT")]
    pub mqtt_version: Option<String>,
    /// Clean Start (MQTT 5) / Clean Session (3.1.1): true/false [default: true] [env: MQBLAST_CLEAN_START]
    #[arg(long, value_name = "BOOL", help_heading = "MQTT")]
    pub clean_start: Option<String>,
    /// MQTT 5 CONNECT Session Expiry Interval, whole seconds [default: 0] [env: MQBLAST_SESSION_EXPIRY]
    #[arg(long, value_name = "DURATION", help_heading = "MQTT 5")]
    pub session_expiry: Option<String>,
    /// MQTT 5 CONNECT Receive Maximum: publishes the broker may have in flight to us [env: MQBLAST_RECEIVE_MAXIMUM]
    #[arg(long, value_name = "N", help_heading = "MQTT 5")]
    pub receive_maximum: Option<String>,
    /// MQTT 5 CONNECT Maximum Packet Size we accept, bytes [env: MQBLAST_MAXIMUM_PACKET_SIZE]
    #[arg(long, value_name = "BYTES", help_heading = "MQTT 5")]
    pub maximum_packet_size: Option<String>,
    /// MQTT 5 CONNECT Topic Alias Maximum the broker may use towards us [env: MQBLAST_TOPIC_ALIAS_MAXIMUM]
    #[arg(long, value_name = "N", help_heading = "MQTT 5")]
    pub topic_alias_maximum: Option<String>,
    /// MQTT 5 CONNECT Request Problem Information: true/false [env: MQBLAST_REQUEST_PROBLEM_INFO]
    #[arg(long, value_name = "BOOL", help_heading = "MQTT 5")]
    pub request_problem_info: Option<String>,
    /// MQTT 5 CONNECT User Properties: name=value,... with {i}, {token}, {client_id} [env: MQBLAST_CONNECT_PROPERTIES]
    #[arg(long, value_name = "PAIRS", help_heading = "MQTT 5")]
    pub connect_properties: Option<String>,
    /// MQTT 5: the first publish carries the topic and alias 1, later ones only the alias [env: MQBLAST_TOPIC_ALIAS]
    #[arg(long, help_heading = "MQTT 5")]
    pub topic_alias: bool,
    /// MQTT 5 PUBLISH Message Expiry Interval, whole seconds [env: MQBLAST_MESSAGE_EXPIRY]
    #[arg(long, value_name = "DURATION", help_heading = "MQTT 5")]
    pub message_expiry: Option<String>,
    /// MQTT 5 PUBLISH Content Type, e.g. application/json [env: MQBLAST_CONTENT_TYPE]
    #[arg(long, value_name = "TYPE", help_heading = "MQTT 5")]
    pub content_type: Option<String>,
    /// MQTT 5 PUBLISH Payload Format Indicator: utf8 or bytes [env: MQBLAST_PAYLOAD_FORMAT]
    #[arg(long, value_name = "FORMAT", help_heading = "MQTT 5")]
    pub payload_format: Option<String>,
    /// MQTT 5 PUBLISH User Properties: name=value,... with {i}, {token}, {client_id} [env: MQBLAST_USER_PROPERTIES]
    #[arg(long, value_name = "PAIRS", help_heading = "MQTT 5")]
    pub user_properties: Option<String>,
    /// MQTT 5 subscription option No Local [env: MQBLAST_NO_LOCAL]
    #[arg(long, help_heading = "MQTT 5")]
    pub no_local: bool,
    /// MQTT 5 subscription option Retain As Published [env: MQBLAST_RETAIN_AS_PUBLISHED]
    #[arg(long, help_heading = "MQTT 5")]
    pub retain_as_published: bool,
    /// MQTT 5 subscription option Retain Handling: 0, 1 or 2 [default: 0] [env: MQBLAST_RETAIN_HANDLING]
    #[arg(long, value_name = "N", help_heading = "MQTT 5")]
    pub retain_handling: Option<String>,
    /// MQTT 5 Subscription Identifier of the subscribers' SUBSCRIBE [env: MQBLAST_SUBSCRIPTION_ID]
    #[arg(long, value_name = "N", help_heading = "MQTT 5")]
    pub subscription_id: Option<String>,
    /// TLS: trust the CAs in this PEM file instead of the system's roots [env: MQBLAST_CAFILE]
    #[arg(long, value_name = "PEM", help_heading = "TLS and WebSocket")]
    pub cafile: Option<String>,
    /// TLS: do not verify the broker's certificate (said in the banner and the report) [env: MQBLAST_INSECURE]
    #[arg(long, help_heading = "TLS and WebSocket")]
    pub insecure: bool,
    /// TLS: server name for SNI and certificate verification, e.g. when connecting by IP [default: the host] [env: MQBLAST_TLS_SERVER_NAME]
    #[arg(long, value_name = "NAME", help_heading = "TLS and WebSocket")]
    pub tls_server_name: Option<String>,
    /// TLS: ALPN protocols to offer, comma-separated [env: MQBLAST_ALPN]
    #[arg(long, value_name = "PROTOCOLS", help_heading = "TLS and WebSocket")]
    pub alpn: Option<String>,
    /// TLS client certificate (PEM chain) for every client; needs --key [env: MQBLAST_CERT]
    #[arg(long, value_name = "PEM", help_heading = "TLS and WebSocket")]
    pub cert: Option<String>,
    /// TLS client private key (PEM) for --cert [env: MQBLAST_KEY]
    #[arg(long, value_name = "PEM", help_heading = "TLS and WebSocket")]
    pub key: Option<String>,
    /// Per-device TLS client certificates: directory with --cert-name and --key-name files [env: MQBLAST_CERT_DIR]
    #[arg(long, value_name = "DIR", help_heading = "TLS and WebSocket")]
    pub cert_dir: Option<String>,
    /// File name of device i's certificate in --cert-dir, with {i} and {token} [default: device-{i}.pem] [env: MQBLAST_CERT_NAME]
    #[arg(long, value_name = "TEMPLATE", help_heading = "TLS and WebSocket")]
    pub cert_name: Option<String>,
    /// File name of device i's key in --cert-dir, with {i} and {token} [default: device-{i}.key] [env: MQBLAST_KEY_NAME]
    #[arg(long, value_name = "TEMPLATE", help_heading = "TLS and WebSocket")]
    pub key_name: Option<String>,
    /// TLS session resumption (tickets) on reconnect and --churn: true/false [default: true] [env: MQBLAST_TLS_RESUME]
    #[arg(long, value_name = "BOOL", help_heading = "TLS and WebSocket")]
    pub tls_resume: Option<String>,
    /// WebSocket path for ws:// and wss:// hosts without one [default: /mqtt] [env: MQBLAST_WS_PATH]
    #[arg(long, value_name = "PATH", help_heading = "TLS and WebSocket")]
    pub ws_path: Option<String>,
    /// Time between two publishes of a user; 0 = as fast as the in-flight window allows [default: 1s] [env: MQBLAST_INTERVAL]
    #[arg(long, value_name = "DURATION", help_heading = "Pacing and connections")]
    pub interval: Option<String>,
    /// A stream of every user, repeatable: KIND[,key=value...], KIND one of telemetry, attributes, publish (topic=... required); keys name, topic, payload (file or inline JSON), qos, and one pace: interval=5s, between=1s..3s (Locust's between), constant_pacing=2s or, under --rate, weight=N (a share of the rate). Each stream is its own row; unset keys take --payload, --qos, --interval. E.g. --stream telemetry,interval=1s --stream attributes,interval=30s,payload=attrs.json [default: one telemetry stream of --topic, --payload, --qos, --interval] [env: MQBLAST_STREAM, definitions separated by ;]
    #[arg(
        long = "stream",
        value_name = "KIND[,KEY=VALUE...]",
        action = clap::ArgAction::Append,
        help_heading = "Pacing and connections"
    )]
    pub stream: Vec<String>,
    /// Global rate: messages per second across all users (ThingsBoard's MESSAGES_PER_SECOND), spread evenly over each second; replaces --interval. With --gateway: device points (not MQTT messages) per second across all gateway devices [env: MQBLAST_RATE]
    #[arg(long, value_name = "PER_S", help_heading = "Pacing and connections")]
    pub rate: Option<String>,
    /// With --rate: each second's messages go to the next devices in order (sequential) or to devices drawn at random without repeats within a second (random) [default: sequential] [env: MQBLAST_RATE_ORDER]
    #[arg(long, value_name = "ORDER", help_heading = "Pacing and connections")]
    pub rate_order: Option<String>,
    /// The run's seed: the random rate order's draw, the payload's random values and the streams' between waits; every shard and worker of a run uses the same [default: 0] [env: MQBLAST_SEED]
    #[arg(long, value_name = "N", help_heading = "Pacing and connections")]
    pub seed: Option<String>,
    /// With --rate: the first N messages of each second (of the alarm storm) carry the payload's alarm value [default: 0] [env: MQBLAST_ALARMS_PER_SECOND]
    #[arg(long, value_name = "N", help_heading = "Pacing and connections")]
    pub alarms_per_second: Option<String>,
    /// With --alarms-per-second: the seconds with alarms, START..END from the start of publishing, END exclusive [default: every second] [env: MQBLAST_ALARM_STORM]
    #[arg(
        long,
        value_name = "START..END",
        help_heading = "Pacing and connections"
    )]
    pub alarm_storm: Option<String>,
    /// Unacknowledged publishes per connection, 1 to 65535 [default: 16] [env: MQBLAST_MAX_INFLIGHT]
    #[arg(long, value_name = "N", help_heading = "Pacing and connections")]
    pub max_inflight: Option<String>,
    /// Source addresses for outgoing connections, spread over clients: 10.0.0.2,10.0.0.3 or ranges 127.0.0.2-127.0.0.40 [default: chosen by the OS] [env: MQBLAST_BIND]
    #[arg(long, value_name = "ADDRS", help_heading = "Pacing and connections")]
    pub bind: Option<String>,
    /// TCP connects started per second across all workers, independent of the spawn rate [default: no limit] [env: MQBLAST_CONNECT_RATE]
    #[arg(long, value_name = "PER_S", help_heading = "Pacing and connections")]
    pub connect_rate: Option<String>,
    /// Reconnect lost connections with back-off (100 ms doubling to 5 s) and resume [env: MQBLAST_RECONNECT]
    #[arg(long, help_heading = "Pacing and connections")]
    pub reconnect: bool,
    /// Each publisher disconnects and reconnects this long after connecting [env: MQBLAST_CHURN]
    #[arg(long, value_name = "DURATION", help_heading = "Pacing and connections")]
    pub churn: Option<String>,
    /// Every device answers server-side RPC: subscribes to v1/devices/me/rpc/request/+ and answers each request on v1/devices/me/rpc/response/$id (QoS 0) [env: MQBLAST_RPC_RESPONDER]
    #[arg(long, help_heading = "ThingsBoard workloads")]
    pub rpc_responder: bool,
    /// With --rpc-responder: answer each request this long after it arrived [default: 0s] [env: MQBLAST_RPC_RESPONSE_DELAY]
    #[arg(long, value_name = "DURATION", help_heading = "ThingsBoard workloads")]
    pub rpc_response_delay: Option<String>,
    /// With --rpc-responder: the answer, a JSON file or inline JSON ('{"ok":true}'), or echo [default: echo, the request's params] [env: MQBLAST_RPC_RESPONSE]
    #[arg(long, value_name = "JSON|FILE", help_heading = "ThingsBoard workloads")]
    pub rpc_response: Option<String>,
    /// Subscriber clients, subscribed before publishers start [default: 0] [env: MQBLAST_SUB_USERS]
    #[arg(
        long,
        value_name = "N",
        help_heading = "Subscribers and delivery audit"
    )]
    pub sub_users: Option<String>,
    /// Subscribers' topic filter, + and # allowed, $share/group/... for a shared group [default: the topic, placeholders as +] [env: MQBLAST_SUB_TOPIC]
    #[arg(
        long,
        value_name = "FILTER",
        help_heading = "Subscribers and delivery audit"
    )]
    pub sub_topic: Option<String>,
    /// Subscription QoS 0, 1 or 2 [default: --qos] [env: MQBLAST_SUB_QOS]
    #[arg(
        long,
        value_name = "QOS",
        help_heading = "Subscribers and delivery audit"
    )]
    pub sub_qos: Option<String>,
    /// Embed the end-to-end marker even without subscribers [env: MQBLAST_E2E]
    #[arg(long, help_heading = "Subscribers and delivery audit")]
    pub e2e: bool,
    /// Delivery audit: true/false [default: true with subscribers] [env: MQBLAST_VERIFY]
    #[arg(
        long,
        value_name = "BOOL",
        help_heading = "Subscribers and delivery audit"
    )]
    pub verify: Option<String>,
    /// After publishers stop, subscribers wait until no message has arrived for this long (the quiet period) [default: 2s] [env: MQBLAST_DRAIN_TIMEOUT]
    #[arg(
        long,
        value_name = "DURATION",
        help_heading = "Subscribers and delivery audit"
    )]
    pub drain_timeout: Option<String>,
    /// Cap on that wait, from when the publishers finished: messages still arriving then make the audit "incomplete", not lost; at most 1h [default: 60s] [env: MQBLAST_DRAIN_MAX]
    #[arg(
        long,
        value_name = "DURATION",
        help_heading = "Subscribers and delivery audit"
    )]
    pub drain_max: Option<String>,
    /// Print only the final summary [env: MQBLAST_ONLY_SUMMARY]
    #[arg(long, help_heading = "Outputs")]
    pub only_summary: bool,
    /// Write the JSON summary to FILE [env: MQBLAST_JSON]
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    pub json: Option<String>,
    /// "Type" column label of the statistics table [default: MQTT] [env: MQBLAST_REQUEST_TYPE]
    #[arg(long, value_name = "LABEL", help_heading = "Outputs")]
    pub request_type: Option<String>,
    /// Write Locust-compatible CSVs PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv [env: MQBLAST_CSV]
    #[arg(long, value_name = "PREFIX", help_heading = "Outputs")]
    pub csv: Option<String>,
    /// CSV history: a row per metric every second, not only Aggregated [env: MQBLAST_CSV_FULL_HISTORY]
    #[arg(long, help_heading = "Outputs")]
    pub csv_full_history: bool,
    /// Write the HdrHistogram interval log (tags publish, connect, lag) to FILE [env: MQBLAST_HLOG]
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    pub hlog: Option<String>,
    /// Write the self-contained HTML report to FILE [env: MQBLAST_HTML]
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    pub html: Option<String>,
    /// Run without the web UI (the default; as Locust's --headless) [env: MQBLAST_HEADLESS]
    #[arg(long, conflicts_with = "web", help_heading = "Web UI")]
    pub headless: bool,
    /// Serve the web UI and Locust's HTTP API on --web-host:--web-port instead of starting at once (config: headless = false)
    #[arg(long, help_heading = "Web UI")]
    pub web: bool,
    /// Address the web UI listens on; anything but loopback needs --web-auth [default: 127.0.0.1] [env: MQBLAST_WEB_HOST]
    #[arg(long, value_name = "ADDR", help_heading = "Web UI")]
    pub web_host: Option<String>,
    /// Port of the web UI [default: 8089] [env: MQBLAST_WEB_PORT]
    #[arg(short = 'P', long, value_name = "PORT", help_heading = "Web UI")]
    pub web_port: Option<String>,
    /// HTTP basic auth for the web UI, USER:PASS [env: MQBLAST_WEB_AUTH]
    #[arg(long, value_name = "USER:PASS", help_heading = "Web UI")]
    pub web_auth: Option<String>,
    /// With --web: start the configured test at once [env: MQBLAST_AUTOSTART]
    #[arg(long, help_heading = "Web UI")]
    pub autostart: bool,
    /// With --web: exit this many seconds after a test ends [env: MQBLAST_AUTOQUIT]
    #[arg(long, value_name = "SECONDS", help_heading = "Web UI")]
    pub autoquit: Option<String>,
    /// Join a Locust master as one of its workers: it sets the users and starts and stops
    /// the tests (as Locust's --worker) [env: MQBLAST_WORKER]
    #[arg(long, conflicts_with = "web", help_heading = "Distributed")]
    pub worker: bool,
    /// With --worker: the Locust master's host [default: 127.0.0.1] [env: MQBLAST_MASTER_HOST]
    #[arg(long, value_name = "HOST", help_heading = "Distributed")]
    pub master_host: Option<String>,
    /// With --worker: the Locust master's port [default: 5557] [env: MQBLAST_MASTER_PORT]
    #[arg(long, value_name = "PORT", help_heading = "Distributed")]
    pub master_port: Option<String>,
    /// Run only the K-th of N equal parts of the plan, K in 1..=N (one per host or process): users, --messages and --spawn-rate are divided, client indexes (ids, topics) offset, device tokens split; fewer tokens than shards is an error [env: MQBLAST_SHARD]
    #[arg(long, value_name = "K/N", help_heading = "Distributed")]
    pub shard: Option<String>,
    /// Wait until this wall-clock time (milliseconds since the Unix epoch) before connecting, so several hosts start together; more than 1 s in the past is an error [env: MQBLAST_START_AT]
    #[arg(long, value_name = "EPOCH_MS", help_heading = "Distributed")]
    pub start_at: Option<String>,
    /// Each user is a ThingsBoard gateway connection carrying --devices-per-gateway devices: v1/gateway/connect per device, then v1/gateway/telemetry, v1/gateway/disconnect at stop [env: MQBLAST_GATEWAY]
    #[arg(long, help_heading = "Gateways")]
    pub gateway: bool,
    /// Devices each gateway carries, 1 to 10000; device i belongs to gateway i % users [default: 10] [env: MQBLAST_DEVICES_PER_GATEWAY]
    #[arg(long, value_name = "N", help_heading = "Gateways")]
    pub devices_per_gateway: Option<String>,
    /// per-point (one message per device point, as ThingsBoard's performance tests) or batched (the devices due together in one message, as ThingsBoard's IoT Gateway) [default: per-point] [env: MQBLAST_GATEWAY_MODE]
    #[arg(long, value_name = "MODE", help_heading = "Gateways")]
    pub gateway_mode: Option<String>,
    /// Device name template with {i} or {i:08} (the device number) [default: DW{i:08}, the device token ThingsBoard's tool creates] [env: MQBLAST_DEVICE_NAME]
    #[arg(long, value_name = "TEMPLATE", help_heading = "Gateways")]
    pub device_name: Option<String>,
    /// Number of the first device, as ThingsBoard's DEVICE_START_IDX [default: 0] [env: MQBLAST_DEVICE_START]
    #[arg(long, value_name = "N", help_heading = "Gateways")]
    pub device_start: Option<String>,
}

/// clap's error, or for a Locust option mqblast does not take (`--master`, `-T`, ...) one line
/// saying what to do instead, rather than clap's "unexpected argument" and its guess.
pub(super) fn locust_flag_or_usage(err: clap::Error) -> super::ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match (err.kind(), err.get(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(ContextValue::String(arg))) => arg.clone(),
        _ => return super::ConfigError::Usage(err),
    };
    let flag = arg.split('=').next().unwrap_or_default();
    let long = match flag {
        "-T" => "tags",
        "-E" => "exclude-tags",
        "-L" => "loglevel",
        "-l" => "list",
        long => long.strip_prefix("--").unwrap_or_default(),
    };
    match super::locust_keys::locust_only_note(long) {
        Some(note) => super::invalid(format!("{flag} is a Locust option: {note}")),
        None => super::ConfigError::Usage(err),
    }
}

impl RunArgs {
    /// The flags given, as a layer (the highest).
    pub(super) fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        for key in KEYS {
            if key.name == "stream" && !self.stream.is_empty() {
                // Repeated, so a list: each definition keeps its own commas.
                let specs = self.stream.iter().cloned().map(toml::Value::String);
                layer.set(Raw {
                    key,
                    origin: Origin::Cli,
                    value: RawValue::Toml(toml::Value::Array(specs.collect())),
                });
                continue;
            }
            if let Some(value) = self.value_of(key.name) {
                layer.set(Raw {
                    key,
                    origin: Origin::Cli,
                    value: RawValue::Text(value),
                });
            }
        }
        layer
    }

    /// The flag's text for setting `name`, if given.
    pub(super) fn value_of(&self, name: &str) -> Option<String> {
        let text = match name {
            "host" => &self.host,
            "users" => &self.users,
            "spawn_rate" => &self.spawn_rate,
            "run_time" => &self.run_time,
            "messages" => &self.messages,
            "qos" => &self.qos,
            "topic" => &self.topic,
            "payload" => &self.payload,
            "datapoints" => &self.datapoints,
            "interval" => &self.interval,
            "rate" => &self.rate,
            "rate_order" => &self.rate_order,
            "seed" => &self.seed,
            "alarms_per_second" => &self.alarms_per_second,
            "alarm_storm" => &self.alarm_storm,
            "max_inflight" => &self.max_inflight,
            "timeout" => &self.timeout,
            "tokens" => &self.tokens,
            "tokens_file" => &self.tokens_file,
            "tokens_template" => &self.tokens_template,
            "tokens_start" => &self.tokens_start,
            "client_id" => &self.client_id,
            "username" => &self.username,
            "password" => &self.password,
            "keep_alive" => &self.keep_alive,
            "threads" => &self.threads,
            "pin" => &self.pin,
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
            "drain_max" => &self.drain_max,
            "churn" => &self.churn,
            "rpc_responder" => return self.rpc_responder.then(|| "true".to_string()),
            "rpc_response_delay" => &self.rpc_response_delay,
            "rpc_response" => &self.rpc_response,
            "cafile" => &self.cafile,
            "insecure" => return self.insecure.then(|| "true".to_string()),
            "tls_server_name" => &self.tls_server_name,
            "alpn" => &self.alpn,
            "cert" => &self.cert,
            "key" => &self.key,
            "cert_dir" => &self.cert_dir,
            "cert_name" => &self.cert_name,
            "key_name" => &self.key_name,
            "tls_resume" => &self.tls_resume,
            "ws_path" => &self.ws_path,
            "mqtt_version" => &self.mqtt_version,
            "clean_start" => &self.clean_start,
            "session_expiry" => &self.session_expiry,
            "receive_maximum" => &self.receive_maximum,
            "maximum_packet_size" => &self.maximum_packet_size,
            "topic_alias_maximum" => &self.topic_alias_maximum,
            "request_problem_info" => &self.request_problem_info,
            "connect_properties" => &self.connect_properties,
            "message_expiry" => &self.message_expiry,
            "content_type" => &self.content_type,
            "payload_format" => &self.payload_format,
            "user_properties" => &self.user_properties,
            "retain_handling" => &self.retain_handling,
            "subscription_id" => &self.subscription_id,
            "topic_alias" => return self.topic_alias.then(|| "true".to_string()),
            "no_local" => return self.no_local.then(|| "true".to_string()),
            "retain_as_published" => return self.retain_as_published.then(|| "true".to_string()),
            "web_host" => &self.web_host,
            "web_port" => &self.web_port,
            "web_auth" => &self.web_auth,
            "autoquit" => &self.autoquit,
            "autostart" => return self.autostart.then(|| "true".to_string()),
            "worker" => return self.worker.then(|| "true".to_string()),
            "master_host" => &self.master_host,
            "master_port" => &self.master_port,
            "headless" => {
                return match (self.web, self.headless) {
                    (true, _) => Some("false".to_string()),
                    (false, true) => Some("true".to_string()),
                    (false, false) => None,
                }
            }
            "e2e" => return self.e2e.then(|| "true".to_string()),
            "reconnect" => return self.reconnect.then(|| "true".to_string()),
            "only_summary" => return self.only_summary.then(|| "true".to_string()),
            "csv" => &self.csv,
            "hlog" => &self.hlog,
            "html" => &self.html,
            "csv_full_history" => return self.csv_full_history.then(|| "true".to_string()),
            "gateway" => return self.gateway.then(|| "true".to_string()),
            "devices_per_gateway" => &self.devices_per_gateway,
            "gateway_mode" => &self.gateway_mode,
            "device_name" => &self.device_name,
            "device_start" => &self.device_start,
            _ => return None,
        };
        text.clone()
    }
}
