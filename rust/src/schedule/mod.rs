//! Superstep scheduling.
