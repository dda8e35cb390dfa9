//! The page: one HTML document with its script, built into the binary (`include_str!`), the
//! report's stylesheet, and the configured test's values filled in. It fetches only from its
//! own origin: `/ui/live` every second, the API paths for its buttons, downloads.

use super::session::Session;
use crate::report::{html::STYLE, svg::escape};

const TEMPLATE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");

/// The page for `session`'s configured test (host, users, spawn rate, run time; topic and
/// QoS shown). Credentials never appear: only the host and the topic template are shown.
pub fn html(session: &Session) -> String {
    let plan = session.plan();
    let host = match plan.hosts.first() {
        Some(host) => host.to_string(),
        None => String::new(),
    };
    let run_time = plan
        .run_time
        .map(crate::config::format_duration)
        .unwrap_or_default();
    TEMPLATE
        .replace("__STYLE__", STYLE)
        .replace("__SCRIPT__", SCRIPT)
        .replace("__HOST__", &escape(&host))
        .replace("__USERS__", &session.target_users().to_string())
        .replace("__SPAWN_RATE__", &plan.spawn_rate.to_string())
        .replace("__RUN_TIME__", &escape(&run_time))
        .replace("__TOPIC__", &escape(&topics_of(&plan)))
        .replace("__QOS__", &qos_of(&plan))
        .replace("__VERSION__", env!("CARGO_PKG_VERSION"))
}

/// The topic templates the users publish to (one per stream, `, `-separated).
fn topics_of(plan: &crate::plan::Plan) -> String {
    match plan.streams.as_slice() {
        [] => plan.topic.clone(),
        streams => {
            let topics: Vec<&str> = streams.iter().map(|s| s.topic.as_str()).collect();
            topics.join(", ")
        }
    }
}

/// The QoS of the streams (`1`, or `0/1` when they differ).
fn qos_of(plan: &crate::plan::Plan) -> String {
    let mut levels: Vec<u8> = plan.streams.iter().map(|s| s.qos).collect();
    levels.sort_unstable();
    levels.dedup();
    match levels.as_slice() {
        [] => plan.qos.to_string(),
        levels => {
            let texts: Vec<String> = levels.iter().map(u8::to_string).collect();
            texts.join("/")
        }
    }
}
