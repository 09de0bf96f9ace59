"""LangGraph's prebuilt components under LangGraph's module name (`langgraph.prebuilt`).

`ToolNode`, `tools_condition`, `InjectedState`, `InjectedStore`, `ToolRuntime`,
`ValidationNode` and `ToolCallTransformer` are LangGraph's own objects (package
`langgraph-prebuilt`, not a dependency of ferrograph: imported when first asked for); they
work as nodes and edges of a ferrograph `StateGraph`. `create_react_agent` builds LangGraph's
agent and returns it on ferrograph's engine (`ferrograph.adapt`). The submodules
`chat_agent_executor` and `tool_node` stand for LangGraph's of those names.
"""

from __future__ import annotations

import warnings
from typing import Any

_LANGGRAPH_NAMES = ("InjectedState", "InjectedStore", "ToolCallTransformer", "ToolNode",
                    "ToolRuntime", "ValidationNode", "tools_condition")


def _langgraph_prebuilt() -> Any:
    try:
        import langgraph.prebuilt.tool_node  # noqa: F401 - the submodules, not a proxy
        import langgraph.prebuilt.tool_validator  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "ferrograph.prebuilt re-exports LangGraph's prebuilt components: install "
            "`langgraph-prebuilt` (or `langgraph`) to use them") from e
    import langgraph.prebuilt

    return langgraph.prebuilt


def create_react_agent(*args: Any, **kwargs: Any) -> Any:
    """LangGraph's `create_react_agent` (same arguments), on ferrograph's engine."""
    from ferrograph.graph.adapt import adapt

    build = _langgraph_create_react_agent()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = build(*args, **kwargs)
    for warning in caught:  # LangGraph's deprecation notice, pointing at the caller
        warnings.warn(warning.message, warning.category, stacklevel=2)
    return adapt(graph)


def _langgraph_create_react_agent() -> Any:
    _langgraph_prebuilt()
    from langgraph.prebuilt import chat_agent_executor

    build = chat_agent_executor.create_react_agent
    if build is create_react_agent:
        # An import shim maps LangGraph's name to this function (as the run of LangGraph's
        # own tests on ferrograph does): LangGraph's is what its module's functions see.
        build = chat_agent_executor._validate_chat_history.__globals__["create_react_agent"]
    return build


def __getattr__(name: str) -> Any:
    if name in _LANGGRAPH_NAMES:
        value = getattr(_langgraph_prebuilt(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ferrograph.prebuilt' has no attribute {name!r}")


__all__ = ["create_react_agent", *_LANGGRAPH_NAMES]
