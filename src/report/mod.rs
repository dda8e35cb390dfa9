//! Rendering results: the Locust-style console tables and the JSON summary.
//!
//! Renderers are pure functions from a [`crate::stats::Summary`] (or live totals) to text or
//! JSON, so their exact output is unit-tested; the merger only decides when to print.

pub mod console;
pub mod json;

pub use json::{exit_code, summary_json, write_json};
