//! The web face (`--web`): Locust's web UI and HTTP API on port 8089, steering live runs.
//!
//! ```text
//! browser / curl ──HTTP──> server thread (tiny_http, one request at a time)
//!                               │ set users, stop, reset ──> engine::steer::Steering
//!                               │ start a test ──> bounded channel ──> session loop (main thread)
//!                               └ reads merger snapshots (Steering::snapshot)
//! ```
//! The face only translates: it never touches workers or the merger, and the engine and the
//! stats know nothing of it (DESIGN.md, "Steering a live run"). Requests are served one at a
//! time by one thread, so the UI's cost is bounded by its own polling; bodies are read up to
//! [`MAX_BODY_BYTES`] and refused beyond.

mod api;
mod metrics;
mod page;
mod params;
mod server;
mod session;

pub use server::serve;
pub use session::{run_session, Hooks, Session, StartRequest};

/// Largest request body read (a /swarm form is a few hundred bytes): more is refused (413).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
