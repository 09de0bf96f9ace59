"""`create_react_agent` under LangGraph's module name (`langgraph.prebuilt.chat_agent_executor`),
on ferrograph's engine; LangGraph's state classes of the agent (`AgentState`, ...) as they are
(imported from LangGraph when first asked for)."""

from __future__ import annotations

from typing import Any

from ferrograph.prebuilt import create_react_agent

_LANGGRAPH_NAMES = ("AgentState", "AgentStatePydantic", "AgentStateWithStructuredResponse",
                    "AgentStateWithStructuredResponsePydantic")


def __getattr__(name: str) -> Any:
    if name in _LANGGRAPH_NAMES:
        from langgraph.prebuilt import chat_agent_executor

        return getattr(chat_agent_executor, name)
    raise AttributeError(
        f"module 'ferrograph.prebuilt.chat_agent_executor' has no attribute {name!r}")


__all__ = ["create_react_agent", *_LANGGRAPH_NAMES]
