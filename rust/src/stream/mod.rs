//! Stream plumbing: the chunk channel between node producers and the stream consumer.

pub mod chunk_channel;

pub use chunk_channel::{
    Chunk, ChunkChannel, Drain, Producer, PushError, Pushed, Subscription, Tag, TryPush, Waker,
};
