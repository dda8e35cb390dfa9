//! The validated, immutable description of one run.
//!
//! `config.rs` turns raw CLI flags, environment variables and `config.toml` into a `Plan`
//! once ("low args" -> "high args", as ripgrep does). Everything after that trusts it: the
//! engine, the merger and the reports never re-validate or re-read configuration.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::mqtt::Version;
use crate::payload::Payload;
use crate::shard::Shard;
use crate::token_template::IndexedTokens;
use crate::transport::{Scheme, TransportPlan};
use crate::workload::gateway::GatewayPlan;
use crate::workload::rate::RatePlan;
use crate::workload::responder::ResponderPlan;
use crate::workload::stream::StreamPlan;

/// One broker address as the user wrote it (`mqtts://host:port/path`); resolved when the run
/// starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
    /// TCP, TLS, WebSocket or WebSocket over TLS.
    pub scheme: Scheme,
    /// WebSocket: the path given in the URL (None: `--ws-path`).
    pub path: Option<String>,
}

impl HostPort {
    /// A plain TCP broker address.
    pub fn tcp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_string(),
            port,
            scheme: Scheme::Tcp,
            path: None,
        }
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scheme != Scheme::Tcp {
            f.write_str(self.scheme.prefix())?;
        }
        write!(f, "{}:{}", self.host, self.port)?;
        if let Some(path) = &self.path {
            f.write_str(path)?;
        }
        Ok(())
    }
}

/// `--pin`: which worker threads are pinned to a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Never: the scheduler may move a worker off a core a neighbour is busy on.
    Never,
    /// Always, to the cores this process may run on (in order).
    Always,
    /// Only when the process owns its cores: its allowed CPU set was narrowed below the
    /// machine's (taskset, a cpuset) and no cgroup CPU quota is smaller than that set.
    Owned,
}

impl Pin {
    pub fn name(self) -> &'static str {
        match self {
            Pin::Never => "never",
            Pin::Always => "always",
            Pin::Owned => "owned",
        }
    }
}

