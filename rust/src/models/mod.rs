//! The OpenAI-compatible chat client's streaming path, without Python: the request and its
//! server-sent events ([`client`]), their decoding ([`sse`]), and what each event means to
//! LangChain ([`delta`]). `ferrograph.models.ChatOpenAI` drives it through `python/models.rs`.

pub mod client;
pub mod delta;
pub mod sse;

pub use client::{Batch, ChatStream, Failure, HttpClient};
pub use delta::{Item, ToolCallDelta};
