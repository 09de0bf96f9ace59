"""The SQLite checkpointers, LangGraph's own (`langgraph.checkpoint.sqlite`), from the
`ferrograph[sqlite]` extra. The async one is also in `ferrograph.checkpoint.sqlite.aio`."""

from __future__ import annotations

from ferrograph._extras import missing_extra

try:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
except ImportError as exc:
    raise missing_extra("sqlite", "ferrograph.checkpoint.sqlite", exc) from exc

__all__ = ["AsyncSqliteSaver", "SqliteSaver"]
