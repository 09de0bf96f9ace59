//! ferrograph's engine: the parts of a LangGraph-compatible runtime that do not need Python.
//!
//! - [`plan`]: a graph description is validated and compiled into an immutable plan of
//!   channels and triggers.
//! - [`schedule`]: the Pregel/BSP superstep state machine over that plan, generic over the
//!   value type so it runs (and is tested) without Python.
//! - [`claims`]: which of a step's tasks no thread has taken yet, and how many workers the
//!   step may still hire (the Python-free half of a step's crew).
//! - [`stream`]: the bounded chunk channel that carries tagged stream items from many producer
//!   threads to one consumer, filtering at the producer.
//! - [`task_id`]: cheap unique task ids in UUID form.
//! - [`models`]: the streaming path of OpenAI-compatible chat models: HTTP, server-sent
//!   events and chunk decoding off the GIL (`ferrograph.models.ChatOpenAI`).
//!
//! The PyO3 bindings live in `python` behind the `python` feature, so `cargo test` needs no
//! Python at all.

pub mod claims;
pub mod models;
pub mod plan;
pub mod schedule;
pub mod stream;
pub mod task_id;

#[cfg(feature = "python")]
mod python;
