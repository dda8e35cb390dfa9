//! Locust's config files and environment, pyproject.toml [tool.locust], config.toml, MQBLAST_*
//! environment and command line -> a validated [`Plan`].
//!
//! All validation lives here, once, so the rest of the program trusts the plan (ripgrep's
//! "low args -> high args"). Every setting has one name used in four places: the config.toml
//! key (`spawn_rate`), the environment variable (`MQBLAST_SPAWN_RATE`), the flag
//! (`--spawn-rate`, Locust's name where Locust has one) and the built-in default; Locust's own
//! sources name it as Locust does (`spawn-rate`, `LOCUST_SPAWN_RATE`). The layers are resolved
//! per setting, lowest first: default, `~/.locust.conf`, `./locust.conf`, pyproject.toml's
//! `[tool.locust]`, `--config FILE.conf` (Locust's order among its own), config.toml,
//! `LOCUST_*`, `MQBLAST_*`, command line. Values are kept with their origin until they are
//! parsed, so every error is one line that says where the bad value came from:
//! `config.toml line 7: qos = 3: must be 0, 1 or 2`, `MQBLAST_QOS=3: ...`, `--qos 3: ...`.
//!
//! The files of this module follow that path, one way: each source yields the same
//! `layers::Layer`: `cli` (flags as text), `env` (both environments), `file` (config.toml),
//! `pyproject` and `locust_conf` (Locust's files, through the shared key mapping in
//! `locust_keys`); `layers` merges them and knows none of them; `build` reads the sources and
//! turns the winning values into the plan with the validators in `resolve`, `templates`,
//! `tokens`, `subscribers` and `sharding`; `values` holds the value syntax shared with other
//! commands; `effective` records what was used, secrets redacted; `outputs` checks the output
//! files can be written before a run starts.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::plan::Plan;

/// The commented default configuration (`mqblast config --default`, `mqblast init`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config.toml");

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

mod build;
mod cli;
mod commands;
mod effective;
mod env;
mod file;
mod gateway;
mod keys;
mod layers;
mod locust_conf;
mod locust_import;
mod locust_keys;
mod mqtt5;
mod outputs;
mod pyliteral;
mod pyproject;
mod rate;
mod resolve;
mod responder;
mod sharding;
mod streams;
mod subscribers;
mod templates;
mod tokens;
mod transport;
mod values;
mod web;
mod worker;

#[cfg(test)]
pub(crate) mod tests;

pub use build::build_plan;
pub use cli::{Cli, CliCommand, ConfigArgs, ConnArgs, InitArgs, RunArgs, SinkArgs};
pub use commands::write_default_config;
use commands::{conn_plan, sink_options};
pub use effective::render_effective;
pub use keys::{env_var_names, setting_names};
pub use locust_import::{import_locust, Imported};
pub use outputs::check_outputs;
pub use streams::pace_text;
pub use tokens::parse_tokens_file;
pub use values::{format_duration, parse_duration, parse_host, MAX_BIND_ADDRS};

/// What the command line asked for, with everything it needs already validated.
#[derive(Debug)]
pub enum Command {
    /// Run a load test.
    Run(Box<Plan>),
    /// Write [`DEFAULT_CONFIG`] to ./config.toml unless it exists ([`write_default_config`]).
    Init,
    /// Write ./config.toml from a Locust project's config.py and pyproject.toml (these files,
    /// or the working directory's): [`import_locust`].
    InitFromLocust(Vec<PathBuf>),
    /// Print [`DEFAULT_CONFIG`].
    PrintDefaultConfig,
    /// Print the effective configuration of this plan ([`render_effective`]).
    PrintConfig(Box<Plan>),
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
    let cli = Cli::try_parse_from(args).map_err(cli::locust_flag_or_usage)?;
    match cli.command {
        None => build_plan(&cli.run, env, ctx).map(|plan| Command::Run(Box::new(plan))),
        Some(CliCommand::Run(run)) => {
            build_plan(&run, env, ctx).map(|plan| Command::Run(Box::new(plan)))
        }
        Some(CliCommand::Init(InitArgs {
            from_locust: Some(files),
        })) => Ok(Command::InitFromLocust(files)),
        Some(CliCommand::Init(_)) => Ok(Command::Init),
        Some(CliCommand::Config(ConfigArgs { default: true, .. })) => {
            Ok(Command::PrintDefaultConfig)
        }
        Some(CliCommand::Config(args)) => {
            build_plan(&args.run, env, ctx).map(|plan| Command::PrintConfig(Box::new(plan)))
        }
        Some(CliCommand::Sink(args)) => sink_options(&args).map(Command::Sink),
        Some(CliCommand::Report(args)) => Ok(Command::Report(args)),
        Some(CliCommand::Merge(args)) => Ok(Command::Merge(args)),
        Some(CliCommand::Compare(args)) => Ok(Command::Compare(args)),
        Some(CliCommand::Conn(args)) => conn_plan(args, env, ctx).map(Command::Run),
    }
}

/// Most characters of a value echoed in a message.
pub const MAX_SHOWN_CHARS: usize = 80;

/// A value from outside (a host, a topic, a config value) as echoed in a one-line message:
/// control characters escaped, and cut after [`MAX_SHOWN_CHARS`] characters with its length
/// in bytes, so a 50 MB host is a line, not 50 MB of terminal.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    for (count, c) in value.chars().enumerate() {
        if count == MAX_SHOWN_CHARS {
            out.push_str(&format!("... ({} bytes)", value.len()));
            return out;
        }
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

pub(super) fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}
