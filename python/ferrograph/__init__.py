"""ferrograph: a drop-in, Rust-powered runtime for LangGraph graphs."""

from ferrograph._core import __version__

__all__ = ["__version__"]
