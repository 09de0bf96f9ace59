//! Stream plumbing: the chunk channel between node producers and the stream consumer.
