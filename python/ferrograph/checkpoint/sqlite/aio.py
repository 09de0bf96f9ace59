"""The asyncio SQLite checkpointer, LangGraph's own (`langgraph.checkpoint.sqlite.aio`), from
the `ferrograph[sqlite]` extra."""

from __future__ import annotations

from ferrograph._extras import missing_extra

try:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
except ImportError as exc:
    raise missing_extra("sqlite", "ferrograph.checkpoint.sqlite.aio", exc) from exc

__all__ = ["AsyncSqliteSaver"]
