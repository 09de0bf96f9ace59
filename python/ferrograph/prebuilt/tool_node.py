"""LangGraph's `langgraph.prebuilt.tool_node` under its module name: every name is LangGraph's
own (imported from `langgraph-prebuilt` when first asked for)."""

from __future__ import annotations

from typing import Any

_NAMES = ("InjectedState", "InjectedStore", "ToolCallRequest", "ToolNode", "ToolRuntime",
          "tools_condition")


def __getattr__(name: str) -> Any:
    from ferrograph.prebuilt import _langgraph_prebuilt

    _langgraph_prebuilt()
    from langgraph.prebuilt import tool_node

    try:
        return getattr(tool_node, name)
    except AttributeError:
        raise AttributeError(
            f"module 'ferrograph.prebuilt.tool_node' has no attribute {name!r}") from None


__all__ = list(_NAMES)
