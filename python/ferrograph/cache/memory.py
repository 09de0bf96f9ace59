"""The in-memory cache, LangGraph's own (`langgraph.cache.memory`)."""

from __future__ import annotations

from langgraph.cache.memory import InMemoryCache

__all__ = ["InMemoryCache"]
