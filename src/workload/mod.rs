//! Streams, presets, gateway batching, answers: what a simulated device sends and answers,
//! compiled into frames and paces the engine uses.
//!
//! A user (one MQTT connection) is a list of streams ([`stream::StreamPlan`]), each with its
//! kind, topic, payload, QoS and pace ([`pace::Pace`]). The configuration builds the list once;
//! the engine asks this room for each client's frames (built at start-up) and for the next
//! due time of a stream after each send, so the worker's loop knows nothing of paces. Payloads
//! may be ThingsBoard's presets ([`presets`]) with per-message value fields ([`fields`]).

pub mod answers;
pub mod fields;
pub mod gateway;
pub mod gateway_rpc;
pub mod pace;
pub mod params;
pub mod presets;
pub mod rate;
pub mod responder;
pub mod stream;
