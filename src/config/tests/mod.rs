//! Tests of the whole path, command line + environment + config.toml -> plan or error, with
//! a scratch directory per test. Helpers are `pub(crate)` for the payload tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::payload::Payload;

mod errors;
mod gateway;
mod locust_conf;
mod nul_characters;
mod precedence;
mod presets;
mod pyproject;
mod rate;
mod resources;
mod responder;
mod shards;
mod streams;
mod string_limits;
mod subcommands;
mod tokens;
mod validation;
mod web;
mod worker;

/// A Plan with built-in defaults and the given payload, for payload tests.
pub(crate) fn plan_with_payload(payload: Payload, qos: u8, topic: &str) -> Plan {
    let dir = TestDir::new();
    let mut plan = dir.plan(&["--qos", &qos.to_string()], &[]).unwrap();
    plan.streams = vec![crate::workload::stream::StreamPlan::single(
        topic,
        payload.clone(),
        qos,
        crate::workload::pace::Pace::interval(plan.interval),
    )];
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
        let path =
            std::env::temp_dir().join(format!("mqblast-config-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn ctx(&self) -> Context {
        Context {
            cwd: self.0.clone(),
            open_files_limit: 1_000_000,
            available_cores: 4,
        }
    }

    pub(crate) fn command(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Command, ConfigError> {
        self.command_in(args, env, &self.ctx())
    }

    pub(crate) fn command_in(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        ctx: &Context,
    ) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let argv = std::iter::once("mqblast").chain(args.iter().copied());
        parse_in(argv, &lookup, ctx)
    }

    pub(crate) fn plan(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Plan, ConfigError> {
        match self.command(args, env)? {
            Command::Run(plan) => Ok(*plan),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    pub(crate) fn error(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        match self.plan(args, env) {
            Ok(_) => panic!("expected an error for {args:?} {env:?}"),
            Err(ConfigError::Invalid(message)) => message,
            Err(ConfigError::Usage(err)) => panic!("usage error: {err}"),
        }
    }

    pub(crate) fn path_of(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
