"""The cache interface, LangGraph's own (`langgraph.cache.base`)."""

from __future__ import annotations

from langgraph.cache.base import BaseCache, FullKey, Namespace

__all__ = ["BaseCache", "FullKey", "Namespace"]
