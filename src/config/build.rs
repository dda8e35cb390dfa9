//! Low args -> high args: every setting is resolved through the layers and validated, once,
//! into the immutable [`Plan`] the rest of the program trusts.

use std::path::PathBuf;

use super::effective::effective_config;
use super::env::{env_value, locust_layer, mqblast_layer};
use super::file::{load_config_file, ConfigFile};
use super::gateway::{resolve_gateway, GatewayContext};
use super::layers::{resolve, Layer, Layers, LocustFile, Raw};
use super::locust_conf::{
    is_locust_conf, load_locust_conf, HOME_LOCUST_CONF_FILE, LOCUST_CONF_FILE,
};
use super::mqtt5::resolve_mqtt5;
use super::pyproject::load_pyproject;
use super::rate::resolve_rate;
use super::resolve::*;
use super::responder::resolve_responder;
use super::sharding::{resolve_shard, resolve_start_at};
use super::streams::{check_stream_topics, resolve_streams, RunDefaults, StreamLines};
use super::subscribers::resolve_subscribers;
use super::templates::{
    check_rendered_lengths, check_rendered_pairs, check_template_in_topic, longest_token,
    resolve_client_id, resolve_topic, widest_templated_token, Widest,
};
use super::tokens::{resolve_device_tokens, DeviceTokens};
use super::transport::{load_tls, resolve_transport};
use super::web::resolve_web;
use super::worker::resolve_worker;
use super::{invalid, ConfigError, Context, RunArgs, CONFIG_ENV};
use crate::plan::{token_of_local, Plan, SettingSource};
use crate::token_template::IndexedTokens;
use crate::workload::pace::Pace;
use crate::workload::stream::StreamKind;
use crate::workload::stream::StreamPlan;

