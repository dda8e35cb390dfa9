//! The web face (`--web`): Locust's web UI and HTTP API on port 8089, steering live runs.
//!
//! ```text
//! browser / curl ──HTTP──> acceptor ──(queue of 16)──> 4 handler threads, one request each
//!                               │ set users, stop, reset ──> engine::steer::Steering
//!                               │ start a test ──> bounded channel ──> session loop (main thread)
//!                               └ reads merger snapshots (Steering::snapshot)
//! ```
//! The face only translates: it never touches workers or the merger, and the engine and the
//! stats know nothing of it (DESIGN.md, "Steering a live run"). Connections, heads, bodies and
//! the time a client may take are bounded in `server` (503, 431, 413, 408 at the bounds), so
//! the UI's cost is bounded by its own polling whatever clients do.

mod api;
mod guard;
mod http;
mod journal;
mod metrics;
mod page;
mod params;
mod server;
mod session;

pub use journal::{Journal, LOG_LINES_MAX};
pub use server::serve;
pub use session::{run_session, Hooks, Session, StartRequest};

/// Largest request body read (a /swarm form is a few hundred bytes): more is refused (413).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
