"""LangGraph's state channel classes a ferrograph state key can be annotated with, under
LangGraph's module name (`langgraph.channels`): `DeltaChannel` (`Annotated[list,
DeltaChannel(reducer)]`; see `ferrograph.pregel._delta`). They are LangGraph's own objects
(the `langgraph` package, not a dependency of ferrograph: imported when first asked for).
"""

from __future__ import annotations

from typing import Any

_LANGGRAPH_NAMES = ("DeltaChannel",)


def __getattr__(name: str) -> Any:
    if name not in _LANGGRAPH_NAMES:
        raise AttributeError(f"module 'ferrograph.channels' has no attribute {name!r}")
    try:
        import langgraph.channels
    except ImportError as e:
        raise ImportError(f"ferrograph.channels.{name} is LangGraph's: install `langgraph` "
                          "to use it") from e
    return getattr(langgraph.channels, name)


__all__ = list(_LANGGRAPH_NAMES)