/// Resolve every setting through the layers and validate it into a [`Plan`].
/// `ctx.open_files_limit` decides whether the users fit in this process.
pub fn build_plan(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Plan, ConfigError> {
    let sources = read_sources(args, env, ctx)?;
    let layers = &sources.layers;
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
    let web = resolve_web(&get)?;
    let worker = resolve_worker(&get, web.is_some())?;
    // Live runs (the web UI, a Locust worker) set their users later and run until stopped
    // unless a run time is configured, as Locust's do.
    let live = web.is_some() || worker.is_some();
    let mut notes = Vec::new();
    let run_time = match (&worker, get("run_time")) {
        // A Locust master owns the run time (its -t, or its Stop): a worker's own, often
        // copied with the project's pyproject.toml, would end the master's test under it.
        (Some(_), Some(raw)) => {
            notes.push(format!(
                "mqblast: note: {}: ignored under --worker: the Locust master owns the run time (its -t, or its Stop button)",
                raw.describe()
            ));
            None
        }
        (_, raw) => resolve_run_time(raw, messages.or(live.then_some(0)))?,
    };
    let qos = resolve_qos(&required("qos")?)?;
    let DeviceTokens {
        tokens,
        tokens_file,
        template: token_template,
    } = resolve_device_tokens(&get, ctx)?;
    let topic_raw = required("topic")?;
    let topic = resolve_topic(&topic_raw, &tokens)?;
    if let Some((template, _)) = &token_template {
        check_template_in_topic(&topic_raw, &topic, template)?;
    }
    let client_id_raw = required("client_id")?;
    let (mqtt_version, clean_start, v5) = resolve_mqtt5(&get)?;
    let server_assigns_ids = mqtt_version == crate::mqtt::Version::V5;
    // A template names a distinct device for every user.
    let distinct_tokens = match &token_template {
        Some(_) => u64::MAX,
        None => tokens.len() as u64,
    };
    let client_id = resolve_client_id(&client_id_raw, users, distinct_tokens, server_assigns_ids)?;
    let datapoints_raw = get("datapoints");
    let datapoints = datapoints_raw
        .as_ref()
        .map(resolve_datapoints)
        .transpose()?;
    let payload = resolve_payload(get("payload"), datapoints, ctx)?;
    let interval_raw = required("interval")?;
    let interval = interval_raw.duration()?;
    // The run's seed: the paces' jitter, the value fields and the rate's random order.
    let seed = required("seed")?.whole()?;
    // Spread over every user of the run: a shard sends its own devices' part of it. With
    // gateways, over their devices (set once the gateway settings are resolved, below).
    let mut rate = resolve_rate(&get, &interval_raw, u64::from(users), seed)?;
    let run = RunSettings {
        topic: (&topic_raw, &topic),
        payload: &payload,
        qos,
        interval,
        rate: rate.as_ref().map(|_| required("rate")).transpose()?,
        tokens: &tokens,
        datapoints,
    };
    let streams = resolve_run_streams(&get, &sources.stream_lines, &run, ctx)?;
    check_datapoints_used(datapoints_raw.as_ref(), &payload, &streams)?;
    let max_inflight = resolve_max_inflight(&required("max_inflight")?)?;
    let timeout = positive_duration(&required("timeout")?)?;
    let username = get("username").map(|raw| raw.mqtt_string()).transpose()?;
    let password_raw = get("password");
    let password = password_raw.as_ref().map(Raw::mqtt_string).transpose()?;
    if let Some(raw) = &password_raw {
        if username.is_none() && tokens.is_empty() && token_template.is_none() {
            return Err(raw.fail(
                "a password needs a user name (--username) or device tokens: mqblast sends a password only with a user name",
            ));
        }
    }
    let keep_alive_s = resolve_keep_alive(&required("keep_alive")?)?;
    // A live run's users change while it runs: one thread per core, not per configured user.
    let threads = resolve_threads(get("threads"), ctx, if live { u32::MAX } else { users })?;
    let pin = resolve_pin(&required("pin")?)?;
    let only_summary = required("only_summary")?.boolean()?;
    let stop_timeout = required("stop_timeout")?.duration()?;
    let json_path = optional_path(get("json"), ctx)?;
    let request_type = non_empty_text(&required("request_type")?)?;
    let start_at_epoch_ms = resolve_start_at(get("start_at"))?;
    let total_users = users;
    let widest_token = match &token_template {
        Some((template, start)) => widest_templated_token(template, *start),
        None => longest_token(&tokens).to_string(),
    };
    let part = resolve_shard(get("shard"), users, messages, spawn_rate, tokens)?;
    let (users, messages, spawn_rate, tokens) =
        (part.users, part.messages, part.spawn_rate, part.tokens);
    let threads = if live {
        threads
    } else {
        threads.min(users.max(1) as usize)
    };
    let csv_prefix = optional_path(get("csv"), ctx)?;
    let csv_full_history = required("csv_full_history")?.boolean()?;
    let hlog_path = optional_path(get("hlog"), ctx)?;
    let html_path = optional_path(get("html"), ctx)?;
    check_open_files(users, &users_raw, hosts.is_empty(), ctx.open_files_limit)?;
    let bind = resolve_bind(get("bind"))?;
    // A shard paces its share of the connect rate, in proportion to its users (as spawn_rate).
    let connect_rate = resolve_connect_rate(get("connect_rate"))?
        .map(|rate| crate::shard::spawn_rate_of(rate, users.into(), total_users.into()));
    // The subscribers' default filter follows the first stream's topic.
    let subs = resolve_subscribers(&get, users, qos, &streams[0].topic)?;
    let mut streams = streams;
    let gateway = resolve_gateway(
        &get,
        &mut GatewayContext {
            users,
            total_users,
            live,
            payload_raw: get("payload"),
            sub_users: subs.users,
            streams: &mut streams,
        },
    )?;
    if let (Some(rate), Some(gateway)) = (rate.as_mut(), &gateway) {
        // The rate's devices are the gateway devices of the whole run (all shards), numbered
        // as the gateways name them (`workload::gateway::turns`).
        rate.devices = u64::from(total_users) * u64::from(gateway.devices_per_gateway);
    }
    let widest = Widest {
        index: (u64::from(total_users) + u64::from(subs.users)).saturating_sub(1),
        token: &widest_token,
        has_subscribers: subs.users > 0,
    };
    check_rendered_lengths((&topic_raw, &topic), (&client_id_raw, &client_id), &widest)?;
    check_stream_topics(&streams, &client_id, &widest)?;
    for (name, pairs) in [
        ("user_properties", &v5.user_properties),
        ("connect_properties", &v5.connect_user_properties),
    ] {
        check_rendered_pairs(get(name), pairs, &client_id, &widest)?;
    }
    let reconnect = required("reconnect")?.boolean()?;
    let churn = get("churn")
        .map(|raw| positive_duration(&raw))
        .transpose()?;
    let (rpc_responder, responder_notes) = resolve_responder(&get, ctx)?;
    notes.extend(responder_notes);
    let calls_rpc = streams.iter().any(|s| s.kind == StreamKind::RpcCall);
    if rpc_responder.is_some() && calls_rpc && mqtt_version == crate::mqtt::Version::V311 {
        notes.push(RPC_ECHO_NOTE.to_string());
    }
    let mut transport = resolve_transport(&get, ctx, &hosts)?;
    let offset = part.client_index_offset;
    let token_template =
        token_template.map(|(template, start)| IndexedTokens::new(template, start, offset));
    {
        let device_tokens: Vec<(u64, std::borrow::Cow<'_, str>)> =
            (0..u64::from(users.max(subs.users)))
                .map(|local| {
                    (
                        offset + local,
                        token_of_local(&tokens, token_template.as_ref(), local),
                    )
                })
                .collect();
        let devices: Vec<(u64, &str)> = device_tokens
            .iter()
            .map(|(index, token)| (*index, &**token))
            .collect();
        load_tls(&mut transport, &hosts, &devices)?;
    }

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
        streams,
        seed,
        rate,
        max_inflight,
        timeout,
        tokens,
        token_template,
        username,
        password,
        keep_alive_s,
        threads,
        pin,
        only_summary,
        stop_timeout,
        json_path,
        request_type,
        effective_config: serde_json::Value::Null,
        shard: part.shard,
        client_index_offset: part.client_index_offset,
        token_index_offset: part.token_index_offset,
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
        drain_quiet: subs.drain_quiet,
        drain_max: subs.drain_max,
        connect_only: false,
        reconnect,
        churn,
        rpc_responder,
        transport,
        mqtt_version,
        clean_start,
        v5,
        web,
        worker,
        gateway,
        sources: setting_sources(layers),
        notes: layers
            .notes(&sources.acknowledged)
            .into_iter()
            .chain(notes)
            .collect(),
    };
    if plan.gateway.is_some() {
        // What the gateway publishes on, for the banner and the web UI.
        plan.topic = crate::workload::gateway::TELEMETRY_TOPIC.to_string();
    }
    let config_file = sources.config_file.as_deref();
    plan.effective_config = effective_config(&plan, config_file, tokens_file.as_deref());
    Ok(plan)
}

/// The single-stream settings, which are the one stream without `[[stream]]`, and what
/// streams take when they do not say (payload, QoS, interval).
struct RunSettings<'a> {
    topic: (&'a Raw, &'a str),
    payload: &'a crate::payload::Payload,
    qos: u8,
    interval: std::time::Duration,
    /// The global rate's setting, when one is set: streams without a pace take a share of it.
    rate: Option<Raw>,
    tokens: &'a [String],
    /// `--datapoints`: the default of the streams whose payload is `industrial-plc`.
    datapoints: Option<u32>,
}

