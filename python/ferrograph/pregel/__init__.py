"""The run loop: supersteps over the Rust scheduler, streaming through the chunk channel."""
