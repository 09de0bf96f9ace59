"""ferrograph: a drop-in, Rust-powered runtime for LangGraph graphs."""

from typing import Any

from ferrograph._core import __version__


def __getattr__(name: str) -> Any:
    # `adapt` imports the builder and the runtime: only when asked for
    if name in ("adapt", "UntranslatableGraphError"):
        from ferrograph.graph import adapt as adapt_module

        return getattr(adapt_module, name)
    raise AttributeError(f"module 'ferrograph' has no attribute {name!r}")


__all__ = ["UntranslatableGraphError", "__version__", "adapt"]