/// The streams of every user: the `[[stream]]` tables or `--stream` definitions, else the one
/// stream of the single-stream settings.
fn resolve_run_streams(
    get: &dyn Fn(&str) -> Option<Raw>,
    lines: &StreamLines,
    run: &RunSettings<'_>,
    ctx: &Context,
) -> Result<Vec<StreamPlan>, ConfigError> {
    let stream_raw = get("stream");
    let defaults = RunDefaults {
        payload: run.payload,
        qos: run.qos,
        // Under a rate a stream without a pace of its own takes one share of the rate.
        pace: match run.rate {
            Some(_) => Pace::Weight { weight: 1 },
            None => Pace::interval(run.interval),
        },
        rated: run.rate.is_some(),
        tokens: run.tokens,
        datapoints: run.datapoints,
    };
    let streams = resolve_streams(stream_raw.as_ref(), lines, &defaults, ctx)?;
    let (topic_raw, topic) = run.topic;
    if streams.is_empty() {
        let payload = run.payload.clone();
        return Ok(vec![StreamPlan::single(
            topic,
            payload,
            run.qos,
            defaults.pace,
        )]);
    }
    let explicit_topic = topic_raw.origin.source_layer().is_some() && !topic_raw.equals_default();
    if let (true, Some(stream_raw)) = (explicit_topic, &stream_raw) {
        return Err(invalid(format!(
            "{} with {}: the topic setting is the single stream's; with streams, each stream has its own topic (topic = ... in its definition)",
            topic_raw.describe(),
            stream_raw.source()
        )));
    }
    let weighted = streams.iter().any(|stream| stream.pace.weight() > 0);
    if let (Some(rate_raw), false, Some(stream_raw)) = (&run.rate, weighted, &stream_raw) {
        return Err(invalid(format!(
            "{} with {}: every stream has a pace of its own, so no stream would follow the rate; give a stream a weight (weight = N) or leave its pace out",
            rate_raw.describe(),
            stream_raw.source()
        )));
    }
    if let Some(raw) = get("topic_alias").filter(|raw| raw.boolean().unwrap_or(false)) {
        if streams.iter().any(|s| s.kind.expects_answer()) {
            return Err(raw.fail(
                "a request stream's topic carries its request id, so it cannot be replaced by an alias: --topic-alias needs a stream without requests",
            ));
        }
    }
    if streams.len() > 1 {
        if let Some(raw) = get("topic_alias").filter(|raw| raw.boolean().unwrap_or(false)) {
            return Err(raw.fail(format!(
                "one topic alias per connection, and {} streams: --topic-alias needs a single stream",
                streams.len()
            )));
        }
    }
    Ok(streams)
}