/// What one `mqblast run` does. Built only by `config::build_plan`, which validates every field.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Brokers to spread clients over (client i uses hosts[i % len]). Empty: start the
    /// embedded broker on a loopback ephemeral port and use that.
    pub hosts: Vec<HostPort>,
    /// Number of publishing clients (Locust "users"). At least 1.
    pub users: u32,
    /// Users connected per second, across all workers (> 0, fractional allowed).
    pub spawn_rate: f64,
    /// Stop publishing after this long (counted from the start, ramp-up included, as Locust).
    pub run_time: Option<Duration>,
    /// Stop after this many publishes in total (all clients together).
    pub messages: Option<u64>,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Topic template; per-client placeholders `{i}`, `{token}`, `{client_id}` resolved once.
    pub topic: String,
    /// Client id template; `{i}` and `{token}` resolved once per client.
    pub client_id: String,
    /// The payload objects (data.json), with their per-message patch fields.
    pub payload: Payload,
    /// Per-user publish interval. Zero: publish as fast as the in-flight window allows.
    /// Not used under a global rate (`rate`).
    pub interval: Duration,
    /// What every user sends: one stream per row of the reports, at most
    /// [`crate::workload::stream::MAX_STREAMS`]. Without `[[stream]]` / `--stream`, the one
    /// stream of `topic`, `payload`, `qos` and `interval` above; empty for `mqblast conn`.
    pub streams: Vec<StreamPlan>,
    /// The run's seed (`--seed`): the streams' random paces (`between`) and the payload's
    /// value fields (each client draws from generators seeded with it and its index, so the
    /// same plan draws the same waits and values), and the global rate's random order.
    pub seed: u64,
    /// `--rate`: N messages per second across every user of the run (with `--gateway`: N
    /// device points per second across every gateway device of the run), each device
    /// publishing at its places in the rate's schedule instead of every `interval`.
    pub rate: Option<RatePlan>,
    /// Per-connection bound on unacknowledged QoS 1/2 publishes (1..=65535).
    pub max_inflight: u16,
    /// Publish acknowledgement timeout, and CONNECT -> CONNACK timeout.
    pub timeout: Duration,
    /// Device access tokens, used as MQTT usernames round-robin (ThingsBoard style).
    /// Empty: use `username` for every client (or `token_template`'s when it is set).
    pub tokens: Vec<String>,
    /// `--tokens-template`: device tokens named by index (then `tokens` is empty).
    pub token_template: Option<IndexedTokens>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT keep-alive in seconds (0 disables PINGREQ).
    pub keep_alive_s: u16,
    /// Worker threads.
    pub threads: usize,
    /// Whether worker threads are pinned to cores (`--pin`).
    pub pin: Pin,
    /// Print only the final summary, not the periodic table.
    pub only_summary: bool,
    /// After a stop, how long to wait for outstanding acknowledgements.
    pub stop_timeout: Duration,
    /// Where to write the JSON summary.
    pub json_path: Option<PathBuf>,
    /// "Type" column label of the stats table (Locust's request_type), default "MQTT".
    pub request_type: String,
    /// The effective configuration with secrets redacted, copied into the JSON summary.
    pub effective_config: serde_json::Value,
    /// `--shard K/N`: this process runs the K-th of N parts of a larger plan. `users`,
    /// `messages`, `spawn_rate` and `tokens` above are already this shard's part.
    pub shard: Option<Shard>,
    /// Global index of this process's first client: client i of this process is client
    /// `client_index_offset + i` of the whole plan (ids, topics, `{i}`), so shards never share
    /// a client id. 0 without `--shard`.
    pub client_index_offset: u64,
    /// Index of `tokens[0]` in the whole configured token list (`--shard` gives each shard a
    /// contiguous slice of it), so reports can name the token a client used by its position
    /// in the user's list, never by its text. 0 without `--shard`.
    pub token_index_offset: u64,
    /// `--start-at`: wall-clock epoch milliseconds to wait for before connecting, so every
    /// shard of a multi-host run starts together.
    pub start_at_epoch_ms: Option<u64>,
    /// Write Locust-compatible CSV files `PREFIX_stats.csv`, ... (`--csv PREFIX`).
    pub csv_prefix: Option<PathBuf>,
    /// CSV history: a row per metric every second, not only the Aggregated row.
    pub csv_full_history: bool,
    /// Write the HdrHistogram interval log here.
    pub hlog_path: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    pub html_path: Option<PathBuf>,
    /// Source addresses for outgoing connections (client i binds bind[i % len], port 0).
    /// Empty: the OS chooses. More addresses lift the ~28,000 ephemeral ports per
    /// (source, destination) pair.
    pub bind: Vec<IpAddr>,
    /// TCP connects started per second across all workers (each worker paces its share).
    /// None: connects start at their spawn times.
    pub connect_rate: Option<f64>,
    /// Subscriber clients (0: none). They connect at the start, all at once, and publishers
    /// are held until every subscriber has its SUBACK or has failed.
    pub sub_users: u32,
    /// Their topic filter (wildcards allowed; `$share/group/filter` for a shared group).
    pub sub_topic: String,
    /// Requested subscription QoS.
    pub sub_qos: u8,
    /// Embed the end-to-end marker in payloads (on with subscribers, or `--e2e`).
    pub e2e: bool,
    /// Run the delivery audit (default: on when there are subscribers).
    pub verify: bool,
    /// After publishers stop, subscribers wait for what they are owed until no message has
    /// arrived for this long (`--drain-timeout`, the quiet period)...
    pub drain_quiet: Duration,
    /// ...or until this long has passed since the publishers finished (`--drain-max`, the
    /// cap); messages still arriving then are reported as such, not as lost.
    pub drain_max: Duration,
    /// `mqblast conn`: connect and hold (keep-alive pings only), never publish.
    pub connect_only: bool,
    /// Reconnect lost connections with bounded exponential back-off (100 ms doubling to 5 s)
    /// and resume; without it a lost connection is a failure and that client stops.
    pub reconnect: bool,
    /// `--churn`: each publisher disconnects this long after connecting (once its in-flight
    /// publishes are acknowledged) and connects again at once, to measure session set-up.
    pub churn: Option<Duration>,
    /// `--rpc-responder`: every device answers server-side RPC (delay, answer). None: off.
    pub rpc_responder: Option<ResponderPlan>,
    /// TLS configs (loaded once, shared or per device) and the WebSocket path.
    pub transport: TransportPlan,
    /// `--mqtt-version`: the codec every connection speaks.
    pub mqtt_version: Version,
    /// Clean Start (MQTT 5) / Clean Session (3.1.1); default true.
    pub clean_start: bool,
    /// MQTT 5 options; all unset (and refused by the configuration) under 3.1.1.
    pub v5: V5Options,
    /// `--web` (config `headless = false`): serve the web UI and wait for its Start, instead
    /// of running at once. None: headless.
    pub web: Option<WebPlan>,
    /// `--worker`: join this Locust master and run the tests it asks for. None: not a worker.
    pub worker: Option<WorkerPlan>,
    /// `--gateway`: each user is a gateway connection carrying this many devices, in this
    /// mode. None: each user is one device.
    pub gateway: Option<GatewayPlan>,
    /// Where each setting that was set somewhere came from, in settings-table order.
    pub sources: Vec<SettingSource>,
    /// Lines to print before the run: `[tool.locust]` keys accepted but not used, or unknown.
    pub notes: Vec<String>,
}

