//! Streams, presets, gateway batching, answers: what a simulated device sends and answers,
//! compiled into frames and paces the engine uses.

pub mod answers;
pub mod params;
pub mod responder;
