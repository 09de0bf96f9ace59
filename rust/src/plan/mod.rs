//! Graph compilation.