/// Which layer a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceLayer {
    /// `~/.locust.conf`, `./locust.conf` or `--config FILE.conf`.
    LocustConf,
    Pyproject,
    ConfigFile,
    Env,
    Flag,
}

/// One setting set somewhere other than its default, for the start banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingSource {
    /// The setting's config.toml name.
    pub name: &'static str,
    pub layer: SourceLayer,
    /// `config.toml line 3`, `pyproject.toml line 5`, `locust.conf line 2`, `LOCUST_USERS`,
    /// `MQBLAST_USERS`, `--users`.
    pub place: String,
    /// The value set there means the built-in default (`users = 10`): the banner's list of
    /// settings leaves it out; where a value came from still names it.
    pub same_as_default: bool,
}

/// Where the Locust master listens (`--master-host`, `--master-port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    pub master_host: String,
    pub master_port: u16,
}

/// What an MQTT 5 run sends beyond 3.1.1: CONNECT and PUBLISH properties and subscription
/// options. Templates (`{i}`, `{token}`, `{client_id}`) in user properties are resolved once
/// per client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V5Options {
    /// Session Expiry Interval in CONNECT (0: the session ends with the connection).
    pub session_expiry_s: u32,
    /// Receive Maximum in CONNECT: QoS 1/2 publishes the broker may have in flight to us.
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size in CONNECT: the largest packet we accept.
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum in CONNECT: aliases the broker may use towards us.
    pub topic_alias_maximum: Option<u16>,
    /// Request Problem Information in CONNECT.
    pub request_problem_information: Option<bool>,
    /// User Properties of CONNECT (name, value templates).
    pub connect_user_properties: Vec<(String, String)>,
    /// `--topic-alias`: the first publish of a connection carries the topic and alias 1,
    /// later ones an empty topic and the alias.
    pub topic_alias: bool,
    /// Message Expiry Interval of every PUBLISH.
    pub message_expiry_s: Option<u32>,
    /// Content Type of every PUBLISH.
    pub content_type: Option<String>,
    /// Payload Format Indicator of every PUBLISH (1: UTF-8, 0: bytes).
    pub payload_format_indicator: Option<u8>,
    /// User Properties of every PUBLISH (name, value templates).
    pub user_properties: Vec<(String, String)>,
    /// Subscription options of the subscribers.
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    /// Subscription Identifier of the subscribers' SUBSCRIBE.
    pub subscription_identifier: Option<u32>,
}

/// Where and how the web UI is served (validated: off loopback only with basic auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPlan {
    pub listen: std::net::SocketAddr,
    /// HTTP basic auth (user, password); never shown by the UI, the API or the results.
    pub auth: Option<(String, String)>,
    /// Start the configured test at once.
    pub autostart: bool,
    /// Exit this long after a test ends.
    pub autoquit: Option<Duration>,
}