/// A device that calls RPC and answers it shares `v1/devices/me/rpc/response/+` between the
/// two; a broker that sends a client its own publishes makes its answers read as answers to
/// its calls. ThingsBoard does not; MQTT 5's No Local (which mqblast asks for) prevents it.
const RPC_ECHO_NOTE: &str = "mqblast: note: rpc-call streams with --rpc-responder under MQTT 3.1.1: on a broker that sends a client its own messages (any but ThingsBoard, whose `me` is per connection), a device receives its own RPC answers on v1/devices/me/rpc/response/+ and takes them for answers to its calls; use --mqtt-version 5 there (devices then subscribe with No Local)";

/// Every source, read into its layer, stacked in precedence order.
struct Sources {
    layers: Layers,
    /// mqblast's config file (config.toml), if one was read.
    config_file: Option<PathBuf>,
    /// Locust keys its "Not used" list names: their notes are not repeated.
    acknowledged: Vec<String>,
    /// The lines of config.toml's `[[stream]]` keys.
    stream_lines: StreamLines,
}

/// Read every source, lowest first: ~/.locust.conf, ./locust.conf, pyproject.toml
/// [tool.locust], `--config FILE.conf`, config.toml, `LOCUST_*`, `MQBLAST_*`, flags (the order
/// the `layers` module documents). `-f/--config` (or `MQBLAST_CONFIG`) naming a `*.conf` file
/// is Locust's `--config`; ./config.toml is still read then.
fn read_sources(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
) -> Result<Sources, ConfigError> {
    let named = args
        .config
        .as_ref()
        .map(|path| resolve(&ctx.cwd, &path.to_string_lossy()))
        .or_else(|| env_value(env, CONFIG_ENV).map(|path| resolve(&ctx.cwd, &path)));
    let (named_locust, named_config) = match named {
        Some(path) if is_locust_conf(&path) => (Some(path), None),
        other => (None, other),
    };
    let mut stack: Vec<Layer> = Vec::new();
    if let Some(home) = env_value(env, "HOME") {
        let path = PathBuf::from(home).join(HOME_LOCUST_CONF_FILE);
        stack.extend(load_locust_conf(path, LocustFile::Home, false)?);
    }
    let cwd_conf = ctx.cwd.join(LOCUST_CONF_FILE);
    stack.extend(load_locust_conf(cwd_conf, LocustFile::Cwd, false)?);
    stack.extend(load_pyproject(ctx)?.map(|pyproject| pyproject.layer()));
    if let Some(path) = named_locust {
        stack.extend(load_locust_conf(path, LocustFile::Named, true)?);
    }
    let file: Option<ConfigFile> = load_config_file(named_config, ctx)?;
    stack.extend(file.as_ref().map(ConfigFile::layer));
    stack.push(locust_layer(env));
    stack.push(mqblast_layer(env));
    stack.push(args.layer());
    Ok(Sources {
        layers: Layers::new(stack),
        config_file: file.as_ref().map(|file| file.path.clone()),
        stream_lines: file
            .as_ref()
            .map(|file| file.stream_lines.clone())
            .unwrap_or_default(),
        acknowledged: file.map(|file| file.acknowledged).unwrap_or_default(),
    })
}

/// Every setting set somewhere, with where it came from and whether its value is the built-in
/// default's: a config.toml that repeats a default (the shipped one repeats 33) is listed in
/// the banner with none of them.
fn setting_sources(layers: &Layers) -> Vec<SettingSource> {
    super::keys::setting_names()
        .filter_map(|name| layers.get(name))
        .filter_map(|raw| {
            Some(SettingSource {
                name: raw.key.name,
                layer: raw.origin.source_layer()?,
                place: raw.origin.place(raw.key),
                same_as_default: raw.equals_default(),
            })
        })
        .collect()
}
