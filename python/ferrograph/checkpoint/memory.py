"""The in-memory checkpointer, LangGraph's own (`langgraph.checkpoint.memory`)."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver, MemorySaver

__all__ = ["InMemorySaver", "MemorySaver"]