impl Plan {
    /// The name of each stream row, by row index (what the recorders and the merger keep a
    /// row for): the streams', then with `--gateway` the rows of its `v1/gateway/connect` and
    /// `v1/gateway/disconnect` messages ([`Plan::gateway_rows`]).
    pub fn row_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.streams.iter().map(|s| s.name.clone()).collect();
        if self.gateway.is_some() && !names.is_empty() {
            names.push(crate::workload::gateway::CONNECT_ROW.to_string());
            names.push(crate::workload::gateway::DISCONNECT_ROW.to_string());
        }
        names
    }

    /// With `--gateway`: the rows (connect, disconnect) of the announcements, after the
    /// streams' rows.
    pub fn gateway_rows(&self) -> Option<(u8, u8)> {
        let first = u8::try_from(self.streams.len()).ok()?;
        self.gateway
            .as_ref()
            .map(|_| (first, first.saturating_add(1)))
    }

    /// The devices a global rate is spread over when `users` users run: the users, or with
    /// `--gateway` every device of theirs (at most 2^32 x 10^4, within the rate's bound).
    pub fn rate_devices(&self, users: u32) -> u64 {
        let per_user = self
            .gateway
            .as_ref()
            .map_or(1, |gateway| u64::from(gateway.devices_per_gateway));
        u64::from(users).saturating_mul(per_user)
    }

    /// The rate's device number of the first device of client `client_index` (a Locust
    /// worker's rate starts at its first client's device).
    pub fn rate_first_device(&self, client_index: u64) -> u64 {
        match &self.gateway {
            Some(gateway) => gateway.device_index(client_index, 0),
            None => client_index,
        }
    }

    /// How long a user waits between two publishes: `interval`, or under a global rate the
    /// D/N seconds a device waits on average (what the engine's wakeup batching is sized by).
    /// Zero: as fast as the in-flight window allows.
    pub fn publish_pace(&self) -> Duration {
        match &self.rate {
            Some(rate) => rate.mean_device_interval(),
            None => self.interval,
        }
    }

    /// The subscription is a shared one (`$share/group/...`): the group, not each
    /// subscriber, is owed every message.
    pub fn shared_subscription(&self) -> bool {
        self.sub_topic.starts_with("$share/")
    }

    /// Whether publisher `index`'s topic matches the subscribers' filter.
    pub fn subscribers_receive(&self, publish_topic: &str) -> bool {
        crate::mqtt::subscribe::filter_matches(&self.sub_topic, publish_topic)
    }

    /// Whether clients use device tokens (a list or a template) as their user names.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty() || self.token_template.is_some()
    }

    /// MQTT username of client `index`: its device token when tokens are configured.
    pub fn username_for(&self, index: u64) -> Option<Cow<'_, str>> {
        if self.has_tokens() {
            Some(self.token_for(index))
        } else {
            self.username.as_deref().map(Cow::Borrowed)
        }
    }

    /// Device token of client `index` ("" when none), for templates. Round-robin over this
    /// process's tokens from its first client, so a shard whose tokens and clients are the same
    /// slice of the whole gives client i the token it would have had unsharded; rendered from
    /// the index with a token template.
    pub fn token_for(&self, index: u64) -> Cow<'_, str> {
        let local = index.saturating_sub(self.client_index_offset);
        token_of_local(&self.tokens, self.token_template.as_ref(), local)
    }

    /// Position in the configured token list (before any `--shard` split) of the token client
    /// `index` uses; None without tokens. Reports name a device by this, never by its token.
    pub fn token_index_of(&self, index: u64) -> Option<u64> {
        let local = index.saturating_sub(self.client_index_offset);
        if let Some(indexed) = &self.token_template {
            return Some(indexed.position_of(local));
        }
        (!self.tokens.is_empty())
            .then(|| self.token_index_offset + (local % self.tokens.len() as u64))
    }
}

/// The token of this process's client `local` (its index less `client_index_offset`): from
/// the template, or round-robin over `tokens`; "" without either.
pub fn token_of_local<'t>(
    tokens: &'t [String],
    template: Option<&IndexedTokens>,
    local: u64,
) -> Cow<'t, str> {
    match template {
        Some(indexed) => Cow::Owned(indexed.token_of(local)),
        None if tokens.is_empty() => Cow::Borrowed(""),
        None => Cow::Borrowed(&tokens[(local % tokens.len() as u64) as usize]),
    }
}
