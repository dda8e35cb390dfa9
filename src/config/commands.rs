//! The subcommands other than `run`: `conn` (a run that only connects), `sink` and `init`.
//! Kept apart so that `mod.rs` reads as the public API and `build` only builds run plans.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::build::build_plan;
use super::cli::{ConnArgs, SinkArgs};
use super::values::{format_duration, parse_duration};
use super::{invalid, ConfigError, Context, DEFAULT_CONFIG};
use crate::plan::Plan;

/// `mqblast conn`: a run plan whose users only connect and hold. The run time is the ramp
/// (users / rate) plus the hold; `--run-time` and `--messages` do not apply.
pub(super) fn conn_plan(
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
    // Bounded by the slowest spawn rate: at most u32::MAX users x 1,000 s, which fits.
    let ramp = Duration::from_secs_f64(f64::from(plan.users) / plan.spawn_rate);
    let run_time = ramp
        .checked_add(hold)
        .ok_or_else(|| invalid(format!("--hold {hold_text}: too long after the ramp")))?;
    plan.run_time = Some(run_time);
    plan.connect_only = true;
    // Nothing is published: no stream, so no stream row.
    plan.streams.clear();
    plan.sub_users = 0;
    plan.e2e = false;
    plan.verify = false;
    if let Some(config) = plan.effective_config.as_object_mut() {
        config.insert("command".into(), json!("conn"));
        config.insert("hold".into(), json!(format_duration(hold)));
        config.insert("run_time".into(), json!(format_duration(run_time)));
    }
    Ok(Box::new(plan))
}

/// Validate `mqblast sink` flags.
pub(super) fn sink_options(args: &SinkArgs) -> Result<crate::sink::SinkOptions, ConfigError> {
    let listen = args.listen.parse().map_err(|_| {
        invalid(format!(
            "--listen {}: expected ADDRESS:PORT, e.g. 127.0.0.1:1883",
            super::shown(&args.listen)
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
        tls: sink_tls(args)?,
        websocket: args.websocket,
        ..crate::sink::SinkOptions::default()
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

/// `--tls-cert` and `--tls-key` go together; the files are read now (exit 2 naming a bad one).
fn sink_tls(args: &SinkArgs) -> Result<Option<crate::sink::SinkTls>, ConfigError> {
    match (&args.tls_cert, &args.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => crate::sink::SinkTls::load(Path::new(cert), Path::new(key))
            .map(Some)
            .map_err(invalid),
        _ => Err(invalid(
            "--tls-cert and --tls-key go together: give both".to_string(),
        )),
    }
}
