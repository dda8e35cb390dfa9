//! mqblast: an MQTT load generator.
//!
//! Layout (see docs in each module): `config` builds a validated [`plan::Plan`]; `engine` runs
//! pinned mio workers that own the connections; `stats` merges their histograms on one thread;
//! `report` renders the console tables and the JSON summary; `mqtt` hand-encodes and decodes
//! packets; `payload` pre-serializes PUBLISH frames with patch offsets.

pub mod app;
pub mod broker;
pub mod config;
pub mod engine;
pub mod keyboard;
pub mod limits;
pub mod locust;
pub mod mqtt;
pub mod payload;
pub mod plan;
pub mod precise_poll;
pub mod report;
pub mod shard;
pub mod signals;
pub mod sink;
pub mod stats;
pub mod transport;
pub mod web;
pub mod workload;
