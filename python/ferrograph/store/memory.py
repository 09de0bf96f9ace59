"""The in-memory store, LangGraph's own (`langgraph.store.memory`)."""

from __future__ import annotations

from langgraph.store.memory import InMemoryStore

__all__ = ["InMemoryStore"]
