//! Rendering results: the Locust-style console tables, the JSON result file and everything
//! rendered from it (Locust CSVs, HdrHistogram interval log, HTML report), plus `merge` and
//! `compare` of saved results.
//!
//! Renderers are pure functions from a [`crate::stats::Summary`] (or live totals) to text or
//! JSON, so their exact output is unit-tested; the merger only decides when to print.

pub mod commands;
pub mod compare;
pub mod console;
pub mod csv;
pub mod hlog;
pub mod html;
pub mod json;
pub mod merge;
pub mod result;
pub mod svg;
mod timeline_entry;

pub use json::{exit_code, summary_json, write_json};
